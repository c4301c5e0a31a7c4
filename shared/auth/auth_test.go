package auth_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/auth"
)

// Claim types as App Service Authentication (Entra ID) sends them.
const (
	nameTyp = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
	roleTyp = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
	oidTyp  = "http://schemas.microsoft.com/identity/claims/objectidentifier"

	userOID = "6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
	appOID  = "0a9b8c7d-6e5f-4a3b-9c1d-2e3f4a5b6c7d"
)

type claim struct {
	Typ string `json:"typ"`
	Val string `json:"val"`
}

// principalDoc is the X-MS-CLIENT-PRINCIPAL document App Service injects.
type principalDoc struct {
	AuthTyp string  `json:"auth_typ,omitempty"`
	NameTyp string  `json:"name_typ,omitempty"`
	RoleTyp string  `json:"role_typ,omitempty"`
	Claims  []claim `json:"claims"`
}

// encode is the header value: base64 of the JSON document.
func encode(t testing.TB, d principalDoc) string {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// aad is a principal as Entra ID sends it, with the given extra claims.
func aad(claims ...claim) principalDoc {
	base := []claim{
		{"aud", "api://dsr"},
		{"iss", "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"},
		{nameTyp, "Ann Example"},
		{"preferred_username", "ann@contoso.example"},
	}
	return principalDoc{AuthTyp: "aad", NameTyp: nameTyp, RoleTyp: roleTyp, Claims: append(base, claims...)}
}

func oid(v string) claim  { return claim{oidTyp, v} }
func role(v string) claim { return claim{"roles", v} }

// req builds a request with header pairs.
func req(header ...string) *http.Request {
	r := httptest.NewRequest("GET", "/api/requests", nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	return r
}

func TestAuthenticatePlatform(t *testing.T) {
	platform := &auth.Authenticator{Mode: auth.ModePlatform}
	platformWithKeyRoles := &auth.Authenticator{Mode: auth.ModePlatform, KeyRoles: []auth.Role{auth.RoleSubmit}}
	oversize := base64.StdEncoding.EncodeToString([]byte(`{"auth_typ":"aad","claims":[{"typ":"oid","val":"` + strings.Repeat("a", 20<<10) + `"}]}`))

	cases := []struct {
		name    string
		a       *auth.Authenticator
		header  []string
		want    *auth.Principal
		wantErr error
	}{
		{
			name:   "user with roles",
			a:      platform,
			header: []string{auth.PrincipalHeader, encode(t, aad(oid(userOID), role("DSR.Read"), role("DSR.Submit")))},
			want:   &auth.Principal{Kind: "user", ID: userOID, Name: "Ann Example", Roles: []auth.Role{auth.RoleRead, auth.RoleSubmit}},
		},
		{
			name:   "roles under the role_typ URI",
			a:      platform,
			header: []string{auth.PrincipalHeader, encode(t, aad(oid(userOID), claim{roleTyp, "DSR.Export"}, role("DSR.Read")))},
			want:   &auth.Principal{Kind: "user", ID: userOID, Name: "Ann Example", Roles: []auth.Role{auth.RoleExport, auth.RoleRead}},
		},
		{
			name: "roles under a custom role_typ",
			a:    platform,
			header: []string{auth.PrincipalHeader, encode(t, principalDoc{AuthTyp: "aad", NameTyp: nameTyp, RoleTyp: "approle",
				Claims: []claim{oid(userOID), {"approle", "DSR.Approve"}}})},
			want: &auth.Principal{Kind: "user", ID: userOID, Roles: []auth.Role{auth.RoleApprove}},
		},
		{
			name:   "name header wins over the name claim",
			a:      platform,
			header: []string{auth.PrincipalHeader, encode(t, aad(oid(userOID), role("DSR.Read"))), auth.PrincipalNameHeader, "ann@contoso.example"},
			want:   &auth.Principal{Kind: "user", ID: userOID, Name: "ann@contoso.example", Roles: []auth.Role{auth.RoleRead}},
		},
		{
			name:   "unknown roles ignored",
			a:      platform,
			header: []string{auth.PrincipalHeader, encode(t, aad(oid(userOID), role("Reader"), role("dsr.admin"), role("DSR.Admin "), role("DSR.Read"), role("")))},
			want:   &auth.Principal{Kind: "user", ID: userOID, Name: "Ann Example", Roles: []auth.Role{auth.RoleRead}},
		},
		{
			name:   "duplicates collapsed",
			a:      platform,
			header: []string{auth.PrincipalHeader, encode(t, aad(oid(userOID), role("DSR.Read"), claim{roleTyp, "DSR.Read"}, role("DSR.Read")))},
			want:   &auth.Principal{Kind: "user", ID: userOID, Name: "Ann Example", Roles: []auth.Role{auth.RoleRead}},
		},
		{
			name:   "authenticated without roles",
			a:      platform,
			header: []string{auth.PrincipalHeader, encode(t, aad(oid(userOID)))},
			want:   &auth.Principal{Kind: "user", ID: userOID, Name: "Ann Example"},
		},
		{
			name: "app principal",
			a:    platform,
			header: []string{auth.PrincipalHeader, encode(t, principalDoc{AuthTyp: "aad", NameTyp: nameTyp, RoleTyp: roleTyp,
				Claims: []claim{{"azp", "11111111-2222-3333-4444-555555555555"}, {"idtyp", "app"}, {"oid", appOID}, role("DSR.Submit")}})},
			want: &auth.Principal{Kind: "app", ID: appOID, Roles: []auth.Role{auth.RoleSubmit}},
		},
		{
			name:   "id from the principal id header without an oid claim",
			a:      platform,
			header: []string{auth.PrincipalHeader, encode(t, aad(role("DSR.Read"))), auth.PrincipalIDHeader, userOID},
			want:   &auth.Principal{Kind: "user", ID: userOID, Name: "Ann Example", Roles: []auth.Role{auth.RoleRead}},
		},
		{
			name:   "oid claim wins over the principal id header",
			a:      platform,
			header: []string{auth.PrincipalHeader, encode(t, aad(oid(userOID), role("DSR.Read"))), auth.PrincipalIDHeader, appOID},
			want:   &auth.Principal{Kind: "user", ID: userOID, Name: "Ann Example", Roles: []auth.Role{auth.RoleRead}},
		},
		{
			name:   "unpadded base64 accepted",
			a:      platform,
			header: []string{auth.PrincipalHeader, strings.TrimRight(encode(t, aad(oid(userOID+"x"), role("DSR.Read"))), "=")},
			want:   &auth.Principal{Kind: "user", ID: userOID + "x", Name: "Ann Example", Roles: []auth.Role{auth.RoleRead}},
		},
		{
			name:   "a principal is not narrowed nor widened by the test roles header",
			a:      &auth.Authenticator{Mode: auth.ModePlatform, KeyRoles: []auth.Role{auth.RoleAdmin}, AllowTestRoles: true},
			header: []string{auth.PrincipalHeader, encode(t, aad(oid(userOID), role("DSR.Read"))), auth.TestRolesHeader, "DSR.Admin"},
			want:   &auth.Principal{Kind: "user", ID: userOID, Name: "Ann Example", Roles: []auth.Role{auth.RoleRead}},
		},
		{name: "missing principal", a: platform, wantErr: auth.ErrNoPrincipal},
		{name: "missing principal, only id and name headers", a: platform, header: []string{auth.PrincipalIDHeader, userOID, auth.PrincipalNameHeader, "Ann"}, wantErr: auth.ErrNoPrincipal},
		{
			name: "missing principal with key roles: a key caller",
			a:    platformWithKeyRoles,
			want: &auth.Principal{Kind: "key", ID: "key", Name: "function key", Roles: []auth.Role{auth.RoleSubmit}},
		},
		{name: "not base64", a: platform, header: []string{auth.PrincipalHeader, "{not base64!}"}, wantErr: auth.ErrBadPrincipal},
		{name: "base64 of non-JSON", a: platform, header: []string{auth.PrincipalHeader, base64.StdEncoding.EncodeToString([]byte("roles=DSR.Admin"))}, wantErr: auth.ErrBadPrincipal},
		{name: "base64 of JSON null", a: platform, header: []string{auth.PrincipalHeader, base64.StdEncoding.EncodeToString([]byte("null"))}, wantErr: auth.ErrBadPrincipal},
		{name: "base64 of a JSON array", a: platform, header: []string{auth.PrincipalHeader, base64.StdEncoding.EncodeToString([]byte(`[{"typ":"roles","val":"DSR.Admin"}]`))}, wantErr: auth.ErrBadPrincipal},
		{name: "claim value not a string", a: platform, header: []string{auth.PrincipalHeader, base64.StdEncoding.EncodeToString([]byte(`{"auth_typ":"aad","claims":[{"typ":"oid","val":1}]}`))}, wantErr: auth.ErrBadPrincipal},
		{
			name:    "JSON without auth_typ",
			a:       platform,
			header:  []string{auth.PrincipalHeader, encode(t, principalDoc{Claims: []claim{oid(userOID), role("DSR.Admin")}})},
			wantErr: auth.ErrBadPrincipal,
		},
		{
			name:    "no id at all",
			a:       platform,
			header:  []string{auth.PrincipalHeader, encode(t, aad(role("DSR.Admin")))},
			wantErr: auth.ErrBadPrincipal,
		},
		{
			name:    "malformed principal is refused even with key roles",
			a:       platformWithKeyRoles,
			header:  []string{auth.PrincipalHeader, "garbage"},
			wantErr: auth.ErrBadPrincipal,
		},
		{name: "oversize header", a: platform, header: []string{auth.PrincipalHeader, oversize}, wantErr: auth.ErrBadPrincipal},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := c.a.Authenticate(req(c.header...))
			check(t, p, err, c.want, c.wantErr)
		})
	}
}

func TestAuthenticateKeys(t *testing.T) {
	admin := []auth.Role{auth.RoleAdmin}
	forgedAdmin := encode(t, aad(oid(userOID), role("DSR.Admin")))
	keyAdmin := &auth.Principal{Kind: "key", ID: "key", Name: "function key", Roles: admin}

	cases := []struct {
		name    string
		a       *auth.Authenticator
		header  []string
		want    *auth.Principal
		wantErr error
	}{
		{name: "key caller gets the key roles", a: &auth.Authenticator{Mode: auth.ModeKeys, KeyRoles: admin}, want: keyAdmin},
		{name: "zero mode is keys mode", a: &auth.Authenticator{KeyRoles: admin}, want: keyAdmin},
		{
			name: "no key roles: authenticated, no role",
			a:    &auth.Authenticator{Mode: auth.ModeKeys},
			want: &auth.Principal{Kind: "key", ID: "key", Name: "function key"},
		},
		{
			name:   "valid principal claiming DSR.Admin ignored",
			a:      &auth.Authenticator{Mode: auth.ModeKeys, KeyRoles: []auth.Role{auth.RoleRead}},
			header: []string{auth.PrincipalHeader, forgedAdmin, auth.PrincipalIDHeader, userOID, auth.PrincipalNameHeader, "Ann"},
			want:   &auth.Principal{Kind: "key", ID: "key", Name: "function key", Roles: []auth.Role{auth.RoleRead}},
		},
		{
			name:   "valid principal ignored without key roles",
			a:      &auth.Authenticator{Mode: auth.ModeKeys},
			header: []string{auth.PrincipalHeader, forgedAdmin},
			want:   &auth.Principal{Kind: "key", ID: "key", Name: "function key"},
		},
		{
			name:   "malformed principal ignored",
			a:      &auth.Authenticator{Mode: auth.ModeKeys, KeyRoles: admin},
			header: []string{auth.PrincipalHeader, "%%%"},
			want:   keyAdmin,
		},
		{
			name:    "test roles refused when not enabled",
			a:       &auth.Authenticator{Mode: auth.ModeKeys, KeyRoles: admin},
			header:  []string{auth.TestRolesHeader, "DSR.Read"},
			wantErr: auth.ErrTestRolesOff,
		},
		{
			name:   "test roles narrow",
			a:      &auth.Authenticator{Mode: auth.ModeKeys, KeyRoles: admin, AllowTestRoles: true},
			header: []string{auth.TestRolesHeader, "DSR.Read"},
			want:   &auth.Principal{Kind: "key", ID: "key:DSR.Read", Name: "function key", Roles: []auth.Role{auth.RoleRead}},
		},
		{
			name:   "test roles: set in canonical order, duplicates and blanks dropped",
			a:      &auth.Authenticator{Mode: auth.ModeKeys, KeyRoles: admin, AllowTestRoles: true},
			header: []string{auth.TestRolesHeader, " DSR.Approve ,DSR.Submit,,DSR.Approve"},
			want:   &auth.Principal{Kind: "key", ID: "key:DSR.Submit,DSR.Approve", Name: "function key", Roles: []auth.Role{auth.RoleSubmit, auth.RoleApprove}},
		},
		{
			name:   "test roles: an empty list narrows to no role",
			a:      &auth.Authenticator{Mode: auth.ModeKeys, KeyRoles: admin, AllowTestRoles: true},
			header: []string{auth.TestRolesHeader, ","},
			want:   &auth.Principal{Kind: "key", ID: "key:", Name: "function key", Roles: []auth.Role{}},
		},
		{
			name:   "test roles with a forged principal: the principal is still ignored",
			a:      &auth.Authenticator{Mode: auth.ModeKeys, KeyRoles: admin, AllowTestRoles: true},
			header: []string{auth.TestRolesHeader, "DSR.Submit", auth.PrincipalHeader, forgedAdmin},
			want:   &auth.Principal{Kind: "key", ID: "key:DSR.Submit", Name: "function key", Roles: []auth.Role{auth.RoleSubmit}},
		},
		{
			name:    "test roles: unknown role",
			a:       &auth.Authenticator{Mode: auth.ModeKeys, KeyRoles: admin, AllowTestRoles: true},
			header:  []string{auth.TestRolesHeader, "DSR.Read,DSR.Root"},
			wantErr: auth.ErrBadTestRoleList,
		},
		{
			name:    "test roles cannot widen the key roles",
			a:       &auth.Authenticator{Mode: auth.ModeKeys, KeyRoles: []auth.Role{auth.RoleRead}, AllowTestRoles: true},
			header:  []string{auth.TestRolesHeader, "DSR.Admin"},
			wantErr: auth.ErrTestRolesWiden,
		},
		{
			name:    "test roles cannot grant roles to a key without any",
			a:       &auth.Authenticator{Mode: auth.ModeKeys, AllowTestRoles: true},
			header:  []string{auth.TestRolesHeader, "DSR.Submit"},
			wantErr: auth.ErrTestRolesWiden,
		},
		{
			name:   "test roles within the key roles",
			a:      &auth.Authenticator{Mode: auth.ModeKeys, KeyRoles: []auth.Role{auth.RoleRead, auth.RoleSubmit}, AllowTestRoles: true},
			header: []string{auth.TestRolesHeader, "DSR.Submit"},
			want:   &auth.Principal{Kind: "key", ID: "key:DSR.Submit", Name: "function key", Roles: []auth.Role{auth.RoleSubmit}},
		},
		{
			name:   "platform mode key caller narrows too",
			a:      &auth.Authenticator{Mode: auth.ModePlatform, KeyRoles: admin, AllowTestRoles: true},
			header: []string{auth.TestRolesHeader, "DSR.Export"},
			want:   &auth.Principal{Kind: "key", ID: "key:DSR.Export", Name: "function key", Roles: []auth.Role{auth.RoleExport}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := c.a.Authenticate(req(c.header...))
			check(t, p, err, c.want, c.wantErr)
		})
	}
}

// An empty test roles header is a narrowing to no role, never "all the key's
// roles", and it is refused when test roles are off.
func TestEmptyTestRolesHeader(t *testing.T) {
	r := req()
	r.Header[http.CanonicalHeaderKey(auth.TestRolesHeader)] = []string{""}
	p, err := (&auth.Authenticator{Mode: auth.ModeKeys, KeyRoles: []auth.Role{auth.RoleAdmin}, AllowTestRoles: true}).Authenticate(r)
	if err != nil || len(p.Roles) != 0 || p.Has(auth.RoleRead) {
		t.Errorf("empty test roles header: %+v, %v; want no role", p, err)
	}
	if _, err := (&auth.Authenticator{Mode: auth.ModeKeys, KeyRoles: []auth.Role{auth.RoleAdmin}}).Authenticate(r); !errors.Is(err, auth.ErrTestRolesOff) {
		t.Errorf("empty test roles header with test roles off: %v, want ErrTestRolesOff", err)
	}
}

// The key roles of the authenticator are not shared with the principals it
// returns.
func TestKeyRolesNotAliased(t *testing.T) {
	a := &auth.Authenticator{Mode: auth.ModeKeys, KeyRoles: []auth.Role{auth.RoleRead}}
	p, err := a.Authenticate(req())
	if err != nil {
		t.Fatal(err)
	}
	p.Roles[0] = auth.RoleAdmin
	if a.KeyRoles[0] != auth.RoleRead {
		t.Fatalf("changing a principal's roles changed the key roles: %v", a.KeyRoles)
	}
}

func check(t *testing.T, p *auth.Principal, err error, want *auth.Principal, wantErr error) {
	t.Helper()
	if wantErr != nil {
		if !errors.Is(err, wantErr) || p != nil {
			t.Fatalf("got %+v, %v; want error %v", p, err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error %v", err)
	}
	if p.Kind != want.Kind || p.ID != want.ID || p.Name != want.Name || !slices.Equal(p.Roles, want.Roles) {
		t.Fatalf("got %+v, want %+v", *p, *want)
	}
}

func TestParseRoles(t *testing.T) {
	cases := []struct {
		in      string
		want    []auth.Role
		wantErr bool
	}{
		{"", nil, false},
		{" , ,", nil, false},
		{"DSR.Submit", []auth.Role{auth.RoleSubmit}, false},
		{"DSR.Read, DSR.Export ,DSR.Read", []auth.Role{auth.RoleRead, auth.RoleExport}, false},
		{"DSR.Submit,DSR.Read,DSR.Approve,DSR.Export,DSR.Admin", auth.AllRoles, false},
		{"DSR.Admin,Admin", nil, true},
		{"dsr.read", nil, true},
		{"DSR.Read;DSR.Export", nil, true},
	}
	for _, c := range cases {
		got, err := auth.ParseRoles(c.in)
		if (err != nil) != c.wantErr || !slices.Equal(got, c.want) {
			t.Errorf("ParseRoles(%q) = %v, %v; want %v, error %v", c.in, got, err, c.want, c.wantErr)
		}
	}
}

func TestHas(t *testing.T) {
	var nobody *auth.Principal
	for _, r := range auth.AllRoles {
		if nobody.Has(r) {
			t.Errorf("nil principal has %s", r)
		}
		if (&auth.Principal{}).Has(r) {
			t.Errorf("principal without roles has %s", r)
		}
		if !(&auth.Principal{Roles: []auth.Role{auth.RoleAdmin}}).Has(r) {
			t.Errorf("DSR.Admin does not imply %s", r)
		}
	}
	p := &auth.Principal{Roles: []auth.Role{auth.RoleSubmit, auth.RoleExport}}
	for r, want := range map[auth.Role]bool{auth.RoleSubmit: true, auth.RoleExport: true, auth.RoleRead: false, auth.RoleApprove: false, auth.RoleAdmin: false} {
		if p.Has(r) != want {
			t.Errorf("Submit+Export principal: Has(%s) = %v", r, !want)
		}
	}
}

func TestRef(t *testing.T) {
	a := &auth.Principal{Kind: "user", ID: userOID, Name: "Ann", Roles: []auth.Role{auth.RoleRead}}
	same := &auth.Principal{Kind: "user", ID: userOID, Name: "Ann renamed", Roles: []auth.Role{auth.RoleAdmin}}
	if a.Ref() != a.Ref() || a.Ref() != same.Ref() {
		t.Error("Ref is not stable for one kind and id (it must not depend on name or roles)")
	}
	if strings.Contains(a.Ref(), userOID) || strings.Contains(a.Ref(), "Ann") {
		t.Error("Ref reveals the id or name")
	}
	others := []*auth.Principal{
		{Kind: "app", ID: userOID},
		{Kind: "user", ID: appOID},
		{Kind: "key", ID: "key"},
		{Kind: "key", ID: "key:DSR.Submit"},
		{Kind: "key", ID: "key:DSR.Submit,DSR.Approve"},
		{Kind: "user", ID: "key:DSR.Submit"},
	}
	seen := map[string]bool{a.Ref(): true}
	for _, o := range others {
		if seen[o.Ref()] {
			t.Errorf("Ref of %s/%s collides", o.Kind, o.ID)
		}
		seen[o.Ref()] = true
	}
}

func TestPrincipalContext(t *testing.T) {
	r := req()
	if auth.FromContext(r.Context()) != nil {
		t.Fatal("principal in a fresh context")
	}
	p := &auth.Principal{Kind: "user", ID: userOID}
	if got := auth.FromContext(auth.WithPrincipal(r.Context(), p)); got != p {
		t.Fatalf("FromContext = %v", got)
	}
}
