package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/webhook"
	"github.com/dsr-functions/dsr/shared/sources/webhook/webhooktest"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
)

// asyncFixture is a system that answers access with 202, our callback
// endpoint, and a connector over a result store.
type asyncFixture struct {
	t        *testing.T
	sys      *webhooktest.System
	cb       *httptest.Server
	c        *webhook.Connector
	store    webhook.ResultStore
	mu       sync.Mutex
	complete []string
}

func newAsyncFixture(t *testing.T, store webhook.ResultStore) *asyncFixture {
	t.Helper()
	f := &asyncFixture{t: t, store: store}
	f.sys = newSystem(t, func(_ int, r webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		if r.Action != webhook.ActionAccess {
			t.Errorf("system: unexpected %s", r.Action)
		}
		if want := f.cb.URL + "/api/webhooks/crm/" + testReqID; r.CallbackURL != want {
			t.Errorf("system: callbackUrl %q, want %q", r.CallbackURL, want)
		}
		if ok, err := store.Begun(context.Background(), testReqID); err != nil || !ok {
			t.Errorf("system: asked before the store expects a callback (%v, %v)", ok, err)
		}
		writeJSON(w, http.StatusAccepted, `{"status":"queued"}`)
	})
	mux := http.NewServeMux()
	f.cb = httptest.NewServer(mux)
	t.Cleanup(f.cb.Close)
	cfg := testConfig(f.sys.URL())
	cfg.CallbackBase = f.cb.URL + "/api/webhooks/crm/"
	f.c, _ = newConnector(t, cfg, store)
	mux.Handle("POST /api/webhooks/crm/{id}", f.c.CallbackHandler(webhook.CallbackOptions{
		OnComplete: func(_ context.Context, id string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.complete = append(f.complete, id)
			return nil
		},
	}))
	return f
}

// deliver POSTs a callback body as the system would, signed at ts with
// secret; it returns the status and the answer.
func (f *asyncFixture) deliver(body string, secret []byte, ts time.Time, mutate func(http.Header)) (int, string) {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.cb.URL+"/api/webhooks/crm/"+testReqID, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	webhook.SetSignature(req.Header, secret, []byte(body), ts)
	if mutate != nil {
		mutate(req.Header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, v := range personal {
		if strings.Contains(string(b), v) {
			f.t.Errorf("callback answer %s echoes %q", b, v)
		}
	}
	return resp.StatusCode, string(b)
}

func (f *asyncFixture) completions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.complete...)
}

func (f *asyncFixture) nothingStored() {
	f.t.Helper()
	links, err := f.store.Links(context.Background(), testReqID)
	if err != nil {
		f.t.Fatal(err)
	}
	if len(links) != 0 {
		f.t.Errorf("pages stored: %v", links)
	}
}

const (
	asyncPage1 = `{"cursor":"","records":{"contacts":[{"id":"c2","name":"Ann Example","email":"ann@example.com"}]},"next":"page-2"}`
	asyncPage2 = `{"cursor":"page-2","records":{"contacts":[{"id":"c1","z":1,"a":2}],"orders":[{"orderNo":"o-7","total":3}]},"next":""}`
)

func testAsyncFlow(t *testing.T, store webhook.ResultStore) {
	f := newAsyncFixture(t, store)
	ctx := reqCtx()
	now := time.Now()

	// A callback before any access was asked for is refused.
	if st, _ := f.deliver(asyncPage1, testSecret, now, nil); st != http.StatusNotFound {
		t.Errorf("callback before access: %d, want 404", st)
	}
	f.nothingStored()

	_, err := f.c.Discover(ctx, testSubject)
	if !errors.Is(err, webhook.ErrPending) {
		t.Fatalf("Discover = %v, want ErrPending", err)
	}
	noPersonalData(t, err)

	// Rejected callbacks store nothing.
	if st, body := f.deliver(asyncPage1, []byte("wrong-secret-wrong-secret-wrong-secret!"), now, nil); st != http.StatusUnauthorized || !strings.Contains(body, "bad-signature") {
		t.Errorf("wrong secret: %d %s", st, body)
	}
	if st, _ := f.deliver(asyncPage1, testSecret, now.Add(-10*time.Minute), nil); st != http.StatusUnauthorized {
		t.Errorf("stale timestamp: %d, want 401", st)
	}
	if st, _ := f.deliver(asyncPage1, testSecret, now, func(h http.Header) { h.Del(webhook.HeaderSignature) }); st != http.StatusUnauthorized {
		t.Errorf("no signature: %d, want 401", st)
	}
	tampered := strings.Replace(asyncPage1, "c2", "c9", 1)
	if st, _ := f.deliver(tampered, testSecret, now, func(h http.Header) {
		h.Set(webhook.HeaderSignature, webhook.Sign(testSecret, now.Unix(), []byte(asyncPage1)))
	}); st != http.StatusUnauthorized {
		t.Errorf("tampered body: %d, want 401", st)
	}
	if st, _ := f.deliver(`{"records":{"contacts":[{"name":"Ann Example"}]},"next":""}`, testSecret, now, nil); st != http.StatusBadRequest {
		t.Errorf("record without key: %d, want 400", st)
	}
	if st, _ := f.deliver(`{"records":{"secret-table":[{"id":"x"}]},"next":""}`, testSecret, now, nil); st != http.StatusBadRequest {
		t.Errorf("unconfigured dataset: %d, want 400", st)
	}
	if st, _ := f.deliver(`{"records":{"contacts":[{"id":"a"},{"id":"a"}]}}`, testSecret, now, nil); st != http.StatusBadRequest {
		t.Errorf("duplicate ids: %d, want 400", st)
	}
	f.nothingStored()

	// The last page first: stored, not complete yet.
	st, body := f.deliver(asyncPage2, testSecret, now, nil)
	if st != http.StatusOK || strings.TrimSpace(body) != `{"complete":false}` {
		t.Fatalf("page 2: %d %s", st, body)
	}
	if _, err := f.c.Discover(ctx, testSubject); !errors.Is(err, webhook.ErrPending) {
		t.Fatalf("Discover with page 1 missing = %v, want ErrPending", err)
	}
	if n := len(f.sys.Requests()); n != 2 {
		t.Errorf("system asked %d times, want 2", n)
	}
	if len(f.completions()) != 0 {
		t.Errorf("OnComplete called early")
	}

	st, body = f.deliver(asyncPage1, testSecret, now, nil)
	if st != http.StatusOK || strings.TrimSpace(body) != `{"complete":true}` {
		t.Fatalf("page 1: %d %s", st, body)
	}
	if got := f.completions(); !reflect.DeepEqual(got, []string{testReqID}) {
		t.Errorf("OnComplete calls %v", got)
	}
	// Redelivery, even with other content, changes nothing.
	if st, _ := f.deliver(strings.Replace(asyncPage1, `"c2"`, `"c3"`, 1), testSecret, now, nil); st != http.StatusOK {
		t.Errorf("redelivery: %d", st)
	}
	if st, _ := f.deliver(asyncPage1, testSecret, now, nil); st != http.StatusOK {
		t.Errorf("redelivery: %d", st)
	}

	asked := len(f.sys.Requests())
	d, err := f.c.Discover(ctx, testSubject)
	if err != nil {
		t.Fatalf("Discover after delivery: %v", err)
	}
	want := &sources.Discovery{Datasets: []sources.DatasetMatches{
		{Dataset: "contacts", Records: 2, Locations: []sources.Location{{Blob: "webhook", Keys: []string{"c1", "c2"}}}},
		{Dataset: "orders", Records: 1, Locations: []sources.Location{{Blob: "webhook", Keys: []string{"o-7"}}}},
	}}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("discovery %+v, want %+v", d, want)
	}
	recs, err := readAll(ctx, f.c, matchesOf(t, d, "contacts"))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if wantRecs := []string{`{"id":"c1","z":1,"a":2}`, `{"id":"c2","name":"Ann Example","email":"ann@example.com"}`}; !reflect.DeepEqual(recs, wantRecs) {
		t.Errorf("records %q, want %q", recs, wantRecs)
	}
	// Read of the stored result needs no subject.
	if _, err := readAll(webhook.WithRequest(context.Background(), testReqID, sources.Subject{}), f.c, matchesOf(t, d, "orders")); err != nil {
		t.Errorf("Read orders: %v", err)
	}
	if n := len(f.sys.Requests()); n != asked {
		t.Errorf("the system was asked again (%d requests) although the result is stored", n)
	}
	m := matchesOf(t, d, "contacts")
	m.Locations[0].Keys = append(m.Locations[0].Keys, "c9")
	if _, err := readAll(ctx, f.c, m); !errors.Is(err, sources.ErrChanged) {
		t.Errorf("Read of a missing id: %v", err)
	}

	if err := store.Delete(context.Background(), testReqID); err != nil {
		t.Fatal(err)
	}
	f.nothingStored()
	if ok, _ := store.Complete(context.Background(), testReqID); ok {
		t.Errorf("complete after Delete")
	}
	if st, _ := f.deliver(asyncPage1, testSecret, now, nil); st != http.StatusNotFound {
		t.Errorf("callback after Delete: %d, want 404", st)
	}
	f.nothingStored()
}

func TestAsyncFlowMemory(t *testing.T) {
	store := webhook.NewMemoryStore()
	testAsyncFlow(t, store)
	if store.Len() != 0 {
		t.Errorf("memory store keeps %d requests after Delete", store.Len())
	}
}

func TestAsyncFlowBlob(t *testing.T) {
	acct := azuritetest.Account(t)
	name := azuritetest.Container(t, acct, "webhook")
	cc := acct.Service.NewContainerClient(name)
	testAsyncFlow(t, webhook.NewBlobStore(cc, "webhook/crm/"))
	// Nothing of the request is left in the container.
	pager := cc.NewListBlobsFlatPager(nil)
	for pager.More() {
		resp, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range resp.Segment.BlobItems {
			t.Errorf("blob left after Delete: %s", *b.Name)
		}
	}
}

func TestAsyncSystemMayAnswerAtOnce(t *testing.T) {
	store := webhook.NewMemoryStore()
	sys := newSystem(t, func(_ int, r webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		if r.CallbackURL == "" {
			t.Errorf("no callbackUrl although async is enabled")
		}
		writeJSON(w, 200, `{"records":{"contacts":[{"id":"c1"}]}}`)
	})
	cfg := testConfig(sys.URL())
	cfg.CallbackBase = "http://127.0.0.1:1/cb"
	c, _ := newConnector(t, cfg, store)
	d, err := c.Discover(reqCtx(), testSubject)
	if err != nil || d.Total() != 1 {
		t.Fatalf("Discover = %+v, %v", d, err)
	}
}

func TestCallbackLimitsAndMethod(t *testing.T) {
	store := webhook.NewMemoryStore()
	sys := newSystem(t, nil)
	cfg := testConfig(sys.URL())
	cfg.CallbackBase = "http://127.0.0.1:1/cb"
	cfg.MaxResponseBytes = 1024
	c, _ := newConnector(t, cfg, store)
	h := c.CallbackHandler(webhook.CallbackOptions{})
	if err := store.Begin(context.Background(), testReqID); err != nil {
		t.Fatal(err)
	}
	post := func(method, path, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		webhook.SetSignature(r.Header, testSecret, []byte(body), time.Now())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	big := `{"records":{"contacts":[{"id":"c1","pad":"` + strings.Repeat("x", 2000) + `"}]}}`
	if w := post(http.MethodPost, "/cb/"+testReqID, big); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("too large: %d", w.Code)
	}
	if w := post(http.MethodGet, "/cb/"+testReqID, ""); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", w.Code)
	}
	if w := post(http.MethodPost, "/cb/..", `{"records":{}}`); w.Code != http.StatusBadRequest {
		t.Errorf("bad id: %d", w.Code)
	}
	w := post(http.MethodPost, "/cb/"+testReqID, `{"records":{"contacts":[{"id":"c1","note":"ann@example.com"}]},"next":""}`)
	if w.Code != http.StatusOK {
		t.Fatalf("good callback: %d %s", w.Code, w.Body)
	}
	if ok, _ := store.Complete(context.Background(), testReqID); !ok {
		t.Errorf("a single final page did not complete the result")
	}
	// Without async, the endpoint refuses everything.
	plain, _ := newConnector(t, testConfig(sys.URL()), nil)
	r := httptest.NewRequest(http.MethodPost, "/cb/"+testReqID, strings.NewReader(`{"records":{}}`))
	webhook.SetSignature(r.Header, testSecret, []byte(`{"records":{}}`), time.Now())
	rec := httptest.NewRecorder()
	plain.CallbackHandler(webhook.CallbackOptions{}).ServeHTTP(rec, r)
	if rec.Code != http.StatusNotFound {
		t.Errorf("async disabled: %d", rec.Code)
	}
}

func TestCallbackOnCompleteFailureAsksForRedelivery(t *testing.T) {
	store := webhook.NewMemoryStore()
	sys := newSystem(t, nil)
	cfg := testConfig(sys.URL())
	cfg.CallbackBase = "http://127.0.0.1:1/cb"
	c, _ := newConnector(t, cfg, store)
	_ = store.Begin(context.Background(), testReqID)
	calls := 0
	h := c.CallbackHandler(webhook.CallbackOptions{OnComplete: func(context.Context, string) error {
		calls++
		if calls == 1 {
			return errors.New("queue down")
		}
		return nil
	}})
	body := `{"records":{"contacts":[{"id":"c1"}]}}`
	for i, want := range []int{500, 200} {
		r := httptest.NewRequest(http.MethodPost, "/cb/"+testReqID, strings.NewReader(body))
		webhook.SetSignature(r.Header, testSecret, []byte(body), time.Now())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("delivery %d: %d, want %d", i, w.Code, want)
		}
	}
	if calls != 2 {
		t.Errorf("OnComplete called %d times", calls)
	}
}

// testStore checks the ResultStore contract.
func testStore(t *testing.T, s webhook.ResultStore) {
	ctx := context.Background()
	id := "r0123456789abcdef"
	if ok, err := s.Begun(ctx, id); err != nil || ok {
		t.Fatalf("Begun before Begin = %v, %v", ok, err)
	}
	if err := s.Begin(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.Begin(ctx, id); err != nil {
		t.Fatalf("second Begin: %v", err)
	}
	if ok, err := s.Begun(ctx, id); err != nil || !ok {
		t.Fatalf("Begun = %v, %v", ok, err)
	}
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	p1 := webhook.StoredPage{Cursor: "", Next: "n/2?x=1", Records: map[string][]json.RawMessage{
		"contacts": {raw(`{"id":"a","v":1}`), raw(`{"id":"b"}`)},
		"orders":   {raw(`{"orderNo":"o"}`)},
	}}
	p2 := webhook.StoredPage{Cursor: "n/2?x=1", Next: "", Records: map[string][]json.RawMessage{"contacts": {raw(`{"id":"c"}`)}}}
	if err := s.PutPage(ctx, id, p1); err != nil {
		t.Fatal(err)
	}
	// Create-only: another page under the same cursor changes nothing.
	if err := s.PutPage(ctx, id, webhook.StoredPage{Cursor: "", Next: "", Records: map[string][]json.RawMessage{"contacts": {raw(`{"id":"z"}`)}}}); err != nil {
		t.Fatalf("second PutPage: %v", err)
	}
	if err := s.PutPage(ctx, id, p2); err != nil {
		t.Fatal(err)
	}
	links, err := s.Links(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"": "n/2?x=1", "n/2?x=1": ""}; !reflect.DeepEqual(links, want) {
		t.Errorf("links %v, want %v", links, want)
	}
	read := func(cursor, ds string) []string {
		var out []string
		if err := s.Records(ctx, id, cursor, ds, func(r json.RawMessage) error {
			var b bytes.Buffer
			_ = json.Compact(&b, r)
			out = append(out, b.String())
			return nil
		}); err != nil {
			t.Fatalf("Records(%q, %s): %v", cursor, ds, err)
		}
		return out
	}
	if got := read("", "contacts"); !reflect.DeepEqual(got, []string{`{"id":"a","v":1}`, `{"id":"b"}`}) {
		t.Errorf("page 1 contacts %q", got)
	}
	if got := read("", "orders"); !reflect.DeepEqual(got, []string{`{"orderNo":"o"}`}) {
		t.Errorf("page 1 orders %q", got)
	}
	if got := read("n/2?x=1", "orders"); len(got) != 0 {
		t.Errorf("page 2 orders %q", got)
	}
	if got := read("missing", "contacts"); len(got) != 0 {
		t.Errorf("missing page %q", got)
	}
	if ok, err := s.Complete(ctx, id); err != nil || ok {
		t.Errorf("Complete before MarkComplete = %v, %v", ok, err)
	}
	for range 2 {
		if err := s.MarkComplete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.Complete(ctx, id); err != nil || !ok {
		t.Errorf("Complete = %v, %v", ok, err)
	}
	// Another request is untouched by Delete.
	other := "r-other"
	_ = s.Begin(ctx, other)
	_ = s.PutPage(ctx, other, p2)
	for range 2 {
		if err := s.Delete(ctx, id); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if ok, _ := s.Begun(ctx, id); ok {
		t.Errorf("Begun after Delete")
	}
	if ok, _ := s.Complete(ctx, id); ok {
		t.Errorf("Complete after Delete")
	}
	if l, _ := s.Links(ctx, id); len(l) != 0 {
		t.Errorf("links after Delete: %v", l)
	}
	if got := read("", "contacts"); len(got) != 0 {
		t.Errorf("records after Delete: %q", got)
	}
	if l, _ := s.Links(ctx, other); len(l) != 1 {
		t.Errorf("Delete removed another request's pages")
	}
	if ok, _ := s.Begun(ctx, other); !ok {
		t.Errorf("Delete removed another request's marker")
	}
	_ = s.Delete(ctx, other)
}

func TestMemoryStore(t *testing.T) { testStore(t, webhook.NewMemoryStore()) }

func TestBlobStore(t *testing.T) {
	acct := azuritetest.Account(t)
	name := azuritetest.Container(t, acct, "webhook")
	cc := acct.Service.NewContainerClient(name)
	testStore(t, webhook.NewBlobStore(cc, "webhook/crm/"))
	// One blob per request, page and dataset, written create-only.
	s := webhook.NewBlobStore(cc, "p/")
	ctx := context.Background()
	if err := s.PutPage(ctx, "r1", webhook.StoredPage{Records: map[string][]json.RawMessage{"a": {json.RawMessage(`{"id":"x"}`)}, "b": {json.RawMessage(`{"id":"y"}`)}}}); err != nil {
		t.Fatal(err)
	}
	var names []string
	prefix := "p/r1/"
	pager := cc.NewListBlobsFlatPager(nil)
	for pager.More() {
		resp, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range resp.Segment.BlobItems {
			names = append(names, strings.TrimPrefix(*b.Name, prefix))
		}
	}
	h := webhook.PageDir("")
	want := []string{h + "data/a.json", h + "data/b.json", h + "page.json"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("blobs %q, want %q", names, want)
	}
}

func TestChain(t *testing.T) {
	cases := []struct {
		links    map[string]string
		order    []string
		complete bool
		err      bool
	}{
		{map[string]string{}, nil, false, false},
		{map[string]string{"": ""}, []string{""}, true, false},
		{map[string]string{"": "a", "a": "b", "b": ""}, []string{"", "a", "b"}, true, false},
		{map[string]string{"": "a", "b": ""}, []string{""}, false, false},
		{map[string]string{"": "a", "a": ""}, []string{"", "a"}, true, false},
		{map[string]string{"": "a", "a": "a"}, nil, false, true},
	}
	for i, tc := range cases {
		order, complete, err := webhook.Chain(tc.links)
		if (err != nil) != tc.err || complete != tc.complete || (!tc.err && !reflect.DeepEqual(order, tc.order)) {
			t.Errorf("case %d: chain = %q, %v, %v", i, order, complete, err)
		}
	}
}

func TestProtocolExample(t *testing.T) {
	doc, err := readProtocol()
	if err != nil {
		t.Fatal(err)
	}
	// The example in PROTOCOL.md must verify with its own secret.
	secret := []byte("an-example-secret-of-at-least-32-bytes!!")
	hashKey := []byte("an-example-hash-key-of-32-bytes-or-more!")
	body := exampleBody
	if !strings.Contains(doc, body) {
		t.Fatalf("PROTOCOL.md does not contain the example body %s", body)
	}
	sig := webhook.Sign(secret, 1767225600, []byte(body))
	if !strings.Contains(doc, sig) {
		t.Errorf("PROTOCOL.md does not show the example signature %s", sig)
	}
	h := http.Header{}
	h.Set(webhook.HeaderTimestamp, "1767225600")
	h.Set(webhook.HeaderSignature, sig)
	if err := webhook.Verify(secret, h, []byte(body), time.Unix(1767225600, 0), 0); err != nil {
		t.Errorf("example does not verify: %v", err)
	}
	for _, v := range []string{"ann@example.com", "+14155550123", "C-1001"} {
		if hv := webhook.HashIdentifier(hashKey, v); !strings.Contains(doc, hv) {
			t.Errorf("PROTOCOL.md does not show the hash of %s: %s", v, hv)
		}
	}
	cbSig := webhook.Sign(secret, 1767225660, []byte(exampleCallback))
	if !strings.Contains(doc, exampleCallback) || !strings.Contains(doc, cbSig) {
		t.Errorf("PROTOCOL.md does not show the example callback with signature %s", cbSig)
	}
	keys := map[string]string{"contacts": "id", "orders": "orderNo"}
	if err := webhook.DecodePage(strings.NewReader(exampleCallback), keys); err != nil {
		t.Errorf("example callback: %v", err)
	}
	// The example request is exactly what the connector sends.
	sys := webhooktest.New(t, secret, webhooktest.Options{Respond: func(_ int, _ webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 202, `{}`)
	}})
	store := webhook.NewMemoryStore()
	c, err := webhook.New(&webhook.Config{Name: "crm", URL: sys.URL(), Secret: secret, CallbackBase: "https://dsr.example.com/api/webhooks/crm",
		Datasets: []webhook.Dataset{{Name: "contacts"}, {Name: "orders", Key: "orderNo"}}}, nil, store)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Discover(webhook.WithRequest(context.Background(), "r019b7a2c4e00a1b2c3d4e5f6a7b8", testSubject), testSubject)
	if !errors.Is(err, webhook.ErrPending) {
		t.Fatalf("Discover = %v", err)
	}
	if got := string(sys.Requests()[0].Body); got != body {
		t.Errorf("connector sends\n%s\nPROTOCOL.md shows\n%s", got, body)
	}
	if !strings.Contains(doc, "X-DSR-Timestamp: 1767225600") || !strings.Contains(doc, "Idempotency-Key: r019b7a2c4e00a1b2c3d4e5f6a7b8:access") {
		t.Errorf("PROTOCOL.md example headers missing")
	}
}

// exampleBody is the example request of PROTOCOL.md.
const exampleBody = `{"action":"access","requestId":"r019b7a2c4e00a1b2c3d4e5f6a7b8",` +
	`"subject":{"emails":["ann@example.com"],"phones":["+14155550123"],"ids":{"customerId":"C-1001"}},` +
	`"datasets":["contacts","orders"],"callbackUrl":"https://dsr.example.com/api/webhooks/crm/r019b7a2c4e00a1b2c3d4e5f6a7b8"}`

// exampleCallback is the example callback of PROTOCOL.md.
const exampleCallback = `{"cursor":"","records":{"contacts":[{"id":"c-17","name":"Ann Example","email":"ann@example.com","createdAt":"2024-03-01T10:00:00Z"}],"orders":[{"orderNo":"o-9","total":12.5}]},"next":""}`

func readProtocol() (string, error) {
	b, err := os.ReadFile("PROTOCOL.md")
	return string(b), err
}
