// Package requestsapprove is the requests-approve function:
// POST /api/requests/{id}/approve lets a request awaiting approval go on.
package requestsapprove

import (
	"net/http"

	"github.com/dsr-functions/dsr/shared/api"
	"github.com/dsr-functions/dsr/shared/pipeline"
)

// New returns the handler: 200 with the request, now at the erasure stage;
// 409 unless it was awaiting approval.
func New(svc *pipeline.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, ok := api.LoadRequest(w, r, svc)
		if !ok {
			return
		}
		st, err := svc.Approve(r.Context(), st.ID, api.Caller(r))
		api.RespondDecision(w, r, svc, st, err)
	})
}
