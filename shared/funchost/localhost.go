package funchost

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/dsr-functions/dsr/shared/problem"
	"github.com/dsr-functions/dsr/shared/queue/embedded"
)

// LocalHost does locally what the Azure Functions host does in production:
// it routes HTTP requests whose method and path match an httpTrigger to the
// handler (forwarding them unchanged), and delivers messages from the
// embedded broker to Service Bus-triggered functions as invocation payloads,
// completing them on a 2xx JSON reply and abandoning them otherwise, and
// invokes timer-triggered functions on their NCRONTAB schedules (in UTC).
// Unlike the Functions host it also takes messages for the embedded queue
// from outside (QueueMessagesPattern), since there is no Service Bus to
// send them to.
type LocalHost struct {
	// Functions are the app's function definitions (from function.json).
	Functions []Function
	// HandlerURL is the custom handler's base URL, e.g. http://127.0.0.1:PORT.
	HandlerURL *url.URL
	// Broker is the embedded queue.
	Broker *embedded.Broker
	// Client calls the handler (default: a client with a 10-minute timeout, the functionTimeout).
	Client *http.Client
	// FunctionKey is the key callers must present, as header x-functions-key
	// or query parameter code, to functions whose authLevel is not
	// anonymous. Empty refuses every such call.
	FunctionKey string
	// Log receives the host's own log lines (never message bodies).
	Log *slog.Logger
	// Concurrency is how many messages of one function are in flight (default 4).
	Concurrency int
	// FailureDelay is how long a message from a dead-letter queue, which has
	// no max delivery count, stays locked after a failed delivery before it
	// is abandoned and can be retried (default 1 s).
	FailureDelay time.Duration
	// MaxLockRenewal bounds how long a running invocation keeps its
	// message locked (default 5 min, host.json maxAutoLockRenewalDuration).
	MaxLockRenewal time.Duration
	// HostToken, when set, is sent to the handler with every request and
	// invocation (HostTokenHeader), so a handler wrapped in
	// RequireHostToken serves the host alone: its port is on 127.0.0.1,
	// where any local process could otherwise skip the key check.
	HostToken string
	// BeforeComplete, when set, is called with the function's name after
	// an invocation succeeded and before its message is completed (crash
	// tests kill the process there; see `dsr local`).
	BeforeComplete func(function string)

	proxyOnce sync.Once
	router    *http.ServeMux
}

func (h *LocalHost) init() {
	h.proxyOnce.Do(func() {
		if h.Client == nil {
			h.Client = &http.Client{Timeout: 10 * time.Minute}
		}
		if h.Log == nil {
			h.Log = slog.Default()
		}
		if h.Concurrency <= 0 {
			h.Concurrency = 4
		}
		if h.MaxLockRenewal <= 0 {
			h.MaxLockRenewal = 5 * time.Minute
		}
		if h.FailureDelay <= 0 {
			h.FailureDelay = time.Second
		}
		proxy := httputil.NewSingleHostReverseProxy(h.HandlerURL)
		direct := proxy.Director
		proxy.Director = func(r *http.Request) {
			direct(r)
			r.Header.Del(HostTokenHeader) // whatever the caller sent
			if h.HostToken != "" {
				r.Header.Set(HostTokenHeader, h.HostToken)
			}
		}
		proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			h.Log.Error("handler unreachable", "err", err)
			problem.Write(w, r, problem.New(http.StatusBadGateway, "handler-unreachable", "", "the function handler did not answer"))
		}
		h.router = http.NewServeMux()
		for _, f := range h.Functions {
			var route http.Handler = proxy
			if f.Trigger().AuthLevel != "anonymous" {
				route = h.requireKey(proxy)
			}
			for _, p := range f.Patterns() {
				h.router.Handle(p, route)
			}
		}
		if h.Broker != nil {
			// Local only (LocalHost is never part of `dsr serve`), and behind
			// the function key like every non-anonymous function.
			h.router.Handle(QueueMessagesPattern, h.requireKey(http.HandlerFunc(h.sendMessage)))
		}
		h.router.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "", "no function serves this method and path"))
		})
	})
}

// requireKey does the host's function key check: the key travels in the
// x-functions-key header or the code query parameter.
func (h *LocalHost) requireKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("x-functions-key")
		if key == "" {
			key = r.URL.Query().Get("code")
		}
		if h.FunctionKey == "" || subtle.ConstantTimeCompare([]byte(key), []byte(h.FunctionKey)) != 1 {
			problem.Write(w, r, problem.New(http.StatusUnauthorized, "function-key-required", "",
				"send the function key in the x-functions-key header (dsr local prints it at start)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// MaxHeaderBytes bounds a request's header lines (names and values); a
// larger header is refused with 431 as problem+json. (Go's server refuses
// headers beyond its own MaxHeaderBytes, 1 MiB by default, before any
// handler runs, with a plain-text 431.)
const MaxHeaderBytes = 64 << 10

// ServeHTTP is the host's HTTP front door. Paths with "." or ".."
// segments or empty segments name no function: they are answered 404
// here, where the mux would redirect to the cleaned path.
func (h *LocalHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.init()
	if headerBytes(r.Header) > MaxHeaderBytes {
		problem.Write(w, r, problem.New(http.StatusRequestHeaderFieldsTooLarge, "headers-too-large", "",
			fmt.Sprintf("the request's headers must be at most %d KiB", MaxHeaderBytes>>10)))
		return
	}
	if !cleanPath(r.URL.EscapedPath()) {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "", "no function serves this method and path (paths with . or .. segments are not followed)"))
		return
	}
	h.router.ServeHTTP(w, r)
}

func headerBytes(h http.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// cleanPath reports whether the escaped path p is a rooted path with no empty, "." or ".."
// segment (a trailing slash is allowed).
func cleanPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	segs := strings.Split(strings.TrimSuffix(p[1:], "/"), "/")
	for i, seg := range segs {
		if s, err := url.PathUnescape(seg); err == nil {
			seg = s // %2e%2e is .. too
		}
		if seg == "." || seg == ".." || (seg == "" && !(i == 0 && len(segs) == 1)) {
			return false
		}
	}
	return true
}

// Run delivers queue messages to the handler and fires timer functions on
// their schedules until ctx ends.
func (h *LocalHost) Run(ctx context.Context) {
	h.init()
	var wg sync.WaitGroup
	for _, f := range h.Functions {
		if f.Trigger().Type == TimerTrigger {
			wg.Add(1)
			go func(f Function) {
				defer wg.Done()
				h.runTimer(ctx, f)
			}(f)
			continue
		}
		if f.Trigger().Type != ServiceBusTrigger {
			continue
		}
		for i := 0; i < h.Concurrency; i++ {
			wg.Add(1)
			go func(f Function) {
				defer wg.Done()
				h.pump(ctx, f)
			}(f)
		}
	}
	wg.Wait()
}

func (h *LocalHost) pump(ctx context.Context, f Function) {
	queueName := f.Trigger().QueueName
	for ctx.Err() == nil {
		d, err := h.Broker.Receive(ctx, queueName)
		if err != nil {
			return
		}
		stopRenewing := h.renewLock(ctx, queueName, d.LockToken)
		err = h.Invoke(ctx, f, d)
		stopRenewing()
		if err != nil {
			h.Log.Warn("invocation failed; message abandoned", "function", f.Name, "deliveryCount", d.DeliveryCount, "err", err)
			if strings.HasSuffix(queueName, embedded.DeadLetterSuffix) {
				// Keep the lock while waiting: abandoned at once, the
				// message would go straight to another of this function's
				// pumps and a failing dead-letter handler would spin.
				t := time.NewTimer(h.FailureDelay)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
			}
			_ = h.Broker.Abandon(queueName, d.LockToken)
			continue
		}
		if h.BeforeComplete != nil {
			h.BeforeComplete(f.Name)
		}
		if err := h.Broker.Complete(queueName, d.LockToken); err != nil {
			// The lock expired during the invocation: the message will be
			// delivered again (at least once), as Service Bus would.
			h.Log.Warn("could not complete message", "function", f.Name, "deliveryCount", d.DeliveryCount, "err", err)
		}
	}
}

// renewLock keeps a delivery locked while its invocation runs, for at most
// MaxLockRenewal, as the host's maxAutoLockRenewalDuration does.
func (h *LocalHost) renewLock(ctx context.Context, queueName, token string) (stop func()) {
	every := h.Broker.LockDuration() / 2
	ctx, cancel := context.WithTimeout(ctx, h.MaxLockRenewal)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if h.Broker.RenewLock(queueName, token) != nil {
					return
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// runTimer invokes a timer function at every occurrence of its schedule,
// one invocation at a time (a tick that comes while the previous one still
// runs is skipped, as the host's singleton lock does).
func (h *LocalHost) runTimer(ctx context.Context, f Function) {
	sched, err := f.Schedule()
	if err != nil {
		h.Log.Error("timer function not scheduled", "function", f.Name, "err", err)
		return
	}
	var last time.Time
	for ctx.Err() == nil {
		next := sched.Next(time.Now().UTC())
		if next.IsZero() {
			h.Log.Warn("timer schedule never fires", "function", f.Name, "schedule", sched.String())
			return
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		following := sched.Next(next)
		if err := h.InvokeTimer(ctx, f, last, following); err != nil && ctx.Err() == nil {
			h.Log.Warn("timer invocation failed", "function", f.Name, "err", err)
		}
		last = next
	}
}

// InvokeTimer sends one timer tick to the handler as the Functions host
// would (last and next are the schedule status it reports) and reports
// whether the invocation succeeded.
func (h *LocalHost) InvokeTimer(ctx context.Context, f Function, last, next time.Time) error {
	h.init()
	payload, err := TimerPayload(f, last, next, false, time.Now())
	if err != nil {
		return err
	}
	return h.post(ctx, f, payload)
}

// Invoke sends one delivery to the handler as the Functions host would and
// reports whether the invocation succeeded: a 2xx reply with Content-Type
// application/json and a non-empty body.
func (h *LocalHost) Invoke(ctx context.Context, f Function, d *embedded.Delivery) error {
	h.init()
	payload, err := InvocationPayload(f, d, time.Now())
	if err != nil {
		return err
	}
	return h.post(ctx, f, payload)
}

// post sends an invocation payload to /<functionName> and checks the reply.
func (h *LocalHost) post(ctx context.Context, f Function, payload []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.HandlerURL.JoinPath(f.Name).String(), bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("build invocation: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-Azure-Functions-InvocationId", newGUID())
	req.Header.Set("X-Azure-Functions-HostVersion", "4.1000.0-local")
	if h.HostToken != "" {
		req.Header.Set(HostTokenHeader, h.HostToken)
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		return fmt.Errorf("invoke %s: %w", f.Name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("invoke %s: handler answered %d", f.Name, resp.StatusCode)
	}
	if !isJSONContentType(resp.Header.Get("Content-Type")) {
		return fmt.Errorf("invoke %s: reply Content-Type %q is not application/json", f.Name, resp.Header.Get("Content-Type"))
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return fmt.Errorf("invoke %s: empty reply body (the real host would hang until functionTimeout)", f.Name)
	}
	// The reply must be an object: "null" reads as no result at all, like an
	// empty body, and an array or scalar is no invocation response.
	var ir InvokeResponse
	if trimmed := bytes.TrimSpace(body); trimmed[0] != '{' {
		return fmt.Errorf("invoke %s: reply is not an invocation response (a JSON object)", f.Name)
	}
	if err := json.Unmarshal(body, &ir); err != nil {
		return fmt.Errorf("invoke %s: reply is not an invocation response: %w", f.Name, err)
	}
	for _, l := range ir.Logs {
		h.Log.Info("function log", "function", f.Name, "log", l)
	}
	return nil
}

// InvocationPayload encodes a delivery exactly as the Functions host does for
// a Service Bus trigger bound as a string: the body serialised twice, strings
// and numbers in metadata serialised into JSON strings, DateTimes at second
// precision without a zone, objects as objects.
func InvocationPayload(f Function, d *embedded.Delivery, now time.Time) ([]byte, error) {
	twice := func(v any) json.RawMessage {
		once, _ := json.Marshal(v)
		b, _ := json.Marshal(string(once))
		return b
	}
	dt := func(t time.Time) json.RawMessage {
		b, _ := json.Marshal(t.UTC().Format("2006-01-02T15:04:05"))
		return b
	}
	obj := func(v any) json.RawMessage {
		b, _ := json.Marshal(v)
		return b
	}
	props := d.Properties
	if props == nil {
		props = map[string]any{}
	}
	md := map[string]json.RawMessage{
		"DeliveryCount":         twice(d.DeliveryCount),
		"MessageId":             twice(d.MessageID),
		"SequenceNumber":        twice(d.SequenceNumber),
		"ContentType":           twice(d.ContentType),
		"LockToken":             twice(d.LockToken),
		"EnqueuedTimeUtc":       dt(d.EnqueuedTime),
		"EnqueuedTime":          dt(d.EnqueuedTime),
		"ExpiresAtUtc":          dt(d.ExpiresAt),
		"ExpiresAt":             dt(d.ExpiresAt),
		"ApplicationProperties": obj(props),
		"UserProperties":        obj(props),
		"sys": obj(map[string]string{
			"MethodName": f.Name, "UtcNow": now.UTC().Format(time.RFC3339Nano), "RandGuid": newGUID(),
		}),
	}
	if d.Subject != "" {
		md["Subject"] = twice(d.Subject)
		md["Label"] = twice(d.Subject)
	}
	if d.DeadLetterSource != "" {
		md["DeadLetterSource"] = twice(d.DeadLetterSource)
	}
	// The body, bound as a string, is serialised by JsonConvert and then sent
	// inside the payload: a JSON string whose content is a JSON string.
	data := map[string]json.RawMessage{f.Trigger().Name: twice(string(d.Body))}
	b, err := json.Marshal(map[string]any{"Data": data, "Metadata": md})
	if err != nil {
		return nil, fmt.Errorf("encode invocation: %w", err)
	}
	return b, nil
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
