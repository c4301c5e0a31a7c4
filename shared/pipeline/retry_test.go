package pipeline

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/queue"
	"github.com/dsr-functions/dsr/shared/sources"
)

// flaky is a connector whose discovery fails with err the first fails
// times (always when fails < 0), then works.
type flaky struct {
	sources.Connector
	fails int
	err   error
	calls int
}

func (f *flaky) Discover(ctx context.Context, subj sources.Subject) (*sources.Discovery, error) {
	f.calls++
	if f.fails < 0 || f.calls <= f.fails {
		return nil, f.err
	}
	return f.Connector.Discover(ctx, subj)
}

// handle takes the next due message and runs it as a stage queue's
// function does (HandleStage), as its deliveryCount-th delivery.
func (w *world) handle(deliveryCount int) (queue.Message, StageMessage, bool) {
	w.t.Helper()
	m, _, ok := w.sent.take(w.now)
	if !ok {
		return m, StageMessage{}, false
	}
	sm, err := ParseStageMessage(m.Body)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.svc.HandleStage(context.Background(), sm, m.ID, deliveryCount); err != nil {
		w.t.Fatalf("%s of %s: the invocation failed (the broker would redeliver): %v\n%s", sm.Stage, sm.RequestID, err, w.logs)
	}
	return m, sm, true
}

// queued are the messages waiting, due or not.
func (w *world) queued() []queue.Message {
	w.sent.mu.Lock()
	defer w.sent.mu.Unlock()
	return slices.Clone(w.sent.queued)
}

// jitter returns the given draws in turn (then 0).
func jitter(draws ...float64) func() float64 {
	return func() float64 {
		if len(draws) == 0 {
			return 0
		}
		r := draws[0]
		draws = draws[1:]
		return r
	}
}

var errReset = errors.New("dataset contacts: read blob crm/contacts.ndjson: connection reset by peer")

// A stage that fails for a while is retried on scheduled messages, each
// after a longer, jittered wait, every one delivered once (no delivery
// burnt), and the request completes when the system is back.
func TestFailingStageRetriedWithBackoff(t *testing.T) {
	w := newWorld(t)
	f := &flaky{Connector: w.conn, fails: 4, err: errReset}
	w.svc.Connector = f
	w.svc.StageBackoff = Backoff{Base: 2 * time.Second, Max: 12 * time.Second}
	w.svc.Rand = jitter(0, 0.5, 0.99, 0.25)
	id := w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)

	// Steps 2, 4, 8, 12 (capped) s; equal jitter: half fixed, half drawn.
	wantWaits := []time.Duration{1 * time.Second, 3 * time.Second, 4*time.Second + 3960*time.Millisecond, 6*time.Second + 1500*time.Millisecond}
	var waits []time.Duration
	for retry := 1; retry <= 4; retry++ {
		failedAt := w.now
		if _, _, ok := w.handle(1); !ok {
			t.Fatalf("no message for try %d", retry)
		}
		q := w.queued()
		if len(q) != 1 {
			t.Fatalf("after failure %d: %d messages waiting, want the one retry", retry, len(q))
		}
		m := q[0]
		sm, _ := ParseStageMessage(m.Body)
		if sm.Retry != retry || sm.Stage != dsr.StageDiscovery || m.ID != id+":discovery:retry:"+string(rune('0'+retry)) {
			t.Fatalf("retry %d: message %s %+v", retry, m.ID, sm)
		}
		waits = append(waits, m.ScheduledAt.Sub(failedAt))
		if _, _, ok := w.sent.take(w.now.Add(waits[len(waits)-1] - time.Millisecond)); ok {
			t.Fatalf("retry %d is due before its time", retry)
		}
		if st := w.get(id); st.State.Terminal() || !strings.Contains(st.LastAttemptError, "connection reset") {
			t.Fatalf("after failure %d: %s, last error %q", retry, st.State, st.LastAttemptError)
		}
		w.now = m.ScheduledAt
	}
	if !slices.Equal(waits, wantWaits) {
		t.Errorf("waits %v, want %v", waits, wantWaits)
	}
	for range 3 { // discovery (succeeds), export
		w.handle(1)
	}
	st := w.get(id)
	if st.State != dsr.StateCompleted || f.calls != 5 {
		t.Fatalf("after the system came back: %s, %d discoveries\n%v", st.State, f.calls, w.reqs.history(t, id))
	}
	// The attempt counts over retries: discovery finished on the fifth.
	for _, h := range st.History {
		if h.Stage == dsr.StageExport && h.State == dsr.StateInProgress && h.Attempt != 5 {
			t.Errorf("discovery finished on attempt %d, want 5", h.Attempt)
		}
	}
}

// A failure that retrying cannot cure (broken data, a missing secret)
// fails the request at once, saying why; nothing is scheduled.
func TestDeterministicFailureNotRetried(t *testing.T) {
	w := newWorld(t)
	f := &flaky{Connector: w.conn, fails: -1, err: &sources.DataError{Dataset: "contacts", Reason: "blob crm/contacts.ndjson line 7: not JSON"}}
	w.svc.Connector = f
	id := w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
	w.handle(1)
	st := w.get(id)
	if st.State != dsr.StateFailed || st.Error == nil || st.Error.Code != "stage-failed" || !strings.Contains(st.Error.Message, "line 7: not JSON") {
		t.Fatalf("after a data error: %s %+v", st.State, st.Error)
	}
	if q := w.queued(); len(q) != 0 || f.calls != 1 {
		t.Fatalf("a data error was retried: %d tries, %d messages waiting", f.calls, len(q))
	}

	// An erasure without the pseudonym secret.
	w = newWorld(t)
	w.svc.Secret = nil
	id = w.submit(`{"type":"erasure","subject":{"email":"ann@x.example"}}`)
	w.handle(1)
	if _, err := w.svc.Approve(context.Background(), id, dsr.Actor{Kind: "test"}); err != nil {
		t.Fatal(err)
	}
	w.handle(1)
	st = w.get(id)
	if st.State != dsr.StateFailed || st.Error.Code != "stage-failed" || !strings.Contains(st.Error.Message, "DSR_PSEUDONYM_SECRET") || st.Stage != dsr.StageErasure {
		t.Fatalf("erasure without a secret: %s/%s %+v", st.Stage, st.State, st.Error)
	}
	if q := w.queued(); len(q) != 0 {
		t.Fatalf("%d messages waiting after a permanent failure", len(q))
	}
	entries, _ := w.audit.ForRequest(context.Background(), id)
	if last := entries[len(entries)-1]; last.State != string(dsr.StateFailed) || !strings.Contains(last.Detail, "stage-failed") {
		t.Errorf("failure not audited: %+v", last)
	}
}

// A stage that keeps failing fails its request after the last retry, with
// the cause on the request, not only "dead-lettered".
func TestRetriesExhaustedFailWithCause(t *testing.T) {
	w := newWorld(t)
	f := &flaky{Connector: w.conn, fails: -1, err: errReset}
	w.svc.Connector = f
	w.svc.StageRetries = 3
	id := w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
	for range 10 {
		w.now = w.now.Add(time.Hour)
		if _, _, ok := w.handle(1); !ok {
			break
		}
	}
	st := w.get(id)
	if st.State != dsr.StateFailed || st.Error == nil || st.Error.Code != "stage-retries-exhausted" {
		t.Fatalf("after every retry: %s %+v", st.State, st.Error)
	}
	for _, want := range []string{"discovery", "4 times", "connection reset"} {
		if !strings.Contains(st.Error.Message, want) {
			t.Errorf("error %q lacks %q", st.Error.Message, want)
		}
	}
	if f.calls != 4 || len(w.queued()) != 0 {
		t.Fatalf("%d tries, %d messages left; want 4 tries (3 retries) and none", f.calls, len(w.queued()))
	}
	if strings.Contains(st.Error.Message, "ann@x.example") {
		t.Fatal("the failure holds personal data")
	}
}

// A message redelivered after its retry was scheduled (the process died
// before completing it) and failing again schedules no second retry; and a
// late message for a stage the request has left fails nothing.
func TestRedeliveredOriginalSchedulesNoSecondRetry(t *testing.T) {
	w := newWorld(t)
	f := &flaky{Connector: w.conn, fails: 2, err: errReset}
	w.svc.Connector = f
	id := w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
	m, _, _ := w.sent.take(w.now)
	sm, _ := ParseStageMessage(m.Body)
	for delivery := 1; delivery <= 2; delivery++ {
		if err := w.svc.HandleStage(context.Background(), sm, m.ID, delivery); err != nil {
			t.Fatal(err)
		}
	}
	q := w.queued()
	if len(q) != 1 || q[0].ID != id+":discovery:retry:1" {
		ids := []string{}
		for _, m := range q {
			ids = append(ids, m.ID)
		}
		t.Fatalf("messages waiting %v, want one retry", ids)
	}
	// The retry runs; the system is back; the request completes.
	w.now = q[0].ScheduledAt
	for range 3 {
		w.handle(1)
	}
	if st := w.get(id); st.State != dsr.StateCompleted || f.calls != 3 {
		t.Fatalf("%s after %d discoveries", st.State, f.calls)
	}
	// The original, delivered once more, finds the work done.
	if err := w.svc.HandleStage(context.Background(), sm, m.ID, 3); err != nil || len(w.queued()) != 0 {
		t.Fatalf("late original: %v, %d messages", err, len(w.queued()))
	}
	if err := w.svc.failStage(context.Background(), sm, "stage-failed", "late"); err != nil {
		t.Fatal(err)
	}
	if st := w.get(id); st.State != dsr.StateCompleted {
		t.Fatalf("a late failure changed an ended request: %s", st.State)
	}
}

// The schedule: each step doubles up to the cap; a wait is never under
// half its step nor over it.
func TestBackoffDelay(t *testing.T) {
	b := Backoff{Base: 2 * time.Second, Max: 5 * time.Minute}
	prev := time.Duration(0)
	for n := 1; n <= 20; n++ {
		step := min(2*time.Second<<(n-1), 5*time.Minute)
		lo, hi := b.Delay(n, 0), b.Delay(n, 0.999999)
		if lo != step/2 || lo != b.Floor(n) || hi > step || hi < step*99/100 {
			t.Errorf("retry %d: waits %s–%s, want %s–%s", n, lo, hi, step/2, step)
		}
		if lo < prev {
			t.Errorf("retry %d: floor %s under the previous %s", n, lo, prev)
		}
		prev = lo
	}
	for in, want := range map[string]string{
		"r1:discovery":                    "r1:discovery:retry:3",
		"r1:discovery:retry:2":            "r1:discovery:retry:3",
		"r1:discovery:redrive:17":         "r1:discovery:redrive:17:retry:3",
		"r1:discovery:redrive:17:retry:9": "r1:discovery:redrive:17:retry:3",
		"":                                "r1:discovery:retry:3",
	} {
		if got := retryMessageID(in, StageMessage{RequestID: "r1", Stage: dsr.StageDiscovery}, 3); got != want {
			t.Errorf("retryMessageID(%q) = %q, want %q", in, got, want)
		}
	}
}

// racing is a connector whose data another writer (another instance)
// changes just before each of the first races rewrites: the rewrite finds
// the version changed.
type racing struct {
	*memConnector
	races, rewrites int
}

func (r *racing) Rewrite(ctx context.Context, dataset string, loc sources.Location, edit sources.Edit) (sources.RewriteResult, error) {
	r.race()
	return r.memConnector.Rewrite(ctx, dataset, loc, edit)
}

func (r *racing) RewritePlanned(ctx context.Context, dataset string, loc sources.Location, edit sources.Edit, plan sources.CommitPlan) (sources.RewriteResult, error) {
	r.race()
	return r.memConnector.RewritePlanned(ctx, dataset, loc, edit, plan)
}

func (r *racing) race() {
	r.rewrites++
	if r.races > 0 {
		r.races--
		r.mu.Lock()
		r.data["orders"] = append(r.data["orders"], map[string]any{"order": "O9", "contact": "C2", "address": "9 Far St", "note": ""})
		r.version["orders"]++
		r.mu.Unlock()
	}
}

// An erasure whose rewrites keep losing the race to another writer
// discovers again and goes on in the same invocation: no retry scheduled,
// no delivery used, the other writer's records kept.
func TestLostRacesRetriedInPlace(t *testing.T) {
	w := newWorld(t)
	rc := &racing{memConnector: w.conn, races: 3}
	w.svc.Connector = rc
	w.svc.Rand = jitter() // the shortest waits
	id := w.submit(`{"type":"erasure","subject":{"email":"ann@x.example"}}`)
	w.handle(1)
	if _, err := w.svc.Approve(context.Background(), id, dsr.Actor{Kind: "test"}); err != nil {
		t.Fatal(err)
	}
	w.handle(1) // erasure
	if st := w.get(id); st.Stage != dsr.StageVerification {
		t.Fatalf("after one erase delivery: %s/%s, last error %q\n%s", st.Stage, st.State, st.LastAttemptError, w.logs)
	}
	if strings.Contains(w.logs.String(), "retry scheduled") {
		t.Fatal("a lost race used a stage retry")
	}
	if !strings.Contains(w.logs.String(), "lost a race") || rc.rewrites < 5 {
		t.Fatalf("%d rewrites; the races were not run again in place\n%s", rc.rewrites, w.logs)
	}
	for range 3 {
		w.handle(1)
	}
	if st := w.get(id); st.State != dsr.StateCompleted {
		t.Fatalf("%s %+v", st.State, st.Error)
	}
	n := 0
	for _, o := range w.conn.data["orders"] {
		if o["order"] == "O9" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("the other writer's records: %d, want 3", n)
	}
}
