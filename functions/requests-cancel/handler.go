// Package requestscancel is the requests-cancel function:
// POST /api/requests/{id}/cancel ends an open request.
package requestscancel

import (
	"net/http"

	"github.com/dsr-functions/dsr/shared/api"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/problem"
)

// Body is the optional request body.
type Body struct {
	Reason string `json:"reason"`
}

// New returns the handler: 200 with the cancelled request, 409 when it has
// already ended.
func New(svc *pipeline.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b Body
		if r.ContentLength != 0 {
			raw, p := api.ReadJSONBody(r)
			if p == nil {
				p = api.DecodeStrict(raw, &b)
			}
			if p != nil {
				problem.Write(w, r, p)
				return
			}
		}
		if p := api.CheckReason(b.Reason, ""); p != nil {
			problem.Write(w, r, p)
			return
		}
		st, ok := api.LoadRequest(w, r, svc)
		if !ok {
			return
		}
		st, err := svc.Cancel(r.Context(), st.ID, b.Reason, api.Caller(r))
		api.RespondDecision(w, r, svc, st, err)
	})
}
