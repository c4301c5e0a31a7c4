package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sources"
)

// errCrash is the panic a test raises to stand for a process that dies.
var errCrash = errors.New("crash")

// approvedErasure submits Ann's erasure, runs discovery and approves it; the
// erase message waits.
func approvedErasure(t *testing.T, w *world) string {
	t.Helper()
	id := w.submit(`{"type":"erasure","subject":{"email":"ann@x.example"}}`)
	w.drain(1)
	if _, err := w.svc.Approve(context.Background(), id, dsr.Actor{Kind: "test"}); err != nil {
		t.Fatal(err)
	}
	return id
}

// runCrashing runs the next due stage message once, as a process that may
// die (errCrash panics) does, and returns the message so it can be
// delivered again.
func runCrashing(t *testing.T, w *world) (sm StageMessage, crashed bool) {
	t.Helper()
	m, _, ok := w.sent.take(w.now)
	if !ok {
		t.Fatal("no message due")
	}
	sm, err := ParseStageMessage(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r != nil {
			if r != errCrash {
				panic(r)
			}
			crashed = true
		}
	}()
	if err := w.svc.RunStage(context.Background(), sm, 1); err != nil {
		t.Fatalf("%s: %v\n%s", sm.Stage, err, w.logs)
	}
	return sm, false
}

// snapshot copies a dataset's records.
func snapshot(w *world, dataset string) []map[string]any {
	var out []map[string]any
	for _, r := range w.conn.data[dataset] {
		out = append(out, maps.Clone(r))
	}
	return out
}

// changedRecords counts what happened to a dataset between two snapshots:
// records gone (by key field) and records kept with other values.
func changedRecords(before, after []map[string]any, key string) (deleted, changed int) {
	byKey := map[any]map[string]any{}
	for _, r := range after {
		byKey[r[key]] = r
	}
	for _, r := range before {
		a, ok := byKey[r[key]]
		switch {
		case !ok:
			deleted++
		case fmt.Sprint(a) != fmt.Sprint(r):
			changed++
		}
	}
	return deleted, changed
}

// checkExact compares the erasure report and the audit trail's record
// entries with what the data says was changed.
func checkExact(t *testing.T, w *world, id string, before map[string][]map[string]any) {
	t.Helper()
	st := w.get(id)
	if st.Erasure == nil {
		t.Fatalf("no erasure report: %s/%s %+v", st.Stage, st.State, st.Error)
	}
	if len(st.PendingBlobs) > 0 {
		t.Errorf("plans left pending: %+v", st.PendingBlobs)
	}
	entries, err := w.audit.ForRequest(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	audited := map[string]map[string]int{} // dataset → action → distinct entries
	seen := map[string]bool{}
	for _, e := range entries {
		if e.Event != "record" || seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		if audited[e.Dataset] == nil {
			audited[e.Dataset] = map[string]int{}
		}
		audited[e.Dataset][e.Action]++
	}
	for _, ds := range []struct{ name, key string }{{"contacts", "id"}, {"orders", "order"}} {
		del, chg := changedRecords(before[ds.name], w.conn.data[ds.name], ds.key)
		var rep *dsr.ErasureResult
		for i := range st.Erasure.Sources {
			if st.Erasure.Sources[i].Source == ds.name {
				rep = &st.Erasure.Sources[i]
			}
		}
		if rep == nil {
			t.Fatalf("no report for %s: %+v", ds.name, st.Erasure.Sources)
		}
		if int(rep.Deleted) != del || int(rep.Masked) != chg {
			t.Errorf("%s: report says %d deleted, %d masked; the data says %d, %d", ds.name, rep.Deleted, rep.Masked, del, chg)
		}
		a := audited[ds.name]
		if a["deleted"] != del || a["masked"]+a["mention masked"] != chg {
			t.Errorf("%s: audit trail has %v; the data says %d deleted, %d masked", ds.name, a, del, chg)
		}
	}
}

// Killed right after each blob's commit in turn, the redelivered erasure
// reports and audits what the first attempt did there (it finds nothing
// left to change), and the request completes.
func TestErasureExactAfterACrashAfterEachCommit(t *testing.T) {
	for crashAt := 1; crashAt <= 2; crashAt++ {
		t.Run(fmt.Sprintf("after commit %d", crashAt), func(t *testing.T) {
			w := newWorld(t)
			id := approvedErasure(t, w)
			before := map[string][]map[string]any{"contacts": snapshot(w, "contacts"), "orders": snapshot(w, "orders")}
			commits := 0
			w.conn.afterCommit = func(string) error {
				if commits++; commits == crashAt {
					panic(errCrash)
				}
				return nil
			}
			sm, crashed := runCrashing(t, w)
			if !crashed {
				t.Fatal("the erasure did not reach the crash point")
			}
			if st := w.get(id); len(st.PendingBlobs) != 1 {
				t.Fatalf("after the crash the request holds %d plans, want the one that committed", len(st.PendingBlobs))
			}
			// The broker brings the message back.
			if err := w.svc.RunStage(context.Background(), sm, 2); err != nil {
				t.Fatalf("redelivery: %v\n%s", err, w.logs)
			}
			w.drain(1)
			if st := w.get(id); st.State != dsr.StateCompleted {
				t.Fatalf("request %s/%s: %+v", st.Stage, st.State, st.Error)
			}
			checkExact(t, w, id, before)
			if total := eraseDetail(w.get(id).Erasure); total != "1 deleted, 2 masked, 0 retained" {
				t.Errorf("report: %s", total)
			}
		})
	}
}

// A commit whose answer is lost (the rewriter fails after committing) is
// recognised by its plan id in the same attempt: counted once, not redone.
func TestErasureExactWhenACommitAnswerIsLost(t *testing.T) {
	w := newWorld(t)
	id := approvedErasure(t, w)
	before := map[string][]map[string]any{"contacts": snapshot(w, "contacts"), "orders": snapshot(w, "orders")}
	lost := false
	w.conn.afterCommit = func(string) error {
		if !lost {
			lost = true
			return errors.New("connection reset")
		}
		return nil
	}
	w.drain(1)
	if st := w.get(id); st.State != dsr.StateCompleted {
		t.Fatalf("request %s/%s: %+v", st.Stage, st.State, st.Error)
	}
	checkExact(t, w, id, before)
}

// An erasure that fails as a whole (rediscovery after a lost race fails
// every retry) ends failed with its real cause, and its report says what
// it changed before: the orders it masked, the contacts it never reached.
func TestFailedErasureReportsWhatItChangedAndWhy(t *testing.T) {
	w := newWorld(t)
	w.svc.StageRetries = 1
	id := approvedErasure(t, w)
	before := map[string][]map[string]any{"contacts": snapshot(w, "contacts"), "orders": snapshot(w, "orders")}
	w.conn.failRewrite = map[string]error{"contacts": sources.ErrChanged}
	w.conn.failDiscover = errors.New("memory system: index offline")
	for i := 0; i < 2; i++ {
		m, _, ok := w.sent.take(w.now.Add(1 << 40))
		if !ok {
			t.Fatalf("no erase message (round %d)", i)
		}
		sm, err := ParseStageMessage(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.svc.HandleStage(context.Background(), sm, m.ID, 1); err != nil {
			t.Fatal(err)
		}
	}
	st := w.get(id)
	if st.State != dsr.StateFailed || st.Error == nil {
		t.Fatalf("request %s/%s", st.Stage, st.State)
	}
	if !strings.Contains(st.Error.Message, "index offline") {
		t.Errorf("the error does not say the real cause: %+v", st.Error)
	}
	if st.Erasure == nil || !st.Erasure.Incomplete {
		t.Fatalf("no partial report: %+v", st.Erasure)
	}
	got := map[string]dsr.ErasureResult{}
	for _, s := range st.Erasure.Sources {
		got[s.Source] = s
	}
	if o := got["orders"]; o.Masked != 2 || o.Error != "" {
		t.Errorf("orders: %+v, want 2 masked", o)
	}
	if c := got["contacts"]; c.Deleted != 0 || c.Error != errNotReached {
		t.Errorf("contacts: %+v, want not reached", c)
	}
	checkExact(t, w, id, before)
}

// Cancel works until the change stage begins; after that it is refused and
// the erasure runs to its end. A request cancelled before its change stage
// runs is never changed.
func TestCancelRule(t *testing.T) {
	ctx := context.Background()
	t.Run("before approval", func(t *testing.T) {
		w := newWorld(t)
		id := w.submit(`{"type":"erasure","subject":{"email":"ann@x.example"}}`)
		w.drain(1)
		st, err := w.svc.Cancel(ctx, id, "asked by phone", dsr.Actor{Kind: "test"})
		if err != nil || st.State != dsr.StateCancelled {
			t.Fatalf("cancel: %v %+v", err, st)
		}
		if _, err := w.svc.Approve(ctx, id, dsr.Actor{Kind: "test"}); !errors.Is(err, ErrConflict) {
			t.Errorf("approve after cancel: %v", err)
		}
	})
	t.Run("after approval", func(t *testing.T) {
		w := newWorld(t)
		id := approvedErasure(t, w)
		before := map[string][]map[string]any{"contacts": snapshot(w, "contacts"), "orders": snapshot(w, "orders")}
		_, err := w.svc.Cancel(ctx, id, "too late", dsr.Actor{Kind: "test"})
		if !errors.Is(err, dsr.ErrChangesStarted) || !errors.Is(err, ErrConflict) {
			t.Fatalf("cancel after approval: %v", err)
		}
		w.drain(1)
		st := w.get(id)
		if st.State != dsr.StateCompleted || st.Cancellation != nil {
			t.Fatalf("request %s/%s cancellation %+v", st.Stage, st.State, st.Cancellation)
		}
		checkExact(t, w, id, before)
	})
	t.Run("cancelled before the stage plans", func(t *testing.T) {
		// A request that ended (here: cancelled the old way) while its
		// erase message waited: the stage changes nothing.
		w := newWorld(t)
		id := approvedErasure(t, w)
		before := snapshot(w, "orders")
		if _, err := w.reqs.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
			return true, st.Request.Cancel("", w.now, nil)
		}); err != nil {
			t.Fatal(err)
		}
		w.drain(1)
		if fmt.Sprint(snapshot(w, "orders")) != fmt.Sprint(before) || len(w.conn.commits) > 0 {
			t.Error("a cancelled request's erasure changed data")
		}
	})
}

// A plan is refused when the request left the stage between the walk's
// start and the commit: nothing is committed.
func TestPlanRefusedWhenTheRequestLeftTheStage(t *testing.T) {
	w := newWorld(t)
	id := approvedErasure(t, w)
	st := w.get(id)
	if _, err := w.reqs.Update(context.Background(), id, func(st *dsr.Stored) (bool, error) {
		return true, st.Request.Cancel("", w.now, nil)
	}); err != nil {
		t.Fatal(err)
	}
	d := w.svc.Sources.Dataset("orders")
	var disc sources.Discovery
	if err := w.svc.positionsOf(context.Background(), st, &disc); err != nil {
		t.Fatal(err)
	}
	loc, _ := locationOf(&disc, "orders", "orders")
	_, err := w.svc.changeBlob(context.Background(), w.conn, st, d, loc, dsr.StageErasure, "mask", 1,
		func(sources.Location) recordDecision {
			return func(_ int64, rec sources.Record) (*sources.Record, string, error) { return nil, "deleted", nil }
		})
	if !errors.Is(err, errStageLeft) {
		t.Fatalf("changeBlob on a cancelled request: %v", err)
	}
	if len(w.conn.commits) > 0 || w.conn.version["orders"] != 0 {
		t.Error("committed for a cancelled request")
	}
}
