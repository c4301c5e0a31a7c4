package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/dsr-functions/dsr/shared/audit"
	"github.com/dsr-functions/dsr/shared/store"

	"github.com/dsr-functions/dsr/shared/dsr"
)

// Request is a request document (GET /api/requests/{id} and the answers of
// every decision): the typed form and the JSON as received.
type Request struct {
	dsr.Request
	JSON json.RawMessage `json:"-"`
}

// Summary is one entry of a listing; listings carry no subject identifiers.
type Summary = store.Summary

// Page is one page of GET /api/requests.
type Page struct {
	Items         []Summary       `json:"items"`
	NextPageToken string          `json:"nextPageToken,omitempty"`
	JSON          json.RawMessage `json:"-"`
}

// ListOptions are the filters and paging of GET /api/requests; zero values
// are left out.
type ListOptions struct {
	State dsr.State
	Type  dsr.Type
	// Overdue: open requests past their deadline.
	Overdue bool
	// DueBefore: requests due before this instant.
	DueBefore time.Time
	// Limit is the page size, 1 to 200 (the API's default is 50).
	Limit     int
	PageToken string
}

// Actor is who did something, as the audit trail names them.
type Actor = audit.Actor

// AuditEntry is one entry of a request's audit trail.
type AuditEntry = audit.Entry

// Trail is GET /api/requests/{id}/audit: the entries, oldest first.
type Trail struct {
	Items []AuditEntry    `json:"items"`
	JSON  json.RawMessage `json:"-"`
}

// Link is POST /api/requests/{id}/export-link: a short-lived read-only link
// to the export package, with the package's size and SHA-256 (lower-case
// hex) to check the download against. The URL holds a SAS signature: treat
// it as a secret until it expires.
type Link struct {
	URL       string          `json:"url"`
	ExpiresAt time.Time       `json:"expiresAt"`
	Bytes     int64           `json:"bytes"`
	SHA256    string          `json:"sha256"`
	JSON      json.RawMessage `json:"-"`
}

// ErrBadID is returned, before any call, for a string that is not a request
// id. The string itself is not repeated: a mistyped argument may be an
// email address.
var ErrBadID = errors.New("not a request id (ids look like r019ac3d5e7f1a2b3c4d5e6f7a8b9)")

func requestPath(id string, tail ...string) (string, error) {
	if !dsr.ValidID(id) {
		return "", ErrBadID
	}
	p := "/api/requests/" + url.PathEscape(id)
	for _, t := range tail {
		p += "/" + t
	}
	return p, nil
}

// decode reads a JSON answer into v and keeps the raw bytes in *raw.
func decode(method, path string, a *answer, v any, raw *json.RawMessage) error {
	if err := json.Unmarshal(a.body, v); err != nil {
		return fmt.Errorf("%s %s: the answer is not the expected JSON: %w", method, path, err)
	}
	*raw = a.body
	return nil
}

// Create submits a request (POST /api/requests). body is the submission
// JSON, sent as is; the API validates it and answers with problem details
// naming the field at fault. A non-empty idempotencyKey makes a retry
// return the same request; replayed reports that it did.
func (cl *Client) Create(ctx context.Context, body []byte, idempotencyKey string) (req *Request, replayed bool, err error) {
	c := call{method: http.MethodPost, path: "/api/requests", body: body, header: http.Header{}}
	if idempotencyKey != "" {
		c.header.Set("Idempotency-Key", idempotencyKey)
	}
	a, err := cl.do(ctx, c)
	if err != nil {
		return nil, false, err
	}
	req = &Request{}
	if err := decode(c.method, c.path, a, req, &req.JSON); err != nil {
		return nil, false, err
	}
	return req, a.header.Get("Idempotent-Replayed") == "true", nil
}

// Get reads a request document (GET /api/requests/{id}).
func (cl *Client) Get(ctx context.Context, id string) (*Request, error) {
	return cl.requestCall(ctx, http.MethodGet, id, "", nil)
}

// Approve lets a request awaiting approval go on (POST …/approve).
func (cl *Client) Approve(ctx context.Context, id string) (*Request, error) {
	return cl.requestCall(ctx, http.MethodPost, id, "approve", nil)
}

// Redrive puts a failed request back into the step where it failed, which
// runs again (POST …/redrive).
func (cl *Client) Redrive(ctx context.Context, id string) (*Request, error) {
	return cl.requestCall(ctx, http.MethodPost, id, "redrive", nil)
}

// Reject declines a request awaiting approval (POST …/reject); the reason is
// required and is told to the subject (Art. 12(4)).
func (cl *Client) Reject(ctx context.Context, id, reason string) (*Request, error) {
	return cl.requestCall(ctx, http.MethodPost, id, "reject", map[string]any{"reason": reason})
}

// Cancel ends an open request (POST …/cancel); the reason is optional.
func (cl *Client) Cancel(ctx context.Context, id, reason string) (*Request, error) {
	var body any
	if reason != "" {
		body = map[string]any{"reason": reason}
	}
	return cl.requestCall(ctx, http.MethodPost, id, "cancel", body)
}

// Extend moves the deadline by months (1 or 2 in all, Art. 12(3)) for the
// given reason (POST …/extend).
func (cl *Client) Extend(ctx context.Context, id string, months int, reason string) (*Request, error) {
	return cl.requestCall(ctx, http.MethodPost, id, "extend", map[string]any{"months": months, "reason": reason})
}

func (cl *Client) requestCall(ctx context.Context, method, id, action string, body any) (*Request, error) {
	var tail []string
	if action != "" {
		tail = []string{action}
	}
	path, err := requestPath(id, tail...)
	if err != nil {
		return nil, err
	}
	c := call{method: method, path: path}
	if body != nil {
		if c.body, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("%s %s: encode body: %w", method, path, err)
		}
	}
	a, err := cl.do(ctx, c)
	if err != nil {
		return nil, err
	}
	req := &Request{}
	if err := decode(method, path, a, req, &req.JSON); err != nil {
		return nil, err
	}
	return req, nil
}

// List reads one page of requests, oldest first (GET /api/requests).
func (cl *Client) List(ctx context.Context, o ListOptions) (*Page, error) {
	q := url.Values{}
	if o.State != "" {
		q.Set("state", string(o.State))
	}
	if o.Type != "" {
		q.Set("type", string(o.Type))
	}
	if o.Overdue {
		q.Set("overdue", "true")
	}
	if !o.DueBefore.IsZero() {
		q.Set("dueBefore", o.DueBefore.UTC().Format(time.RFC3339))
	}
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.PageToken != "" {
		q.Set("pageToken", o.PageToken)
	}
	c := call{method: http.MethodGet, path: "/api/requests", query: q}
	a, err := cl.do(ctx, c)
	if err != nil {
		return nil, err
	}
	p := &Page{}
	if err := decode(c.method, c.path, a, p, &p.JSON); err != nil {
		return nil, err
	}
	return p, nil
}

// Audit reads a request's audit trail (GET …/audit).
func (cl *Client) Audit(ctx context.Context, id string) (*Trail, error) {
	path, err := requestPath(id, "audit")
	if err != nil {
		return nil, err
	}
	c := call{method: http.MethodGet, path: path}
	a, err := cl.do(ctx, c)
	if err != nil {
		return nil, err
	}
	t := &Trail{}
	if err := decode(c.method, c.path, a, t, &t.JSON); err != nil {
		return nil, err
	}
	return t, nil
}

// ExportLink mints a fresh link to a completed access request's package
// (POST …/export-link). The API answers 409 export-not-ready before the
// package exists and 409 no-export for types that make none.
func (cl *Client) ExportLink(ctx context.Context, id string) (*Link, error) {
	path, err := requestPath(id, "export-link")
	if err != nil {
		return nil, err
	}
	c := call{method: http.MethodPost, path: path}
	a, err := cl.do(ctx, c)
	if err != nil {
		return nil, err
	}
	l := &Link{}
	if err := decode(c.method, c.path, a, l, &l.JSON); err != nil {
		return nil, err
	}
	return l, nil
}
