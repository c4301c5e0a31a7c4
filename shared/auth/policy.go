package auth

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/dsr-functions/dsr/shared/problem"
)

// Policy is what an HTTP function requires of its caller.
type Policy struct {
	// Anonymous functions need no principal (health).
	Anonymous bool
	// Any of these roles grants full access.
	Any []Role
	// Own grants access restricted to the caller's own requests.
	Own Role
	// Browser functions serve people's browsers (the console): anonymous
	// at the host, since a browser holds no function key, they authenticate
	// every call themselves (the platform's principal, or a local session)
	// and reach the data only through the guarded functions, in process.
	Browser bool
}

type ownKey struct{}

// OwnOnly reports whether the caller may act only on requests it created.
func OwnOnly(ctx context.Context) bool { v, _ := ctx.Value(ownKey{}).(bool); return v }

// Guard authenticates the caller and enforces p before h runs. It is the
// only place where roles are checked against functions.
//
// A principal already in the request's context was authenticated by the
// app itself (the console calling a function in process for its signed-in
// user); only in-process callers can set it, so it is used as it is.
func Guard(a *Authenticator, p Policy, h http.Handler, log *slog.Logger) http.Handler {
	if p.Anonymous || p.Browser {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pr, err := FromContext(r.Context()), error(nil)
		if pr == nil {
			pr, err = a.Authenticate(r)
		}
		if err != nil {
			log.Warn("request refused: not authenticated", "path", r.URL.Path, "reason", err.Error())
			w.Header().Set("WWW-Authenticate", `Bearer realm="dsr"`)
			problem.Write(w, r, problem.New(http.StatusUnauthorized, "unauthenticated", "", err.Error()))
			return
		}
		ctx := WithPrincipal(r.Context(), pr)
		for _, role := range p.Any {
			if pr.Has(role) {
				h.ServeHTTP(w, r.WithContext(ctx))
				return
			}
		}
		if p.Own != "" && pr.Has(p.Own) {
			h.ServeHTTP(w, r.WithContext(context.WithValue(ctx, ownKey{}, true)))
			return
		}
		need := make([]string, 0, len(p.Any)+1)
		for _, role := range p.Any {
			need = append(need, string(role))
		}
		if p.Own != "" {
			need = append(need, string(p.Own)+" (own requests)")
		}
		log.Warn("request refused: missing role", "path", r.URL.Path, "principalKind", pr.Kind)
		problem.Write(w, r, problem.New(http.StatusForbidden, "forbidden", "", "this call needs one of the roles: "+strings.Join(need, ", ")))
	})
}
