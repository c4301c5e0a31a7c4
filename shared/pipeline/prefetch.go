package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/batch"
	"github.com/dsr-functions/dsr/shared/tombstone"
)

// QueuePeeker shows the bodies of messages waiting on a queue without
// taking them, and how many of its messages are being delivered (locked)
// now (the embedded queue of `dsr local` is one). A Service that has one
// looks ahead during discovery: see Lookahead.
type QueuePeeker interface {
	PeekBodies(ctx context.Context, queueName string, max int) (bodies [][]byte, delivering int, err error)
}

// Lookahead lets a discovery under a burst start the discoveries of the
// requests queued behind it, so that they join the shared pass that the
// blob connector's batcher runs next (shared/sources/batch) instead of each
// waiting for a delivery slot of the host first: the host runs only so
// many invocations at once (host.json's maxConcurrentCalls), and without
// this a pass serves at most that many people. A looked-ahead discovery
// changes nothing: its result is held in memory for a short while and
// used by the request's own discover invocation, if it runs on this
// instance in time; otherwise that invocation discovers as usual. Its
// result is never older than the request (the request's message was
// already queued when the discovery started) and at most MaxAge old when
// used.
type Lookahead struct {
	Peeker QueuePeeker
	// Depth is how many queued messages one look reads (default 256), and
	// MaxInFlight how many looked-ahead discoveries may run or wait to be
	// used at once (default 256): the memory this costs is bounded by it.
	Depth       int
	MaxInFlight int
	// MaxAge is how long a looked-ahead result stays usable (default
	// 30 s).
	MaxAge time.Duration
	// Every is how often the queue is looked at again while looked-ahead
	// discoveries run (default 200 ms). A look happens when a discover
	// invocation starts; under a burst every delivery slot may be taken
	// by invocations waiting for the running pass, and the requests
	// queued after their looks would miss the next pass and wait for the
	// one after it.
	Every time.Duration

	mu       sync.Mutex
	entries  map[string]*prefetched
	watching bool
}

// prefetched is one looked-ahead discovery.
type prefetched struct {
	ready   chan struct{} // closed when disc/tombs/err are set
	started time.Time
	disc    *sources.Discovery
	tombs   []*tombstone.Tombstone
	err     error
}

// Defaults of Lookahead.
const (
	DefaultLookaheadDepth  = 256
	DefaultLookaheadMaxAge = 30 * time.Second
	DefaultLookaheadEvery  = 200 * time.Millisecond
)

func (l *Lookahead) depth() int {
	if l.Depth > 0 {
		return l.Depth
	}
	return DefaultLookaheadDepth
}

func (l *Lookahead) maxInFlight() int {
	if l.MaxInFlight > 0 {
		return l.MaxInFlight
	}
	return DefaultLookaheadDepth
}

func (l *Lookahead) every() time.Duration {
	if l.Every > 0 {
		return l.Every
	}
	return DefaultLookaheadEvery
}

func (l *Lookahead) maxAge() time.Duration {
	if l.MaxAge > 0 {
		return l.MaxAge
	}
	return DefaultLookaheadMaxAge
}

// take removes and returns the looked-ahead discovery of id, waiting for
// it if it is still running; ok is false when there is none, it failed or
// it is too old (the caller then discovers itself).
func (l *Lookahead) take(ctx context.Context, id string, now time.Time) (disc *sources.Discovery, tombs []*tombstone.Tombstone, ok bool) {
	if l == nil {
		return nil, nil, false
	}
	l.mu.Lock()
	p := l.entries[id]
	l.mu.Unlock()
	if p == nil {
		return nil, nil, false
	}
	select {
	case <-p.ready:
	case <-ctx.Done():
		return nil, nil, false
	}
	l.mu.Lock()
	if l.entries[id] == p {
		delete(l.entries, id)
	}
	l.mu.Unlock()
	if p.err != nil || now.Sub(p.started) > l.maxAge() {
		return nil, nil, false
	}
	return p.disc, p.tombs, true
}

// discoverAhead starts, in the background, the discoveries of the
// requests whose discover messages wait on the queue, except self's and
// those already started. It returns at once; failures only mean less
// looking ahead. It returns ctx marked batch.WithoutCompany when nothing
// else waits for or is in discovery, so that the caller's discovery does
// not wait the batching window for others (a lone request's fixed cost).
func (s *Service) discoverAhead(ctx context.Context, self string) context.Context {
	l := s.Lookahead
	if l == nil || l.Peeker == nil {
		return ctx
	}
	bodies, delivering, err := l.Peeker.PeekBodies(ctx, s.Queues.Discover, l.depth())
	if err != nil {
		s.Log.Debug("lookahead: peek failed", "err", err)
		return ctx
	}
	if len(bodies) == 0 && delivering <= 1 && l.running() == 0 {
		// Only this invocation's own message is out.
		return batch.WithoutCompany(ctx)
	}
	s.lookAt(bodies, self)
	s.watchAhead()
	return ctx
}

// lookAt starts the looked-ahead discoveries of the queued messages
// bodies (except self's and those already started).
func (s *Service) lookAt(bodies [][]byte, self string) {
	l := s.Lookahead
	now := s.NowUTC()
	var start []string
	l.mu.Lock()
	if l.entries == nil {
		l.entries = map[string]*prefetched{}
	}
	for id, p := range l.entries { // forget results nobody came for
		select {
		case <-p.ready:
			if now.Sub(p.started) > l.maxAge() {
				delete(l.entries, id)
			}
		default:
		}
	}
	for _, b := range bodies {
		var m StageMessage
		if json.Unmarshal(b, &m) != nil || m.Stage != dsr.StageDiscovery || m.Retry != 0 || m.RequestID == self {
			continue
		}
		if _, known := l.entries[m.RequestID]; known || len(l.entries) >= l.maxInFlight() {
			continue
		}
		l.entries[m.RequestID] = &prefetched{ready: make(chan struct{}), started: now}
		start = append(start, m.RequestID)
	}
	l.mu.Unlock()
	for _, id := range start {
		go s.prefetch(id)
	}
}

// watchAhead looks at the queue again every l.Every while looked-ahead
// discoveries run (one watcher at a time; it ends when none runs), so
// that the requests queued while a pass runs join the next pass.
func (s *Service) watchAhead() {
	l := s.Lookahead
	l.mu.Lock()
	if l.watching || l.runningLocked() == 0 {
		l.mu.Unlock()
		return
	}
	l.watching = true
	l.mu.Unlock()
	go func() {
		t := time.NewTicker(l.every())
		defer t.Stop()
		for range t.C {
			l.mu.Lock()
			if l.runningLocked() == 0 {
				l.watching = false
				l.mu.Unlock()
				return
			}
			l.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), l.every())
			bodies, _, err := l.Peeker.PeekBodies(ctx, s.Queues.Discover, l.depth())
			cancel()
			if err == nil {
				s.lookAt(bodies, "")
			}
		}
	}()
}

// running counts looked-ahead discoveries not yet finished.
func (l *Lookahead) running() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.runningLocked()
}

func (l *Lookahead) runningLocked() int {
	n := 0
	for _, p := range l.entries {
		select {
		case <-p.ready:
		default:
			n++
		}
	}
	return n
}

// prefetch runs one looked-ahead discovery (see Lookahead): read-only.
func (s *Service) prefetch(id string) {
	l := s.Lookahead
	l.mu.Lock()
	p := l.entries[id]
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), l.maxAge())
	defer cancel()
	defer close(p.ready)
	st, _, err := s.Store.Get(ctx, id)
	if err != nil {
		p.err = err
		return
	}
	if st.State.Terminal() || (st.Stage != dsr.StageIntake && st.Stage != dsr.StageDiscovery) {
		p.err = errNotAhead
		return
	}
	p.disc, p.tombs, p.err = s.discover(ctx, st)
}

// errNotAhead marks a queued request that needs no discovery any more.
var errNotAhead = errors.New("request is past discovery")
