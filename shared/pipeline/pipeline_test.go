package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/audit"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/tombstone"
)

// Every request type walks exactly its route (dsr.Routes), stage by stage,
// through the queues Runners names, with approval where configured.
func TestEveryTypeWalksItsRoute(t *testing.T) {
	for _, tc := range []struct {
		typ      dsr.Type
		body     string
		approval bool
	}{
		{dsr.TypeAccess, `{"type":"access","subject":{"email":"ann@x.example"}}`, false},
		{dsr.TypeDiscovery, `{"type":"discovery","subject":{"email":"ann@x.example"}}`, false},
		{dsr.TypeErasure, `{"type":"erasure","subject":{"email":"ann@x.example"}}`, true},
		{dsr.TypeRectification, `{"type":"rectification","subject":{"email":"ann@x.example"},"corrections":{"email":"ann@z.example"}}`, true},
		{dsr.TypeRestriction, `{"type":"restriction","subject":{"email":"ann@x.example"}}`, false},
	} {
		t.Run(string(tc.typ), func(t *testing.T) {
			w := newWorld(t)
			id := w.submit(tc.body)
			w.drain(1)
			if tc.approval {
				if st := w.get(id); st.State != dsr.StateAwaitingApproval {
					t.Fatalf("at %s/%s, want awaiting approval", st.Stage, st.State)
				}
				if _, err := w.svc.Approve(context.Background(), id, dsr.Actor{Kind: "test"}); err != nil {
					t.Fatal(err)
				}
				w.drain(1)
			}
			st := w.get(id)
			if st.State != dsr.StateCompleted {
				t.Fatalf("ended %s/%s: %+v", st.Stage, st.State, st.Error)
			}
			if got, want := w.reqs.history(t, id), routeOf(tc.typ, tc.approval); !slices.Equal(got, want) {
				t.Errorf("history %v, want the route %v", got, want)
			}
			if n := len(w.pkgs.blobs); (tc.typ == dsr.TypeAccess) != (n == 1) {
				t.Errorf("%d export packages", n)
			}
		})
	}
}

// Each stage message delivered twice changes nothing the second time: no
// history entry, no message, no package, no second change of the data.
func TestRedeliveredStagesChangeNothing(t *testing.T) {
	for _, body := range []string{
		`{"type":"access","subject":{"email":"ann@x.example"}}`,
		`{"type":"erasure","subject":{"email":"ann@x.example"}}`,
	} {
		w := newWorld(t)
		id := w.submit(body)
		w.drain(2)
		if st := w.get(id); st.State == dsr.StateAwaitingApproval {
			if _, err := w.svc.Approve(context.Background(), id, dsr.Actor{Kind: "test"}); err != nil {
				t.Fatal(err)
			}
			if _, err := w.svc.Approve(context.Background(), id, dsr.Actor{Kind: "test"}); err == nil {
				t.Error("a second approval was accepted")
			}
			w.drain(2)
		}
		st := w.get(id)
		if st.State != dsr.StateCompleted {
			t.Fatalf("%s: ended %s/%s: %+v", body, st.Stage, st.State, st.Error)
		}
		if got, want := w.reqs.history(t, id), routeOf(st.Type, st.Type == dsr.TypeErasure); !slices.Equal(got, want) {
			t.Errorf("%s: history %v, want %v", body, got, want)
		}
		if w.pkgs.puts > 1 {
			t.Errorf("%s: %d package uploads", body, w.pkgs.puts)
		}
		if st.Type == dsr.TypeErasure {
			if n := len(w.conn.data["contacts"]); n != 1 {
				t.Errorf("contacts after erasure: %d, want 1 (only Bob)", n)
			}
			if st.Erasure == nil || st.Verification == nil || st.Verification.Residual != 0 {
				t.Errorf("erasure %+v, verification %+v", st.Erasure, st.Verification)
			}
		}
	}
}

// A crash between saving a stage's result and sending the next message
// loses nothing: the delivery fails, the broker redelivers it, and the
// redelivery sends the message without a second history entry.
func TestCrashBetweenSaveAndSend(t *testing.T) {
	w := newWorld(t)
	id := w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
	m, q, ok := w.sent.take(w.now)
	if !ok || q != "dsr-discover" {
		t.Fatalf("no discover message (%v, %s)", ok, q)
	}
	sm, _ := ParseStageMessage(m.Body)
	w.sent.failNext = 1
	if err := w.svc.RunStage(context.Background(), sm, 1); err == nil {
		t.Fatal("the discovery delivery succeeded although its next message was not sent")
	}
	if st := w.get(id); st.Stage != dsr.StageExport {
		t.Fatalf("discovery's result not saved: at %s", st.Stage)
	}
	if _, _, ok := w.sent.take(w.now); ok {
		t.Fatal("a message went out although the broker was down")
	}
	if err := w.svc.RunStage(context.Background(), sm, 2); err != nil { // the redelivery
		t.Fatal(err)
	}
	w.drain(1)
	if got, want := w.reqs.history(t, id), routeOf(dsr.TypeAccess, false); !slices.Equal(got, want) {
		t.Errorf("history %v, want %v", got, want)
	}
	if w.conn.discoveries != 1 {
		t.Errorf("%d discoveries: the redelivery searched again instead of resending", w.conn.discoveries)
	}
}

// A stage whose message dead-lettered fails the request with the broker's
// reason and the stage's last error; a second dead-letter, or one for an
// ended request, changes nothing.
func TestDeadLetterFailsTheRequest(t *testing.T) {
	w := newWorld(t)
	id := w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
	m := StageMessage{RequestID: id, Stage: dsr.StageDiscovery}
	for range 2 {
		if err := w.svc.FailDeadLettered(context.Background(), m, "MaxDeliveryCountExceeded", "10 deliveries"); err != nil {
			t.Fatal(err)
		}
	}
	st := w.get(id)
	if st.State != dsr.StateFailed || st.Error == nil || st.Error.Code != "stage-dead-lettered" || len(st.History) != 2 {
		t.Fatalf("after dead-letter: %s/%s %+v %v", st.Stage, st.State, st.Error, w.reqs.history(t, id))
	}
	// The lost request's message, delivered late, finds it ended.
	w.drain(1)
	if got := w.reqs.history(t, id); len(got) != 2 {
		t.Errorf("a late message moved an ended request: %v", got)
	}
	if err := w.svc.FailDeadLettered(context.Background(), StageMessage{RequestID: "r0000000000000000000000000000", Stage: dsr.StageExport}, "x", ""); err != nil {
		t.Errorf("dead-letter for an unknown request: %v", err)
	}
}

// A person re-drives a failed request: it goes back into the step where it
// failed, its stage runs again (a fresh message, not dropped as a
// duplicate), and it completes; only failed requests are re-driven.
func TestRedriveFailedRequest(t *testing.T) {
	w := newWorld(t)
	id := w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
	w.sent.take(w.now) // the discover message, lost
	if err := w.svc.FailDeadLettered(context.Background(), StageMessage{RequestID: id, Stage: dsr.StageDiscovery}, "MaxDeliveryCountExceeded", ""); err != nil {
		t.Fatal(err)
	}
	by := dsr.Actor{Kind: "user", ID: "ops", Name: "Ops"}
	st, err := w.svc.RedriveFailed(context.Background(), id, by)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dsr.StateReceived || st.Error != nil || st.History[len(st.History)-1].By == nil {
		t.Fatalf("after re-drive: %s/%s %+v", st.Stage, st.State, st.Error)
	}
	w.drain(1)
	if st := w.get(id); st.State != dsr.StateCompleted {
		t.Fatalf("re-driven request ended %s/%s", st.Stage, st.State)
	}
	if _, err := w.svc.RedriveFailed(context.Background(), id, by); !errors.Is(err, ErrConflict) {
		t.Errorf("re-driving a completed request: %v", err)
	}
}

// A system that will answer later is asked again on schedule, and the
// request goes on once it answers; meanwhile the delivery succeeds.
func TestWaitingSystemIsAskedAgain(t *testing.T) {
	w := newWorld(t)
	w.conn.pending = 2
	id := w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
	for i := range 2 {
		if _, ok := w.deliver(1); !ok {
			t.Fatalf("wait %d: no message", i)
		}
		if st := w.get(id); st.Stage != dsr.StageDiscovery || st.State != dsr.StateInProgress {
			t.Fatalf("wait %d: at %s/%s", i, st.Stage, st.State)
		}
		if _, ok := w.deliver(1); ok {
			t.Fatalf("wait %d: asked again before the delay", i)
		}
		w.now = w.now.Add(DefaultPendingDelay)
	}
	w.drain(1)
	if st := w.get(id); st.State != dsr.StateCompleted || w.conn.discoveries != 3 {
		t.Fatalf("after the system answered: %s/%s, %d discoveries", st.Stage, st.State, w.conn.discoveries)
	}
}

// A lost race on the request document (another stage wrote it first) is
// retried from the fresh version, never overwriting it.
func TestConcurrentWriteIsNotOverwritten(t *testing.T) {
	w := newWorld(t)
	id := w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
	raced := false
	w.reqs.beforeWrite = func(rid string) {
		if raced || rid != id {
			return
		}
		raced = true
		w.reqs.beforeWrite = nil
		if _, err := w.svc.Extend(context.Background(), id, 1, "complex request", dsr.Actor{Kind: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	w.drain(1)
	st := w.get(id)
	if !raced || st.State != dsr.StateCompleted || st.Extension == nil || st.Extension.Reason != "complex request" {
		t.Fatalf("raced %v, state %s, extension %+v: a write was lost", raced, st.State, st.Extension)
	}
}

// Erasure through the in-memory world: her own records go, Bob's order
// that mentions her keeps everything but the mention, her order is masked
// and stays findable through the tombstone after her contact is gone.
func TestErasureKeepsOthersAndFilesATombstone(t *testing.T) {
	w := newWorld(t)
	id := w.submit(`{"type":"erasure","subject":{"email":"ann@x.example"}}`)
	w.drain(1)
	if _, err := w.svc.Approve(context.Background(), id, dsr.Actor{Kind: "test"}); err != nil {
		t.Fatal(err)
	}
	w.drain(1)
	st := w.get(id)
	if st.State != dsr.StateCompleted || st.Verification.Masked != 1 {
		t.Fatalf("%s/%s %+v verification %+v", st.Stage, st.State, st.Error, st.Verification)
	}
	orders := w.conn.data["orders"]
	if orders[0]["address"] != "[redacted]" || orders[1]["note"] != "Bob asked to copy [redacted]" || orders[1]["address"] != "2 High St" || orders[2]["note"] != "" {
		t.Errorf("orders after erasure: %v", orders)
	}
	later := w.submit(`{"type":"discovery","subject":{"email":"ann@x.example"}}`)
	w.drain(1)
	got := map[string]int64{}
	for _, s := range w.get(later).Discovery.Sources {
		got[s.Source] = s.Records
		if s.Records > 0 && (s.Kept == nil || s.Kept.RequestID != id) {
			t.Errorf("%s: no reason it is kept: %+v", s.Source, s.Kept)
		}
	}
	if fmt.Sprint(got) != "map[contacts:0 orders:1]" {
		t.Errorf("after erasure the discovery finds %v, want her masked order only", got)
	}
}

// stageStart: discovery counts from intake (a discovery may start ahead
// of the move), not past a failure it was re-driven from; other stages
// from their own first entry.
func TestStageStart(t *testing.T) {
	at := func(m int) time.Time { return time.Date(2026, 12, 5, 10, m, 0, 0, time.UTC) }
	h := func(stage dsr.Stage, state dsr.State, m int) dsr.HistoryEntry {
		return dsr.HistoryEntry{Stage: stage, State: state, At: at(m)}
	}
	for _, tc := range []struct {
		name    string
		stage   dsr.Stage
		history []dsr.HistoryEntry
		want    time.Time
	}{
		{"at intake", dsr.StageIntake, []dsr.HistoryEntry{h(dsr.StageIntake, dsr.StateReceived, 1)}, at(1)},
		{"in discovery", dsr.StageDiscovery, []dsr.HistoryEntry{h(dsr.StageIntake, dsr.StateReceived, 1), h(dsr.StageDiscovery, dsr.StateInProgress, 2)}, at(1)},
		{"re-driven discovery", dsr.StageDiscovery, []dsr.HistoryEntry{h(dsr.StageIntake, dsr.StateReceived, 1), h(dsr.StageDiscovery, dsr.StateInProgress, 2),
			h(dsr.StageDiscovery, dsr.StateFailed, 3), h(dsr.StageDiscovery, dsr.StateInProgress, 4)}, at(4)},
		{"verification", dsr.StageVerification, []dsr.HistoryEntry{h(dsr.StageIntake, dsr.StateReceived, 1), h(dsr.StageDiscovery, dsr.StateInProgress, 2),
			h(dsr.StageErasure, dsr.StateInProgress, 5), h(dsr.StageVerification, dsr.StateInProgress, 9)}, at(9)},
	} {
		st := &dsr.Stored{}
		st.Stage, st.History = tc.stage, tc.history
		if got := stageStart(st); !got.Equal(tc.want) {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// searchingTombstones is a tombstone store whose lookups wait until a
// search has begun (or fail, with err set): it tells whether discovery
// waits for the lookup before it searches.
type searchingTombstones struct {
	*memTombstones
	conn *memConnector
	err  error
	// overlapped is set when a lookup saw a search already running.
	overlapped atomic.Bool
}

func (s *searchingTombstones) Find(ctx context.Context, ids []tombstone.Identifier) ([]*tombstone.Tombstone, error) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		s.conn.mu.Lock()
		entered := s.conn.entered
		s.conn.mu.Unlock()
		if entered > 0 {
			s.overlapped.Store(true)
			break
		}
	}
	if s.err != nil {
		return nil, s.err
	}
	return s.memTombstones.Find(ctx, ids)
}

// Discovery searches while it looks for tombstones: with none found, one
// search; with one found (an earlier erasure), the search for the subject
// the tombstone completes is the one that counts; a failed lookup fails
// the discovery rather than let a search that did not see the tombstones
// stand.
func TestDiscoveryDoesNotWaitForTombstones(t *testing.T) {
	w := newWorld(t)
	tombs := &searchingTombstones{memTombstones: w.svc.Tombstones.(*memTombstones), conn: w.conn}
	w.svc.Tombstones = tombs
	id := w.submit(`{"type":"discovery","subject":{"email":"ann@x.example"}}`)
	w.drain(1)
	if st := w.get(id); st.State != dsr.StateCompleted || st.Discovery.TotalRecords != 3 {
		t.Fatalf("%s/%s, discovery %+v", st.Stage, st.State, st.Discovery)
	}
	if !tombs.overlapped.Load() || w.conn.discoveries != 1 {
		t.Fatalf("lookup overlapped the search: %v; %d searches, want 1", tombs.overlapped.Load(), w.conn.discoveries)
	}

	// An erasure files a tombstone holding her contact's id; a later
	// request that names her by email only finds her masked order
	// through it, with a second search.
	erasure := w.submit(`{"type":"erasure","subject":{"email":"ann@x.example"}}`)
	w.drain(1)
	if _, err := w.svc.Approve(context.Background(), erasure, dsr.Actor{Kind: "test"}); err != nil {
		t.Fatal(err)
	}
	w.drain(1)
	before := w.conn.discoveries
	later := w.submit(`{"type":"discovery","subject":{"email":"ann@x.example"}}`)
	w.drain(1)
	if st := w.get(later); st.State != dsr.StateCompleted || st.Discovery.TotalRecords != 1 {
		t.Fatalf("after the erasure: %s/%s, discovery %+v", st.Stage, st.State, st.Discovery)
	}
	if n := w.conn.discoveries - before; n != 2 {
		t.Fatalf("%d searches after the tombstone was found, want 2", n)
	}

	tombs.err = errors.New("tombstones unreachable")
	failed := w.submit(`{"type":"discovery","subject":{"email":"bob@y.example"}}`)
	m, _, _ := w.sent.take(w.now)
	sm, err := ParseStageMessage(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.RunStage(context.Background(), sm, 1); err == nil || !strings.Contains(err.Error(), "tombstones unreachable") {
		t.Fatalf("discovery with the lookup failing: %v", err)
	}
	st := w.get(failed)
	if st.Discovery != nil || !strings.Contains(st.LastAttemptError, "tombstones") {
		t.Fatalf("with the lookup failing: %s/%s, discovery %+v, last error %q", st.Stage, st.State, st.Discovery, st.LastAttemptError)
	}
}

// Stages hand over with the trail's extent in the message, not in a write
// of the request: an access request's trail holds every history entry
// exactly once, the discover and export messages say how far the trail
// went, and the request ends with its mark at its whole history. A message
// without the extent (sent again by an operator, say) costs entries
// appended twice, never one missing.
func TestHandOverCarriesTheTrailsExtent(t *testing.T) {
	w := newWorld(t)
	id := w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
	var carried []int
	for {
		m, q, ok := w.sent.take(w.now)
		if !ok {
			break
		}
		sm, err := ParseStageMessage(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		carried = append(carried, sm.Audited)
		if r := w.svc.Runners()[sm.Stage]; r.Queue != q {
			t.Fatalf("%s on %s", sm.Stage, q)
		}
		if err := w.svc.RunStage(context.Background(), sm, 1); err != nil {
			t.Fatal(err)
		}
	}
	st := w.get(id)
	if st.State != dsr.StateCompleted || st.Audited != len(st.History) {
		t.Fatalf("%s/%s, audited %d of %d", st.Stage, st.State, st.Audited, len(st.History))
	}
	if len(carried) != 2 || carried[0] == 0 || carried[1] <= carried[0] {
		t.Fatalf("the discover and export messages carried %v", carried)
	}
	count := func() map[string]int {
		n := map[string]int{}
		for _, e := range w.audit.entries {
			if e.RequestID == id {
				n[e.ID]++
			}
		}
		return n
	}
	n := count()
	for i := range st.History {
		if got := n[fmt.Sprintf("%s:%d", id, i+1)]; got != 1 {
			t.Fatalf("history entry %d is in the trail %d times: %v", i+1, got, n)
		}
	}

	// The same stage message without the extent, for a request whose mark
	// lags (as after a hand-over): the trail is caught up again.
	lagging := w.submit(`{"type":"discovery","subject":{"email":"bob@y.example"}}`)
	m, _, _ := w.sent.take(w.now)
	sm, _ := ParseStageMessage(m.Body)
	sm.Audited = 0
	if err := w.svc.RunStage(context.Background(), sm, 1); err != nil {
		t.Fatal(err)
	}
	st = w.get(lagging)
	trail, _ := w.audit.ForRequest(context.Background(), lagging)
	if st.State != dsr.StateCompleted || len(trail) != len(st.History) || st.Audited != len(st.History) {
		t.Fatalf("%s/%s: %d entries in the trail, %d in the history, audited %d", st.Stage, st.State, len(trail), len(st.History), st.Audited)
	}
}

// freshCounting is a trail that can create a request's blob before its
// first append (audit.Trail.AppendNew), counting those calls by request.
type freshCounting struct {
	*memAudit
	mu    sync.Mutex
	fresh map[string]int
}

func (f *freshCounting) AppendNew(ctx context.Context, entries ...audit.Entry) error {
	if len(entries) > 0 {
		f.mu.Lock()
		f.fresh[entries[0].RequestID]++
		f.mu.Unlock()
	}
	return f.memAudit.Append(ctx, entries...)
}

// Only a request's first entries ask for its trail blob to be created:
// the stages after the hand-over, whose document's mark may still be 0,
// know from their message that the trail is there and append at once
// (a create before each stage's append was one wasted round trip each).
func TestStagesAppendToAnExistingTrail(t *testing.T) {
	w := newWorld(t)
	fc := &freshCounting{memAudit: w.audit, fresh: map[string]int{}}
	w.svc.Audit = fc
	id := w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
	stages := w.drain(1)
	st := w.get(id)
	if st.State != dsr.StateCompleted || len(stages) != 2 {
		t.Fatalf("%s/%s after stages %v", st.Stage, st.State, stages)
	}
	if n := fc.fresh[id]; n != 1 {
		t.Errorf("the trail's blob was asked to be created %d times, want once (the request's first entries)", n)
	}
	trail, _ := fc.ForRequest(context.Background(), id)
	if len(trail) != len(st.History) {
		t.Errorf("%d entries in the trail, %d in the history", len(trail), len(st.History))
	}
}
