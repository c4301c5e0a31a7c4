package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/dsr-functions/dsr/shared/audit"
	"github.com/dsr-functions/dsr/shared/blobs"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/queue"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/store"
	"github.com/dsr-functions/dsr/shared/tombstone"
)

// In-memory implementations of the pipeline's ports, with the semantics
// the pipeline relies on: ETag-conditional updates, create-only
// idempotency keys, an append-only trail, packages committed whole,
// messages recorded with their ids and schedule.

type memRequests struct {
	mu          sync.Mutex
	docs        map[string][]byte
	etags       map[string]int
	idem        map[string][2]string // key → id, fingerprint
	discoveries map[string][]byte
	restrict    map[string]store.Restriction
	subjects    map[string][]store.SubjectRequest
	// subjectsDown makes the subject registry fail.
	subjectsDown bool
	// beforeWrite, when set, runs before each conditional write of Update
	// (a test makes a concurrent writer win the race there).
	beforeWrite func(id string)
}

func newMemRequests() *memRequests {
	return &memRequests{docs: map[string][]byte{}, etags: map[string]int{}, idem: map[string][2]string{},
		discoveries: map[string][]byte{}, restrict: map[string]store.Restriction{},
		subjects: map[string][]store.SubjectRequest{}}
}

func (m *memRequests) Create(_ context.Context, st *dsr.Stored, key, fp string) (*dsr.Stored, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if key != "" {
		if c, ok := m.idem[key]; ok {
			if c[1] != fp {
				return nil, false, store.ErrIdempotencyMismatch
			}
			var old dsr.Stored
			_ = json.Unmarshal(m.docs[c[0]], &old)
			return &old, false, nil
		}
		m.idem[key] = [2]string{st.ID, fp}
	}
	b, _ := json.Marshal(st)
	m.docs[st.ID], m.etags[st.ID] = b, 1
	return st, true, nil
}

func (m *memRequests) Get(_ context.Context, id string) (*dsr.Stored, azcore.ETag, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.docs[id]
	if !ok {
		return nil, "", store.ErrNotFound
	}
	var st dsr.Stored
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, "", err
	}
	return &st, azcore.ETag(fmt.Sprint(m.etags[id])), nil
}

func (m *memRequests) Update(ctx context.Context, id string, fn func(*dsr.Stored) (bool, error)) (*dsr.Stored, error) {
	for range 8 {
		st, etag, err := m.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		changed, err := fn(st)
		if err != nil {
			return nil, err
		}
		if !changed {
			return st, nil
		}
		if m.beforeWrite != nil {
			m.beforeWrite(id)
		}
		m.mu.Lock()
		if fmt.Sprint(m.etags[id]) != string(etag) {
			m.mu.Unlock()
			continue // lost the race: read again
		}
		b, _ := json.Marshal(st)
		m.docs[id] = b
		m.etags[id]++
		m.mu.Unlock()
		return st, nil
	}
	return nil, errors.New("memRequests: too many conflicts")
}

func (m *memRequests) List(_ context.Context, f store.Filter, limit int, _ string) ([]store.Summary, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.Summary
	for _, id := range slices.Sorted(maps.Keys(m.docs)) {
		var st dsr.Stored
		_ = json.Unmarshal(m.docs[id], &st)
		if f.Matches(&st) && len(out) < limit {
			out = append(out, store.SummaryOf(&st))
		}
	}
	return out, "", nil
}

func (m *memRequests) PutDiscovery(_ context.Context, id string, v any) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := json.Marshal(v)
	m.discoveries[id] = b
	return err
}

func (m *memRequests) GetDiscovery(_ context.Context, id string, v any) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.discoveries[id]
	if !ok {
		return store.ErrNotFound
	}
	return json.Unmarshal(b, v)
}

func (m *memRequests) PutRestriction(_ context.Context, hash string, r store.Restriction) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.restrict[hash] = r
	return nil
}

func (m *memRequests) GetRestriction(_ context.Context, hash string) (*store.Restriction, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.restrict[hash]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &r, nil
}

func (m *memRequests) AddSubjectRequest(_ context.Context, hash string, r store.SubjectRequest) ([]store.SubjectRequest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.subjectsDown {
		return nil, errors.New("subject registry down")
	}
	if !slices.ContainsFunc(m.subjects[hash], func(x store.SubjectRequest) bool { return x.RequestID == r.RequestID }) {
		m.subjects[hash] = append(m.subjects[hash], r)
	}
	return slices.Clone(m.subjects[hash]), nil
}

func (m *memRequests) Ping(context.Context) error { return nil }

// history is a request's stages and states, in order.
func (m *memRequests) history(t *testing.T, id string) []string {
	t.Helper()
	st, _, err := m.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, h := range st.History {
		out = append(out, string(h.Stage)+"/"+string(h.State))
	}
	return out
}

type memAudit struct {
	mu      sync.Mutex
	entries []audit.Entry
}

func (a *memAudit) Append(_ context.Context, entries ...audit.Entry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append(a.entries, entries...)
	return nil
}

func (a *memAudit) ForRequest(_ context.Context, id string) ([]audit.Entry, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []audit.Entry
	seen := map[string]bool{}
	for _, e := range a.entries {
		if e.RequestID == id && !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, e)
		}
	}
	return out, nil
}

type memPackages struct {
	mu    sync.Mutex
	blobs map[string][]byte
	puts  int
}

func (p *memPackages) Put(_ context.Context, name, _ string, r io.Reader, _ map[string]string) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err // never committed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blobs[name] = b
	p.puts++
	return nil
}

func (p *memPackages) Link(_ context.Context, name, _ string, ttl time.Duration, now time.Time) (blobs.ReadLink, error) {
	return blobs.ReadLink{URL: "memory://" + name, ExpiresAt: now.Add(ttl)}, nil
}

func (p *memPackages) Open(_ context.Context, name string) (io.ReadCloser, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.blobs[name]
	if !ok {
		return nil, fmt.Errorf("package %s not found", name)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (p *memPackages) Delete(_ context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.blobs, name)
	return nil
}

type memTombstones struct {
	mu    sync.Mutex
	byID  map[tombstone.Identifier][]*tombstone.Tombstone
	order []*tombstone.Tombstone
}

func (m *memTombstones) Put(_ context.Context, t *tombstone.Tombstone) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range t.Identifiers() {
		m.byID[id] = append(slices.DeleteFunc(m.byID[id], func(x *tombstone.Tombstone) bool { return x.RequestID == t.RequestID }), t)
	}
	m.order = append(slices.DeleteFunc(m.order, func(x *tombstone.Tombstone) bool { return x.RequestID == t.RequestID }), t)
	return nil
}

func (m *memTombstones) Find(_ context.Context, ids []tombstone.Identifier) ([]*tombstone.Tombstone, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*tombstone.Tombstone
	for _, id := range ids {
		for _, t := range m.byID[id] {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out, nil
}

func (m *memTombstones) List(_ context.Context, after string, limit int) ([]*tombstone.Tombstone, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*tombstone.Tombstone
	for _, t := range m.order {
		if t.RequestID > after && len(out) < limit {
			out = append(out, t)
		}
	}
	return out, "", nil
}

// memSender records every message, as Service Bus would hold it: a
// MessageId sent again within the duplicate detection window is dropped.
// failNext makes the next sends fail (a crash between save and send).
type memSender struct {
	mu       sync.Mutex
	queued   []queue.Message
	queues   []string
	seen     map[string]bool
	sent     int
	failNext int
}

func (q *memSender) Send(_ context.Context, queueName string, m queue.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failNext > 0 {
		q.failNext--
		return errors.New("memSender: the broker is unreachable")
	}
	q.sent++
	if q.seen[m.ID] {
		return nil
	}
	q.seen[m.ID] = true
	q.queued, q.queues = append(q.queued, m), append(q.queues, queueName)
	return nil
}

// take removes and returns the next message due at now, and its queue.
func (q *memSender) take(now time.Time) (queue.Message, string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, m := range q.queued {
		if m.ScheduledAt.IsZero() || !m.ScheduledAt.After(now) {
			name := q.queues[i]
			q.queued = slices.Delete(q.queued, i, i+1)
			q.queues = slices.Delete(q.queues, i, i+1)
			return m, name, true
		}
	}
	return queue.Message{}, "", false
}

// memConnector holds datasets in memory: "contacts" (email, id) and
// "orders" (related to contacts by contact id, with a free-text note). It
// discovers with sources.Rules, reads and rewrites conditionally on a
// version per dataset, and can answer "later" (ErrPending) a number of
// times.
type memConnector struct {
	mu      sync.Mutex
	cfg     *sources.Config
	data    map[string][]map[string]any
	version map[string]int
	pending int
	// discoveries counts Discover calls.
	discoveries int
	// commits are the plan ids each dataset's commits named
	// (sources.PlannedRewriter); afterCommit, when set, runs right after a
	// commit (a test crashes there, or loses the answer).
	commits     map[string][]string
	afterCommit func(dataset string) error
	// failRewrite fails a dataset's rewrites; failDiscover fails Discover.
	failRewrite  map[string]error
	failDiscover error
	// entered counts Discover calls begun; gate, when set, holds each
	// call until it is closed (a long pass).
	entered int
	gate    chan struct{}
}

// RewritePlanned is Rewrite with plan: BeforeCommit runs before the data
// changes, and the commit is named.
func (c *memConnector) RewritePlanned(ctx context.Context, dataset string, loc sources.Location, edit sources.Edit, plan sources.CommitPlan) (sources.RewriteResult, error) {
	return c.rewrite(ctx, dataset, loc, edit, plan)
}

// Committed reports whether a commit named planID.
func (c *memConnector) Committed(_ context.Context, dataset, _ string, plan sources.PlanRef) (bool, string, error) {
	planID := plan.ID
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.commits[dataset], planID), fmt.Sprint(c.version[dataset]), nil
}

func (c *memConnector) Discover(ctx context.Context, subj sources.Subject) (*sources.Discovery, error) {
	c.mu.Lock()
	c.entered++
	gate := c.gate
	c.mu.Unlock()
	if gate != nil {
		<-gate
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.discoveries++
	if c.failDiscover != nil {
		return nil, c.failDiscover
	}
	if c.pending > 0 {
		c.pending--
		return nil, fmt.Errorf("memory system: %w", sources.ErrPending)
	}
	keys := map[string]map[string]bool{} // "dataset.field" → values
	for ds, fields := range c.cfg.SeedKeys(subj) {
		for f, vals := range fields {
			for _, v := range vals {
				if keys[ds+"."+f] == nil {
					keys[ds+"."+f] = map[string]bool{}
				}
				keys[ds+"."+f][v] = true
			}
		}
	}
	out := &sources.Discovery{}
	for changed := true; changed; {
		changed = false
		out = &sources.Discovery{}
		for _, d := range c.cfg.Datasets {
			rules := &sources.Rules{Identifiers: d.Identifiers, FreeText: d.FreeText, Subject: subj}
			for _, r := range d.Relations {
				rules.RelationFields = append(rules.RelationFields, r.Field)
			}
			rules.Related = func(i int, v string) bool {
				r := d.Relations[i]
				return keys[r.References+"."+r.ReferencesField][v]
			}
			dm := sources.DatasetMatches{Dataset: d.Name}
			loc := sources.Location{Blob: d.Name, ETag: fmt.Sprint(c.version[d.Name])}
			for i, rec := range c.data[d.Name] {
				how := rules.Match(sources.MapFields(rec))
				if how == sources.NoMatch {
					continue
				}
				loc.Ordinals = append(loc.Ordinals, int64(i))
				if how == sources.Mentioned {
					loc.Mentions = append(loc.Mentions, int64(i))
					continue
				}
				for _, f := range c.cfg.ReferencedFields(d.Name) {
					v := fmt.Sprint(rec[f])
					if keys[d.Name+"."+f] == nil {
						keys[d.Name+"."+f] = map[string]bool{}
					}
					if !keys[d.Name+"."+f][v] {
						keys[d.Name+"."+f][v] = true
						changed = true
					}
				}
			}
			if len(loc.Ordinals) > 0 {
				dm.Records = int64(len(loc.Ordinals))
				dm.Locations = []sources.Location{loc}
			}
			out.Datasets = append(out.Datasets, dm)
		}
	}
	return out, nil
}

func record(m map[string]any) sources.Record {
	var r sources.Record
	for _, k := range slices.Sorted(maps.Keys(m)) {
		r.Fields = append(r.Fields, sources.Field{Name: k, Value: m[k]})
	}
	return r
}

func (c *memConnector) Read(_ context.Context, dm sources.DatasetMatches, emit func(sources.Record) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, loc := range dm.Locations {
		if loc.ETag != fmt.Sprint(c.version[dm.Dataset]) {
			return sources.ErrChanged
		}
		for _, o := range loc.Ordinals {
			if err := emit(record(c.data[dm.Dataset][o])); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *memConnector) Rewrite(ctx context.Context, dataset string, loc sources.Location, edit sources.Edit) (sources.RewriteResult, error) {
	return c.rewrite(ctx, dataset, loc, edit, sources.CommitPlan{})
}

func (c *memConnector) rewrite(_ context.Context, dataset string, loc sources.Location, edit sources.Edit, plan sources.CommitPlan) (sources.RewriteResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.failRewrite[dataset]; err != nil {
		return sources.RewriteResult{}, err
	}
	if loc.ETag != fmt.Sprint(c.version[dataset]) {
		return sources.RewriteResult{}, sources.ErrChanged
	}
	var res sources.RewriteResult
	next := slices.Clone(c.data[dataset])
	var deleted []int64
	for _, o := range loc.Ordinals {
		rec, err := edit(o, record(c.data[dataset][o]))
		if err != nil {
			return sources.RewriteResult{}, err
		}
		if rec == nil {
			deleted = append(deleted, o)
			res.Deleted++
			continue
		}
		m := map[string]any{}
		for _, f := range rec.Fields {
			m[f.Name] = f.Value
		}
		next[o] = m
		res.Replaced++
	}
	slices.Sort(deleted)
	for i := len(deleted) - 1; i >= 0; i-- {
		next = slices.Delete(next, int(deleted[i]), int(deleted[i])+1)
	}
	if plan.BeforeCommit != nil {
		if err := plan.BeforeCommit(res); err != nil {
			return sources.RewriteResult{}, err
		}
	}
	c.data[dataset] = next
	c.version[dataset]++
	if plan.ID != "" {
		if c.commits == nil {
			c.commits = map[string][]string{}
		}
		c.commits[dataset] = append(c.commits[dataset], plan.ID)
	}
	res.ETag = fmt.Sprint(c.version[dataset])
	if c.afterCommit != nil {
		if err := c.afterCommit(dataset); err != nil {
			return sources.RewriteResult{}, err
		}
	}
	return res, nil
}

var testFacts = sources.Facts{Categories: []string{"contact details"}, Purposes: []string{"service"}, Retention: "1 year", Source: "you"}

// world is a pipeline over in-memory ports and a clock the test moves.
type world struct {
	t     *testing.T
	svc   *Service
	reqs  *memRequests
	sent  *memSender
	conn  *memConnector
	pkgs  *memPackages
	audit *memAudit
	now   time.Time
	logs  *bytes.Buffer
}

func newWorld(t *testing.T) *world {
	t.Helper()
	cfg := &sources.Config{Version: 1, Datasets: []sources.Dataset{
		{Name: "contacts", Key: "id", Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}, {Field: "id", Kind: sources.KindID, IDName: "contactId"}}, Facts: testFacts},
		{Name: "orders", Key: "order", FreeText: []string{"note"}, Facts: testFacts,
			Relations: []sources.Relation{{Field: "contact", References: "contacts", ReferencesField: "id"}},
			Erasure:   &sources.Erasure{Action: sources.EraseMask, Mask: []sources.MaskRule{{Field: "address", Strategy: sources.MaskRedact}}}},
	}}
	w := &world{t: t, reqs: newMemRequests(), sent: &memSender{seen: map[string]bool{}}, pkgs: &memPackages{blobs: map[string][]byte{}},
		audit: &memAudit{}, now: time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC), logs: &bytes.Buffer{}}
	w.conn = &memConnector{cfg: cfg, version: map[string]int{}, data: map[string][]map[string]any{
		"contacts": {
			{"id": "C1", "email": "ann@x.example", "name": "Ann"},
			{"id": "C2", "email": "bob@y.example", "name": "Bob"},
		},
		"orders": {
			{"order": "O1", "contact": "C1", "address": "1 Main St", "note": ""},
			{"order": "O2", "contact": "C2", "address": "2 High St", "note": "Bob asked to copy ann@x.example"},
			{"order": "O3", "contact": "C2", "address": "3 Low St", "note": ""},
		},
	}}
	w.svc = &Service{
		Store: w.reqs, Sender: w.sent, Audit: w.audit, Connector: w.conn, Sources: cfg, Packages: w.pkgs,
		Tombstones: &memTombstones{byID: map[tombstone.Identifier][]*tombstone.Tombstone{}},
		LinkTTL:    time.Hour, Secret: []byte("pipeline-test-secret-0123456789"),
		ApprovalTypes: map[dsr.Type]bool{dsr.TypeErasure: true, dsr.TypeRectification: true},
		Queues:        Queues{Discover: "dsr-discover", Export: "dsr-export", Erase: "dsr-erase", Verify: "dsr-verify", Intake: "dsr-intake", IntakeRejected: "dsr-intake-rejected"},
		Log:           slog.New(slog.NewJSONHandler(w.logs, nil)),
		Now:           func() time.Time { return w.now },
	}
	return w
}

// submit creates a request as the API does.
func (w *world) submit(body string) string {
	w.t.Helper()
	sub, err := dsr.ParseSubmission([]byte(body), "", w.now)
	if err != nil {
		w.t.Fatal(err)
	}
	st, _, err := w.svc.Submit(context.Background(), sub, "", "http", "test", dsr.Actor{Kind: "test"})
	if err != nil {
		w.t.Fatal(err)
	}
	return st.ID
}

// deliver runs the next due message through the stage its queue runs, as
// a queue function does, times times (a redelivery); it reports whether
// there was one.
func (w *world) deliver(times int) (StageMessage, bool) {
	w.t.Helper()
	m, q, ok := w.sent.take(w.now)
	if !ok {
		return StageMessage{}, false
	}
	sm, err := ParseStageMessage(m.Body)
	if err != nil {
		w.t.Fatal(err)
	}
	if r, ok := w.svc.Runners()[sm.Stage]; !ok || r.Queue != q {
		w.t.Fatalf("message for %s on queue %s", sm.Stage, q)
	}
	for attempt := 1; attempt <= times; attempt++ {
		if err := w.svc.RunStage(context.Background(), sm, attempt); err != nil {
			w.t.Fatalf("%s of %s (attempt %d): %v\n%s", sm.Stage, sm.RequestID, attempt, err, w.logs)
		}
	}
	return sm, true
}

// drain delivers messages until none is due.
func (w *world) drain(times int) []dsr.Stage {
	w.t.Helper()
	var stages []dsr.Stage
	for range 100 {
		sm, ok := w.deliver(times)
		if !ok {
			return stages
		}
		stages = append(stages, sm.Stage)
	}
	w.t.Fatal("messages never stop")
	return nil
}

func (w *world) get(id string) *dsr.Stored {
	w.t.Helper()
	st, _, err := w.reqs.Get(context.Background(), id)
	if err != nil {
		w.t.Fatal(err)
	}
	return st
}

// routeOf is a type's route as "stage/state" entries, with the approval
// step when it is taken.
func routeOf(t dsr.Type, approval bool) []string {
	var out []string
	for _, s := range dsr.Routes[t] {
		if s.Optional && (!approval || s.Stage != dsr.StageApproval) {
			continue
		}
		out = append(out, string(s.Stage)+"/"+string(s.State))
	}
	return out
}
