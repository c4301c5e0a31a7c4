package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/webhook"
	"github.com/dsr-functions/dsr/shared/sources/webhook/webhooktest"
)

func TestConfigValidate(t *testing.T) {
	good := func() *webhook.Config { return testConfig("https://crm.example.com/dsr") }
	if err := good().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, u := range []string{"http://127.0.0.1:8080/dsr", "http://localhost/dsr", "http://[::1]:9/x"} {
		c := good()
		c.URL = u
		if err := c.Validate(); err != nil {
			t.Errorf("loopback http %s: %v", u, err)
		}
	}
	cases := map[string]func(c *webhook.Config){
		"http to a remote host": func(c *webhook.Config) { c.URL = "http://crm.example.com/dsr" },
		"relative url":          func(c *webhook.Config) { c.URL = "/dsr" },
		"no url":                func(c *webhook.Config) { c.URL = "" },
		"ftp url":               func(c *webhook.Config) { c.URL = "ftp://crm.example.com/dsr" },
		"user info in url":      func(c *webhook.Config) { c.URL = "https://u:p@crm.example.com/dsr" },
		"short secret":          func(c *webhook.Config) { c.Secret = []byte("short") },
		"no secret":             func(c *webhook.Config) { c.Secret = nil },
		"unknown identifiers":   func(c *webhook.Config) { c.Identifiers = "plain" },
		"hashed without key":    func(c *webhook.Config) { c.Identifiers, c.HashKey = webhook.IdentifiersHashed, nil },
		"hashed short key":      func(c *webhook.Config) { c.Identifiers, c.HashKey = webhook.IdentifiersHashed, []byte("k") },
		"hash key = secret":     func(c *webhook.Config) { c.Identifiers, c.HashKey = webhook.IdentifiersHashed, testSecret },
		"no datasets":           func(c *webhook.Config) { c.Datasets = nil },
		"bad dataset name":      func(c *webhook.Config) { c.Datasets = []webhook.Dataset{{Name: "Contacts"}} },
		"dataset twice":         func(c *webhook.Config) { c.Datasets = []webhook.Dataset{{Name: "a"}, {Name: "a"}} },
		"negative timeout":      func(c *webhook.Config) { c.Timeout = -time.Second },
		"huge timeout":          func(c *webhook.Config) { c.Timeout = time.Hour },
		"too many attempts":     func(c *webhook.Config) { c.MaxAttempts = 100 },
		"negative max bytes":    func(c *webhook.Config) { c.MaxResponseBytes = -1 },
		"http callback":         func(c *webhook.Config) { c.CallbackBase = "http://dsr.example.com/cb" },
		"callback with query":   func(c *webhook.Config) { c.CallbackBase = "https://dsr.example.com/cb?code=x" },
		"bad name":              func(c *webhook.Config) { c.Name = "CRM system" },
	}
	for name, mutate := range cases {
		c := good()
		mutate(c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
	}
	c := good()
	c.CallbackBase = "https://dsr.example.com/cb"
	if _, err := webhook.New(c, nil, nil); err == nil {
		t.Errorf("New accepted a callback base without a result store")
	}
	conn, err := webhook.New(good(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := webhook.EffectiveConfig(conn); cfg.Timeout != webhook.DefaultTimeout || cfg.MaxAttempts != webhook.DefaultMaxAttempts || cfg.MaxResponseBytes != webhook.DefaultMaxResponseBytes || cfg.Identifiers != webhook.IdentifiersRaw {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if keys := webhook.Keys(conn); keys["contacts"] != "id" || keys["orders"] != "orderNo" {
		t.Errorf("keys %v", keys)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1767225600, 0)
	body := []byte(`{"records":{},"next":""}`)
	h := http.Header{}
	webhook.SetSignature(h, testSecret, body, now)
	if got := h.Get(webhook.HeaderTimestamp); got != "1767225600" {
		t.Fatalf("timestamp header %q", got)
	}
	// Independent computation of the signature.
	m := hmac.New(sha256.New, testSecret)
	m.Write([]byte("1767225600." + string(body)))
	if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); h.Get(webhook.HeaderSignature) != want {
		t.Fatalf("signature %q, want %q", h.Get(webhook.HeaderSignature), want)
	}
	if err := webhook.Verify(testSecret, h, body, now.Add(299*time.Second), 0); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	with := func(k, v string) http.Header {
		c := h.Clone()
		if v == "" {
			c.Del(k)
		} else {
			c.Set(k, v)
		}
		return c
	}
	upper := "sha256=" + strings.ToUpper(strings.TrimPrefix(h.Get(webhook.HeaderSignature), "sha256="))
	cases := []struct {
		name   string
		secret []byte
		h      http.Header
		body   []byte
		now    time.Time
		want   error
	}{
		{"tampered body", testSecret, h, []byte(`{"records":{},"next":"x"}`), now, webhook.ErrBadSignature},
		{"wrong secret", testHashKey, h, body, now, webhook.ErrBadSignature},
		{"other timestamp", testSecret, with(webhook.HeaderTimestamp, "1767225601"), body, now, webhook.ErrBadSignature},
		{"zero-padded timestamp", testSecret, with(webhook.HeaderTimestamp, "01767225600"), body, now, webhook.ErrBadSignature},
		{"no signature", testSecret, with(webhook.HeaderSignature, ""), body, now, webhook.ErrBadSignature},
		{"no prefix", testSecret, with(webhook.HeaderSignature, strings.TrimPrefix(h.Get(webhook.HeaderSignature), "sha256=")), body, now, webhook.ErrBadSignature},
		{"short signature", testSecret, with(webhook.HeaderSignature, "sha256=abcd"), body, now, webhook.ErrBadSignature},
		{"not hex", testSecret, with(webhook.HeaderSignature, "sha256="+strings.Repeat("zz", 32)), body, now, webhook.ErrBadSignature},
		{"stale", testSecret, h, body, now.Add(301 * time.Second), webhook.ErrStaleTimestamp},
		{"future", testSecret, h, body, now.Add(-301 * time.Second), webhook.ErrStaleTimestamp},
		{"no timestamp", testSecret, with(webhook.HeaderTimestamp, ""), body, now, webhook.ErrStaleTimestamp},
		{"negative timestamp", testSecret, with(webhook.HeaderTimestamp, "-1767225600"), body, now, webhook.ErrStaleTimestamp},
		{"timestamp not a number", testSecret, with(webhook.HeaderTimestamp, "1767225600.5"), body, now, webhook.ErrStaleTimestamp},
	}
	for _, tc := range cases {
		err := webhook.Verify(tc.secret, tc.h, tc.body, tc.now, 5*time.Minute)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", tc.name, err, tc.want)
		}
	}
	// Upper-case hex is still the same signature.
	if err := webhook.Verify(testSecret, with(webhook.HeaderSignature, upper), body, now, 0); err != nil {
		t.Errorf("upper-case hex: %v", err)
	}
	if err := webhook.Verify(nil, h, body, now, 0); err == nil {
		t.Errorf("Verify with no secret succeeded")
	}
}

const contactsPage = `{"records":{"contacts":[` +
	`{"id":"c2","zeta":1,"name":"Ann Example","email":"ann@example.com","alpha":{"b":1,"a":[true,null]}},` +
	`{"id":"c1","name":"Ann Example","phone":"+14155550123","amount":12345678901234567890}` +
	`],"orders":[{"orderNo":"o-9","total":12.5}]},"next":""}`

func TestDiscoverRawBody(t *testing.T) {
	sys := newSystem(t, func(_ int, _ webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, contactsPage)
	})
	c, _ := newConnector(t, testConfig(sys.URL()), nil)
	subj := sources.Subject{Emails: []string{" Ann@Example.COM ", "ann@example.com"}, Phones: []string{"14155550123", "+14155550123"}, IDs: map[string]string{"customerId": "C-1001"}}
	d, err := c.Discover(reqCtx(), subj)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	reqs := sys.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	want := `{"action":"access","requestId":"r019b7a2c4e00a1b2c3d4e5f6a7b8",` +
		`"subject":{"emails":["ann@example.com"],"phones":["+14155550123"],"ids":{"customerId":"C-1001"}},` +
		`"datasets":["contacts","orders"]}`
	if string(reqs[0].Body) != want {
		t.Errorf("body\n got %s\nwant %s", reqs[0].Body, want)
	}
	if got := reqs[0].Header.Get(webhook.HeaderIdempotencyKey); got != testReqID+":access" {
		t.Errorf("Idempotency-Key %q", got)
	}
	wantD := &sources.Discovery{Datasets: []sources.DatasetMatches{
		{Dataset: "contacts", Records: 2, Locations: []sources.Location{{Blob: "webhook", Keys: []string{"c1", "c2"}}}},
		{Dataset: "orders", Records: 1, Locations: []sources.Location{{Blob: "webhook", Keys: []string{"o-9"}}}},
	}}
	if !reflect.DeepEqual(d, wantD) {
		t.Errorf("discovery %+v, want %+v", d, wantD)
	}
}

func TestDiscoverHashedBody(t *testing.T) {
	sys := newHashedSystem(t, func(_ int, _ webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, `{"records":{"contacts":[{"id":"c1"}]},"next":""}`)
	})
	cfg := testConfig(sys.URL())
	cfg.Identifiers = webhook.IdentifiersHashed
	c, _ := newConnector(t, cfg, nil)
	if _, err := c.Discover(reqCtx(), testSubject); err != nil {
		t.Fatalf("Discover: %v", err)
	}
	h := func(v string) string {
		m := hmac.New(sha256.New, testHashKey)
		m.Write([]byte(v))
		return hex.EncodeToString(m.Sum(nil))
	}
	want := `{"action":"access","requestId":"r019b7a2c4e00a1b2c3d4e5f6a7b8",` +
		`"subject":{"emailHashes":["` + h("ann@example.com") + `"],"phoneHashes":["` + h("+14155550123") + `"],"idHashes":{"customerId":"` + h("C-1001") + `"}},` +
		`"datasets":["contacts","orders"]}`
	body := string(sys.Requests()[0].Body)
	if body != want {
		t.Errorf("body\n got %s\nwant %s", body, want)
	}
	for _, v := range personal {
		if strings.Contains(body, v) {
			t.Errorf("hashed body contains %q", v)
		}
	}
	if webhook.HashIdentifier(testHashKey, "ann@example.com") != h("ann@example.com") {
		t.Errorf("HashIdentifier disagrees")
	}
}

func TestDiscoverEmptySubjectSendsNothing(t *testing.T) {
	sys := newSystem(t, func(_ int, _ webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, `{"records":{}}`)
	})
	c, _ := newConnector(t, testConfig(sys.URL()), nil)
	d, err := c.Discover(reqCtx(), sources.Subject{Emails: []string{" "}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sys.Requests()) != 0 || d.Total() != 0 || len(d.Datasets) != 2 {
		t.Errorf("empty subject: %d requests, discovery %+v", len(sys.Requests()), d)
	}
	if _, err := c.Discover(context.Background(), testSubject); !errors.Is(err, webhook.ErrNoRequest) {
		t.Errorf("Discover without a request in the context: %v", err)
	}
}

func TestPagingAndRead(t *testing.T) {
	pages := map[string]string{
		"":   `{"records":{"contacts":[{"id":"c3","name":"Ann Example"}]},"next":"p2"}`,
		"p2": `{"next":"p3","records":{"contacts":[{"id":"c1","b":2,"a":1}],"orders":[]}}`,
		"p3": `{"records":{"orders":[{"orderNo":"o-1","total":1}],"contacts":[{"id":"c2","x":"y"}]},"next":"","extra":{"ignored":true}}`,
	}
	sys := newSystem(t, func(_ int, r webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		body, ok := pages[r.Cursor]
		if !ok {
			t.Errorf("unknown cursor %q", r.Cursor)
		}
		writeJSON(w, 200, body)
	})
	c, _ := newConnector(t, testConfig(sys.URL()), nil)
	d, err := c.Discover(reqCtx(), testSubject)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	reqs := sys.Requests()
	var cursors, keys []string
	for _, r := range reqs {
		cursors = append(cursors, r.Cursor)
		keys = append(keys, r.Header.Get(webhook.HeaderIdempotencyKey))
		if !reflect.DeepEqual(r.Datasets, []string{"contacts", "orders"}) {
			t.Errorf("datasets %v", r.Datasets)
		}
	}
	if !reflect.DeepEqual(cursors, []string{"", "p2", "p3"}) {
		t.Errorf("cursors %q", cursors)
	}
	if want := []string{testReqID + ":access", testReqID + ":access:p2", testReqID + ":access:p3"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("idempotency keys %q", keys)
	}
	m := matchesOf(t, d, "contacts")
	if m.Records != 3 || !reflect.DeepEqual(m.Locations[0].Keys, []string{"c1", "c2", "c3"}) {
		t.Errorf("contacts %+v", m)
	}

	// Read asks again, for this dataset only, and emits in Keys order with
	// fields in the order sent.
	m.Locations[0].Keys = []string{"c3", "c1"}
	m.Records = 2
	recs, err := readAll(reqCtx(), c, m)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	want := []string{`{"id":"c3","name":"Ann Example"}`, `{"id":"c1","b":2,"a":1}`}
	if !reflect.DeepEqual(recs, want) {
		t.Errorf("records %q, want %q", recs, want)
	}
	reqs = sys.Requests()[3:]
	if len(reqs) != 3 {
		t.Fatalf("Read made %d requests, want 3 (all pages)", len(reqs))
	}
	for _, r := range reqs {
		if !reflect.DeepEqual(r.Datasets, []string{"contacts"}) {
			t.Errorf("Read asked for datasets %v", r.Datasets)
		}
	}
	if _, err := readAll(context.Background(), c, m); !errors.Is(err, webhook.ErrNoRequest) {
		t.Errorf("Read without a request: %v", err)
	}
}

func TestReadFieldOrderAndValues(t *testing.T) {
	sys := newSystem(t, func(_ int, _ webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, contactsPage)
	})
	c, _ := newConnector(t, testConfig(sys.URL()), nil)
	var recs []sources.Record
	m := sources.DatasetMatches{Dataset: "contacts", Records: 1, Locations: []sources.Location{{Blob: "webhook", Keys: []string{"c2", "c1"}}}}
	if err := c.Read(reqCtx(), m, func(r sources.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range recs[0].Fields {
		names = append(names, f.Name)
	}
	if !reflect.DeepEqual(names, []string{"id", "zeta", "name", "email", "alpha"}) {
		t.Errorf("field order %v", names)
	}
	// Large numbers keep their digits.
	if v := recs[1].Fields[3].Value; fmt.Sprint(v) != "12345678901234567890" {
		t.Errorf("amount %v (%T)", v, v)
	}
}

func TestReadChanged(t *testing.T) {
	sys := newSystem(t, func(_ int, _ webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, `{"records":{"contacts":[{"id":"c1"}]},"next":""}`)
	})
	c, _ := newConnector(t, testConfig(sys.URL()), nil)
	m := sources.DatasetMatches{Dataset: "contacts", Records: 2, Locations: []sources.Location{{Blob: "webhook", Keys: []string{"c1", "c2"}}}}
	emitted := 0
	err := c.Read(reqCtx(), m, func(sources.Record) error { emitted++; return nil })
	if !errors.Is(err, sources.ErrChanged) {
		t.Fatalf("Read = %v, want ErrChanged", err)
	}
	if emitted != 0 {
		t.Errorf("%d records emitted before ErrChanged", emitted)
	}
	if !strings.Contains(err.Error(), "crm") || !strings.Contains(err.Error(), "contacts") {
		t.Errorf("error %q does not name the system and dataset", err)
	}
	noPersonalData(t, err)
	m.Locations[0].Blob = "other"
	if err := c.Read(reqCtx(), m, func(sources.Record) error { return nil }); err == nil {
		t.Errorf("Read accepted a foreign location")
	}
	m.Dataset = "nope"
	if err := c.Read(reqCtx(), m, func(sources.Record) error { return nil }); err == nil {
		t.Errorf("Read accepted an unknown dataset")
	}
}

func TestBadAnswers(t *testing.T) {
	cases := []struct {
		name, body string
		want       string
	}{
		{"record without key", `{"records":{"contacts":[{"id":"c1"},{"name":"Ann Example","email":"ann@example.com"}]}}`, `record 1: no key field "id"`},
		{"key not a string", `{"records":{"orders":[{"orderNo":14155550123}]}}`, `key field "orderNo" is not a non-empty string`},
		{"empty key", `{"records":{"contacts":[{"id":""}]}}`, `not a non-empty string`},
		{"record not an object", `{"records":{"contacts":["ann@example.com"]}}`, "not a JSON object"},
		{"unconfigured dataset", `{"records":{"C-1001-secret-table":[{"id":"x"}]}}`, "not configured"},
		{"malformed", `{"records":{"contacts":[{"id":"c1","email":ann@example.com}]}}`, "malformed JSON"},
		{"truncated", `{"records":{"contacts":[{"id":"c1","name":"Ann Example"`, "truncated JSON"},
		{"no records member", `{"next":""}`, `no "records"`},
		{"next not a string", `{"records":{},"next":14155550123}`, "expected a string"},
		{"duplicate ids", `{"records":{"contacts":[{"id":"C-1001"},{"id":"C-1001"}]}}`, "two records share one id"},
		{"trailing data", `{"records":{}} {"records":{}}`, "data after"},
		{"records twice", `{"records":{},"records":{}}`, "appears twice"},
		{"field twice", `{"records":{"contacts":[{"id":"a","id":"b"}]}}`, "appears twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sys := newSystem(t, func(_ int, _ webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
				writeJSON(w, 200, tc.body)
			})
			c, sl := newConnector(t, testConfig(sys.URL()), nil)
			_, err := c.Discover(reqCtx(), testSubject)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Discover = %v, want an error with %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "webhook crm") {
				t.Errorf("error %q does not name the system", err)
			}
			if strings.Contains(err.Error(), "secret-table") {
				t.Errorf("error %q quotes the response", err)
			}
			noPersonalData(t, err)
			if n := len(sys.Requests()); n != 1 || len(sl.get()) != 0 {
				t.Errorf("bad content was retried: %d requests", n)
			}
		})
	}
}

func TestResponseTooLargeIsCutWhileStreaming(t *testing.T) {
	written := make(chan int64, 1)
	sys := newSystem(t, func(_ int, _ webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		// An endless answer: a whole-body read would never end.
		var n int64
		defer func() { written <- n }()
		k, err := fmt.Fprint(w, `{"records":{"contacts":[`)
		n += int64(k)
		rec := `{"id":"c%d","name":"Ann Example","email":"ann@example.com","pad":"` + strings.Repeat("x", 900) + `"},`
		for i := 0; err == nil && n < 1<<30; i++ {
			k, err = fmt.Fprintf(w, rec, i)
			n += int64(k)
		}
	})
	cfg := testConfig(sys.URL())
	cfg.MaxResponseBytes = 256 << 10
	c, sl := newConnector(t, cfg, nil)
	start := time.Now()
	_, err := c.Discover(reqCtx(), testSubject)
	if !errors.Is(err, webhook.ErrResponseTooLarge) {
		t.Fatalf("Discover = %v, want ErrResponseTooLarge", err)
	}
	if !strings.Contains(err.Error(), "262144 bytes (MaxResponseBytes)") || !strings.Contains(err.Error(), "webhook crm") {
		t.Errorf("error %q does not explain the limit", err)
	}
	noPersonalData(t, err)
	if len(sys.Requests()) != 1 || len(sl.get()) != 0 {
		t.Errorf("an oversized answer was retried")
	}
	if n := <-written; n >= 1<<30 {
		t.Errorf("the server wrote %d bytes: the client did not stop reading", n)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("took %s", time.Since(start))
	}
}

func TestResponseLimitCoversAllPages(t *testing.T) {
	pad := strings.Repeat("x", 30<<10)
	sys := newSystem(t, func(n int, r webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, fmt.Sprintf(`{"records":{"contacts":[{"id":"c%d","pad":"%s"}]},"next":"p%d"}`, n, pad, n+1))
	})
	cfg := testConfig(sys.URL())
	cfg.MaxResponseBytes = 100 << 10
	c, _ := newConnector(t, cfg, nil)
	_, err := c.Discover(reqCtx(), testSubject)
	if !errors.Is(err, webhook.ErrResponseTooLarge) || !strings.Contains(err.Error(), "page 4") {
		t.Fatalf("Discover = %v, want ErrResponseTooLarge on page 4", err)
	}
	if n := len(sys.Requests()); n != 4 {
		t.Errorf("%d requests, want 4", n)
	}
}

func TestPagingLoopRefused(t *testing.T) {
	sys := newSystem(t, func(n int, r webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		next := map[string]string{"": "a", "a": "b", "b": "a"}[r.Cursor]
		writeJSON(w, 200, `{"records":{},"next":"`+next+`"}`)
	})
	c, _ := newConnector(t, testConfig(sys.URL()), nil)
	if _, err := c.Discover(reqCtx(), testSubject); err == nil || !strings.Contains(err.Error(), "paging loops") {
		t.Fatalf("Discover = %v, want a paging loop error", err)
	}
}

func TestTimeoutRetriedThenFails(t *testing.T) {
	sys := newSystem(t, func(_ int, _ webhooktest.Request, w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		writeJSON(w, 200, `{"records":{}}`)
	})
	cfg := testConfig(sys.URL())
	cfg.Timeout = 100 * time.Millisecond
	cfg.MaxAttempts = 3
	c, sl := newConnector(t, cfg, nil)
	_, err := c.Discover(reqCtx(), testSubject)
	if err == nil {
		t.Fatal("Discover succeeded")
	}
	want := "webhook crm: datasets contacts, orders: access: timeout after 3 attempts"
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	noPersonalData(t, err)
	e := asError(t, err)
	if e.Attempts != 3 || !e.Retried || e.System != "crm" {
		t.Errorf("Error %+v", e)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error does not wrap context.DeadlineExceeded")
	}
	if n := len(sys.Requests()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	s := sl.get()
	if len(s) != 2 {
		t.Fatalf("sleeps %v, want 2", s)
	}
	// Exponential back-off with jitter: [d/2, d] for d = 500ms, 1s.
	for i, d := range []time.Duration{500 * time.Millisecond, time.Second} {
		if s[i] < d/2 || s[i] > d {
			t.Errorf("sleep %d = %s, want in [%s, %s]", i, s[i], d/2, d)
		}
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	date := time.Now().Add(20 * time.Second).UTC().Format(http.TimeFormat)
	sys := newSystem(t, func(n int, _ webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		switch n {
		case 0:
			w.Header().Set("Retry-After", "7")
			writeJSON(w, 429, `{"error":"slow down ann@example.com"}`)
		case 1:
			w.Header().Set("Retry-After", "3600")
			writeJSON(w, 429, `{}`)
		case 2:
			w.Header().Set("Retry-After", date)
			writeJSON(w, 503, `{}`)
		default:
			writeJSON(w, 200, `{"records":{"contacts":[{"id":"c1"}]}}`)
		}
	})
	c, sl := newConnector(t, testConfig(sys.URL()), nil)
	d, err := c.Discover(reqCtx(), testSubject)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if d.Total() != 1 || len(sys.Requests()) != 4 {
		t.Errorf("total %d after %d requests", d.Total(), len(sys.Requests()))
	}
	s := sl.get()
	if len(s) != 3 || s[0] != 7*time.Second || s[1] != 60*time.Second || s[2] < 18*time.Second || s[2] > 20*time.Second {
		t.Errorf("sleeps %v, want [7s 60s ~20s]", s)
	}
}

func Test503ThenSuccess(t *testing.T) {
	sys := newSystem(t, func(n int, _ webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		if n == 0 {
			writeJSON(w, 503, `unavailable`)
			return
		}
		writeJSON(w, 200, `{"records":{"orders":[{"orderNo":"o-1"}]},"next":""}`)
	})
	c, sl := newConnector(t, testConfig(sys.URL()), nil)
	d, err := c.Discover(reqCtx(), testSubject)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if matchesOf(t, d, "orders").Records != 1 {
		t.Errorf("discovery %+v", d)
	}
	reqs := sys.Requests()
	if len(reqs) != 2 || string(reqs[0].Body) != string(reqs[1].Body) {
		t.Errorf("retry did not resend the same body")
	}
	if reqs[0].Header.Get(webhook.HeaderIdempotencyKey) != reqs[1].Header.Get(webhook.HeaderIdempotencyKey) {
		t.Errorf("retry changed the Idempotency-Key")
	}
	if s := sl.get(); len(s) != 1 || s[0] < 250*time.Millisecond || s[0] > 500*time.Millisecond {
		t.Errorf("sleeps %v", s)
	}
}

func TestServerErrorsExhaustAttempts(t *testing.T) {
	sys := newSystem(t, func(_ int, _ webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 500, `{"detail":"no customer ann@example.com"}`)
	})
	c, sl := newConnector(t, testConfig(sys.URL()), nil)
	_, err := c.Discover(reqCtx(), testSubject)
	if want := "webhook crm: datasets contacts, orders: access: HTTP 500 after 5 attempts"; err == nil || err.Error() != want {
		t.Fatalf("Discover = %v, want %q", err, want)
	}
	if len(sys.Requests()) != 5 || len(sl.get()) != 4 {
		t.Errorf("%d requests, %d sleeps", len(sys.Requests()), len(sl.get()))
	}
	if e := asError(t, err); e.Status != 500 {
		t.Errorf("status %d", e.Status)
	}
}

func TestClientErrorNotRetried(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 409, 422, 302} {
		sys := newSystem(t, func(_ int, _ webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Location", "https://elsewhere.example.com/")
			writeJSON(w, status, `{"detail":"unknown subject ann@example.com +14155550123"}`)
		})
		c, sl := newConnector(t, testConfig(sys.URL()), nil)
		_, err := c.Discover(reqCtx(), testSubject)
		if err == nil || !strings.Contains(err.Error(), "webhook crm: datasets contacts, orders: access: HTTP "+strconv.Itoa(status)) {
			t.Errorf("HTTP %d: Discover = %v", status, err)
		}
		noPersonalData(t, err)
		if len(sys.Requests()) != 1 || len(sl.get()) != 0 {
			t.Errorf("HTTP %d was retried", status)
		}
	}
}

func TestWrongSecretRejectedByTheSystem(t *testing.T) {
	sys := webhooktest.New(t, testSecret, webhooktest.Options{ExpectBadSignature: true})
	cfg := testConfig(sys.URL())
	cfg.Secret = []byte("another-secret-that-is-long-enough-0123")
	c, _ := newConnector(t, cfg, nil)
	_, err := c.Discover(reqCtx(), testSubject)
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("Discover = %v, want HTTP 401", err)
	}
	if len(sys.Requests()) != 1 {
		t.Errorf("%d requests", len(sys.Requests()))
	}
}

func TestConnectionErrorRetried(t *testing.T) {
	sys := newSystem(t, nil)
	url := sys.URL()
	sys.Close()
	cfg := testConfig(url)
	cfg.MaxAttempts = 2
	c, sl := newConnector(t, cfg, nil)
	_, err := c.Discover(reqCtx(), testSubject)
	if err == nil || !strings.Contains(err.Error(), "connection error") || !strings.Contains(err.Error(), "after 2 attempts") {
		t.Fatalf("Discover = %v", err)
	}
	if strings.Contains(err.Error(), "127.0.0.1") || strings.Contains(err.Error(), "/dsr") {
		t.Errorf("error %q repeats the URL", err)
	}
	if len(sl.get()) != 1 {
		t.Errorf("sleeps %v", sl.get())
	}
}

func TestCancelledWhileWaiting(t *testing.T) {
	sys := newSystem(t, func(_ int, _ webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 503, `{}`)
	})
	c, _ := webhook.New(testConfig(sys.URL()), nil, nil)
	ctx, cancel := context.WithCancel(reqCtx())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	start := time.Now()
	_, err := c.Discover(ctx, testSubject) // real sleep: back-off of ≥250ms, cut by cancel
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Discover = %v, want context.Canceled", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("cancellation took %s", time.Since(start))
	}
	if n := len(sys.Requests()); n != 1 {
		t.Errorf("%d requests after cancellation", n)
	}
}

func TestApply(t *testing.T) {
	var answer string
	sys := newSystem(t, func(_ int, _ webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, answer)
	})
	c, _ := newConnector(t, testConfig(sys.URL()), nil)
	if !c.Delegates("contacts") || !c.Delegates("orders") || c.Delegates("other") {
		t.Errorf("Delegates wrong")
	}
	subject := `"subject":{"emails":["ann@example.com"],"phones":["+14155550123"],"ids":{"customerId":"C-1001"}}`
	cases := []struct {
		action, dataset string
		corrections     map[string]string
		answer          string
		wantBody        string
		want            sources.ChangeResult
	}{
		{webhook.ActionErasure, "contacts", nil, `{"deleted":2,"masked":1,"retained":3,"changed":0}`,
			`{"action":"erasure","requestId":"` + testReqID + `",` + subject + `,"datasets":["contacts"]}`,
			sources.ChangeResult{Deleted: 2, Masked: 1, Retained: 3}},
		{webhook.ActionRectification, "orders", map[string]string{"email": "ann@new.example.com", "name": "Ann New"}, `{"changed":4,"unknown":"ignored"}`,
			`{"action":"rectification","requestId":"` + testReqID + `",` + subject + `,"datasets":["orders"],"corrections":{"email":"ann@new.example.com","name":"Ann New"}}`,
			sources.ChangeResult{Changed: 4}},
		{webhook.ActionRestriction, "contacts", nil, `{"changed":2}`,
			`{"action":"restriction","requestId":"` + testReqID + `",` + subject + `,"datasets":["contacts"]}`,
			sources.ChangeResult{Changed: 2}},
		{webhook.ActionLiftRestriction, "contacts", nil, `{"changed":2}`,
			`{"action":"lift-restriction","requestId":"` + testReqID + `",` + subject + `,"datasets":["contacts"]}`,
			sources.ChangeResult{Changed: 2}},
	}
	for i, tc := range cases {
		answer = tc.answer
		res, err := c.Apply(context.Background(), tc.dataset, sources.Change{Action: tc.action, RequestID: testReqID, Subject: testSubject, Corrections: tc.corrections})
		if err != nil {
			t.Errorf("%s: %v", tc.action, err)
			continue
		}
		if res != tc.want {
			t.Errorf("%s: result %+v, want %+v", tc.action, res, tc.want)
		}
		r := sys.Requests()[i]
		if string(r.Body) != tc.wantBody {
			t.Errorf("%s: body\n got %s\nwant %s", tc.action, r.Body, tc.wantBody)
		}
		if got, want := r.Header.Get(webhook.HeaderIdempotencyKey), testReqID+":"+tc.action+":"+tc.dataset; got != want {
			t.Errorf("%s: Idempotency-Key %q, want %q", tc.action, got, want)
		}
	}
	bad := []struct {
		name    string
		dataset string
		ch      sources.Change
	}{
		{"unknown dataset", "other", sources.Change{Action: webhook.ActionErasure, RequestID: testReqID, Subject: testSubject}},
		{"unknown action", "contacts", sources.Change{Action: "access", RequestID: testReqID, Subject: testSubject}},
		{"bad request id", "contacts", sources.Change{Action: webhook.ActionErasure, RequestID: "../x", Subject: testSubject}},
		{"empty subject", "contacts", sources.Change{Action: webhook.ActionErasure, RequestID: testReqID}},
		{"rectification without corrections", "contacts", sources.Change{Action: webhook.ActionRectification, RequestID: testReqID, Subject: testSubject}},
		{"unknown correction", "contacts", sources.Change{Action: webhook.ActionRectification, RequestID: testReqID, Subject: testSubject, Corrections: map[string]string{"address": "x"}}},
		{"corrections with erasure", "contacts", sources.Change{Action: webhook.ActionErasure, RequestID: testReqID, Subject: testSubject, Corrections: map[string]string{"name": "x"}}},
	}
	before := len(sys.Requests())
	for _, b := range bad {
		if _, err := c.Apply(context.Background(), b.dataset, b.ch); err == nil {
			t.Errorf("%s: Apply succeeded", b.name)
		} else {
			noPersonalData(t, err)
		}
	}
	if len(sys.Requests()) != before {
		t.Errorf("refused changes reached the system")
	}
	for _, a := range []string{`{"deleted":-1}`, `{"deleted":"14155550123"}`, `[]`, `not json ann@example.com`} {
		answer = a
		_, err := c.Apply(context.Background(), "contacts", sources.Change{Action: webhook.ActionErasure, RequestID: testReqID, Subject: testSubject})
		if err == nil {
			t.Errorf("answer %s accepted", a)
		}
		noPersonalData(t, err)
	}
}

func TestApplyFailuresAndPending(t *testing.T) {
	status := 202
	sys := newSystem(t, func(_ int, _ webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, status, `{}`)
	})
	cfg := testConfig(sys.URL())
	cfg.MaxAttempts = 2
	c, _ := newConnector(t, cfg, nil)
	ch := sources.Change{Action: webhook.ActionErasure, RequestID: testReqID, Subject: testSubject}
	if _, err := c.Apply(context.Background(), "contacts", ch); !errors.Is(err, webhook.ErrPending) {
		t.Errorf("202: Apply = %v, want ErrPending", err)
	}
	status = 502
	_, err := c.Apply(context.Background(), "contacts", ch)
	if want := "webhook crm: dataset contacts: erasure: HTTP 502 after 2 attempts"; err == nil || err.Error() != want {
		t.Errorf("502: Apply = %v, want %q", err, want)
	}
}

func TestHashedModeApply(t *testing.T) {
	sys := newHashedSystem(t, func(_ int, _ webhooktest.Request, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, `{"deleted":1}`)
	})
	cfg := testConfig(sys.URL())
	cfg.Identifiers = webhook.IdentifiersHashed
	c, _ := newConnector(t, cfg, nil)
	_, err := c.Apply(context.Background(), "contacts", sources.Change{Action: webhook.ActionRectification, RequestID: testReqID, Subject: testSubject, Corrections: map[string]string{"email": "ann@new.example.com"}})
	if !errors.Is(err, webhook.ErrHashedRectification) {
		t.Fatalf("rectification in hashed mode: %v", err)
	}
	if strings.Contains(err.Error(), "ann@new.example.com") || len(sys.Requests()) != 0 {
		t.Errorf("hashed rectification leaked or was sent")
	}
	res, err := c.Apply(context.Background(), "contacts", sources.Change{Action: webhook.ActionErasure, RequestID: testReqID, Subject: testSubject})
	if err != nil || res.Deleted != 1 {
		t.Fatalf("hashed erasure: %+v, %v", res, err)
	}
	body := string(sys.Requests()[0].Body)
	if !strings.Contains(body, `"emailHashes":["`+webhook.HashIdentifier(testHashKey, "ann@example.com")+`"]`) {
		t.Errorf("hashed erasure body %s", body)
	}
	for _, v := range personal {
		if strings.Contains(body, v) {
			t.Errorf("hashed erasure body contains %q", v)
		}
	}
}
