package main_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
)

// cli runs the dsr binary as a user would, against one dsr local.
type cli struct {
	t   *testing.T
	bin string
	url string
	dir string // working directory: downloads land here
	// stderrs collects every command's stderr, to check for personal data.
	stderrs *bytes.Buffer
}

type result struct {
	stdout, stderr string
	code           int
}

// cleanEnv is the test's environment without DSR_* settings, so that only
// what a case sets reaches the command.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DSR_") {
			out = append(out, kv)
		}
	}
	return out
}

// runEnv runs the binary with env added to a clean environment.
func (c *cli) runEnv(env []string, args ...string) result {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = c.dir
	cmd.Env = append(cleanEnv(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	c.stderrs.Write(errOut.Bytes())
	return result{out.String(), errOut.String(), code}
}

// run runs the binary with DSR_URL and DSR_FUNCTION_KEY set.
func (c *cli) run(args ...string) result {
	c.t.Helper()
	return c.runEnv([]string{"DSR_URL=" + c.url, "DSR_FUNCTION_KEY=" + localKey}, args...)
}

// ok runs the command and fails the test unless it exits 0.
func (c *cli) ok(args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("dsr %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// fails runs the command and checks its exit code and that stderr says
// what is wrong.
func (c *cli) fails(code int, want string, args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		c.t.Fatalf("dsr %s: exit %d, stderr %q; want exit %d saying %q", strings.Join(args, " "), r.code, r.stderr, code, want)
	}
	return r
}

// requestDoc is what the tests read of a request document.
type requestDoc struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	State  string `json:"state"`
	Stage  string `json:"stage"`
	Origin string `json:"origin"`
	DueAt  time.Time
	Export *struct {
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
	} `json:"export"`
	Extension *struct {
		Months int `json:"months"`
	} `json:"extension"`
	Rejection *struct {
		Reason string `json:"reason"`
		Notice string `json:"notice"`
	} `json:"rejection"`
	Cancellation *struct {
		Reason string `json:"reason"`
	} `json:"cancellation"`
}

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON (%v): %s", err, s)
	}
	return v
}

var requestID = regexp.MustCompile(`^r[0-9a-f]{28}$`)

// createID submits a request with flags and returns the id printed alone on
// stdout.
func (c *cli) createID(args ...string) string {
	c.t.Helper()
	r := c.ok(append([]string{"requests", "create"}, args...)...)
	id := strings.TrimSpace(r.stdout)
	if !requestID.MatchString(id) {
		c.t.Fatalf("create printed %q, want the request id alone", r.stdout)
	}
	return id
}

func (c *cli) get(id string) requestDoc {
	c.t.Helper()
	return decodeJSON[requestDoc](c.t, c.ok("requests", "get", id, "--json").stdout)
}

// The command line against a real `dsr local`: the README walkthrough, the
// approval decisions, the audit trail, listings, the queue path, and the
// refusals, each with its exit code.
func TestCommandLineAgainstDSRLocal(t *testing.T) {
	bin := build(t)
	port := freePort(t)
	acct := azuritetest.Account(t)
	env := []string{
		"AzureWebJobsStorage=" + azuritetest.ConnectionString(t),
		"DSR_STATE_CONTAINER=" + azuritetest.Container(t, acct, "state"),
		"DSR_EXPORTS_CONTAINER=" + azuritetest.Container(t, acct, "exports"),
		"DSR_AUDIT_CONTAINER=" + azuritetest.Container(t, acct, "audit"),
		"DSR_LOCAL_FUNCTION_KEY=" + localKey,
	}
	logs := start(t, bin, port, env, "local", "-port", fmt.Sprint(port), "-sample", "tiny", "-queue-dir", t.TempDir())
	c := &cli{t: t, bin: bin, url: fmt.Sprintf("http://127.0.0.1:%d", port), dir: t.TempDir(), stderrs: &bytes.Buffer{}}

	var accessID string
	t.Run("access walkthrough", func(t *testing.T) {
		c.t = t
		accessID = c.createID("--type", "access", "--email", sample.DemoEmail)
		w := c.ok("requests", "wait", accessID, "--timeout", "60s")
		if w.stdout != accessID+" completed (stage done)\n" {
			t.Errorf("wait printed %q", w.stdout)
		}
		// Not a terminal: one plain progress line per change, the last
		// one where it ended.
		lines := strings.Split(strings.TrimSpace(w.stderr), "\n")
		if last := lines[len(lines)-1]; last != accessID+": done/completed" {
			t.Errorf("progress ended with %q:\n%s", last, w.stderr)
		}
		doc := c.get(accessID)
		if doc.State != "completed" || doc.Export == nil || len(doc.Export.SHA256) != 64 {
			t.Fatalf("request document %+v", doc)
		}
		human := c.ok("requests", "get", accessID).stdout
		for _, want := range []string{accessID, "completed", doc.Export.SHA256, "dsr export download " + accessID} {
			if !strings.Contains(human, want) {
				t.Errorf("get shows no %q:\n%s", want, human)
			}
		}

		d := c.ok("export", "download", accessID, "-o", "avery.zip")
		b, err := os.ReadFile(filepath.Join(c.dir, "avery.zip"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != doc.Export.SHA256 || int64(len(b)) != doc.Export.Bytes {
			t.Fatalf("saved %d bytes with sha256 %x; the request says %d bytes, %s", len(b), sum, doc.Export.Bytes, doc.Export.SHA256)
		}
		if !strings.Contains(d.stdout, "verified") || !strings.Contains(d.stdout, doc.Export.SHA256) {
			t.Errorf("download said %q", d.stdout)
		}
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(zr.File, func(f *zip.File) bool { return f.Name == "manifest.json" }) {
			t.Error("the package has no manifest.json")
		}
		// Default name and --json.
		j := decodeJSON[struct {
			ID, File, SHA256 string
			Bytes            int64
			Verified         bool
		}](t, c.ok("export", "download", accessID, "--json").stdout)
		if j.ID != accessID || j.File != "dsr-export-"+accessID+".zip" || !j.Verified || j.SHA256 != doc.Export.SHA256 {
			t.Errorf("download --json: %+v", j)
		}
		if _, err := os.Stat(filepath.Join(c.dir, j.File)); err != nil {
			t.Error(err)
		}
		link := decodeJSON[struct{ URL, SHA256 string }](t, c.ok("export", "link", accessID, "--json").stdout)
		if !strings.HasPrefix(link.URL, "http://127.0.0.1:") || link.SHA256 != doc.Export.SHA256 {
			t.Errorf("export link --json: %+v", link)
		}
	})

	t.Run("tampered download is refused and leaves no file", func(t *testing.T) {
		c.t = t
		if accessID == "" {
			t.Skip("needs the access walkthrough")
		}
		// An API in front of the real one whose export links lead to a
		// storage that serves the real package with one byte changed, and
		// one that serves it whole but with a wrong sha256.
		var blobURL string
		var mode string
		blob := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			resp, err := http.Get(blobURL)
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if mode == "flip" {
				b[len(b)/2] ^= 0x01
			}
			_, _ = w.Write(b)
		}))
		defer blob.Close()
		api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req, _ := http.NewRequest(r.Method, c.url+r.URL.Path, nil)
			req.Header.Set("x-functions-key", r.Header.Get("x-functions-key"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			var link map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&link)
			resp.Body.Close()
			blobURL = link["url"].(string)
			link["url"] = blob.URL + "/exports/pkg.zip"
			if mode == "wrong-sha" {
				link["sha256"] = strings.Repeat("0", 64)
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(link)
		}))
		defer api.Close()
		for _, mode = range []string{"flip", "wrong-sha"} {
			r := c.runEnv([]string{"DSR_URL=" + api.URL, "DSR_FUNCTION_KEY=" + localKey}, "export", "download", accessID, "-o", "tampered.zip")
			if r.code != 1 || !strings.Contains(r.stderr, "does not match") || !strings.Contains(r.stderr, "nothing saved") {
				t.Errorf("%s: exit %d, stderr %q", mode, r.code, r.stderr)
			}
			leftovers, _ := filepath.Glob(filepath.Join(c.dir, "*tampered*"))
			if len(leftovers) != 0 {
				t.Errorf("%s: files left behind: %v", mode, leftovers)
			}
		}
	})

	// Erasures wait for approval (DSR_APPROVAL_TYPES defaults to erasure
	// and rectification). The subject is in no dataset, so approving
	// changes no sample data other tests read.
	const nobody = "nobody.cli-test@contoso.example"
	var approvedID string
	t.Run("erasure: extend and reject", func(t *testing.T) {
		c.t = t
		id := c.createID("--type", "erasure", "--email", nobody, "--note", "cli test")
		w := c.ok("requests", "wait", id, "--until", "awaiting_approval", "--timeout", "60s", "--json")
		before := decodeJSON[requestDoc](t, w.stdout)
		if before.State != "awaiting_approval" {
			t.Fatalf("waited until %s", before.State)
		}
		// Waiting for completion now times out: it needs a person.
		c.fails(4, "timed out", "requests", "wait", id, "--timeout", "1500ms", "--interval", "200ms")

		ext := decodeJSON[requestDoc](t, c.ok("requests", "extend", id, "--months", "1", "--reason", "many systems to search", "--json").stdout)
		if ext.Extension == nil || ext.Extension.Months != 1 || !ext.DueAt.After(before.DueAt) {
			t.Errorf("extend: %+v (due before %s)", ext, before.DueAt)
		}
		c.fails(1, "months", "requests", "extend", id, "--months", "2", "--reason", "more")

		rej := c.ok("requests", "reject", id, "--reason", "identity not verified")
		if !strings.Contains(rej.stdout, "rejected") || !strings.Contains(rej.stdout, "identity not verified") {
			t.Errorf("reject printed:\n%s", rej.stdout)
		}
		doc := c.get(id)
		if doc.State != "rejected" || doc.Rejection == nil || doc.Rejection.Notice == "" {
			t.Errorf("after reject: %+v", doc)
		}
		// Decisions on an ended request: the API's 409 problem, exit 1.
		c.fails(1, "not-allowed", "requests", "approve", id)
		// Waiting on it ends at once with exit 3 and the state; --json
		// still gives the request as it stands.
		r := c.fails(3, "rejected", "requests", "wait", id, "--timeout", "10s", "--json")
		if decodeJSON[requestDoc](t, r.stdout).State != "rejected" {
			t.Errorf("wait --json on a rejected request printed %q", r.stdout)
		}
	})

	t.Run("erasure: approve", func(t *testing.T) {
		c.t = t
		approvedID = c.createID("--type", "erasure", "--email", nobody)
		c.ok("requests", "wait", approvedID, "--until", "awaiting_approval", "--timeout", "60s")
		c.ok("requests", "approve", approvedID)
		if w := c.ok("requests", "wait", approvedID, "--timeout", "60s", "--json"); decodeJSON[requestDoc](t, w.stdout).State != "completed" {
			t.Errorf("approved erasure ended: %s", w.stdout)
		}
		// An erasure has no package.
		c.fails(1, "no-export", "export", "download", approvedID)

		trail := decodeJSON[struct {
			Items []struct {
				Event, State string
				Actor        *struct{ Kind string }
			}
		}](t, c.ok("requests", "audit", approvedID, "--json").stdout)
		var states []string
		for _, e := range trail.Items {
			states = append(states, e.State)
		}
		if !slices.Contains(states, "awaiting_approval") || !slices.Contains(states, "completed") {
			t.Errorf("audit trail states %v", states)
		}
		human := c.ok("requests", "audit", approvedID).stdout
		if !strings.Contains(human, "EVENT") || strings.Count(human, "\n") != len(trail.Items)+1 {
			t.Errorf("audit table:\n%s", human)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		c.t = t
		id := c.createID("--type", "erasure", "--email", nobody)
		c.ok("requests", "wait", id, "--until", "awaiting_approval", "--timeout", "60s")
		doc := decodeJSON[requestDoc](t, c.ok("requests", "cancel", id, "--reason", "withdrawn by the subject", "--json").stdout)
		if doc.State != "cancelled" || doc.Cancellation == nil || doc.Cancellation.Reason != "withdrawn by the subject" {
			t.Errorf("cancel: %+v", doc)
		}
		c.fails(1, "not-allowed", "requests", "cancel", id)
	})

	t.Run("list", func(t *testing.T) {
		c.t = t
		type page struct {
			Items []struct {
				ID, Type, State string
			}
			NextPageToken string
		}
		all := decodeJSON[page](t, c.ok("requests", "list", "--json").stdout)
		ids := func(p page) []string {
			var out []string
			for _, it := range p.Items {
				out = append(out, it.ID)
			}
			return out
		}
		if !slices.Contains(ids(all), accessID) || !slices.Contains(ids(all), approvedID) {
			t.Errorf("list lacks %s or %s: %v", accessID, approvedID, ids(all))
		}
		done := decodeJSON[page](t, c.ok("requests", "list", "--state", "completed", "--type", "access", "--json").stdout)
		for _, it := range done.Items {
			if it.State != "completed" || it.Type != "access" {
				t.Errorf("filtered list holds %+v", it)
			}
		}
		if !slices.Contains(ids(done), accessID) || slices.Contains(ids(done), approvedID) {
			t.Errorf("completed access requests: %v", ids(done))
		}
		// One per page: the first page points to the next; --all follows
		// every page and gives the same listing.
		first := c.ok("requests", "list", "--limit", "1", "--json")
		if p := decodeJSON[page](t, first.stdout); len(p.Items) != 1 || p.NextPageToken == "" || !strings.Contains(first.stderr, "--page-token") {
			t.Errorf("first page %s, stderr %q", first.stdout, first.stderr)
		}
		paged := decodeJSON[page](t, c.ok("requests", "list", "--limit", "1", "--all", "--json").stdout)
		if !slices.Equal(ids(paged), ids(all)) {
			t.Errorf("--all gave %v, one page of all gave %v", ids(paged), ids(all))
		}
		human := c.ok("requests", "list").stdout
		if !strings.HasPrefix(human, "ID") || !strings.Contains(human, accessID) {
			t.Errorf("list table:\n%s", human)
		}
	})

	t.Run("send to the intake queue", func(t *testing.T) {
		c.t = t
		listIDs := func() []string {
			p := decodeJSON[struct{ Items []struct{ ID string } }](t, c.ok("requests", "list", "--all", "--json").stdout)
			var out []string
			for _, it := range p.Items {
				out = append(out, it.ID)
			}
			return out
		}
		before := listIDs()
		msg := filepath.Join(c.dir, "intake.json")
		body := fmt.Sprintf(`{"type":"discovery","subject":{"ids":{"contactId":%q}},"note":"from the ticketing system"}`, sample.DemoContactID)
		if err := os.WriteFile(msg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		r := c.ok("send", "--queue", "dsr-intake", msg, "--message-id", "ticket-4711", "--property", "source=cli-test")
		if strings.TrimSpace(r.stdout) != "ticket-4711" {
			t.Errorf("send printed %q", r.stdout)
		}
		var created []string
		deadline := time.Now().Add(30 * time.Second)
		for len(created) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no request appeared for the message\n%s", logs)
			}
			time.Sleep(100 * time.Millisecond)
			for _, id := range listIDs() {
				if !slices.Contains(before, id) {
					created = append(created, id)
				}
			}
		}
		doc := c.get(created[0])
		if doc.Type != "discovery" || doc.Origin != "queue" {
			t.Errorf("request from the queue: %+v", doc)
		}
		c.ok("requests", "wait", created[0], "--timeout", "60s")
		// The same MessageId again: dropped (duplicate detection), and
		// even past the window it is the request's idempotency key.
		c.ok("send", msg, "--message-id", "ticket-4711")
		time.Sleep(time.Second)
		if after := listIDs(); len(after) != len(before)+1 {
			t.Errorf("a resent MessageId made another request: %d before, %d after", len(before), len(after))
		}
		// Without --message-id: a fresh one, printed.
		if id := strings.TrimSpace(c.ok("send", msg).stdout); !regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(id) {
			t.Errorf("generated MessageId %q", id)
		}
		c.fails(1, "queue-not-found", "send", "--queue", "dsr-nowhere", msg)
		if r := c.fails(1, "queue-not-found", "send", "--queue", "dsr-nowhere", msg); !strings.Contains(r.stderr, "dsr-intake") {
			t.Errorf("unknown queue: %q does not name the known queues", r.stderr)
		}
		// Against a host that is not this machine: refused before any call.
		r = c.runEnv([]string{"DSR_URL=https://dsr.invalid", "DSR_FUNCTION_KEY=k"}, "send", msg)
		if r.code != 1 || !strings.Contains(r.stderr, "dsr local") {
			t.Errorf("send to Azure: exit %d %q", r.code, r.stderr)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		c.t = t
		c.fails(2, "not a request id", "requests", "get", "not-an-id")
		c.fails(2, "not a request id", "requests", "get", sample.DemoEmail)
		c.fails(2, "unknown command", "requests", "frobnicate")
		c.fails(2, "missing command", "requests")
		c.fails(2, "missing argument", "requests", "get")
		c.fails(2, "too many arguments", "requests", "get", accessID, accessID)
		c.fails(2, "--type", "requests", "create", "--type", "bogus", "--email", sample.DemoEmail)
		c.fails(2, "--file", "requests", "create")
		c.fails(2, "not a state", "requests", "wait", accessID, "--until", "bogus")
		c.fails(2, "--reason is required", "requests", "reject", accessID)
		c.fails(2, "--months", "requests", "extend", accessID, "--months", "3", "--reason", "x")
		c.fails(2, "--state", "requests", "list", "--state", "bogus")
		c.fails(2, "flag provided but not defined", "requests", "list", "--bogus")
		c.fails(2, "plain http", "requests", "list", "--url", "http://example.com")
		bad := filepath.Join(c.dir, "bad.json")
		if err := os.WriteFile(bad, []byte(`{"type":"access","subject":{"email":"`+sample.DemoEmail+`"`), 0o600); err != nil {
			t.Fatal(err)
		}
		c.fails(2, "not valid JSON", "requests", "create", "--file", bad)
		// The API's own refusals: its problem code, exit 1.
		c.fails(1, "422", "requests", "create", "--type", "access", "--name", "Avery Morgan")
		c.fails(1, "request-not-found", "requests", "get", "r000000000000aaaaaaaaaaaaaaaa")
		r := c.runEnv([]string{"DSR_URL=" + c.url, "DSR_FUNCTION_KEY=wrong-key"}, "requests", "get", accessID)
		if r.code != 1 || !strings.Contains(r.stderr, "function-key-required") {
			t.Errorf("wrong key: exit %d %q", r.code, r.stderr)
		}
		// -h is help, not an error.
		if r := c.run("requests", "get", "-h"); r.code != 0 || !strings.Contains(r.stderr, "-entra-scope") {
			t.Errorf("help: exit %d %q", r.code, r.stderr)
		}
	})

	t.Run("local key file", func(t *testing.T) {
		c.t = t
		// No key given: for 127.0.0.1 the key dsr local saved is used.
		if err := os.MkdirAll(filepath.Join(c.dir, ".local"), 0o700); err != nil {
			t.Fatal(err)
		}
		keyFile := filepath.Join(c.dir, ".local", "function-key")
		if err := os.WriteFile(keyFile, []byte(localKey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if r := c.runEnv([]string{"DSR_URL=" + c.url}, "requests", "get", accessID); r.code != 0 {
			t.Errorf("with the key file: exit %d %q", r.code, r.stderr)
		}
		if err := os.WriteFile(keyFile, []byte("stale-key\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if r := c.runEnv([]string{"DSR_URL=" + c.url}, "requests", "get", accessID); r.code != 1 || !strings.Contains(r.stderr, "function-key-required") {
			t.Errorf("with a stale key file: exit %d %q", r.code, r.stderr)
		}
		// DSR_LOCAL_FUNCTION_KEY, as dsr local reads it, comes first.
		if r := c.runEnv([]string{"DSR_URL=" + c.url, "DSR_LOCAL_FUNCTION_KEY=" + localKey}, "requests", "get", accessID); r.code != 0 {
			t.Errorf("with DSR_LOCAL_FUNCTION_KEY: exit %d %q", r.code, r.stderr)
		}
	})

	c.t = t
	if s := strings.ToLower(c.stderrs.String() + logs.String()); strings.Contains(s, "avery") || strings.Contains(s, "nobody.cli-test") {
		t.Fatalf("personal data in the command line's messages or the host's logs:\n%s", s)
	}
}
