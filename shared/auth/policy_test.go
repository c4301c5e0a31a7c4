package auth_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/problem"
)

// seen records what the guarded handler saw.
type seen struct {
	called    bool
	principal *auth.Principal
	ownOnly   bool
}

func guarded(a *auth.Authenticator, p auth.Policy, log *slog.Logger) (http.Handler, *seen) {
	s := &seen{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.called = true
		s.principal = auth.FromContext(r.Context())
		s.ownOnly = auth.OwnOnly(r.Context())
		w.WriteHeader(http.StatusNoContent)
	})
	return auth.Guard(a, p, h, log), s
}

func TestGuard(t *testing.T) {
	platform := &auth.Authenticator{Mode: auth.ModePlatform}
	readOrOwn := auth.Policy{Any: []auth.Role{auth.RoleRead}, Own: auth.RoleSubmit}
	exportOnly := auth.Policy{Any: []auth.Role{auth.RoleExport}}
	user := func(roles ...string) []string {
		claims := []claim{oid(userOID)}
		for _, r := range roles {
			claims = append(claims, role(r))
		}
		return []string{auth.PrincipalHeader, encode(t, aad(claims...)), auth.PrincipalNameHeader, "Ann Secretname"}
	}

	cases := []struct {
		name     string
		policy   auth.Policy
		header   []string
		status   int
		ownOnly  bool
		needsAll []string // in a 403's detail
	}{
		{name: "anonymous without a principal", policy: auth.Policy{Anonymous: true}, status: 204},
		{name: "anonymous with a malformed principal", policy: auth.Policy{Anonymous: true}, header: []string{auth.PrincipalHeader, "!!"}, status: 204},
		{name: "no principal", policy: readOrOwn, status: 401},
		{name: "malformed principal", policy: readOrOwn, header: []string{auth.PrincipalHeader, "eyJub3QiOiJqc29u"}, status: 401},
		{name: "Any role", policy: readOrOwn, header: user("DSR.Read"), status: 204},
		{name: "Admin implies the Any role", policy: readOrOwn, header: user("DSR.Admin"), status: 204},
		{name: "Own role only", policy: readOrOwn, header: user("DSR.Submit"), status: 204, ownOnly: true},
		{name: "Own and Any role: full access", policy: readOrOwn, header: user("DSR.Submit", "DSR.Read"), status: 204},
		{name: "no matching role", policy: readOrOwn, header: user("DSR.Export", "DSR.Approve"), status: 403, needsAll: []string{"DSR.Read", "DSR.Submit (own requests)"}},
		{name: "no role at all", policy: exportOnly, header: user(), status: 403, needsAll: []string{"DSR.Export"}},
		{name: "Submit is not Export", policy: exportOnly, header: user("DSR.Submit", "DSR.Read"), status: 403, needsAll: []string{"DSR.Export"}},
		{name: "Export", policy: exportOnly, header: user("DSR.Export"), status: 204},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			h, s := guarded(platform, c.policy, slog.New(slog.NewJSONHandler(&logs, nil)))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req(c.header...))
			res := w.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, c.status, body)
			}
			for _, leak := range []string{"Ann", "Secretname", userOID} {
				if strings.Contains(string(body), leak) || strings.Contains(logs.String(), leak) {
					t.Errorf("response or log names the principal (%q):\n%s\n%s", leak, body, logs.String())
				}
			}
			if c.status < 400 {
				if !s.called || s.ownOnly != c.ownOnly {
					t.Fatalf("handler called %v with OwnOnly %v, want called with OwnOnly %v", s.called, s.ownOnly, c.ownOnly)
				}
				if c.policy.Anonymous {
					if s.principal != nil {
						t.Errorf("anonymous function got principal %+v", s.principal)
					}
				} else if s.principal == nil || s.principal.ID != userOID {
					t.Errorf("handler got principal %+v", s.principal)
				}
				return
			}
			if s.called {
				t.Fatal("handler called for a refused request")
			}
			if ct := res.Header.Get("Content-Type"); ct != problem.ContentType {
				t.Errorf("Content-Type %q, want %s", ct, problem.ContentType)
			}
			var pd struct {
				Status int    `json:"status"`
				Detail string `json:"detail"`
			}
			if err := json.Unmarshal(body, &pd); err != nil || pd.Status != c.status {
				t.Fatalf("problem document %s: %v", body, err)
			}
			if c.status == 401 && res.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if c.status == 403 && res.Header.Get("WWW-Authenticate") != "" {
				t.Error("403 with WWW-Authenticate")
			}
			for _, need := range c.needsAll {
				if !strings.Contains(pd.Detail, need) {
					t.Errorf("403 detail %q does not name %q", pd.Detail, need)
				}
			}
		})
	}
}

// A key caller narrowed to DSR.Submit by the test roles header is an own-only
// caller, and a forged principal header does not change that.
func TestGuardKeysModeOwnOnly(t *testing.T) {
	a := &auth.Authenticator{Mode: auth.ModeKeys, KeyRoles: []auth.Role{auth.RoleAdmin}, AllowTestRoles: true}
	h, s := guarded(a, auth.Policy{Any: []auth.Role{auth.RoleRead}, Own: auth.RoleSubmit}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req(auth.TestRolesHeader, "DSR.Submit", auth.PrincipalHeader, encode(t, aad(oid(userOID), role("DSR.Admin")))))
	if w.Code != 204 || !s.ownOnly || s.principal.Kind != "key" || s.principal.Has(auth.RoleRead) {
		t.Fatalf("status %d, OwnOnly %v, principal %+v; want 204, own only, key caller with DSR.Submit", w.Code, s.ownOnly, s.principal)
	}

	w = httptest.NewRecorder()
	h.ServeHTTP(w, req(auth.TestRolesHeader, "DSR.Read"))
	if w.Code != 204 || s.ownOnly {
		t.Fatalf("DSR.Read: status %d, OwnOnly %v; want 204, not own only", w.Code, s.ownOnly)
	}

	// Refused test roles are a 401 with a safe reason.
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req(auth.TestRolesHeader, "DSR.Root"))
	if w.Code != 401 || !strings.Contains(w.Body.String(), auth.ErrBadTestRoleList.Error()) {
		t.Fatalf("unknown test role: %d %s", w.Code, w.Body)
	}
}

func TestOwnOnlyDefault(t *testing.T) {
	if auth.OwnOnly(req().Context()) {
		t.Fatal("OwnOnly without Guard")
	}
}

// A principal the app put in the context (the console, in process) is the
// caller; a network caller cannot put one there, and without it the
// headers decide.
func TestGuardUsesAPrincipalInTheContext(t *testing.T) {
	a := &auth.Authenticator{Mode: auth.ModePlatform}
	var got *auth.Principal
	h := auth.Guard(a, auth.Policy{Any: []auth.Role{auth.RoleApprove}}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = auth.FromContext(r.Context())
	}), slog.New(slog.DiscardHandler))
	r := httptest.NewRequest("POST", "/api/requests/x/approve", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("no principal: %d", w.Code)
	}
	p := &auth.Principal{Kind: "user", ID: "u1", Roles: []auth.Role{auth.RoleRead}}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	if w.Code != http.StatusForbidden || got != nil {
		t.Fatalf("reader in context: %d", w.Code)
	}
	p.Roles = []auth.Role{auth.RoleApprove}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	if w.Code != http.StatusOK || got != p {
		t.Fatalf("approver in context: %d %v", w.Code, got)
	}
}
