// Package batch serves concurrent discovery requests with shared passes:
// a Batcher coalesces the subjects of the Discover calls that arrive while
// a pass is running, or within a short window, into one DiscoverMany call,
// so that a store is read once for many requests instead of once each.
package batch

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/dsr-functions/dsr/shared/sources"
)

// ManyDiscoverer discovers several subjects in one go; result i belongs to
// subjects[i] (blobdataset.Connector is one).
type ManyDiscoverer interface {
	DiscoverMany(ctx context.Context, subjects []sources.Subject) ([]*sources.Discovery, error)
}

// Defaults of Options.
const (
	DefaultWindow   = 50 * time.Millisecond
	DefaultMaxBatch = 1000
)

// Options tune a Batcher.
type Options struct {
	// Window is how long a call that finds no pass running waits for
	// others to join it before the pass starts: 0 means DefaultWindow, a
	// negative value no waiting. Calls that arrive while a pass runs
	// form the next pass as soon as it ends.
	Window time.Duration
	// MaxBatch is the most subjects one pass serves (0 means
	// DefaultMaxBatch); a full batch starts without waiting for the
	// window, and further calls wait for the next pass.
	MaxBatch int
}

// Batcher implements Discover on top of a ManyDiscoverer by batching calls.
// One pass runs at a time. Each caller gets its own result; when a pass of
// several subjects fails, each of them is discovered alone, so a caller
// gets an error only if its own discovery fails. A caller whose ctx
// ends returns at once with ctx's error and leaves the others' pass alone;
// the pass itself runs under a context of its own, cancelled only when
// every caller in it has given up (so it does not carry the callers'
// deadlines or values). A Batcher is safe for concurrent use and needs no
// shutdown: it keeps no goroutine when idle.
type Batcher struct {
	d        ManyDiscoverer
	window   time.Duration
	maxBatch int

	mu      sync.Mutex
	pending []*call // not yet dispatched, in arrival order
	running bool    // a pass is in flight
	// timerGen identifies the armed window timer (0: none), so that a
	// timer that fired late does not act for a newer one.
	timerGen uint64
	timer    *time.Timer
	lastGen  uint64
}

// call is one Discover call.
type call struct {
	subject sources.Subject
	// waiter is the request behind the call (sources.WaiterFrom), passed
	// on to the pass: a connector that answers later wakes it.
	waiter sources.Waiter
	done   chan struct{} // closed when res or err is set
	res    *sources.Discovery
	err    error
	pass   *pass // set when dispatched (under Batcher.mu)
}

// pass is one DiscoverMany call in flight.
type pass struct {
	cancel  context.CancelFunc
	waiting int // callers still waiting for it (under Batcher.mu)
}

// New returns a Batcher over d.
func New(d ManyDiscoverer, opts Options) *Batcher {
	b := &Batcher{d: d, window: opts.Window, maxBatch: opts.MaxBatch}
	if b.window == 0 {
		b.window = DefaultWindow
	}
	if b.maxBatch <= 0 {
		b.maxBatch = DefaultMaxBatch
	}
	return b
}

// alone is the context key of WithoutCompany.
type alone struct{}

// WithoutCompany marks a Discover call whose caller knows that no other
// discovery is about to come (the queue holds nothing for discovery and
// nothing is being delivered): if no pass is running, its pass starts at
// once instead of waiting a window for company that will not come.
func WithoutCompany(ctx context.Context) context.Context {
	return context.WithValue(ctx, alone{}, true)
}

// Discover finds the subject's records through a pass shared with the
// other calls batched with it, and returns its own result.
func (b *Batcher) Discover(ctx context.Context, subject sources.Subject) (*sources.Discovery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := &call{subject: subject, done: make(chan struct{})}
	c.waiter, _ = sources.WaiterFrom(ctx)
	b.mu.Lock()
	b.pending = append(b.pending, c)
	if ctx.Value(alone{}) != nil && !b.running {
		b.dispatchLocked()
	} else {
		b.scheduleLocked()
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-c.done:
		// Finished meanwhile: the result is there, take it.
		return c.res, c.err
	default:
	}
	if c.pass == nil {
		b.pending = slices.DeleteFunc(b.pending, func(p *call) bool { return p == c })
		if len(b.pending) == 0 && b.timer != nil {
			b.timer.Stop()
			b.timer, b.timerGen = nil, 0
		}
	} else if c.pass.waiting--; c.pass.waiting == 0 {
		c.pass.cancel() // nobody waits for this pass any more
	}
	return nil, ctx.Err()
}

// scheduleLocked starts a pass now, or arms the window timer, as the
// pending calls require.
func (b *Batcher) scheduleLocked() {
	if b.running || len(b.pending) == 0 {
		return
	}
	if b.window < 0 || len(b.pending) >= b.maxBatch {
		b.dispatchLocked()
		return
	}
	if b.timer == nil {
		b.lastGen++
		gen := b.lastGen
		b.timerGen = gen
		b.timer = time.AfterFunc(b.window, func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if b.timerGen != gen {
				return
			}
			b.timer, b.timerGen = nil, 0
			b.dispatchLocked()
		})
	}
}

// dispatchLocked starts a pass over the first MaxBatch pending calls.
func (b *Batcher) dispatchLocked() {
	if b.running || len(b.pending) == 0 {
		return
	}
	if b.timer != nil {
		b.timer.Stop()
		b.timer, b.timerGen = nil, 0
	}
	n := min(len(b.pending), b.maxBatch)
	calls := slices.Clone(b.pending[:n])
	b.pending = slices.Delete(b.pending, 0, n)
	ctx, cancel := context.WithCancel(context.Background())
	p := &pass{cancel: cancel, waiting: n}
	for _, c := range calls {
		c.pass = p
	}
	b.running = true
	go b.run(ctx, cancel, calls)
}

// run performs one pass and hands out its results, then starts the next
// pass if calls arrived meanwhile.
func (b *Batcher) run(ctx context.Context, cancel context.CancelFunc, calls []*call) {
	defer cancel()
	subjects := make([]sources.Subject, len(calls))
	waiters := make([]sources.Waiter, len(calls))
	for i, c := range calls {
		subjects[i], waiters[i] = c.subject, c.waiter
	}
	res, err := b.discoverMany(sources.WithWaiters(ctx, waiters), subjects)
	if err == nil && len(res) != len(calls) {
		err = fmt.Errorf("batch: DiscoverMany returned %d results for %d subjects", len(res), len(calls))
	}
	errs := make([]error, len(calls))
	// A pass that waits for a system (a fanned-out scan) waits for every
	// subject's sake alike: no one subject is to blame.
	if err != nil && len(calls) > 1 && ctx.Err() == nil && !errors.Is(err, sources.ErrPending) {
		// A failure may belong to one subject (a malformed record that only
		// its search parses): each subject is discovered alone, so one
		// person's bad data never fails another person's request.
		res = make([]*sources.Discovery, len(calls))
		for i, c := range calls {
			one, oerr := b.discoverMany(sources.WithWaiters(ctx, []sources.Waiter{c.waiter}), []sources.Subject{c.subject})
			if oerr == nil && len(one) != 1 {
				oerr = fmt.Errorf("batch: DiscoverMany returned %d results for 1 subject", len(one))
			}
			if oerr != nil {
				errs[i] = oerr
				continue
			}
			res[i] = one[0]
		}
		err = nil
	} else if err != nil {
		for i := range errs {
			errs[i] = err
		}
	}
	// The pass is over before its callers learn the results, so that a
	// call they make next waits for a window like any other.
	b.mu.Lock()
	b.running = false
	// The calls that came during the pass have waited long enough, unless
	// they are fewer than the pass just served: under a burst its callers
	// are about to be replaced by as many new ones (the queue hands their
	// slots to the next messages), so the next pass waits one window for
	// them instead of running for a few and making the rest wait a whole
	// pass. A lone request never waits more than the window.
	switch {
	case len(b.pending) == 0:
	case len(b.pending) >= len(calls) || len(b.pending) >= b.maxBatch:
		b.dispatchLocked()
	default:
		b.scheduleLocked()
	}
	b.mu.Unlock()
	for i, c := range calls {
		if errs[i] != nil {
			c.err = errs[i]
		} else {
			c.res = res[i]
		}
		close(c.done)
	}
}

// errPanicked is wrapped by the error of a pass whose DiscoverMany panicked.
var errPanicked = errors.New("batch: DiscoverMany panicked")

// discoverMany calls DiscoverMany, turning a panic into an error for the
// pass's callers (a panic here would otherwise end the process, not one
// request). The error names runtime errors only: another panic value may
// hold request data.
func (b *Batcher) discoverMany(ctx context.Context, subjects []sources.Subject) (res []*sources.Discovery, err error) {
	defer func() {
		if v := recover(); v != nil {
			if re, ok := v.(runtime.Error); ok {
				err = fmt.Errorf("%w: %v", errPanicked, re)
			} else {
				err = fmt.Errorf("%w (%T)", errPanicked, v)
			}
			res = nil
		}
	}()
	res, err = b.d.DiscoverMany(ctx, subjects)
	if err != nil {
		return nil, fmt.Errorf("batched discovery of %d subjects: %w", len(subjects), err)
	}
	return res, nil
}

// ManyConnector is a connector that can also discover many subjects in one
// go (blobdataset.Connector is one).
type ManyConnector interface {
	sources.Connector
	ManyDiscoverer
}

// Wrap returns a connector whose Discover goes through a Batcher over c and
// whose Read is c's. If c is a sources.Rewriter, so is the result (with
// c's Rewrite), and a sources.PlannedRewriter too (the change stages'
// reports depend on it); other optional interfaces of c are not kept.
func Wrap(c ManyConnector, opts Options) sources.Connector {
	w := &batched{ManyConnector: c, b: New(c, opts)}
	if prw, ok := c.(sources.PlannedRewriter); ok {
		return &batchedPlanned{batched: w, PlannedRewriter: prw}
	}
	if rw, ok := c.(sources.Rewriter); ok {
		return &batchedRewriter{batched: w, Rewriter: rw}
	}
	return w
}

// batched is a connector with batched discovery.
type batched struct {
	ManyConnector
	b *Batcher
}

// Discover discovers the subject through the Batcher.
func (c *batched) Discover(ctx context.Context, subject sources.Subject) (*sources.Discovery, error) {
	return c.b.Discover(ctx, subject)
}

// batchedPlanned is batched that keeps the wrapped connector's planned
// rewrites.
type batchedPlanned struct {
	*batched
	sources.PlannedRewriter
}

// batchedRewriter is batched that keeps the wrapped connector's Rewrite.
type batchedRewriter struct {
	*batched
	sources.Rewriter
}
