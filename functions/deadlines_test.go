package functions_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
)

func accessReceived(at time.Time) string {
	return `{"type":"access","subject":{"email":"avery.morgan@contoso.example"},"receivedAt":"` + at.UTC().Format(time.RFC3339) + `"}`
}

// Cancelling ends an open request; stages that run later do nothing, and
// the trail says who cancelled it.
func TestCancelStopsTheRequest(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	doc := h.submit(demoAccess)
	resp, b := h.do("POST", "/api/requests/"+doc.ID+"/cancel", `{"reason":"the subject withdrew the request"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cancel: %d %s", resp.StatusCode, b)
	}
	h.deliver("discover")
	got, _ := h.get(doc.ID)
	if got.State != dsr.StateCancelled || got.Discovery != nil || got.Cancellation == nil || got.Cancellation.Reason == "" {
		t.Fatalf("after cancel and a late discover: %+v", got)
	}
	if !h.broker.Idle() {
		t.Fatal("a cancelled request went on to the next stage")
	}
	if resp, b := h.do("POST", "/api/requests/"+doc.ID+"/cancel", ""); resp.StatusCode != http.StatusConflict {
		t.Fatalf("second cancel: %d %s", resp.StatusCode, b)
	}
	trail := h.auditTrail(doc.ID)
	last := trail[len(trail)-1]
	if last.State != "cancelled" || last.Actor.Kind != "key" {
		t.Fatalf("audit: %+v", trail)
	}
	if raw := h.auditRaw(doc.ID); strings.Contains(raw, "withdrew") {
		t.Fatal("the free-text reason reached the audit trail")
	}
	if items := h.list("&state=cancelled"); len(items) != 1 || items[0].ID != doc.ID {
		t.Fatalf("cancelled list: %+v", items)
	}
}

func (h *harness) auditRaw(id string) string {
	_, b := h.do("GET", "/api/requests/"+id+"/audit", "")
	return string(b)
}

func TestExtendMovesTheDeadlineWithinArticle12(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	received := time.Now().UTC().Add(-20 * 24 * time.Hour).Truncate(time.Second)
	doc := h.submit(accessReceived(received))

	for _, tc := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"months":3,"reason":"x"}`, 422, "invalid-request"},
		{`{"months":1}`, 422, "invalid-request"},
		{`{"months":"1","reason":"x"}`, 400, "wrong-type"},
		{`{"months":1,"reason":"x","by":"me"}`, 400, "unknown-field"},
	} {
		resp, b := h.do("POST", "/api/requests/"+doc.ID+"/extend", tc.body)
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.code) {
			t.Errorf("extend %s: %d %s", tc.body, resp.StatusCode, b)
		}
	}
	// Two extensions of a month each: both reasons are kept.
	if resp, b := h.do("POST", "/api/requests/"+doc.ID+"/extend", `{"months":1,"reason":"complex request"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("extend: %d %s", resp.StatusCode, b)
	}
	resp, b := h.do("POST", "/api/requests/"+doc.ID+"/extend", `{"months":1,"reason":"numerous requests from the subject"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("extend: %d %s", resp.StatusCode, b)
	}
	var got dsr.Request
	_ = json.Unmarshal(b, &got)
	if !got.DueAt.Equal(dsr.AddMonths(received, 3)) || got.OriginalDueAt == nil || !got.OriginalDueAt.Equal(dsr.DueAt(received)) {
		t.Fatalf("due %s original %v", got.DueAt, got.OriginalDueAt)
	}
	if got.Extension == nil || got.Extension.Months != 2 || len(got.Extensions) != 2 ||
		got.Extensions[0].Reason != "complex request" || got.Extensions[1].Reason != "numerous requests from the subject" {
		t.Fatalf("extensions: %+v %+v; want two, each with its reason", got.Extension, got.Extensions)
	}
	if resp, b := h.do("POST", "/api/requests/"+doc.ID+"/extend", `{"months":1,"reason":"more"}`); resp.StatusCode != http.StatusConflict {
		t.Fatalf("beyond two months: %d %s", resp.StatusCode, b)
	}
	if !strings.Contains(h.auditRaw(doc.ID), "deadline.extended") {
		t.Fatal("the extension is not in the audit trail")
	}

	late := h.submit(accessReceived(time.Now().UTC().Add(-40 * 24 * time.Hour)))
	if resp, b := h.do("POST", "/api/requests/"+late.ID+"/extend", `{"months":1,"reason":"too late"}`); resp.StatusCode != http.StatusConflict || !strings.Contains(string(b), "original deadline") {
		t.Fatalf("after the original deadline: %d %s", resp.StatusCode, b)
	}
}

func TestOverdueDueBeforeAndDueSoon(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	now := time.Now().UTC()
	overdue := h.submit(accessReceived(now.Add(-40 * 24 * time.Hour)))
	soon := h.submit(accessReceived(now.Add(-26 * 24 * time.Hour)))
	fresh := h.submit(accessReceived(now.Add(-1 * time.Hour)))
	ended := h.submit(accessReceived(now.Add(-50 * 24 * time.Hour)))
	if resp, b := h.do("POST", "/api/requests/"+ended.ID+"/cancel", ""); resp.StatusCode != 200 {
		t.Fatalf("cancel: %d %s", resp.StatusCode, b)
	}

	if got := h.list("&overdue=true"); len(got) != 1 || got[0].ID != overdue.ID {
		t.Fatalf("overdue: %+v", got)
	}
	if got := h.list("&dueBefore=" + now.Add(7*24*time.Hour).Format(time.RFC3339)); len(got) != 3 {
		t.Fatalf("dueBefore in a week: %+v (want overdue, soon and the cancelled one)", got)
	}
	if got := h.list("&dueBefore=" + now.Add(7*24*time.Hour).Format(time.RFC3339) + "&overdue=true"); len(got) != 1 {
		t.Fatalf("both filters: %+v", got)
	}
	for _, tc := range []struct {
		id   string
		want bool
	}{{overdue.ID, true}, {soon.ID, true}, {fresh.ID, false}, {ended.ID, false}} {
		if got, _ := h.get(tc.id); got.DueSoon != tc.want {
			t.Errorf("%s dueSoon %v, want %v", tc.id, got.DueSoon, tc.want)
		}
	}
	for _, q := range []string{"?overdue=yes", "?dueBefore=tomorrow"} {
		if resp, _ := h.do("GET", "/api/requests"+q, ""); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d", q, resp.StatusCode)
		}
	}
}
