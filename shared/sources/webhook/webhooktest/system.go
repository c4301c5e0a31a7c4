// Package webhooktest is a receiving system for the signed-webhook
// protocol (shared/sources/webhook/PROTOCOL.md), for tests of the webhook
// connector and of anything built on it.
//
// A System is an HTTP server that checks every request it receives the way
// a careful implementer would — signature and timestamp (webhook.Verify),
// that a tampered body or timestamp would not verify, headers
// (Content-Type, Accept, X-DSR-Request-Id, Idempotency-Key), the body's
// members (no unknown, null or misplaced ones), the subject's form (raw or
// hashed, normalised values) — failing the test (t.Errorf) and answering
// 400 (401 for a bad signature) when anything is off. It records every
// request (Requests).
//
// By default it behaves like a real system: it holds records per dataset
// (Put) and finds the subject's records by their email, phone and id
// fields, comparing normalised values, or in hashed mode their
// webhook.HashIdentifier hashes. Access answers 200 with the records,
// paged by Options.PageSize, or with Options.Async 202 and later signed
// callback POSTs of the result pages to the request's callbackUrl.
// Erasure deletes (or masks, or retains) the subject's records,
// rectification replaces the corrected email, phone and name values,
// restriction and lift-restriction set and clear a flag; each change is
// applied once per Idempotency-Key and a repeat is answered with the first
// result. Fail scripts failures (a status for N calls or forever);
// Options.Respond replaces the built-in behaviour with scripted answers.
//
// Usage:
//
//	sys := webhooktest.New(t, secret, webhooktest.Options{
//		Datasets: []webhooktest.Dataset{{Name: "contacts"}, {Name: "orders", Key: "orderNo"}},
//		PageSize: 2,
//	})
//	sys.Put("contacts", `{"id":"c1","name":"Ann Example","email":"Ann@Example.com","phone":"+1 415 555 0123"}`)
//	sys.Put("orders", `{"orderNo":"o-9","customerId":"C-1001","total":12.5}`)
//	cfg := &webhook.Config{Name: "crm", URL: sys.URL(), Secret: secret,
//		Datasets: []webhook.Dataset{{Name: "contacts"}, {Name: "orders", Key: "orderNo"}}}
//	// … run the code under test against cfg …
//	if _, ok := sys.Record("contacts", "c1"); ok { t.Error("contact c1 was not erased") }
//	for _, r := range sys.Requests() { t.Logf("%s %s → %d", r.Action, r.Datasets, r.Status) }
package webhooktest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/sources/webhook"
)

// DefaultPath is the path that receives every request unless
// Options.Path says otherwise.
const DefaultPath = "/dsr"

// Options configure a System.
type Options struct {
	// Datasets are the datasets the system holds. When empty (a scripted
	// system, see Respond), requests may name any dataset.
	Datasets []Dataset
	// Hashed makes the system expect hashed identifiers
	// (webhook.IdentifiersHashed): it matches its records by hashing their
	// normalised values with HashKey. Otherwise it expects raw ones.
	Hashed bool
	// HashKey is the identifier hash key, required with Hashed.
	HashKey []byte
	// PageSize is how many records one access page holds (all datasets
	// together); 0 means everything in one page.
	PageSize int
	// Async makes the system answer a first access page carrying a
	// callbackUrl with 202 and POST the result pages, signed, to that URL
	// (after CallbackDelay, or on Deliver with ManualCallbacks). A repeat
	// of the access while the delivery is pending is answered 202 again;
	// after it, 200 with the current records.
	Async bool
	// ManualCallbacks holds asynchronous results until Deliver is called.
	ManualCallbacks bool
	// CallbackDelay is how long an asynchronous result waits before it is
	// delivered (without ManualCallbacks).
	CallbackDelay time.Duration
	// CallbackPageSize is how many records one callback POST holds; 0
	// means PageSize (and everything in one POST when that is 0 too).
	CallbackPageSize int
	// CallbackReverse delivers the pages of a result last first.
	CallbackReverse bool
	// CallbackClient POSTs callbacks (default http.DefaultClient).
	CallbackClient *http.Client
	// MaxSkew is how far a request's signed timestamp may be from now
	// (default one minute: the connector signs with the current time).
	MaxSkew time.Duration
	// ExpectBadSignature is for a connector configured with another
	// secret: a request that does not verify is answered 401 without
	// failing the test, and one that verifies fails it.
	ExpectBadSignature bool
	// Respond, if set, answers every request that passed the checks (and
	// was not answered by a Failure) instead of the built-in behaviour. n
	// is the request's index in Requests.
	Respond func(n int, r Request, w http.ResponseWriter, req *http.Request)
	// Path receives every request (default DefaultPath).
	Path string
	// TLS serves https with a test certificate (see Client) instead of
	// http on the loopback interface, which the connector also accepts.
	TLS bool
}

// Dataset is a dataset the system holds, and where its records carry the
// identifiers it matches a subject by.
type Dataset struct {
	// Name is the dataset's name, as in the connector's config.
	Name string
	// Key is the record field holding the record's id (default "id").
	Key string
	// Emails are the fields holding email addresses (default "email");
	// they match trimmed and case-insensitively.
	Emails []string
	// Phones are the fields holding phone numbers (default "phone"): E.164
	// with '+', spaces, dots, hyphens and parentheses ignored.
	Phones []string
	// IDs maps a subject id name to the field holding it; an id name not
	// listed is looked for in the field of the same name. Ids match
	// trimmed, case-sensitively.
	IDs map[string]string
	// NameField is the field a "name" correction replaces (default "name").
	NameField string
	// Erasure is what erasure does to the subject's records: EraseDelete
	// (default), EraseMask or EraseRetain.
	Erasure string
}

// Erasure policies of a Dataset.
const (
	// EraseDelete deletes the records (counted as deleted).
	EraseDelete = "delete"
	// EraseMask sets every field but the key to null (counted as masked).
	EraseMask = "mask"
	// EraseRetain keeps the records, as under a legal ground (counted as retained).
	EraseRetain = "retain"
)

// Request is one request the system received.
type Request struct {
	// Header and Body are as received.
	Header http.Header
	Body   []byte
	// Verified tells whether the signature verified; an unverified request
	// was answered 401 and its other fields are empty.
	Verified bool
	// The body's members.
	Action      string
	RequestID   string
	Subject     Subject
	Datasets    []string
	Corrections map[string]string
	Cursor      string
	CallbackURL string
	// IdempotencyKey is the Idempotency-Key header.
	IdempotencyKey string
	// Status is the status answered: -1 when a Failure dropped the
	// connection, 0 while the request is being answered.
	Status int
	// Repeat is true for a change whose Idempotency-Key had been applied
	// before: it was answered with the first result and changed nothing.
	Repeat bool
}

// Subject is a request's subject: the raw identifiers, or in hashed mode
// their hashes.
type Subject struct {
	// Emails, Phones and IDs are the raw identifiers (raw mode).
	Emails []string
	Phones []string
	IDs    map[string]string
	// EmailHashes, PhoneHashes and IDHashes are their hashes (hashed mode).
	EmailHashes []string
	PhoneHashes []string
	IDHashes    map[string]string
}

// Result is the answer to a change.
type Result struct {
	// Deleted, Masked, Retained and Changed count the records concerned.
	Deleted  int64 `json:"deleted"`
	Masked   int64 `json:"masked"`
	Retained int64 `json:"retained"`
	Changed  int64 `json:"changed"`
}

// Change is a change the system applied (once per Idempotency-Key).
type Change struct {
	// Action, RequestID, Dataset and Corrections are the request's.
	Action      string
	RequestID   string
	Dataset     string
	Corrections map[string]string
	// Result is what the system answered.
	Result Result
}

// Failure scripts answers to matching requests. It applies to requests
// that passed the checks, before anything else.
type Failure struct {
	// Action matches the request's action; "" matches any.
	Action string
	// Dataset matches requests naming this dataset; "" matches any.
	Dataset string
	// Status is the answer's status (e.g. 503, 429, 400, or 202 for a
	// change that is "not done yet"); -1 drops the connection instead.
	Status int
	// Header holds the answer's headers (e.g. Retry-After).
	Header map[string]string
	// Body is the answer's body.
	Body string
	// Times is how many matching requests the failure answers; < 0 means
	// every one.
	Times int
	// AfterApply, for a change, applies it first (once per
	// Idempotency-Key, as usual) and then answers with the failure, as if
	// the answer were lost on the way.
	AfterApply bool
}

// System is a receiving system. Its methods are safe for concurrent use.
type System struct {
	t      testing.TB
	srv    *httptest.Server
	secret []byte
	opts   Options
	path   string
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	datasets   map[string]*dataset
	order      []string
	reqs       []Request
	failures   []*Failure
	applied    map[string]Result // by Idempotency-Key
	changes    []Change
	cursors    map[string]cursorState
	cursorSeq  int
	jobs       map[string]*job
	jobOrder   []string
	deliveries []Delivery
	inflight   int // automatic deliveries running
	idle       *sync.Cond
}

// New starts a System verifying with secret (closed, and its pending
// deliveries abandoned, when the test ends).
func New(t testing.TB, secret []byte, opts Options) *System {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &System{t: t, secret: secret, opts: opts, path: opts.Path, ctx: ctx, cancel: cancel,
		datasets: map[string]*dataset{}, applied: map[string]Result{}, cursors: map[string]cursorState{}, jobs: map[string]*job{}}
	s.idle = sync.NewCond(&s.mu)
	if s.path == "" {
		s.path = DefaultPath
	}
	if s.opts.MaxSkew == 0 {
		s.opts.MaxSkew = time.Minute
	}
	if opts.Hashed && len(opts.HashKey) == 0 {
		t.Fatalf("webhooktest: Options.Hashed needs a HashKey")
	}
	for _, d := range opts.Datasets {
		if _, dup := s.datasets[d.Name]; dup || d.Name == "" {
			t.Fatalf("webhooktest: dataset name %q empty or repeated", d.Name)
		}
		s.datasets[d.Name] = newDataset(d)
		s.order = append(s.order, d.Name)
	}
	h := http.HandlerFunc(s.serve)
	if opts.TLS {
		s.srv = httptest.NewTLSServer(h)
	} else {
		s.srv = httptest.NewServer(h)
	}
	t.Cleanup(func() {
		s.cancel()
		s.Wait()
		s.srv.Close()
	})
	return s
}

// URL is where the system receives requests: the connector's Config.URL.
func (s *System) URL() string { return s.srv.URL + s.path }

// Client returns an HTTP client that trusts the system's certificate
// (with Options.TLS; any client reaches a plain-http system).
func (s *System) Client() *http.Client { return s.srv.Client() }

// Close shuts the server down: later requests fail to connect.
func (s *System) Close() { s.srv.Close() }

// Requests returns every request received so far, in order.
func (s *System) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// Changes returns the changes applied so far, in order (repeats of an
// Idempotency-Key are not listed again).
func (s *System) Changes() []Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.changes)
}

// Fail adds a scripted failure; failures are tried in the order added and
// the first matching one with Times left answers.
func (s *System) Fail(f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, &f)
}

// ClearFailures removes every scripted failure.
func (s *System) ClearFailures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = nil
}

// wireRequest is the request body, decoded strictly.
type wireRequest struct {
	Action      string            `json:"action"`
	RequestID   string            `json:"requestId"`
	Subject     json.RawMessage   `json:"subject"`
	Datasets    []string          `json:"datasets"`
	Corrections map[string]string `json:"corrections"`
	Cursor      string            `json:"cursor"`
	CallbackURL string            `json:"callbackUrl"`
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *System) serve(rw http.ResponseWriter, r *http.Request) {
	t := s.t
	w := &statusWriter{ResponseWriter: rw}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Errorf("webhooktest: read body: %v", err)
		return
	}
	rec := Request{Header: r.Header.Clone(), Body: body}
	if err := webhook.Verify(s.secret, r.Header, body, time.Now(), s.opts.MaxSkew); err != nil {
		if !s.opts.ExpectBadSignature {
			t.Errorf("webhooktest: Verify: %v", err)
		}
		s.mu.Lock()
		rec.Status = http.StatusUnauthorized
		s.reqs = append(s.reqs, rec)
		s.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	rec.Verified = true
	if s.opts.ExpectBadSignature {
		t.Errorf("webhooktest: a request verified although the connector's secret is expected to be wrong")
	}
	problems := s.check(r, body, &rec)
	s.mu.Lock()
	n := len(s.reqs)
	s.reqs = append(s.reqs, rec)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.reqs[n].Status = w.status
		if w.status == 0 {
			s.reqs[n].Status = http.StatusOK
		}
		s.mu.Unlock()
	}()
	if len(problems) > 0 {
		for _, p := range problems {
			t.Errorf("webhooktest: request %d (%s): %s", n, rec.Action, p)
		}
		writeJSON(w, http.StatusBadRequest, `{"type":"about:blank","title":"Bad Request","status":400,"code":"bad-request"}`)
		return
	}
	if f, ok := s.failure(&rec); ok {
		if f.AfterApply && rec.Action != webhook.ActionAccess && s.opts.Respond == nil {
			if _, repeat, msg := s.apply(&rec); msg != "" {
				t.Errorf("webhooktest: request %d (%s): %s", n, rec.Action, msg)
			} else {
				s.setRepeat(n, repeat)
			}
		}
		s.writeFailure(w, f)
		return
	}
	if s.opts.Respond != nil {
		s.opts.Respond(n, rec, w, r)
		return
	}
	if rec.Action == webhook.ActionAccess {
		s.access(w, &rec)
		return
	}
	res, repeat, msg := s.apply(&rec)
	if msg != "" {
		t.Errorf("webhooktest: request %d (%s): %s", n, rec.Action, msg)
		writeJSON(w, http.StatusBadRequest, `{"code":"bad-request"}`)
		return
	}
	s.setRepeat(n, repeat)
	b, _ := json.Marshal(res)
	writeJSON(w, http.StatusOK, string(b))
}

func (s *System) setRepeat(n int, repeat bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs[n].Repeat = repeat
}

// failure returns a copy of the first scripted failure matching rec, and
// counts it down.
func (s *System) failure(rec *Request) (Failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.failures {
		if f.Times == 0 || (f.Action != "" && f.Action != rec.Action) || (f.Dataset != "" && !slices.Contains(rec.Datasets, f.Dataset)) {
			continue
		}
		if f.Times > 0 {
			f.Times--
		}
		return *f, true
	}
	return Failure{}, false
}

func (s *System) writeFailure(w *statusWriter, f Failure) {
	if f.Status < 0 {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			s.t.Errorf("webhooktest: cannot drop the connection: %v", err)
			return
		}
		conn.Close()
		w.status = -1
		return
	}
	for k, v := range f.Header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(f.Status)
	_, _ = io.WriteString(w, f.Body)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

var (
	phoneRE = regexp.MustCompile(`^\+[0-9]{1,15}$`)
	hashRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// check verifies everything about a verified request but its meaning for
// the data and fills rec; it returns what is wrong.
func (s *System) check(r *http.Request, body []byte, rec *Request) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if r.Method != http.MethodPost || r.URL.Path != s.path {
		bad("got %s %s, want POST %s", r.Method, r.URL.Path, s.path)
	}
	// Tampering with the body or the timestamp must break the signature.
	if webhook.Verify(s.secret, r.Header, append(bytes.Clone(body), ' '), time.Now(), s.opts.MaxSkew) == nil {
		bad("a tampered body verified")
	}
	h := r.Header.Clone()
	ts, _ := strconv.ParseInt(h.Get(webhook.HeaderTimestamp), 10, 64)
	h.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts+1, 10))
	if webhook.Verify(s.secret, h, body, time.Now(), s.opts.MaxSkew) == nil {
		bad("a tampered timestamp verified")
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		bad("Content-Type %q, want application/json", ct)
	}
	if a := r.Header.Get("Accept"); a != "application/json" {
		bad("Accept %q, want application/json", a)
	}
	// The members: known, present when required, never null.
	var members map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&members); err != nil {
		bad("body is not a JSON object: %v", err)
		return problems
	}
	if dec.More() {
		bad("data after the body's JSON object")
	}
	for k, v := range members {
		if string(v) == "null" {
			bad("member %q is null (members not sent must be absent)", k)
		}
	}
	for _, k := range []string{"action", "requestId", "subject", "datasets"} {
		if _, ok := members[k]; !ok {
			bad("member %q is missing", k)
		}
	}
	dec = json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var p wireRequest
	if err := dec.Decode(&p); err != nil {
		bad("body is not a protocol request: %v", err)
		return problems
	}
	rec.Action, rec.RequestID, rec.Datasets, rec.Corrections, rec.Cursor, rec.CallbackURL =
		p.Action, p.RequestID, p.Datasets, p.Corrections, p.Cursor, p.CallbackURL
	rec.IdempotencyKey = r.Header.Get(webhook.HeaderIdempotencyKey)
	access := p.Action == webhook.ActionAccess
	switch p.Action {
	case webhook.ActionAccess, webhook.ActionErasure, webhook.ActionRectification, webhook.ActionRestriction, webhook.ActionLiftRestriction:
	default:
		bad("unknown action %q", p.Action)
	}
	if !webhook.ValidRequestID(p.RequestID) {
		bad("requestId %q is not [A-Za-z0-9_-]{1,128}", p.RequestID)
	}
	if got := r.Header.Get(webhook.HeaderRequestID); got != p.RequestID {
		bad("%s %q, body requestId %q", webhook.HeaderRequestID, got, p.RequestID)
	}
	wantKey := p.RequestID + ":" + p.Action
	if access && p.Cursor != "" {
		wantKey += ":" + p.Cursor
	}
	if !access && len(p.Datasets) == 1 {
		wantKey += ":" + p.Datasets[0]
	}
	if rec.IdempotencyKey != wantKey {
		bad("Idempotency-Key %q, want %q", rec.IdempotencyKey, wantKey)
	}
	if len(p.Datasets) == 0 {
		bad("no datasets")
	}
	if !access && len(p.Datasets) != 1 {
		bad("a change names %d datasets, want exactly one", len(p.Datasets))
	}
	seen := map[string]bool{}
	for _, d := range p.Datasets {
		if seen[d] {
			bad("dataset %q named twice", d)
		}
		seen[d] = true
		if len(s.datasets) > 0 && s.datasets[d] == nil {
			bad("dataset %q is not one of the system's", d)
		}
	}
	if _, ok := members["cursor"]; ok && (!access || p.Cursor == "") {
		bad("cursor sent with %s or empty", p.Action)
	}
	if _, ok := members["callbackUrl"]; ok && (!access || p.CallbackURL == "") {
		bad("callbackUrl sent with %s or empty", p.Action)
	}
	if u, err := url.Parse(p.CallbackURL); p.CallbackURL != "" && (err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "") {
		bad("callbackUrl %q is not an absolute http(s) URL", p.CallbackURL)
	}
	if _, ok := members["corrections"]; ok != (p.Action == webhook.ActionRectification) {
		bad("corrections present = %v with %s", ok, p.Action)
	}
	if p.Action == webhook.ActionRectification {
		if s.opts.Hashed {
			bad("rectification sent to a system in hashed mode")
		}
		if len(p.Corrections) == 0 {
			bad("rectification without corrections")
		}
		for k, v := range p.Corrections {
			switch {
			case k != "email" && k != "phone" && k != "name":
				bad("correction kind %q is not email, phone or name", k)
			case v == "" || v != strings.TrimSpace(v):
				bad("the %s correction is empty or not trimmed", k)
			case k == "phone" && !phoneRE.MatchString(v):
				bad("the phone correction is not +E.164")
			case k == "email" && !strings.Contains(v, "@"):
				bad("the email correction is not an address")
			}
		}
	}
	subj, msgs := s.checkSubject(p.Subject)
	problems = append(problems, msgs...)
	rec.Subject = subj
	return problems
}

// checkSubject decodes the subject in the system's mode and checks its form.
func (s *System) checkSubject(raw json.RawMessage) (Subject, []string) {
	var subj Subject
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return subj, []string{fmt.Sprintf("subject is not an object: %v", err)}
	}
	names := [3]string{"emails", "phones", "ids"}
	if s.opts.Hashed {
		names = [3]string{"emailHashes", "phoneHashes", "idHashes"}
	}
	for k, v := range m {
		if !slices.Contains(names[:], k) {
			bad("subject member %q is not one of %v (hashed mode %v)", k, names, s.opts.Hashed)
		}
		if string(v) == "null" {
			bad("subject member %q is null", k)
		}
	}
	var emails, phones []string
	var ids map[string]string
	for i, dst := range []any{&emails, &phones, &ids} {
		v, ok := m[names[i]]
		if !ok {
			bad("subject member %q is missing", names[i])
			continue
		}
		if err := json.Unmarshal(v, dst); err != nil {
			bad("subject member %q: %v", names[i], err)
		}
	}
	if len(emails)+len(phones)+len(ids) == 0 {
		bad("the subject has no identifier")
	}
	dup := func(kind string, vs []string) {
		seen := map[string]bool{}
		for _, v := range vs {
			if seen[v] {
				bad("subject %s repeated", kind)
			}
			seen[v] = true
		}
	}
	dup(names[0], emails)
	dup(names[1], phones)
	for name := range ids {
		if name == "" {
			bad("subject id with an empty name")
		}
	}
	if s.opts.Hashed {
		for _, h := range slices.Concat(emails, phones, slices.Collect(maps.Values(ids))) {
			if !hashRE.MatchString(h) {
				bad("subject hash %q is not 64 lower-case hex digits", h)
			}
		}
		subj.EmailHashes, subj.PhoneHashes, subj.IDHashes = emails, phones, ids
		return subj, problems
	}
	for _, e := range emails {
		if e == "" || e != normEmail(e) {
			bad("subject email is empty or not normalised (trimmed, lower-case)")
		}
	}
	for _, p := range phones {
		if !phoneRE.MatchString(p) {
			bad("subject phone is not +E.164")
		}
	}
	for _, v := range ids {
		if v == "" || v != strings.TrimSpace(v) {
			bad("subject id value is empty or not trimmed")
		}
	}
	subj.Emails, subj.Phones, subj.IDs = emails, phones, ids
	return subj, problems
}
