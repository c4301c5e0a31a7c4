// Package requestsletter is the requests-letter function:
// GET /api/requests/{id}/letter answers with the letter of an ended request
// (shared/letter): what was found and done, in plain words, and the
// person's rights, for the caller to hand to her.
package requestsletter

import (
	"bytes"
	"net/http"

	"github.com/dsr-functions/dsr/shared/api"
	"github.com/dsr-functions/dsr/shared/letter"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/problem"
)

// ContentSecurityPolicy lets the letter's own inline styles apply and
// nothing else run or load.
const ContentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// New returns the handler.
func New(svc *pipeline.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, ok := api.LoadRequest(w, r, svc)
		if !ok {
			return
		}
		doc := st.Request
		if !letter.Answered(&doc) {
			problem.Write(w, r, problem.New(http.StatusConflict, "not-answered", "",
				"the request has not ended yet; its letter is written when it completes, fails or is rejected"))
			return
		}
		var b bytes.Buffer
		if err := letter.Render(&b, letter.FromRequest(&doc, svc.Sources)); err != nil {
			svc.Log.Error("letter", "requestId", st.ID, "err", err)
			problem.Write(w, r, api.Internal())
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b.Bytes())
	})
}
