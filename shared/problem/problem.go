// Package problem writes RFC 9457 problem details (application/problem+json).
package problem

import (
	"encoding/json"
	"net/http"
)

// ContentType is the media type of a problem details document.
const ContentType = "application/problem+json"

// FieldError names one field and what is wrong with it (never its value).
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// Details is an RFC 9457 problem details object with two extensions: a
// stable machine-readable code and the per-field errors.
type Details struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Code     string       `json:"code"`
	Errors   []FieldError `json:"errors,omitempty"`
}

// New returns problem details for a status, code and human-readable detail.
func New(status int, code, title, detail string) *Details {
	if title == "" {
		title = http.StatusText(status)
	}
	return &Details{Type: "urn:dsr-functions:problem:" + code, Title: title, Status: status, Detail: detail, Code: code}
}

// Write sends p as the response.
func Write(w http.ResponseWriter, r *http.Request, p *Details) {
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
