package funchost_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/funchost"
)

// The local host reads the repository's host.json as Azure does.
func TestReadHostSettings(t *testing.T) {
	s, err := funchost.ReadHostSettings("../../host.json")
	if err != nil {
		t.Fatal(err)
	}
	if s.MaxConcurrentCalls < 1 || s.MaxAutoLockRenewal != 5*time.Minute {
		t.Fatalf("settings %+v", s)
	}
	dir := t.TempDir()
	for body, ok := range map[string]bool{
		`{"extensions":{"serviceBus":{"maxConcurrentCalls":8,"maxAutoLockRenewalDuration":"1.00:00:30"}}}`: true,
		`{"version":"2.0"}`: true,
		`{"extensions":{"serviceBus":{"maxConcurrentCalls":-1}}}`:                  false,
		`{"extensions":{"serviceBus":{"maxAutoLockRenewalDuration":"5 minutes"}}}`: false,
		`{`: false,
	} {
		p := filepath.Join(dir, "host.json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := funchost.ReadHostSettings(p)
		if (err == nil) != ok {
			t.Errorf("%s: %+v %v", body, got, err)
		}
		if strings.Contains(body, "maxConcurrentCalls\":8") && (got.MaxConcurrentCalls != 8 || got.MaxAutoLockRenewal != 24*time.Hour+30*time.Second) {
			t.Errorf("%s: %+v", body, got)
		}
	}
}
