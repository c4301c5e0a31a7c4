package dsr

import (
	"fmt"
	"strings"
	"time"
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
	}
	if a.Proof != nil {
		add("agent.proof", "cannot be set by the caller: a proof is uploaded through the portal's form")
	}
}
