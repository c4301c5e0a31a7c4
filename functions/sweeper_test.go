package functions_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/queue/embedded"
)

const sweepErasure = `{"type":"erasure","subject":{"email":"avery.morgan@contoso.example"}}`

// fakeClock is the service clock of a sweeper test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// sweepHarness is a manual harness on a fake clock whose broker does no
// duplicate detection, so only the sweeper itself can prevent a second
// re-drive.
func sweepHarness(t *testing.T) (*harness, *fakeClock) {
	h := newHarness(t, harnessOptions{manual: true, env: noRepeatFlagging})
	clock := &fakeClock{t: time.Now().UTC()}
	h.app.Service.Now = clock.Now
	h.broker = embedded.New(embedded.Options{DuplicateWindow: time.Nanosecond})
	h.host.Broker = h.broker
	h.app.Service.Sender = h.broker
	return h, clock
}

// sweep runs the sweeper as the Functions host would: a timer invocation
// through the local host (which checks a 2xx JSON reply with a body).
func (h *harness) sweep() {
	h.t.Helper()
	now := time.Now().UTC()
	if err := h.host.InvokeTimer(context.Background(), h.function("sweeper"), now.Add(-5*time.Minute), now.Add(5*time.Minute)); err != nil {
		h.t.Fatalf("sweeper: %v\n%s", err, h.logs.String())
	}
}

// lose takes every message off a queue, as if they had been lost.
func (h *harness) lose(queueName string) {
	h.t.Helper()
	for len(h.broker.Peek(queueName)) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d, err := h.broker.Receive(ctx, queueName)
		cancel()
		if err != nil {
			h.t.Fatal(err)
		}
		if err := h.broker.Complete(queueName, d.LockToken); err != nil {
			h.t.Fatal(err)
		}
	}
}

// messageIDs lists the MessageIds waiting on a queue.
func (h *harness) messageIDs(queueName string) []string {
	var ids []string
	for _, d := range h.broker.Peek(queueName) {
		ids = append(ids, d.MessageID)
	}
	return ids
}

func TestSweeperRedrivesStuckRequestsOnce(t *testing.T) {
	h, clock := sweepHarness(t)

	// An erasure request waits for a person: never re-driven.
	waiting := h.submit(sweepErasure)
	h.deliver("discover")
	if doc, _ := h.get(waiting.ID); doc.State != dsr.StateAwaitingApproval {
		t.Fatalf("erasure request is %s", doc.State)
	}
	// A received request whose discover message is lost.
	received := h.submit(demoAccess)
	h.lose("dsr-discover")
	// A request at the export stage whose export message is lost.
	exporting := h.submit(demoAccess)
	h.deliver("discover")
	h.lose("dsr-export")
	if doc, _ := h.get(exporting.ID); doc.Stage != dsr.StageExport || doc.State != dsr.StateInProgress {
		t.Fatalf("exporting request is %s/%s", doc.Stage, doc.State)
	}

	// Before the threshold nothing is stuck.
	clock.Advance(29 * time.Minute)
	h.sweep()
	if !h.broker.Idle() {
		t.Fatalf("re-driven before DSR_SWEEP_STUCK_AFTER: discover %v export %v", h.messageIDs("dsr-discover"), h.messageIDs("dsr-export"))
	}

	clock.Advance(2 * time.Minute)
	// A fresh request whose message is lost too: too young to be re-driven.
	fresh := h.submit(demoAccess)
	h.lose("dsr-discover")

	h.sweep()
	h.sweep() // a second run in the same window re-drives nothing more
	if got := h.messageIDs("dsr-discover"); len(got) != 1 || got[0] != received.ID+":discovery" {
		t.Fatalf("dsr-discover holds %v, want only %s:discovery", got, received.ID)
	}
	if got := h.messageIDs("dsr-export"); len(got) != 1 || got[0] != exporting.ID+":export" {
		t.Fatalf("dsr-export holds %v, want only %s:export", got, exporting.ID)
	}
	for _, q := range []string{"dsr-erase", "dsr-verify"} {
		if got := h.messageIDs(q); len(got) != 0 {
			t.Fatalf("%s holds %v", q, got)
		}
	}
	for id, want := range map[string]dsr.State{waiting.ID: dsr.StateAwaitingApproval, fresh.ID: dsr.StateReceived} {
		if doc, _ := h.get(id); doc.State != want {
			t.Errorf("%s is %s, want %s", id, doc.State, want)
		}
	}
	if !strings.Contains(h.auditRaw(received.ID), `"event":"stage.redriven"`) {
		t.Errorf("the re-drive is not in the audit trail: %s", h.auditRaw(received.ID))
	}

	// The re-sent messages carry the requests on.
	h.deliver("discover")
	h.deliver("export")
	h.deliver("export")
	for _, id := range []string{received.ID, exporting.ID} {
		if doc, _ := h.get(id); doc.State != dsr.StateCompleted {
			t.Errorf("re-driven request %s is %s/%s", id, doc.Stage, doc.State)
		}
	}
	// Completed, they are not re-driven however long they wait; the
	// awaiting one never is.
	clock.Advance(2 * time.Hour)
	h.lose("dsr-discover")
	h.sweep()
	if got := h.messageIDs("dsr-discover"); len(got) != 1 || got[0] != fresh.ID+":discovery" {
		t.Fatalf("after two hours dsr-discover holds %v, want only the now stuck %s", got, fresh.ID)
	}
	if got := h.messageIDs("dsr-export"); len(got) != 0 {
		t.Fatalf("completed requests re-driven: %v", got)
	}
}

// Concurrent sweepers re-drive a stuck request once: the ETag-conditional
// LastSweptAt stamp lets one of them claim it.
func TestConcurrentSweepersRedriveOnce(t *testing.T) {
	h, clock := sweepHarness(t)
	stuck := h.submit(demoAccess)
	h.lose("dsr-discover")
	clock.Advance(31 * time.Minute)
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.app.Service.Sweep(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := h.messageIDs("dsr-discover"); len(got) != 1 || got[0] != stuck.ID+":discovery" {
		t.Fatalf("six concurrent sweeps sent %v", got)
	}
	// After another window without progress it is re-driven again.
	h.lose("dsr-discover")
	clock.Advance(31 * time.Minute)
	h.sweep()
	if got := h.messageIDs("dsr-discover"); len(got) != 1 {
		t.Fatalf("next window: %v", got)
	}
}

func TestSweeperDeletesExpiredExports(t *testing.T) {
	h, clock := sweepHarness(t)
	doc := h.submit(demoAccess)
	h.deliver("discover")
	h.deliver("export")
	if got, exp := h.get(doc.ID); got.State != dsr.StateCompleted || exp.URL == "" {
		t.Fatalf("request %s, export %+v", got.State, exp)
	}
	exportBlobs := func() []string {
		var out []string
		for _, n := range h.blobNames(h.cfg.ExportsContainer) {
			if strings.HasPrefix(n, doc.ID+"/") {
				out = append(out, n)
			}
		}
		return out
	}
	if len(exportBlobs()) != 1 {
		t.Fatalf("export blobs %v", exportBlobs())
	}

	// Link lifetime (1h in the harness) plus 24h grace: not yet.
	clock.Advance(time.Hour + 24*time.Hour - time.Minute)
	h.sweep()
	if len(exportBlobs()) != 1 {
		t.Fatal("the package was deleted before its links and the grace period expired")
	}
	if _, exp := h.get(doc.ID); exp.URL == "" {
		t.Fatal("no link before expiry")
	}

	clock.Advance(2 * time.Minute)
	h.sweep()
	if got := exportBlobs(); len(got) != 0 {
		t.Fatalf("package still there: %v", got)
	}
	resp, b := h.do("GET", "/api/requests/"+doc.ID, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d %s", resp.StatusCode, b)
	}
	got, exp := h.get(doc.ID)
	if got.Export == nil || got.Export.DeletedAt == nil || exp.URL != "" || got.Export.URL != "" || got.Export.ExpiresAt != nil {
		t.Fatalf("after deletion the document shows %s", b)
	}
	if !got.Export.DeletedAt.Equal(clock.Now()) || got.Export.Bytes == 0 || got.Export.SHA256 == "" {
		t.Fatalf("export facts after deletion: %+v", got.Export)
	}
	if resp, b := h.do("POST", "/api/requests/"+doc.ID+"/export-link", ""); resp.StatusCode != http.StatusConflict {
		t.Fatalf("export-link after deletion: %d %s", resp.StatusCode, b)
	}

	// Sweeping again deletes and records nothing more.
	h.sweep()
	raw := h.auditRaw(doc.ID)
	if n := strings.Count(raw, `"event":"export.deleted"`); n != 1 {
		t.Fatalf("%d export.deleted entries in %s", n, raw)
	}
	if !strings.Contains(raw, `"id":"sweeper"`) {
		t.Fatalf("the audit entry does not name the sweeper: %s", raw)
	}
	if !h.broker.Idle() {
		t.Fatal("the sweeper sent messages for a completed request")
	}
}

// The host's timer invocation, as it arrives, gets a 200 JSON reply.
func TestSweeperTimerInvocation(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	payload := `{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2026-03-01T10:00:00+00:00","Next":"2026-03-01T10:05:00+00:00","LastUpdated":"2026-03-01T10:00:00+00:00"},"IsPastDue":false}},` +
		`"Metadata":{"sys":{"MethodName":"sweeper","UtcNow":"2026-03-01T10:00:00.0123Z","RandGuid":"0f8fad5b-d9cb-469f-a165-70867728950e"}}}`
	req, _ := http.NewRequest("POST", h.host.HandlerURL.JoinPath("sweeper").String(), strings.NewReader(payload))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-Azure-Functions-InvocationId", "0f8fad5b-d9cb-469f-a165-70867728950f")
	req.Header.Set(funchost.HostTokenHeader, harnessHostToken) // as the host sends it
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || !strings.Contains(string(b), `"Outputs"`) {
		t.Fatalf("timer invocation: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
}
