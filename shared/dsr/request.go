// Package dsr is the domain of Data Subject Requests: request types, states,
// stages, the subject's identifiers, the request document and its deadlines.
// It does no I/O.
package dsr

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"
)

// Type is what the data subject asks for.
type Type string

// Request types (GDPR articles in brackets).
const (
	TypeAccess        Type = "access"        // Art. 15 + 20: a copy of the data
	TypeDiscovery     Type = "discovery"     // find the data, report where it is
	TypeErasure       Type = "erasure"       // Art. 17
	TypeRectification Type = "rectification" // Art. 16
	TypeRestriction   Type = "restriction"   // Art. 18
	// TypePortability is Art. 20: the data the person provided, in a
	// structured, machine-readable form, optionally sent straight to
	// another controller (transmitTo).
	TypePortability Type = "portability"
)

// Types are every request type, in the order the API lists them.
var Types = []Type{TypeAccess, TypeDiscovery, TypeErasure, TypeRectification, TypeRestriction, TypePortability}

// States are every request state, in the order a request may pass them.
var States = []State{StateReceived, StateAwaitingVerification, StateInProgress, StateAwaitingApproval, StateCompleted, StateFailed, StateRejected, StateCancelled, StateExpired}

// Supported reports whether this build can process requests of type t.
func (t Type) Supported() bool {
	return t.Known()
}

// Known reports whether t is a request type the API knows at all.
func (t Type) Known() bool { return slices.Contains(Types, t) }

// State is where a request stands as a whole.
type State string

// Request states.
const (
	StateReceived   State = "received"
	StateInProgress State = "in_progress"
	StateCompleted  State = "completed"
	StateFailed     State = "failed"
	StateCancelled  State = "cancelled"
	// StateAwaitingApproval: discovery is done; a person decides whether to
	// honour the request (approve) or decline it (reject).
	StateAwaitingApproval State = "awaiting_approval"
	StateRejected         State = "rejected"
	// StateAwaitingVerification: the request waits for the person to prove
	// they hold the address they gave (a one-time code); nothing is
	// searched before.
	StateAwaitingVerification State = "awaiting_verification"
	// StateExpired: the person never verified; nothing was discovered.
	StateExpired State = "expired"
)

// Terminal reports whether no further stage runs for a request in state s.
func (s State) Terminal() bool {
	return s == StateCompleted || s == StateFailed || s == StateCancelled || s == StateRejected || s == StateExpired
}

// Known reports whether s is a state the API knows.
func (s State) Known() bool { return slices.Contains(States, s) }

// Stage is the step of the pipeline a request is at.
type Stage string

// Pipeline stages, in order.
const (
	StageIntake        Stage = "intake"
	StageIdentity      Stage = "identity"
	StageDiscovery     Stage = "discovery"
	StageExport        Stage = "export"
	StageApproval      Stage = "approval"
	StageErasure       Stage = "erasure"
	StageRectification Stage = "rectification"
	StageRestriction   Stage = "restriction"
	StageVerification  Stage = "verification"
	// StageNotification tells the recipients of the changed datasets
	// (Art. 19); taken only when the sources config names some.
	StageNotification Stage = "notification"
	// StageTransmission sends a portability package to the controller the
	// person named (transmitTo); taken only when she named one.
	StageTransmission Stage = "transmission"
	StageDone         Stage = "done"
)

// Subject holds the identifiers of the data subject. It is personal data:
// it is stored with the request but never logged or put in messages.
type Subject struct {
	Email string            `json:"email,omitempty"`
	Phone string            `json:"phone,omitempty"`
	Name  string            `json:"name,omitempty"`
	IDs   map[string]string `json:"ids,omitempty"`
}

// Actor is who caused a transition: a person or app (their platform
// principal), a function-key caller, a queue, or a pipeline stage.
type Actor struct {
	Kind string `json:"kind"`
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

// HistoryEntry records one transition of a request.
type HistoryEntry struct {
	Stage   Stage     `json:"stage"`
	State   State     `json:"state"`
	At      time.Time `json:"at"`
	Attempt int       `json:"attempt"`
	Detail  string    `json:"detail,omitempty"`
	By      *Actor    `json:"by,omitempty"`
}

// SourceSummary is what discovery found in one dataset.
type SourceSummary struct {
	Source     string   `json:"source"`
	Records    int64    `json:"records"`
	Categories []string `json:"categories"`
	// Error says why the dataset's system could not be searched.
	Error string `json:"error,omitempty"`
	// Kept says, for records still held after an erasure of the subject,
	// why they were kept (so the answer to a later request says it too).
	Kept *KeptAfterErasure `json:"keptAfterErasure,omitempty"`
}

// KeptAfterErasure is why a dataset still holds a subject's records after
// an erasure: retained unchanged under an Art. 17(3) ground, or kept with
// the fields that identify her masked.
type KeptAfterErasure struct {
	RequestID   string    `json:"requestId"`
	ErasedAt    time.Time `json:"erasedAt"`
	Action      string    `json:"action"`
	Fields      []string  `json:"fields,omitempty"`
	Ground      string    `json:"ground,omitempty"`
	LegalBasis  string    `json:"legalBasis,omitempty"`
	RetainUntil string    `json:"retainUntil,omitempty"`
}

// DiscoverySummary is the discovery report on a request (counts, no data).
type DiscoverySummary struct {
	TotalRecords int64           `json:"totalRecords"`
	Sources      []SourceSummary `json:"sources"`
	CompletedAt  time.Time       `json:"completedAt"`
	// Progress is set while discovery waits for a fanned-out scan (and
	// the rest is empty): shards, shards done, bytes, bytes done.
	Progress *DiscoveryProgress `json:"progress,omitempty"`
}

// DiscoveryProgress is how far a fanned-out scan has got.
type DiscoveryProgress struct {
	Shards    int   `json:"shards"`
	Done      int   `json:"done"`
	Bytes     int64 `json:"bytes"`
	DoneBytes int64 `json:"doneBytes"`
}

// ExportInfo describes the export package of a completed access request.
// URL and ExpiresAt are minted on read and never stored. DeletedAt is set
// once the sweeper has deleted the package (its links plus a grace period
// have expired); no link is minted after that.
type ExportInfo struct {
	URL       string     `json:"url,omitempty"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	Bytes     int64      `json:"bytes"`
	SHA256    string     `json:"sha256"`
	Blob      string     `json:"-"`
	CreatedAt time.Time  `json:"createdAt"`
	DeletedAt *time.Time `json:"deletedAt,omitempty"`
}

// ErrorInfo says why a request failed. Message never holds personal data.
type ErrorInfo struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Request is the request document.
type Request struct {
	ID         string         `json:"id"`
	Type       Type           `json:"type"`
	State      State          `json:"state"`
	Stage      Stage          `json:"stage"`
	CreatedAt  time.Time      `json:"createdAt"`
	ReceivedAt time.Time      `json:"receivedAt"`
	DueAt      time.Time      `json:"dueAt"`
	UpdatedAt  time.Time      `json:"updatedAt"`
	Origin     string         `json:"origin,omitempty"`
	Note       string         `json:"note,omitempty"`
	History    []HistoryEntry `json:"history"`
	// OriginalDueAt is the one-month deadline; DueAt moves with an extension.
	OriginalDueAt *time.Time `json:"originalDueAt,omitempty"`
	// Extension sums up the extensions: months in total, the latest reason
	// and when; Extensions lists each one with its own reason.
	Extension    *Extension    `json:"extension,omitempty"`
	Extensions   []Extension   `json:"extensions,omitempty"`
	Cancellation *Cancellation `json:"cancellation,omitempty"`
	Rejection    *Rejection    `json:"rejection,omitempty"`
	// DueSoon is set on read when the request is open and due within 7 days.
	DueSoon       bool                 `json:"dueSoon,omitempty"`
	Discovery     *DiscoverySummary    `json:"discovery,omitempty"`
	Export        *ExportInfo          `json:"export,omitempty"`
	Erasure       *ErasureReport       `json:"erasure,omitempty"`
	Rectification *RectificationReport `json:"rectification,omitempty"`
	Restriction   *RestrictionReport   `json:"restriction,omitempty"`
	Verification  *VerificationReport  `json:"verification,omitempty"`
	Error         *ErrorInfo           `json:"error,omitempty"`
	// Identity says how the requester's identity was checked: by a one-time
	// code sent to the address given (portal, or a trusted channel that asks
	// for it), or attested by an operator.
	Identity *IdentityCheck `json:"identity,omitempty"`
	// Delivery is how the export reached the person herself: a request
	// she verified by code gets an email with a link to the portal, which
	// asks for a fresh code before it hands out the download link.
	Delivery *Delivery `json:"delivery,omitempty"`
	// Notifications are the notices to the recipients of the changed
	// datasets (Art. 19), one per recipient.
	Notifications []Notification `json:"notifications,omitempty"`
	// FollowUp is set when a person must finish what the pipeline could
	// not: a source that failed its part, a recipient not told, an export
	// email not sent. Listed with followUp=true.
	FollowUp bool `json:"followUp,omitempty"`
	// FailedSources names the datasets whose systems failed their part of
	// the request after every retry; the reports say why. The rest of the
	// request went ahead: such a request needs a person to follow up.
	FailedSources []string `json:"failedSources,omitempty"`
	// Agent is who asked on the subject's behalf, and her proof of
	// authority (agent.go).
	Agent *Agent `json:"agent,omitempty"`
	// RepeatOf lists the same person's earlier requests of the same type
	// within DSR_REPEAT_WINDOW (Art. 12(5)): ids and facts only. A flagged
	// request waits for an operator, who may refuse it with a reason.
	RepeatOf []RepeatRef `json:"repeatOf,omitempty"`
	// TransmitTo is the HTTPS address of the controller a portability
	// package goes to (Art. 20(2)); Transmission is how that went.
	TransmitTo   string        `json:"transmitTo,omitempty"`
	Transmission *Transmission `json:"transmission,omitempty"`
}

// Transmission statuses.
const (
	TransmissionSent    = "sent"
	TransmissionFailed  = "failed"
	TransmissionRefused = "refused"
)

// Transmission is the outcome of sending a portability package to
// another controller: sent, failed after its attempts (the request
// completes marked for follow-up; the person still gets her copy), or
// refused (an address we never send to). Error never holds personal data.
type Transmission struct {
	Status     string     `json:"status"`
	Attempts   int        `json:"attempts"`
	At         *time.Time `json:"at,omitempty"`
	HTTPStatus int        `json:"httpStatus,omitempty"`
	Error      string     `json:"error,omitempty"`
	// SHA256 and Bytes say which package was sent.
	SHA256 string `json:"sha256,omitempty"`
	Bytes  int64  `json:"bytes,omitempty"`
}

// RepeatRef is one earlier request a repeat request follows: what an
// operator needs to judge it, and no personal data.
type RepeatRef struct {
	ID        string    `json:"id"`
	Type      Type      `json:"type"`
	CreatedAt time.Time `json:"createdAt"`
	// State is the earlier request's state when the repeat was flagged.
	State State `json:"state"`
}

// Repeat reports whether the request was flagged as a repeat (Art. 12(5)).
func (r *Request) Repeat() bool { return len(r.RepeatOf) > 0 }

// AddFailedSource records that dataset's system failed its part.
func (r *Request) AddFailedSource(dataset string) {
	for _, f := range r.FailedSources {
		if f == dataset {
			return
		}
	}
	r.FailedSources = append(r.FailedSources, dataset)
}

// Stored is the request as kept in the state store: the document plus the
// data that must never leave it (the subject and corrections).
type Stored struct {
	Request
	Subject     Subject           `json:"subject"`
	Corrections map[string]string `json:"corrections,omitempty"`
	// Lift: a restriction request that lifts an earlier restriction.
	Lift bool `json:"lift,omitempty"`
	// CreatedBy is an opaque reference to the caller that submitted the
	// request (auth.Principal.Ref), for "own requests" access.
	CreatedBy string `json:"createdBy,omitempty"`
	// ExportBlob is the blob name of the export package.
	ExportBlob string `json:"exportBlob,omitempty"`
	// ErasedBlobs records, per blob, that the erasure stage rewrote it (so a
	// redelivered erase message does not do it twice).
	ErasedBlobs map[string]ErasedBlob `json:"erasedBlobs,omitempty"`
	// PendingBlobs are rewrites planned and about to be committed, by the
	// same key as ErasedBlobs: written before the commit, so that a retry
	// after a crash can tell whether the commit happened (the blob names
	// the plan) and report and audit what it did; moved to ErasedBlobs once
	// audited.
	PendingBlobs map[string]PendingBlob `json:"pendingBlobs,omitempty"`
	// Audited is how many history entries are in the audit trail.
	Audited int `json:"audited,omitempty"`
	// Positions is the detailed discovery result (record positions, no
	// personal data) when it is small: kept in the document the next
	// stage reads anyway, written with the discovery's own update, rather
	// than in a blob of its own (one write and one read fewer per
	// request). Empty: the positions are in the discovery blob.
	Positions json.RawMessage `json:"positions,omitempty"`
	// LastAttemptError is the latest failure of a stage, kept so that a
	// request that finally fails can say why. Never personal data.
	LastAttemptError string `json:"lastAttemptError,omitempty"`
	// TombstonedAt is when the erasure stage filed the subject's tombstone
	// (before changing anything), so a redelivery does not file it again.
	TombstonedAt *time.Time `json:"tombstonedAt,omitempty"`
	// Code is the pending one-time verification code (keyed hash only).
	Code *CodeState `json:"code,omitempty"`
	// DownloadCode is the pending one-time code of a download (keyed hash
	// only): the delivery email alone does not hand out the export.
	DownloadCode *CodeState `json:"downloadCode,omitempty"`
	// LastSweptAt is when the sweeper last re-sent the request's stage
	// message; it claims the request (an ETag-conditional write) so that
	// concurrent sweepers re-drive it once per window.
	LastSweptAt *time.Time `json:"lastSweptAt,omitempty"`
	// RepeatChecked is set once the request is in the person's registry
	// and was checked for earlier ones (Art. 12(5)); discovery checks a
	// request that is not, so a registry failure at intake loses nothing.
	RepeatChecked bool `json:"repeatChecked,omitempty"`
}

// Advance moves the request to stage and state and appends one history
// entry. It is a no-op returning false if the last entry already records
// the same stage and state, so a redelivered message adds nothing, and it
// refuses (ErrTransition) any move its type's route does not allow
// (CheckTransition): backwards, skipping a stage, or out of an ended state.
func (r *Request) Advance(stage Stage, state State, at time.Time, attempt int, detail string) (bool, error) {
	if n := len(r.History); n > 0 && r.History[n-1].Stage == stage && r.History[n-1].State == state {
		return false, nil
	}
	from, fromState := r.Stage, r.State
	if len(r.History) == 0 {
		from, fromState = "", ""
	}
	if err := CheckTransition(r.Type, from, fromState, stage, state); err != nil {
		return false, err
	}
	r.Stage, r.State, r.UpdatedAt = stage, state, at
	r.History = append(r.History, HistoryEntry{Stage: stage, State: state, At: at, Attempt: attempt, Detail: detail})
	return true, nil
}

// Fail ends the request in StateFailed with a reason free of personal data.
func (r *Request) Fail(code, message string, at time.Time, attempt int) error {
	if _, err := r.Advance(r.Stage, StateFailed, at, attempt, code); err != nil {
		return err
	}
	r.Error = &ErrorInfo{Code: code, Message: message}
	return nil
}

// DueAt is the Art. 12(3) deadline: one calendar month after receipt. When the
// next month is shorter, the deadline is its last day (31 January → 28 or 29
// February), at the same time of day, in UTC.
func DueAt(received time.Time) time.Time { return AddMonths(received, 1) }

// AddMonths adds calendar months the Art. 12(3) way: the same day of the
// month, or the last day of a shorter month, at the same time of day, in UTC.
func AddMonths(t time.Time, months int) time.Time {
	r := t.UTC()
	y, m, d := r.Date()
	first := time.Date(y, m+time.Month(months), 1, r.Hour(), r.Minute(), r.Second(), r.Nanosecond(), time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	if d > last {
		d = last
	}
	return time.Date(first.Year(), first.Month(), d, r.Hour(), r.Minute(), r.Second(), r.Nanosecond(), time.UTC)
}

var idPattern = regexp.MustCompile(`^r[0-9a-f]{12}[0-9a-f]{16}$`)

// NewID returns a new request id: "r", 12 hex digits of milliseconds since
// the epoch (so ids sort by creation time), and 16 random hex digits.
func NewID(now time.Time) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return fmt.Sprintf("r%012x%s", now.UnixMilli(), hex.EncodeToString(b[:]))
}

// ValidID reports whether s has the shape of a request id; anything else is
// refused before it reaches a blob name.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// MaxExtensionMonths is the longest extension Art. 12(3) allows.
const MaxExtensionMonths = 2

// DueSoonWindow is how close to its deadline an open request is flagged.
const DueSoonWindow = 7 * 24 * time.Hour

// Extension records an Art. 12(3) extension of the deadline. The reason is
// told to the subject; it is kept on the request, never in logs or audit.
type Extension struct {
	Months int       `json:"months"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Cancellation records why and when a request was cancelled.
type Cancellation struct {
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// Extend moves the deadline by months more (in total at most two months
// beyond the original one-month deadline), only before the original
// deadline, and only for open requests.
func (r *Request) Extend(months int, reason string, now time.Time) error {
	switch {
	case r.State.Terminal():
		return fmt.Errorf("the request is %s", r.State)
	case months < 1 || months > MaxExtensionMonths:
		return fmt.Errorf("months must be 1 or 2")
	}
	original := r.DueAt
	if r.OriginalDueAt != nil {
		original = *r.OriginalDueAt
	}
	if !now.Before(original) {
		return fmt.Errorf("an extension must be decided before the original deadline")
	}
	total := months
	if r.Extension != nil {
		total += r.Extension.Months
	}
	if total > MaxExtensionMonths {
		return fmt.Errorf("at most %d months in total may be added", MaxExtensionMonths)
	}
	r.OriginalDueAt = &original
	r.Extension = &Extension{Months: total, Reason: reason, At: now.UTC()}
	r.Extensions = append(r.Extensions, Extension{Months: months, Reason: reason, At: now.UTC()})
	r.DueAt = AddMonths(r.ReceivedAt, 1+total)
	r.UpdatedAt = now.UTC()
	return nil
}

// Cancel ends an open request in StateCancelled.
func (r *Request) Cancel(reason string, now time.Time, by *Actor) error {
	if r.State.Terminal() {
		return fmt.Errorf("the request is already %s", r.State)
	}
	if _, err := r.Advance(r.Stage, StateCancelled, now.UTC(), 0, ""); err != nil {
		return err
	}
	r.Cancellation = &Cancellation{Reason: reason, At: now.UTC()}
	r.History[len(r.History)-1].By = by
	return nil
}

// ErrChangesStarted refuses to cancel a request whose change stage has
// begun: cancelling would not undo what was changed, and a request that
// says "cancelled" over changed data tells the person something false. The
// change runs to its end and is reported.
var ErrChangesStarted = errors.New("the request has started changing data; it can no longer be cancelled and runs to its end")

// ChangeStages are the stages that change the subject's data.
var ChangeStages = []Stage{StageErasure, StageRectification, StageRestriction}

// ChangesStarted reports whether the request has reached its change stage
// (or gone past it) or holds marks of changes made or planned.
func (s *Stored) ChangesStarted() bool {
	if len(s.ErasedBlobs) > 0 || len(s.PendingBlobs) > 0 {
		return true
	}
	for _, c := range ChangeStages {
		if routeIndex(s.Type, c) >= 0 && (s.Stage == c || Before(s.Type, c, s.Stage)) {
			return true
		}
	}
	return false
}

// Cancel ends an open request in StateCancelled, unless its change stage
// has begun (ErrChangesStarted). Cancel and the move into the change stage
// are both conditional updates of the request, so one of them sees the
// other: a cancel either lands before the change starts (the stage then
// finds a cancelled request and changes nothing) or is refused.
func (s *Stored) Cancel(reason string, now time.Time, by *Actor) error {
	if !s.State.Terminal() && s.ChangesStarted() {
		return ErrChangesStarted
	}
	return s.Request.Cancel(reason, now, by)
}

// Overdue reports whether an open request is past its deadline at now.
func (r *Request) Overdue(now time.Time) bool { return !r.State.Terminal() && now.After(r.DueAt) }

// RefusalNotice is what Art. 12(4) requires a refusal to tell the subject.
const RefusalNotice = "Your request was declined for the reason given. You have the right to lodge a complaint " +
	"with a supervisory authority and to seek a judicial remedy (GDPR Art. 12(4), 77 and 79)."

// Rejection records a declined request: the reason (for the subject) and
// the Art. 12(4) notice.
type Rejection struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	Notice string    `json:"notice"`
}

// ErasureResult is what erasure did in one dataset.
type ErasureResult struct {
	Source      string `json:"source"`
	Action      string `json:"action"`
	Deleted     int64  `json:"deleted"`
	Masked      int64  `json:"masked"`
	Retained    int64  `json:"retained"`
	Ground      string `json:"ground,omitempty"`
	LegalBasis  string `json:"legalBasis,omitempty"`
	RetainUntil string `json:"retainUntil,omitempty"`
	// Error says why the dataset's system could not be changed (or
	// searched); nothing was done there.
	Error string `json:"error,omitempty"`
	// Note is what the operator must know beside the counts (for a Delta
	// table: the replaced data files keep the erased rows until VACUUM;
	// see sources.Dataset.ChangeNote).
	Note string `json:"note,omitempty"`
}

// ErasureReport is the erasure stage's result on the request.
type ErasureReport struct {
	Sources     []ErasureResult `json:"sources"`
	CompletedAt time.Time       `json:"completedAt"`
	// Incomplete: the stage failed before it finished (Error on the
	// request says why); the report says what was changed before.
	Incomplete bool `json:"incomplete,omitempty"`
}

// VerificationSource is what verification found again in one dataset.
type VerificationSource struct {
	Source   string `json:"source"`
	Residual int64  `json:"residual"`
	Retained int64  `json:"retained"`
	// Masked are records still linked to the subject (through a key the
	// erasure's tombstone keeps) whose identifying fields are masked.
	Masked int64 `json:"masked"`
	// Error says why the dataset's system could not be searched again.
	Error string `json:"error,omitempty"`
}

// VerificationReport is the result of discovering again after erasure:
// residual records must be zero apart from retained ones.
type VerificationReport struct {
	Residual int64                `json:"residual"`
	Retained int64                `json:"retained"`
	Masked   int64                `json:"masked"`
	Sources  []VerificationSource `json:"sources"`
	At       time.Time            `json:"at"`
}

// Approve lets a request waiting for approval go on to the next stage of
// its route (a change stage, or export for a held repeat access request).
func (r *Request) Approve(now time.Time, by *Actor) error {
	if r.State != StateAwaitingApproval {
		return fmt.Errorf("only a request awaiting approval can be approved; this one is %s", r.State)
	}
	next, ok := Next(r.Type, r.Stage, nil)
	if !ok {
		return fmt.Errorf("a %s request has no stage after %s", r.Type, r.Stage)
	}
	if _, err := r.Advance(next.Stage, next.State, now.UTC(), 0, "approved"); err != nil {
		return err
	}
	r.History[len(r.History)-1].By = by
	return nil
}

// Redrive puts a failed request back into the step where it failed, to
// run that step again: a person's decision once the cause is fixed (a
// system that was down, a message that dead-lettered, residual data removed
// by hand before verifying again). The failure stays in the history; the
// request's error is cleared.
func (r *Request) Redrive(now time.Time, by *Actor) error {
	if r.State != StateFailed {
		return fmt.Errorf("only a failed request can be re-driven; this one is %s", r.State)
	}
	i := routeIndex(r.Type, r.Stage)
	if i < 0 {
		return fmt.Errorf("a %s request has no step %s", r.Type, r.Stage)
	}
	if _, err := r.Advance(r.Stage, Routes[r.Type][i].State, now.UTC(), 0, "re-driven"); err != nil {
		return err
	}
	r.Error = nil
	r.History[len(r.History)-1].By = by
	return nil
}

// Reject declines a request waiting for approval, with the reason and the
// Art. 12(4) notice.
func (r *Request) Reject(reason string, now time.Time, by *Actor) error {
	if r.State != StateAwaitingApproval {
		return fmt.Errorf("only a request awaiting approval can be rejected; this one is %s", r.State)
	}
	if _, err := r.Advance(StageApproval, StateRejected, now.UTC(), 0, "rejected"); err != nil {
		return err
	}
	r.Rejection = &Rejection{Reason: reason, At: now.UTC(), Notice: RefusalNotice}
	r.History[len(r.History)-1].By = by
	return nil
}

// ErasedBlob is the erasure stage's progress mark for one blob.
type ErasedBlob struct {
	Dataset string `json:"dataset"`
	ETag    string `json:"etag"`
	Deleted int    `json:"deleted"`
	Masked  int    `json:"masked"`
	// Retained is what a delegating system reports it kept.
	Retained int `json:"retained,omitempty"`
}

// PendingBlob is a rewrite of one blob planned by a change stage, recorded
// before its commit: what the commit changes and the audit entries it owes.
type PendingBlob struct {
	// Plan names the rewrite; the committed blob carries it.
	Plan string `json:"plan"`
	// Commit is what the system said will name the commit, when the data
	// cannot carry Plan (a PostgreSQL transaction id).
	Commit string `json:"commit,omitempty"`
	Stage  Stage  `json:"stage"`
	Blob   string `json:"blob"`
	// BaseETag is the version the rewrite replaces.
	BaseETag string `json:"baseEtag"`
	// Done is what the commit changes (no ETag yet).
	Done ErasedBlob `json:"done"`
	// Policy and Records are the audit entries owed: one per record, by
	// keyed hash of its key (never the key itself).
	Policy  string          `json:"policy"`
	Records []PlannedRecord `json:"records,omitempty"`
	// IDPrefix starts the audit entries' ids.
	IDPrefix string `json:"idPrefix,omitempty"`
}

// PlannedRecord is what a planned rewrite does to one record.
type PlannedRecord struct {
	Key    string `json:"key"`
	Action string `json:"action"`
}

// RectificationSource is what rectification did in one dataset.
type RectificationSource struct {
	Source    string `json:"source"`
	Rectified int64  `json:"rectified"`
	// Status is "rectified", or why not: "not rectifiable: system-generated
	// log" (a factual record of events) or "not rectifiable: not marked
	// rectifiable".
	Status string `json:"status"`
	// Error says why the dataset's system could not be changed.
	Error string `json:"error,omitempty"`
	// Note: as ErasureResult's.
	Note string `json:"note,omitempty"`
}

// RectificationReport is the rectification stage's result on the request.
type RectificationReport struct {
	Sources     []RectificationSource `json:"sources"`
	CompletedAt time.Time             `json:"completedAt"`
	// Incomplete: as ErasureReport's.
	Incomplete bool `json:"incomplete,omitempty"`
}

// LiftNotice is what Art. 18(3) requires before a restriction is lifted.
const LiftNotice = "The restriction of processing of your personal data is being lifted. " +
	"GDPR Art. 18(3) requires that you are told before it is lifted."

// RestrictionSource is what restriction did in one dataset with a
// restriction flag field.
type RestrictionSource struct {
	Source  string `json:"source"`
	Flagged int64  `json:"flagged"`
	// Error says why the dataset's system could not be changed.
	Error string `json:"error,omitempty"`
}

// RestrictionReport is the restriction stage's result on the request.
type RestrictionReport struct {
	Lifted      bool                `json:"lifted"`
	Identifiers int                 `json:"identifiers"`
	Sources     []RestrictionSource `json:"sources"`
	Notice      string              `json:"notice,omitempty"`
	CompletedAt time.Time           `json:"completedAt"`
}

// Identity check methods.
const (
	// VerifyEmailCode: a one-time code sent to the subject's email address
	// was entered back.
	VerifyEmailCode = "email-code"
	// VerifyOperator: a trusted caller (DSR.Submit, the intake queue)
	// attests that it checked the requester's identity itself.
	VerifyOperator = "operator"
)

// IdentityCheck records how and when the requester's identity was checked.
// It holds no identifier: the address the code went to is the subject's.
type IdentityCheck struct {
	Method      string     `json:"method"`
	RequestedAt *time.Time `json:"requestedAt,omitempty"`
	VerifiedAt  *time.Time `json:"verifiedAt,omitempty"`
	// ExpiresAt is when an unverified request expires.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	// Note is the operator's note on how they checked (for the audit).
	Note string `json:"note,omitempty"`
}

// CodeState is the one-time code a request waits for: only a keyed hash of
// it, when it stops working, and the attempts and sends so far.
type CodeState struct {
	Hash       string    `json:"hash"`
	ExpiresAt  time.Time `json:"expiresAt"`
	Attempts   int       `json:"attempts"`
	Sends      int       `json:"sends"`
	LastSentAt time.Time `json:"lastSentAt"`
}

// AwaitVerification moves a new request into the identity step, where it
// waits for its requester to prove the address; it expires at expiresAt.
func (r *Request) AwaitVerification(now, expiresAt time.Time) error {
	if _, err := r.Advance(StageIdentity, StateAwaitingVerification, now.UTC(), 0, "verification requested"); err != nil {
		return err
	}
	at, exp := now.UTC(), expiresAt.UTC()
	r.Identity = &IdentityCheck{Method: VerifyEmailCode, RequestedAt: &at, ExpiresAt: &exp}
	return nil
}

// Verified records that the requester proved the address and moves the
// request on along its route. When fromVerification is set the Art. 12(3)
// deadline runs from now instead of from receipt (DSR_VERIFY_DEADLINE).
func (r *Request) Verified(now time.Time, next Step, fromVerification bool) error {
	if r.State != StateAwaitingVerification {
		return fmt.Errorf("the request does not wait for verification; it is %s", r.State)
	}
	if _, err := r.Advance(next.Stage, next.State, now.UTC(), 0, "verified"); err != nil {
		return err
	}
	at := now.UTC()
	r.Identity.VerifiedAt, r.Identity.ExpiresAt = &at, nil
	if fromVerification {
		r.DueAt = DueAt(at)
	}
	return nil
}

// Expire ends a request whose requester never verified.
func (r *Request) Expire(now time.Time) error {
	if r.State != StateAwaitingVerification {
		return fmt.Errorf("only a request awaiting verification expires; this one is %s", r.State)
	}
	_, err := r.Advance(StageIdentity, StateExpired, now.UTC(), 0, "not verified in time")
	return err
}

// Delivery records the export's way to the person: when the email with the
// portal link went out (or why it did not), and the downloads she made
// after proving the address again. No identifier: the email went to the
// subject's address.
type Delivery struct {
	NotifiedAt *time.Time `json:"notifiedAt,omitempty"`
	// Attempts counts failed sends of the email; Error is the last reason.
	Attempts int    `json:"attempts,omitempty"`
	Error    string `json:"error,omitempty"`
	// LinkExpiresAt is when the email's link stops working.
	LinkExpiresAt  *time.Time `json:"linkExpiresAt,omitempty"`
	Downloads      int        `json:"downloads,omitempty"`
	LastDownloadAt *time.Time `json:"lastDownloadAt,omitempty"`
}

// Notification states.
const (
	NotificationSent    = "sent"
	NotificationPending = "pending"
	NotificationFailed  = "failed"
)

// Notification is the notice to one recipient: its state, the attempts so
// far, when it was sent (or last tried), and why the last attempt failed
// (never personal data).
type Notification struct {
	Recipient string     `json:"recipient"`
	Status    string     `json:"status"`
	Attempts  int        `json:"attempts"`
	At        *time.Time `json:"at,omitempty"`
	Error     string     `json:"error,omitempty"`
}

// NeedsFollowUp reports whether a person must finish what the pipeline
// could not: a source that failed its part, a recipient not told, an
// export email that did not leave.
func (r *Request) NeedsFollowUp() bool {
	if r.FollowUp || len(r.FailedSources) > 0 {
		return true
	}
	if t := r.Transmission; t != nil && t.Status != TransmissionSent {
		return true
	}
	for _, n := range r.Notifications {
		if n.Status == NotificationFailed {
			return true
		}
	}
	return r.Delivery != nil && r.Delivery.NotifiedAt == nil && r.Delivery.Error != ""
}
