package functions_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sample"
)

// A second access request by the same person within DSR_REPEAT_WINDOW (by
// phone this time) is flagged with the first one in GET
// /api/requests/{id}, held for an operator, shown as a repeat in the
// console, and refused through reject with the reason and the Art. 12(4)
// notice; another repeat, approved, is exported. A request of another type
// is not flagged.
func TestRepeatRequestFlaggedAndRejected(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	first := h.submit(`{"type":"access","subject":{"email":"` + sample.DemoEmail + `","phone":"+1 425 555 0199"}}`)
	if done, _ := h.waitTerminal(first.ID); done.State != dsr.StateCompleted || len(done.RepeatOf) != 0 {
		t.Fatalf("first request: %s, repeatOf %+v", done.State, done.RepeatOf)
	}
	second := h.submit(`{"type":"access","subject":{"phone":"+14255550199"}}`)
	doc := h.waitState(second.ID, dsr.StateAwaitingApproval)
	if doc.State != dsr.StateAwaitingApproval || doc.Stage != dsr.StageApproval {
		t.Fatalf("repeat at %s/%s, want held for approval", doc.Stage, doc.State)
	}
	if len(doc.RepeatOf) != 1 || doc.RepeatOf[0].ID != first.ID || doc.RepeatOf[0].Type != dsr.TypeAccess || doc.RepeatOf[0].State != dsr.StateCompleted {
		t.Fatalf("repeatOf %+v, want the first request", doc.RepeatOf)
	}
	_, raw := h.do("GET", "/api/requests/"+second.ID, "")
	// (Whole identifiers: a timestamp's nanoseconds may hold "425".)
	if strings.Contains(string(raw), "4255550199") || strings.Contains(strings.ToLower(string(raw)), "avery") {
		t.Fatalf("the document holds an identifier: %s", raw)
	}
	var trail struct {
		Items []struct {
			Event, Detail string
		} `json:"items"`
	}
	_, b := h.do("GET", "/api/requests/"+second.ID+"/audit", "")
	if err := json.Unmarshal(b, &trail); err != nil {
		t.Fatal(err)
	}
	flagged := 0
	for _, e := range trail.Items {
		if e.Event == "repeat.flagged" && strings.Contains(e.Detail, first.ID) {
			flagged++
		}
	}
	if flagged != 1 {
		t.Fatalf("%d repeat.flagged audit entries naming the first request:\n%s", flagged, b)
	}

	// The console says so and links the earlier request.
	ops := h.signIn(staff("Alex", auth.RoleApprove, auth.RoleRead))
	page := "/api/console/requests/" + second.ID
	_, body := ops.get(page)
	for _, want := range []string{"Repeat request", `href="/api/console/requests/` + first.ID + `"`, "Art. 12(5)", `id="reject"`, `id="approve"`} {
		if !strings.Contains(body, want) {
			t.Fatalf("console page lacks %q:\n%s", want, body)
		}
	}
	if _, body := ops.get("/api/console/requests/" + first.ID); strings.Contains(body, "Repeat request") {
		t.Error("the first request is shown as a repeat")
	}

	// The list and the console's queue mark it.
	var listed struct {
		Items []struct {
			ID     string `json:"id"`
			Repeat bool   `json:"repeat"`
		} `json:"items"`
	}
	_, b = h.do("GET", "/api/requests?limit=200", "")
	if err := json.Unmarshal(b, &listed); err != nil {
		t.Fatal(err)
	}
	marked := map[string]bool{}
	for _, it := range listed.Items {
		marked[it.ID] = it.Repeat
	}
	if !marked[second.ID] || marked[first.ID] {
		t.Fatalf("list marks %v, want only %s", marked, second.ID)
	}
	if _, queue := ops.get("/api/console/"); !strings.Contains(queue, second.ID+`</a> <span class="badge wait"`) || strings.Count(queue, ">repeat</span>") != 1 {
		t.Fatalf("the queue does not mark the repeat:\n%s", queue)
	}

	reason := "We answered the same request from you days ago; nothing has changed since (Art. 12(5))."
	resp, body := ops.post(page+"/reject", url.Values{"csrf": {ops.csrf(body)}, "reason": {reason}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reject: %d\n%s", resp.StatusCode, body)
	}
	done, exp := h.get(second.ID)
	if done.State != dsr.StateRejected || done.Rejection == nil || done.Rejection.Reason != reason || done.Rejection.Notice != dsr.RefusalNotice || exp.URL != "" {
		t.Fatalf("after reject: %s %+v, export %q", done.State, done.Rejection, exp.URL)
	}

	// A third one, by email and phone, is a repeat of both; approved, it
	// goes on to its export.
	third := h.submit(`{"type":"access","subject":{"email":"` + sample.DemoEmail + `","phone":"+14255550199"}}`)
	if doc := h.waitState(third.ID, dsr.StateAwaitingApproval); doc.State != dsr.StateAwaitingApproval || len(doc.RepeatOf) != 2 ||
		doc.RepeatOf[0].ID != first.ID || doc.RepeatOf[1].ID != second.ID || doc.RepeatOf[1].State != dsr.StateRejected {
		t.Fatalf("third request at %s, repeatOf %+v", doc.State, doc.RepeatOf)
	}
	if resp, b := h.do("POST", "/api/requests/"+third.ID+"/approve", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("approve: %d %s", resp.StatusCode, b)
	}
	if done, exp := h.waitTerminal(third.ID); done.State != dsr.StateCompleted || exp.URL == "" || exp.Bytes == 0 {
		t.Fatalf("approved repeat ended %s/%s, export %+v", done.Stage, done.State, exp)
	}

	// Another type by the same person is no repeat.
	other := h.submit(`{"type":"discovery","subject":{"email":"` + sample.DemoEmail + `"}}`)
	if done, _ := h.waitTerminal(other.ID); done.State != dsr.StateCompleted || len(done.RepeatOf) != 0 {
		t.Fatalf("discovery after access: %s, repeatOf %+v", done.State, done.RepeatOf)
	}
}

// noRepeatFlagging is the setting of tests that submit the same request
// for the demo subject several times to test something else.
var noRepeatFlagging = map[string]string{"DSR_REPEAT_WINDOW": "0"}

// With DSR_REPEAT_WINDOW=0 nothing is flagged.
func TestRepeatFlaggingOff(t *testing.T) {
	h := newHarness(t, harnessOptions{env: noRepeatFlagging})
	for range 2 {
		doc := h.submit(demoAccess)
		if done, _ := h.waitTerminal(doc.ID); done.State != dsr.StateCompleted || len(done.RepeatOf) != 0 {
			t.Fatalf("%s, repeatOf %+v", done.State, done.RepeatOf)
		}
	}
}
