package functions_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/queue"
	"github.com/dsr-functions/dsr/shared/sample"
)

// recordingSender keeps a copy of every message the app sends.
type recordingSender struct {
	next queue.Sender
	mu   sync.Mutex
	sent []string
}

func (r *recordingSender) Send(ctx context.Context, q string, m queue.Message) error {
	r.mu.Lock()
	r.sent = append(r.sent, fmt.Sprintf("%s %s %s %v %s", q, m.ID, m.Subject, m.Properties, m.Body))
	r.mu.Unlock()
	return r.next.Send(ctx, q, m)
}

func (r *recordingSender) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.sent, "\n")
}

// leaks finds the demo subject's identifiers in text: her email in any case,
// her phone in any format, her name.
var leakPatterns = []*regexp.Regexp{
	regexp.MustCompile(`(?i)avery[ ._]?morgan`),
	regexp.MustCompile(`(?i)morgan@`),
	regexp.MustCompile(`\+?1?[\s.(-]*425[\s.)-]*555[\s.-]*0199`),
	regexp.MustCompile(`14255550199|4255550199`),
	regexp.MustCompile(sample.DemoContactID),
}

func leaks(text string) []string {
	var found []string
	for _, p := range leakPatterns {
		if m := p.FindString(text); m != "" {
			found = append(found, m)
		}
	}
	return found
}

// The leak detector itself catches what it must, so the test below can fail.
func TestLeakDetectorCatchesIdentifiers(t *testing.T) {
	for _, s := range []string{
		`{"msg":"x","email":"AVERY.MORGAN@CONTOSO.EXAMPLE"}`, "Avery Morgan", "call +1 (425) 555-0199",
		"425.555.0199", "tel:14255550199", "contact " + sample.DemoContactID,
	} {
		if len(leaks(s)) == 0 {
			t.Errorf("detector misses %q", s)
		}
	}
	if got := leaks(`{"requestId":"r01a2","records":12,"dataset":"contacts"}`); len(got) != 0 {
		t.Errorf("detector flags clean text: %v", got)
	}
}

// Every request type, run end to end, leaves none of the subject's
// identifiers in logs, queue messages, error bodies or API answers.
func TestNoPersonalDataInLogsMessagesOrErrors(t *testing.T) {
	h := newHarness(t, harnessOptions{maxDelivery: 2})
	rec := &recordingSender{next: h.app.Service.Sender}
	h.app.Service.Sender = rec
	subject := `{"email":"Avery.Morgan@Contoso.example","phone":"+1 (425) 555-0199","name":"Avery Morgan","ids":{"contactId":"` + sample.DemoContactID + `"}}`
	var answers []string
	note := func(status int, b []byte) { answers = append(answers, fmt.Sprintf("%d %s", status, b)) }

	// access, discovery and erasure run to the end.
	for _, typ := range []string{"access", "discovery", "erasure"} {
		doc := h.submit(`{"type":"` + typ + `","subject":` + subject + `,"note":"by phone"}`)
		h.approveWhenAsked(doc.ID)
		h.waitTerminal(doc.ID)
		resp, b := h.do("GET", "/api/requests/"+doc.ID, "")
		note(resp.StatusCode, b)
		resp, b = h.do("GET", "/api/requests/"+doc.ID+"/audit", "")
		note(resp.StatusCode, b)
	}
	// the other types are refused for now: their error bodies count too.
	for _, typ := range []string{"rectification", "restriction"} {
		body := `{"type":"` + typ + `","subject":` + subject + `}`
		if typ == "rectification" {
			body = `{"type":"rectification","subject":` + subject + `,"corrections":{"name":"Avery Morgan-Smith","email":"avery@contoso.example"}}`
		}
		resp, b := h.do("POST", "/api/requests", body)
		note(resp.StatusCode, b)
	}
	// invalid identifiers, echoed nowhere.
	for _, bad := range []string{
		`{"type":"access","subject":{"email":"avery.morgan@@contoso.example"}}`,
		`{"type":"access","subject":{"phone":"425-555-0199x-avery"}}`,
		`{"type":"access","subject":{"email":"avery.morgan@contoso.example","avery.morgan@contoso.example":1}}`,
		`{"type":"access","subject":{"name":"Avery Morgan"}}`,
	} {
		resp, b := h.do("POST", "/api/requests", bad)
		note(resp.StatusCode, b)
	}
	// the intake queue, valid and invalid.
	ctx := context.Background()
	if err := h.broker.Send(ctx, "dsr-intake", queue.Message{ID: "crm-1", Body: []byte(`{"type":"access","subject":` + subject + `}`)}); err != nil {
		t.Fatal(err)
	}
	if err := h.broker.Send(ctx, "dsr-intake", queue.Message{ID: "crm-2", Body: []byte(`{"type":"access","subject":{"email":"avery.morgan@"}}`)}); err != nil {
		t.Fatal(err)
	}
	// list views.
	resp, b := h.do("GET", "/api/requests?limit=200", "")
	note(resp.StatusCode, b)
	for _, it := range h.list("") {
		h.approveWhenAsked(it.ID)
		h.waitTerminal(it.ID)
	}
	// and a request that fails: its error must not carry data either.
	failing := newHarness(t, harnessOptions{maxDelivery: 2, env: map[string]string{"DSR_STAGE_RETRIES": "1"}})
	failing.app.Service.Connector = unreachable{failing.app.Service.Connector}
	failRec := &recordingSender{next: failing.app.Service.Sender}
	failing.app.Service.Sender = failRec
	doc := failing.submit(`{"type":"access","subject":` + subject + `}`)
	failed, _ := failing.waitTerminal(doc.ID)
	resp, b = failing.do("GET", "/api/requests/"+doc.ID, "")
	note(resp.StatusCode, b)
	// The failure is audited just after it is saved.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, b = failing.do("GET", "/api/requests/"+doc.ID+"/audit", ""); strings.Contains(string(b), "stage-retries-exhausted") || time.Now().After(deadline) {
			break
		}
	}
	note(resp.StatusCode, b)
	if !strings.Contains(string(b), "stage-retries-exhausted") {
		t.Fatalf("the audit trail does not record the failure: %s", b)
	}
	if failed.Error == nil {
		t.Fatal("the failing request did not fail")
	}

	for what, text := range map[string]string{
		"logs":           h.logs.String() + failing.logs.String(),
		"queue messages": rec.all() + failRec.all() + peekAll(h, "dsr-intake-rejected"),
		"API answers":    strings.Join(answers, "\n"),
	} {
		if strings.TrimSpace(text) == "" {
			t.Fatalf("captured no %s: the test would prove nothing", what)
		}
		if found := leaks(text); len(found) > 0 {
			t.Errorf("personal data in %s: %q", what, found)
		}
	}
}

func peekAll(h *harness, q string) string {
	var out []string
	for _, d := range h.broker.Peek(q) {
		out = append(out, fmt.Sprintf("%s %v %s", d.MessageID, d.Properties, d.Body))
	}
	return strings.Join(out, "\n")
}
