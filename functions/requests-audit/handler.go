// Package requestsaudit is the requests-audit function:
// GET /api/requests/{id}/audit returns the request's audit trail.
package requestsaudit

import (
	"net/http"

	"github.com/dsr-functions/dsr/shared/api"
	"github.com/dsr-functions/dsr/shared/audit"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/problem"
)

// Trail is the answer: the request's audit entries, oldest first.
type Trail struct {
	Items []audit.Entry `json:"items"`
}

// New returns the handler.
func New(svc *pipeline.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, ok := api.LoadRequest(w, r, svc)
		if !ok {
			return
		}
		entries, err := svc.Audit.ForRequest(r.Context(), st.ID)
		if err != nil {
			svc.Log.Error("read audit trail", "requestId", st.ID, "err", err)
			problem.Write(w, r, api.Internal())
			return
		}
		api.WriteJSON(w, http.StatusOK, Trail{Items: entries})
	})
}
