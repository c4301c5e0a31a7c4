// Package requestsreject is the requests-reject function:
// POST /api/requests/{id}/reject {"reason"} declines a request awaiting
// approval, with the Art. 12(4) notice.
package requestsreject

import (
	"net/http"

	"github.com/dsr-functions/dsr/shared/api"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/problem"
)

// Body is the request body.
type Body struct {
	Reason string `json:"reason"`
}

// New returns the handler: 200 with the rejected request; 409 unless it was
// awaiting approval.
func New(svc *pipeline.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, p := api.ReadJSONBody(r)
		var b Body
		if p == nil {
			p = api.DecodeStrict(raw, &b)
		}
		if p == nil {
			p = api.CheckReason(b.Reason, "a refusal must give its reasons (Art. 12(4))")
		}
		if p != nil {
			problem.Write(w, r, p)
			return
		}
		st, ok := api.LoadRequest(w, r, svc)
		if !ok {
			return
		}
		st, err := svc.Reject(r.Context(), st.ID, b.Reason, api.Caller(r))
		api.RespondDecision(w, r, svc, st, err)
	})
}
