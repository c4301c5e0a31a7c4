package main

import (
	"io"
	"log/slog"
	"testing"

	"github.com/dsr-functions/dsr/shared/funchost"
)

// AzureWebJobs.<name>.Disabled, as the Functions host reads it, or with
// underscores, as a shell can export it, leaves a function out.
func TestEnabledFunctions(t *testing.T) {
	all := []funchost.Function{{Name: "sweeper"}, {Name: "discover"}, {Name: "erase"}, {Name: "verify"}}
	env := map[string]string{
		"AzureWebJobs.sweeper.Disabled": "true",
		"AzureWebJobs_erase_Disabled":   "1",
		"AzureWebJobs.verify.Disabled":  "false",
	}
	got := enabledFunctions(all, func(k string) string { return env[k] }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if len(got) != 2 || got[0].Name != "discover" || got[1].Name != "verify" {
		t.Fatalf("enabled: %+v", got)
	}
}
