package functions_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/functions"
	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/problem"
)

// Test role sets of the callers of the matrix. Key callers narrowed by
// X-DSR-Test-Roles are identified by their role set, so "DSR.Submit" and
// "DSR.Submit,DSR.Approve" are two different submitters.
const (
	authzSubmit      = "DSR.Submit"
	authzOtherSubmit = "DSR.Submit,DSR.Approve"
	authzNoRole      = "," // a header naming no role narrows to none
)

// authzRoles are the callers of the matrix: one per role, and one without.
var authzRoles = []struct{ name, header string }{
	{"DSR.Submit", "DSR.Submit"},
	{"DSR.Read", "DSR.Read"},
	{"DSR.Approve", "DSR.Approve"},
	{"DSR.Export", "DSR.Export"},
	{"DSR.Admin", "DSR.Admin"},
	{"no role", authzNoRole},
}

// authzAs sends a request as a key caller narrowed to roles.
func (h *harness) authzAs(roles, method, path, body string, header ...string) (*http.Response, []byte) {
	h.t.Helper()
	return h.do(method, path, body, append([]string{auth.TestRolesHeader, roles}, header...)...)
}

// authzList lists every request a caller sees.
func (h *harness) authzList(header ...string) []string {
	h.t.Helper()
	resp, b := h.do("GET", "/api/requests?limit=200", "", header...)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("GET /api/requests: %d %s", resp.StatusCode, b)
	}
	var page struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
		Next string `json:"nextPageToken"`
	}
	if err := json.Unmarshal(b, &page); err != nil || page.Next != "" {
		h.t.Fatalf("listing %s: %v (one page expected)", b, err)
	}
	ids := []string{}
	for _, it := range page.Items {
		ids = append(ids, it.ID)
	}
	return ids
}

// authzDenied checks a 403 problem document.
func authzDenied(t *testing.T, what string, resp *http.Response, b []byte) {
	t.Helper()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("%s: %d %s, want 403", what, resp.StatusCode, b)
		return
	}
	var pd problem.Details
	if ct := resp.Header.Get("Content-Type"); ct != problem.ContentType || json.Unmarshal(b, &pd) != nil || pd.Status != 403 || pd.Code != "forbidden" || !strings.Contains(pd.Detail, "DSR.") {
		t.Errorf("%s: 403 is not a problem document naming the roles: %s %s", what, ct, b)
	}
}

// authzCode is a problem document's code.
func authzCode(b []byte) string {
	var pd problem.Details
	_ = json.Unmarshal(b, &pd)
	return pd.Code
}

// authzComplete runs a submitted access request through discovery and
// export (the harness is manual: its queues are the test's to deliver).
func (h *harness) authzComplete(id string) {
	h.t.Helper()
	h.deliver("discover")
	h.deliver("export")
	if doc, _ := h.get(id); doc.State != "completed" {
		h.t.Fatalf("request %s is %s/%s, want completed", id, doc.Stage, doc.State)
	}
}

// Every HTTP endpoint × every role, in keys mode with test roles: allowed
// callers get their answer (never 401/403), the others a 403 problem
// document; DSR.Submit callers see only their own requests.
func TestRoleMatrix(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true, env: noRepeatFlagging})

	adminReq := h.submit(demoAccess, auth.TestRolesHeader, "DSR.Admin").ID
	h.authzComplete(adminReq)
	ownReq := h.submit(demoAccess, auth.TestRolesHeader, authzSubmit).ID
	h.authzComplete(ownReq)
	otherReq := h.submit(demoAccess, auth.TestRolesHeader, authzOtherSubmit).ID // left in progress

	created := map[string][]string{"DSR.Admin": {adminReq}, "DSR.Submit": {ownReq}}
	all := func(s int) map[string]int {
		m := map[string]int{}
		for _, r := range authzRoles {
			m[r.name] = s
		}
		return m
	}
	cases := []struct {
		name         string
		method, path string
		body         string
		allowed      map[string]int // role → status; roles not named get 403
	}{
		{"create", "POST", "/api/requests", demoAccess, map[string]int{"DSR.Submit": 202, "DSR.Admin": 202}},
		{"get own request", "GET", "/api/requests/" + ownReq, "", map[string]int{"DSR.Submit": 200, "DSR.Read": 200, "DSR.Admin": 200}},
		{"get another's completed request", "GET", "/api/requests/" + adminReq, "", map[string]int{"DSR.Submit": 404, "DSR.Read": 200, "DSR.Admin": 200}},
		{"get another submitter's request", "GET", "/api/requests/" + otherReq, "", map[string]int{"DSR.Submit": 404, "DSR.Read": 200, "DSR.Admin": 200}},
		{"get unknown request", "GET", "/api/requests/r000000000000aaaaaaaaaaaaaaaa", "", map[string]int{"DSR.Submit": 404, "DSR.Read": 404, "DSR.Admin": 404}},
		{"list", "GET", "/api/requests", "", map[string]int{"DSR.Submit": 200, "DSR.Read": 200, "DSR.Admin": 200}},
		{"export link of a completed request", "POST", "/api/requests/" + adminReq + "/export-link", "", map[string]int{"DSR.Export": 200, "DSR.Admin": 200}},
		{"export link of one's own completed request", "POST", "/api/requests/" + ownReq + "/export-link", "", map[string]int{"DSR.Export": 200, "DSR.Admin": 200}},
		{"export link of an unfinished request", "POST", "/api/requests/" + otherReq + "/export-link", "", map[string]int{"DSR.Export": 409, "DSR.Admin": 409}},
		{"health", "GET", "/api/health", "", all(200)},
		{"audit trail", "GET", "/api/requests/" + adminReq + "/audit", "", map[string]int{"DSR.Read": 200, "DSR.Admin": 200}},
		{"letter of a completed request", "GET", "/api/requests/" + adminReq + "/letter", "", map[string]int{"DSR.Submit": 404, "DSR.Read": 200, "DSR.Admin": 200}},
		{"letter of one's own completed request", "GET", "/api/requests/" + ownReq + "/letter", "", map[string]int{"DSR.Submit": 200, "DSR.Read": 200, "DSR.Admin": 200}},
		{"letter of an unfinished request", "GET", "/api/requests/" + otherReq + "/letter", "", map[string]int{"DSR.Submit": 404, "DSR.Read": 409, "DSR.Admin": 409}},
		{"cancel an ended request", "POST", "/api/requests/" + adminReq + "/cancel", `{"reason":"duplicate"}`, map[string]int{"DSR.Approve": 409, "DSR.Admin": 409}},
		{"re-drive a request that did not fail", "POST", "/api/requests/" + adminReq + "/redrive", "", map[string]int{"DSR.Approve": 409, "DSR.Admin": 409}},
		{"extend an ended request", "POST", "/api/requests/" + adminReq + "/extend", `{"months":1,"reason":"complex"}`, map[string]int{"DSR.Approve": 409, "DSR.Admin": 409}},
	}
	for _, c := range cases {
		for _, r := range authzRoles {
			what := c.name + " as " + r.name
			resp, b := h.authzAs(r.header, c.method, c.path, c.body)
			want, ok := c.allowed[r.name]
			if !ok {
				authzDenied(t, what, resp, b)
				continue
			}
			if resp.StatusCode != want {
				t.Errorf("%s: %d %s, want %d", what, resp.StatusCode, b, want)
			}
			if c.method == "POST" && c.path == "/api/requests" && resp.StatusCode == 202 {
				var doc struct{ ID string }
				_ = json.Unmarshal(b, &doc)
				created[r.name] = append(created[r.name], doc.ID)
			}
		}
	}

	// The other submitter sees its own request and not the first one's.
	if resp, b := h.authzAs(authzOtherSubmit, "GET", "/api/requests/"+otherReq, ""); resp.StatusCode != 200 {
		t.Errorf("other submitter, own request: %d %s", resp.StatusCode, b)
	}
	if resp, b := h.authzAs(authzOtherSubmit, "GET", "/api/requests/"+ownReq, ""); resp.StatusCode != 404 || authzCode(b) != "request-not-found" {
		t.Errorf("other submitter, first submitter's request: %d %s, want 404", resp.StatusCode, b)
	}
	// The role set is the caller, whatever the order it is written in.
	if resp, b := h.authzAs("DSR.Approve, DSR.Submit", "GET", "/api/requests/"+otherReq, ""); resp.StatusCode != 200 {
		t.Errorf("other submitter writing its roles in another order: %d %s", resp.StatusCode, b)
	}

	// Listings: a submitter lists exactly its own requests; DSR.Read and
	// DSR.Admin list everyone's.
	everyone := []string{otherReq}
	for _, ids := range created {
		everyone = append(everyone, ids...)
	}
	for _, c := range []struct {
		roles string
		want  []string
	}{
		{authzSubmit, created["DSR.Submit"]},
		{authzOtherSubmit, []string{otherReq}},
		{"DSR.Read", everyone},
		{"DSR.Admin", everyone},
		{"DSR.Read,DSR.Submit", everyone},
	} {
		got := h.authzList(auth.TestRolesHeader, c.roles)
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s lists %v, want %v", c.roles, got, want)
		}
	}
}

// Export URLs appear in request documents only for DSR.Export (with a role
// that may read the document) and DSR.Admin; size and digest are there for
// every reader.
func TestExportURLOnlyForExportRole(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true, env: noRepeatFlagging})
	adminReq := h.submit(demoAccess, auth.TestRolesHeader, "DSR.Admin").ID
	h.authzComplete(adminReq)
	ownReq := h.submit(demoAccess, auth.TestRolesHeader, authzSubmit).ID
	h.authzComplete(ownReq)
	exporterReq := h.submit(demoAccess, auth.TestRolesHeader, "DSR.Submit,DSR.Export").ID
	h.authzComplete(exporterReq)

	for _, c := range []struct {
		roles   string
		id      string
		withURL bool
	}{
		{"DSR.Admin", adminReq, true},
		{"DSR.Read,DSR.Export", adminReq, true},
		{"DSR.Submit,DSR.Export", exporterReq, true},
		{"DSR.Read", adminReq, false},
		{"DSR.Read", ownReq, false},
		{authzSubmit, ownReq, false},
		{"DSR.Submit,DSR.Approve,DSR.Read", adminReq, false},
	} {
		resp, b := h.authzAs(c.roles, "GET", "/api/requests/"+c.id, "")
		if resp.StatusCode != 200 {
			t.Errorf("%s GET %s: %d %s", c.roles, c.id, resp.StatusCode, b)
			continue
		}
		var doc struct {
			Export *exportDoc `json:"export"`
		}
		if err := json.Unmarshal(b, &doc); err != nil || doc.Export == nil {
			t.Errorf("%s: completed request without export: %s", c.roles, b)
			continue
		}
		if doc.Export.Bytes <= 0 || len(doc.Export.SHA256) != 64 {
			t.Errorf("%s: export without size or digest: %s", c.roles, b)
		}
		if c.withURL {
			if doc.Export.URL == "" || doc.Export.ExpiresAt.IsZero() {
				t.Errorf("%s: no export url: %s", c.roles, b)
				continue
			}
			if status, zip, _ := download(t, doc.Export.URL); status != 200 || int64(len(zip)) != doc.Export.Bytes {
				t.Errorf("%s: export url answers %d with %d bytes, want 200 with %d", c.roles, status, len(zip), doc.Export.Bytes)
			}
		} else if doc.Export.URL != "" || strings.Contains(string(b), `"url"`) || strings.Contains(string(b), "sig=") || strings.Contains(string(b), "expiresAt") {
			t.Errorf("%s sees an export link: %s", c.roles, b)
		}
	}

	// The create answer follows the same rule (a replay of a completed
	// request shows its export).
	for _, c := range []struct {
		roles   string
		withURL bool
	}{{"DSR.Submit", false}, {"DSR.Submit,DSR.Export", true}} {
		key := "authz-" + strings.ReplaceAll(c.roles, ",", "-")
		first := h.submit(demoAccess, auth.TestRolesHeader, c.roles, "Idempotency-Key", key)
		h.authzComplete(first.ID)
		resp, b := h.authzAs(c.roles, "POST", "/api/requests", demoAccess, "Idempotency-Key", key)
		if resp.StatusCode != 202 || resp.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("%s replay: %d %s", c.roles, resp.StatusCode, b)
		}
		if got := strings.Contains(string(b), `"url"`); got != c.withURL || !strings.Contains(string(b), `"sha256"`) {
			t.Errorf("%s: replayed create answer with url %v, want %v: %s", c.roles, got, c.withURL, b)
		}
	}
}

// Idempotency keys are scoped to the caller: one key from two callers is two
// requests, and neither replay reveals the other's.
func TestIdempotencyKeyScopedToCaller(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	a := h.submit(demoAccess, auth.TestRolesHeader, authzSubmit, "Idempotency-Key", "shared-key")
	b := h.submit(demoAccess, auth.TestRolesHeader, authzOtherSubmit, "Idempotency-Key", "shared-key")
	if a.ID == b.ID {
		t.Fatalf("two callers with one idempotency key share request %s", a.ID)
	}
	again := h.submit(demoAccess, auth.TestRolesHeader, authzSubmit, "Idempotency-Key", "shared-key")
	if again.ID != a.ID {
		t.Fatalf("replay by the same caller: %s, want %s", again.ID, a.ID)
	}
}

// The host refuses every keyed function without the key, before any role
// check; health needs no key.
func TestFunctionKeyRequired(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	id := h.submit(demoAccess).ID
	endpoints := []struct{ method, path, body string }{
		{"POST", "/api/requests", demoAccess},
		{"GET", "/api/requests/" + id, ""},
		{"GET", "/api/requests", ""},
		{"POST", "/api/requests/" + id + "/export-link", ""},
	}
	for _, e := range endpoints {
		for _, key := range []string{"", "wrong-key", harnessKey[:len(harnessKey)-1]} {
			resp, b := h.do(e.method, e.path, e.body, "x-functions-key", key, auth.TestRolesHeader, "DSR.Admin")
			if resp.StatusCode != 401 || authzCode(b) != "function-key-required" {
				t.Errorf("%s %s with key %q: %d %s, want 401 function-key-required", e.method, e.path, key, resp.StatusCode, b)
			}
		}
		// The key in the code query parameter is accepted.
		sep := "?"
		if strings.Contains(e.path, "?") {
			sep = "&"
		}
		resp, b := h.do(e.method, e.path+sep+"code="+harnessKey, e.body, "x-functions-key", "")
		if resp.StatusCode == 401 || resp.StatusCode == 403 || resp.StatusCode >= 500 {
			t.Errorf("%s %s with ?code=: %d %s", e.method, e.path, resp.StatusCode, b)
		}
	}
	if resp, b := h.do("GET", "/api/health", "", "x-functions-key", ""); resp.StatusCode != 200 {
		t.Errorf("health without a key: %d %s", resp.StatusCode, b)
	}
	if resp, b := h.do("GET", "/api/health", "", "x-functions-key", "wrong-key"); resp.StatusCode != 200 {
		t.Errorf("health with a wrong key: %d %s", resp.StatusCode, b)
	}
}

// authzPrincipal is an X-MS-CLIENT-PRINCIPAL as App Service Authentication
// (Entra ID) injects it.
func authzPrincipal(t *testing.T, oid string, roles ...string) string {
	t.Helper()
	type claim struct {
		Typ string `json:"typ"`
		Val string `json:"val"`
	}
	doc := struct {
		AuthTyp string  `json:"auth_typ"`
		NameTyp string  `json:"name_typ"`
		RoleTyp string  `json:"role_typ"`
		Claims  []claim `json:"claims"`
	}{
		AuthTyp: "aad",
		NameTyp: "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
		RoleTyp: "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
		Claims: []claim{
			{"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "Ann Example"},
			{"http://schemas.microsoft.com/identity/claims/objectidentifier", oid},
		},
	}
	for i, r := range roles {
		typ := "roles"
		if i%2 == 1 {
			typ = doc.RoleTyp
		}
		doc.Claims = append(doc.Claims, claim{typ, r})
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

const (
	authzUserA = "11111111-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
	authzUserB = "22222222-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
)

// In platform mode the platform's principal says who calls and with which
// roles; without one (and no key roles) the caller is 401, and a malformed
// one is 401 too. The function key is still required.
func TestPlatformMode(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true, env: map[string]string{"DSR_AUTH_MODE": "platform", "DSR_KEY_ROLES": "", "DSR_ALLOW_TEST_ROLES": "false"}})
	if h.cfg.AuthMode != "platform" || h.cfg.KeyRoles != "" || h.cfg.AllowTestRoles {
		t.Fatalf("harness settings: %+v", h.cfg)
	}
	as := func(oid string, roles ...string) []string {
		return []string{auth.PrincipalHeader, authzPrincipal(t, oid, roles...)}
	}
	post := func(header []string) string {
		t.Helper()
		resp, b := h.do("POST", "/api/requests", demoAccess, header...)
		if resp.StatusCode != 202 {
			t.Fatalf("POST as %v: %d %s", header, resp.StatusCode, b)
		}
		var doc struct{ ID string }
		_ = json.Unmarshal(b, &doc)
		return doc.ID
	}

	aReq := post(as(authzUserA, "DSR.Submit"))
	bReq := post(as(authzUserB, "DSR.Submit"))
	adminReq := post(as(authzUserB, "DSR.Admin"))

	for _, c := range []struct {
		name         string
		method, path string
		header       []string
		status       int
	}{
		{"submitter reads own", "GET", "/api/requests/" + aReq, as(authzUserA, "DSR.Submit"), 200},
		{"submitter cannot read another's", "GET", "/api/requests/" + bReq, as(authzUserA, "DSR.Submit"), 404},
		{"submitter cannot mint links", "POST", "/api/requests/" + aReq + "/export-link", as(authzUserA, "DSR.Submit"), 403},
		{"reader reads any", "GET", "/api/requests/" + bReq, as(authzUserA, "DSR.Read"), 200},
		{"reader cannot submit", "POST", "/api/requests", as(authzUserA, "DSR.Read"), 403},
		{"exporter: unfinished export", "POST", "/api/requests/" + aReq + "/export-link", as(authzUserA, "DSR.Export"), 409},
		{"admin reads any", "GET", "/api/requests/" + aReq, as(authzUserB, "DSR.Admin"), 200},
		{"authenticated without roles", "GET", "/api/requests", as(authzUserA), 403},
		{"unknown roles give nothing", "GET", "/api/requests", as(authzUserA, "Admin", "dsr.admin"), 403},
		{"approver has no endpoint", "GET", "/api/requests", as(authzUserA, "DSR.Approve"), 403},
		{"missing principal", "GET", "/api/requests", nil, 401},
		{"missing principal, id and name headers only", "GET", "/api/requests/" + aReq, []string{auth.PrincipalIDHeader, authzUserA, auth.PrincipalNameHeader, "Ann"}, 401},
		{"malformed principal: not base64", "GET", "/api/requests", []string{auth.PrincipalHeader, "{\"auth_typ\":\"aad\"}"}, 401},
		{"malformed principal: not JSON", "GET", "/api/requests", []string{auth.PrincipalHeader, base64.StdEncoding.EncodeToString([]byte("roles=DSR.Admin"))}, 401},
		{"forged principal without auth_typ", "GET", "/api/requests", []string{auth.PrincipalHeader, base64.StdEncoding.EncodeToString([]byte(`{"claims":[{"typ":"roles","val":"DSR.Admin"},{"typ":"oid","val":"x"}]}`))}, 401},
		{"test roles are no principal", "GET", "/api/requests", []string{auth.TestRolesHeader, "DSR.Admin"}, 401},
		{"health without a principal", "GET", "/api/health", nil, 200},
	} {
		body := ""
		if c.method == "POST" && c.path == "/api/requests" {
			body = demoAccess
		}
		resp, b := h.do(c.method, c.path, body, c.header...)
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, b, c.status)
			continue
		}
		switch c.status {
		case 401:
			if authzCode(b) != "unauthenticated" || resp.Header.Get("WWW-Authenticate") == "" || resp.Header.Get("Content-Type") != problem.ContentType {
				t.Errorf("%s: 401 is not the handler's problem document with WWW-Authenticate: %v %s", c.name, resp.Header, b)
			}
		case 403:
			authzDenied(t, c.name, resp, b)
		}
		if strings.Contains(string(b), "Ann Example") {
			t.Errorf("%s: the answer names the caller: %s", c.name, b)
		}
	}

	// Listings follow the principal: user A lists its own only.
	got := h.authzList(as(authzUserA, "DSR.Submit")...)
	if !slices.Equal(got, []string{aReq}) {
		t.Errorf("user A lists %v, want [%s]", got, aReq)
	}
	got = h.authzList(as(authzUserA, "DSR.Read")...)
	slices.Sort(got)
	want := []string{aReq, bReq, adminReq}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("reader lists %v, want %v", got, want)
	}

	// The host still wants its key, principal or not.
	if resp, b := h.do("GET", "/api/requests", "", append(as(authzUserA, "DSR.Admin"), "x-functions-key", "")...); resp.StatusCode != 401 || authzCode(b) != "function-key-required" {
		t.Errorf("platform principal without a function key: %d %s", resp.StatusCode, b)
	}
}

// In keys mode a principal header from the network is ignored: a caller
// narrowed to DSR.Submit stays a submitter even with a well-formed principal
// claiming DSR.Admin.
func TestKeysModeIgnoresForgedPrincipal(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	adminReq := h.submit(demoAccess).ID
	forged := []string{
		auth.TestRolesHeader, authzSubmit,
		auth.PrincipalHeader, authzPrincipal(t, authzUserA, "DSR.Admin", "DSR.Read", "DSR.Export"),
		auth.PrincipalIDHeader, authzUserA,
		auth.PrincipalNameHeader, "Ann Example",
	}
	if resp, b := h.do("GET", "/api/requests/"+adminReq, "", forged...); resp.StatusCode != 404 {
		t.Errorf("forged admin reads another's request: %d %s, want 404", resp.StatusCode, b)
	}
	if resp, b := h.do("POST", "/api/requests/"+adminReq+"/export-link", "", forged...); resp.StatusCode != 403 {
		t.Errorf("forged admin mints an export link: %d %s, want 403", resp.StatusCode, b)
	}
	if got := h.authzList(forged...); len(got) != 0 {
		t.Errorf("forged admin lists %v, want nothing", got)
	}
	// Its own request is the one of the key caller narrowed to DSR.Submit,
	// whatever principal it claims.
	resp, b := h.do("POST", "/api/requests", demoAccess, forged...)
	if resp.StatusCode != 202 {
		t.Fatalf("submit: %d %s", resp.StatusCode, b)
	}
	var doc struct{ ID string }
	_ = json.Unmarshal(b, &doc)
	if resp, b := h.authzAs(authzSubmit, "GET", "/api/requests/"+doc.ID, ""); resp.StatusCode != 200 {
		t.Errorf("the same key caller without the forged principal: %d %s", resp.StatusCode, b)
	}
}

// With the default key roles (none) and test roles off, a key caller may do
// nothing but health, whatever principal it forges, and it cannot give
// itself roles with the test roles header.
func TestKeysModeWithoutKeyRoles(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true, env: map[string]string{"DSR_KEY_ROLES": "", "DSR_ALLOW_TEST_ROLES": "false"}})
	forged := []string{auth.PrincipalHeader, authzPrincipal(t, authzUserA, "DSR.Admin")}
	for _, e := range []struct{ method, path, body string }{
		{"POST", "/api/requests", demoAccess},
		{"GET", "/api/requests/r000000000000aaaaaaaaaaaaaaaa", ""},
		{"GET", "/api/requests", ""},
		{"POST", "/api/requests/r000000000000aaaaaaaaaaaaaaaa/export-link", ""},
	} {
		resp, b := h.do(e.method, e.path, e.body, forged...)
		authzDenied(t, e.method+" "+e.path+" with a forged principal", resp, b)
		resp, b = h.do(e.method, e.path, e.body, auth.TestRolesHeader, "DSR.Admin")
		if resp.StatusCode != 401 || authzCode(b) != "unauthenticated" {
			t.Errorf("%s %s with test roles off: %d %s, want 401", e.method, e.path, resp.StatusCode, b)
		}
	}
	if resp, b := h.do("GET", "/api/health", ""); resp.StatusCode != 200 {
		t.Errorf("health: %d %s", resp.StatusCode, b)
	}
}

// Test roles narrow the key's roles and never widen them.
func TestTestRolesOnlyNarrow(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true, env: map[string]string{"DSR_KEY_ROLES": "DSR.Submit"}})
	if resp, b := h.do("GET", "/api/requests", ""); resp.StatusCode != 200 {
		t.Fatalf("submit key lists: %d %s", resp.StatusCode, b)
	}
	for _, roles := range []string{"DSR.Admin", "DSR.Read", "DSR.Submit,DSR.Export"} {
		resp, b := h.authzAs(roles, "GET", "/api/requests", "")
		if resp.StatusCode != 401 || authzCode(b) != "unauthenticated" {
			t.Errorf("key with DSR.Submit asking for %s: %d %s, want 401", roles, resp.StatusCode, b)
		}
	}
	resp, b := h.authzAs(authzNoRole, "GET", "/api/requests", "")
	authzDenied(t, "key narrowed to no role", resp, b)
}

// Policies is the one table of who may call what: every HTTP function has
// a policy, every policy a function, and exactly health and the webhook
// callback (which checks each delivery's signature) are anonymous; every
// other function.json asks the host for a function key.
func TestPoliciesCoverEveryHTTPFunction(t *testing.T) {
	fns, err := functions.Definitions()
	if err != nil {
		t.Fatal(err)
	}
	httpFns := map[string]bool{}
	for _, f := range fns {
		tr := f.Trigger()
		if tr.Type != funchost.HTTPTrigger {
			if _, ok := functions.Policies[f.Name]; ok {
				t.Errorf("%s is not an HTTP function but has a policy", f.Name)
			}
			continue
		}
		httpFns[f.Name] = true
		p, ok := functions.Policies[f.Name]
		if !ok {
			t.Errorf("HTTP function %s has no policy", f.Name)
			continue
		}
		if f.Name == "health" || f.Name == "openapi" || f.Name == "webhook-callback" || f.Name == "portal" || f.Name == "transmit-key" {
			if !p.Anonymous || tr.AuthLevel != "anonymous" {
				t.Errorf("%s: policy %+v, authLevel %q; want anonymous", f.Name, p, tr.AuthLevel)
			}
			continue
		}
		if f.Name == "console" {
			// A browser holds no key: the console signs people in itself.
			if !p.Browser || p.Anonymous || tr.AuthLevel != "anonymous" {
				t.Errorf("console: policy %+v, authLevel %q; want a browser function, anonymous at the host", p, tr.AuthLevel)
			}
			continue
		}
		if tr.AuthLevel != "function" {
			t.Errorf("%s: authLevel %q, want function", f.Name, tr.AuthLevel)
		}
		if p.Anonymous || (len(p.Any) == 0 && p.Own == "") {
			t.Errorf("%s: policy %+v must name roles", f.Name, p)
		}
		for _, r := range append(slices.Clone(p.Any), p.Own) {
			if r == "" {
				continue
			}
			if _, err := auth.ParseRoles(string(r)); err != nil {
				t.Errorf("%s: unknown role %q", f.Name, r)
			}
		}
	}
	for name := range functions.Policies {
		if !httpFns[name] {
			t.Errorf("policy for %s, which is no HTTP function", name)
		}
	}
	for _, name := range []string{"requests-create", "requests-get", "requests-list", "export-link", "health"} {
		if !httpFns[name] {
			t.Errorf("HTTP function %s missing", name)
		}
	}
}
