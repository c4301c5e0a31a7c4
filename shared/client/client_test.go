package client_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/dsr-functions/dsr/shared/client"
	"github.com/dsr-functions/dsr/shared/dsr"
)

const testID = "r019ac3d5e7f1a2b3c4d5e6f7a8b9"

func newClient(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A problem document is returned as a *Problem with every member, and its
// text says status, code and detail.
func TestProblemAnswersAreDecoded(t *testing.T) {
	const doc = `{"type":"urn:dsr-functions:problem:not-allowed","title":"Conflict","status":409,` +
		`"detail":"the request has ended","instance":"/api/requests/` + testID + `/approve","code":"not-allowed",` +
		`"errors":[{"field":"reason","detail":"required"},{"field":"months","detail":"must be 1 or 2"}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusConflict)
		_, _ = io.WriteString(w, doc)
	}))
	defer srv.Close()
	c := newClient(t, client.Config{BaseURL: srv.URL, FunctionKey: "k"})
	_, err := c.Approve(context.Background(), testID)
	var p *client.Problem
	if !errors.As(err, &p) {
		t.Fatalf("error %v (%T) is not a *Problem", err, err)
	}
	if p.Type != "urn:dsr-functions:problem:not-allowed" || p.Title != "Conflict" || p.Status != 409 ||
		p.Detail != "the request has ended" || p.Code != "not-allowed" || len(p.Errors) != 2 || string(p.JSON) != doc {
		t.Errorf("problem decoded as %+v", p)
	}
	for _, want := range []string{"409", "not-allowed", "the request has ended", "months: must be 1 or 2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error text %q lacks %q", err, want)
		}
	}
	if client.StatusOf(err) != 409 || client.Transient(err) {
		t.Errorf("StatusOf %d, Transient %v", client.StatusOf(err), client.Transient(err))
	}
}

// Answers that are not problem documents (App Service Authentication's
// bare 401, an HTML error page) become a *StatusError that keeps nothing of
// the body, with a hint at who answered.
func TestOtherErrorAnswers(t *testing.T) {
	const page = "<html>secret page avery.morgan@contoso.example</html>"
	for _, tc := range []struct {
		name    string
		status  int
		ct      string
		key     string
		cred    bool
		hint    string
		transit bool
	}{
		{"no key", 401, "text/html", "", false, "function key", false},
		{"token refused", 401, "", "k", true, "App Service Authentication", false},
		{"redirect", 302, "text/html", "k", false, "redirected", false},
		{"unknown route", 404, "text/html", "k", false, "base URL", false},
		{"overloaded", 503, "text/html", "k", false, "", true},
		{"throttled", 429, "", "k", false, "", true},
		{"json that is no problem", 500, "application/json", "k", false, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.ct != "" {
					w.Header().Set("Content-Type", tc.ct)
				}
				if tc.status == 302 {
					w.Header().Set("Location", "https://login.example/authorize")
				}
				w.WriteHeader(tc.status)
				if tc.ct == "application/json" {
					_, _ = io.WriteString(w, `{"message":"avery.morgan@contoso.example"}`)
					return
				}
				_, _ = io.WriteString(w, page)
			}))
			defer srv.Close()
			cfg := client.Config{BaseURL: srv.URL, FunctionKey: tc.key, Scope: "api://app/.default"}
			if tc.cred {
				cfg.Credential = &fakeCred{}
			}
			_, err := newClient(t, cfg).Get(context.Background(), testID)
			var se *client.StatusError
			if !errors.As(err, &se) || se.Status != tc.status {
				t.Fatalf("error %v (%T), want a StatusError %d", err, err, tc.status)
			}
			if !strings.Contains(se.Hint, tc.hint) {
				t.Errorf("hint %q lacks %q", se.Hint, tc.hint)
			}
			if strings.Contains(err.Error(), "avery") || strings.Contains(err.Error(), "html") {
				t.Errorf("error repeats the answer's body: %v", err)
			}
			if client.Transient(err) != tc.transit {
				t.Errorf("Transient = %v", client.Transient(err))
			}
		})
	}
}

// fakeCred hands out numbered tokens valid for ttl and counts the calls.
type fakeCred struct {
	mu     sync.Mutex
	calls  int
	scopes []string
	ttl    time.Duration
	err    error
}

func (f *fakeCred) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return azcore.AccessToken{}, f.err
	}
	f.calls++
	f.scopes = o.Scopes
	ttl := f.ttl
	if ttl == 0 {
		ttl = time.Hour
	}
	return azcore.AccessToken{Token: "token-" + string(rune('0'+f.calls)), ExpiresOn: time.Now().Add(ttl)}, nil
}

// The function key travels as x-functions-key and the Entra token as a
// bearer token, both on every call; the token is asked for once for the
// scope and reused until it is about to expire.
func TestCredentialsAreSentAndTokensCached(t *testing.T) {
	var mu sync.Mutex
	var seen []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"`+testID+`","type":"access","state":"received","stage":"intake"}`)
	}))
	defer srv.Close()
	cred := &fakeCred{}
	c := newClient(t, client.Config{BaseURL: srv.URL + "/api/", FunctionKey: "the-key", Credential: cred, Scope: "api://app/.default"})
	for i := 0; i < 3; i++ {
		req, err := c.Get(context.Background(), testID)
		if err != nil {
			t.Fatal(err)
		}
		if req.ID != testID || req.State != dsr.StateReceived || !json.Valid(req.JSON) {
			t.Fatalf("decoded %+v", req.Request)
		}
	}
	if cred.calls != 1 || len(cred.scopes) != 1 || cred.scopes[0] != "api://app/.default" {
		t.Errorf("token asked for %d times with scopes %v, want once for api://app/.default", cred.calls, cred.scopes)
	}
	for _, h := range seen {
		if h.Get("x-functions-key") != "the-key" || h.Get("Authorization") != "Bearer token-1" {
			t.Errorf("call sent key %q and authorization %q", h.Get("x-functions-key"), h.Get("Authorization"))
		}
	}

	// A token about to expire is renewed before it is used.
	short := &fakeCred{ttl: time.Minute}
	c = newClient(t, client.Config{BaseURL: srv.URL, Credential: short, Scope: "s"})
	for i := 0; i < 2; i++ {
		if _, err := c.Get(context.Background(), testID); err != nil {
			t.Fatal(err)
		}
	}
	if short.calls != 2 {
		t.Errorf("a token one minute from expiry was reused (%d token calls)", short.calls)
	}

	// No token, no call; and that is no transient failure.
	calls := len(seen)
	broken := &fakeCred{err: errors.New("az login needed")}
	_, err := newClient(t, client.Config{BaseURL: srv.URL, Credential: broken, Scope: "s"}).Get(context.Background(), testID)
	var te *client.TokenError
	if !errors.As(err, &te) || client.Transient(err) || len(seen) != calls {
		t.Errorf("token failure: %v (transient %v), %d calls made", err, client.Transient(err), len(seen)-calls)
	}
}

// A redirect is handed back, not followed: Go would forward
// x-functions-key to whatever host the redirect names.
func TestRedirectsAreNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	_, err := newClient(t, client.Config{BaseURL: srv.URL, FunctionKey: "k"}).Get(context.Background(), testID)
	if client.StatusOf(err) != http.StatusTemporaryRedirect || elsewhere.Load() != 0 {
		t.Fatalf("redirect: %v, %d calls to the other host", err, elsewhere.Load())
	}
}

func TestBaseURLs(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:7071":                 "http://127.0.0.1:7071",
		"http://127.0.0.1:7071/api":             "http://127.0.0.1:7071",
		"http://localhost:7071/api/":            "http://localhost:7071",
		"http://[::1]:7071":                     "http://[::1]:7071",
		"https://dsr.azurewebsites.net/api":     "https://dsr.azurewebsites.net",
		"https://gw.example/tenants/dsr/api/":   "https://gw.example/tenants/dsr",
		"http://dsr.azurewebsites.net":          "",
		"ftp://127.0.0.1":                       "",
		"127.0.0.1:7071":                        "",
		"https://user:pw@dsr.azurewebsites.net": "",
		"https://dsr.azurewebsites.net/?code=k": "",
	} {
		u, err := client.ParseBaseURL(in)
		switch {
		case want == "" && err == nil:
			t.Errorf("%s accepted as %s", in, u)
		case want != "" && (err != nil || u.String() != want):
			t.Errorf("%s: %v %v, want %s", in, u, err, want)
		}
	}
}

// A malformed id is refused before any call, without repeating it (a
// mistyped argument may be an email address).
func TestBadIDsAreRefusedLocally(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	c := newClient(t, client.Config{BaseURL: srv.URL})
	for _, id := range []string{"avery.morgan@contoso.example", "", "../health", "r1"} {
		_, err := c.Get(context.Background(), id)
		if !errors.Is(err, client.ErrBadID) || (id != "" && strings.Contains(err.Error(), id)) {
			t.Errorf("Get(%q): %v", id, err)
		}
	}
	if calls.Load() != 0 {
		t.Errorf("%d calls made with bad ids", calls.Load())
	}
}

// Each method calls its route with its method, body and query.
func TestRoutes(t *testing.T) {
	type seen struct{ method, path, query, body, ct, idem string }
	var got seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = seen{r.Method, r.URL.Path, r.URL.RawQuery, string(b), r.Header.Get("Content-Type"), r.Header.Get("Idempotency-Key")}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/requests" && r.Method == "GET":
			_, _ = io.WriteString(w, `{"items":[{"id":"`+testID+`","type":"erasure","state":"awaiting_approval","stage":"approval"}],"nextPageToken":"t2"}`)
		case strings.HasSuffix(r.URL.Path, "/audit"):
			_, _ = io.WriteString(w, `{"items":[{"id":"`+testID+`:1","event":"request.received","actor":{"kind":"key","id":"key"}}]}`)
		case strings.HasSuffix(r.URL.Path, "/export-link"):
			_, _ = io.WriteString(w, `{"url":"https://acct.blob.core.windows.net/x?sig=s","expiresAt":"2026-01-01T00:00:00Z","bytes":3,"sha256":"ab"}`)
		default:
			if r.Method == "POST" && r.URL.Path == "/api/requests" {
				w.Header().Set("Idempotent-Replayed", "true")
				w.WriteHeader(http.StatusAccepted)
			}
			_, _ = io.WriteString(w, `{"id":"`+testID+`","type":"erasure","state":"cancelled","stage":"approval"}`)
		}
	}))
	defer srv.Close()
	c := newClient(t, client.Config{BaseURL: srv.URL})
	ctx := context.Background()
	base := "/api/requests/" + testID

	_, replayed, err := c.Create(ctx, []byte(`{"type":"access"}`), "ticket-1")
	if err != nil || !replayed || got != (seen{"POST", "/api/requests", "", `{"type":"access"}`, "application/json", "ticket-1"}) {
		t.Errorf("Create: %v %v %+v", err, replayed, got)
	}
	if _, err := c.Approve(ctx, testID); err != nil || got != (seen{"POST", base + "/approve", "", "", "", ""}) {
		t.Errorf("Approve: %v %+v", err, got)
	}
	if _, err := c.Redrive(ctx, testID); err != nil || got != (seen{"POST", base + "/redrive", "", "", "", ""}) {
		t.Errorf("Redrive: %v %+v", err, got)
	}
	if _, err := c.Reject(ctx, testID, "manifestly unfounded"); err != nil || got.path != base+"/reject" || got.body != `{"reason":"manifestly unfounded"}` || got.ct != "application/json" {
		t.Errorf("Reject: %v %+v", err, got)
	}
	if _, err := c.Extend(ctx, testID, 2, "complex"); err != nil || got.path != base+"/extend" || got.body != `{"months":2,"reason":"complex"}` {
		t.Errorf("Extend: %v %+v", err, got)
	}
	if _, err := c.Cancel(ctx, testID, ""); err != nil || got.path != base+"/cancel" || got.body != "" || got.ct != "" {
		t.Errorf("Cancel without reason: %v %+v", err, got)
	}
	if _, err := c.Cancel(ctx, testID, "withdrawn"); err != nil || got.body != `{"reason":"withdrawn"}` {
		t.Errorf("Cancel: %v %+v", err, got)
	}
	page, err := c.List(ctx, client.ListOptions{State: dsr.StateAwaitingApproval, Type: dsr.TypeErasure, Overdue: true,
		DueBefore: time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC), Limit: 10, PageToken: "t1"})
	if err != nil || got.query != "dueBefore=2026-02-28T00%3A00%3A00Z&limit=10&overdue=true&pageToken=t1&state=awaiting_approval&type=erasure" ||
		len(page.Items) != 1 || page.Items[0].State != dsr.StateAwaitingApproval || page.NextPageToken != "t2" {
		t.Errorf("List: %v %+v %+v", err, got, page)
	}
	if _, err := c.List(ctx, client.ListOptions{}); err != nil || got.query != "" {
		t.Errorf("List without options: %v query %q", err, got.query)
	}
	trail, err := c.Audit(ctx, testID)
	if err != nil || got.path != base+"/audit" || len(trail.Items) != 1 || trail.Items[0].Actor.Kind != "key" {
		t.Errorf("Audit: %v %+v", err, got)
	}
	link, err := c.ExportLink(ctx, testID)
	if err != nil || got != (seen{"POST", base + "/export-link", "", "", "", ""}) || link.Bytes != 3 || link.SHA256 != "ab" {
		t.Errorf("ExportLink: %v %+v %+v", err, got, link)
	}
}

// blobServer serves content as a storage account serves a package, and
// records the headers of each download.
func blobServer(t *testing.T, content []byte, status int) (*httptest.Server, *[]http.Header) {
	t.Helper()
	var seen []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Clone())
		if status != http.StatusOK {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "application/zip")
		_, _ = w.Write(content)
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// A download is saved only when its size and SHA-256 are the package's;
// otherwise nothing is left behind, not even a partial file, and a file
// already at the path is left as it was.
func TestDownloadChecksTheSHA256(t *testing.T) {
	pkg := []byte("PK\x03\x04 the package bytes")
	for _, tc := range []struct {
		name     string
		served   []byte
		status   int
		link     client.Link
		wantErr  string
		checksum bool
	}{
		{"matching", pkg, 200, client.Link{Bytes: int64(len(pkg)), SHA256: sha(pkg)}, "", false},
		{"other bytes, same size", []byte("PK\x03\x04 the packagE bytes"), 200, client.Link{Bytes: int64(len(pkg)), SHA256: sha(pkg)}, "sha256", true},
		{"truncated", pkg[:5], 200, client.Link{Bytes: int64(len(pkg)), SHA256: sha(pkg)}, "bytes received", true},
		{"longer", append(append([]byte{}, pkg...), "tail"...), 200, client.Link{Bytes: int64(len(pkg)), SHA256: sha(pkg)}, "bytes received", true},
		{"expired link", nil, 403, client.Link{Bytes: int64(len(pkg)), SHA256: sha(pkg)}, "expired", false},
		{"no sha256", pkg, 200, client.Link{Bytes: int64(len(pkg))}, "no usable sha256", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blob, seen := blobServer(t, tc.served, tc.status)
			dir := t.TempDir()
			path := filepath.Join(dir, "out.zip")
			if err := os.WriteFile(path, []byte("previous"), 0o600); err != nil {
				t.Fatal(err)
			}
			link := tc.link
			link.URL = blob.URL + "/exports/x.zip?sv=2024&sig=SECRETSIG"
			c := newClient(t, client.Config{BaseURL: "http://127.0.0.1:1", FunctionKey: "api-key"})
			got, err := c.Download(context.Background(), &link, path)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				b, _ := os.ReadFile(path)
				if string(b) != string(pkg) || got.SHA256 != sha(pkg) || got.Bytes != int64(len(pkg)) {
					t.Fatalf("saved %q, %+v", b, got)
				}
				if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
					t.Errorf("package saved with mode %v, want 0600 (personal data)", fi.Mode().Perm())
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				var ce *client.ChecksumError
				if errors.As(err, &ce) != tc.checksum {
					t.Errorf("ChecksumError: %v, want %v", errors.As(err, &ce), tc.checksum)
				}
				if strings.Contains(err.Error(), "SECRETSIG") {
					t.Errorf("the error shows the link's signature: %v", err)
				}
				if b, _ := os.ReadFile(path); string(b) != "previous" {
					t.Errorf("a failed download changed the existing file to %q", b)
				}
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("left behind: %v", entries)
			}
			for _, h := range *seen {
				if h.Get("x-functions-key") != "" || h.Get("Authorization") != "" {
					t.Errorf("our credentials went to the storage account: %v", h)
				}
			}
		})
	}
}

// An export link to another host in plain http is not followed.
func TestDownloadRefusesPlainHTTPLinks(t *testing.T) {
	c := newClient(t, client.Config{BaseURL: "http://127.0.0.1:1"})
	_, err := c.Download(context.Background(), &client.Link{URL: "http://acct.blob.core.windows.net/x?sig=SECRETSIG", Bytes: 1, SHA256: sha([]byte("x"))}, filepath.Join(t.TempDir(), "x.zip"))
	if err == nil || strings.Contains(err.Error(), "SECRETSIG") {
		t.Fatalf("plain http link: %v", err)
	}
}

// SendMessage posts the envelope the local host takes, and only to this
// machine.
func TestSendMessage(t *testing.T) {
	var got map[string]any
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		_ = json.NewDecoder(r.Body).Decode(&got)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"queue":"dsr-intake","messageId":"m-1"}`)
	}))
	defer srv.Close()
	c := newClient(t, client.Config{BaseURL: srv.URL, FunctionKey: "k"})
	r, err := c.SendMessage(context.Background(), "dsr-intake", client.QueueMessage{ID: "m-1", Body: []byte(`{"type":"access"}`), Properties: map[string]any{"source": "crm"}})
	if err != nil || r.MessageID != "m-1" || r.Queue != "dsr-intake" {
		t.Fatalf("send: %v %+v", err, r)
	}
	props, _ := got["applicationProperties"].(map[string]any)
	if path != "/admin/queues/dsr-intake/messages" || got["messageId"] != "m-1" || got["body"] != `{"type":"access"}` || props["source"] != "crm" {
		t.Errorf("posted %v to %s", got, path)
	}
	remote := newClient(t, client.Config{BaseURL: "https://dsr.azurewebsites.net", FunctionKey: "k"})
	if _, err := remote.SendMessage(context.Background(), "dsr-intake", client.QueueMessage{ID: "m", Body: []byte("{}")}); !errors.Is(err, client.ErrNotLocal) {
		t.Errorf("send to Azure: %v, want ErrNotLocal", err)
	}
}

// Only failures that may pass are transient: no answer, 408, 429, 5xx.
func TestTransient(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens there now
	_, err := newClient(t, client.Config{BaseURL: srv.URL}).Get(context.Background(), testID)
	var na *client.NoAnswerError
	if !errors.As(err, &na) || !client.Transient(err) || client.StatusOf(err) != 0 {
		t.Errorf("no answer: %v (%T), transient %v", err, err, client.Transient(err))
	}
	for _, err := range []error{nil, client.ErrBadID, context.Canceled, &client.TokenError{Scope: "s", Err: errors.New("x")},
		&client.Problem{Status: 404}, &client.StatusError{Status: 401}} {
		if client.Transient(err) {
			t.Errorf("%v counted as transient", err)
		}
	}
	for _, s := range []int{408, 429, 500, 502, 503} {
		if !client.Transient(&client.StatusError{Status: s}) {
			t.Errorf("%d not counted as transient", s)
		}
	}
}
