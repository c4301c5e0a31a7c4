package dsr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dsr-functions/dsr/shared/match"
)

// MaxBodyBytes is the largest request body accepted (64 KiB).
const MaxBodyBytes = 64 << 10

// Limits on individual values.
const (
	maxNoteLen    = 2000
	maxNameLen    = 200
	maxIDs        = 20
	maxIDValue    = 256
	maxCorrects   = 20
	maxVerifyNote = 500
)

// Submission is a new request as a caller sends it.
type Submission struct {
	Type        Type              `json:"type"`
	Subject     *Subject          `json:"subject"`
	ReceivedAt  *time.Time        `json:"receivedAt,omitempty"`
	Corrections map[string]string `json:"corrections,omitempty"`
	Note        string            `json:"note,omitempty"`
	// Lift, on a restriction request, lifts the subject's restriction.
	Lift bool `json:"lift,omitempty"`
	// Verification is a trusted caller's statement that it checked the
	// requester's identity itself (method "operator"), so the request
	// needs no code; the audit trail records it.
	Verification *VerificationClaim `json:"verification,omitempty"`
	// Agent, when set, is who asks on the subject's behalf (agent.go).
	Agent *Agent `json:"agent,omitempty"`
	// TransmitTo, on a portability request, is the HTTPS address of the
	// controller the package is sent to (Art. 20(2)).
	TransmitTo string `json:"transmitTo,omitempty"`
}

// VerificationClaim is how a trusted caller says it verified the requester.
type VerificationClaim struct {
	Method string `json:"method"`
	// Note says how (e.g. "called back on the number in the contract");
	// it goes into the audit trail, so it must not hold personal data.
	Note string `json:"note,omitempty"`
}

// FieldError is one specific problem with one field of a submission. Detail
// never contains the submitted value.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// InputError is a rejected submission: the HTTP status to answer with, a
// machine-readable code, and the problems found, each naming its field.
type InputError struct {
	Status int          `json:"-"`
	Code   string       `json:"code"`
	Title  string       `json:"-"`
	Errors []FieldError `json:"errors"`
}

func (e *InputError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Field + ": " + fe.Detail
	}
	return e.Title + ": " + strings.Join(parts, "; ")
}

func inputErr(status int, code, title, field, detail string) *InputError {
	return &InputError{Status: status, Code: code, Title: title, Errors: []FieldError{{Field: field, Detail: detail}}}
}

var idName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,63}$`)

// ParseSubmission decodes and validates a submission body strictly (unknown
// fields, wrong types and trailing data are errors) and returns it with the
// subject normalised: email trimmed and lower-cased, phone in E.164 with '+'.
// phoneRegion reads numbers written without a country code ("" refuses them).
// now bounds receivedAt, which may not lie in the future.
func ParseSubmission(body []byte, phoneRegion string, now time.Time) (*Submission, error) {
	if len(body) > MaxBodyBytes {
		return nil, inputErr(http.StatusRequestEntityTooLarge, "body-too-large", "Request body too large", "", fmt.Sprintf("the body must be at most %d bytes", MaxBodyBytes))
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, inputErr(http.StatusBadRequest, "empty-body", "Empty request body", "", "a JSON object is required")
	}
	if !utf8.Valid(body) {
		return nil, inputErr(http.StatusBadRequest, "malformed-json", "Malformed JSON", "", "the body is not valid UTF-8")
	}
	if bytes.Equal(bytes.TrimSpace(body), []byte("null")) {
		return nil, inputErr(http.StatusBadRequest, "wrong-type", "Wrong type", "(body)", "must be an object, not a JSON null")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var s Submission
	if err := dec.Decode(&s); err != nil {
		return nil, decodeError(err, body)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, inputErr(http.StatusBadRequest, "malformed-json", "Malformed JSON", "", "unexpected data after the JSON object")
	}
	if field, dup := DuplicateKey(body); dup {
		return nil, duplicateKeyError(field)
	}
	if errs := s.validate(phoneRegion, now); len(errs) > 0 {
		code, title := "invalid-request", "Invalid request"
		for _, fe := range errs {
			if fe.Field == "type" && strings.HasPrefix(fe.Detail, "not supported yet") {
				code, title = "type-not-supported", "Request type not supported yet"
			}
		}
		return nil, &InputError{Status: http.StatusUnprocessableEntity, Code: code, Title: title, Errors: errs}
	}
	return &s, nil
}

// safeFieldName is what an unknown field name must look like to be named in
// an error; anything else (an email used as a key, say) is not echoed.
var safeFieldName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// decodeError turns encoding/json errors into field-naming input errors
// without echoing values.
func decodeError(err error, body []byte) *InputError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return inputErr(http.StatusBadRequest, "malformed-json", "Malformed JSON", "", fmt.Sprintf("syntax error at byte %d", syn.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return inputErr(http.StatusBadRequest, "malformed-json", "Malformed JSON", "", "the JSON ends too early")
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(body)"
		}
		return inputErr(http.StatusBadRequest, "wrong-type", "Wrong type", field, fmt.Sprintf("must be %s, not a JSON %s", jsonKind(typ.Type.Kind().String()), typ.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		parent := unknownFieldParent(body, name)
		if !safeFieldName.MatchString(name) {
			return inputErr(http.StatusBadRequest, "unknown-field", "Unknown field", parent, "contains a field that is not part of the API (its name is not shown)")
		}
		field := name
		if parent != "" {
			field = parent + "." + name
		}
		return inputErr(http.StatusBadRequest, "unknown-field", "Unknown field", field, "this field is not part of the API")
	case strings.Contains(err.Error(), "parsing time"), strings.HasPrefix(err.Error(), "Time.UnmarshalJSON"):
		return inputErr(http.StatusBadRequest, "wrong-type", "Wrong type", "receivedAt", "must be an RFC 3339 timestamp such as 2026-01-31T09:00:00Z")
	default:
		return inputErr(http.StatusBadRequest, "malformed-json", "Malformed JSON", "", "the body is not a valid request object")
	}
}

// unknownFieldParent says where an unknown field was found: "" for the top
// level, or the nested object ("subject", "verification", "agent") that holds it
// (ids and corrections are maps and take any key).
func unknownFieldParent(body []byte, name string) string {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return ""
	}
	if _, ok := top[name]; ok {
		return ""
	}
	for _, parent := range []string{"verification", "agent"} {
		var v map[string]json.RawMessage
		if json.Unmarshal(top[parent], &v) == nil {
			if _, ok := v[name]; ok {
				return parent
			}
		}
	}
	return "subject"
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "map", "struct", "ptr":
		return "an object"
	case "slice":
		return "an array"
	default:
		return "a " + goKind
	}
}

func (s *Submission) validate(phoneRegion string, now time.Time) []FieldError {
	var errs []FieldError
	add := func(field, detail string) { errs = append(errs, FieldError{Field: field, Detail: detail}) }
	switch {
	case s.Type == "":
		add("type", "required: one of "+typeList())
	case !s.Type.Known():
		add("type", "must be one of "+typeList())
	case !s.Type.Supported():
		add("type", "not supported yet: this deployment processes access and discovery requests")
	}
	if s.Subject == nil {
		add("subject", "required: an object with at least one of email, phone, ids")
	} else {
		sub := s.Subject
		if sub.Email == "" && sub.Phone == "" && len(sub.IDs) == 0 {
			add("subject", "at least one of email, phone, ids is required")
		}
		if sub.Email != "" {
			if e, err := match.NormalizeEmail(sub.Email); err != nil {
				add("subject.email", "is not a valid email address")
			} else {
				sub.Email = e
			}
		}
		if sub.Phone != "" {
			if p, err := match.NormalizePhone(sub.Phone, phoneRegion); err != nil {
				detail := "is not a valid phone number"
				if phoneRegion == "" {
					detail += " in international format (+ and country code)"
				}
				add("subject.phone", detail)
			} else {
				sub.Phone = "+" + p
			}
		}
		sub.Name = strings.TrimSpace(sub.Name)
		if utf8.RuneCountInString(sub.Name) > maxNameLen {
			add("subject.name", fmt.Sprintf("must be at most %d characters", maxNameLen))
		}
		if len(sub.IDs) > maxIDs {
			add("subject.ids", fmt.Sprintf("at most %d ids", maxIDs))
		}
		for _, k := range sortedKeys(sub.IDs) {
			v := strings.TrimSpace(sub.IDs[k])
			if !idName.MatchString(k) {
				add("subject.ids", "id names must match "+idName.String())
				continue
			}
			if v == "" || len(v) > maxIDValue {
				add("subject.ids."+k, fmt.Sprintf("must be a non-empty string of at most %d bytes", maxIDValue))
			}
			sub.IDs[k] = v
		}
	}
	if s.ReceivedAt != nil {
		if s.ReceivedAt.After(now.Add(5 * time.Minute)) {
			add("receivedAt", "must not be in the future")
		}
		if s.ReceivedAt.Year() < 2016 {
			add("receivedAt", "must not be before 2016")
		}
	}
	if utf8.RuneCountInString(s.Note) > maxNoteLen {
		add("note", fmt.Sprintf("must be at most %d characters", maxNoteLen))
	}
	if len(s.Corrections) > 0 && s.Type != TypeRectification {
		add("corrections", "only allowed on rectification requests")
	}
	if s.Lift && s.Type != TypeRestriction {
		add("lift", "only allowed on restriction requests")
	}
	if s.TransmitTo != "" {
		if s.Type != TypePortability {
			add("transmitTo", "only allowed on portability requests")
		} else if err := CheckTransmitTo(s.TransmitTo); err != nil {
			add("transmitTo", err.Error())
		}
	}
	if v := s.Verification; v != nil {
		if v.Method != VerifyOperator {
			add("verification.method", `must be "operator": the caller checked the requester's identity itself`)
		}
		if utf8.RuneCountInString(v.Note) > maxVerifyNote {
			add("verification.note", fmt.Sprintf("must be at most %d characters", maxVerifyNote))
		}
	}
	if s.Agent != nil {
		validateAgent(s.Agent, add)
	}
	if len(s.Corrections) > maxCorrects {
		add("corrections", fmt.Sprintf("at most %d corrections", maxCorrects))
	}
	if s.Type == TypeRectification {
		if len(s.Corrections) == 0 {
			add("corrections", "required: the new values, e.g. {\"email\": \"...\"}")
		}
		for _, k := range sortedKeys(s.Corrections) {
			v := strings.TrimSpace(s.Corrections[k])
			switch k {
			case "email":
				if e, err := match.NormalizeEmail(v); err != nil {
					add("corrections.email", "is not a valid email address")
				} else {
					s.Corrections[k] = e
				}
			case "phone":
				if p, err := match.NormalizePhone(v, phoneRegion); err != nil {
					add("corrections.phone", "is not a valid phone number")
				} else {
					s.Corrections[k] = "+" + p
				}
			case "name":
				if v == "" || utf8.RuneCountInString(v) > maxNameLen {
					add("corrections.name", fmt.Sprintf("must be 1 to %d characters", maxNameLen))
				} else {
					s.Corrections[k] = v
				}
			default:
				add("corrections", "only email, phone and name can be corrected")
			}
		}
		if s.Subject != nil {
			if _, ok := s.Corrections["email"]; ok && s.Subject.Email == "" {
				add("subject.email", "required to correct the email: the current address to replace")
			}
			if _, ok := s.Corrections["phone"]; ok && s.Subject.Phone == "" {
				add("subject.phone", "required to correct the phone: the current number to replace")
			}
			if _, ok := s.Corrections["name"]; ok && s.Subject.Name == "" {
				add("subject.name", "required to correct the name: the current name to replace")
			}
		}
	}
	return errs
}

// typeList names the request types for error details.
func typeList() string {
	names := make([]string, len(Types))
	for i, t := range Types {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// NewStored builds the stored request for a valid submission.
func NewStored(s *Submission, id, origin string, now time.Time) *Stored {
	now = now.UTC()
	received := now
	if s.ReceivedAt != nil {
		received = s.ReceivedAt.UTC()
	}
	st := &Stored{
		Request: Request{
			ID: id, Type: s.Type, CreatedAt: now, ReceivedAt: received, DueAt: DueAt(received),
			Origin: origin, Note: s.Note,
		},
		Subject:     *s.Subject,
		Corrections: s.Corrections,
		Lift:        s.Lift,
	}
	st.TransmitTo = s.TransmitTo
	if s.Agent != nil {
		a := *s.Agent // the stored request's own copy: the service adds the proof
		st.Agent = &a
	}
	if _, err := st.Advance(StageIntake, StateReceived, now, 1, ""); err != nil {
		// A validated submission has a type with a route.
		panic(fmt.Sprintf("dsr: new request: %v", err))
	}
	return st
}
