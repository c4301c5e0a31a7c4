// Package webhookcallback is the webhook-callback function (POST
// /api/webhooks/{system}/{id}): asynchronous webhook systems deliver their
// answers to an access request here. It needs no function key: each
// delivery is signed with the system's secret (HMAC-SHA256 over timestamp
// and body) and refused without a valid, fresh signature.
package webhookcallback

import (
	"net/http"

	"github.com/dsr-functions/dsr/shared/problem"
)

// New returns the handler; callbacks maps a webhook connection's name to
// its callback endpoint.
func New(callbacks map[string]http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := callbacks[r.PathValue("system")]
		if !ok {
			problem.Write(w, r, problem.New(http.StatusNotFound, "unknown-system", "", "no asynchronous webhook system has this name"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
