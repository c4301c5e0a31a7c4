package portal

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/pipeline"
)

// Authorised agents: someone may ask on another person's behalf, with a
// proof of authority uploaded with the form (multipart/form-data). The
// upload is read as a stream, part by part, with every part bounded: text
// fields to maxField, the proof to pipeline.MaxProofBytes, the whole body
// to maxUploadBody, at most maxParts parts; nothing is written to disk and
// nothing larger than one proof is held in memory. Its type is sniffed
// from its first bytes (PDF, PNG, JPEG), whatever its name or declared
// type. The code still goes to the person whose data it is, who must
// confirm; the agent's details are never searched for.

// maxUploadBody bounds a form that carries a file: one proof and the
// fields. Only such forms get more than maxBody.
const maxUploadBody = pipeline.MaxProofBytes + maxBody

// maxField bounds one text field of a multipart form; maxParts the parts.
const (
	maxField = 4 << 10
	maxParts = 16
)

// proofField is the form's file input.
const proofField = "proof"

var (
	errProofTooLarge = errors.New("portal: the proof is too large")
	errBadMultipart  = errors.New("portal: malformed multipart form")
)

// isUpload reports whether r is a form with files (the portal's form,
// which has the proof's file input).
func isUpload(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "multipart/form-data"
}

// agentInput is what the form says about an agent.
type agentInput struct {
	Name, Email, Relationship string
	// Proof is the uploaded file (nil: none chosen).
	Proof []byte
	// JSON is set when a JSON client sent an agent: it cannot carry a
	// proof, so such a submission is refused.
	JSON bool
}

// present reports whether the sender asks on someone's behalf: any of the
// agent's fields or a file.
func (a agentInput) present() bool {
	return a.JSON || strings.TrimSpace(a.Name+a.Email+a.Relationship) != "" || a.Proof != nil
}

// formFields are the text fields a multipart form may carry.
var formFields = map[string]bool{
	"type": true, "email": true, "name": true, "correctEmail": true, "correctName": true,
	"agentName": true, "agentEmail": true, "agentRelationship": true,
}

// readMultipart reads the portal's form with its file, streaming.
func readMultipart(r *http.Request, in *input) error {
	mr, err := r.MultipartReader()
	if err != nil {
		return fmt.Errorf("%w: %v", errBadMultipart, err)
	}
	values := map[string]string{}
	// What was typed goes back into the form even when a part is refused.
	defer func() {
		in.Type, in.Email, in.Name = values["type"], values["email"], values["name"]
		for field, key := range map[string]string{"email": "correctEmail", "name": "correctName"} {
			if v := strings.TrimSpace(values[key]); v != "" {
				if in.Corrections == nil {
					in.Corrections = map[string]string{}
				}
				in.Corrections[field] = v
			}
		}
		in.Agent.Name, in.Agent.Email, in.Agent.Relationship = values["agentName"], values["agentEmail"], values["agentRelationship"]
	}()
	for n := 0; ; n++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return err
			}
			return fmt.Errorf("%w: %v", errBadMultipart, err)
		}
		if n >= maxParts {
			return fmt.Errorf("%w: more than %d parts", errBadMultipart, maxParts)
		}
		name := part.FormName()
		limit := int64(maxField)
		if name == proofField {
			limit = pipeline.MaxProofBytes
		}
		data, err := io.ReadAll(io.LimitReader(part, limit+1))
		if err != nil {
			return err
		}
		switch {
		case name == proofField:
			if int64(len(data)) > limit {
				return errProofTooLarge
			}
			if len(data) == 0 {
				continue // the file input, no file chosen
			}
			if in.Agent.Proof != nil {
				return fmt.Errorf("%w: more than one file", errBadMultipart)
			}
			in.Agent.Proof = data
		case int64(len(data)) > limit:
			return &http.MaxBytesError{Limit: maxField}
		case formFields[name]:
			values[name] = string(data)
		}
	}
}

// agentFields maps a submission's agent fields to the form's inputs and
// the catalog's message for each.
var agentFields = map[string][2]string{
	"agent":              {"agentName", "err.agentName"},
	"agent.name":         {"agentName", "err.agentName"},
	"agent.email":        {"agentEmail", "err.agentEmail"},
	"agent.relationship": {"agentRelationship", "err.relationship"},
}

// checkAgent adds the agent to a submission, or refuses it: a JSON client
// cannot send a proof; an agent without one, or with a file that is not a
// PDF, PNG or JPEG by its content, is refused naming the proof field. It
// reports whether the submission may go on.
func (p *Portal) checkAgent(w http.ResponseWriter, r *http.Request, lg string, in input, sub *dsr.Submission, pg *page) bool {
	a := in.Agent
	if !a.present() {
		return true
	}
	pg.Fields = map[string]string{}
	if a.JSON || a.Proof == nil {
		pg.Fields[proofField] = text(lg, "err.proof.missing")
		p.fail(w, r, lg, http.StatusUnprocessableEntity, "proof-required", "err.proof.missing", "form", pg)
		return false
	}
	if pipeline.SniffProof(a.Proof) == "" {
		pg.Fields[proofField] = text(lg, "err.proof.type")
		p.fail(w, r, lg, http.StatusUnsupportedMediaType, "unsupported-proof-type", "err.proof.type", "form", pg)
		return false
	}
	sub.Agent = &dsr.Agent{Name: a.Name, Email: a.Email, Relationship: a.Relationship}
	return true
}
