// Package hostfn adapts the pipeline to the Functions host's queue
// triggers: the pipeline knows stage messages and runners, not the host's
// invocation payloads, so it can be tested without either.
package hostfn

import (
	"context"

	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/pipeline"
)

// Stage is the queue function of a stage queue: it reads the stage
// message and runs the stage it names (pipeline.Runners), if that stage
// runs on this queue, through pipeline.HandleStage: a failing stage is
// retried on a scheduled message, not by failing the invocation, so the
// delivery count stays for crashes. A message that can never be processed
// (unreadable, or for another queue's stage) is dropped with a log line,
// not retried.
func Stage(svc *pipeline.Service, queue string) funchost.QueueFunc {
	return func(ctx context.Context, m *funchost.QueueMessage) error {
		sm, err := pipeline.ParseStageMessage(m.Body)
		if err != nil {
			svc.Log.Error(queue+": unusable message dropped", "err", err)
			return nil
		}
		if r, ok := svc.Runners()[sm.Stage]; !ok || r.Queue != queue {
			svc.Log.Error(queue+": message for a stage this queue does not run dropped", "requestId", sm.RequestID, "stage", sm.Stage)
			return nil
		}
		return svc.HandleStage(ctx, sm, m.MessageID, m.DeliveryCount)
	}
}

// DeadLetter is the queue function of a stage queue's dead-letter queue:
// the request fails with the broker's reason.
func DeadLetter(svc *pipeline.Service) funchost.QueueFunc {
	return func(ctx context.Context, m *funchost.QueueMessage) error {
		sm, err := pipeline.ParseStageMessage(m.Body)
		if err != nil {
			svc.Log.Error("dead-letter: unusable message dropped", "err", err)
			return nil
		}
		reason := m.DeadLetterReason
		if reason == "" {
			reason = "dead-lettered"
		}
		return svc.FailDeadLettered(ctx, sm, reason, m.DeadLetterDescription)
	}
}
