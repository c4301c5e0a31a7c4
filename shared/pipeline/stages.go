package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
)

// Runner is what runs one stage of the routes (dsr.Routes): the queue its
// message goes to and the function that runs it for a request.
type Runner struct {
	Queue string
	Run   func(ctx context.Context, id string, attempt int) error
}

// Runners says, for every stage that runs on a queue, its queue and its
// runner; with dsr.Routes it is the whole path of a request. Stages that
// wait for a person (approval) or begin and end a route (intake, done) have
// none. The change stages share the erase queue: one queue per kind of
// work, one runner per stage.
func (s *Service) Runners() map[dsr.Stage]Runner {
	return map[dsr.Stage]Runner{
		dsr.StageDiscovery:     {Queue: s.Queues.Discover, Run: s.Discover},
		dsr.StageExport:        {Queue: s.Queues.Export, Run: s.Export},
		dsr.StageErasure:       {Queue: s.Queues.Erase, Run: s.Erase},
		dsr.StageRectification: {Queue: s.Queues.Erase, Run: s.Rectify},
		dsr.StageRestriction:   {Queue: s.Queues.Erase, Run: s.Restrict},
		dsr.StageVerification:  {Queue: s.Queues.Verify, Run: s.Verify},
		dsr.StageNotification:  {Queue: s.Queues.Erase, Run: s.Notify},
		dsr.StageTransmission:  {Queue: s.Queues.Export, Run: s.Transmit},
	}
}

// pendingStage is the stage whose message a request waits for: the stage
// it is at, or for a request just received at intake the first stage of
// its route. ok is false for a request that waits for no message: ended,
// or waiting for a person.
func (s *Service) pendingStage(st *dsr.Stored) (dsr.Stage, Runner, bool) {
	if st.State.Terminal() {
		return "", Runner{}, false
	}
	stage := st.Stage
	if stage == dsr.StageIntake {
		next, ok := dsr.Next(st.Type, stage, nil)
		if !ok {
			return "", Runner{}, false
		}
		stage = next.Stage
	}
	r, ok := s.Runners()[stage]
	return stage, r, ok
}

// nextMessage sends the message of the stage a request waits for, if any,
// with the MessageId derived from request and stage, so a message sent
// twice is delivered once.
func (s *Service) nextMessage(ctx context.Context, st *dsr.Stored) error {
	return s.sendNext(ctx, st, 0)
}

// sendNext is nextMessage, the message saying the trail holds the first
// audited history entries (StageMessage.Audited; 0: not said).
func (s *Service) sendNext(ctx context.Context, st *dsr.Stored, audited int) error {
	stage, r, ok := s.pendingStage(st)
	if !ok {
		return nil
	}
	return s.sendMessage(ctx, r.Queue, st.ID+":"+string(stage), StageMessage{RequestID: st.ID, Stage: stage, Audited: audited}, time.Time{})
}

// RunStage runs the stage a stage message names (a queue function's work):
// the runner of that stage from Runners. A stage without a runner is a
// message that can never be processed.
func (s *Service) RunStage(ctx context.Context, m StageMessage, attempt int) error {
	r, ok := s.Runners()[m.Stage]
	if !ok {
		s.Log.Error("stage message for a stage without a runner dropped", "requestId", m.RequestID, "stage", m.Stage)
		return nil
	}
	if m.Audited > 0 {
		ctx = context.WithValue(ctx, auditedHintKey{}, auditedHint{m.RequestID, m.Audited})
	}
	return r.Run(ctx, m.RequestID, attempt)
}

// Redrive sends a request's pending stage message again, now, for a system
// that has just delivered what the stage waits for (a webhook callback).
// The message gets a MessageId of its own, so duplicate detection does not
// drop it while the stage's earlier messages are remembered.
func (s *Service) Redrive(ctx context.Context, id string) error {
	st, _, err := s.Store.Get(ctx, id)
	if err != nil {
		return err
	}
	stage, r, ok := s.pendingStage(st)
	if !ok {
		return nil
	}
	return s.sendStage(ctx, r.Queue, fmt.Sprintf("%s:%s:redrive:%d", id, stage, s.NowUTC().UnixNano()), id, stage, time.Time{})
}
