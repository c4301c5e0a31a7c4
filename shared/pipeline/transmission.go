package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/transmit"
)

// Portability to another controller (Art. 20(2)): once the package of a
// portability request that names transmitTo is written, the transmission
// stage POSTs it there, signed (shared/transmit). A receiver that is down
// is tried again on a schedule (jittered back-off, not the queue's
// immediate redelivery); a refused address or a 4xx answer is not. Either
// way the request completes: the person keeps her own copy, and a
// transmission that did not happen marks the request for follow-up. The
// outcome is on the request (transmission) and in the audit trail.

// Transmitter sends a package to another controller (*transmit.Client in
// the app). Errors hold no personal data and not the address.
type Transmitter interface {
	Send(ctx context.Context, target string, p transmit.Package) (transmit.Result, error)
}

// MaxTransmissionAttempts is how often a package is offered to a receiver
// that fails transiently before the transmission is marked failed.
const MaxTransmissionAttempts = 5

// ErrNoTransmitter refuses a transmitTo when this deployment cannot sign
// transmissions (no DSR_PSEUDONYM_SECRET to derive the key from).
var ErrNoTransmitter = errors.New("this deployment cannot transmit packages to another controller")

// transmissionBackoff is the wait before the next offer after n tries:
// 30 s doubling, at most 30 minutes, jittered (Backoff.Delay).
var transmissionBackoff = Backoff{Base: 30 * time.Second, Max: 30 * time.Minute}

// Transmit sends a portability package to the controller the person
// named (the export queue), then completes the request.
func (s *Service) Transmit(ctx context.Context, id string, attempt int) error {
	st, err := s.loadForStage(ctx, id, "transmission")
	if st == nil || err != nil {
		return err
	}
	if st.State.Terminal() {
		// A crash after completing may have kept the email from leaving.
		return s.deliver(ctx, st, attempt)
	}
	if st.Stage != dsr.StageTransmission {
		return fmt.Errorf("transmission %s: request is at stage %s, not transmission", id, st.Stage)
	}
	if t := st.Transmission; t == nil || t.Status == "" {
		if t != nil && t.At != nil && s.NowUTC().Before(t.At.Add(transmissionBackoff.Floor(t.Attempts)/2)) {
			return nil // a redelivery right after a failure: wait for the scheduled try
		}
		if st, err = s.transmitOnce(ctx, st); err != nil {
			return err
		}
		if t := st.Transmission; t.Status == "" {
			at := s.NowUTC().Add(transmissionBackoff.Delay(t.Attempts, s.random()))
			s.Log.Info("transmission: retry scheduled", "requestId", id, "attempts", t.Attempts, "at", at)
			return s.sendStage(ctx, s.Queues.Export, fmt.Sprintf("%s:transmission:%d", id, t.Attempts), id, dsr.StageTransmission, at)
		}
	}
	st, err = s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
		if st.State.Terminal() || st.Stage != dsr.StageTransmission {
			return false, nil
		}
		t := st.Transmission
		detail := "package sent to the controller the person named"
		if t.Status != dsr.TransmissionSent {
			detail = "package not sent to the controller the person named (" + t.Status + "): " + t.Error + "; a person must follow up"
		}
		return true, s.advance(st, dsr.StageTransmission, attempt, detail)
	})
	if err != nil {
		return err
	}
	if err := s.syncAudit(ctx, st); err != nil {
		return err
	}
	return s.deliver(ctx, st, attempt)
}

// transmitOnce makes one attempt and records it: sent, refused or failed
// for good (Status set), or to be tried again (Status empty).
func (s *Service) transmitOnce(ctx context.Context, st *dsr.Stored) (*dsr.Stored, error) {
	id := st.ID
	var sendErr error
	var res transmit.Result
	switch {
	case s.Transmitter == nil:
		sendErr = fmt.Errorf("%w: %w", transmit.ErrRefused, ErrNoTransmitter)
	case st.Export == nil || st.ExportBlob == "":
		return st, fmt.Errorf("transmission %s: the request has no package", id)
	default:
		body, err := s.Packages.Open(ctx, st.ExportBlob)
		if err != nil {
			return st, fmt.Errorf("transmission %s: open package: %w", id, err)
		}
		res, sendErr = s.Transmitter.Send(ctx, st.TransmitTo, transmit.Package{RequestRef: id, Body: body, Bytes: st.Export.Bytes, SHA256: st.Export.SHA256})
		body.Close()
	}
	if sendErr != nil {
		s.Log.Warn("transmission failed", "requestId", id, "err", sendErr)
	}
	now := s.NowUTC()
	var event string
	st, err := s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
		event = ""
		t := st.Transmission
		if t == nil {
			t = &dsr.Transmission{}
			st.Transmission = t
		}
		if t.Status != "" {
			return false, nil
		}
		t.Attempts++
		t.At, t.HTTPStatus = &now, res.HTTPStatus
		t.SHA256, t.Bytes = st.Export.SHA256, st.Export.Bytes
		switch {
		case sendErr == nil:
			t.Status, t.Error, event = dsr.TransmissionSent, "", "transmission.sent"
		case errors.Is(sendErr, transmit.ErrRefused):
			t.Status, t.Error, event = dsr.TransmissionRefused, boundReason(sendErr), "transmission.refused"
		case transmit.Permanent(sendErr) || t.Attempts >= MaxTransmissionAttempts:
			t.Status, t.Error, event = dsr.TransmissionFailed, boundReason(sendErr), "transmission.failed"
		default:
			t.Error = boundReason(sendErr)
		}
		return true, nil
	})
	if err != nil {
		return st, fmt.Errorf("transmission %s: record: %w", id, err)
	}
	if event != "" && s.Audit != nil {
		t := st.Transmission
		detail := fmt.Sprintf("package (%d bytes, sha256 %s) sent to the controller the person named: HTTP %d", t.Bytes, t.SHA256, t.HTTPStatus)
		if event != "transmission.sent" {
			detail = fmt.Sprintf("package not sent to the controller the person named after %d attempt(s): %s", t.Attempts, t.Error)
		}
		entry := s.decisionEntry(st, event, dsr.Actor{Kind: "system", ID: "transmission"}, detail)
		entry.ID = st.ID + ":" + event
		if err := s.Audit.Append(ctx, entry); err != nil {
			return st, fmt.Errorf("audit %s of %s: %w", event, id, err)
		}
	}
	return st, nil
}
