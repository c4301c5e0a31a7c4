package funchost_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/queue"
	"github.com/dsr-functions/dsr/shared/queue/embedded"
	"github.com/dsr-functions/dsr/shared/testutil"
)

const workQueue = "q-work"

var localDefs = fstest.MapFS{
	"items-get/function.json": {Data: []byte(httpFn("get", "items/{id}"))},
	"work/function.json": {Data: []byte(`{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg",
		"queueName":"q-work","connection":"ServiceBusConnection"}]}`)},
}

// withDeadLetter adds a function on the work queue's dead-letter queue.
func withDeadLetter() fstest.MapFS {
	fsys := fstest.MapFS{}
	for k, v := range localDefs {
		fsys[k] = v
	}
	fsys["work-deadletter/function.json"] = &fstest.MapFile{Data: []byte(`{"bindings":[{"type":"serviceBusTrigger","direction":"in",
		"name":"msg","queueName":"q-work/$deadletterqueue","connection":"ServiceBusConnection"}]}`)}
	return fsys
}

type localEnv struct {
	broker *embedded.Broker
	host   *funchost.LocalHost
	front  *httptest.Server
}

// startLocal serves handler with httptest and runs a LocalHost against it
// until the test ends.
func startLocal(t *testing.T, fsys fstest.MapFS, handler http.Handler, opts embedded.Options, tweak func(*funchost.LocalHost)) *localEnv {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	e := &localEnv{broker: embedded.New(opts)}
	e.host = &funchost.LocalHost{
		Functions:    loadDefs(t, fsys),
		HandlerURL:   u,
		Broker:       e.broker,
		Client:       &http.Client{Timeout: 2 * time.Second},
		Log:          discardLog(),
		FailureDelay: 10 * time.Millisecond,
		FunctionKey:  testKey,
	}
	if tweak != nil {
		tweak(e.host)
	}
	e.front = httptest.NewServer(e.host)
	t.Cleanup(e.front.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.host.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("LocalHost.Run did not return after its context ended")
		}
	})
	return e
}

func (e *localEnv) send(t *testing.T, queueName string, m queue.Message) {
	t.Helper()
	if err := e.broker.Send(context.Background(), queueName, m); err != nil {
		t.Fatal(err)
	}
}

// call is one request the fake handler received.
type call struct {
	method, path string
	header       http.Header
	body         []byte
	at           time.Time
}

// fakeHandler records every request and answers invocations with reply(n),
// n counting that function's invocations from 1.
type fakeHandler struct {
	mu    sync.Mutex
	calls []call
	reply func(r *http.Request, n int) (status int, contentType, body string)
}

func (h *fakeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.calls = append(h.calls, call{r.Method, r.URL.Path, r.Header.Clone(), body, time.Now()})
	n := 0
	for _, c := range h.calls {
		if c.path == r.URL.Path {
			n++
		}
	}
	h.mu.Unlock()
	status, ct, out := http.StatusOK, "application/json", `{"Outputs":{},"Logs":[],"ReturnValue":null}`
	if h.reply != nil {
		status, ct, out = h.reply(r, n)
	}
	if ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, out)
}

func (h *fakeHandler) callsTo(path string) []call {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []call
	for _, c := range h.calls {
		if c.path == path {
			out = append(out, c)
		}
	}
	return out
}

// deliveryCounts decodes the DeliveryCount of each invocation.
func deliveryCounts(t *testing.T, calls []call) []int {
	t.Helper()
	var out []int
	for _, c := range calls {
		var req funchost.InvokeRequest
		if err := json.Unmarshal(c.body, &req); err != nil {
			t.Fatalf("invocation payload %s: %v", c.body, err)
		}
		m, err := funchost.DecodeQueueMessage(&req, "msg")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.DeliveryCount)
	}
	return out
}

var guid = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestLocalHostDeliversHostWireFormat(t *testing.T) {
	enqueued := time.Date(2025, 5, 1, 12, 34, 56, 789_000_000, time.UTC)
	h := &fakeHandler{}
	e := startLocal(t, localDefs, h, embedded.Options{Now: func() time.Time { return enqueued }}, nil)
	e.send(t, workQueue, queue.Message{ID: "m1", Body: []byte(`{"id":"42"}`), Subject: "discover", Properties: map[string]any{"tenant": "t1"}})
	testutil.WaitFor(t, 5*time.Second, "the message to be completed", func() bool { return len(h.callsTo("/work")) == 1 && e.broker.Idle() })
	c := h.callsTo("/work")[0]

	if c.method != http.MethodPost {
		t.Errorf("method = %s, want POST", c.method)
	}
	if got := c.header.Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := c.header.Get("X-Azure-Functions-InvocationId"); !guid.MatchString(got) {
		t.Errorf("X-Azure-Functions-InvocationId = %q, want a GUID", got)
	}
	if c.header.Get("X-Azure-Functions-HostVersion") == "" {
		t.Error("no X-Azure-Functions-HostVersion header")
	}

	var raw struct {
		Data     map[string]json.RawMessage
		Metadata map[string]json.RawMessage
	}
	if err := json.Unmarshal(c.body, &raw); err != nil {
		t.Fatalf("payload %s: %v", c.body, err)
	}
	var dataKeys []string
	for k := range raw.Data {
		dataKeys = append(dataKeys, k)
	}
	if !reflect.DeepEqual(dataKeys, []string{"msg"}) {
		t.Errorf("Data keys = %q, want [msg]", dataKeys)
	}
	// Byte for byte what the Functions host sends (see the reference doc).
	wantRaw := map[string]string{
		"Data.msg":                       `"\"{\\\"id\\\":\\\"42\\\"}\""`,
		"Metadata.DeliveryCount":         `"1"`,
		"Metadata.MessageId":             `"\"m1\""`,
		"Metadata.SequenceNumber":        `"1"`,
		"Metadata.ContentType":           `"\"application/json\""`,
		"Metadata.EnqueuedTimeUtc":       `"2025-05-01T12:34:56"`,
		"Metadata.EnqueuedTime":          `"2025-05-01T12:34:56"`,
		"Metadata.ExpiresAtUtc":          `"2025-05-15T12:34:56"`,
		"Metadata.ApplicationProperties": `{"tenant":"t1"}`,
		"Metadata.UserProperties":        `{"tenant":"t1"}`,
		"Metadata.Subject":               `"\"discover\""`,
		"Metadata.Label":                 `"\"discover\""`,
	}
	for key, want := range wantRaw {
		var got json.RawMessage
		if name, ok := strings.CutPrefix(key, "Data."); ok {
			got = raw.Data[name]
		} else {
			got = raw.Metadata[strings.TrimPrefix(key, "Metadata.")]
		}
		if string(got) != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
	if lt := raw.Metadata["LockToken"]; !strings.HasPrefix(string(lt), `"\"`) || funchost.String(lt) == "" {
		t.Errorf("LockToken = %s, want a double-encoded string", lt)
	}
	if _, ok := raw.Metadata["DeadLetterSource"]; ok {
		t.Error("DeadLetterSource present on a live-queue message")
	}
	for k, v := range raw.Metadata {
		if string(v) == "null" {
			t.Errorf("Metadata.%s is null; the host omits null values", k)
		}
		if strings.HasSuffix(strings.ToLower(k), "trigger") {
			t.Errorf("Metadata.%s: the host skips keys ending in trigger", k)
		}
	}
	var sys struct{ MethodName, UtcNow, RandGuid string }
	if err := json.Unmarshal(raw.Metadata["sys"], &sys); err != nil {
		t.Fatalf("sys = %s: %v", raw.Metadata["sys"], err)
	}
	if sys.MethodName != "work" {
		t.Errorf("sys.MethodName = %q, want work", sys.MethodName)
	}
	if ts, err := time.Parse(time.RFC3339Nano, sys.UtcNow); err != nil || !strings.HasSuffix(sys.UtcNow, "Z") || time.Since(ts) > time.Minute {
		t.Errorf("sys.UtcNow = %q (%v), want the current UTC time", sys.UtcNow, err)
	}
	if !guid.MatchString(sys.RandGuid) {
		t.Errorf("sys.RandGuid = %q, want a GUID", sys.RandGuid)
	}

	// And our own decoder reads it back.
	var req funchost.InvokeRequest
	_ = json.Unmarshal(c.body, &req)
	m, err := funchost.DecodeQueueMessage(&req, "msg")
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Body) != `{"id":"42"}` || m.MessageID != "m1" || m.DeliveryCount != 1 || !m.EnqueuedTime.Equal(enqueued.Truncate(time.Second)) ||
		m.Properties["tenant"] != "t1" || m.Function != "work" || m.ContentType != "application/json" {
		t.Errorf("decoded = %+v (body %s)", m, m.Body)
	}
}

func TestInvocationPayload(t *testing.T) {
	f := loadDefs(t, withDeadLetter())
	var work, dl funchost.Function
	for _, fn := range f {
		switch fn.Name {
		case "work":
			work = fn
		case "work-deadletter":
			dl = fn
		}
	}
	now := time.Date(2025, 5, 1, 12, 34, 57, 120_000_000, time.FixedZone("CEST", 2*3600))
	at := time.Date(2025, 5, 1, 14, 34, 56, 999_000_000, time.FixedZone("CEST", 2*3600))
	tests := []struct {
		name    string
		fn      funchost.Function
		d       embedded.Delivery
		want    map[string]string // Metadata key (or Data.msg) -> raw JSON
		absent  []string
		wantSys string
	}{
		{
			name: "minimal delivery", fn: work,
			d: embedded.Delivery{MessageID: "a1b2", Body: []byte("abc"), ContentType: "text/plain", DeliveryCount: 4, SequenceNumber: 17, EnqueuedTime: at, ExpiresAt: at},
			want: map[string]string{
				"Data.msg": `"\"abc\""`, "DeliveryCount": `"4"`, "SequenceNumber": `"17"`, "MessageId": `"\"a1b2\""`,
				"ContentType": `"\"text/plain\""`, "EnqueuedTimeUtc": `"2025-05-01T12:34:56"`, "ApplicationProperties": `{}`, "UserProperties": `{}`,
			},
			absent:  []string{"Subject", "Label", "DeadLetterSource"},
			wantSys: "work",
		},
		{
			name: "dead-lettered delivery", fn: dl,
			d: embedded.Delivery{
				MessageID: "a1b2", Body: []byte(`{"id":"42"}`), ContentType: "application/json", DeliveryCount: 1, EnqueuedTime: at,
				Properties: map[string]any{"DeadLetterReason": "MaxDeliveryCountExceeded"}, DeadLetterSource: "q-work",
			},
			want: map[string]string{
				"Data.msg": `"\"{\\\"id\\\":\\\"42\\\"}\""`, "DeadLetterSource": `"\"q-work\""`,
				"ApplicationProperties": `{"DeadLetterReason":"MaxDeliveryCountExceeded"}`,
			},
			wantSys: "work-deadletter",
		},
		{
			name: "number-like string body", fn: work,
			d:    embedded.Delivery{MessageID: "7", Body: []byte("12345"), DeliveryCount: 1, EnqueuedTime: at},
			want: map[string]string{"Data.msg": `"\"12345\""`, "MessageId": `"\"7\""`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := funchost.InvocationPayload(tt.fn, &tt.d, now)
			if err != nil {
				t.Fatal(err)
			}
			var req funchost.InvokeRequest
			if err := json.Unmarshal(b, &req); err != nil {
				t.Fatalf("payload %s: %v", b, err)
			}
			for k, want := range tt.want {
				got := req.Metadata[k]
				if k == "Data.msg" {
					got = req.Data["msg"]
				}
				if string(got) != want {
					t.Errorf("%s = %s, want %s", k, got, want)
				}
			}
			for _, k := range tt.absent {
				if v, ok := req.Metadata[k]; ok {
					t.Errorf("%s = %s, want it absent", k, v)
				}
			}
			var sys map[string]string
			_ = json.Unmarshal(req.Metadata["sys"], &sys)
			if sys["UtcNow"] != "2025-05-01T10:34:57.12Z" {
				t.Errorf("sys.UtcNow = %q, want 2025-05-01T10:34:57.12Z", sys["UtcNow"])
			}
			if tt.wantSys != "" && sys["MethodName"] != tt.wantSys {
				t.Errorf("sys.MethodName = %q, want %q", sys["MethodName"], tt.wantSys)
			}
			m, err := funchost.DecodeQueueMessage(&req, "msg")
			if err != nil {
				t.Fatal(err)
			}
			if string(m.Body) != string(tt.d.Body) || m.MessageID != tt.d.MessageID || m.DeliveryCount != tt.d.DeliveryCount ||
				m.DeadLetterSource != tt.d.DeadLetterSource {
				t.Errorf("round trip = %+v (body %s), want %+v", m, m.Body, tt.d)
			}
		})
	}
}

// queueHandler is the real custom handler (NewHandler) with a scripted work
// function: fail(n) decides the fate of the n-th invocation.
func queueHandler(t *testing.T, fsys fstest.MapFS, fail func(n int) error) (http.Handler, func() []int) {
	t.Helper()
	var (
		mu     sync.Mutex
		counts []int
	)
	work := func(_ context.Context, m *funchost.QueueMessage) error {
		mu.Lock()
		counts = append(counts, m.DeliveryCount)
		n := len(counts)
		mu.Unlock()
		return fail(n)
	}
	reg := funchost.Registry{
		HTTP:  map[string]http.Handler{"items-get": echoHTTP},
		Queue: map[string]funchost.QueueFunc{"work": work},
	}
	if _, ok := fsys["work-deadletter/function.json"]; ok {
		reg.Queue["work-deadletter"] = func(context.Context, *funchost.QueueMessage) error { return nil }
	}
	h, err := funchost.NewHandler(loadDefs(t, fsys), reg, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	return h, func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), counts...)
	}
}

func TestLocalHostRedeliversUntilSuccess(t *testing.T) {
	h, counts := queueHandler(t, localDefs, func(n int) error {
		if n <= 2 {
			return fmt.Errorf("transient failure %d", n)
		}
		return nil
	})
	e := startLocal(t, localDefs, h, embedded.Options{MaxDeliveryCount: 5}, nil)
	e.send(t, workQueue, queue.Message{ID: "m-retry", Body: []byte(`{"id":"1"}`)})
	testutil.WaitFor(t, 5*time.Second, "three invocations and completion", func() bool { return len(counts()) == 3 && e.broker.Idle() })
	if got := counts(); !reflect.DeepEqual(got, []int{1, 2, 3}) {
		t.Errorf("DeliveryCounts seen = %v, want [1 2 3]", got)
	}
	if got := e.broker.Peek(workQueue + embedded.DeadLetterSuffix); len(got) != 0 {
		t.Errorf("dead-lettered: %+v", got)
	}
	time.Sleep(30 * time.Millisecond)
	if got := counts(); len(got) != 3 {
		t.Errorf("completed message delivered again: %v", got)
	}
}

func TestLocalHostDeadLettersAfterMaxDeliveryCount(t *testing.T) {
	h, counts := queueHandler(t, localDefs, func(int) error { return errors.New("always fails") })
	e := startLocal(t, localDefs, h, embedded.Options{MaxDeliveryCount: 3}, nil)
	e.send(t, workQueue, queue.Message{ID: "m-poison", Body: []byte(`{"id":"1"}`), Properties: map[string]any{"tenant": "t1"}})
	dlqName := workQueue + embedded.DeadLetterSuffix
	testutil.WaitFor(t, 5*time.Second, "the message to be dead-lettered", func() bool { return len(e.broker.Peek(dlqName)) == 1 })
	if got := counts(); !reflect.DeepEqual(got, []int{1, 2, 3}) {
		t.Errorf("DeliveryCounts seen = %v, want [1 2 3]", got)
	}
	dl := e.broker.Peek(dlqName)[0]
	if dl.MessageID != "m-poison" || dl.Properties["DeadLetterReason"] != "MaxDeliveryCountExceeded" ||
		dl.DeadLetterSource != workQueue || dl.Properties["tenant"] != "t1" {
		t.Errorf("dead-lettered message = %+v", dl)
	}
	if !e.broker.Idle() {
		t.Error("work queue not empty")
	}
	time.Sleep(30 * time.Millisecond)
	if got := counts(); len(got) != 3 {
		t.Errorf("delivered past MaxDeliveryCount: %v", got)
	}
}

func TestLocalHostDeliversDeadLetters(t *testing.T) {
	const failureDelay = 80 * time.Millisecond
	h := &fakeHandler{reply: func(r *http.Request, n int) (int, string, string) {
		if r.URL.Path == "/work-deadletter" && n > 1 {
			return 200, "application/json", `{"Outputs":{},"Logs":[],"ReturnValue":null}`
		}
		return 500, "application/json", `{"Outputs":{},"Logs":["failed"],"ReturnValue":null}`
	}}
	e := startLocal(t, withDeadLetter(), h, embedded.Options{MaxDeliveryCount: 2}, func(lh *funchost.LocalHost) { lh.FailureDelay = failureDelay })
	e.send(t, workQueue, queue.Message{ID: "m-dl", Body: []byte(`{"id":"9"}`)})
	dlqName := workQueue + embedded.DeadLetterSuffix
	testutil.WaitFor(t, 5*time.Second, "the dead-letter function to succeed", func() bool {
		return len(h.callsTo("/work-deadletter")) == 2 && len(e.broker.Peek(dlqName)) == 0
	})
	if got := deliveryCounts(t, h.callsTo("/work")); !reflect.DeepEqual(got, []int{1, 2}) {
		t.Errorf("work DeliveryCounts = %v, want [1 2]", got)
	}
	calls := h.callsTo("/work-deadletter")
	if got := deliveryCounts(t, calls); !reflect.DeepEqual(got, []int{1, 2}) {
		t.Errorf("dead-letter DeliveryCounts = %v, want [1 2]", got)
	}
	var req funchost.InvokeRequest
	if err := json.Unmarshal(calls[0].body, &req); err != nil {
		t.Fatal(err)
	}
	if got := string(req.Metadata["DeadLetterSource"]); got != `"\"q-work\""` {
		t.Errorf("DeadLetterSource = %s", got)
	}
	m, _ := funchost.DecodeQueueMessage(&req, "msg")
	if m.DeadLetterReason != "MaxDeliveryCountExceeded" || m.DeadLetterSource != workQueue || string(m.Body) != `{"id":"9"}` {
		t.Errorf("dead-letter message = %+v", m)
	}
	// A failing dead-letter delivery is retried (never dead-lettered
	// further), but only after FailureDelay.
	if gap := calls[1].at.Sub(calls[0].at); gap < failureDelay-10*time.Millisecond {
		t.Errorf("dead-letter redelivery after %v, want at least FailureDelay %v", gap, failureDelay)
	}
	if !e.broker.Idle() || len(e.broker.Peek(dlqName+embedded.DeadLetterSuffix)) != 0 {
		t.Error("queues not empty")
	}
}

func TestLocalHostReplyContract(t *testing.T) {
	const good = `{"Outputs":{},"Logs":[],"ReturnValue":null}`
	type reply struct {
		status      int
		contentType string
		body        string
	}
	tests := []struct {
		name      string
		first     reply
		wantCalls int // 1: the first reply succeeded; 2: it failed and the message came back
	}{
		{"200 application/json", reply{200, "application/json", good}, 1},
		{"200 application/json with charset", reply{200, "application/json; charset=utf-8", good}, 1},
		{"202 application/json", reply{202, "application/json", good}, 1},
		{"200 JSON labelled text/plain", reply{200, "text/plain; charset=utf-8", good}, 2},
		{"200 JSON without Content-Type (Go sniffs text/plain)", reply{200, "", good}, 2},
		{"200 application/problem+json", reply{200, "application/problem+json", good}, 2},
		{"200 empty body", reply{200, "application/json", ""}, 2},
		{"200 whitespace body", reply{200, "application/json", " \n"}, 2},
		{"204 no content", reply{204, "application/json", ""}, 2},
		{"200 body not JSON", reply{200, "application/json", "ok"}, 2},
		{"200 body null", reply{200, "application/json", "null"}, 2},
		{"200 body an array", reply{200, "application/json", "[]"}, 2},
		{"500 with a valid body", reply{500, "application/json", good}, 2},
		{"400 with a valid body", reply{400, "application/json", good}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := &fakeHandler{reply: func(_ *http.Request, n int) (int, string, string) {
				if n == 1 {
					return tt.first.status, tt.first.contentType, tt.first.body
				}
				return 200, "application/json", good
			}}
			e := startLocal(t, localDefs, h, embedded.Options{MaxDeliveryCount: 5}, nil)
			e.send(t, workQueue, queue.Message{ID: "m", Body: []byte(`{"id":"1"}`)})
			testutil.WaitFor(t, 5*time.Second, "completion", func() bool { return len(h.callsTo("/work")) >= tt.wantCalls && e.broker.Idle() })
			time.Sleep(20 * time.Millisecond)
			calls := h.callsTo("/work")
			want := []int{1, 2}[:tt.wantCalls]
			if got := deliveryCounts(t, calls); !reflect.DeepEqual(got, want) {
				t.Errorf("DeliveryCounts = %v, want %v", got, want)
			}
		})
	}
}

func TestLocalHostHandlerTimeoutIsAFailure(t *testing.T) {
	h := &fakeHandler{reply: func(r *http.Request, n int) (int, string, string) {
		if n == 1 {
			select { // outlive the host's client timeout
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		}
		return 200, "application/json", `{"Outputs":{},"Logs":[],"ReturnValue":null}`
	}}
	e := startLocal(t, localDefs, h, embedded.Options{}, func(lh *funchost.LocalHost) {
		lh.Client = &http.Client{Timeout: 100 * time.Millisecond}
	})
	e.send(t, workQueue, queue.Message{ID: "m-slow"})
	testutil.WaitFor(t, 5*time.Second, "redelivery after the timeout", func() bool { return len(h.callsTo("/work")) == 2 && e.broker.Idle() })
	if got := deliveryCounts(t, h.callsTo("/work")); !reflect.DeepEqual(got, []int{1, 2}) {
		t.Errorf("DeliveryCounts = %v, want [1 2]", got)
	}
}

func TestLocalHostConcurrentDeliveries(t *testing.T) {
	h, counts := queueHandler(t, localDefs, func(int) error { return nil })
	e := startLocal(t, localDefs, h, embedded.Options{}, func(lh *funchost.LocalHost) { lh.Concurrency = 3 })
	const n = 30
	for i := range n {
		e.send(t, workQueue, queue.Message{ID: fmt.Sprint("m", i)})
	}
	testutil.WaitFor(t, 5*time.Second, "every message to be completed", func() bool { return e.broker.Idle() })
	got := counts()
	sort.Ints(got)
	if len(got) != n || got[n-1] != 1 {
		t.Errorf("%d invocations (max DeliveryCount %v), want %d first deliveries", len(got), got, n)
	}
}

func TestLocalHostFrontDoor(t *testing.T) {
	h := &fakeHandler{reply: func(r *http.Request, _ int) (int, string, string) {
		return 200, "application/json", fmt.Sprintf(`{"path":%q,"query":%q,"id":%q}`, r.URL.Path, r.URL.RawQuery, r.Header.Get("X-Test"))
	}}
	e := startLocal(t, localDefs, h, embedded.Options{}, nil)
	tests := []struct {
		method, path string
		wantStatus   int
		wantBody     string // for proxied requests
	}{
		{"GET", "/api/items/7?expand=1", 200, `{"path":"/api/items/7","query":"expand=1","id":"t"}`},
		{"GET", "/api/nope", 404, ""},
		{"POST", "/api/items/7", 404, ""},
		{"GET", "/api/items", 404, ""},
		{"POST", "/work", 404, ""}, // invocation endpoints are not public
		{"GET", "/", 404, ""},      // nor is the readiness probe
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			before := len(h.callsTo("/work")) + len(h.callsTo("/"))
			req, _ := http.NewRequest(tt.method, e.front.URL+tt.path, strings.NewReader(`{"Data":{"msg":"\"x\""},"Metadata":{}}`))
			req.Header.Set("X-Test", "t")
			req.Header.Set("x-functions-key", testKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d %s, want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if tt.wantStatus == 404 {
				if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("Content-Type = %q, want application/problem+json", ct)
				}
				if after := len(h.callsTo("/work")) + len(h.callsTo("/")); after != before {
					t.Error("the front door forwarded an undeclared route to the handler")
				}
				return
			}
			if string(body) != tt.wantBody {
				t.Errorf("body = %s, want %s", body, tt.wantBody)
			}
		})
	}
}

func TestLocalHostFrontDoorHandlerDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u, _ := url.Parse(srv.URL)
	srv.Close()
	host := &funchost.LocalHost{Functions: loadDefs(t, localDefs), HandlerURL: u, Broker: embedded.New(embedded.Options{}), Log: discardLog(), FunctionKey: testKey}
	w := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api/items/1", nil)
	req.Header.Set("x-functions-key", testKey)
	host.ServeHTTP(w, req)
	if w.Code != http.StatusBadGateway || w.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("handler down: %d %q %s, want 502 problem+json", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
}

// A slow invocation keeps its message locked, as the host's automatic lock
// renewal does, so it is not delivered a second time meanwhile.
func TestLocalHostRenewsLocksOfRunningInvocations(t *testing.T) {
	broker := embedded.New(embedded.Options{LockDuration: 60 * time.Millisecond})
	var mu sync.Mutex
	deliveries := 0
	fns := []funchost.Function{{Name: "slow", Bindings: []funchost.Binding{{Type: funchost.ServiceBusTrigger, Direction: "in", Name: "msg", QueueName: "q", Connection: "c"}}}}
	h, err := funchost.NewHandler(fns, funchost.Registry{Queue: map[string]funchost.QueueFunc{
		"slow": func(ctx context.Context, m *funchost.QueueMessage) error {
			mu.Lock()
			deliveries++
			mu.Unlock()
			time.Sleep(300 * time.Millisecond) // five lock durations
			return nil
		},
	}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	host := &funchost.LocalHost{Functions: fns, HandlerURL: u, Broker: broker, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Concurrency: 2}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { host.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	if err := broker.Send(ctx, "q", queue.Message{ID: "m1", Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !broker.Idle() {
		if time.Now().After(deadline) {
			t.Fatal("message never completed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if deliveries != 1 {
		t.Fatalf("delivered %d times while the first invocation ran, want 1", deliveries)
	}
}

const testKey = "k3y-for-tests"

// The local host checks function keys as the Functions host does: header
// x-functions-key or query code, for every function not authLevel anonymous.
func TestLocalHostRequiresTheFunctionKey(t *testing.T) {
	defs := fstest.MapFS{
		"items-get/function.json": {Data: []byte(httpFn("get", "items/{id}"))},
		"open/function.json": {Data: []byte(`{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous","methods":["get"],"route":"open"},
			{"type":"http","direction":"out","name":"res"}]}`)},
	}
	h := &fakeHandler{reply: func(r *http.Request, _ int) (int, string, string) { return 200, "application/json", `{}` }}
	for _, tc := range []struct {
		name, key string
		path      string
		header    string
		query     string
		want      int
	}{
		{"key in header", testKey, "/api/items/1", testKey, "", 200},
		{"key in code query", testKey, "/api/items/1", "", testKey, 200},
		{"no key", testKey, "/api/items/1", "", "", 401},
		{"wrong key", testKey, "/api/items/1", "nope", "", 401},
		{"key prefix", testKey, "/api/items/1", testKey[:4], "", 401},
		{"host without a key refuses all", "", "/api/items/1", "", "", 401},
		{"anonymous function needs none", testKey, "/api/open", "", "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startLocal(t, defs, h, embedded.Options{}, func(lh *funchost.LocalHost) { lh.FunctionKey = tc.key })
			target := e.front.URL + tc.path
			if tc.query != "" {
				target += "?code=" + url.QueryEscape(tc.query)
			}
			req, _ := http.NewRequest("GET", target, nil)
			if tc.header != "" {
				req.Header.Set("x-functions-key", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == 401 && resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("401 without problem details")
			}
		})
	}
}

// BeforeComplete runs after a successful invocation, while its message is
// still locked (a crash there means a redelivery), and not after a failed one.
func TestLocalHostBeforeComplete(t *testing.T) {
	h, _ := queueHandler(t, localDefs, func(n int) error {
		if n == 1 {
			return errors.New("first delivery fails")
		}
		return nil
	})
	var mu sync.Mutex
	var seen []string
	var e *localEnv
	e = startLocal(t, localDefs, h, embedded.Options{}, func(lh *funchost.LocalHost) {
		lh.BeforeComplete = func(function string) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, fmt.Sprintf("%s:%d", function, len(e.broker.Peek(workQueue))))
		}
	})
	e.send(t, workQueue, queue.Message{ID: "m1"})
	testutil.WaitFor(t, 5*time.Second, "the message to be completed", func() bool { return e.broker.Idle() })
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(seen, []string{"work:1"}) {
		t.Fatalf("BeforeComplete calls %v, want [work:1]", seen)
	}
}
