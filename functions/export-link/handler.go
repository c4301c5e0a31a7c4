// Package exportlink is the export-link function:
// POST /api/requests/{id}/export-link mints a fresh short-lived link.
package exportlink

import (
	"errors"
	"net/http"
	"time"

	"github.com/dsr-functions/dsr/shared/api"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/problem"
)

// Link is the answer: a read-only URL for the package and when it expires.
type Link struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expiresAt"`
	Bytes     int64     `json:"bytes"`
	SHA256    string    `json:"sha256"`
}

// New returns the handler. 409 when the request has no finished package.
func New(svc *pipeline.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, ok := api.LoadRequest(w, r, svc)
		if !ok {
			return
		}
		if st.Type != dsr.TypeAccess {
			problem.Write(w, r, problem.New(http.StatusConflict, "no-export", "", string(st.Type)+" requests have no export: only access requests produce a package (a discovery request reports counts on the request itself)"))
			return
		}
		link, err := svc.ExportLink(r.Context(), st)
		if errors.Is(err, pipeline.ErrNoExport) {
			problem.Write(w, r, problem.New(http.StatusConflict, "export-not-ready", "", "the request has no finished export (state "+string(st.State)+")"))
			return
		}
		if err != nil {
			svc.Log.Error("mint export link", "requestId", st.ID, "err", err)
			problem.Write(w, r, api.Internal())
			return
		}
		api.WriteJSON(w, http.StatusOK, Link{URL: link.URL, ExpiresAt: link.ExpiresAt, Bytes: st.Export.Bytes, SHA256: st.Export.SHA256})
	})
}
