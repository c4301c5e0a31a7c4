package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

const testID = "r019ac3d5e7f1a2b3c4d5e6f7a8b9"

type fakeCred struct{ scopes []string }

func (f *fakeCred) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.scopes = o.Scopes
	return azcore.AccessToken{Token: "entra-token", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// The connection comes from flags first, then the environment; with an
// Entra scope the credential of the chosen kind supplies a bearer token for
// exactly that scope, sent beside the function key (Azure with App Service
// Authentication needs both).
func TestConnectionSettings(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"`+testID+`","type":"access","state":"received","stage":"intake"}`)
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name     string
		envs     map[string]string
		args     []string
		wantKey  string
		wantAuth string
		wantKind string
	}{
		{"environment", map[string]string{envURL: srv.URL + "/api", envKey: "env-key", envScope: "api://app/.default", envCredKind: "cli"},
			nil, "env-key", "Bearer entra-token", "cli"},
		{"flags win", map[string]string{envURL: "http://127.0.0.1:1", envKey: "env-key", envScope: "api://other/.default"},
			[]string{"--url", srv.URL, "--key", "flag-key", "--entra-scope", "api://app/.default", "--credential", "default"}, "flag-key", "Bearer entra-token", "default"},
		{"no scope, no token", map[string]string{envURL: srv.URL, envKey: "env-key"}, nil, "env-key", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cred := &fakeCred{}
			var kind string
			var out, errOut bytes.Buffer
			env := &cliEnv{stdout: &out, stderr: &errOut, getenv: func(k string) string { return tc.envs[k] },
				newCredential: func(k string) (azcore.TokenCredential, error) { kind = k; return cred, nil }}
			args := append([]string{"get", testID, "--json"}, tc.args...)
			if err := requestsCmd(context.Background(), env, args); err != nil {
				t.Fatalf("%v\n%s", err, errOut.String())
			}
			if got.Get("x-functions-key") != tc.wantKey || got.Get("Authorization") != tc.wantAuth || kind != tc.wantKind {
				t.Errorf("key %q, authorization %q, credential %q", got.Get("x-functions-key"), got.Get("Authorization"), kind)
			}
			if tc.wantAuth != "" && !slices.Equal(cred.scopes, []string{"api://app/.default"}) {
				t.Errorf("token asked for %v", cred.scopes)
			}
			if !strings.Contains(out.String(), `"state":"received"`) {
				t.Errorf("--json printed %q", out.String())
			}
		})
	}
}

// An unknown credential kind is a usage error, before any call.
func TestUnknownCredentialKind(t *testing.T) {
	env := &cliEnv{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }, newCredential: azureCredential}
	err := requestsCmd(context.Background(), env, []string{"get", testID, "--entra-scope", "api://app/.default", "--credential", "browser"})
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "browser") {
		t.Fatalf("%v (exit %d)", err, exitCode(err))
	}
}

// Flags may come before, between or after the arguments; after -- all is
// an argument.
func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		wantPos  []string
		wantJSON bool
		wantN    int
	}{
		{[]string{"ID", "--json"}, []string{"ID"}, true, 0},
		{[]string{"--json", "ID", "--n", "3"}, []string{"ID"}, true, 3},
		{[]string{"A", "--n=2", "B"}, []string{"A", "B"}, false, 2},
		{[]string{"--n", "1", "--", "-A", "--json"}, []string{"-A", "--json"}, false, 1},
	} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		j := fs.Bool("json", false, "")
		n := fs.Int("n", 0, "")
		pos, err := parseArgs(fs, tc.args, 0, 5)
		if err != nil || !slices.Equal(pos, tc.wantPos) || *j != tc.wantJSON || *n != tc.wantN {
			t.Errorf("%v: %v %v json=%v n=%d", tc.args, pos, err, *j, *n)
		}
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := parseArgs(fs, []string{"--nope"}, 0, 1); exitCode(err) != exitUsage {
		t.Errorf("unknown flag: %v", err)
	}
	if _, err := parseArgs(fs, []string{"-h"}, 0, 1); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}
