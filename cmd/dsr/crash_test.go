package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
)

// crashRig runs `dsr local` again and again on the same Azurite containers
// and the same queue directory, killing it between runs as kill -9 does.
type crashRig struct {
	t        *testing.T
	bin      string
	port     int
	base     string
	env      []string
	queueDir string
	logs     syncBuffer // every run's output
	cmd      *exec.Cmd
	exited   chan struct{}
	kills    int // crash hook kills logged before the current run
}

const crashMarker = "DSR_LOCAL_CRASH_AFTER: killing the process"

// run starts `dsr local` (with crashAfter as DSR_LOCAL_CRASH_AFTER) and
// waits until it answers.
func (r *crashRig) run(crashAfter string, args ...string) {
	r.t.Helper()
	cmd := exec.Command(r.bin, append([]string{"local", "-port", fmt.Sprint(r.port), "-queue-dir", r.queueDir}, args...)...)
	cmd.Dir = "../.."
	cmd.Env = append(append(os.Environ(), r.env...), "DSR_LOCAL_CRASH_AFTER="+crashAfter)
	r.kills = strings.Count(r.logs.String(), crashMarker)
	fmt.Fprintf(&r.logs, "--- dsr local (DSR_LOCAL_CRASH_AFTER=%q)\n", crashAfter)
	cmd.Stdout, cmd.Stderr = &r.logs, &r.logs
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.cmd, r.exited = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(r.exited)
	r.t.Cleanup(r.kill)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(r.base + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-r.exited:
			if crashAfter != "" && strings.Count(r.logs.String(), crashMarker) > r.kills {
				// It crashed as asked, faster than a poll: a message
				// restored from the journal ran its stage at once.
				return
			}
			r.t.Fatalf("dsr local exited before it was ready:\n%s", r.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("not ready within 30 s:\n%s", r.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill is kill -9.
func (r *crashRig) kill() {
	if r.cmd != nil {
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

// crashed waits for the run to kill itself (its DSR_LOCAL_CRASH_AFTER
// function succeeded). If given, done says whether the stage already ran
// in an earlier run: when it holds and no crash came within two seconds,
// the run is killed.
func (r *crashRig) crashed(function string, done func() bool) {
	r.t.Helper()
	start := time.Now()
	deadline := start.Add(15 * time.Second)
	for {
		select {
		case <-r.exited:
			if strings.Count(r.logs.String(), crashMarker) == r.kills {
				r.t.Fatalf("dsr local exited by itself:\n%s", r.logs.String())
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
		if done != nil && time.Since(start) > 2*time.Second && done() {
			r.t.Logf("%s ran before the restart: killed", function)
			r.kill()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no %s invocation within 15 s:\n%s", function, r.logs.String())
		}
	}
}

func (r *crashRig) api(method, path string, out any) {
	r.t.Helper()
	req, _ := http.NewRequest(method, r.base+"/api"+path, nil)
	req.Header.Set("x-functions-key", localKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		r.t.Fatalf("%s %s: %d\n%s", method, path, resp.StatusCode, r.logs.String())
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			r.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

func (r *crashRig) submit(body string) string {
	r.t.Helper()
	req, _ := http.NewRequest("POST", r.base+"/api/requests", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-functions-key", localKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusAccepted {
		r.t.Fatalf("submit: %d %v\n%s", resp.StatusCode, err, r.logs.String())
	}
	return doc.ID
}

// syncBuffer is a bytes.Buffer the test reads while a process writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type crashDoc struct {
	ID      string
	Type    string
	State   string
	Stage   string
	History []struct {
		Stage, State string
		Attempt      int
	}
	Discovery *struct {
		TotalRecords int64
		Sources      []struct {
			Source  string
			Records int64
		}
	}
	Erasure *struct {
		Sources []struct {
			Source                    string
			Deleted, Masked, Retained int64
			Error                     string
		}
	}
	Verification *struct{ Residual int64 }
	Export       *struct {
		Bytes  int64
		SHA256 string
	}
}

func (r *crashRig) get(id string) crashDoc {
	r.t.Helper()
	var d crashDoc
	r.api("GET", "/requests/"+id, &d)
	return d
}

// within waits until the request is in state, within limit of now.
func (r *crashRig) within(limit time.Duration, id, state string) crashDoc {
	r.t.Helper()
	start := time.Now()
	for {
		d := r.get(id)
		if d.State == state {
			r.t.Logf("%s %s reached %s %v after the restart", d.Type, id, state, time.Since(start).Round(time.Millisecond))
			return d
		}
		if d.State == "failed" || time.Since(start) > limit {
			r.t.Fatalf("%s %s is %s/%s %v after the restart, want %s:\n%s", d.Type, id, d.State, d.Stage, time.Since(start).Round(time.Millisecond), state, r.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A `dsr local` killed at each stage boundary, with the sweeper disabled,
// resumes its in-flight requests within seconds of its restart from the
// embedded queue's journal, and no stage's effect is doubled: each request's
// history and audit trail hold every step once, the erasure report accounts
// for exactly what discovery found, and verification finds nothing left.
func TestLocalResumesAfterKill(t *testing.T) {
	acct := azuritetest.Account(t)
	port := freePort(t)
	r := &crashRig{
		t: t, bin: build(t), port: port, base: fmt.Sprintf("http://127.0.0.1:%d", port), queueDir: t.TempDir(),
		env: []string{
			"AzureWebJobsStorage=" + azuritetest.ConnectionString(t),
			"DSR_STATE_CONTAINER=" + azuritetest.Container(t, acct, "state"),
			"DSR_EXPORTS_CONTAINER=" + azuritetest.Container(t, acct, "exports"),
			"DSR_AUDIT_CONTAINER=" + azuritetest.Container(t, acct, "audit"),
			"DSR_LOCAL_FUNCTION_KEY=" + localKey,
			// Only the queue may bring the requests back.
			"AzureWebJobs.sweeper.Disabled=true",
		},
	}
	const resume = 10 * time.Second
	pastDiscovery := func(ids ...string) func() bool {
		return func() bool {
			for _, id := range ids {
				if s := r.get(id).Stage; s == "intake" || s == "discovery" {
					return false
				}
			}
			return true
		}
	}

	// Killed as soon as both requests are accepted: their discovery
	// messages were sent, perhaps not yet received.
	r.run("", "-sample", "tiny")
	if !strings.Contains(r.logs.String(), `"msg":"function disabled","function":"sweeper"`) {
		t.Fatalf("the sweeper was not disabled:\n%s", r.logs.String())
	}
	erasure := r.submit(`{"type":"erasure","subject":{"email":"` + sample.DemoEmail + `"}}`)
	access := r.submit(`{"type":"access","subject":{"email":"` + sample.DemoEmail + `"}}`)
	r.kill()

	// Killed after a discovery succeeded, before its message was completed:
	// it is delivered again; the next stage's message was sent already.
	r.run("discover")
	r.crashed("discover", pastDiscovery(erasure, access))

	// Killed after the access package was written.
	r.run("export")
	r.crashed("export", func() bool { return r.get(access).State == "completed" })

	// The access request completes, the erasure waits for approval.
	r.run("")
	a := r.within(resume, access, "completed")
	r.within(resume, erasure, "awaiting_approval")
	// Killed right after the approval: the erasure message is sent.
	r.api("POST", "/requests/"+erasure+"/approve", nil)
	r.kill()

	// Killed after erasure changed the data, then after verification.
	r.run("erase")
	r.crashed("erase", func() bool { return r.get(erasure).Erasure != nil })
	r.run("verify")
	r.crashed("verify", func() bool { return r.get(erasure).State == "completed" })

	r.run("")
	e := r.within(resume, erasure, "completed")

	// Nothing was done twice.
	for _, d := range []crashDoc{a, e} {
		seen := map[string]bool{}
		for _, h := range d.History {
			k := h.Stage + "/" + h.State
			if seen[k] {
				t.Errorf("%s: %s twice in the history %+v", d.Type, k, d.History)
			}
			seen[k] = true
		}
		var trail struct {
			Items []struct{ ID, Event, Stage, State string }
		}
		r.api("GET", "/requests/"+d.ID+"/audit", &trail)
		ids := map[string]bool{}
		states := 0
		for _, it := range trail.Items {
			if ids[it.ID] {
				t.Errorf("%s: audit entry %s twice", d.Type, it.ID)
			}
			ids[it.ID] = true
			if it.Event == "state" {
				states++
			}
		}
		if states != len(d.History) {
			t.Errorf("%s: %d state entries in the audit trail, %d in the history", d.Type, states, len(d.History))
		}
	}
	if a.Export == nil || a.Export.Bytes == 0 || a.Discovery == nil || a.Discovery.TotalRecords == 0 {
		t.Errorf("access request: %+v", a)
	}
	if e.Discovery == nil || e.Erasure == nil || e.Verification == nil {
		t.Fatalf("erasure request: %+v", e)
	}
	found := map[string]int64{}
	for _, s := range e.Discovery.Sources {
		found[s.Source] = s.Records
	}
	var deleted int64
	for _, s := range e.Erasure.Sources {
		if s.Error != "" || s.Deleted+s.Masked+s.Retained != found[s.Source] {
			t.Errorf("erasure of %s: %+v, discovery found %d", s.Source, s, found[s.Source])
		}
		deleted += s.Deleted
	}
	if deleted == 0 || e.Verification.Residual != 0 {
		t.Errorf("erasure deleted %d, verification residual %d", deleted, e.Verification.Residual)
	}
	if strings.Contains(strings.ToLower(r.logs.String()), "avery") {
		t.Errorf("personal data in the logs:\n%s", r.logs.String())
	}
}
