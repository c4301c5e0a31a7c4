package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/queue"
	"github.com/dsr-functions/dsr/shared/queue/embedded"
	"github.com/dsr-functions/dsr/shared/testutil"
)

// fakeClock is an Options.Now the test advances by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 5, 1, 12, 34, 56, 789_000_000, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const q = "work"

func dlq(name string) string { return name + embedded.DeadLetterSuffix }

func send(t *testing.T, b *embedded.Broker, queueName string, m queue.Message) {
	t.Helper()
	if err := b.Send(context.Background(), queueName, m); err != nil {
		t.Fatalf("Send(%s, %s): %v", queueName, m.ID, err)
	}
}

// receive receives with a timeout that fails the test.
func receive(t *testing.T, b *embedded.Broker, queueName string) *embedded.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	d, err := b.Receive(ctx, queueName)
	if err != nil {
		t.Fatalf("Receive(%s): %v", queueName, err)
	}
	return d
}

// receiveNone asserts nothing is delivered within wait.
func receiveNone(t *testing.T, b *embedded.Broker, queueName string, wait time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	d, err := b.Receive(ctx, queueName)
	if err == nil {
		t.Fatalf("Receive(%s) delivered %s (count %d), want nothing", queueName, d.MessageID, d.DeliveryCount)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive(%s) = %v, want context.DeadlineExceeded", queueName, err)
	}
}

func TestSendReceiveComplete(t *testing.T) {
	tests := []struct {
		name            string
		msg             queue.Message
		wantContentType string
	}{
		{
			name:            "default content type",
			msg:             queue.Message{ID: "m1", Body: []byte(`{"id":"42"}`), Subject: "discover", Properties: map[string]any{"tenant": "t1", "n": 2}},
			wantContentType: "application/json",
		},
		{
			name:            "explicit content type",
			msg:             queue.Message{ID: "m2", Body: []byte("plain"), ContentType: "text/plain"},
			wantContentType: "text/plain",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock()
			b := embedded.New(embedded.Options{Now: clock.Now})
			send(t, b, q, tt.msg)
			if b.Idle() {
				t.Fatal("Idle() = true with a message queued")
			}
			d := receive(t, b, q)
			if d.MessageID != tt.msg.ID || string(d.Body) != string(tt.msg.Body) || d.Subject != tt.msg.Subject {
				t.Errorf("delivery = %+v, want message %+v", d, tt.msg)
			}
			if d.ContentType != tt.wantContentType {
				t.Errorf("ContentType = %q, want %q", d.ContentType, tt.wantContentType)
			}
			wantProps := tt.msg.Properties
			if wantProps == nil {
				wantProps = map[string]any{}
			}
			if !reflect.DeepEqual(d.Properties, wantProps) {
				t.Errorf("Properties = %v, want %v", d.Properties, wantProps)
			}
			if d.DeliveryCount != 1 {
				t.Errorf("DeliveryCount = %d, want 1", d.DeliveryCount)
			}
			if d.LockToken == "" || d.SequenceNumber <= 0 {
				t.Errorf("LockToken %q, SequenceNumber %d: want both set", d.LockToken, d.SequenceNumber)
			}
			if !d.EnqueuedTime.Equal(clock.Now()) {
				t.Errorf("EnqueuedTime = %v, want %v", d.EnqueuedTime, clock.Now())
			}
			if !d.ExpiresAt.After(d.EnqueuedTime) {
				t.Errorf("ExpiresAt %v not after EnqueuedTime %v", d.ExpiresAt, d.EnqueuedTime)
			}
			if d.DeadLetterSource != "" {
				t.Errorf("DeadLetterSource = %q on a live queue", d.DeadLetterSource)
			}
			// Locked: still on the queue, not receivable.
			if got := len(b.Peek(q)); got != 1 {
				t.Fatalf("Peek while locked: %d messages, want 1", got)
			}
			receiveNone(t, b, q, 30*time.Millisecond)
			if err := b.Complete(q, d.LockToken); err != nil {
				t.Fatalf("Complete: %v", err)
			}
			if got := b.Peek(q); len(got) != 0 {
				t.Fatalf("Peek after Complete: %v", got)
			}
			if !b.Idle() {
				t.Error("Idle() = false after Complete")
			}
			if err := b.Complete(q, d.LockToken); !errors.Is(err, embedded.ErrLockLost) {
				t.Errorf("second Complete = %v, want ErrLockLost", err)
			}
			receiveNone(t, b, q, 30*time.Millisecond)
		})
	}
}

func TestSendCopiesBodyAndProperties(t *testing.T) {
	b := embedded.New(embedded.Options{})
	body := []byte(`{"id":"1"}`)
	props := map[string]any{"k": "v"}
	send(t, b, q, queue.Message{ID: "m", Body: body, Properties: props})
	body[2] = 'X'
	props["k"] = "changed"
	d := receive(t, b, q)
	if string(d.Body) != `{"id":"1"}` || d.Properties["k"] != "v" {
		t.Fatalf("broker kept the caller's buffers: body %s, props %v", d.Body, d.Properties)
	}
	// A consumer scribbling on its delivery must not change the broker's copy.
	d.Properties["k"] = "scribbled"
	d.Body[2] = 'Y'
	for _, p := range b.Peek(q) {
		if p.Properties["k"] != "v" || string(p.Body) != `{"id":"1"}` {
			t.Fatalf("Peek shows the consumer's changes: body %s, props %v", p.Body, p.Properties)
		}
		p.Properties["k"] = "peeked"
	}
	if err := b.Abandon(q, d.LockToken); err != nil {
		t.Fatal(err)
	}
	if d2 := receive(t, b, q); d2.Properties["k"] != "v" || string(d2.Body) != `{"id":"1"}` {
		t.Fatalf("redelivery shows earlier changes: body %s, props %v", d2.Body, d2.Properties)
	}
}

func TestPeekOrder(t *testing.T) {
	b := embedded.New(embedded.Options{})
	for i := range 5 {
		send(t, b, q, queue.Message{ID: fmt.Sprint("m", i)})
	}
	// Lock and abandon the first two so they are not in arrival order internally.
	d0 := receive(t, b, q)
	d1 := receive(t, b, q)
	_ = b.Abandon(q, d1.LockToken)
	_ = b.Abandon(q, d0.LockToken)
	got := b.Peek(q)
	if len(got) != 5 {
		t.Fatalf("Peek: %d messages, want 5", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i-1].SequenceNumber >= got[i].SequenceNumber {
			t.Fatalf("Peek not in sequence order: %d before %d", got[i-1].SequenceNumber, got[i].SequenceNumber)
		}
	}
	if got[0].MessageID != "m0" || got[4].MessageID != "m4" {
		t.Fatalf("Peek order = %s..%s, want m0..m4", got[0].MessageID, got[4].MessageID)
	}
}

// PeekBodies shows what a receiver could take now (not locked, not
// scheduled for later), in order, and counts the locked ones.
func TestPeekBodiesShowsWhatWaits(t *testing.T) {
	clock := newClock()
	b := embedded.New(embedded.Options{Now: clock.Now})
	for i := range 4 {
		send(t, b, q, queue.Message{ID: fmt.Sprint("m", i), Body: []byte(fmt.Sprint("body", i))})
	}
	send(t, b, q, queue.Message{ID: "later", Body: []byte("later"), ScheduledAt: clock.Now().Add(time.Minute)})
	receive(t, b, q) // m0 is locked
	bodies, locked, err := b.PeekBodies(context.Background(), q, 2)
	if err != nil {
		t.Fatal(err)
	}
	if locked != 1 || len(bodies) != 2 || string(bodies[0]) != "body1" || string(bodies[1]) != "body2" {
		t.Fatalf("PeekBodies = %q, %d locked; want body1, body2 and 1 locked", bodies, locked)
	}
	if all, _, _ := b.PeekBodies(context.Background(), q, 10); len(all) != 3 {
		t.Fatalf("%d bodies, want 3 (not the locked one, not the scheduled one)", len(all))
	}
}

func TestDeliveryCountIncrementsOnAbandon(t *testing.T) {
	b := embedded.New(embedded.Options{MaxDeliveryCount: 5})
	send(t, b, q, queue.Message{ID: "m"})
	var tokens []string
	for want := 1; want <= 4; want++ {
		d := receive(t, b, q)
		if d.DeliveryCount != want {
			t.Fatalf("delivery %d: DeliveryCount = %d", want, d.DeliveryCount)
		}
		for _, old := range tokens {
			if old == d.LockToken {
				t.Fatalf("delivery %d reuses lock token %q", want, old)
			}
		}
		tokens = append(tokens, d.LockToken)
		if err := b.Abandon(q, d.LockToken); err != nil {
			t.Fatalf("Abandon %d: %v", want, err)
		}
		if got := b.Peek(dlq(q)); len(got) != 0 {
			t.Fatalf("dead-lettered after %d deliveries with MaxDeliveryCount 5", want)
		}
	}
}

func TestDeadLetterAfterMaxDeliveryCount(t *testing.T) {
	for _, max := range []int{1, 3} {
		t.Run(fmt.Sprint("max=", max), func(t *testing.T) {
			b := embedded.New(embedded.Options{MaxDeliveryCount: max})
			send(t, b, q, queue.Message{ID: "m", Body: []byte(`{"id":"7"}`), Properties: map[string]any{"tenant": "t1"}})
			for i := 1; i <= max; i++ {
				d := receive(t, b, q)
				if d.DeliveryCount != i {
					t.Fatalf("DeliveryCount = %d, want %d", d.DeliveryCount, i)
				}
				if i < max && len(b.Peek(dlq(q))) != 0 {
					t.Fatal("dead-lettered too early")
				}
				if err := b.Abandon(q, d.LockToken); err != nil {
					t.Fatalf("Abandon: %v", err)
				}
			}
			if got := b.Peek(q); len(got) != 0 {
				t.Fatalf("queue still holds %d messages after %d abandons", len(got), max)
			}
			if !b.Idle() {
				t.Error("Idle() = false; dead-letter queues must not count")
			}
			dl := b.Peek(dlq(q))
			if len(dl) != 1 {
				t.Fatalf("dead-letter queue holds %d messages, want 1", len(dl))
			}
			got := dl[0]
			if got.MessageID != "m" || string(got.Body) != `{"id":"7"}` {
				t.Errorf("dead-lettered message = %s %s", got.MessageID, got.Body)
			}
			if got.Properties["DeadLetterReason"] != embedded.ReasonMaxDelivery || embedded.ReasonMaxDelivery != "MaxDeliveryCountExceeded" {
				t.Errorf("DeadLetterReason = %v, want MaxDeliveryCountExceeded", got.Properties["DeadLetterReason"])
			}
			desc, _ := got.Properties["DeadLetterErrorDescription"].(string)
			if !strings.Contains(desc, fmt.Sprint(max)) {
				t.Errorf("DeadLetterErrorDescription = %q, want it to name %d attempts", desc, max)
			}
			if got.Properties["tenant"] != "t1" {
				t.Errorf("application properties lost: %v", got.Properties)
			}
			if got.DeadLetterSource != q {
				t.Errorf("DeadLetterSource = %q, want %q", got.DeadLetterSource, q)
			}
			// The dead-lettered message is received from the DLQ like any other...
			d := receive(t, b, dlq(q))
			if d.MessageID != "m" || d.DeadLetterSource != q || d.Properties["DeadLetterReason"] != embedded.ReasonMaxDelivery {
				t.Fatalf("DLQ delivery = %+v", d)
			}
			// ...and is never dead-lettered further, however often it fails.
			for i := 0; i < max+3; i++ {
				if err := b.Abandon(dlq(q), d.LockToken); err != nil {
					t.Fatalf("Abandon on DLQ: %v", err)
				}
				d = receive(t, b, dlq(q))
			}
			if got := b.Peek(dlq(dlq(q))); len(got) != 0 {
				t.Fatalf("a dead-letter queue dead-lettered further: %v", got)
			}
			if err := b.Complete(dlq(q), d.LockToken); err != nil {
				t.Fatalf("Complete on DLQ: %v", err)
			}
			if got := b.Peek(dlq(q)); len(got) != 0 {
				t.Fatalf("DLQ after Complete: %v", got)
			}
		})
	}
}

func TestDefaultMaxDeliveryCountIsTen(t *testing.T) {
	b := embedded.New(embedded.Options{})
	send(t, b, q, queue.Message{ID: "m"})
	for i := 1; i <= 10; i++ {
		d := receive(t, b, q)
		if d.DeliveryCount != i {
			t.Fatalf("DeliveryCount = %d, want %d", d.DeliveryCount, i)
		}
		_ = b.Abandon(q, d.LockToken)
		if wantDL := i == 10; (len(b.Peek(dlq(q))) == 1) != wantDL {
			t.Fatalf("after %d abandons: dead-lettered = %v, want %v", i, !wantDL, wantDL)
		}
	}
}

func TestDeadLetterExplicit(t *testing.T) {
	tests := []struct{ reason, description string }{
		{"InvalidBody", "body is not a request reference"},
		{"PoisonMessage", ""},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			b := embedded.New(embedded.Options{MaxDeliveryCount: 5})
			send(t, b, q, queue.Message{ID: "m", Properties: map[string]any{"tenant": "t1"}})
			d := receive(t, b, q)
			if err := b.DeadLetter(q, d.LockToken, tt.reason, tt.description); err != nil {
				t.Fatalf("DeadLetter: %v", err)
			}
			if len(b.Peek(q)) != 0 {
				t.Fatal("message still on the queue after DeadLetter")
			}
			dl := b.Peek(dlq(q))
			if len(dl) != 1 {
				t.Fatalf("DLQ holds %d, want 1", len(dl))
			}
			p := dl[0].Properties
			if p["DeadLetterReason"] != tt.reason || p["DeadLetterErrorDescription"] != tt.description || p["tenant"] != "t1" {
				t.Errorf("properties = %v", p)
			}
			if dl[0].DeadLetterSource != q {
				t.Errorf("DeadLetterSource = %q, want %q", dl[0].DeadLetterSource, q)
			}
			if err := b.Complete(q, d.LockToken); !errors.Is(err, embedded.ErrLockLost) {
				t.Errorf("Complete after DeadLetter = %v, want ErrLockLost", err)
			}
		})
	}
}

func TestDeadLetterFromDeadLetterQueueIsRefused(t *testing.T) {
	b := embedded.New(embedded.Options{})
	send(t, b, q, queue.Message{ID: "m"})
	d := receive(t, b, q)
	if err := b.DeadLetter(q, d.LockToken, "r", "d"); err != nil {
		t.Fatal(err)
	}
	d = receive(t, b, dlq(q))
	if err := b.DeadLetter(dlq(q), d.LockToken, "again", ""); err == nil {
		t.Fatal("DeadLetter on a dead-letter queue succeeded")
	}
	if got := b.Peek(dlq(dlq(q))); len(got) != 0 {
		t.Fatalf("message moved to %s", dlq(dlq(q)))
	}
	// The message is still held by its lock and can be settled normally.
	if err := b.Complete(dlq(q), d.LockToken); err != nil {
		t.Fatalf("Complete after refused DeadLetter: %v", err)
	}
}

func TestDuplicateDetection(t *testing.T) {
	const window = 10 * time.Minute
	tests := []struct {
		name      string
		advance   time.Duration
		queueName string
		id        string
		wantCount int // messages on q after the second send
	}{
		{"same id at once", 0, q, "m", 1},
		{"same id inside window", window - time.Second, q, "m", 1},
		{"same id at window end", window, q, "m", 1},
		{"same id after window", window + time.Second, q, "m", 2},
		{"other id", 0, q, "other", 2},
		{"same id other queue", 0, "elsewhere", "m", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock()
			b := embedded.New(embedded.Options{DuplicateWindow: window, Now: clock.Now})
			send(t, b, q, queue.Message{ID: "m", Body: []byte("first")})
			clock.Advance(tt.advance)
			send(t, b, tt.queueName, queue.Message{ID: tt.id, Body: []byte("second")})
			got := b.Peek(q)
			if len(got) != tt.wantCount {
				t.Fatalf("queue holds %d messages, want %d", len(got), tt.wantCount)
			}
			if string(got[0].Body) != "first" {
				t.Errorf("first message body = %q", got[0].Body)
			}
			if tt.queueName != q && len(b.Peek(tt.queueName)) != 1 {
				t.Errorf("duplicate detection leaked across queues")
			}
		})
	}
}

func TestDuplicateDetectionSurvivesComplete(t *testing.T) {
	clock := newClock()
	b := embedded.New(embedded.Options{DuplicateWindow: time.Minute, Now: clock.Now})
	send(t, b, q, queue.Message{ID: "m"})
	d := receive(t, b, q)
	if err := b.Complete(q, d.LockToken); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Second)
	send(t, b, q, queue.Message{ID: "m"})
	if got := len(b.Peek(q)); got != 0 {
		t.Fatalf("a resend inside the window after Complete was accepted (%d messages)", got)
	}
	clock.Advance(31 * time.Second)
	send(t, b, q, queue.Message{ID: "m"})
	if got := len(b.Peek(q)); got != 1 {
		t.Fatalf("a resend after the window was dropped (%d messages)", got)
	}
}

func TestScheduledMessage(t *testing.T) {
	t.Run("fake clock", func(t *testing.T) {
		clock := newClock()
		b := embedded.New(embedded.Options{Now: clock.Now})
		at := clock.Now().Add(time.Hour)
		send(t, b, q, queue.Message{ID: "later", ScheduledAt: at})
		send(t, b, q, queue.Message{ID: "past", ScheduledAt: clock.Now().Add(-time.Hour)})
		if d := receive(t, b, q); d.MessageID != "past" {
			t.Fatalf("got %s first, want the message scheduled in the past", d.MessageID)
		}
		receiveNone(t, b, q, 40*time.Millisecond)
		if b.Idle() {
			t.Error("Idle() = true with a scheduled message pending")
		}
		clock.Advance(time.Hour - time.Second)
		receiveNone(t, b, q, 20*time.Millisecond)
		clock.Advance(time.Second)
		d := receive(t, b, q)
		if d.MessageID != "later" {
			t.Fatalf("got %s, want later", d.MessageID)
		}
		if !d.EnqueuedTime.Equal(at) {
			t.Errorf("EnqueuedTime = %v, want the scheduled time %v", d.EnqueuedTime, at)
		}
	})
	t.Run("blocked receiver wakes at the scheduled time", func(t *testing.T) {
		b := embedded.New(embedded.Options{})
		const delay = 80 * time.Millisecond
		start := time.Now()
		send(t, b, q, queue.Message{ID: "soon", ScheduledAt: start.Add(delay)})
		d := receive(t, b, q)
		if el := time.Since(start); el < delay-5*time.Millisecond {
			t.Fatalf("delivered after %v, before its scheduled time (%v)", el, delay)
		}
		if d.MessageID != "soon" {
			t.Fatalf("got %s", d.MessageID)
		}
	})
}

func TestLockExpiryRedelivers(t *testing.T) {
	b := embedded.New(embedded.Options{LockDuration: 50 * time.Millisecond, MaxDeliveryCount: 5})
	send(t, b, q, queue.Message{ID: "m"})
	start := time.Now()
	d1 := receive(t, b, q)
	d2 := receive(t, b, q) // blocks until the first lock expires
	if el := time.Since(start); el < 45*time.Millisecond {
		t.Fatalf("redelivered after %v, before the lock expired", el)
	}
	if d2.MessageID != "m" || d2.DeliveryCount != 2 || d2.LockToken == d1.LockToken {
		t.Fatalf("redelivery = %+v after first %+v", d2, d1)
	}
	if err := b.Complete(q, d1.LockToken); !errors.Is(err, embedded.ErrLockLost) {
		t.Fatalf("Complete with the expired token = %v, want ErrLockLost", err)
	}
	if err := b.Complete(q, d2.LockToken); err != nil {
		t.Fatalf("Complete with the current token: %v", err)
	}
	// A completed message's lock timer must not bring it back.
	receiveNone(t, b, q, 80*time.Millisecond)
}

func TestLockExpiryAtMaxDeliveryCountDeadLetters(t *testing.T) {
	b := embedded.New(embedded.Options{LockDuration: 20 * time.Millisecond, MaxDeliveryCount: 2})
	send(t, b, q, queue.Message{ID: "m"})
	receive(t, b, q)
	d := receive(t, b, q)
	if d.DeliveryCount != 2 {
		t.Fatalf("DeliveryCount = %d, want 2", d.DeliveryCount)
	}
	testutil.WaitFor(t, 3*time.Second, "the expired message to be dead-lettered", func() bool { return len(b.Peek(dlq(q))) == 1 })
	if got := b.Peek(dlq(q))[0].Properties["DeadLetterReason"]; got != embedded.ReasonMaxDelivery {
		t.Fatalf("DeadLetterReason = %v", got)
	}
	if len(b.Peek(q)) != 0 {
		t.Fatal("message still on the queue")
	}
}

func TestStaleLockTokenIsRejected(t *testing.T) {
	settle := map[string]func(b *embedded.Broker, queueName, token string) error{
		"Complete":   func(b *embedded.Broker, n, tok string) error { return b.Complete(n, tok) },
		"Abandon":    func(b *embedded.Broker, n, tok string) error { return b.Abandon(n, tok) },
		"DeadLetter": func(b *embedded.Broker, n, tok string) error { return b.DeadLetter(n, tok, "r", "d") },
	}
	tokens := map[string]func(t *testing.T, b *embedded.Broker) (queueName, token string){
		"after abandon and redelivery": func(t *testing.T, b *embedded.Broker) (string, string) {
			d := receive(t, b, q)
			_ = b.Abandon(q, d.LockToken)
			receive(t, b, q)
			return q, d.LockToken
		},
		"after complete": func(t *testing.T, b *embedded.Broker) (string, string) {
			d := receive(t, b, q)
			_ = b.Complete(q, d.LockToken)
			return q, d.LockToken
		},
		"unknown token": func(t *testing.T, b *embedded.Broker) (string, string) {
			receive(t, b, q)
			return q, "no-such-token"
		},
		"wrong queue": func(t *testing.T, b *embedded.Broker) (string, string) {
			d := receive(t, b, q)
			return "other", d.LockToken
		},
		"empty token on unlocked message": func(t *testing.T, b *embedded.Broker) (string, string) {
			return q, ""
		},
	}
	for op, fn := range settle {
		for name, tok := range tokens {
			t.Run(op+"/"+name, func(t *testing.T) {
				b := embedded.New(embedded.Options{MaxDeliveryCount: 5})
				send(t, b, q, queue.Message{ID: "m"})
				queueName, token := tok(t, b)
				before := len(b.Peek(q))
				if err := fn(b, queueName, token); !errors.Is(err, embedded.ErrLockLost) {
					t.Fatalf("%s = %v, want ErrLockLost", op, err)
				}
				if after := len(b.Peek(q)); after != before {
					t.Fatalf("a rejected %s changed the queue: %d -> %d messages", op, before, after)
				}
				if len(b.Peek(dlq(q))) != 0 {
					t.Fatalf("a rejected %s dead-lettered the message", op)
				}
			})
		}
	}
}

func TestReceiveHonoursContext(t *testing.T) {
	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		wantErr error
	}{
		{"cancelled while waiting", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
		{"already cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock()
			b := embedded.New(embedded.Options{Now: clock.Now})
			// A message scheduled far ahead must not keep Receive from returning.
			send(t, b, q, queue.Message{ID: "later", ScheduledAt: clock.Now().Add(time.Hour)})
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			d, err := b.Receive(ctx, q)
			if !errors.Is(err, tt.wantErr) || d != nil {
				t.Fatalf("Receive = %v, %v; want nil, %v", d, err, tt.wantErr)
			}
			if el := time.Since(start); el > time.Second {
				t.Fatalf("Receive took %v to notice the context", el)
			}
		})
	}
}

func TestReceiveWakesOnSendAndAbandon(t *testing.T) {
	b := embedded.New(embedded.Options{})
	got := make(chan *embedded.Delivery, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		d, _ := b.Receive(ctx, q)
		got <- d
	}()
	time.Sleep(20 * time.Millisecond)
	send(t, b, q, queue.Message{ID: "m"})
	d := <-got
	if d == nil || d.MessageID != "m" {
		t.Fatalf("blocked receiver got %+v", d)
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		d, _ := b.Receive(ctx, q)
		got <- d
	}()
	time.Sleep(20 * time.Millisecond)
	if err := b.Abandon(q, d.LockToken); err != nil {
		t.Fatal(err)
	}
	if d2 := <-got; d2 == nil || d2.DeliveryCount != 2 {
		t.Fatalf("receiver blocked during Abandon got %+v", d2)
	}
}

func TestConcurrentReceiversNeverShareALockedMessage(t *testing.T) {
	const messages, receivers = 200, 8
	for _, settle := range []string{"complete", "hold"} {
		t.Run(settle, func(t *testing.T) {
			b := embedded.New(embedded.Options{LockDuration: time.Minute})
			var (
				mu   sync.Mutex
				seen = map[string]int{}
				wg   sync.WaitGroup
			)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for range receivers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						d, err := b.Receive(ctx, q)
						if err != nil {
							return
						}
						mu.Lock()
						seen[d.MessageID]++
						mu.Unlock()
						if settle == "complete" {
							if err := b.Complete(q, d.LockToken); err != nil {
								t.Errorf("Complete %s: %v", d.MessageID, err)
							}
						}
					}
				}()
			}
			for i := range messages {
				send(t, b, q, queue.Message{ID: fmt.Sprint("m", i)})
			}
			testutil.WaitFor(t, 3*time.Second, "every message to be received", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(seen) == messages
			})
			time.Sleep(20 * time.Millisecond) // a duplicate delivery would show up now
			cancel()
			wg.Wait()
			for id, n := range seen {
				if n != 1 {
					t.Errorf("%s delivered %d times while locked", id, n)
				}
			}
			wantLeft := 0
			if settle == "hold" {
				wantLeft = messages
			}
			if got := len(b.Peek(q)); got != wantLeft {
				t.Errorf("%d messages left, want %d", got, wantLeft)
			}
		})
	}
}

func TestSendRefused(t *testing.T) {
	tests := []struct {
		name      string
		queueName string
		msg       queue.Message
	}{
		{"dead-letter queue", dlq(q), queue.Message{ID: "m"}},
		{"empty queue name", "", queue.Message{ID: "m"}},
		{"no message id", q, queue.Message{Body: []byte("x")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := embedded.New(embedded.Options{})
			if err := b.Send(context.Background(), tt.queueName, tt.msg); err == nil {
				t.Fatal("Send succeeded")
			}
			if got := len(b.Peek(tt.queueName)); got != 0 {
				t.Fatalf("refused message was enqueued (%d)", got)
			}
			// A refused send must not poison duplicate detection either.
			if tt.msg.ID != "" && tt.queueName != "" {
				send(t, b, q, tt.msg)
				if len(b.Peek(q)) != 1 {
					t.Fatal("valid send after a refused one was dropped")
				}
			}
		})
	}
}

func TestIdle(t *testing.T) {
	clock := newClock()
	b := embedded.New(embedded.Options{Now: clock.Now})
	steps := []struct {
		name string
		do   func(t *testing.T)
		want bool
	}{
		{"new broker", func(*testing.T) {}, true},
		{"receive on an empty queue", func(*testing.T) { receiveNone(t, b, "empty", 5*time.Millisecond) }, true},
		{"message queued", func(t *testing.T) { send(t, b, q, queue.Message{ID: "a"}) }, false},
		{"message locked", func(t *testing.T) { receive(t, b, q) }, false},
		{"message dead-lettered", func(t *testing.T) {
			d := b.Peek(q)[0]
			if err := b.DeadLetter(q, d.LockToken, "r", ""); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"message scheduled", func(t *testing.T) {
			send(t, b, "other", queue.Message{ID: "b", ScheduledAt: clock.Now().Add(time.Hour)})
		}, false},
	}
	for _, s := range steps {
		s.do(t)
		if got := b.Idle(); got != s.want {
			t.Fatalf("after %s: Idle() = %v, want %v", s.name, got, s.want)
		}
	}
}

// A cancelled receiver gets nothing even when a message is waiting; a pump
// that stops must not keep taking (and abandoning) messages.
func TestReceiveWithCancelledContextTakesNothing(t *testing.T) {
	b := embedded.New(embedded.Options{})
	if err := b.Send(context.Background(), "q", queue.Message{ID: "m", Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d, err := b.Receive(ctx, "q"); err == nil || d != nil {
		t.Fatalf("cancelled receive returned %v, %v", d, err)
	}
	if got := b.Peek("q"); len(got) != 1 || got[0].DeliveryCount != 0 {
		t.Fatalf("message after a cancelled receive: %+v", got)
	}
}
