// Package pipeline walks a request along its type's route (dsr.Routes):
// intake, discovery, then export, or approval and a change stage (erasure,
// rectification, restriction) and verification, to done. Runners names
// each stage's queue and runner. Every stage is idempotent: it reads the
// request, does nothing a previous delivery already did, writes
// conditionally on the ETag, and sends the next stage's message with a
// MessageId derived from request and stage, so a redelivered message adds no
// history entry, no second export and no second message. Erasures file
// tombstones (shared/tombstone), which later discoveries read and a replay
// after a restore applies again.
package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/dsr-functions/dsr/shared/audit"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/queue"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/multi"
	"github.com/dsr-functions/dsr/shared/store"
	"github.com/dsr-functions/dsr/shared/tombstone"
)

// Queues are the queue names of each stage, read from function.json.
type Queues struct {
	Discover string
	Export   string
	Erase    string
	Verify   string
	// Intake is the queue other systems submit requests to.
	Intake string
	// IntakeRejected receives a notice per invalid intake message.
	IntakeRejected string
}

// Service holds what the stages need.
type Service struct {
	Store     Requests
	Sender    queue.Sender
	Audit     AuditTrail
	Connector sources.Connector
	Sources   *sources.Config
	// Recipients tells the recipients of changed datasets (Art. 19).
	Recipients Notifier
	// Packages keeps export packages; LinkTTL is their links' lifetime.
	Packages    Packages
	LinkTTL     time.Duration
	PhoneRegion string
	// Secret keys pseudonyms and the audit trail's record key hashes.
	Secret []byte
	// Tombstones keep what erasures leave, so that what they kept stays
	// findable by the person's identifiers (nil: no tombstones).
	Tombstones Tombstones
	// ApprovalTypes are the request types that wait for a person's approval
	// after discovery.
	ApprovalTypes map[dsr.Type]bool
	Queues        Queues
	Log           *slog.Logger
	Now           func() time.Time
	// SweepStuckAfter is how long a request may wait in a stage before the
	// sweeper sends its stage message again (default DefaultSweepStuckAfter).
	SweepStuckAfter time.Duration
	// Cleanup, when set, removes what connectors kept for a request (an
	// asynchronous webhook's stored answer) once the request has ended.
	Cleanup func(ctx context.Context, requestID string) error
	// PendingDelay is how long a stage waits before asking a system that
	// will answer later again (default DefaultPendingDelay); MaxPending is
	// how long it keeps waiting before that system's part is given up as
	// failed (default DefaultMaxPending).
	PendingDelay time.Duration
	MaxPending   time.Duration
	// Identity configures identity verification (nil: no request waits
	// for a code).
	Identity *Verification
	// Proofs keeps agents' proofs of authority (nil: no agent may submit
	// with one); ProofRetention is how long after its request ended a
	// proof is kept (default DefaultProofRetention).
	Proofs         Proofs
	ProofRetention time.Duration
	// SourceAttempts is how many deliveries of a stage message retry a
	// failing system before its part of the request is given up as failed
	// and the rest goes ahead (default DefaultSourceAttempts).
	SourceAttempts int
	// Transmitter sends portability packages to the controller a person
	// names (transmitTo); nil: such requests are refused at submission.
	Transmitter Transmitter
	// RepeatWindow is how far back a request looks for the same person's
	// earlier requests of its type, to flag it as a repeat held for an
	// operator (Art. 12(5), repeat.go); 0: no flagging.
	RepeatWindow time.Duration
	// StageBackoff is the wait before each retry of a failing stage, and
	// StageRetries how many retries a stage gets before its request fails
	// (retry.go; defaults DefaultStageBackoff, DefaultStageRetries).
	StageBackoff Backoff
	StageRetries int
	// Rand draws the jitter of scheduled retries, in [0, 1) (nil:
	// math/rand/v2; tests make it predictable).
	Rand func() float64
	// Lookahead, when set, starts the discoveries of queued requests
	// while one runs, so that a burst shares fewer, larger passes
	// (prefetch.go).
	Lookahead *Lookahead
	// ChainExportRecords, when above 0, lets a discovery that found at
	// most that many records run the export itself, in the same
	// invocation, instead of handing it over through the export queue
	// (chain.go); 0: every export goes through its queue.
	ChainExportRecords int
	// blobLocks serialise this instance's rewrites of each blob (changeBlob).
	blobLocks keyedLocks
}

// Defaults of Service.PendingDelay and Service.MaxPending.
const (
	DefaultPendingDelay = time.Minute
	DefaultMaxPending   = 7 * 24 * time.Hour
)

// DefaultSourceAttempts is the default of Service.SourceAttempts; it is
// below the queues' max delivery count so the stage itself never
// dead-letters because of one system.
const DefaultSourceAttempts = 3

// retrySources reports whether a stage should fail this delivery, so the
// message is redelivered, because systems failed: true until the delivery
// count reaches SourceAttempts. It records why on the request.
func (s *Service) retrySources(ctx context.Context, id string, stage dsr.Stage, attempt int, reasons []string) error {
	if len(reasons) == 0 {
		return nil
	}
	limit := s.SourceAttempts
	if limit <= 0 {
		limit = DefaultSourceAttempts
	}
	if attempt >= limit {
		return nil
	}
	err := fmt.Errorf("%d source(s) failed, retrying: %s", len(reasons), strings.Join(reasons, "; "))
	s.recordAttemptError(ctx, id, stage, err)
	return fmt.Errorf("%s %s: %w", stage, id, err)
}

// NowUTC is the service clock (Now, or the wall clock), in UTC.
func (s *Service) NowUTC() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// StageMessage is the body of every stage message: ids only.
type StageMessage struct {
	RequestID string    `json:"requestId"`
	Stage     dsr.Stage `json:"stage"`
	// Retry numbers a scheduled retry of a failed stage (retry.go); 0 for
	// the stage's first message.
	Retry int `json:"retry,omitempty"`
	// Audited, when set, says the sender appended the request's first
	// Audited history entries to the audit trail before it sent this
	// (handOver): the stage takes that as the trail's mark, which the
	// sender then did not write to the request.
	Audited int `json:"audited,omitempty"`
}

// ErrInvalidMessage marks a stage message that can never be processed.
var ErrInvalidMessage = errors.New("invalid stage message")

// ParseStageMessage decodes a stage message body.
func ParseStageMessage(body []byte) (StageMessage, error) {
	var m StageMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return m, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	if !dsr.ValidID(m.RequestID) {
		return m, fmt.Errorf("%w: requestId missing or malformed", ErrInvalidMessage)
	}
	if m.Retry < 0 || m.Audited < 0 {
		return m, fmt.Errorf("%w: negative retry or audited", ErrInvalidMessage)
	}
	return m, nil
}

// sendStage sends a stage message with the given MessageId, delivered at
// at (zero: now).
func (s *Service) sendStage(ctx context.Context, queueName, messageID, id string, stage dsr.Stage, at time.Time) error {
	return s.sendMessage(ctx, queueName, messageID, StageMessage{RequestID: id, Stage: stage}, at)
}

// sendMessage sends stage message m with the given MessageId, delivered at
// at (zero: now).
func (s *Service) sendMessage(ctx context.Context, queueName, messageID string, m StageMessage, at time.Time) error {
	body, _ := json.Marshal(m)
	props := map[string]any{"requestId": m.RequestID, "stage": string(m.Stage)}
	if m.Retry > 0 {
		props["retry"] = m.Retry
	}
	err := s.Sender.Send(ctx, queueName, queue.Message{
		ID: messageID, Body: body, Subject: string(m.Stage), Properties: props, ScheduledAt: at,
	})
	if err != nil {
		return fmt.Errorf("enqueue %s of %s: %w", m.Stage, m.RequestID, err)
	}
	return nil
}

// Fingerprint identifies a submission's content, so an idempotency key
// reused with different content is detected. It is a hash: no data kept.
func Fingerprint(sub *dsr.Submission) string {
	b, _ := json.Marshal(sub)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Submit stores a validated submission and enqueues its discovery. With an
// idempotency key, repeating the call returns the same request (created is
// false) and re-sends the discovery message if a crash may have lost it.
// createdBy is the caller's opaque reference (idempotency keys are scoped to
// it) and by the caller as the audit trail names it.
func (s *Service) Submit(ctx context.Context, sub *dsr.Submission, idemKey, origin, createdBy string, by dsr.Actor) (*dsr.Stored, bool, error) {
	return s.submit(ctx, sub, idemKey, origin, createdBy, by, nil)
}

// submit is Submit; beforeCreate, when set, runs on the new request just
// before its document is created (an agent's proof is stored there, so no
// request ever points at a proof that is not there).
func (s *Service) submit(ctx context.Context, sub *dsr.Submission, idemKey, origin, createdBy string, by dsr.Actor,
	beforeCreate func(context.Context, *dsr.Stored) error) (*dsr.Stored, bool, error) {
	if sub.TransmitTo != "" && s.Transmitter == nil {
		return nil, false, &dsr.InputError{Status: 422, Code: "transmission-unavailable", Title: "Transmission unavailable",
			Errors: []dsr.FieldError{{Field: "transmitTo", Detail: ErrNoTransmitter.Error() + "; leave transmitTo out to get the package yourself"}}}
	}
	now := s.NowUTC()
	st := dsr.NewStored(sub, dsr.NewID(now), origin, now)
	st.CreatedBy = createdBy
	st.History[0].By = &by
	code, err := s.prepareIdentity(st, origin, sub, now)
	if err != nil {
		return nil, false, err
	}
	if beforeCreate != nil {
		if err := beforeCreate(ctx, st); err != nil {
			return nil, false, err
		}
	}
	if idemKey != "" {
		idemKey = createdBy + "|" + idemKey
	}
	// The request's trail blob is created while the request is (a round
	// trip less before the first stage message). Not with an idempotency
	// key: the request may turn out to exist already, and the new id's
	// empty blob would stay.
	id := st.ID
	var prepared chan error
	if p, ok := s.Audit.(interface {
		Prepare(ctx context.Context, requestID string) error
	}); ok && idemKey == "" {
		prepared = make(chan error, 1)
		go func() { prepared <- p.Prepare(ctx, id) }()
	}
	st, created, err := s.Store.Create(ctx, st, idemKey, Fingerprint(sub))
	if prepared != nil && <-prepared == nil {
		ctx = withTrailPrepared(ctx, id)
	}
	if err != nil {
		return nil, false, err
	}
	if created {
		// Before the first stage message, so discovery sees the flag. A
		// failure loses nothing: discovery checks an unchecked request.
		if checked, err := s.checkRepeat(ctx, st); err != nil {
			s.Log.Warn("repeat check deferred to discovery", "requestId", st.ID, "err", err)
		} else {
			st = checked
		}
	}
	if created && code != "" {
		s.sendCode(ctx, st, code, 1)
	}
	if created && st.Identity != nil && st.Identity.Method == dsr.VerifyOperator && s.Audit != nil {
		if err := s.Audit.Append(ctx, s.decisionEntry(st, "identity.attested", by, "verified by the caller: "+st.Identity.Note)); err != nil {
			s.Log.Warn("identity attestation not audited", "requestId", st.ID, "err", err)
		}
	}
	// The request exists whatever happens here: a failed audit append is
	// caught up by the next stage, which syncs the trail before it acts.
	// The trail comes before the first stage message (sent first, the
	// stage loaded the request before its trail was recorded and appended
	// the same entries again), and the message says how far it goes
	// (handOver), so no write records that before it is sent.
	if st.Stage == dsr.StageIntake && st.State == dsr.StateReceived {
		if err := s.handOver(ctx, st); err != nil {
			if !errors.Is(err, errTrail) {
				return nil, false, err
			}
			s.Log.Warn("audit append deferred to the next stage", "requestId", st.ID, "err", err)
			if err := s.nextMessage(ctx, st); err != nil {
				return nil, false, err
			}
		}
	} else if err := s.syncAudit(ctx, st); err != nil {
		s.Log.Warn("audit append deferred to the next stage", "requestId", st.ID, "err", err)
	}
	if created {
		s.Log.Info("request received", "requestId", st.ID, "type", st.Type, "origin", origin)
	}
	return st, created, nil
}

// subjectOf turns the stored subject into the connector's normalised form.
func subjectOf(st *dsr.Stored) sources.Subject {
	var subj sources.Subject
	if st.Subject.Email != "" {
		subj.Emails = []string{st.Subject.Email}
	}
	if st.Subject.Phone != "" {
		subj.Phones = []string{st.Subject.Phone[1:]} // stored as +E.164
	}
	subj.IDs = st.Subject.IDs
	return subj
}

// attemptError is how LastAttemptError names a stage's failure.
func attemptError(stage dsr.Stage, err error) string {
	return fmt.Sprintf("%s: %v", stage, err)
}

// recordAttemptError notes the latest failure of a stage on the request, so a
// request that finally dead-letters says why.
func (s *Service) recordAttemptError(ctx context.Context, id string, stage dsr.Stage, err error) {
	_, uerr := s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
		if st.State.Terminal() {
			return false, nil
		}
		st.LastAttemptError = attemptError(stage, err)
		return true, nil
	})
	if uerr != nil {
		s.Log.Warn("could not record attempt error", "requestId", id, "err", uerr)
	}
}

// Discover runs discovery for a request (the dsr-discover queue).
func (s *Service) Discover(ctx context.Context, id string, attempt int) error {
	st, err := s.loadForStage(ctx, id, "discover")
	if st == nil || err != nil {
		return err
	}
	switch {
	case st.State.Terminal():
		return nil
	case st.Stage != dsr.StageIntake && st.Stage != dsr.StageDiscovery:
		// Discovery already done; a crash may have lost the next message.
		return s.nextMessage(ctx, st)
	}
	if _, err := s.checkRepeat(ctx, st); err != nil {
		s.recordAttemptError(ctx, id, dsr.StageDiscovery, err)
		return fmt.Errorf("discover %s: %w", id, err)
	}
	advance := func(st *dsr.Stored) (bool, error) {
		return st.Advance(dsr.StageDiscovery, dsr.StateInProgress, s.NowUTC(), attempt, "")
	}
	// A discovery found ahead (prefetch.go) with nothing failed is
	// recorded with the move into discovery in one write; otherwise the
	// request says it is in discovery before it searches.
	dctx := s.discoverAhead(ctx, id)
	disc, tombs, ahead := s.Lookahead.take(ctx, id, s.NowUTC())
	ahead = ahead && len(disc.Failed()) == 0
	if !ahead {
		// The trail gets this step together with the end of discovery
		// (or when it waits): one append and one write fewer per
		// request, and the entry keeps its own time. The move is written
		// while the search runs, which needs nothing the move changes
		// (the subject, the stage's start: intake and discovery count as
		// one): the search does not wait a round trip for the write, and
		// nothing after the search goes on before the write is done.
		moved := make(chan error, 1)
		var advanced *dsr.Stored
		go func() {
			var err error
			advanced, err = s.Store.Update(ctx, id, advance)
			moved <- err
		}()
		disc, tombs, err = s.discover(dctx, st)
		if merr := <-moved; merr != nil {
			return merr
		}
		st = advanced
	}
	if errors.Is(err, sources.ErrPending) {
		if waiting, werr := s.waitForSystems(ctx, st, dsr.StageDiscovery, s.Queues.Discover, err); waiting || werr != nil {
			if serr := s.syncAudit(ctx, st); werr == nil {
				werr = serr
			}
			return werr
		}
		// Waited long enough: go ahead without the late systems.
		disc, tombs, err = s.discover(multi.GiveUpWaiting(ctx), st)
	}
	if err != nil {
		s.recordAttemptError(ctx, id, dsr.StageDiscovery, err)
		return fmt.Errorf("discover %s: %w", id, err)
	}
	var reasons []string
	for _, f := range disc.Failed() {
		if !f.Permanent { // a data error: retrying reads the same data
			reasons = append(reasons, f.Error)
		}
	}
	if err := s.retrySources(ctx, id, dsr.StageDiscovery, attempt, reasons); err != nil {
		return err
	}
	pos, err := s.storePositions(ctx, id, disc)
	if err != nil {
		return err
	}
	st, err = s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
		if ahead && !st.State.Terminal() && (st.Stage == dsr.StageIntake || st.Stage == dsr.StageDiscovery) {
			if _, err := advance(st); err != nil {
				return false, err
			}
		}
		if st.State.Terminal() || st.Stage != dsr.StageDiscovery {
			return false, nil
		}
		st.Positions = pos
		st.Discovery = s.summary(disc, tombs)
		detail := fmt.Sprintf("%d records in %d sources", disc.Total(), len(st.Discovery.Sources))
		for _, f := range disc.Failed() {
			st.AddFailedSource(f.Dataset)
		}
		if n := len(disc.Failed()); n > 0 {
			detail += fmt.Sprintf("; %d could not be searched", n)
		}
		return true, s.afterDiscovery(st, attempt, detail)
	})
	if err != nil {
		return err
	}
	s.Log.Info("discovery done", "requestId", id, "records", disc.Total())
	return s.handOver(ctx, st)
}

// summary turns a discovery into the request's report: counts and Art. 15
// categories per source, no data, and for records an earlier erasure kept,
// why (from its tombstone).
func (s *Service) summary(disc *sources.Discovery, tombs []*tombstone.Tombstone) *dsr.DiscoverySummary {
	sum := &dsr.DiscoverySummary{TotalRecords: disc.Total(), Sources: []dsr.SourceSummary{}, CompletedAt: s.NowUTC()}
	kept := keptAfterErasure(tombs)
	for _, m := range disc.Datasets {
		cats := []string{}
		if d := s.Sources.Dataset(m.Dataset); d != nil {
			cats = d.Facts.Categories
		}
		src := dsr.SourceSummary{Source: m.Dataset, Records: m.Records, Categories: cats, Error: m.Error}
		if m.Records > 0 {
			src.Kept = kept[m.Dataset]
		}
		sum.Sources = append(sum.Sources, src)
	}
	return sum
}

// FailDeadLettered ends a request whose stage message dead-lettered, with
// the broker's reason and the last error a stage recorded.
func (s *Service) FailDeadLettered(ctx context.Context, m StageMessage, reason, description string) error {
	// A change stage that fails says what it changed before it failed.
	report := s.beforeFailing(ctx, m.RequestID, m.Stage)
	st, err := s.Store.Update(ctx, m.RequestID, func(st *dsr.Stored) (bool, error) {
		if st.State.Terminal() {
			return false, nil
		}
		if st.Stage == m.Stage {
			report(st)
		}
		msg := fmt.Sprintf("the %s stage gave up: %s", m.Stage, reason)
		if description != "" {
			msg += " (" + description + ")"
		}
		if st.LastAttemptError != "" {
			msg += "; last error: " + st.LastAttemptError
		}
		return true, st.Fail("stage-dead-lettered", msg, s.NowUTC(), 0)
	})
	if errors.Is(err, store.ErrNotFound) {
		s.Log.Warn("dead-lettered message for unknown request", "requestId", m.RequestID)
		return nil
	}
	if err != nil {
		return err
	}
	s.Log.Warn("request failed: stage message dead-lettered", "requestId", m.RequestID, "stage", m.Stage, "reason", reason)
	return s.syncAudit(ctx, st)
}

// decisionEntry is the audit entry of a staff decision that is not a state
// change. Its id is derived from the request's state so a retry repeats it.
func (s *Service) decisionEntry(st *dsr.Stored, event string, by dsr.Actor, detail string) audit.Entry {
	return audit.Entry{
		ID: fmt.Sprintf("%s:%s:%d", st.ID, event, st.UpdatedAt.UnixNano()), At: s.NowUTC(), RequestID: st.ID, Event: event,
		Stage: string(st.Stage), State: string(st.State), Actor: &audit.Actor{Kind: by.Kind, ID: by.ID, Name: by.Name}, Detail: detail,
	}
}

// syncAudit appends the history entries that are not in the audit trail yet,
// then records how far the trail goes. Entry ids derive from the request and
// the entry's position, so a crash between the two steps leads to a repeat
// that readers recognise, never a gap.
func (s *Service) syncAudit(ctx context.Context, st *dsr.Stored) error {
	from := s.auditedFrom(ctx, st)
	if s.Audit == nil || from >= len(st.History) {
		return nil
	}
	to, err := s.appendTrail(ctx, st, from)
	if err != nil {
		return err
	}
	_, err = s.Store.Update(ctx, st.ID, func(cur *dsr.Stored) (bool, error) {
		if cur.Audited >= to {
			return false, nil
		}
		cur.Audited = to
		return true, nil
	})
	if err == nil {
		st.Audited = to
	}
	if err == nil && st.State.Terminal() && s.Cleanup != nil {
		// Whatever systems kept for the request (an asynchronous
		// webhook's stored answer) goes when it ends.
		if cerr := s.Cleanup(ctx, st.ID); cerr != nil {
			s.Log.Warn("could not remove what systems kept for a finished request", "requestId", st.ID, "err", cerr)
		}
	}
	return err
}

// appendAudit appends a request's entries to the trail. While nothing of
// the request is in the trail yet (neither its mark nor the stage message
// being handled says otherwise, auditedFrom), a trail that can
// (audit.Trail.AppendNew) creates its blob first instead of after a
// failed append. A stage handed a message that carries the trail's extent
// appends at once: its document's mark may still be 0 (handOver), and a
// create before each stage's append was a wasted round trip.
func (s *Service) appendAudit(ctx context.Context, st *dsr.Stored, entries []audit.Entry) error {
	if n, ok := s.Audit.(interface {
		AppendNew(context.Context, ...audit.Entry) error
	}); ok && s.auditedFrom(ctx, st) == 0 && !trailPrepared(ctx, st.ID) {
		return n.AppendNew(ctx, entries...)
	}
	return s.Audit.Append(ctx, entries...)
}

// trailPreparedKey marks a context in which a request's trail blob was
// created ahead of its first entries (submit).
type trailPreparedKey struct{}

func withTrailPrepared(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, trailPreparedKey{}, id)
}

func trailPrepared(ctx context.Context, id string) bool {
	v, _ := ctx.Value(trailPreparedKey{}).(string)
	return v != "" && v == id
}

// auditedFrom is how many of the request's history entries are in the
// trail: its mark, or further if the stage message being handled says so
// (StageMessage.Audited, carried in ctx).
func (s *Service) auditedFrom(ctx context.Context, st *dsr.Stored) int {
	from := st.Audited
	if h, _ := ctx.Value(auditedHintKey{}).(auditedHint); h.id == st.ID && h.n > from && h.n <= len(st.History) {
		from = h.n
	}
	if p, _ := ctx.Value(pendingTrailKey{}).(*pendingTrail); p != nil && p.id == st.ID {
		// A chained stage: the stage before it is appending its entries.
		<-p.done
		if p.err == nil && p.to > from && p.to <= len(st.History) {
			from = p.to
		}
	}
	return from
}

// errTrail marks failures to append to the trail (appendTrail): from
// handOver, the message was not sent.
var errTrail = errors.New("audit")

// auditedHint is a stage message's Audited, for its request.
type auditedHint struct {
	id string
	n  int
}

type auditedHintKey struct{}

// handOver ends a stage: it appends the request's new history entries to
// the trail, then sends the message of the stage the request now waits
// for, saying how far the trail goes. The next stage takes that as the
// trail's mark, so the document write that would record it (a round trip
// before the message) is saved; the next stage's own mark records it. A
// message lost or sent again without it costs entries appended twice,
// which readers recognise by their ids. With no next stage, it is
// syncAudit.
func (s *Service) handOver(ctx context.Context, st *dsr.Stored) error {
	if _, _, ok := s.pendingStage(st); !ok || s.Audit == nil {
		if err := s.syncAudit(ctx, st); err != nil {
			return err
		}
		return s.nextMessage(ctx, st)
	}
	from := s.auditedFrom(ctx, st)
	if s.chains(st) {
		// The trail's append and the chained stage run together; the
		// stage's own entries wait for the append (chain.go).
		trail := &pendingTrail{id: st.ID, done: make(chan struct{})}
		go func() {
			defer close(trail.done)
			trail.to, trail.err = s.appendTrail(ctx, st, from)
		}()
		ran := s.runChained(ctx, st, trail)
		<-trail.done
		switch {
		case ran:
			// The stage's entries took the trail to its end, after
			// this append or, had it failed, with its entries too.
			return nil
		case trail.err != nil:
			return trail.err
		}
		return s.sendNext(ctx, st, trail.to)
	}
	to, err := s.appendTrail(ctx, st, from)
	if err != nil {
		return err
	}
	return s.sendNext(ctx, st, to)
}

// appendTrail appends the request's history entries from from on to the
// trail, and returns how far the trail then goes. Its failures are
// errTrail's.
func (s *Service) appendTrail(ctx context.Context, st *dsr.Stored, from int) (int, error) {
	entries, to := s.historyEntries(st, from)
	if len(entries) == 0 {
		return to, nil
	}
	if err := s.appendAudit(ctx, st, entries); err != nil {
		return from, fmt.Errorf("%w %s: %w", errTrail, st.ID, err)
	}
	return to, nil
}

// historyEntries are the audit entries of the request's history entries
// not yet in the trail (from from, see auditedFrom), and the history
// length they bring the trail to.
func (s *Service) historyEntries(st *dsr.Stored, from int) ([]audit.Entry, int) {
	to := len(st.History)
	if from >= to {
		return nil, from
	}
	entries := make([]audit.Entry, 0, to-from)
	for i := from; i < to; i++ {
		h := st.History[i]
		e := audit.Entry{
			ID: fmt.Sprintf("%s:%d", st.ID, i+1), At: h.At, RequestID: st.ID, Event: "state",
			Stage: string(h.Stage), State: string(h.State), Attempt: h.Attempt, Detail: h.Detail,
			Actor: &audit.Actor{Kind: "system", ID: string(h.Stage)},
		}
		if h.By != nil {
			e.Actor = &audit.Actor{Kind: h.By.Kind, ID: h.By.ID, Name: h.By.Name}
		}
		if h.State == dsr.StateFailed && st.Error != nil {
			e.Detail = st.Error.Code + ": " + st.Error.Message
		}
		entries = append(entries, e)
	}
	return entries, to
}

// loadForStage reads the request a stage message names and brings its audit
// trail up to date. It returns (nil, nil) for an unknown request: the
// message is dropped (logged), since retrying cannot help.
func (s *Service) loadForStage(ctx context.Context, id, stage string) (*dsr.Stored, error) {
	if st := handedOver(ctx, id); st != nil {
		// Run by the stage before it, which has just written st (chain.go).
		return st, nil
	}
	st, _, err := s.Store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		s.Log.Warn(stage+": unknown request; message dropped", "requestId", id)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.syncAudit(ctx, st); err != nil {
		return nil, err
	}
	return st, nil
}

// requestContext is ctx carrying the request, for connectors that need its
// id or subject (webhooks).
func (s *Service) requestContext(ctx context.Context, st *dsr.Stored) context.Context {
	return sources.WithSince(sources.WithRequest(ctx, st.ID, subjectOf(st)), stageStart(st))
}

// stageStart is when the request entered its current stage (the first of
// the history's last entries at that stage, intake and discovery counting
// as one, and not past a failure it was re-driven from): work a connector
// did for it before then (a fanned-out scan) is not an answer for this
// stage. Discovery counts from intake because a discovery may start ahead
// of the move into the stage (prefetch.go).
func stageStart(st *dsr.Stored) time.Time {
	same := func(h dsr.HistoryEntry) bool {
		if h.State == dsr.StateFailed {
			return false
		}
		if st.Stage == dsr.StageIntake || st.Stage == dsr.StageDiscovery {
			return h.Stage == dsr.StageIntake || h.Stage == dsr.StageDiscovery
		}
		return h.Stage == st.Stage
	}
	var at time.Time
	for i := len(st.History) - 1; i >= 0 && same(st.History[i]); i-- {
		at = st.History[i].At
	}
	return at
}

// waitForSystems handles a system that will answer later: until MaxPending
// after the request entered stage, it notes the wait on the request and
// schedules the stage's message again after PendingDelay (a callback may
// bring it sooner), and reports waiting. After that it reports not
// waiting: the stage goes ahead and the late system's part fails.
func (s *Service) waitForSystems(ctx context.Context, st *dsr.Stored, stage dsr.Stage, queueName string, cause error) (waiting bool, err error) {
	delay, limit := s.PendingDelay, s.MaxPending
	if delay <= 0 {
		delay = DefaultPendingDelay
	}
	if limit <= 0 {
		limit = DefaultMaxPending
	}
	now := s.NowUTC()
	since := st.CreatedAt
	for _, h := range st.History {
		if h.Stage == stage {
			since = h.At
		}
	}
	if now.Sub(since) >= limit {
		s.Log.Warn("gave up waiting for a system", "requestId", st.ID, "stage", stage)
		return false, nil
	}
	var hint sources.RetryHinter
	if errors.As(cause, &hint) && hint.RetryAfter() > 0 && hint.RetryAfter() < delay {
		delay = hint.RetryAfter()
	}
	var pr sources.ProgressReporter
	if stage == dsr.StageDiscovery && errors.As(cause, &pr) {
		// A fanned-out scan: the request shows how far it has got.
		sp := pr.DiscoveryProgress()
		p := dsr.DiscoveryProgress{Shards: sp.Shards, Done: sp.Done, Bytes: sp.Bytes, DoneBytes: sp.DoneBytes}
		if _, err := s.Store.Update(ctx, st.ID, func(cur *dsr.Stored) (bool, error) {
			if cur.State.Terminal() || cur.Stage != dsr.StageDiscovery {
				return false, nil
			}
			cur.Discovery = &dsr.DiscoverySummary{Sources: []dsr.SourceSummary{}, Progress: &p}
			return true, nil
		}); err != nil {
			return true, fmt.Errorf("%s %s: record progress: %w", stage, st.ID, err)
		}
	}
	s.recordAttemptError(ctx, st.ID, stage, cause)
	at := now.Add(delay)
	// A distinct id per wait (to the nanosecond: two waits may fall in one
	// second), or duplicate detection would drop it.
	if err := s.sendStage(ctx, queueName, fmt.Sprintf("%s:%s:wait:%d", st.ID, stage, at.UnixNano()), st.ID, stage, at); err != nil {
		return true, fmt.Errorf("%s %s: schedule a retry: %w", stage, st.ID, err)
	}
	s.Log.Info("waiting for a system to answer", "requestId", st.ID, "stage", stage, "retryAt", at)
	return true, nil
}
