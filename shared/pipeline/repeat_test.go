package pipeline

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
)

const annAccess = `{"type":"access","subject":{"email":"ann@x.example"}}`

// repeatWorld is a world that flags repeats within 30 days.
func repeatWorld(t *testing.T) *world {
	w := newWorld(t)
	w.svc.RepeatWindow = 30 * 24 * time.Hour
	return w
}

// complete submits a request and runs it to completion (approving it if it
// waits), a day before the test goes on.
func (w *world) complete(body string) *dsr.Stored {
	w.t.Helper()
	id := w.submit(body)
	w.drain(1)
	if w.get(id).State == dsr.StateAwaitingApproval {
		if _, err := w.svc.Approve(context.Background(), id, dsr.Actor{Kind: "test"}); err != nil {
			w.t.Fatal(err)
		}
		w.drain(1)
	}
	st := w.get(id)
	if st.State != dsr.StateCompleted {
		w.t.Fatalf("%s ended %s/%s", body, st.Stage, st.State)
	}
	w.now = w.now.Add(24 * time.Hour)
	return st
}

func (w *world) repeatEntries(id string) []string {
	w.audit.mu.Lock()
	defer w.audit.mu.Unlock()
	var out []string
	for _, e := range w.audit.entries {
		if e.RequestID == id && e.Event == "repeat.flagged" {
			out = append(out, e.Detail)
		}
	}
	return out
}

// A second access request by the same email within the window is flagged
// with the first one, waits for an operator, and an approval continues it
// to its export.
func TestRepeatAccessIsHeldThenApprovedToExport(t *testing.T) {
	w := repeatWorld(t)
	first := w.complete(annAccess)
	if first.Repeat() {
		t.Fatalf("the first request is flagged: %+v", first.RepeatOf)
	}
	id := w.submit(`{"type":"access","subject":{"email":"Ann@X.example"}}`)
	st := w.get(id)
	want := []dsr.RepeatRef{{ID: first.ID, Type: dsr.TypeAccess, CreatedAt: first.CreatedAt, State: dsr.StateCompleted}}
	if !slices.Equal(st.RepeatOf, want) {
		t.Fatalf("repeatOf %+v, want %+v", st.RepeatOf, want)
	}
	details := w.repeatEntries(id)
	if len(details) != 1 || !strings.Contains(details[0], first.ID) || !strings.Contains(details[0], "Art. 12(5)") || strings.Contains(details[0], "ann@") {
		t.Fatalf("audit of the flag: %q", details)
	}
	if strings.Contains(w.logs.String(), "ann@") {
		t.Fatal("an identifier reached the logs")
	}
	w.drain(1)
	if st := w.get(id); st.Stage != dsr.StageApproval || st.State != dsr.StateAwaitingApproval {
		t.Fatalf("flagged request at %s/%s, want held for approval", st.Stage, st.State)
	}
	if len(w.pkgs.blobs) != 1 {
		t.Fatalf("%d packages before approval, want the first one only", len(w.pkgs.blobs))
	}
	if _, err := w.svc.Approve(context.Background(), id, dsr.Actor{Kind: "user", ID: "op"}); err != nil {
		t.Fatal(err)
	}
	if got := w.drain(1); !slices.Equal(got, []dsr.Stage{dsr.StageExport}) {
		t.Fatalf("after approval ran %v, want export", got)
	}
	st = w.get(id)
	if st.State != dsr.StateCompleted || st.ExportBlob == "" || len(w.pkgs.blobs) != 2 {
		t.Fatalf("approved repeat ended %s/%s with %d packages", st.Stage, st.State, len(w.pkgs.blobs))
	}
	if got, want := w.reqs.history(t, id), routeOf(dsr.TypeAccess, true); !slices.Equal(got, want) {
		t.Errorf("history %v, want %v", got, want)
	}
}

// An operator refuses a repeat with a reason: the request ends rejected
// with the Art. 12(4) notice and nothing is exported.
func TestRepeatRejectedWithReason(t *testing.T) {
	w := repeatWorld(t)
	first := w.complete(`{"type":"discovery","subject":{"email":"ann@x.example"}}`)
	id := w.submit(`{"type":"discovery","subject":{"email":"ann@x.example"}}`)
	w.drain(1)
	if st := w.get(id); st.State != dsr.StateAwaitingApproval || len(st.RepeatOf) != 1 || st.RepeatOf[0].ID != first.ID {
		t.Fatalf("repeat discovery at %s/%s, repeatOf %+v", st.Stage, st.State, st.RepeatOf)
	}
	reason := "The same request was answered 1 day ago (Art. 12(5))."
	st, err := w.svc.Reject(context.Background(), id, reason, dsr.Actor{Kind: "user", ID: "op"})
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dsr.StateRejected || st.Rejection == nil || st.Rejection.Reason != reason || st.Rejection.Notice != dsr.RefusalNotice {
		t.Fatalf("rejected: %s %+v", st.State, st.Rejection)
	}
	if got := w.drain(1); len(got) != 0 {
		t.Fatalf("a rejected request ran %v", got)
	}
}

// Only the same type within the window counts.
func TestRepeatOnlySameTypeWithinWindow(t *testing.T) {
	w := repeatWorld(t)
	first := w.complete(annAccess)
	w.complete(`{"type":"restriction","subject":{"email":"ann@x.example"}}`) // another type: not a repeat
	if st := w.get(w.submit(`{"type":"discovery","subject":{"email":"ann@x.example"}}`)); st.Repeat() {
		t.Fatalf("a discovery after an access request is flagged: %+v", st.RepeatOf)
	}
	w.drain(1)
	if st := w.get(w.submit(`{"type":"access","subject":{"email":"bob@y.example"}}`)); st.Repeat() {
		t.Fatal("another person's request is flagged")
	}
	w.drain(1)
	w.now = first.CreatedAt.Add(w.svc.RepeatWindow + time.Minute)
	st := w.complete(annAccess)
	if st.Repeat() {
		t.Fatalf("a request after the window is flagged: %+v", st.RepeatOf)
	}
	if got, want := w.reqs.history(t, st.ID), routeOf(dsr.TypeAccess, false); !slices.Equal(got, want) {
		t.Errorf("history %v, want %v", got, want)
	}
	// With flagging off, a repeat goes straight through.
	w.svc.RepeatWindow = 0
	if st := w.complete(annAccess); st.Repeat() {
		t.Fatal("flagged with DSR_REPEAT_WINDOW=0")
	}
}

// An earlier request nobody verified (waiting, or expired) or that was
// cancelled does not make a real one a repeat: anyone can submit one for
// someone's address.
func TestRepeatIgnoresUnverifiedExpiredAndCancelled(t *testing.T) {
	w := repeatWorld(t)
	withVerification(w)
	unverified, err := w.submitFrom("portal", annAccess)
	if err != nil {
		t.Fatal(err)
	}
	w.now = w.now.Add(time.Hour)
	if st := w.get(w.submit(annAccess)); st.Repeat() {
		t.Fatalf("flagged as a repeat of an unverified request: %+v", st.RepeatOf)
	}
	w.drain(1)
	w.now = w.now.Add(8 * 24 * time.Hour)
	if _, err := w.svc.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := w.get(unverified.ID); st.State != dsr.StateExpired {
		t.Fatalf("unverified request is %s", st.State)
	}
	cancelled := w.submit(`{"type":"erasure","subject":{"email":"ann@x.example"},"verification":{"method":"operator","note":"checked ID"}}`)
	if _, err := w.svc.Cancel(context.Background(), cancelled, "sent by mistake", dsr.Actor{Kind: "test"}); err != nil {
		t.Fatal(err)
	}
	// The second access request completed; only it counts for the third.
	st := w.get(w.submit(annAccess))
	for _, r := range st.RepeatOf {
		if r.ID == unverified.ID {
			t.Fatalf("the expired request counts: %+v", st.RepeatOf)
		}
	}
	if len(st.RepeatOf) != 1 || st.RepeatOf[0].State != dsr.StateCompleted {
		t.Fatalf("repeatOf %+v, want the completed access request only", st.RepeatOf)
	}
	er := w.get(w.submit(`{"type":"erasure","subject":{"email":"ann@x.example"},"verification":{"method":"operator","note":"checked ID"}}`))
	if er.Repeat() {
		t.Fatalf("flagged as a repeat of a cancelled request: %+v", er.RepeatOf)
	}
}

// A request that gives only a phone number is matched by it, however it
// is written.
func TestRepeatMatchedByPhone(t *testing.T) {
	w := repeatWorld(t)
	first := w.complete(`{"type":"access","subject":{"email":"ann@x.example","phone":"+14155552671"}}`)
	st := w.get(w.submit(`{"type":"access","subject":{"phone":"+1 (415) 555-2671"}}`))
	if len(st.RepeatOf) != 1 || st.RepeatOf[0].ID != first.ID {
		t.Fatalf("repeatOf %+v, want %s", st.RepeatOf, first.ID)
	}
	w.drain(1)
	if st := w.get(st.ID); st.State != dsr.StateAwaitingApproval {
		t.Fatalf("at %s/%s", st.Stage, st.State)
	}
	// A flagged erasure held anyway (DSR_APPROVAL_TYPES) still says why.
	byID := w.get(w.submit(`{"type":"erasure","subject":{"ids":{"contactId":"C1"}}}`))
	if byID.Repeat() {
		t.Fatal("the first erasure is flagged")
	}
	w.now = w.now.Add(time.Minute)
	again := w.get(w.submit(`{"type":"erasure","subject":{"email":"zed@x.example","ids":{"contactId":"C1"}}}`))
	if len(again.RepeatOf) != 1 || again.RepeatOf[0].ID != byID.ID || again.RepeatOf[0].State != dsr.StateReceived {
		t.Fatalf("repeatOf %+v, want the open erasure %s", again.RepeatOf, byID.ID)
	}
}

// A registry failure at intake loses nothing: the request is created, and
// discovery checks it before it searches, retrying until it can; the
// check and its audit entry happen once however often it runs.
func TestRepeatCheckDeferredAndIdempotent(t *testing.T) {
	w := repeatWorld(t)
	first := w.complete(annAccess)
	w.reqs.subjectsDown = true
	id := w.submit(annAccess)
	if st := w.get(id); st.Repeat() || st.RepeatChecked {
		t.Fatalf("checked while the registry was down: %+v", st.RepeatOf)
	}
	m, _, ok := w.sent.take(w.now)
	if !ok {
		t.Fatal("no discovery message")
	}
	sm, err := ParseStageMessage(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.RunStage(context.Background(), sm, 1); err == nil {
		t.Fatal("discovery went ahead without the repeat check")
	}
	if w.conn.discoveries != 1 {
		t.Fatalf("%d discoveries: one for the first request only", w.conn.discoveries)
	}
	w.reqs.subjectsDown = false
	for attempt := 2; attempt <= 3; attempt++ { // a retry, then a redelivery
		if err := w.svc.RunStage(context.Background(), sm, attempt); err != nil {
			t.Fatal(err)
		}
	}
	st := w.get(id)
	if st.State != dsr.StateAwaitingApproval || len(st.RepeatOf) != 1 || st.RepeatOf[0].ID != first.ID {
		t.Fatalf("at %s/%s, repeatOf %+v", st.Stage, st.State, st.RepeatOf)
	}
	if n := len(w.repeatEntries(id)); n != 1 {
		t.Fatalf("%d repeat.flagged entries", n)
	}
	// A submission repeated with its idempotency key lists nothing more.
	sub, err := dsr.ParseSubmission([]byte(annAccess), "", w.now)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, _, err := w.svc.Submit(context.Background(), sub, "key-1", "http", "test", dsr.Actor{Kind: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	key := SubjectKey(w.svc.Secret, "email", "ann@x.example")
	if n := len(w.reqs.subjects[key]); n != 3 || len(w.reqs.subjects) != 1 {
		t.Fatalf("registry lists %d requests under %d keys, want 3 under the email's", n, len(w.reqs.subjects))
	}
	if !strings.HasPrefix(key, "k_") || strings.Contains(key, "ann") {
		t.Fatalf("registry key %q is not a keyed hash", key)
	}
}

// A repeat that waited for its requester's code is held after discovery
// too, and an approved repeat discovery request completes.
func TestRepeatAfterVerificationHeldAndDiscoveryApproved(t *testing.T) {
	w := repeatWorld(t)
	mail := withVerification(w)
	first := w.complete(`{"type":"discovery","subject":{"email":"ann@x.example"}}`)
	st, err := w.submitFrom("portal", `{"type":"discovery","subject":{"email":"ann@x.example"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.RepeatOf) != 1 || st.RepeatOf[0].ID != first.ID || st.State != dsr.StateAwaitingVerification {
		t.Fatalf("portal repeat: %s, repeatOf %+v", st.State, st.RepeatOf)
	}
	if _, err := w.svc.VerifyCode(context.Background(), st.ID, mail.lastCode(t)); err != nil {
		t.Fatal(err)
	}
	w.drain(1)
	if got := w.get(st.ID); got.State != dsr.StateAwaitingApproval {
		t.Fatalf("verified repeat at %s/%s, want held for approval", got.Stage, got.State)
	}
	done, err := w.svc.Approve(context.Background(), st.ID, dsr.Actor{Kind: "user", ID: "op"})
	if err != nil {
		t.Fatal(err)
	}
	if done.State != dsr.StateCompleted || done.Stage != dsr.StageDone {
		t.Fatalf("approved repeat discovery: %s/%s", done.Stage, done.State)
	}
	if got := w.drain(1); len(got) != 0 {
		t.Fatalf("an approved discovery request sent %v", got)
	}
}
