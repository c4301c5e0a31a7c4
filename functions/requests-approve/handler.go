// Package requestsapprove is the requests-approve function:
// POST /api/requests/{id}/approve lets a request awaiting approval go on.
package requestsapprove

import (
	"net/http"

	requestscancel "github.com/dsr-functions/dsr/functions/requests-cancel"
	requestsget "github.com/dsr-functions/dsr/functions/requests-get"
	"github.com/dsr-functions/dsr/shared/pipeline"
)

// New returns the handler: 200 with the request, now at the erasure stage;
// 409 unless it was awaiting approval.
func New(svc *pipeline.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, ok := requestsget.Load(w, r, svc)
		if !ok {
			return
		}
		st, err := svc.Approve(r.Context(), st.ID, requestscancel.Caller(r))
		requestscancel.Respond(w, r, svc, st, err)
	})
}
