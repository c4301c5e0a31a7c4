package funchost_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/queue/embedded"
	"github.com/dsr-functions/dsr/shared/testutil"
)

var timerDefs = fstest.MapFS{
	"sweep/function.json": {Data: []byte(`{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"* * * * * *"}]}`)},
}

// timerRecorder is a TimerFunc that keeps what it got and fails on demand.
type timerRecorder struct {
	mu    sync.Mutex
	ticks []*funchost.TimerInfo
	fail  error
}

func (r *timerRecorder) handle(_ context.Context, info *funchost.TimerInfo) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ticks = append(r.ticks, info)
	return r.fail
}

func (r *timerRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ticks)
}

func newTimerHandler(t *testing.T, rec *timerRecorder) http.Handler {
	t.Helper()
	h, err := funchost.NewHandler(loadDefs(t, timerDefs), funchost.Registry{Timer: map[string]funchost.TimerFunc{"sweep": rec.handle}}, discardLog())
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	return h
}

func TestTimerInvocationBothShapes(t *testing.T) {
	info := `{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2026-03-01T10:00:00.0000000+00:00","Next":"2026-03-01T10:05:00+00:00","LastUpdated":"2026-03-01T10:00:00"},"IsPastDue":false}`
	twice, _ := json.Marshal(info)
	for _, tc := range []struct{ name, data string }{
		{"object, as the host sends it", info},
		{"serialised into a string", string(twice)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &timerRecorder{}
			h := newTimerHandler(t, rec)
			body := `{"Data":{"timer":` + tc.data + `},"Metadata":{"sys":{"MethodName":"sweep","UtcNow":"2026-03-01T10:00:00.1Z","RandGuid":"x"}}}`
			w := serve(h, "POST", "/sweep", body, "X-Azure-Functions-InvocationId", "inv-1")
			if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" || strings.TrimSpace(w.Body.String()) == "" {
				t.Fatalf("reply %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body.String())
			}
			var ir funchost.InvokeResponse
			if err := json.Unmarshal(w.Body.Bytes(), &ir); err != nil || ir.Outputs == nil || ir.Logs == nil {
				t.Fatalf("reply is not an invocation response: %s", w.Body.String())
			}
			if rec.count() != 1 {
				t.Fatalf("%d ticks", rec.count())
			}
			got := rec.ticks[0]
			want := funchost.TimerInfo{
				Function: "sweep", InvocationID: "inv-1", AdjustForDST: true,
				Last:        time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC),
				Next:        time.Date(2026, 3, 1, 10, 5, 0, 0, time.UTC),
				LastUpdated: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC),
			}
			if got.Function != want.Function || got.InvocationID != want.InvocationID || got.AdjustForDST != want.AdjustForDST ||
				!got.Last.Equal(want.Last) || !got.Next.Equal(want.Next) || !got.LastUpdated.Equal(want.LastUpdated) || got.IsPastDue {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestTimerInvocationTolerance(t *testing.T) {
	rec := &timerRecorder{}
	h := newTimerHandler(t, rec)
	// No ScheduleStatus (the host sends none without schedule monitoring),
	// lower-case keys, past due.
	w := serve(h, "POST", "/sweep", `{"Data":{"timer":{"schedule":{"adjustForDST":false},"IsPastDue":true}},"Metadata":{}}`)
	if w.Code != http.StatusOK {
		t.Fatalf("reply %d %s", w.Code, w.Body.String())
	}
	if got := rec.ticks[0]; !got.IsPastDue || !got.Last.IsZero() || got.Function != "sweep" {
		t.Fatalf("got %+v", got)
	}
	for _, body := range []string{`{"Data":{},"Metadata":{}}`, `{"Data":{"timer":[1]}}`, `not json`} {
		w := serve(h, "POST", "/sweep", body)
		if w.Code != http.StatusBadRequest || w.Header().Get("Content-Type") != "application/json" || w.Body.Len() == 0 {
			t.Errorf("%s: reply %d %q %q", body, w.Code, w.Header().Get("Content-Type"), w.Body.String())
		}
	}
	if rec.count() != 1 {
		t.Fatalf("invalid payloads reached the function: %d ticks", rec.count())
	}
}

func TestTimerFailureIs500WithJSON(t *testing.T) {
	rec := &timerRecorder{fail: errors.New("storage down")}
	h := newTimerHandler(t, rec)
	w := serve(h, "POST", "/sweep", `{"Data":{"timer":{"IsPastDue":false}},"Metadata":{}}`)
	if w.Code != http.StatusInternalServerError || w.Header().Get("Content-Type") != "application/json" || !strings.Contains(w.Body.String(), "storage down") {
		t.Fatalf("reply %d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body.String())
	}
}

func TestTimerRegistryMismatch(t *testing.T) {
	noopTimer := func(context.Context, *funchost.TimerInfo) error { return nil }
	if _, err := funchost.NewHandler(loadDefs(t, timerDefs), funchost.Registry{}, discardLog()); err == nil || !strings.Contains(err.Error(), "sweep") {
		t.Errorf("missing timer implementation: %v", err)
	}
	_, err := funchost.NewHandler(loadDefs(t, timerDefs), funchost.Registry{Timer: map[string]funchost.TimerFunc{"sweep": noopTimer, "stray": noopTimer}}, discardLog())
	if err == nil || !strings.Contains(err.Error(), "stray") {
		t.Errorf("timer implementation without function.json: %v", err)
	}
	if _, err := funchost.ParseFunction("bad", []byte(`{"bindings":[{"type":"timerTrigger","direction":"in","name":"t","schedule":"*/5 * * * *"}]}`)); err == nil || !strings.Contains(err.Error(), "schedule") {
		t.Errorf("five-field schedule accepted: %v", err)
	}
}

// LocalHost fires a timer function on its schedule with the payload the
// Functions host sends, and the handler's timer path understands it.
func TestLocalHostRunsTimerOnSchedule(t *testing.T) {
	var mu sync.Mutex
	var payloads []map[string]any
	var invocationIDs []string
	rec := &timerRecorder{}
	real := newTimerHandler(t, rec)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var p map[string]any
		_ = json.Unmarshal(b, &p)
		mu.Lock()
		payloads = append(payloads, p)
		invocationIDs = append(invocationIDs, r.Header.Get("X-Azure-Functions-InvocationId"))
		mu.Unlock()
		r2 := r.Clone(r.Context())
		r2.Body = io.NopCloser(bytes.NewReader(b))
		real.ServeHTTP(w, r2)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	host := &funchost.LocalHost{Functions: loadDefs(t, timerDefs), HandlerURL: u, Broker: embedded.New(embedded.Options{}), Log: discardLog()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() { host.Run(ctx); close(done) }()
	testutil.WaitFor(t, 5*time.Second, "two timer ticks", func() bool { return rec.count() >= 2 })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if elapsed := time.Since(start); elapsed > 4*time.Second {
		t.Errorf("two ticks of a per-second schedule took %s", elapsed)
	}
	mu.Lock()
	defer mu.Unlock()
	p := payloads[1]
	data, _ := p["Data"].(map[string]any)
	timer, _ := data["timer"].(map[string]any)
	if timer == nil {
		t.Fatalf("Data.timer missing or not an object: %v", p)
	}
	if sched, _ := timer["Schedule"].(map[string]any); sched["AdjustForDST"] != true {
		t.Errorf("Schedule = %v", timer["Schedule"])
	}
	status, _ := timer["ScheduleStatus"].(map[string]any)
	for _, k := range []string{"Last", "Next", "LastUpdated"} {
		if s, _ := status[k].(string); s == "" {
			t.Errorf("ScheduleStatus.%s missing: %v", k, status)
		}
	}
	if timer["IsPastDue"] != false {
		t.Errorf("IsPastDue = %v", timer["IsPastDue"])
	}
	md, _ := p["Metadata"].(map[string]any)
	if sys, _ := md["sys"].(map[string]any); sys["MethodName"] != "sweep" || sys["UtcNow"] == "" {
		t.Errorf("Metadata.sys = %v", md["sys"])
	}
	if invocationIDs[0] == "" || invocationIDs[0] == invocationIDs[1] {
		t.Errorf("invocation ids %q", invocationIDs)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	second := rec.ticks[1]
	if second.Last.IsZero() || !second.Next.After(second.Last) || second.Next.Sub(second.Last) != 2*time.Second {
		t.Errorf("second tick: Last %s Next %s", second.Last, second.Next)
	}
	if !rec.ticks[0].Last.IsZero() {
		t.Errorf("first tick has a Last: %s", rec.ticks[0].Last)
	}
}
