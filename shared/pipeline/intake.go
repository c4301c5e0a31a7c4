package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/queue"
	"github.com/dsr-functions/dsr/shared/store"
)

// RejectionNotice is sent to the intake-rejected queue for an invalid intake
// message. It names the message and the fields at fault, never their values.
type RejectionNotice struct {
	MessageID string           `json:"messageId"`
	Reason    string           `json:"reason"`
	Errors    []dsr.FieldError `json:"errors"`
}

// Intake handles a request submitted as a message on the intake queue, with
// the same validation as the HTTP API. The MessageId is the idempotency key.
// An invalid message is rejected at once: a notice with the reason goes to
// the intake-rejected queue (a custom handler cannot dead-letter a message
// itself, and retrying an invalid message ten times helps nobody), and the
// message is completed.
func (s *Service) Intake(ctx context.Context, messageID string, body []byte) error {
	if messageID == "" {
		return errors.New("intake: message has no MessageId")
	}
	sub, err := dsr.ParseSubmission(body, s.PhoneRegion, s.NowUTC())
	var inErr *dsr.InputError
	if errors.As(err, &inErr) {
		return s.reject(ctx, messageID, inErr)
	}
	if err != nil {
		return err
	}
	st, created, err := s.Submit(ctx, sub, messageID, "queue", "queue:"+s.Queues.Intake, dsr.Actor{Kind: "queue", ID: s.Queues.Intake})
	if err != nil {
		if errors.Is(err, store.ErrIdempotencyMismatch) {
			return s.reject(ctx, messageID, &dsr.InputError{Code: "idempotency-key-reused", Title: "MessageId reused",
				Errors: []dsr.FieldError{{Field: "MessageId", Detail: "already used for a different request"}}})
		}
		if errors.As(err, &inErr) { // e.g. verification required, no address
			return s.reject(ctx, messageID, inErr)
		}
		return err
	}
	if !created {
		s.Log.Info("intake: duplicate message; request already exists", "requestId", st.ID)
	}
	return nil
}

func (s *Service) reject(ctx context.Context, messageID string, inErr *dsr.InputError) error {
	notice := RejectionNotice{MessageID: messageID, Reason: inErr.Code, Errors: inErr.Errors}
	body, _ := json.Marshal(notice)
	desc := inErr.Title
	if len(inErr.Errors) > 0 {
		desc += ": " + inErr.Errors[0].Field + " " + inErr.Errors[0].Detail
	}
	err := s.Sender.Send(ctx, s.Queues.IntakeRejected, queue.Message{
		ID: "rejected:" + messageID, Body: body, Subject: "intake-rejected",
		Properties: map[string]any{"DeadLetterReason": inErr.Code, "DeadLetterErrorDescription": desc, "OriginalMessageId": messageID},
	})
	if err != nil {
		return fmt.Errorf("intake: send rejection notice: %w", err)
	}
	s.Log.Warn("intake: invalid message rejected", "reason", inErr.Code)
	return nil
}
