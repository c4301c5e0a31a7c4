package config

import (
	"strings"
	"testing"
	"time"
)

// Agents' proofs: a private container named like the others, kept for a
// bounded time after their request ended.
func TestLoadProofSettings(t *testing.T) {
	c, err := Load(env("AzureWebJobsStorage", devStorage))
	if err != nil {
		t.Fatal(err)
	}
	if c.ProofContainer != "proofs" || c.ProofRetention != 2160*time.Hour {
		t.Errorf("defaults %q %s, want proofs 2160h", c.ProofContainer, c.ProofRetention)
	}
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"DSR_PROOF_CONTAINER", "agent-proofs", true},
		{"DSR_PROOF_CONTAINER", "Proofs", false},
		{"DSR_PROOF_CONTAINER", "../state", false},
		{"DSR_PROOF_RETENTION", "24h", true},
		{"DSR_PROOF_RETENTION", "8760h", true},
		{"DSR_PROOF_RETENTION", "23h", false},
		{"DSR_PROOF_RETENTION", "8761h", false},
		{"DSR_PROOF_RETENTION", "90 days", false},
	} {
		c, err := Load(env("AzureWebJobsStorage", devStorage, tc.name, tc.value))
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s=%q refused: %v", tc.name, tc.value, err)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), tc.name)):
			t.Errorf("%s=%q: %v, want an error naming the setting", tc.name, tc.value, err)
		case tc.ok && tc.name == "DSR_PROOF_CONTAINER" && c.ProofContainer != tc.value:
			t.Errorf("container %q", c.ProofContainer)
		}
	}
}
