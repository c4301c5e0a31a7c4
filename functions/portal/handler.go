// Package portal is the portal function: the public request portal under
// /api/portal/ (shared/portal), anonymous at the host and at App Service
// Authentication, since the people it serves have no account with us;
// every request it takes waits for a one-time code sent to the address
// given before anything is searched.
package portal

import (
	"net/http"

	"github.com/dsr-functions/dsr/shared/portal"
)

// New returns the handler; p is nil when the portal is off
// (DSR_PORTAL_TYPES=none), and then every portal route is 404.
func New(p *portal.Portal) http.Handler {
	if p == nil {
		return http.NotFoundHandler()
	}
	return p
}
