package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dsr-functions/dsr/shared/audit"
	"github.com/dsr-functions/dsr/shared/blobs"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/store"
)

// Authorised agents: a person may ask on someone else's behalf with a proof
// of authority (a power of attorney, a court order, a parent's ID...). The
// proof is a file from the internet, so it is kept apart and treated as
// hostile: only PDF, PNG or JPEG, recognised by their first bytes whatever
// the sender declared, at most MaxProofBytes, in a private container under
// a name derived from the request id, served to staff only through the app
// (every view audited), and deleted ProofRetention after the request ended.
// The subject still proves her address: the code goes to her, not to the
// agent.

// Proofs keeps agents' proofs of authority, one per request (blobs.Proofs
// in the app). Open of a missing proof returns blobs.ErrProofNotFound;
// Delete of a missing proof is no error.
type Proofs interface {
	Put(ctx context.Context, id, contentType string, data []byte) error
	Open(ctx context.Context, id string) (io.ReadCloser, error)
	Delete(ctx context.Context, id string) error
	List(ctx context.Context, fn func(id string, created time.Time) error) error
}

var _ Proofs = (*blobs.Proofs)(nil)

// MaxProofBytes is the largest proof of authority accepted (5 MiB: a
// scanned page or a phone photo).
const MaxProofBytes = 5 << 20

// DefaultProofRetention is how long a proof is kept after its request
// ended, when Service.ProofRetention is zero.
const DefaultProofRetention = 90 * 24 * time.Hour

// ProofOrphanAfter is how old a proof without a request must be before the
// sweeper deletes it: a proof is written just before its request, so a
// younger one may belong to a request being created right now.
const ProofOrphanAfter = time.Hour

// Proof content types: the only ones accepted (dsr's).
const (
	ProofPDF  = dsr.ProofPDF
	ProofPNG  = dsr.ProofPNG
	ProofJPEG = dsr.ProofJPEG
)

// Proof errors; their text is safe to show to the sender.
var (
	ErrProofMissing  = errors.New("a proof of authority is required to ask on someone's behalf")
	ErrProofType     = errors.New("the proof must be a PDF, PNG or JPEG file")
	ErrProofTooLarge = fmt.Errorf("the proof must be at most %d MiB", MaxProofBytes>>20)
	ErrNoProof       = errors.New("the request has no proof of authority")
	ErrProofDeleted  = errors.New("the proof of authority was deleted after the request's retention")
	ErrNoProofStore  = errors.New("proofs of authority are not configured")
)

// SniffProof returns the content type of a proof from its first bytes:
// PDF, PNG or JPEG, or "" for anything else (an HTML page renamed .pdf, an
// SVG with script, an archive). The declared type is never trusted.
func SniffProof(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("%PDF-")):
		return ProofPDF
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return ProofPNG
	case bytes.HasPrefix(data, []byte("\xff\xd8\xff")):
		return ProofJPEG
	}
	return ""
}

// SubmitWithProof stores an agent's submission with her proof of
// authority: the proof first, then the request that points at it, so a
// crash leaves at worst a proof without a request, which the sweeper
// deletes after ProofOrphanAfter. The submission's agent is required; the
// proof's type is sniffed again here, whatever the caller checked.
func (s *Service) SubmitWithProof(ctx context.Context, sub *dsr.Submission, proof []byte, origin string, by dsr.Actor) (*dsr.Stored, error) {
	switch {
	case s.Proofs == nil:
		return nil, ErrNoProofStore
	case sub.Agent == nil:
		return nil, errors.New("submit with proof: the submission has no agent")
	case len(proof) == 0:
		return nil, ErrProofMissing
	case len(proof) > MaxProofBytes:
		return nil, ErrProofTooLarge
	}
	ct := SniffProof(proof)
	if ct == "" {
		return nil, ErrProofType
	}
	sum := sha256.Sum256(proof)
	st, _, err := s.submit(ctx, sub, "", origin, "", by, func(ctx context.Context, st *dsr.Stored) error {
		st.Agent.Proof = &dsr.ProofInfo{ContentType: ct, Bytes: int64(len(proof)), SHA256: hex.EncodeToString(sum[:]), UploadedAt: st.CreatedAt}
		if err := s.Proofs.Put(ctx, st.ID, ct, proof); err != nil {
			return fmt.Errorf("store the proof of %s: %w", st.ID, err)
		}
		return nil
	})
	return st, err
}

// OpenProof opens a request's proof for a member of staff and records the
// view in the audit trail (a view that cannot be audited does not happen).
// The caller closes the reader.
func (s *Service) OpenProof(ctx context.Context, st *dsr.Stored, by dsr.Actor) (io.ReadCloser, *dsr.ProofInfo, error) {
	if st.Agent == nil || st.Agent.Proof == nil {
		return nil, nil, ErrNoProof
	}
	info := st.Agent.Proof
	if info.DeletedAt != nil {
		return nil, nil, ErrProofDeleted
	}
	if s.Proofs == nil {
		return nil, nil, ErrNoProofStore
	}
	rc, err := s.Proofs.Open(ctx, st.ID)
	if errors.Is(err, blobs.ErrProofNotFound) {
		// Deleted by the sweeper after this document was read.
		return nil, nil, ErrProofDeleted
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open the proof of %s: %w", st.ID, err)
	}
	if s.Audit != nil {
		now := s.NowUTC()
		e := audit.Entry{
			ID: fmt.Sprintf("%s:proof.viewed:%d", st.ID, now.UnixNano()), At: now, RequestID: st.ID, Event: "proof.viewed",
			Stage: string(st.Stage), State: string(st.State), Actor: &audit.Actor{Kind: by.Kind, ID: by.ID, Name: by.Name},
			Detail: fmt.Sprintf("proof of authority viewed (%s, %d bytes)", info.ContentType, info.Bytes),
		}
		if err := s.Audit.Append(ctx, e); err != nil {
			rc.Close()
			return nil, nil, fmt.Errorf("audit the view of the proof of %s: %w", st.ID, err)
		}
	}
	return rc, info, nil
}

func (s *Service) proofRetention() time.Duration {
	if s.ProofRetention > 0 {
		return s.ProofRetention
	}
	return DefaultProofRetention
}

// endedAt is when a terminal request ended: its first terminal history
// entry (UpdatedAt moves later, when an export is deleted, say).
func endedAt(st *dsr.Stored) time.Time {
	for _, h := range st.History {
		if h.State.Terminal() {
			return h.At
		}
	}
	return st.UpdatedAt
}

// SweepProofs deletes the proofs of authority whose request ended more
// than ProofRetention ago, and proofs left without a request (a crash
// between storing a proof and creating its request). It walks the proofs
// themselves, which are few, rather than every request, and reads the
// request of a proof only at the ages where something may be due
// (sweepable). Deleting is
// idempotent and safe to repeat after a crash at any point: the audit
// entry has a stable id, the request records proof.deletedAt (from then on
// the proof is never served), and only then the blob is deleted, so a
// proof whose blob survived a crash is found by the next sweep, whose
// request already says it is deleted. It returns how many proofs it
// deleted; a failure is logged, counted, and reported at the end.
func (s *Service) SweepProofs(ctx context.Context) (int, error) {
	if s.Proofs == nil {
		return 0, nil
	}
	now := s.NowUTC()
	deleted, failed := 0, 0
	err := s.Proofs.List(ctx, func(id string, created time.Time) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !dsr.ValidID(id) || !sweepable(now.Sub(created), s.proofRetention()) {
			return nil
		}
		done, err := s.sweepProof(ctx, id, now)
		if err != nil {
			failed++
			s.Log.Warn("sweep: proof not handled; the next sweep retries", "requestId", id, "err", err)
		}
		if done {
			deleted++
		}
		return nil
	})
	if err != nil {
		return deleted, fmt.Errorf("sweep proofs: %w", err)
	}
	if deleted > 0 || failed > 0 {
		s.Log.Info("sweep: proofs of authority", "deleted", deleted, "failed", failed)
	}
	if failed > 0 {
		return deleted, fmt.Errorf("sweep proofs: %d not handled", failed)
	}
	return deleted, nil
}

// sweepable reports whether a proof of this age needs a look (one read of
// its request): in its second hour, when a proof without a request is
// found (the sweeper runs every few minutes), and once older than the
// retention, when its request may have ended long enough ago (a request
// ends after its proof was stored). In between nothing can be due, so a
// sweep reads only the few proofs at those ages; an orphan missed in its
// second hour (the sweeper not running) goes once older than the
// retention.
func sweepable(age, retention time.Duration) bool {
	return age >= ProofOrphanAfter && age < 2*ProofOrphanAfter || age >= retention
}

// sweepProof handles one stored proof; it reports whether it deleted it.
func (s *Service) sweepProof(ctx context.Context, id string, now time.Time) (bool, error) {
	st, _, err := s.Store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		// Its request was never created: nothing points at it.
		if err := s.Proofs.Delete(ctx, id); err != nil {
			return false, err
		}
		s.Log.Info("sweep: proof without a request deleted", "requestId", id)
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if st.Agent == nil || st.Agent.Proof == nil {
		s.Log.Warn("sweep: a proof is stored for a request that has none; left alone", "requestId", id)
		return false, nil
	}
	if st.Agent.Proof.DeletedAt == nil {
		if !st.State.Terminal() || now.Before(endedAt(st).Add(s.proofRetention())) {
			return false, nil
		}
		if s.Audit != nil {
			e := audit.Entry{
				ID: id + ":proof.deleted", At: now, RequestID: id, Event: "proof.deleted",
				Stage: string(st.Stage), State: string(st.State), Actor: sweepActor,
				Detail: fmt.Sprintf("proof of authority (%s, %d bytes) deleted %s after the request ended", st.Agent.Proof.ContentType, st.Agent.Proof.Bytes, s.proofRetention()),
			}
			if err := s.Audit.Append(ctx, e); err != nil {
				return false, fmt.Errorf("audit the deletion of the proof of %s: %w", id, err)
			}
		}
		_, err := s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
			if st.Agent == nil || st.Agent.Proof == nil || st.Agent.Proof.DeletedAt != nil {
				return false, nil
			}
			at := now
			st.Agent.Proof.DeletedAt = &at
			return true, nil
		})
		if err != nil {
			return false, fmt.Errorf("record the deletion of the proof of %s: %w", id, err)
		}
	}
	if err := s.Proofs.Delete(ctx, id); err != nil {
		return false, err
	}
	s.Log.Info("sweep: proof of authority deleted", "requestId", id)
	return true, nil
}
