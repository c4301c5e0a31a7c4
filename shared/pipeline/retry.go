package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/store"
)

// A stage that fails is tried again on a schedule of its own, not by the
// broker: left to the broker, every delivery of a message would be used up
// within a second (Service Bus and the embedded queue redeliver an
// abandoned message at once) and a system that is down for a minute would
// fail the request. So HandleStage completes the failed message and sends
// a scheduled one for the same request and stage, carrying the retry
// number, after a growing, jittered wait (Service.StageBackoff); after
// Service.StageRetries retries the request fails with the cause. An error
// that retrying cannot cure (Permanent, a sources.DataError) fails the
// request at once. The broker's own redelivery stays the safety net for a
// process that dies mid-stage: the lock expires and the message comes
// back. A redelivered message that fails again derives the same retry
// MessageId, so duplicate detection keeps it from scheduling a second
// retry; and a retry that runs beside a redelivery repeats nothing, since
// every stage is idempotent (ETags, the stage recorded on the request).

// Backoff is a schedule of growing waits: Base before the first retry,
// doubling with each next one, never more than Max.
type Backoff struct {
	Base, Max time.Duration
}

// Defaults of Service.StageBackoff and Service.StageRetries: 10 s doubling
// to 5 min, eight retries, so a stage gives up between about 10 and 20
// minutes after its first failure.
var DefaultStageBackoff = Backoff{Base: 10 * time.Second, Max: 5 * time.Minute}

// DefaultStageRetries is the default of Service.StageRetries.
const DefaultStageRetries = 8

// step is the exponential wait of retry n (1-based), before jitter.
func (b Backoff) step(n int) time.Duration {
	d := b.Base
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Delay is the wait before retry n (1-based), with "equal jitter": half of
// the step is fixed and half drawn from r (in [0, 1)), so requests that
// failed together (a system down for all of them) spread out when they come
// back, yet none comes back sooner than half the step.
func (b Backoff) Delay(n int, r float64) time.Duration {
	step := b.step(n)
	half := step / 2
	return half + time.Duration(r*float64(step-half))
}

// Floor is the shortest wait Delay(n, ·) returns.
func (b Backoff) Floor(n int) time.Duration { return b.step(n) / 2 }

// random draws a jitter in [0, 1) (Service.Rand, or math/rand/v2).
func (s *Service) random() float64 {
	if s.Rand != nil {
		return s.Rand()
	}
	return rand.Float64()
}

func (s *Service) stageBackoff() Backoff {
	b := s.StageBackoff
	if b.Base <= 0 {
		b.Base = DefaultStageBackoff.Base
	}
	if b.Max < b.Base {
		b.Max = max(b.Base, DefaultStageBackoff.Max)
	}
	return b
}

func (s *Service) stageRetries() int {
	if s.StageRetries > 0 {
		return s.StageRetries
	}
	return DefaultStageRetries
}

// permanentError is an error that retrying cannot cure.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that retrying cannot cure (a setting that is
// missing, a connector that cannot do what the stage needs): the stage's
// request fails at once instead of after every retry.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether retrying cannot cure err: marked Permanent,
// a sources.DataError (the same data reads the same way), or an invalid
// stage message.
func IsPermanent(err error) bool {
	var p *permanentError
	var de *sources.DataError
	return errors.As(err, &p) || errors.As(err, &de) || errors.Is(err, ErrInvalidMessage)
}

// HandleStage is what a stage queue's function does with a stage message
// (messageID, delivered for the deliveryCount-th time): it runs the stage
// (RunStage, with the attempt counted over retries and deliveries) and
// decides what a failure means. A transient failure schedules the next
// retry and completes this message; a permanent one, or one after the last
// retry, fails the request with its cause. Only when the invocation itself
// is ending, or the retry cannot be scheduled or the failure recorded, is
// the error returned, so the broker redelivers the message.
func (s *Service) HandleStage(ctx context.Context, m StageMessage, messageID string, deliveryCount int) error {
	err := s.RunStage(ctx, m, m.Retry+max(deliveryCount, 1))
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		// Timed out or shutting down: the lock expires and the broker
		// brings the message back.
		return err
	}
	if IsPermanent(err) {
		return s.failStage(ctx, m, "stage-failed", fmt.Sprintf("the %s stage cannot succeed: %s", m.Stage, boundReason(err)))
	}
	if m.Retry >= s.stageRetries() {
		return s.failStage(ctx, m, "stage-retries-exhausted",
			fmt.Sprintf("the %s stage failed %d times: %s", m.Stage, m.Retry+1, boundReason(err)))
	}
	r, ok := s.Runners()[m.Stage]
	if !ok {
		return err
	}
	next := m.Retry + 1
	at := s.NowUTC().Add(s.stageBackoff().Delay(next, s.random()))
	s.recordAttemptError(ctx, m.RequestID, m.Stage, err)
	retry := StageMessage{RequestID: m.RequestID, Stage: m.Stage, Retry: next}
	if serr := s.sendMessage(ctx, r.Queue, retryMessageID(messageID, m, next), retry, at); serr != nil {
		return fmt.Errorf("%w; and its retry could not be scheduled: %v", err, serr)
	}
	s.Log.Warn("stage failed; retry scheduled", "requestId", m.RequestID, "stage", m.Stage, "retry", next, "retryAt", at, "err", err)
	return nil
}

// retryMessageID is the MessageId of retry next of the message messageID:
// derived from the first message of its line of retries, so a redelivered
// message that fails again asks for the same retry (dropped as a
// duplicate), while a new line (a re-drive, a wait for a system) gets ids
// of its own.
func retryMessageID(messageID string, m StageMessage, next int) string {
	base := messageID
	if base == "" {
		base = m.RequestID + ":" + string(m.Stage)
	}
	if i := strings.LastIndex(base, ":retry:"); i >= 0 {
		if _, err := strconv.Atoi(base[i+len(":retry:"):]); err == nil {
			base = base[:i]
		}
	}
	return base + ":retry:" + strconv.Itoa(next)
}

// failStage fails a request whose stage cannot succeed, with code and a
// reason that holds no personal data. A message for a stage the request
// is no longer waiting for (a late one) fails nothing.
func (s *Service) failStage(ctx context.Context, m StageMessage, code, reason string) error {
	late := false
	// A change stage that fails says what it changed before it failed.
	report := s.beforeFailing(ctx, m.RequestID, m.Stage)
	st, err := s.Store.Update(ctx, m.RequestID, func(st *dsr.Stored) (bool, error) {
		late = false
		if stage, _, ok := s.pendingStage(st); !ok || stage != m.Stage {
			late = true
			return false, nil
		}
		report(st)
		return true, st.Fail(code, reason, s.NowUTC(), m.Retry+1)
	})
	if errors.Is(err, store.ErrNotFound) {
		s.Log.Warn("failed stage of an unknown request; message dropped", "requestId", m.RequestID, "stage", m.Stage)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: fail the request (%s): %w", m.Stage, m.RequestID, reason, err)
	}
	if late {
		s.Log.Warn("late stage message failed; the request has moved on, nothing failed", "requestId", m.RequestID, "stage", m.Stage, "reason", reason)
		return nil
	}
	s.Log.Warn("request failed: its stage cannot succeed", "requestId", m.RequestID, "stage", m.Stage, "code", code, "reason", reason)
	return s.syncAudit(ctx, st)
}
