package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
)

// ErrConflict wraps a decision the request's state does not allow; its text
// says why and holds no personal data.
var ErrConflict = errors.New("not allowed in the request's current state")

// Cancel ends an open request in cancelled, recording who did it. Stages
// that run later see a terminal request and do nothing. Once the request's
// change stage (erasure, rectification, restriction) has begun it is
// refused (dsr.ErrChangesStarted, wrapped in ErrConflict): what was changed
// stays changed, so the request runs to its end and reports it. The cancel
// is a conditional update, as is the move into the change stage and each
// plan of a rewrite (which checks the request is not cancelled), so a
// cancel racing the start either lands first, and nothing is changed, or
// is refused.
func (s *Service) Cancel(ctx context.Context, id, reason string, by dsr.Actor) (*dsr.Stored, error) {
	return s.decide(ctx, id, func(st *dsr.Stored) error {
		return st.Cancel(reason, s.NowUTC(), &by)
	})
}

// Extend moves a request's deadline by one or two months (Art. 12(3)),
// recording the reason on the request and the decision in the audit trail.
func (s *Service) Extend(ctx context.Context, id string, months int, reason string, by dsr.Actor) (*dsr.Stored, error) {
	var extended *dsr.Stored
	st, err := s.decide(ctx, id, func(st *dsr.Stored) error {
		if err := st.Extend(months, reason, s.NowUTC()); err != nil {
			return err
		}
		extended = st
		return nil
	})
	if err != nil {
		return nil, err
	}
	if extended != nil {
		if err := s.Audit.Append(ctx, s.decisionEntry(st, "deadline.extended", by,
			fmt.Sprintf("deadline moved to %s (%d months added in total)", st.DueAt.Format("2006-01-02"), st.Extension.Months))); err != nil {
			return st, fmt.Errorf("audit extension of %s: %w", id, err)
		}
	}
	return st, nil
}

// RedriveFailed puts a failed request back into the step where it failed
// and sends that step's message again, with a MessageId of its own so the
// queue's duplicate detection does not drop it.
func (s *Service) RedriveFailed(ctx context.Context, id string, by dsr.Actor) (*dsr.Stored, error) {
	st, err := s.decide(ctx, id, func(st *dsr.Stored) error { return st.Redrive(s.NowUTC(), &by) })
	if err != nil {
		return st, err
	}
	stage, r, ok := s.pendingStage(st)
	if !ok {
		return st, nil
	}
	return st, s.sendStage(ctx, r.Queue, fmt.Sprintf("%s:%s:redrive:%d", id, stage, s.NowUTC().UnixNano()), id, stage, time.Time{})
}

// decide applies a staff decision to a request conditionally and syncs the
// audit trail.
func (s *Service) decide(ctx context.Context, id string, apply func(*dsr.Stored) error) (*dsr.Stored, error) {
	st, err := s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
		if err := apply(st); err != nil {
			return false, fmt.Errorf("%w: %w", ErrConflict, err)
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.syncAudit(ctx, st); err != nil {
		return st, err
	}
	return st, nil
}
