package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dsr-functions/dsr/shared/audit"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/store"
)

// DefaultSweepStuckAfter is how long a request may wait in a stage before
// the sweeper re-sends its message, when Service.SweepStuckAfter is zero.
const DefaultSweepStuckAfter = 30 * time.Minute

// ExportGrace is how long an export package is kept after its links (minted
// at creation or later, each living LinkTTL) may have expired: the package
// is deleted at Export.CreatedAt + LinkTTL + ExportGrace.
const ExportGrace = 24 * time.Hour

// sweepPage is how many requests one listing call returns to the sweeper.
const sweepPage = 200

// SweepResult counts what one sweep did.
type SweepResult struct {
	// Redriven requests had their stage message sent again.
	Redriven int `json:"redriven"`
	// ExportsDeleted packages were deleted.
	ExportsDeleted int `json:"exportsDeleted"`
	// Expired requests were never verified in time.
	Expired int `json:"expired"`
	// Failed requests could not be handled this time (the next sweep retries).
	Failed int `json:"failed"`
}

// sweepActor is who the audit trail says acted.
var sweepActor = &audit.Actor{Kind: "system", ID: "sweeper"}

func (s *Service) stuckAfter() time.Duration {
	if s.SweepStuckAfter > 0 {
		return s.SweepStuckAfter
	}
	return DefaultSweepStuckAfter
}

// redrivable reports whether a request in this state is waiting for a
// stage message the sweeper may send again. awaiting_approval waits for a
// person, terminal states for nothing.
func redrivable(state dsr.State) bool {
	return state == dsr.StateReceived || state == dsr.StateInProgress
}

// Sweep is the sweeper (a timer function). It re-sends the stage message of
// every request that has waited in a stage longer than SweepStuckAfter (a
// lost message must not strand a request), with the MessageId the pipeline
// uses, so Service Bus drops it when the original is still there; and it
// deletes export packages whose links and grace period have expired,
// recording that on the request and in the audit trail. Each request is
// handled on its own: a failure is logged and counted, and the sweep goes
// on; the error reports that some failed.
func (s *Service) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	now := s.NowUTC()
	stuckBefore := now.Add(-s.stuckAfter())
	expireBefore := now.Add(-s.expireAfter())
	filter := store.Filter{Where: func(sum store.Summary) bool {
		return redrivable(sum.State) && sum.UpdatedAt.Before(stuckBefore) ||
			sum.State == dsr.StateCompleted && exportMayExist(sum) ||
			sum.State == dsr.StateAwaitingVerification && sum.CreatedAt.Before(expireBefore)
	}}
	token := ""
	for {
		page, next, err := s.Store.List(ctx, filter, sweepPage, token)
		if err != nil {
			return res, fmt.Errorf("sweep: %w", err)
		}
		for _, sum := range page {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			var err error
			if sum.State == dsr.StateAwaitingVerification {
				var done bool
				if done, err = s.expireUnverified(ctx, sum.ID, now); done {
					res.Expired++
				}
			} else if redrivable(sum.State) {
				var done bool
				if done, err = s.redrive(ctx, sum.ID, now); done {
					res.Redriven++
				}
			} else {
				var done bool
				if done, err = s.expireExport(ctx, sum.ID, now); done {
					res.ExportsDeleted++
				}
			}
			if err != nil {
				res.Failed++
				s.Log.Warn("sweep: request not handled; the next sweep retries", "requestId", sum.ID, "err", err)
			}
		}
		if next == "" {
			break
		}
		token = next
	}
	s.Log.Info("sweep done", "redriven", res.Redriven, "exportsDeleted", res.ExportsDeleted, "expired", res.Expired, "failed", res.Failed)
	if res.Failed > 0 {
		return res, fmt.Errorf("sweep: %d requests not handled", res.Failed)
	}
	return res, nil
}

// exportMayExist reports whether a completed request's listing leaves open
// that it has a package to delete. Documents written before the export
// state was kept in metadata say nothing; only access requests have
// packages.
func exportMayExist(sum store.Summary) bool {
	switch sum.Export {
	case store.ExportLive:
		return true
	case "":
		return sum.Type == dsr.TypeAccess || sum.Type == dsr.TypePortability
	}
	return false
}

// redrive claims a stuck request by stamping LastSweptAt with a write
// conditional on its ETag, then sends the message of its stage. A
// concurrent sweeper loses the write, reads the stamp and skips the
// request; so does any sweep within SweepStuckAfter of this one. It
// reports whether it sent the message.
func (s *Service) redrive(ctx context.Context, id string, now time.Time) (bool, error) {
	cutoff := now.Add(-s.stuckAfter())
	claimed := false
	st, err := s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
		claimed = false
		if !redrivable(st.State) || !st.UpdatedAt.Before(cutoff) {
			return false, nil // it moved on since the listing
		}
		if st.LastSweptAt != nil && st.LastSweptAt.After(cutoff) {
			return false, nil // swept within the window, maybe right now by another sweeper
		}
		at := now
		st.LastSweptAt = &at
		claimed = true
		return true, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil || !claimed {
		return false, err
	}
	// The message of the stage it waits for, with the pipeline's own
	// MessageId (Submit's for a request still at intake).
	if err = s.nextMessage(ctx, st); err != nil {
		// The stamp stays: the next sweep after the window tries again.
		return false, err
	}
	s.Log.Info("sweep: stuck request re-driven", "requestId", id, "stage", st.Stage, "state", st.State, "since", st.UpdatedAt)
	if s.Audit != nil {
		e := audit.Entry{
			ID: fmt.Sprintf("%s:redriven:%d", id, now.UnixNano()), At: now, RequestID: id, Event: "stage.redriven",
			Stage: string(st.Stage), State: string(st.State), Actor: sweepActor,
			Detail: fmt.Sprintf("no progress since %s", st.UpdatedAt.Format(time.RFC3339)),
		}
		if err := s.Audit.Append(ctx, e); err != nil {
			s.Log.Warn("sweep: audit of re-drive failed", "requestId", id, "err", err)
		}
	}
	return true, nil
}

// expireExport deletes a completed request's package once its links and
// the grace period have expired. Order makes it safe to repeat after a
// crash at any point: the blob is deleted (a missing blob is fine), the
// audit entry appended (a stable id, so a repeat is recognised), and only
// then the request records it, which takes it off the sweeper's list.
func (s *Service) expireExport(ctx context.Context, id string, now time.Time) (bool, error) {
	st, _, err := s.Store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if st.State != dsr.StateCompleted || st.Export == nil || st.Export.DeletedAt != nil || st.ExportBlob == "" {
		return false, nil
	}
	if now.Before(st.Export.CreatedAt.Add(s.LinkTTL + ExportGrace)) {
		return false, nil
	}
	name := st.ExportBlob
	if err := s.Packages.Delete(ctx, name); err != nil {
		return false, fmt.Errorf("delete export of %s: %w", id, err)
	}
	if s.Audit != nil {
		e := audit.Entry{
			ID: id + ":export.deleted", At: now, RequestID: id, Event: "export.deleted",
			Stage: string(st.Stage), State: string(st.State), Actor: sweepActor,
			Detail: fmt.Sprintf("export package of %d bytes deleted: its links and the %s grace period expired", st.Export.Bytes, ExportGrace),
		}
		if err := s.Audit.Append(ctx, e); err != nil {
			return false, fmt.Errorf("audit export deletion of %s: %w", id, err)
		}
	}
	recorded := false
	_, err = s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
		recorded = false
		if st.Export == nil || st.Export.DeletedAt != nil {
			return false, nil
		}
		at := now
		st.Export.DeletedAt = &at
		st.ExportBlob = ""
		st.UpdatedAt = now
		recorded = true
		return true, nil
	})
	if err != nil {
		return false, err
	}
	if recorded {
		s.Log.Info("sweep: export package deleted", "requestId", id, "bytes", st.Export.Bytes)
	}
	return recorded, nil
}

// expireAfter is how long unverified requests wait (the sweeper looks only
// at requests created before it).
func (s *Service) expireAfter() time.Duration {
	if s.Identity == nil {
		return DefaultExpireAfter
	}
	return s.Identity.expireAfter()
}
