// Package auth says who a caller is and what they may do. Function keys are
// checked by the host (the Functions host in Azure, the local host in `dsr
// local`) before a request reaches the handler; this package turns what
// arrives into a Principal with roles and enforces, in one place, which roles
// each HTTP function needs.
//
// Two modes, chosen by DSR_AUTH_MODE:
//   - platform: App Service Authentication (Entra ID) runs in front of the app
//     and injects X-MS-CLIENT-PRINCIPAL; the principal and its app roles come
//     from there. Callers without a principal get DSR_KEY_ROLES if set (machine
//     callers holding a function key), else 401.
//   - keys: no platform authentication. Principal headers from the network
//     are ignored; every caller that passed the host's key check gets
//     DSR_KEY_ROLES. Test role headers are honoured only when explicitly
//     enabled.
package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Role is an app role.
type Role string

// App roles (declare them on the Entra app registration).
const (
	RoleSubmit  Role = "DSR.Submit"  // create requests, read their own
	RoleRead    Role = "DSR.Read"    // read and list all requests
	RoleApprove Role = "DSR.Approve" // approve, reject, extend, cancel
	RoleExport  Role = "DSR.Export"  // mint and see export links
	RoleAdmin   Role = "DSR.Admin"   // everything
)

// AllRoles lists every role.
var AllRoles = []Role{RoleSubmit, RoleRead, RoleApprove, RoleExport, RoleAdmin}

// ParseRoles reads a comma-separated role list, refusing unknown roles.
func ParseRoles(s string) ([]Role, error) {
	var out []Role
	for _, part := range strings.Split(s, ",") {
		r := Role(strings.TrimSpace(part))
		if r == "" {
			continue
		}
		if !slices.Contains(AllRoles, r) {
			return nil, fmt.Errorf("unknown role %q (known: DSR.Submit, DSR.Read, DSR.Approve, DSR.Export, DSR.Admin)", r)
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// Principal is an authenticated caller.
type Principal struct {
	// Kind is "user" or "app" (platform principal) or "key" (function key only).
	Kind string
	// ID is stable: the Entra object id, or "key" for key callers.
	ID string
	// Name is the caller's display name (for the audit trail; never logged).
	Name  string
	Roles []Role
}

// Has reports whether the principal holds role r (DSR.Admin holds all).
func (p *Principal) Has(r Role) bool {
	return p != nil && (slices.Contains(p.Roles, r) || slices.Contains(p.Roles, RoleAdmin))
}

// Ref is an opaque, stable reference to the principal for ownership checks
// and listings: a hash of kind and id.
func (p *Principal) Ref() string {
	sum := sha256.Sum256([]byte(p.Kind + ":" + p.ID))
	return hex.EncodeToString(sum[:16])
}

// Mode is how callers are authenticated.
type Mode string

// Authentication modes.
const (
	ModePlatform Mode = "platform"
	ModeKeys     Mode = "keys"
)

// Header names.
const (
	PrincipalHeader     = "X-MS-CLIENT-PRINCIPAL"
	PrincipalIDHeader   = "X-MS-CLIENT-PRINCIPAL-ID"
	PrincipalNameHeader = "X-MS-CLIENT-PRINCIPAL-NAME"
	// TestRolesHeader narrows a key caller's roles, for testing; honoured
	// only when Authenticator.AllowTestRoles is set.
	TestRolesHeader = "X-DSR-Test-Roles"
)

// maxPrincipalHeader bounds the encoded principal (Easy Auth headers are a
// few KiB).
const maxPrincipalHeader = 16 << 10

// Errors of authentication. Their text is safe to show.
var (
	ErrNoPrincipal     = errors.New("no authenticated principal")
	ErrBadPrincipal    = errors.New("malformed client principal")
	ErrTestRolesOff    = errors.New("test role header sent, but test roles are not enabled")
	ErrBadTestRoleList = errors.New("test role header names an unknown role")
	ErrTestRolesWiden  = errors.New("test role header names a role the function key does not grant")
)

// Authenticator turns a request into a Principal.
type Authenticator struct {
	Mode Mode
	// KeyRoles are granted to callers known only by their function key.
	KeyRoles []Role
	// AllowTestRoles lets key callers narrow their roles with X-DSR-Test-Roles.
	AllowTestRoles bool
}

// clientPrincipal is the platform's X-MS-CLIENT-PRINCIPAL document.
type clientPrincipal struct {
	AuthType string `json:"auth_typ"`
	NameType string `json:"name_typ"`
	RoleType string `json:"role_typ"`
	Claims   []struct {
		Type  string `json:"typ"`
		Value string `json:"val"`
	} `json:"claims"`
}

const (
	claimObjectID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
	claimRole     = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
)

// Authenticate identifies the caller of r.
func (a *Authenticator) Authenticate(r *http.Request) (*Principal, error) {
	if a.Mode == ModePlatform {
		if enc := r.Header.Get(PrincipalHeader); enc != "" {
			return parsePlatformPrincipal(enc, r.Header.Get(PrincipalIDHeader), r.Header.Get(PrincipalNameHeader))
		}
		if len(a.KeyRoles) == 0 {
			return nil, ErrNoPrincipal
		}
	}
	p := &Principal{Kind: "key", ID: "key", Name: "function key", Roles: slices.Clone(a.KeyRoles)}
	// The header narrows the key's roles as soon as it is sent, even empty
	// (narrowed to no role): an empty value must not mean "all key roles".
	if vals, sent := r.Header[http.CanonicalHeaderKey(TestRolesHeader)]; sent {
		if !a.AllowTestRoles {
			return nil, ErrTestRolesOff
		}
		parsed, err := ParseRoles(strings.Join(vals, ","))
		if err != nil {
			return nil, ErrBadTestRoleList
		}
		// Narrow only: a role the key does not grant is refused, never
		// granted. The roles (and so the caller's id) are in canonical
		// order, so one role set is one caller whatever the header's order.
		roles := []Role{}
		for _, role := range AllRoles {
			if !slices.Contains(parsed, role) {
				continue
			}
			if !p.Has(role) {
				return nil, ErrTestRolesWiden
			}
			roles = append(roles, role)
		}
		p.Roles = roles
		p.ID = "key:" + strings.Join(roleStrings(roles), ",")
	}
	return p, nil
}

func roleStrings(rs []Role) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

func parsePlatformPrincipal(enc, idHeader, nameHeader string) (*Principal, error) {
	if len(enc) > maxPrincipalHeader {
		return nil, ErrBadPrincipal
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(enc); err != nil {
			return nil, ErrBadPrincipal
		}
	}
	var cp clientPrincipal
	if err := json.Unmarshal(raw, &cp); err != nil || cp.AuthType == "" {
		return nil, ErrBadPrincipal
	}
	roleType := cp.RoleType
	if roleType == "" {
		roleType = claimRole
	}
	p := &Principal{Kind: "user", Name: nameHeader}
	for _, c := range cp.Claims {
		switch c.Type {
		case roleType, "roles", claimRole:
			if r := Role(c.Value); slices.Contains(AllRoles, r) && !slices.Contains(p.Roles, r) {
				p.Roles = append(p.Roles, r)
			}
		case claimObjectID, "oid":
			p.ID = c.Value
		case cp.NameType, "name":
			if p.Name == "" {
				p.Name = c.Value
			}
		case "idtyp":
			if c.Value == "app" {
				p.Kind = "app"
			}
		}
	}
	if p.ID == "" {
		p.ID = idHeader
	}
	if p.ID == "" {
		return nil, ErrBadPrincipal
	}
	return p, nil
}

type ctxKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the caller, or nil for anonymous functions.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(ctxKey{}).(*Principal)
	return p
}
