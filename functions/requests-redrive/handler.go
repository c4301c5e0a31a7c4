// Package requestsredrive is the requests-redrive function:
// POST /api/requests/{id}/redrive puts a failed request back into the step
// where it failed and runs that step again, once a person has fixed what
// made it fail.
package requestsredrive

import (
	"net/http"

	"github.com/dsr-functions/dsr/shared/api"
	"github.com/dsr-functions/dsr/shared/pipeline"
)

// New returns the handler: 200 with the re-driven request, 409 unless it
// failed.
func New(svc *pipeline.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, ok := api.LoadRequest(w, r, svc)
		if !ok {
			return
		}
		st, err := svc.RedriveFailed(r.Context(), st.ID, api.Caller(r))
		api.RespondDecision(w, r, svc, st, err)
	})
}
