// Package api holds the HTTP plumbing the HTTP functions share: strict body
// reading (content type, size), JSON replies and problem details for input
// errors.
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/problem"
)

// WriteJSON sends v as application/json with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // links carry '&'; keep them copy-pasteable
	_ = enc.Encode(v)
}

// ReadJSONBody reads a request body that must be application/json and at
// most dsr.MaxBodyBytes long. On failure it returns the problem to send.
func ReadJSONBody(r *http.Request) ([]byte, *problem.Details) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, problem.New(http.StatusUnsupportedMediaType, "unsupported-media-type", "", "the body must be sent with Content-Type: application/json")
	}
	if r.ContentLength > dsr.MaxBodyBytes {
		return nil, tooLarge()
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, dsr.MaxBodyBytes+1))
	if err != nil {
		return nil, problem.New(http.StatusBadRequest, "unreadable-body", "", "the body could not be read")
	}
	if len(b) > dsr.MaxBodyBytes {
		return nil, tooLarge()
	}
	return b, nil
}

func tooLarge() *problem.Details {
	p := problem.New(http.StatusRequestEntityTooLarge, "body-too-large", "Request body too large", "the body must be at most 64 KiB")
	return p
}

// DecodeStrict decodes a JSON object body into v, refusing unknown fields,
// wrong types and trailing data, with a problem naming the field.
func DecodeStrict(body []byte, v any) *problem.Details {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return BadField(http.StatusBadRequest, "wrong-type", typ.Field, "has the wrong type")
		}
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			return BadField(http.StatusBadRequest, "unknown-field", strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "this field is not part of the API")
		}
		return problem.New(http.StatusBadRequest, "malformed-json", "Malformed JSON", "the body is not a valid JSON object")
	}
	if dec.More() {
		return problem.New(http.StatusBadRequest, "malformed-json", "Malformed JSON", "unexpected data after the JSON object")
	}
	if field, dup := dsr.DuplicateKey(body); dup {
		return BadField(http.StatusBadRequest, "duplicate-key", field, "given more than once; give each field once")
	}
	return nil
}

// BadField is a problem about one body field.
func BadField(status int, code, field, detail string) *problem.Details {
	p := problem.New(status, code, "", field+": "+detail)
	p.Errors = []problem.FieldError{{Field: field, Detail: detail}}
	return p
}

// InputProblem converts a validation error into problem details; other
// errors are not input problems and give nil.
func InputProblem(err error) *problem.Details {
	var ie *dsr.InputError
	if !errors.As(err, &ie) {
		return nil
	}
	detail := ie.Title
	if len(ie.Errors) > 0 {
		detail = ie.Errors[0].Field + ": " + ie.Errors[0].Detail
		if ie.Errors[0].Field == "" {
			detail = ie.Errors[0].Detail
		}
	}
	p := problem.New(ie.Status, ie.Code, ie.Title, detail)
	for _, fe := range ie.Errors {
		p.Errors = append(p.Errors, problem.FieldError{Field: fe.Field, Detail: fe.Detail})
	}
	return p
}

// BadParam is the problem for an invalid query or route parameter.
func BadParam(field, detail string) *problem.Details {
	p := problem.New(http.StatusBadRequest, "invalid-parameter", "Invalid parameter", field+": "+detail)
	p.Errors = []problem.FieldError{{Field: field, Detail: detail}}
	return p
}

// Internal is the problem for an unexpected failure; details go to the log.
func Internal() *problem.Details {
	return problem.New(http.StatusInternalServerError, "internal-error", "", "the request could not be processed; try again later")
}

// KeyParameter is the query parameter the Functions host takes a function
// key from (besides the x-functions-key header); the host forwards it to
// the handler, so every handler accepts and ignores it.
const KeyParameter = "code"

// Query parses a request's query strictly: a malformed query, a name that
// is not one of known, or a name given twice is a problem naming it (a
// second value is not silently ignored). The host's key parameter is
// dropped.
func Query(r *http.Request, known ...string) (url.Values, *problem.Details) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, BadParam("query", "is not a valid URL query")
	}
	delete(q, KeyParameter)
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		switch {
		case len(known) > 0 && !slices.Contains(known, name):
			return nil, BadParam(safeName(name), "unknown query parameter (known: "+strings.Join(known, ", ")+")")
		case len(q[name]) > 1:
			return nil, BadParam(safeName(name), "given more than once; give it once")
		}
	}
	return q, nil
}

// safeName is a parameter name as errors may show it: names that do not
// look like one (an address typed as a name, say) are not echoed.
func safeName(name string) string {
	for i, c := range name {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') || i >= 64 {
			return "(parameter)"
		}
	}
	if name == "" {
		return "(parameter)"
	}
	return name
}
