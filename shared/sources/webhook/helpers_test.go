package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
)

func TestMain(m *testing.M) { os.Exit(azuritetest.Run(m)) }

var (
	testSecret  = []byte("test-signing-secret-0123456789abcdef!")
	testHashKey = []byte("test-hash-key-0123456789abcdef-ghijkl")
	testReqID   = "r019b7a2c4e00a1b2c3d4e5f6a7b8"
	// testSubject as the pipeline passes it: phones without '+'.
	testSubject = sources.Subject{
		Emails: []string{"ann@example.com"},
		Phones: []string{"14155550123"},
		IDs:    map[string]string{"customerId": "C-1001"},
	}
	// personal are the values that must never appear in an error.
	personal = []string{"ann@example.com", "14155550123", "C-1001", "Ann Example"}
)

// received is one request a test system got.
type received struct {
	Header http.Header
	Body   []byte
	Req    wireProbe
}

// wireProbe decodes a request body strictly: any member outside the
// protocol fails the test.
type wireProbe struct {
	Action      string            `json:"action"`
	RequestID   string            `json:"requestId"`
	Subject     json.RawMessage   `json:"subject"`
	Datasets    []string          `json:"datasets"`
	Corrections map[string]string `json:"corrections"`
	Cursor      string            `json:"cursor"`
	CallbackURL string            `json:"callbackUrl"`
}

// system is a test double of the remote system: it verifies every request
// (signature, timestamp, headers, body shape) with the shared secret and
// records it, then answers with respond.
type system struct {
	t      *testing.T
	srv    *httptest.Server
	secret []byte
	// badSignatureExpected: a failing Verify answers 401 without failing the test.
	badSignatureExpected bool

	mu      sync.Mutex
	reqs    []received
	respond func(n int, r received, w http.ResponseWriter, req *http.Request)
}

func newSystem(t *testing.T, respond func(n int, r received, w http.ResponseWriter, req *http.Request)) *system {
	t.Helper()
	s := &system{t: t, secret: testSecret, respond: respond}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *system) serve(w http.ResponseWriter, r *http.Request) {
	t := s.t
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Errorf("system: read body: %v", err)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/dsr" {
		t.Errorf("system: got %s %s, want POST /dsr", r.Method, r.URL.Path)
	}
	if err := Verify(s.secret, r.Header, body, time.Now(), time.Minute); err != nil {
		if !s.badSignatureExpected {
			t.Errorf("system: Verify: %v", err)
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, received{Header: r.Header.Clone(), Body: body})
		s.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if s.badSignatureExpected {
		t.Errorf("system: a request verified although the connector's secret is wrong")
	}
	// Tampering with the body, timestamp or signature must break it.
	if Verify(s.secret, r.Header, append(bytes.Clone(body), ' '), time.Now(), time.Minute) == nil {
		t.Errorf("system: a tampered body verified")
	}
	h := r.Header.Clone()
	ts, _ := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts+1, 10))
	if Verify(s.secret, h, body, time.Now(), time.Minute) == nil {
		t.Errorf("system: a tampered timestamp verified")
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("system: Content-Type %q", ct)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var p wireProbe
	if err := dec.Decode(&p); err != nil {
		t.Errorf("system: body is not a protocol request: %v", err)
	}
	if got := r.Header.Get(HeaderRequestID); got != p.RequestID || got == "" {
		t.Errorf("system: %s %q, body requestId %q", HeaderRequestID, got, p.RequestID)
	}
	wantKey := p.RequestID + ":" + p.Action
	if p.Action == ActionAccess && p.Cursor != "" {
		wantKey += ":" + p.Cursor
	}
	if p.Action != ActionAccess && len(p.Datasets) == 1 {
		wantKey += ":" + p.Datasets[0]
	}
	if got := r.Header.Get(HeaderIdempotencyKey); got != wantKey {
		t.Errorf("system: Idempotency-Key %q, want %q", got, wantKey)
	}
	if p.Corrections != nil && p.Action != ActionRectification {
		t.Errorf("system: corrections sent with %s", p.Action)
	}
	rec := received{Header: r.Header.Clone(), Body: body, Req: p}
	s.mu.Lock()
	n := len(s.reqs)
	s.reqs = append(s.reqs, rec)
	s.mu.Unlock()
	s.respond(n, rec, w, r)
}

func (s *system) requests() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.reqs...)
}

func (s *system) url() string { return s.srv.URL + "/dsr" }

// testConfig is a valid raw-mode config for the system.
func testConfig(url string) *Config {
	return &Config{
		Name:     "crm",
		URL:      url,
		Secret:   testSecret,
		HashKey:  testHashKey,
		Datasets: []Dataset{{Name: "contacts"}, {Name: "orders", Key: "orderNo"}},
	}
}

// sleeps records the waits a connector asked for, without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) get() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

func newConnector(t *testing.T, cfg *Config, store ResultStore) (*Connector, *sleeps) {
	t.Helper()
	c, err := New(cfg, nil, store)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	sl := &sleeps{}
	c.sleep = func(ctx context.Context, d time.Duration) error {
		sl.mu.Lock()
		sl.d = append(sl.d, d)
		sl.mu.Unlock()
		return ctx.Err()
	}
	return c, sl
}

func reqCtx() context.Context {
	return WithRequest(context.Background(), testReqID, testSubject)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// readAll reads the records of dm as compact JSON.
func readAll(ctx context.Context, c *Connector, dm sources.DatasetMatches) ([]string, error) {
	var out []string
	err := c.Read(ctx, dm, func(r sources.Record) error {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		out = append(out, string(b))
		return nil
	})
	return out, err
}

func matchesOf(t *testing.T, d *sources.Discovery, name string) sources.DatasetMatches {
	t.Helper()
	for _, m := range d.Datasets {
		if m.Dataset == name {
			return m
		}
	}
	t.Fatalf("no dataset %s in the discovery", name)
	return sources.DatasetMatches{}
}

// noPersonalData fails when err's message holds a subject value.
func noPersonalData(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, v := range personal {
		if strings.Contains(err.Error(), v) {
			t.Errorf("error %q contains personal data %q", err, v)
		}
	}
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *webhook.Error", err, err)
	}
	return e
}
