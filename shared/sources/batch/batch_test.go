package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/blobdataset"
)

var _ ManyConnector = (*blobdataset.Connector)(nil)

// fake is a ManyDiscoverer whose result for a subject names the subject's
// email, so every caller can check it got its own. It records its calls
// and can hold a pass until released.
type fake struct {
	mu      sync.Mutex
	batches [][]string // emails of each call
	ctxs    []context.Context
	hold    chan struct{} // if set, a pass waits for it (or its ctx)
	started chan int      // if set, receives the batch size as a pass starts
	err     error
	short   bool // return one result too few
	panic   any
	// failWith, if set, fails every call whose subjects include it (one
	// person's malformed data).
	failWith string
}

func (f *fake) DiscoverMany(ctx context.Context, subjects []sources.Subject) ([]*sources.Discovery, error) {
	var emails []string
	for _, s := range subjects {
		emails = append(emails, s.Emails[0])
	}
	f.mu.Lock()
	f.batches = append(f.batches, emails)
	f.ctxs = append(f.ctxs, ctx)
	hold, started, err, short, p := f.hold, f.started, f.err, f.short, f.panic
	f.mu.Unlock()
	if started != nil {
		started <- len(subjects)
	}
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if p != nil {
		panic(p)
	}
	if err != nil {
		return nil, err
	}
	if f.failWith != "" && slices.Contains(emails, f.failWith) {
		return nil, errors.New("blob crm/cases.csv: record 17 is malformed")
	}
	out := make([]*sources.Discovery, len(subjects))
	for i, e := range emails {
		out[i] = &sources.Discovery{Datasets: []sources.DatasetMatches{{Dataset: e, Records: int64(len(e))}}}
	}
	if short {
		out = out[1:]
	}
	return out, nil
}

func (f *fake) calls() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.batches...)
}

func subject(i int) sources.Subject {
	return sources.Subject{Emails: []string{fmt.Sprintf("person%d@x.example", i)}}
}

// checkOwn fails unless d is the fake's result for subject i.
func checkOwn(t *testing.T, i int, d *sources.Discovery, err error) {
	t.Helper()
	want := subject(i).Emails[0]
	if err != nil {
		t.Errorf("caller %d: %v", i, err)
		return
	}
	if d == nil || len(d.Datasets) != 1 || d.Datasets[0].Dataset != want {
		t.Errorf("caller %d got %+v, want the result for %s", i, d, want)
	}
}

// TestConcurrentCallsShareFewPasses: 1000 concurrent calls are served by a
// handful of DiscoverMany calls, every subject exactly once, and every
// caller gets exactly its own result.
func TestConcurrentCallsShareFewPasses(t *testing.T) {
	f := &fake{}
	// A long window, so that the test holds on a busy machine too; the
	// 1000th call fills the batch (DefaultMaxBatch), which starts it at
	// once, so the test does not wait for the window.
	b := New(f, Options{Window: 2 * time.Second})
	const n = 1000
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			d, err := b.Discover(context.Background(), subject(i))
			checkOwn(t, i, d, err)
		})
	}
	close(start) // all at once, as requests under load
	wg.Wait()
	calls := f.calls()
	if len(calls) > 3 {
		t.Errorf("%d DiscoverMany calls for %d concurrent callers, want at most 3", len(calls), n)
	}
	seen := map[string]int{}
	for _, c := range calls {
		for _, e := range c {
			seen[e]++
		}
	}
	for i := range n {
		if e := subject(i).Emails[0]; seen[e] != 1 {
			t.Errorf("subject %d discovered %d times", i, seen[e])
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct subjects discovered, want %d", len(seen), n)
	}
}

// TestMaxBatch: no pass serves more than MaxBatch subjects, and a full
// batch starts without waiting for the window.
func TestMaxBatch(t *testing.T) {
	f := &fake{}
	b := New(f, Options{MaxBatch: 100, Window: 20 * time.Millisecond})
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Go(func() {
			d, err := b.Discover(context.Background(), subject(i))
			checkOwn(t, i, d, err)
		})
	}
	wg.Wait()
	total := 0
	calls := f.calls()
	for _, c := range calls {
		if len(c) > 100 {
			t.Errorf("batch of %d subjects, want at most 100", len(c))
		}
		total += len(c)
	}
	if total != 1000 || len(calls) < 10 {
		t.Errorf("%d subjects in %d passes, want 1000 in at least 10", total, len(calls))
	}

	// 100 callers fill a batch: it starts at once, not after an hour.
	f = &fake{}
	b = New(f, Options{MaxBatch: 100, Window: time.Hour})
	for i := range 100 {
		wg.Go(func() {
			d, err := b.Discover(context.Background(), subject(i))
			checkOwn(t, i, d, err)
		})
	}
	wg.Wait()
	if calls := f.calls(); len(calls) != 1 || len(calls[0]) != 100 {
		t.Errorf("%d passes, want one of 100 subjects", len(calls))
	}
}

// TestCallsDuringPassFormNextPass: calls arriving while a pass runs are
// served together by the next pass, which starts as soon as the first ends.
func TestCallsDuringPassFormNextPass(t *testing.T) {
	f := &fake{hold: make(chan struct{}), started: make(chan int, 10)}
	b := New(f, Options{Window: -1})
	var wg sync.WaitGroup
	wg.Go(func() {
		d, err := b.Discover(context.Background(), subject(0))
		checkOwn(t, 0, d, err)
	})
	if got := <-f.started; got != 1 {
		t.Fatalf("first pass has %d subjects, want 1", got)
	}
	for i := 1; i <= 50; i++ {
		wg.Go(func() {
			d, err := b.Discover(context.Background(), subject(i))
			checkOwn(t, i, d, err)
		})
	}
	waitPending(t, b, 50)
	close(f.hold)
	wg.Wait()
	calls := f.calls()
	if len(calls) != 2 || len(calls[1]) != 50 {
		sizes := []int{}
		for _, c := range calls {
			sizes = append(sizes, len(c))
		}
		t.Errorf("passes of %v subjects, want [1 50]", sizes)
	}
}

// waitPending waits until n calls are queued behind the running pass.
func waitPending(t *testing.T, b *Batcher, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		got := len(b.pending)
		b.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls pending, want %d", got, n)
		}
	}
}

// TestCancelledCallerLeavesPassAlone: a caller whose ctx ends returns at
// once; the pass goes on for the other caller, who gets its result.
func TestCancelledCallerLeavesPassAlone(t *testing.T) {
	f := &fake{hold: make(chan struct{}), started: make(chan int, 1)}
	b := New(f, Options{Window: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() {
		_, err := b.Discover(ctx, subject(1))
		errA <- err
	}()
	resB := make(chan error, 1)
	go func() {
		d, err := b.Discover(context.Background(), subject(2))
		checkOwn(t, 2, d, err)
		resB <- err
	}()
	if got := <-f.started; got != 2 {
		t.Fatalf("pass has %d subjects, want 2", got)
	}
	cancel()
	select {
	case err := <-errA:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled caller: %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("cancelled caller did not return promptly")
	}
	if err := f.ctxs[0].Err(); err != nil {
		t.Fatalf("the pass was cancelled although a caller still waits: %v", err)
	}
	close(f.hold)
	if err := <-resB; err != nil {
		t.Fatal(err)
	}
}

// TestAllCallersGoneCancelsPass: when every caller of a pass has given up,
// the pass's context is cancelled, and the Batcher serves later calls.
func TestAllCallersGoneCancelsPass(t *testing.T) {
	f := &fake{hold: make(chan struct{}), started: make(chan int, 1)}
	b := New(f, Options{Window: -1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := b.Discover(ctx, subject(1))
		done <- err
	}()
	<-f.started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	select {
	case <-f.ctxs[0].Done():
	case <-time.After(2 * time.Second):
		t.Fatal("the pass was not cancelled when its only caller left")
	}
	f.mu.Lock()
	f.hold, f.started = nil, nil
	f.mu.Unlock()
	d, err := b.Discover(context.Background(), subject(3))
	checkOwn(t, 3, d, err)
}

// TestCancelledBeforePass: a caller that gives up during the window is not
// part of the pass; if nobody is left, no pass runs.
func TestCancelledBeforePass(t *testing.T) {
	f := &fake{}
	b := New(f, Options{Window: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := b.Discover(ctx, subject(1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Discover: %v, want DeadlineExceeded", err)
	}
	time.Sleep(150 * time.Millisecond)
	if calls := f.calls(); len(calls) != 0 {
		t.Fatalf("passes %v for a caller that left before the window closed", calls)
	}

	// Two callers, one leaves during the window: the pass serves the other.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := b.Discover(ctx2, subject(2)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Discover: %v, want DeadlineExceeded", err)
		}
	})
	wg.Go(func() {
		d, err := b.Discover(context.Background(), subject(3))
		checkOwn(t, 3, d, err)
	})
	wg.Wait()
	if calls := f.calls(); len(calls) != 1 || len(calls[0]) != 1 || calls[0][0] != subject(3).Emails[0] {
		t.Errorf("passes %v, want one pass for subject 3 only", calls)
	}

	// A caller with an ended ctx never queues.
	done, cancel3 := context.WithCancel(context.Background())
	cancel3()
	if _, err := b.Discover(done, subject(4)); !errors.Is(err, context.Canceled) {
		t.Errorf("Discover with an ended ctx: %v", err)
	}
}

// TestErrorsAreShared: a failing pass fails every caller in it with its
// error; a result of the wrong length and a panic are errors too; the
// Batcher serves later calls.
func TestErrorsAreShared(t *testing.T) {
	boom := errors.New("storage unavailable")
	for _, tc := range []struct {
		name  string
		setup func(f *fake)
		check func(t *testing.T, err error)
	}{
		{"error", func(f *fake) { f.err = boom }, func(t *testing.T, err error) {
			if !errors.Is(err, boom) {
				t.Errorf("got %v, want the pass's error", err)
			}
		}},
		{"wrong number of results", func(f *fake) { f.short = true }, func(t *testing.T, err error) {
			if err == nil || !strings.Contains(err.Error(), "results for") {
				t.Errorf("got %v, want a result count error", err)
			}
		}},
		{"panic", func(f *fake) { f.panic = fmt.Sprintf("bad subject %s", subject(0).Emails[0]) }, func(t *testing.T, err error) {
			if !errors.Is(err, errPanicked) || strings.Contains(err.Error(), "person") {
				t.Errorf("got %v, want errPanicked without the panic value", err)
			}
		}},
		{"runtime panic", func(f *fake) { f.panic = runtimeError() }, func(t *testing.T, err error) {
			if !errors.Is(err, errPanicked) || !strings.Contains(err.Error(), "index out of range") {
				t.Errorf("got %v, want errPanicked with the runtime error", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fake{}
			tc.setup(f)
			b := New(f, Options{Window: 20 * time.Millisecond})
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Go(func() {
					d, err := b.Discover(context.Background(), subject(i))
					if d != nil {
						t.Errorf("caller %d got a result with the error", i)
					}
					tc.check(t, err)
				})
			}
			wg.Wait()
			// The failed pass of 20, then each subject alone.
			if n := len(f.calls()); n != 21 {
				t.Errorf("%d passes, want 21", n)
			}
			f.mu.Lock()
			f.err, f.short, f.panic = nil, false, nil
			f.mu.Unlock()
			d, err := b.Discover(context.Background(), subject(99))
			checkOwn(t, 99, d, err)
		})
	}
}

// One subject whose discovery fails does not fail the others batched
// with it: after the failed pass each is discovered alone.
func TestOneSubjectsFailureStaysItsOwn(t *testing.T) {
	f := &fake{failWith: subject(7).Emails[0]}
	b := New(f, Options{Window: 20 * time.Millisecond})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			d, err := b.Discover(context.Background(), subject(i))
			if i == 7 {
				if err == nil || !strings.Contains(err.Error(), "malformed") {
					t.Errorf("caller 7: %v, want its own discovery's error", err)
				}
				return
			}
			checkOwn(t, i, d, err)
		})
	}
	wg.Wait()
}

func runtimeError() (v any) {
	defer func() { v = recover() }()
	var s []int
	_ = s[len(s)+1]
	return nil
}

// TestSequentialCallsWaitOnlyTheWindow: a lone call starts its pass after
// the window (not later), and with a negative window at once.
func TestSequentialCallsWaitOnlyTheWindow(t *testing.T) {
	for _, tc := range []struct {
		window   time.Duration
		min, max time.Duration
	}{
		{30 * time.Millisecond, 30 * time.Millisecond, 2 * time.Second},
		{-1, 0, 2 * time.Second},
	} {
		f := &fake{}
		b := New(f, Options{Window: tc.window})
		for i := range 3 {
			start := time.Now()
			d, err := b.Discover(context.Background(), subject(i))
			checkOwn(t, i, d, err)
			if took := time.Since(start); took < tc.min || took > tc.max {
				t.Errorf("window %v: call %d took %v", tc.window, i, took)
			}
		}
		if n := len(f.calls()); n != 3 {
			t.Errorf("window %v: %d passes for 3 sequential calls", tc.window, n)
		}
	}
}

// A call marked WithoutCompany starts its pass at once when none runs;
// one that finds a pass running still waits for the next.
func TestCallWithoutCompanySkipsTheWindow(t *testing.T) {
	f := &fake{}
	b := New(f, Options{Window: time.Hour})
	done := make(chan struct{})
	go func() {
		defer close(done)
		d, err := b.Discover(WithoutCompany(context.Background()), subject(0))
		checkOwn(t, 0, d, err)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a call without company waited for the window")
	}
	if n := len(f.calls()); n != 1 {
		t.Errorf("%d passes", n)
	}
}

// fakeConnector is a ManyConnector (over fake) that counts its own
// Discover calls; with rewrite set it is a sources.Rewriter too.
type fakeConnector struct {
	*fake
	direct int
}

func (c *fakeConnector) Discover(context.Context, sources.Subject) (*sources.Discovery, error) {
	c.direct++
	return nil, errors.New("not batched")
}

func (c *fakeConnector) Read(context.Context, sources.DatasetMatches, func(sources.Record) error) error {
	return errors.New("read " + "called")
}

type fakeRewriter struct{ fakeConnector }

func (c *fakeRewriter) Rewrite(context.Context, string, sources.Location, sources.Edit) (sources.RewriteResult, error) {
	return sources.RewriteResult{Deleted: 7}, nil
}

// TestWrap: the wrapped connector discovers through a Batcher, reads (and
// rewrites, if it can) with the connector itself.
func TestWrap(t *testing.T) {
	plain := &fakeConnector{fake: &fake{}}
	rewriting := &fakeRewriter{fakeConnector{fake: &fake{}}}
	for name, tc := range map[string]struct {
		c       ManyConnector
		f       *fake
		direct  *int
		rewrite bool
	}{
		"plain":     {plain, plain.fake, &plain.direct, false},
		"rewriting": {rewriting, rewriting.fake, &rewriting.direct, true},
	} {
		t.Run(name, func(t *testing.T) {
			w := Wrap(tc.c, Options{Window: -1})
			d, err := w.Discover(context.Background(), subject(5))
			checkOwn(t, 5, d, err)
			if *tc.direct != 0 || len(tc.f.calls()) != 1 {
				t.Errorf("Discover went to the connector %d times and to DiscoverMany %d times; want 0 and 1", *tc.direct, len(tc.f.calls()))
			}
			if err := w.Read(context.Background(), sources.DatasetMatches{}, nil); err == nil || err.Error() != "read called" {
				t.Errorf("Read: %v, want the connector's", err)
			}
			rw, ok := w.(sources.Rewriter)
			if ok != tc.rewrite {
				t.Fatalf("wrapped connector is a Rewriter: %v, want %v", ok, tc.rewrite)
			}
			if ok {
				if res, err := rw.Rewrite(context.Background(), "d", sources.Location{}, nil); err != nil || res.Deleted != 7 {
					t.Errorf("Rewrite: %+v, %v; want the connector's", res, err)
				}
			}
		})
	}
}

// TestWrapBlobConnector: the Blob connector stays a Rewriter when wrapped.
func TestWrapBlobConnector(t *testing.T) {
	if _, ok := Wrap(blobdataset.New(&sources.Config{}, nil), Options{}).(sources.Rewriter); !ok {
		t.Error("wrapped blobdataset.Connector is no sources.Rewriter")
	}
}
