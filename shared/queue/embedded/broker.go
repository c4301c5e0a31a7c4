// Package embedded is an in-process message broker with the Service Bus
// semantics the pipeline depends on: peek-lock receive, DeliveryCount,
// redelivery after abandon or lock expiry, dead-lettering past the queue's
// max delivery count (reason MaxDeliveryCountExceeded) or on request,
// duplicate detection by MessageId inside a window, and scheduled messages.
// `dsr local` uses it in place of Service Bus. State lives in memory, and
// with Options.Dir (see Open) also in a journal on disk, so a process that
// crashed finds its unsettled messages again when it restarts.
package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dsr-functions/dsr/shared/queue"
)

// DeadLetterSuffix names a queue's dead-letter sub-queue, as in Service Bus.
const DeadLetterSuffix = "/$deadletterqueue"

// Dead-letter reasons set by the broker itself.
const (
	ReasonMaxDelivery = "MaxDeliveryCountExceeded"
)

// Options are the per-broker queue properties (Service Bus defaults).
type Options struct {
	// MaxDeliveryCount: a message abandoned this many times is dead-lettered (default 10).
	MaxDeliveryCount int
	// LockDuration: an unsettled delivery is redelivered after it (default 1 min).
	LockDuration time.Duration
	// DuplicateWindow: a MessageId seen within it is dropped (default 10 min).
	DuplicateWindow time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Dir, when set, is where Open keeps the journal that lets the queues
	// survive a crash: every message not yet completed (dead-lettered ones
	// too), its DeliveryCount, and the duplicate detection set. Empty: the
	// broker lives in memory only. New ignores it.
	Dir string
}

// Delivery is one locked delivery of a message.
type Delivery struct {
	MessageID      string
	Body           []byte
	ContentType    string
	Subject        string
	Properties     map[string]any
	DeliveryCount  int
	SequenceNumber int64
	EnqueuedTime   time.Time
	ExpiresAt      time.Time
	LockToken      string
	// DeadLetterSource is the queue a dead-lettered message came from.
	DeadLetterSource string
}

type entry struct {
	d         Delivery
	available time.Time
	locked    bool
	lockTimer *time.Timer
}

type queueState struct {
	entries []*entry
	seen    map[string]time.Time
}

// Broker holds every queue. The zero value is not usable; call New.
type Broker struct {
	opts    Options
	mu      sync.Mutex
	queues  map[string]*queueState
	seq     int64
	changed chan struct{}
	// j is the open journal (nil: memory only); restored counts what Open found.
	j        *journal
	restored int
	lock     *os.File // holds Dir for this broker (lockDir)
}

var _ queue.Sender = (*Broker)(nil)

// ErrLockLost is returned when settling a delivery whose lock has expired or
// that was already settled.
var ErrLockLost = errors.New("message lock lost")

// New returns an empty broker that lives in memory only (Open journals).
func New(o Options) *Broker {
	if o.MaxDeliveryCount <= 0 {
		o.MaxDeliveryCount = 10
	}
	if o.LockDuration <= 0 {
		o.LockDuration = time.Minute
	}
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Broker{opts: o, queues: map[string]*queueState{}, changed: make(chan struct{})}
}

func (b *Broker) q(name string) *queueState {
	qs := b.queues[name]
	if qs == nil {
		qs = &queueState{seen: map[string]time.Time{}}
		b.queues[name] = qs
	}
	return qs
}

// notify wakes every waiting receiver; b.mu must be held.
func (b *Broker) notify() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// Send enqueues a message, or drops it silently when its MessageId was seen
// on that queue within the duplicate detection window (as Service Bus does).
func (b *Broker) Send(_ context.Context, queueName string, m queue.Message) error {
	if queueName == "" || strings.HasSuffix(queueName, DeadLetterSuffix) {
		return fmt.Errorf("embedded queue: cannot send to %q", queueName)
	}
	if m.ID == "" {
		return errors.New("embedded queue: a MessageId is required")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.opts.Now()
	qs := b.q(queueName)
	for id, at := range qs.seen {
		if now.Sub(at) > b.opts.DuplicateWindow {
			delete(qs.seen, id)
		}
	}
	if _, dup := qs.seen[m.ID]; dup {
		return nil
	}
	ct := m.ContentType
	if ct == "" {
		ct = "application/json"
	}
	avail := now
	if m.ScheduledAt.After(now) {
		avail = m.ScheduledAt
	}
	props := map[string]any{}
	for k, v := range m.Properties {
		props[k] = v
	}
	e := &entry{available: avail, d: Delivery{
		MessageID: m.ID, Body: append([]byte(nil), m.Body...), ContentType: ct, Subject: m.Subject,
		Properties: props, SequenceNumber: b.seq + 1, EnqueuedTime: avail, ExpiresAt: avail.Add(14 * 24 * time.Hour),
	}}
	// Journaled before it is accepted: a sender told "sent" must find the
	// message after a crash, and one told otherwise retries it, which the
	// duplicate detection must then not drop.
	if err := b.write(record{Op: opPut, Queue: queueName, At: now, Msg: saved(e)}); err != nil {
		return err
	}
	b.seq++
	qs.seen[m.ID] = now
	qs.entries = append(qs.entries, e)
	b.notify()
	return nil
}

// Receive waits for the next available message on a queue (or a dead-letter
// queue, "<queue>/$deadletterqueue"), locks it and returns it with its
// DeliveryCount raised by one.
func (b *Broker) Receive(ctx context.Context, queueName string) (*Delivery, error) {
	for {
		// A cancelled receiver gets nothing, even when a message is ready.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b.mu.Lock()
		now := b.opts.Now()
		qs := b.q(queueName)
		var next time.Time
		for _, e := range qs.entries {
			if e.locked {
				continue
			}
			if !e.available.After(now) {
				e.locked = true
				e.d.DeliveryCount++
				e.d.LockToken = strconv.FormatInt(e.d.SequenceNumber, 10) + "-" + strconv.Itoa(e.d.DeliveryCount)
				token := e.d.LockToken
				e.lockTimer = time.AfterFunc(b.opts.LockDuration, func() { b.expireLock(queueName, token) })
				// Best effort: should it fail, a restart delivers the
				// message once more than its DeliveryCount says.
				_ = b.write(record{Op: opLock, Queue: queueName, Seq: e.d.SequenceNumber, N: e.d.DeliveryCount})
				d := e.d.clone()
				b.mu.Unlock()
				return &d, nil
			}
			if next.IsZero() || e.available.Before(next) {
				next = e.available
			}
		}
		changed := b.changed
		b.mu.Unlock()
		var (
			timer <-chan time.Time
			t     *time.Timer
		)
		if !next.IsZero() {
			t = time.NewTimer(next.Sub(now))
			timer = t.C
		}
		select {
		case <-ctx.Done():
			if t != nil {
				t.Stop()
			}
			return nil, ctx.Err()
		case <-changed:
		case <-timer:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// clone returns a copy of d that shares no mutable state with it, as each
// Service Bus receive hands out an independent message.
func (d Delivery) clone() Delivery {
	d.Body = append([]byte(nil), d.Body...)
	props := make(map[string]any, len(d.Properties))
	for k, v := range d.Properties {
		props[k] = v
	}
	d.Properties = props
	return d
}

func (b *Broker) find(queueName, token string) (*queueState, int, error) {
	qs := b.q(queueName)
	for i, e := range qs.entries {
		if e.locked && e.d.LockToken == token {
			return qs, i, nil
		}
	}
	return nil, 0, ErrLockLost
}

// Complete removes a delivered message for good. With a journal it fails,
// changing nothing, when the completion cannot be recorded: the message is
// then delivered again, as after a lost lock.
func (b *Broker) Complete(queueName, lockToken string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	qs, i, err := b.find(queueName, lockToken)
	if err != nil {
		return err
	}
	if err := b.write(record{Op: opDone, Queue: queueName, Seq: qs.entries[i].d.SequenceNumber}); err != nil {
		return err
	}
	qs.entries[i].lockTimer.Stop()
	qs.entries = append(qs.entries[:i], qs.entries[i+1:]...)
	b.notify()
	return nil
}

// Abandon releases the lock so the message is redelivered at once, or
// dead-letters it with MaxDeliveryCountExceeded when it has been delivered
// MaxDeliveryCount times.
func (b *Broker) Abandon(queueName, lockToken string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.abandonLocked(queueName, lockToken)
}

func (b *Broker) abandonLocked(queueName, lockToken string) error {
	qs, i, err := b.find(queueName, lockToken)
	if err != nil {
		return err
	}
	e := qs.entries[i]
	e.lockTimer.Stop()
	// Dead-letter queues keep their messages however often they fail.
	if e.d.DeliveryCount >= b.opts.MaxDeliveryCount && !strings.HasSuffix(queueName, DeadLetterSuffix) {
		desc := fmt.Sprintf("Message could not be consumed after %d delivery attempts.", e.d.DeliveryCount)
		b.deadLetterAt(queueName, qs, i, ReasonMaxDelivery, desc)
		return nil
	}
	e.locked = false
	e.d.LockToken = ""
	b.notify()
	return nil
}

// DeadLetter moves a delivered message to the queue's dead-letter queue with
// a reason and description (application properties DeadLetterReason and
// DeadLetterErrorDescription, as Service Bus records them). A message
// received from a dead-letter queue cannot be dead-lettered further: that
// fails and leaves its lock in place, so it can still be completed or
// abandoned.
func (b *Broker) DeadLetter(queueName, lockToken, reason, description string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	qs, i, err := b.find(queueName, lockToken)
	if err != nil {
		return err
	}
	if strings.HasSuffix(queueName, DeadLetterSuffix) {
		return fmt.Errorf("embedded queue: %q is a dead-letter queue; its messages cannot be dead-lettered further", queueName)
	}
	qs.entries[i].lockTimer.Stop()
	b.deadLetterAt(queueName, qs, i, reason, description)
	return nil
}

// deadLetterAt dead-letters entry i and journals it. The move happens even
// when the journal cannot be written: after a restart the message is then
// back on its queue and is dead-lettered again at its next failure.
func (b *Broker) deadLetterAt(queueName string, qs *queueState, i int, reason, description string) {
	now := b.opts.Now()
	_ = b.write(record{Op: opDead, Queue: queueName, Seq: qs.entries[i].d.SequenceNumber, Reason: reason, Description: description, At: now})
	b.moveToDeadLetter(queueName, qs, i, reason, description, now)
	b.notify()
}

// moveToDeadLetter moves entry i to the queue's dead-letter queue, available from at.
func (b *Broker) moveToDeadLetter(queueName string, qs *queueState, i int, reason, description string, at time.Time) {
	e := qs.entries[i]
	qs.entries = append(qs.entries[:i], qs.entries[i+1:]...)
	d := e.d
	d.Properties = map[string]any{}
	for k, v := range e.d.Properties {
		d.Properties[k] = v
	}
	d.Properties["DeadLetterReason"] = reason
	d.Properties["DeadLetterErrorDescription"] = description
	d.DeadLetterSource = queueName
	d.DeliveryCount = 0
	d.LockToken = ""
	dlq := b.q(queueName + DeadLetterSuffix)
	dlq.entries = append(dlq.entries, &entry{d: d, available: at})
}

// RenewLock extends a delivery's lock by the lock duration from now, as the
// Functions host does while an invocation runs.
func (b *Broker) RenewLock(queueName, lockToken string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	qs, i, err := b.find(queueName, lockToken)
	if err != nil {
		return err
	}
	e := qs.entries[i]
	e.lockTimer.Stop()
	e.lockTimer = time.AfterFunc(b.opts.LockDuration, func() { b.expireLock(queueName, lockToken) })
	return nil
}

// LockDuration is how long a delivery stays locked without renewal.
func (b *Broker) LockDuration() time.Duration { return b.opts.LockDuration }

func (b *Broker) expireLock(queueName, token string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.abandonLocked(queueName, token)
}

// Peek returns copies of the messages on a queue (locked ones included), in
// sequence order, without locking them.
func (b *Broker) Peek(queueName string) []Delivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	qs := b.q(queueName)
	out := make([]Delivery, 0, len(qs.entries))
	for _, e := range qs.entries {
		out = append(out, e.d.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SequenceNumber < out[j].SequenceNumber })
	return out
}

// PeekBodies returns the bodies of up to max messages on a queue that a
// receiver could take now (neither locked nor scheduled for later), in
// sequence order, without locking them, and how many of the queue's
// messages are locked (being delivered). It serves pipeline.Lookahead.
func (b *Broker) PeekBodies(_ context.Context, queueName string, max int) ([][]byte, int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.opts.Now()
	qs := b.q(queueName)
	ready := make([]*entry, 0, len(qs.entries))
	locked := 0
	for _, e := range qs.entries {
		switch {
		case e.locked:
			locked++
		case !e.available.After(now):
			ready = append(ready, e)
		}
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i].d.SequenceNumber < ready[j].d.SequenceNumber })
	out := make([][]byte, 0, min(max, len(ready)))
	for _, e := range ready[:min(max, len(ready))] {
		out = append(out, bytes.Clone(e.d.Body))
	}
	return out, locked, nil
}

// Idle reports whether every queue except dead-letter queues is empty.
func (b *Broker) Idle() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, qs := range b.queues {
		if !strings.HasSuffix(name, DeadLetterSuffix) && len(qs.entries) > 0 {
			return false
		}
	}
	return true
}
