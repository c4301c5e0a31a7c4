// Package requestsextend is the requests-extend function:
// POST /api/requests/{id}/extend {"months": 1|2, "reason"} extends the
// deadline under Art. 12(3).
package requestsextend

import (
	"net/http"

	"github.com/dsr-functions/dsr/shared/api"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/problem"
)

// Body is the request body.
type Body struct {
	Months int    `json:"months"`
	Reason string `json:"reason"`
}

// New returns the handler: 200 with the request and its new deadline; 409
// after the original deadline, beyond two months in total, or for an ended
// request.
func New(svc *pipeline.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, p := api.ReadJSONBody(r)
		var b Body
		if p == nil {
			p = api.DecodeStrict(raw, &b)
		}
		if p == nil && (b.Months < 1 || b.Months > dsr.MaxExtensionMonths) {
			p = api.BadField(http.StatusUnprocessableEntity, "invalid-request", "months", "must be 1 or 2")
		}
		if p == nil {
			p = api.CheckReason(b.Reason, "the subject must be told why (Art. 12(3))")
		}
		if p != nil {
			problem.Write(w, r, p)
			return
		}
		st, ok := api.LoadRequest(w, r, svc)
		if !ok {
			return
		}
		st, err := svc.Extend(r.Context(), st.ID, b.Months, b.Reason, api.Caller(r))
		api.RespondDecision(w, r, svc, st, err)
	})
}
