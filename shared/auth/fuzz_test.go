package auth_test

import (
	"encoding/base64"
	"reflect"
	"testing"

	"github.com/dsr-functions/dsr/shared/auth"
)

// FuzzAuthenticate feeds arbitrary principal, id, name and test role headers
// to both modes: Authenticate never panics, a principal always has an id, a
// kind and only known roles, and in keys mode the principal headers make no
// difference at all.
func FuzzAuthenticate(f *testing.F) {
	f.Add(encode(f, aad(oid(userOID), role("DSR.Admin"))), userOID, "Ann", "", false)
	f.Add(encode(f, aad(role("DSR.Read"), claim{roleTyp, "DSR.Read"})), userOID, "", "DSR.Submit", true)
	f.Add(encode(f, principalDoc{AuthTyp: "aad", Claims: []claim{{"idtyp", "app"}, {"oid", appOID}, role("DSR.Export")}}), "", "", "DSR.Read,DSR.Export", true)
	f.Add(base64.StdEncoding.EncodeToString([]byte(`{"auth_typ":"aad","claims":[{"typ":"oid","val":1}]}`)), "", "", "DSR.Root", true)
	f.Add(base64.StdEncoding.EncodeToString([]byte(`{"auth_typ":"aad","role_typ":"","name_typ":"","claims":[{"typ":"","val":""}]}`)), "x", "", ",", true)
	f.Add(base64.RawStdEncoding.EncodeToString([]byte(`{"auth_typ":"x","claims":null}`)), "", "", "DSR.Admin", false)
	f.Add("not base64", "", "", "", false)
	f.Add("", userOID, "Ann", "", true)
	f.Add("bnVsbA==", "", "", "", false)

	authenticators := []*auth.Authenticator{
		{Mode: auth.ModePlatform},
		{Mode: auth.ModePlatform, KeyRoles: []auth.Role{auth.RoleSubmit}, AllowTestRoles: true},
		{Mode: auth.ModeKeys},
		{Mode: auth.ModeKeys, KeyRoles: []auth.Role{auth.RoleAdmin}},
		{Mode: auth.ModeKeys, KeyRoles: []auth.Role{auth.RoleAdmin}, AllowTestRoles: true},
		{Mode: auth.ModeKeys, KeyRoles: []auth.Role{auth.RoleRead, auth.RoleSubmit}, AllowTestRoles: true},
	}
	f.Fuzz(func(t *testing.T, principal, id, name, testRoles string, sendTestRoles bool) {
		full := req()
		bare := req()
		if principal != "" {
			full.Header.Set(auth.PrincipalHeader, principal)
		}
		if id != "" {
			full.Header.Set(auth.PrincipalIDHeader, id)
		}
		if name != "" {
			full.Header.Set(auth.PrincipalNameHeader, name)
		}
		if sendTestRoles {
			full.Header.Set(auth.TestRolesHeader, testRoles)
			bare.Header.Set(auth.TestRolesHeader, testRoles)
		}
		for _, a := range authenticators {
			p, err := a.Authenticate(full)
			if (p == nil) == (err == nil) {
				t.Fatalf("%+v: principal %+v with error %v", a, p, err)
			}
			if err != nil && !knownError(err) {
				t.Fatalf("%+v: unexpected error %v", a, err)
			}
			if p != nil {
				if p.ID == "" || (p.Kind != "user" && p.Kind != "app" && p.Kind != "key") {
					t.Fatalf("%+v: principal without id or kind: %+v", a, p)
				}
				for _, r := range p.Roles {
					if _, err := auth.ParseRoles(string(r)); err != nil {
						t.Fatalf("%+v: unknown role %q granted", a, r)
					}
					if p.Kind == "key" && !(&auth.Principal{Roles: a.KeyRoles}).Has(r) {
						t.Fatalf("%+v: key caller got %s beyond the key roles", a, r)
					}
				}
			}
			if a.Mode != auth.ModeKeys {
				continue
			}
			p2, err2 := a.Authenticate(bare)
			if !reflect.DeepEqual(p, p2) || err != err2 {
				t.Fatalf("keys mode depends on principal headers: %+v, %v with them; %+v, %v without", p, err, p2, err2)
			}
		}
	})
}

func knownError(err error) bool {
	for _, e := range []error{auth.ErrNoPrincipal, auth.ErrBadPrincipal, auth.ErrTestRolesOff, auth.ErrBadTestRoleList, auth.ErrTestRolesWiden} {
		if err == e {
			return true
		}
	}
	return false
}
