package functions_test

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
)

// runSmoke runs scripts/smoke-azure.sh in its dry-run mode against url.
func runSmoke(t *testing.T, url, key string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", "../scripts/smoke-azure.sh", "--local", url)
	cmd.Env = append(cmd.Environ(), "DSR_LOCAL_FUNCTION_KEY="+key)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestSmokeScriptDryRun: the smoke script's HTTP checks pass against the
// local host, and fail against a server that lets everything through.
func TestSmokeScriptDryRun(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	out, code := runSmoke(t, h.front.URL, harnessKey)
	if code != 0 || strings.Contains(out, "FAIL") || strings.Count(out, "PASS") < 8 {
		t.Fatalf("smoke against the local host: exit %d\n%s", code, out)
	}
	open := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"r0","state":"completed","url":"http://127.0.0.1:1/x"}`))
	}))
	defer open.Close()
	out, code = runSmoke(t, open.URL, "k")
	for _, want := range []string{"FAIL  path trick /webhooks/../requests", "FAIL  webhook path", "FAIL  submitting an access request"} {
		if !strings.Contains(out, want) {
			t.Errorf("against a server that lets everything through, the smoke test lacks %q:\n%s", want, out)
		}
	}
	if code != 1 {
		t.Errorf("exit %d against a broken server, want 1", code)
	}
}
