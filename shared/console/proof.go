package console

import (
	"net/http"
	"net/url"

	"github.com/dsr-functions/dsr/shared/dsr"
)

// proof shows an agent's proof of authority, read through the API as the
// signed-in person (GET /api/requests/{id}/proof: its policy decides who
// may, and it audits every view). The file came from the internet: it is
// served with its sniffed type only if that is one the portal accepts,
// sandboxed, never sniffed or cached, PDFs as attachments.
func (c *Console) proof(w http.ResponseWriter, r *http.Request, v *visitor) {
	id := r.PathValue("id")
	a, err := c.call(ctx(r), v.principal, http.MethodGet, "/api/requests/"+url.PathEscape(id)+"/proof", nil, nil)
	if err != nil {
		c.fail(w, r, v, "read the proof of authority", err)
		return
	}
	if !a.ok() {
		c.render(w, r, a.status, "message", &page{Title: "Proof not shown", Visitor: v, Problem: viewProblem(a.problem)})
		return
	}
	ct := a.header.Get("Content-Type")
	switch ct {
	case dsr.ProofPDF, dsr.ProofPNG, dsr.ProofJPEG:
	default:
		c.log.Error("console: a proof of an unexpected type", "requestId", id)
		c.render(w, r, http.StatusInternalServerError, "message", &page{Title: "Proof not shown", Visitor: v, Message: "The proof's type is not one the portal accepts; it is not shown."})
		return
	}
	dsr.SetProofHeaders(w.Header(), id, ct, int64(len(a.body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(a.body)
}
