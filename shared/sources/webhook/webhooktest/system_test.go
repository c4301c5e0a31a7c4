package webhooktest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/webhook"
	"github.com/dsr-functions/dsr/shared/sources/webhook/webhooktest"
)

var (
	secret  = []byte("webhooktest-signing-secret-0123456789!!")
	hashKey = []byte("webhooktest-hash-key-0123456789abcdef!!")
	reqID   = "r0webhooktest01"
	// subject as the pipeline passes it: phones without '+'.
	subject = sources.Subject{Emails: []string{"ann@example.com"}, Phones: []string{"14155550123"}, IDs: map[string]string{"customerId": "C-1001"}}
)

func seeded(t *testing.T, opts webhooktest.Options) *webhooktest.System {
	opts.Datasets = []webhooktest.Dataset{{Name: "contacts"}, {Name: "orders", Key: "orderNo", Erasure: webhooktest.EraseRetain}}
	sys := webhooktest.New(t, secret, opts)
	sys.Put("contacts", `{"id":"c1","name":"Ann Example","email":" Ann@Example.COM "}`)
	sys.Put("contacts", `{"id":"c2","name":"A. Example","phone":"+1 (415) 555-0123","n":1}`)
	sys.Put("contacts", `{"id":"c3","name":"Bob","email":"bob@example.com","phone":"+14155550124"}`)
	sys.Put("contacts", `{"id":"c4","name":"Ann (AU)","email":"ann@example.com.au"}`)
	sys.Put("orders", `{"orderNo":"o-1","customerId":"C-1001","total":12.5}`)
	sys.Put("orders", `{"orderNo":"o-2","customerId":"C-1002","total":3}`)
	return sys
}

func connector(t *testing.T, sys *webhooktest.System, mutate func(*webhook.Config), store webhook.ResultStore) *webhook.Connector {
	t.Helper()
	cfg := &webhook.Config{Name: "crm", URL: sys.URL(), Secret: secret, HashKey: hashKey, MaxAttempts: 2,
		Datasets: []webhook.Dataset{{Name: "contacts"}, {Name: "orders", Key: "orderNo"}}}
	if mutate != nil {
		mutate(cfg)
	}
	c, err := webhook.New(cfg, nil, store)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func keys(t *testing.T, d *sources.Discovery) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, m := range d.Datasets {
		for _, l := range m.Locations {
			out[m.Dataset] = append(out[m.Dataset], l.Keys...)
		}
	}
	return out
}

func read(t *testing.T, ctx context.Context, c *webhook.Connector, d *sources.Discovery, dataset string) []string {
	t.Helper()
	var out []string
	for _, m := range d.Datasets {
		if m.Dataset != dataset {
			continue
		}
		if err := c.Read(ctx, m, func(r sources.Record) error {
			b, err := r.MarshalJSON()
			out = append(out, string(b))
			return err
		}); err != nil {
			t.Fatalf("Read %s: %v", dataset, err)
		}
	}
	return out
}

func TestRawAccessAndChanges(t *testing.T) {
	sys := seeded(t, webhooktest.Options{PageSize: 1})
	c := connector(t, sys, nil, nil)
	ctx := webhook.WithRequest(context.Background(), reqID, subject)
	d, err := c.Discover(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys(t, d), map[string][]string{"contacts": {"c1", "c2"}, "orders": {"o-1"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("discovered %v, want %v", got, want)
	}
	reqs := sys.Requests()
	if len(reqs) != 3 || reqs[0].Cursor != "" || reqs[1].Cursor == "" || reqs[2].Cursor == "" {
		t.Errorf("paging: %d requests", len(reqs))
	}
	for _, r := range reqs {
		if !r.Verified || r.Status != 200 || r.Action != webhook.ActionAccess || !reflect.DeepEqual(r.Subject.Phones, []string{"+14155550123"}) {
			t.Errorf("request %+v", r)
		}
	}
	if got, want := read(t, ctx, c, d, "contacts"), []string{
		`{"id":"c1","name":"Ann Example","email":" Ann@Example.COM "}`,
		`{"id":"c2","name":"A. Example","phone":"+1 (415) 555-0123","n":1}`,
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("read %q, want %q", got, want)
	}

	apply := func(dataset string, ch sources.Change) sources.ChangeResult {
		t.Helper()
		ch.RequestID = reqID
		if ch.Subject.Emails == nil {
			ch.Subject = subject
		}
		res, err := c.Apply(context.Background(), dataset, ch)
		if err != nil {
			t.Fatalf("%s %s: %v", ch.Action, dataset, err)
		}
		return res
	}
	if res := apply("contacts", sources.Change{Action: webhook.ActionRestriction}); res != (sources.ChangeResult{Changed: 2}) {
		t.Errorf("restriction %+v", res)
	}
	if !sys.Restricted("contacts", "c1") || !sys.Restricted("contacts", "c2") || sys.Restricted("contacts", "c3") {
		t.Error("restriction flags wrong")
	}
	// The same Idempotency-Key again: the first result, nothing changed.
	if res := apply("contacts", sources.Change{Action: webhook.ActionRestriction}); res != (sources.ChangeResult{Changed: 2}) {
		t.Errorf("repeated restriction %+v", res)
	}
	if r := sys.Requests(); !r[len(r)-1].Repeat {
		t.Error("repeat not marked")
	}
	if res := apply("contacts", sources.Change{Action: webhook.ActionLiftRestriction}); res != (sources.ChangeResult{Changed: 2}) || sys.Restricted("contacts", "c1") {
		t.Errorf("lift %+v", res)
	}
	corr := map[string]string{"email": "ann@new.example.com", "phone": "+14155550199", "name": "Ann New"}
	if res := apply("contacts", sources.Change{Action: webhook.ActionRectification, Corrections: corr}); res != (sources.ChangeResult{Changed: 2}) {
		t.Errorf("rectification %+v", res)
	}
	if got, _ := sys.Record("contacts", "c1"); got != `{"id":"c1","name":"Ann New","email":"ann@new.example.com"}` {
		t.Errorf("c1 after rectification: %s", got)
	}
	if got, _ := sys.Record("contacts", "c2"); got != `{"id":"c2","name":"Ann New","phone":"+14155550199","n":1}` {
		t.Errorf("c2 after rectification: %s", got)
	}
	newSubject := sources.Subject{Emails: []string{"ann@new.example.com"}, Phones: []string{"14155550199"}, IDs: subject.IDs}
	if res := apply("contacts", sources.Change{Action: webhook.ActionErasure, Subject: newSubject}); res != (sources.ChangeResult{Deleted: 2}) {
		t.Errorf("erasure %+v", res)
	}
	if res := apply("orders", sources.Change{Action: webhook.ActionErasure, Subject: newSubject}); res != (sources.ChangeResult{Retained: 1}) {
		t.Errorf("orders erasure %+v", res)
	}
	if got := sys.Records("contacts"); len(got) != 2 || !strings.Contains(got[0], `"c3"`) || !strings.Contains(got[1], `"c4"`) {
		t.Errorf("left %q", got)
	}
	var actions []string
	for _, ch := range sys.Changes() {
		actions = append(actions, ch.Action+" "+ch.Dataset)
	}
	if want := []string{"restriction contacts", "lift-restriction contacts", "rectification contacts", "erasure contacts", "erasure orders"}; !reflect.DeepEqual(actions, want) {
		t.Errorf("changes %q, want %q", actions, want)
	}
}

func TestHashedMode(t *testing.T) {
	sys := seeded(t, webhooktest.Options{Hashed: true, HashKey: hashKey})
	c := connector(t, sys, func(cfg *webhook.Config) { cfg.Identifiers = webhook.IdentifiersHashed }, nil)
	ctx := webhook.WithRequest(context.Background(), reqID, subject)
	d, err := c.Discover(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys(t, d), map[string][]string{"contacts": {"c1", "c2"}, "orders": {"o-1"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("discovered %v, want %v", got, want)
	}
	r := sys.Requests()[0]
	if len(r.Subject.Emails) != 0 || !reflect.DeepEqual(r.Subject.EmailHashes, []string{webhook.HashIdentifier(hashKey, "ann@example.com")}) {
		t.Errorf("subject %+v", r.Subject)
	}
	res, err := c.Apply(context.Background(), "contacts", sources.Change{Action: webhook.ActionErasure, RequestID: reqID, Subject: subject})
	if err != nil || res != (sources.ChangeResult{Deleted: 2}) {
		t.Errorf("erasure %+v %v", res, err)
	}
}

func TestFailures(t *testing.T) {
	sys := seeded(t, webhooktest.Options{})
	c := connector(t, sys, nil, nil)
	ctx := webhook.WithRequest(context.Background(), reqID, subject)
	sys.Fail(webhooktest.Failure{Action: webhook.ActionAccess, Status: 503, Header: map[string]string{"Retry-After": "0"}, Times: 1})
	if _, err := c.Discover(ctx, subject); err != nil {
		t.Fatalf("Discover after one 503: %v", err)
	}
	// The answer to an applied erasure is lost: the retry gets the first result.
	sys.Fail(webhooktest.Failure{Action: webhook.ActionErasure, Dataset: "contacts", Status: 502, Times: 1, AfterApply: true})
	res, err := c.Apply(context.Background(), "contacts", sources.Change{Action: webhook.ActionErasure, RequestID: reqID, Subject: subject})
	if err != nil || res != (sources.ChangeResult{Deleted: 2}) {
		t.Fatalf("erasure %+v %v", res, err)
	}
	var statuses []string
	for _, r := range sys.Requests() {
		statuses = append(statuses, fmt.Sprintf("%s:%d:%v", r.Action, r.Status, r.Repeat))
	}
	if want := []string{"access:503:false", "access:200:false", "erasure:502:false", "erasure:200:true"}; !reflect.DeepEqual(statuses, want) {
		t.Errorf("requests %q, want %q", statuses, want)
	}
	if n := len(sys.Changes()); n != 1 {
		t.Errorf("%d changes applied, want 1", n)
	}
	// Forever, then cleared; a dropped connection.
	sys.Fail(webhooktest.Failure{Status: 403, Times: -1})
	if _, err := c.Discover(ctx, subject); err == nil || !strings.Contains(err.Error(), "HTTP 403") {
		t.Errorf("403 forever: %v", err)
	}
	sys.ClearFailures()
	sys.Fail(webhooktest.Failure{Status: -1, Times: 1})
	if _, err := c.Discover(ctx, subject); err != nil {
		t.Errorf("after a dropped connection: %v", err)
	}
}

// callbackServer is our side: the connector's callback endpoint.
func callbackServer(t *testing.T, sys *webhooktest.System, store webhook.ResultStore) (*webhook.Connector, *[]string) {
	mux := http.NewServeMux()
	cb := httptest.NewServer(mux)
	t.Cleanup(cb.Close)
	c := connector(t, sys, func(cfg *webhook.Config) { cfg.CallbackBase = cb.URL + "/cb" }, store)
	var mu sync.Mutex
	completed := &[]string{}
	mux.Handle("POST /cb/{id}", c.CallbackHandler(webhook.CallbackOptions{OnComplete: func(_ context.Context, id string) error {
		mu.Lock()
		defer mu.Unlock()
		*completed = append(*completed, id)
		return nil
	}}))
	return c, completed
}

func TestAsyncManual(t *testing.T) {
	sys := seeded(t, webhooktest.Options{Async: true, ManualCallbacks: true, PageSize: 1, CallbackReverse: true})
	c, completed := callbackServer(t, sys, webhook.NewMemoryStore())
	ctx := webhook.WithRequest(context.Background(), reqID, subject)
	for range 2 {
		if _, err := c.Discover(ctx, subject); !errors.Is(err, webhook.ErrPending) {
			t.Fatalf("Discover = %v, want ErrPending", err)
		}
	}
	if got := sys.Pending(); !reflect.DeepEqual(got, []string{reqID}) {
		t.Errorf("pending %v", got)
	}
	if err := sys.Deliver(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sys.Pending()) != 0 || !reflect.DeepEqual(*completed, []string{reqID}) {
		t.Errorf("pending %v, completed %v", sys.Pending(), *completed)
	}
	var cursors []string
	for _, d := range sys.Deliveries() {
		cursors = append(cursors, d.Cursor)
		if d.Status != 200 {
			t.Errorf("delivery %+v", d)
		}
	}
	if want := []string{"cb/3", "cb/2", ""}; !reflect.DeepEqual(cursors, want) {
		t.Errorf("delivered %q, want %q", cursors, want)
	}
	asked := len(sys.Requests())
	d, err := c.Discover(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys(t, d), map[string][]string{"contacts": {"c1", "c2"}, "orders": {"o-1"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("discovered %v, want %v", got, want)
	}
	if got := read(t, ctx, c, d, "orders"); !reflect.DeepEqual(got, []string{`{"orderNo":"o-1","customerId":"C-1001","total":12.5}`}) {
		t.Errorf("orders %q", got)
	}
	if len(sys.Requests()) != asked {
		t.Error("the system was asked again although the result is stored")
	}
}

func TestAsyncAutomatic(t *testing.T) {
	sys := seeded(t, webhooktest.Options{Async: true, CallbackDelay: 10 * time.Millisecond})
	c, completed := callbackServer(t, sys, webhook.NewMemoryStore())
	ctx := webhook.WithRequest(context.Background(), reqID, subject)
	if _, err := c.Discover(ctx, subject); !errors.Is(err, webhook.ErrPending) {
		t.Fatalf("Discover = %v, want ErrPending", err)
	}
	sys.Wait()
	if !reflect.DeepEqual(*completed, []string{reqID}) {
		t.Fatalf("completed %v", *completed)
	}
	d, err := c.Discover(ctx, subject)
	if err != nil || d.Total() != 3 {
		t.Fatalf("Discover = %+v, %v", d, err)
	}
}

// recorder collects the failures a System reports instead of failing.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.errs
	r.errs = nil
	return e
}

func TestStrictness(t *testing.T) {
	rec := &recorder{TB: t}
	sys := webhooktest.New(rec, secret, webhooktest.Options{Datasets: []webhooktest.Dataset{{Name: "contacts"}}})
	good := `{"action":"erasure","requestId":"r1","subject":{"emails":["ann@example.com"],"phones":[],"ids":{}},"datasets":["contacts"]}`
	post := func(body string, mutate func(http.Header)) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, sys.URL(), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Header.Set(webhook.HeaderRequestID, "r1")
		req.Header.Set(webhook.HeaderIdempotencyKey, "r1:erasure:contacts")
		webhook.SetSignature(req.Header, secret, []byte(body), time.Now())
		if mutate != nil {
			mutate(req.Header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := post(good, nil); st != 200 || len(rec.take()) != 0 {
		t.Fatalf("a good request: %d", st)
	}
	cases := map[string]struct {
		body   string
		mutate func(http.Header)
		status int
	}{
		"bad signature":       {good, func(h http.Header) { h.Set(webhook.HeaderSignature, "sha256=00") }, 401},
		"stale":               {good, func(h http.Header) { webhook.SetSignature(h, secret, []byte(good), time.Now().Add(-2*time.Minute)) }, 401},
		"idempotency key":     {good, func(h http.Header) { h.Set(webhook.HeaderIdempotencyKey, "r1:erasure") }, 400},
		"request id header":   {good, func(h http.Header) { h.Set(webhook.HeaderRequestID, "r2") }, 400},
		"accept":              {good, func(h http.Header) { h.Del("Accept") }, 400},
		"unknown member":      {strings.Replace(good, `"datasets"`, `"extra":1,"datasets"`, 1), nil, 400},
		"null member":         {strings.Replace(good, `}`, `,"cursor":null}`, 1), nil, 400},
		"unnormalised email":  {strings.Replace(good, `ann@example.com`, `Ann@example.com`, 1), nil, 400},
		"phone without plus":  {strings.Replace(good, `"phones":[]`, `"phones":["14155550123"]`, 1), nil, 400},
		"hashed subject":      {strings.Replace(good, `"emails"`, `"emailHashes"`, 1), nil, 400},
		"no identifier":       {strings.Replace(good, `["ann@example.com"]`, `[]`, 1), nil, 400},
		"unknown dataset":     {strings.Replace(good, `["contacts"]`, `["orders"]`, 1), func(h http.Header) { h.Set(webhook.HeaderIdempotencyKey, "r1:erasure:orders") }, 400},
		"corrections":         {strings.Replace(good, `]}`, `],"corrections":{"name":"X"}}`, 1), nil, 400},
		"cursor with erasure": {strings.Replace(good, `]}`, `],"cursor":"x"}`, 1), nil, 400},
	}
	for name, tc := range cases {
		if st := post(tc.body, tc.mutate); st != tc.status {
			t.Errorf("%s: answered %d, want %d", name, st, tc.status)
		}
		if errs := rec.take(); len(errs) == 0 {
			t.Errorf("%s: the test would not have failed", name)
		}
	}
	if n := len(sys.Changes()); n != 1 {
		t.Errorf("%d changes applied, want 1", n)
	}
}
