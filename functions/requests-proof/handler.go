// Package requestsproof is the requests-proof function:
// GET /api/requests/{id}/proof serves an agent's proof of authority to
// staff, every view audited.
package requestsproof

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/dsr-functions/dsr/shared/api"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/problem"
)

// ContentSecurityPolicy is the proof's: it came from the internet, so the
// browser runs nothing in it and loads nothing for it.
const ContentSecurityPolicy = "sandbox; default-src 'none'"

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
		SetHeaders(w.Header(), st.ID, info.ContentType, info.Bytes)
		w.WriteHeader(http.StatusOK)
		if _, err := io.Copy(w, rc); err != nil {
			svc.Log.Warn("proof not sent whole", "requestId", st.ID, "err", err)
		}
	})
}

// SetHeaders sets what a proof is served with (here and by the console):
// its sniffed type, never sniffed again by the browser, sandboxed, not
// cached; images shown inline, PDFs (which can carry script and links)
// saved as attachments.
func SetHeaders(h http.Header, id, contentType string, size int64) {
	h.Set("Content-Type", contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if size > 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	disposition, ext := "attachment", ".pdf"
	switch contentType {
	case pipeline.ProofPNG:
		disposition, ext = "inline", ".png"
	case pipeline.ProofJPEG:
		disposition, ext = "inline", ".jpg"
	}
	h.Set("Content-Disposition", disposition+`; filename="proof-`+id+ext+`"`)
}
