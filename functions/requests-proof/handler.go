// Package requestsproof is the requests-proof function:
// GET /api/requests/{id}/proof serves an agent's proof of authority to
// staff, every view audited.
package requestsproof

import (
	"errors"
	"io"
	"net/http"

	"github.com/dsr-functions/dsr/shared/api"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/problem"
)

// New returns the handler: the file with its sniffed type, served so that
// no browser interprets it as anything else.
func New(svc *pipeline.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, ok := api.LoadRequest(w, r, svc)
		if !ok {
			return
		}
		rc, info, err := svc.OpenProof(r.Context(), st, api.Caller(r))
		switch {
		case errors.Is(err, pipeline.ErrNoProof):
			problem.Write(w, r, problem.New(http.StatusNotFound, "no-proof", "", err.Error()))
			return
		case errors.Is(err, pipeline.ErrProofDeleted):
			problem.Write(w, r, problem.New(http.StatusGone, "proof-deleted", "", err.Error()))
			return
		case err != nil:
			svc.Log.Error("open proof", "requestId", st.ID, "err", err)
			problem.Write(w, r, api.Internal())
			return
		}
		defer rc.Close()
		dsr.SetProofHeaders(w.Header(), st.ID, info.ContentType, info.Bytes)
		w.WriteHeader(http.StatusOK)
		if _, err := io.Copy(w, rc); err != nil {
			svc.Log.Warn("proof not sent whole", "requestId", st.ID, "err", err)
		}
	})
}
