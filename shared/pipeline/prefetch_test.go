package pipeline

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/testutil"
)

// PeekBodies shows the messages due on a queue, as the embedded broker
// does for Lookahead.
func (q *memSender) PeekBodies(_ context.Context, queueName string, max int) ([][]byte, int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out [][]byte
	for i, m := range q.queued {
		if q.queues[i] == queueName && len(out) < max {
			out = append(out, m.Body)
		}
	}
	return out, 1, nil
}

func (c *memConnector) discoverCalls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.discoveries
}

// waitDiscoveries waits until the connector has been asked n times (a
// looked-ahead discovery runs in the background).
func (w *world) waitDiscoveries(n int) {
	w.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for w.conn.discoverCalls() < n {
		if time.Now().After(deadline) {
			w.t.Fatalf("%d discoveries, want %d", w.conn.discoverCalls(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A discovery looks ahead at the requests queued behind it; the next one's
// own invocation uses that result instead of discovering again, and ends
// exactly as it would have without looking ahead.
func TestLookaheadDiscoversQueuedRequestsOnce(t *testing.T) {
	plain := newWorld(t)
	plain.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
	bobPlain := plain.submit(`{"type":"access","subject":{"email":"bob@y.example"}}`)
	plain.drain(1)

	w := newWorld(t)
	w.svc.Lookahead = &Lookahead{Peeker: w.sent}
	ann := w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
	bob := w.submit(`{"type":"access","subject":{"email":"bob@y.example"}}`)
	if sm, _ := w.deliver(1); sm.RequestID != ann || sm.Stage != dsr.StageDiscovery {
		t.Fatalf("first message %+v, want ann's discovery", sm)
	}
	w.waitDiscoveries(2) // ann's, and bob's looked ahead
	w.drain(1)
	if n := w.conn.discoverCalls(); n != 2 {
		t.Errorf("%d discoveries, want 2 (bob's own invocation used the looked-ahead one)", n)
	}
	got, want := w.get(bob), plain.get(bobPlain)
	if got.State != dsr.StateCompleted || got.Discovery == nil || got.Discovery.TotalRecords != want.Discovery.TotalRecords {
		t.Fatalf("bob's request %s with %+v, want completed with %+v", got.State, got.Discovery, want.Discovery)
	}
	if got.Export == nil || got.Export.SHA256 == "" {
		t.Fatal("bob's request has no export")
	}
	// The move into discovery and its end were one write, and the
	// history is the same route.
	if h, hp := w.reqs.history(t, bob), plain.reqs.history(t, bobPlain); !slices.Equal(h, hp) {
		t.Errorf("history %v, want %v", h, hp)
	}
	if len(w.svc.Lookahead.entries) != 0 {
		t.Errorf("%d looked-ahead results kept after use", len(w.svc.Lookahead.entries))
	}
}

// A looked-ahead result older than MaxAge is not used: the request's own
// invocation discovers again.
func TestLookaheadResultExpires(t *testing.T) {
	w := newWorld(t)
	w.svc.Lookahead = &Lookahead{Peeker: w.sent, MaxAge: time.Minute}
	w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
	bob := w.submit(`{"type":"access","subject":{"email":"bob@y.example"}}`)
	w.deliver(1)
	w.waitDiscoveries(2)
	w.now = w.now.Add(2 * time.Minute)
	w.drain(1)
	if n := w.conn.discoverCalls(); n != 3 {
		t.Errorf("%d discoveries, want 3 (the stale look-ahead discarded)", n)
	}
	if st := w.get(bob); st.State != dsr.StateCompleted {
		t.Fatalf("bob's request ended %s", st.State)
	}
}

// A request that is no longer waiting for discovery (cancelled while
// queued) is not discovered ahead, and a failed look-ahead only means its
// own invocation discovers.
func TestLookaheadSkipsRequestsPastDiscovery(t *testing.T) {
	w := newWorld(t)
	w.svc.Lookahead = &Lookahead{Peeker: w.sent}
	w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
	bob := w.submit(`{"type":"access","subject":{"email":"bob@y.example"}}`)
	if _, err := w.svc.Cancel(context.Background(), bob, "changed mind", dsr.Actor{Kind: "test"}); err != nil {
		t.Fatal(err)
	}
	w.deliver(1)
	time.Sleep(20 * time.Millisecond) // let a (wrong) look-ahead run
	w.drain(1)
	if n := w.conn.discoverCalls(); n != 1 {
		t.Errorf("%d discoveries, want 1 (bob's cancelled request never discovered)", n)
	}
	if st := w.get(bob); st.State != dsr.StateCancelled {
		t.Fatalf("bob's request %s", st.State)
	}
}

// While looked-ahead discoveries run (a long pass), the queue is looked at
// again: a request queued after the first look is discovered ahead before
// the pass ends, so that it joins the next pass instead of the one after
// it, and its own invocation uses that result.
func TestLookaheadKeepsLookingWhilePassesRun(t *testing.T) {
	w := newWorld(t)
	w.svc.Lookahead = &Lookahead{Peeker: w.sent, Every: 5 * time.Millisecond}
	gate := make(chan struct{})
	w.conn.mu.Lock()
	w.conn.gate = gate
	w.conn.mu.Unlock()
	entered := func() int {
		w.conn.mu.Lock()
		defer w.conn.mu.Unlock()
		return w.conn.entered
	}
	w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
	w.submit(`{"type":"access","subject":{"email":"bob@y.example"}}`)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.deliver(1) // ann's discovery, bob's looked ahead: both held
	}()
	testutil.WaitFor(t, 5*time.Second, "ann's and bob's discoveries begun", func() bool { return entered() == 2 })
	carol := w.submit(`{"type":"access","subject":{"email":"carol@z.example"}}`)
	testutil.WaitFor(t, 5*time.Second, "carol's discovery begun while the pass runs", func() bool { return entered() == 3 })
	close(gate)
	<-done
	w.drain(1)
	if n := w.conn.discoverCalls(); n != 3 {
		t.Errorf("%d discoveries, want 3 (each request's own invocation after ann's used the looked-ahead one)", n)
	}
	if st := w.get(carol); st.State != dsr.StateCompleted {
		t.Fatalf("carol's request ended %s", st.State)
	}
}
