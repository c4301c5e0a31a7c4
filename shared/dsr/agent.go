package dsr

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dsr-functions/dsr/shared/match"
)

// maxRelationshipLen bounds an agent's relationship to the subject.
const maxRelationshipLen = 200

// Agent is a person who asks on the subject's behalf (a relative, a lawyer,
// a carer). The subject still proves her address: the code goes to her,
// never to the agent, and the agent's details are never searched for.
// It is personal data: stored with the request, shown to staff, never
// logged or put in messages.
type Agent struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	// Relationship is what the agent says she is to the subject.
	Relationship string `json:"relationship,omitempty"`
	// Proof describes the proof of authority the agent uploaded (the
	// portal requires one); the file itself is in a private container.
	Proof *ProofInfo `json:"proof,omitempty"`
}

// ProofInfo describes an agent's proof of authority. ContentType is the
// type sniffed from the file's first bytes, not the one the sender
// declared. DeletedAt is set once the sweeper has deleted the file after
// the request's retention.
type ProofInfo struct {
	ContentType string     `json:"contentType"`
	Bytes       int64      `json:"bytes"`
	SHA256      string     `json:"sha256"`
	UploadedAt  time.Time  `json:"uploadedAt"`
	DeletedAt   *time.Time `json:"deletedAt,omitempty"`
}

// Proof content types: the only ones accepted, sniffed from the file.
const (
	ProofPDF  = "application/pdf"
	ProofPNG  = "image/png"
	ProofJPEG = "image/jpeg"
)

// ProofContentSecurityPolicy is a proof's when served: it came from the
// internet, so the browser runs nothing in it and loads nothing for it.
const ProofContentSecurityPolicy = "sandbox; default-src 'none'"

// SetProofHeaders sets what a proof is served with (by the API and the
// console): its sniffed type, which the browser may not second-guess,
// sandboxed, never cached; images inline, PDFs (which can carry script and
// links) saved as attachments. size 0 leaves the length out.
func SetProofHeaders(h http.Header, requestID, contentType string, size int64) {
	h.Set("Content-Type", contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", ProofContentSecurityPolicy)
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if size > 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	disposition, ext := "attachment", ".pdf"
	switch contentType {
	case ProofPNG:
		disposition, ext = "inline", ".png"
	case ProofJPEG:
		disposition, ext = "inline", ".jpg"
	}
	h.Set("Content-Disposition", disposition+`; filename="proof-`+requestID+ext+`"`)
}

// hasControl reports whether s holds control characters (a line break in
// a name would let it write lines of its own into the subject's email).
func hasControl(s string) bool { return strings.IndexFunc(s, unicode.IsControl) >= 0 }

// validateAgent checks and normalises an agent: a name and a valid email
// address are required, the relationship is short. A submission never
// brings a proof's description: the service writes it from the file.
func validateAgent(a *Agent, add func(field, detail string)) {
	a.Name = strings.TrimSpace(a.Name)
	a.Relationship = strings.TrimSpace(a.Relationship)
	switch n := utf8.RuneCountInString(a.Name); {
	case n == 0:
		add("agent.name", "required: the name of the person asking on the subject's behalf")
	case n > maxNameLen:
		add("agent.name", fmt.Sprintf("must be at most %d characters", maxNameLen))
	case hasControl(a.Name):
		add("agent.name", "must be one line of text, without control characters")
	}
	if strings.TrimSpace(a.Email) == "" {
		add("agent.email", "required: the address of the person asking on the subject's behalf")
	} else if e, err := match.NormalizeEmail(a.Email); err != nil {
		add("agent.email", "is not a valid email address")
	} else {
		a.Email = e
	}
	if utf8.RuneCountInString(a.Relationship) > maxRelationshipLen {
		add("agent.relationship", fmt.Sprintf("must be at most %d characters", maxRelationshipLen))
	} else if hasControl(a.Relationship) {
		add("agent.relationship", "must be one line of text, without control characters")
	}
	if a.Proof != nil {
		add("agent.proof", "cannot be set by the caller: a proof is uploaded through the portal's form")
	}
}
