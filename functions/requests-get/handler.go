// Package requestsget is the requests-get function: GET /api/requests/{id}.
package requestsget

import (
	"net/http"

	"github.com/dsr-functions/dsr/shared/api"
	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/problem"
)

// New returns the handler: the request document, with a fresh export link
// when the package is ready.
func New(svc *pipeline.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, ok := api.LoadRequest(w, r, svc)
		if !ok {
			return
		}
		doc, err := svc.View(r.Context(), st, auth.FromContext(r.Context()).Has(auth.RoleExport))
		if err != nil {
			svc.Log.Error("view request", "requestId", st.ID, "err", err)
			problem.Write(w, r, api.Internal())
			return
		}
		api.WriteJSON(w, http.StatusOK, doc)
	})
}
