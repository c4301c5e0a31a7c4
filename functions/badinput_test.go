package functions_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/functions"
	"github.com/dsr-functions/dsr/shared/funchost"
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
		{"wrong method on the requests route", "DELETE", "/api/requests", "", nil, 405, "method-not-allowed", ""},
		{"wrong method on a request", "PUT", "/api/requests/r000000000000aaaaaaaaaaaaaaaa", "", nil, 405, "method-not-allowed", ""},
		{"GET on an action", "GET", "/api/requests/r000000000000aaaaaaaaaaaaaaaa/approve", "", nil, 405, "method-not-allowed", ""},
		{"PATCH on restrictions", "PATCH", "/api/restrictions", "{}", nil, 405, "method-not-allowed", ""},
		{"POST on health", "POST", "/api/health", "{}", nil, 405, "method-not-allowed", ""},
		{"undeclared route", "GET", "/api/nothing-here", "", nil, 404, "not-found", ""},
		{"restriction lookup without identifier", "GET", "/api/restrictions", "", nil, 400, "invalid-parameter", "query"},
		{"restriction lookup by two identifiers", "GET", "/api/restrictions?email=a@b.example&phone=%2B14255550199", "", nil, 400, "invalid-parameter", "query"},
		{"restriction lookup by an invalid email", "GET", "/api/restrictions?email=avery.morgan@", "", nil, 400, "invalid-parameter", "email"},
		{"restriction lookup by an unknown key", "GET", "/api/restrictions?name=Avery+Morgan", "", nil, 400, "invalid-parameter", "name"},
		{"type given twice", "POST", "/api/requests", `{"type":"access","subject":{"email":"a@b.example"},"type":"erasure"}`, nil, 400, "duplicate-key", "type"},
		{"email given twice", "POST", "/api/requests", `{"type":"access","subject":{"email":"a@b.example","email":"c@d.example"}}`, nil, 400, "duplicate-key", "subject.email"},
		{"escaped duplicate key", "POST", "/api/requests", `{"type":"access","subject":{"email":"a@b.example"},"t\u0079pe":"erasure"}`, nil, 400, "duplicate-key", "type"},
		{"state filter twice", "GET", "/api/requests?state=completed&state=failed", "", nil, 400, "invalid-parameter", "state"},
		{"limit twice", "GET", "/api/requests?limit=1&limit=200", "", nil, 400, "invalid-parameter", "limit"},
		{"restriction email twice", "GET", "/api/restrictions?email=a@b.example&email=c@d.example", "", nil, 400, "invalid-parameter", "email"},
		{"malformed query", "GET", "/api/requests?state=%zz", "", nil, 400, "invalid-parameter", "query"},
		{"unknown parameter that is an address", "GET", "/api/requests?a@b.example=1", "", nil, 400, "invalid-parameter", "(parameter)"},
		{"crafted page token", "GET", "/api/requests?pageToken=eyJzIjoxfQ", "", nil, 400, "invalid-parameter", "pageToken"},
		{"page token with a made-up mac", "GET", "/api/requests?pageToken=eyJzIjoxfQ.AAAAAAAAAAAAAAAAAAAAAA", "", nil, 400, "invalid-parameter", "pageToken"},
		{"dot-dot path", "GET", "/api/requests/../requests", "", nil, 404, "not-found", ""},
		{"dot-dot path to a webhook", "GET", "/api/webhooks/../requests", "", nil, 404, "not-found", ""},
		{"empty path segment", "GET", "/api//requests", "", nil, 404, "not-found", ""},
		{"encoded dot-dot path", "GET", "/api/webhooks/%2e%2E/requests", "", nil, 404, "not-found", ""},
		{"oversized headers", "GET", "/api/requests", "", []string{"X-Padding", strings.Repeat("x", 70<<10)}, 431, "headers-too-large", ""},
		{"transmitTo on an access request", "POST", "/api/requests", `{"type":"access","subject":{"email":"a@b.example"},"transmitTo":"https://controller.example/in"}`, nil, 422, "invalid-request", "transmitTo"},
		{"transmitTo over http", "POST", "/api/requests", `{"type":"portability","subject":{"email":"a@b.example"},"transmitTo":"http://controller.example/in"}`, nil, 422, "invalid-request", "transmitTo"},
		{"transmitTo a private address", "POST", "/api/requests", `{"type":"portability","subject":{"email":"a@b.example"},"transmitTo":"https://10.1.2.3/in"}`, nil, 422, "invalid-request", "transmitTo"},
		{"transmitTo the metadata service", "POST", "/api/requests", `{"type":"portability","subject":{"email":"a@b.example"},"transmitTo":"https://169.254.169.254/latest"}`, nil, 422, "invalid-request", "transmitTo"},
		{"transmitTo with credentials", "POST", "/api/requests", `{"type":"portability","subject":{"email":"a@b.example"},"transmitTo":"https://u:p@controller.example/in"}`, nil, 422, "invalid-request", "transmitTo"},
		{"transmitTo localhost", "POST", "/api/requests", `{"type":"portability","subject":{"email":"a@b.example"},"transmitTo":"https://localhost/in"}`, nil, 422, "invalid-request", "transmitTo"},
		{"transmitTo is a number", "POST", "/api/requests", `{"type":"portability","subject":{"email":"a@b.example"},"transmitTo":1}`, nil, 400, "wrong-type", "transmitTo"},
		{"lift is a string", "POST", "/api/requests", `{"type":"restriction","subject":{"email":"a@b.example"},"lift":"yes"}`, nil, 400, "wrong-type", "lift"},
		{"note too long", "POST", "/api/requests", `{"type":"access","subject":{"email":"a@b.example"},"note":"` + strings.Repeat("n", 2001) + `"}`, nil, 422, "invalid-request", "note"},
		{"name too long", "POST", "/api/requests", `{"type":"access","subject":{"email":"a@b.example","name":"` + strings.Repeat("n", 201) + `"}}`, nil, 422, "invalid-request", "subject.name"},
		{"id value too long", "POST", "/api/requests", `{"type":"access","subject":{"ids":{"contactId":"` + strings.Repeat("1", 257) + `"}}}`, nil, 422, "invalid-request", "subject.ids.contactId"},
		{"empty id value", "POST", "/api/requests", `{"type":"access","subject":{"ids":{"contactId":" "}}}`, nil, 422, "invalid-request", "subject.ids.contactId"},
		{"verification by another method", "POST", "/api/requests", `{"type":"access","subject":{"email":"a@b.example"},"verification":{"method":"selfie"}}`, nil, 422, "invalid-request", "verification.method"},
		{"verification note too long", "POST", "/api/requests", `{"type":"access","subject":{"email":"a@b.example"},"verification":{"method":"operator","note":"` + strings.Repeat("v", 501) + `"}}`, nil, 422, "invalid-request", "verification.note"},
		{"unknown verification field", "POST", "/api/requests", `{"type":"access","subject":{"email":"a@b.example"},"verification":{"method":"operator","by":"me"}}`, nil, 400, "unknown-field", "verification.by"},
		{"correction of an unknown field", "POST", "/api/requests", `{"type":"rectification","subject":{"email":"a@b.example","name":"A"},"corrections":{"iban":"x"}}`, nil, 422, "invalid-request", "corrections"},
		{"corrected email invalid", "POST", "/api/requests", `{"type":"rectification","subject":{"email":"a@b.example"},"corrections":{"email":"nope@"}}`, nil, 422, "invalid-request", "corrections.email"},
		{"receivedAt before 2016", "POST", "/api/requests", `{"type":"access","subject":{"email":"a@b.example"},"receivedAt":"2001-01-01T00:00:00Z"}`, nil, 422, "invalid-request", "receivedAt"},
		{"null body", "POST", "/api/requests", `null`, nil, 400, "wrong-type", "(body)"},
		{"body not UTF-8", "POST", "/api/requests", "{\"type\":\"access\",\"note\":\"\xff\"}", nil, 400, "malformed-json", ""},
		{"bad dueBefore", "GET", "/api/requests?dueBefore=soon", "", nil, 400, "invalid-parameter", "dueBefore"},
		{"bad overdue", "GET", "/api/requests?overdue=maybe", "", nil, 400, "invalid-parameter", "overdue"},
		{"bad followUp", "GET", "/api/requests?followUp=2", "", nil, 400, "invalid-parameter", "followUp"},
		{"limit zero", "GET", "/api/requests?limit=0", "", nil, 400, "invalid-parameter", "limit"},
		{"limit not a number", "GET", "/api/requests?limit=ten", "", nil, 400, "invalid-parameter", "limit"},
		{"audit of a malformed id", "GET", "/api/requests/not-an-id/audit", "", nil, 400, "invalid-parameter", "id"},
		{"letter of an unknown request", "GET", "/api/requests/r000000000000aaaaaaaaaaaaaaaa/letter", "", nil, 404, "request-not-found", ""},
		{"approve an unknown request", "POST", "/api/requests/r000000000000aaaaaaaaaaaaaaaa/approve", "", nil, 404, "request-not-found", ""},
		{"cancel an unknown request", "POST", "/api/requests/r000000000000aaaaaaaaaaaaaaaa/cancel", "", nil, 404, "request-not-found", ""},
	}
	if len(cases) < 80 {
		t.Fatal("the catalogue shrank")
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

// A method a route does not serve is answered 405 with the route's Allow
// header (the host forwards it because the route's function.json declares
// it); HEAD is GET without a body.
func TestWrongMethodsAnswer405WithAllow(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	for _, tc := range []struct{ method, path, allow string }{
		{"DELETE", "/api/requests", "GET, HEAD, POST"},
		{"OPTIONS", "/api/requests", "GET, HEAD, POST"},
		{"PUT", "/api/requests/r000000000000aaaaaaaaaaaaaaaa", "GET, HEAD"},
		{"GET", "/api/requests/r000000000000aaaaaaaaaaaaaaaa/approve", "POST"},
		{"DELETE", "/api/portal/", "GET, HEAD, POST"},
		{"POST", "/api/transmit-key", "GET, HEAD"},
	} {
		resp, b := h.do(tc.method, tc.path, "")
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 Allow %q: %s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), tc.allow, b)
		}
	}
	resp, b := h.do("HEAD", "/api/health", "")
	if resp.StatusCode != http.StatusOK || len(b) != 0 {
		t.Errorf("HEAD /api/health: %d with %d bytes", resp.StatusCode, len(b))
	}
}

// Every route declares every method of funchost.AllMethods exactly once
// over its functions, so the host forwards each one and the handler
// answers (405 for what Serves leaves out), and Serves lists only
// declared methods.
func TestEveryRouteAnswersEveryMethod(t *testing.T) {
	fns, err := functions.Definitions()
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]map[string]string{}
	for _, f := range fns {
		if f.Trigger().Type != funchost.HTTPTrigger {
			continue
		}
		if _, ok := functions.Serves[f.Name]; !ok {
			t.Errorf("%s: not in functions.Serves", f.Name)
		}
		for _, p := range f.Patterns() {
			m, route, _ := strings.Cut(p, " ")
			if declared[route] == nil {
				declared[route] = map[string]string{}
			}
			if other, dup := declared[route][m]; dup {
				t.Errorf("%s: %s and %s both declare %s", route, other, f.Name, m)
			}
			declared[route][m] = f.Name
		}
	}
	for route, methods := range declared {
		for _, m := range funchost.AllMethods {
			if methods[m] == "" {
				t.Errorf("%s: no function declares %s, so the host would answer it with a bare 404", route, m)
			}
		}
	}
}

// The function key in the code query parameter, which the host forwards to
// the handler, is accepted wherever queries are checked.
func TestKeyInQueryAccepted(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	for _, path := range []string{"/api/requests?code=" + harnessKey, "/api/requests?state=completed&code=" + harnessKey,
		"/api/restrictions?email=nobody%40example.org&code=" + harnessKey} {
		resp, b := h.do("GET", path, "", "x-functions-key", "")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d %s", strings.Replace(path, harnessKey, "KEY", 1), resp.StatusCode, b)
		}
	}
}

// The handler's own port serves the local host only: a local process that
// calls it directly, even with a function key and a forged principal, is
// refused; through the host the same call works.
func TestHandlerPortServesTheHostOnly(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	for _, token := range []string{"", "wrong", harnessHostToken + "x"} {
		req, _ := http.NewRequest("GET", h.handlerURL+"/api/requests", nil)
		req.Header.Set("x-functions-key", harnessKey)
		req.Header.Set("X-MS-CLIENT-PRINCIPAL", "eyJjbGFpbXMiOltdfQ")
		if token != "" {
			req.Header.Set(funchost.HostTokenHeader, token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("handler port with token %q: %d, want 401", token, resp.StatusCode)
		}
	}
	// A caller cannot pass a token through the host either: the host
	// replaces it.
	if resp, _ := h.do("GET", "/api/requests", "", funchost.HostTokenHeader, "forged"); resp.StatusCode != http.StatusOK {
		t.Errorf("through the host: %d", resp.StatusCode)
	}
}
