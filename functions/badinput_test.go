package functions_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Every bad input gets its own specific RFC 9457 answer, naming the field,
// and leaves no trace: nothing stored, nothing enqueued, nothing echoed.
func TestBadInputsAreRefusedAndLeaveNoTrace(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	big := `{"type":"access","subject":{"email":"a@b.example"},"note":"` + strings.Repeat("x", 70_000) + `"}`
	cases := []struct {
		name, method, path, body string
		header                   []string
		status                   int
		code, field              string
	}{
		{"malformed json", "POST", "/api/requests", `{"type":"access",`, nil, 400, "malformed-json", ""},
		{"not json at all", "POST", "/api/requests", `type=access`, nil, 400, "malformed-json", ""},
		{"trailing data", "POST", "/api/requests", demoAccess + `{}`, nil, 400, "malformed-json", ""},
		{"array body", "POST", "/api/requests", `[` + demoAccess + `]`, nil, 400, "wrong-type", "(body)"},
		{"empty body", "POST", "/api/requests", ` `, nil, 400, "empty-body", ""},
		{"unknown field", "POST", "/api/requests", `{"type":"access","subject":{"email":"a@b.example"},"priority":1}`, nil, 400, "unknown-field", "priority"},
		{"unknown subject field", "POST", "/api/requests", `{"type":"access","subject":{"email":"a@b.example","ssn":"1"}}`, nil, 400, "unknown-field", "subject.ssn"},
		{"type is a number", "POST", "/api/requests", `{"type":1,"subject":{"email":"a@b.example"}}`, nil, 400, "wrong-type", "type"},
		{"subject is a string", "POST", "/api/requests", `{"type":"access","subject":"a@b.example"}`, nil, 400, "wrong-type", "subject"},
		{"id value is a number", "POST", "/api/requests", `{"type":"access","subject":{"ids":{"contactId":7}}}`, nil, 400, "wrong-type", "subject.ids"},
		{"receivedAt not a date", "POST", "/api/requests", `{"type":"access","subject":{"email":"a@b.example"},"receivedAt":"yesterday"}`, nil, 400, "wrong-type", "receivedAt"},
		{"receivedAt in the future", "POST", "/api/requests", `{"type":"access","subject":{"email":"a@b.example"},"receivedAt":"2999-01-01T00:00:00Z"}`, nil, 422, "invalid-request", "receivedAt"},
		{"no identifier", "POST", "/api/requests", `{"type":"access","subject":{"name":"Avery Morgan"}}`, nil, 422, "invalid-request", "subject"},
		{"no subject", "POST", "/api/requests", `{"type":"access"}`, nil, 422, "invalid-request", "subject"},
		{"invalid email", "POST", "/api/requests", `{"type":"access","subject":{"email":"avery.morgan@"}}`, nil, 422, "invalid-request", "subject.email"},
		{"invalid phone", "POST", "/api/requests", `{"type":"access","subject":{"phone":"12"}}`, nil, 422, "invalid-request", "subject.phone"},
		{"national phone without region", "POST", "/api/requests", `{"type":"access","subject":{"phone":"(425) 555-0199"}}`, nil, 422, "invalid-request", "subject.phone"},
		{"missing type", "POST", "/api/requests", `{"subject":{"email":"a@b.example"}}`, nil, 422, "invalid-request", "type"},
		{"unknown type", "POST", "/api/requests", `{"type":"delete-everything","subject":{"email":"a@b.example"}}`, nil, 422, "invalid-request", "type"},
		{"erasure with corrections", "POST", "/api/requests", `{"type":"erasure","subject":{"email":"a@b.example"},"corrections":{"name":"A"}}`, nil, 422, "invalid-request", "corrections"},
		{"rectification without the current name", "POST", "/api/requests", `{"type":"rectification","subject":{"email":"a@b.example"},"corrections":{"name":"A"}}`, nil, 422, "invalid-request", "subject.name"},
		{"rectification without corrections", "POST", "/api/requests", `{"type":"rectification","subject":{"email":"a@b.example"}}`, nil, 422, "invalid-request", "corrections"},
		{"lift on an access request", "POST", "/api/requests", `{"type":"access","subject":{"email":"a@b.example"},"lift":true}`, nil, 422, "invalid-request", "lift"},
		{"corrections on access", "POST", "/api/requests", `{"type":"access","subject":{"email":"a@b.example"},"corrections":{"name":"A"}}`, nil, 422, "invalid-request", "corrections"},
		{"invalid id name", "POST", "/api/requests", `{"type":"access","subject":{"ids":{"contact id":"1"}}}`, nil, 422, "invalid-request", "subject.ids"},
		{"oversize body", "POST", "/api/requests", big, nil, 413, "body-too-large", ""},
		{"wrong content type", "POST", "/api/requests", demoAccess, []string{"Content-Type", "text/plain"}, 415, "unsupported-media-type", ""},
		{"missing content type", "POST", "/api/requests", demoAccess, []string{"Content-Type", ""}, 415, "unsupported-media-type", ""},
		{"idempotency key with control characters", "POST", "/api/requests", demoAccess, []string{"Idempotency-Key", "a\tb"}, 400, "invalid-parameter", "Idempotency-Key"},
		{"malformed id", "GET", "/api/requests/..%2Fstate", "", nil, 400, "invalid-parameter", "id"},
		{"unknown id", "GET", "/api/requests/r000000000000aaaaaaaaaaaaaaaa", "", nil, 404, "request-not-found", ""},
		{"bad state filter", "GET", "/api/requests?state=done", "", nil, 400, "invalid-parameter", "state"},
		{"bad type filter", "GET", "/api/requests?type=x", "", nil, 400, "invalid-parameter", "type"},
		{"limit too large", "GET", "/api/requests?limit=100000", "", nil, 400, "invalid-parameter", "limit"},
		{"unknown query parameter", "GET", "/api/requests?email=a@b.example", "", nil, 400, "invalid-parameter", "email"},
		{"forged page token", "GET", "/api/requests?pageToken=bm9wZQ", "", nil, 400, "invalid-parameter", "pageToken"},
		{"export link for unknown id", "POST", "/api/requests/r000000000000aaaaaaaaaaaaaaaa/export-link", "", nil, 404, "request-not-found", ""},
		{"undeclared route", "DELETE", "/api/requests", "", nil, 404, "not-found", ""},
		{"restriction lookup without identifier", "GET", "/api/restrictions", "", nil, 400, "invalid-parameter", "query"},
		{"restriction lookup by two identifiers", "GET", "/api/restrictions?email=a@b.example&phone=%2B14255550199", "", nil, 400, "invalid-parameter", "query"},
		{"restriction lookup by an invalid email", "GET", "/api/restrictions?email=avery.morgan@", "", nil, 400, "invalid-parameter", "email"},
		{"restriction lookup by an unknown key", "GET", "/api/restrictions?name=Avery+Morgan", "", nil, 400, "invalid-parameter", "name"},
	}
	if len(cases) < 20 {
		t.Fatal("the contract asks for at least 20 bad inputs")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := h.do(tc.method, tc.path, tc.body, tc.header...)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q", ct)
			}
			var p struct {
				Type   string `json:"type"`
				Title  string `json:"title"`
				Status int    `json:"status"`
				Detail string `json:"detail"`
				Code   string `json:"code"`
				Errors []struct {
					Field string `json:"field"`
				} `json:"errors"`
			}
			if err := json.Unmarshal(b, &p); err != nil {
				t.Fatal(err)
			}
			if p.Code != tc.code || p.Status != tc.status || p.Title == "" || p.Type == "" {
				t.Fatalf("problem %s, want code %s", b, tc.code)
			}
			if tc.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != tc.field) {
				t.Fatalf("problem names %+v, want field %s", p.Errors, tc.field)
			}
			for _, secret := range []string{"a@b.example", "avery.morgan@", "Avery Morgan", "(425) 555-0199"} {
				if strings.Contains(string(b), secret) {
					t.Fatalf("problem echoes submitted data %q: %s", secret, b)
				}
			}
		})
	}
	if names := h.blobNames(h.cfg.StateContainer); len(names) != 0 {
		t.Fatalf("bad input left state behind: %v", names)
	}
	if !h.broker.Idle() {
		t.Fatal("bad input enqueued work")
	}
	if resp, _ := h.do("GET", "/api/health", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("health: %d", resp.StatusCode)
	}
}
