package sources

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
)

// ErrChanged reports that a dataset changed between discovery and a later
// stage; the caller must discover again rather than act on stale positions.
var ErrChanged = errors.New("dataset changed since discovery")

// Field is one named value of a record, in the order the source holds it.
// Value is a JSON-compatible value: string, float64/json.Number, bool, nil,
// []any or map[string]any.
type Field struct {
	Name  string
	Value any
}

// Record is one record of a dataset that belongs to the subject.
type Record struct {
	// Fields in source order.
	Fields []Field
}

// MarshalJSON writes the record as a JSON object with its fields in source order.
func (r Record) MarshalJSON() ([]byte, error) {
	buf := []byte{'{'}
	for i, f := range r.Fields {
		if i > 0 {
			buf = append(buf, ',')
		}
		k, err := json.Marshal(f.Name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(f.Value)
		if err != nil {
			return nil, err
		}
		buf = append(buf, k...)
		buf = append(buf, ':')
		buf = append(buf, v...)
	}
	return append(buf, '}'), nil
}

// Subject holds a data subject's identifiers, already normalised: emails
// lower-case and trimmed, phones as E.164 digits without '+', ids by name.
type Subject struct {
	Emails []string
	Phones []string
	IDs    map[string]string
	// Keys are keys of the subject's own records that discovery knows
	// before it reads anything, by dataset and field: the keys an earlier
	// erasure deleted while other records (retained, masked) still
	// reference them, which the erasure's tombstone gives back. Discovery
	// follows relations from them as from the keys of matched records.
	Keys map[string]map[string][]string
}

// SeedKeys are the keys of the subject's own records that relations are
// followed from before any record is read: subject.Keys, and every id the
// subject gave, as the value of each id field that carries it (a case
// whose customerid is her contact id is hers, even when her contact row is
// gone). By dataset name, then field.
func (c *Config) SeedKeys(s Subject) map[string]map[string][]string {
	ids := make(map[string][]Identifier, len(c.Datasets))
	for _, d := range c.Datasets {
		ids[d.Name] = d.Identifiers
	}
	return Seeds(s, ids)
}

// Seeds is SeedKeys for connectors with a config of their own: ids are
// each dataset's identifiers, by dataset name.
func Seeds(s Subject, ids map[string][]Identifier) map[string]map[string][]string {
	out := map[string]map[string][]string{}
	add := func(dataset, field, v string) {
		v = strings.TrimSpace(v)
		if v == "" {
			return
		}
		if out[dataset] == nil {
			out[dataset] = map[string][]string{}
		}
		if !slices.Contains(out[dataset][field], v) {
			out[dataset][field] = append(out[dataset][field], v)
		}
	}
	for name, list := range ids {
		for _, id := range list {
			if id.Kind != KindID {
				continue
			}
			if v, ok := s.IDs[id.IDNameOrField()]; ok {
				add(name, id.Field, v)
			}
		}
	}
	for ds, fields := range s.Keys {
		for f, vals := range fields {
			for _, v := range vals {
				add(ds, f, v)
			}
		}
	}
	return out
}

// Location is where the subject's records sit in one blob (or table), pinned
// to the version that discovery read.
type Location struct {
	// Blob (or table) name inside the dataset.
	Blob string `json:"blob"`
	// ETag of the version discovery read; reading for export is conditional on it.
	ETag string `json:"etag"`
	// Ordinals are the 0-based positions of the matched records in the blob
	// (for PostgreSQL: the integer primary keys).
	Ordinals []int64 `json:"ordinals"`
	// Keys name the matched records of sources whose records have string
	// keys (Dataverse GUIDs, a webhook system's ids), instead of Ordinals.
	// An Edit on such a location receives the index into Keys as its ordinal.
	Keys []string `json:"keys,omitempty"`
	// Offsets are the byte offsets in the blob of the matched records,
	// parallel to Ordinals, so that a read can fetch those records alone.
	// They are positions, never data. Optional: absent in discoveries
	// stored before they existed and for sources without byte positions;
	// a read without them finds the records by Ordinals.
	Offsets []int64 `json:"offsets,omitempty"`
	// Lengths are the byte lengths of the matched records, parallel to
	// Offsets (positions, never data; optional like Offsets).
	Lengths []int64 `json:"lengths,omitempty"`
	// Mentions are the records, by the ordinal an Edit receives (an
	// Ordinals value, or an index into Keys), that only mention the subject
	// in free text: hers to disclose, with the mention masked on erasure,
	// but not hers to delete. Positions, never data; sorted.
	Mentions []int64 `json:"mentions,omitempty"`
}

// Mentioned reports whether the record with the given ordinal (as an Edit
// receives it) only mentions the subject (see Mentions).
func (l *Location) Mentioned(ordinal int64) bool {
	_, ok := slices.BinarySearch(l.Mentions, ordinal)
	return ok
}

// DatasetMatches is what discovery found in one dataset. It holds positions,
// never personal data, so it may be stored beside the request.
type DatasetMatches struct {
	Dataset   string     `json:"dataset"`
	Records   int64      `json:"records"`
	Locations []Location `json:"locations,omitempty"`
	// Error, when set, says why the dataset's system could not be searched
	// (never personal data); Records and Locations are then empty. The rest
	// of the discovery stands: one failing system does not lose the others.
	Error string `json:"error,omitempty"`
	// Permanent marks an Error that retrying cannot cure (a DataError): the
	// dataset's part fails at once instead of after every retry.
	Permanent bool `json:"permanent,omitempty"`
}

// DataError is a dataset whose data cannot be read as configured: a blob
// that is missing, a record that cannot be parsed, a line over the size
// limit. Retrying changes nothing, so the dataset's part of a request fails
// on the first attempt with Reason (a position such as "blob b record 12",
// never content), and the other datasets go on.
type DataError struct {
	Dataset string
	Reason  string
}

func (e *DataError) Error() string { return "dataset " + e.Dataset + ": " + e.Reason }

// Discovery is the full result of discovery over every dataset.
type Discovery struct {
	Datasets []DatasetMatches `json:"datasets"`
}

// Failed lists the datasets whose systems could not be searched.
func (d *Discovery) Failed() []DatasetMatches {
	var out []DatasetMatches
	for _, m := range d.Datasets {
		if m.Error != "" {
			out = append(out, m)
		}
	}
	return out
}

// Total is the number of matched records over all datasets.
func (d *Discovery) Total() int64 {
	var n int64
	for _, m := range d.Datasets {
		n += m.Records
	}
	return n
}

// Connector finds and reads a subject's records in one kind of store.
type Connector interface {
	// Discover finds every record of the subject in every dataset, following relations.
	Discover(ctx context.Context, subject Subject) (*Discovery, error)
	// Read streams the records that discovery found in one dataset, calling
	// emit once per record in blob order. It fails with ErrChanged if the
	// data changed since discovery.
	Read(ctx context.Context, matches DatasetMatches, emit func(Record) error) error
}

// Edit decides what happens to one discovered record during a rewrite:
// (nil, nil) deletes it, (&rec, nil) replaces it, an error aborts the
// rewrite without changing anything.
type Edit func(ordinal int64, rec Record) (*Record, error)

// RewriteResult says what a rewrite changed in one blob (or table).
type RewriteResult struct {
	ETag     string
	Deleted  int
	Replaced int
	// Commit is how a system that cannot keep a plan's ID with the data
	// names the commit it is about to make (a PostgreSQL transaction id),
	// set in what BeforeCommit receives; the caller keeps it with the plan
	// and hands it back to Committed. Empty for blobs, which carry the ID.
	Commit string
}

// Rewriter changes a subject's records in place: conditionally on the
// version discovery saw (ErrChanged otherwise), atomically, leaving every
// other record as it was. A system that changes record by record
// (Dataverse) cannot be atomic: it must let a retry skip records an
// earlier attempt already deleted, so it edits the records that are still
// there and never brings back one that is gone. sourcestest checks both.
type Rewriter interface {
	Rewrite(ctx context.Context, dataset string, loc Location, edit Edit) (RewriteResult, error)
}

// CommitPlan lets a rewrite's caller learn what the rewrite will change
// before it commits, and tell afterwards whether the commit happened: the
// pipeline writes the plan down durably in BeforeCommit, so that a crash
// right after the commit cannot lose what it did (the retry finds nothing
// left to change and would report nothing).
type CommitPlan struct {
	// ID names this rewrite; the version it commits carries it (a blob's
	// metadata), and versions committed later keep the last few, so
	// Committed can tell even after another writer.
	ID string
	// BeforeCommit runs once every record is decided and the new content is
	// ready, just before the commit, with what the commit will change (no
	// ETag yet). An error aborts the rewrite: nothing is committed.
	BeforeCommit func(planned RewriteResult) error
}

// PlannedRewriter is a Rewriter that can run a CommitPlan. A rewriter
// without it commits as Rewrite does, and its caller records what it did
// only afterwards.
type PlannedRewriter interface {
	Rewriter
	// RewritePlanned is Rewrite with plan; it calls plan.BeforeCommit
	// unless there is nothing to commit (no records at loc), or the part
	// of a dataset cannot plan (then it rewrites as Rewrite does).
	RewritePlanned(ctx context.Context, dataset string, loc Location, edit Edit, plan CommitPlan) (RewriteResult, error)
	// Committed reports whether the planned rewrite of blob committed (for
	// a blob: its current version, or one after it, names plan.ID) and the
	// blob's current ETag ("" when it is gone or the system has none). An
	// error means it cannot tell yet (the commit may still be under way).
	Committed(ctx context.Context, dataset, blob string, plan PlanRef) (committed bool, etag string, err error)
}

// PlanRef names a planned rewrite to Committed: its ID and the Commit the
// connector reported to BeforeCommit.
type PlanRef struct {
	ID     string
	Commit string
}

// Change is an erasure, rectification or restriction that a delegating
// system applies itself (see Delegator). It carries ids and the subject's
// identifiers, which the connector sends only to that system.
type Change struct {
	// Action is "erasure", "rectification", "restriction" or "lift-restriction".
	Action string
	// RequestID names the request; systems use it to make the change idempotent.
	RequestID string
	// Subject is the data subject.
	Subject Subject
	// Corrections are a rectification's new values by identifier kind
	// ("email", "phone", "name").
	Corrections map[string]string
}

// ChangeResult is what a delegating system reports it did.
type ChangeResult struct {
	Deleted  int64
	Masked   int64
	Retained int64
	Changed  int64
}

// Delegator is implemented by connectors whose systems apply erasure,
// rectification and restriction themselves (a webhook), instead of the
// pipeline rewriting records through a Rewriter. Apply must be idempotent
// per RequestID and Action: the pipeline may call it again after a crash.
type Delegator interface {
	// Delegates reports whether changes to the dataset go through Apply.
	Delegates(dataset string) bool
	// Apply asks the dataset's system to make the change and reports the result.
	Apply(ctx context.Context, dataset string, ch Change) (ChangeResult, error)
}

// ErrPending reports that a system accepted a call and will deliver the
// result later (an asynchronous webhook): the caller asks again after a
// while instead of counting it as a failure.
var ErrPending = errors.New("the system will deliver the result later")

type requestKey struct{}

type requestInfo struct {
	id      string
	subject Subject
}

// WithRequest returns ctx carrying the request that a Discover or Read
// serves: its id (systems use it for idempotency and callbacks) and its
// subject (a Read that must ask a system again needs it).
func WithRequest(ctx context.Context, requestID string, subject Subject) context.Context {
	return context.WithValue(ctx, requestKey{}, requestInfo{id: requestID, subject: subject})
}

// RequestFrom returns the request that ctx carries (see WithRequest).
func RequestFrom(ctx context.Context) (requestID string, subject Subject, ok bool) {
	info, ok := ctx.Value(requestKey{}).(requestInfo)
	return info.id, info.subject, ok && info.id != ""
}

// Progress is how far a discovery that waits for fanned-out scans has got.
type Progress struct {
	Shards    int   `json:"shards"`
	Done      int   `json:"done"`
	Bytes     int64 `json:"bytes"`
	DoneBytes int64 `json:"doneBytes"`
}

// ProgressReporter is implemented by a pending error that knows how far
// the work it waits for has got.
type ProgressReporter interface {
	DiscoveryProgress() Progress
}

// RetryHinter is implemented by a pending error that knows how soon asking
// again makes sense.
type RetryHinter interface {
	RetryAfter() time.Duration
}

// Waiter is the request behind one subject of a discovery: its id (to be
// woken when work it waits for completes) and when its stage began (work
// done before that is not its answer).
type Waiter struct {
	ID    string
	Since time.Time
}

type waitersKey struct{}

// WithWaiters returns ctx carrying the requests behind a DiscoverMany
// call's subjects, one per subject in order (a batch of requests).
func WithWaiters(ctx context.Context, ws []Waiter) context.Context {
	return context.WithValue(ctx, waitersKey{}, ws)
}

// WithSince returns ctx noting when the request's current stage began
// (see Waiter).
func WithSince(ctx context.Context, since time.Time) context.Context {
	return context.WithValue(ctx, sinceKey{}, since)
}

type sinceKey struct{}

// WaitersFrom returns the requests a discovery serves: those WithWaiters
// set, or else the one request WithRequest and WithSince describe.
func WaitersFrom(ctx context.Context) []Waiter {
	if ws, ok := ctx.Value(waitersKey{}).([]Waiter); ok {
		return ws
	}
	if w, ok := WaiterFrom(ctx); ok {
		return []Waiter{w}
	}
	return nil
}

// WaiterFrom returns the one request ctx carries (WithRequest, WithSince).
func WaiterFrom(ctx context.Context) (Waiter, bool) {
	id, _, ok := RequestFrom(ctx)
	since, _ := ctx.Value(sinceKey{}).(time.Time)
	return Waiter{ID: id, Since: since}, ok || !since.IsZero()
}
