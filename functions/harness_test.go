package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/dsr-functions/dsr/functions"
	"github.com/dsr-functions/dsr/shared/config"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/queue/embedded"
	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
	"github.com/dsr-functions/dsr/shared/testutil/latencyproxy"
	"github.com/dsr-functions/dsr/shared/testutil/pgtest"
)

func TestMain(m *testing.M) {
	code := azuritetest.Run(m)
	stopPostgres()
	os.Exit(code)
}

var (
	pgOnce sync.Once
	pgStop func()
	pgErr  error
)

// postgresDSN starts a throwaway PostgreSQL the first time a test needs
// one (or uses DSR_TEST_POSTGRES) and returns a fresh database's DSN.
func postgresDSN(t *testing.T) string {
	t.Helper()
	pgOnce.Do(func() {
		if os.Getenv(pgtest.EnvVar) != "" {
			return
		}
		var dsn string
		pgStop, dsn, pgErr = pgtest.Start()
		if pgErr == nil {
			os.Setenv(pgtest.EnvVar, dsn)
		}
	})
	if pgErr != nil {
		t.Fatalf("start PostgreSQL: %v", pgErr)
	}
	return pgtest.Database(t)
}

func stopPostgres() {
	if pgStop != nil {
		pgStop()
	}
}

// syncBuffer collects every log line of a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness is the app as `dsr local` runs it: the handler behind the built-in
// host, the embedded queue, Azurite, and the sample datasets in a container
// of its own.
type harness struct {
	t   testing.TB
	app *functions.App
	// handlerURL is the handler's own port, behind the host token.
	handlerURL string
	broker     *embedded.Broker
	host       *funchost.LocalHost
	front      *httptest.Server
	logs       *syncBuffer
	cfg        *config.Config
	sources    *sources.Config
	datasets   string
	state      string
	outbox     string
	proofs     string
	size       sample.Size
	// trace records the app's storage operations (traceStorage).
	trace *storageTrace
}

type harnessOptions struct {
	// manual: no message pumps; the test delivers messages itself.
	manual bool
	// maxDelivery of the embedded queues (default 10).
	maxDelivery int
	// editSources changes the sources config before the app starts.
	editSources func(*sources.Config)
	// env overrides settings (e.g. DSR_AUTH_MODE).
	env map[string]string
	// app are the application's options (HTTP client, credential).
	app functions.Options
	// size of the sample datasets (default tiny).
	size sample.Size
	// upload, when set, writes one sample dataset into its blob (default:
	// generated in memory and uploaded in one piece).
	upload func(ctx context.Context, bc *blockblob.Client, f sample.File, size sample.Size) error
	// format, when set, is a sample format other than native
	// (sample.RegisterFormat): the sample is written in it and
	// sample/sources.<format>.json describes it.
	format string
	// concurrency is how many messages of one function the host runs at
	// once (default the local host's 4).
	concurrency int
	// front, when set, is the listener of the host's front door (so its
	// address can be known before the app starts, as WEBSITE_HOSTNAME).
	front net.Listener
	// storageRTT, when set, puts that round trip between the app and
	// Azurite (latencyproxy), as between a Function and Blob Storage; the
	// test's own setup talks to Azurite directly.
	storageRTT time.Duration
	// traceStorage records the app's storage operations (h.trace), behind
	// any storageRTT.
	traceStorage bool
}

// oneContainerSink uploads a sample format's files into one container
// (the test's), whatever container the format names (sample.Container).
type oneContainerSink struct {
	svc       *service.Client
	container string
}

func (s *oneContainerSink) Write(ctx context.Context, container, name string, fill func(io.Writer) error) error {
	if container != sample.Container {
		return fmt.Errorf("sample format writes to container %q, not %q", container, sample.Container)
	}
	var buf bytes.Buffer
	if err := fill(&buf); err != nil {
		return err
	}
	_, err := s.svc.NewContainerClient(s.container).NewBlockBlobClient(name).UploadBuffer(ctx, buf.Bytes(), nil)
	return err
}

// blobHost finds the host:port of a connection string's blob endpoint.
var blobHost = regexp.MustCompile(`BlobEndpoint=https?://([^/;]+)`)

// harnessKey is the function key of every harness's local host.
const harnessKey = "harness-function-key-0123456789"

// harnessHostToken is what the local host proves itself to the handler with.
const harnessHostToken = "harness-host-token-0123456789abcdef"

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	acct := azuritetest.Account(t)
	h := &harness{t: t, logs: &syncBuffer{}, size: o.size}
	if h.size == (sample.Size{}) {
		h.size = mustSize(t, "tiny")
	}
	h.datasets = azuritetest.Container(t, acct, "datasets")
	state := azuritetest.Container(t, acct, "state")
	h.state = state
	exports := azuritetest.Container(t, acct, "exports")
	auditName := azuritetest.Container(t, acct, "audit")
	h.outbox = azuritetest.Container(t, acct, "outbox")
	h.proofs = azuritetest.Container(t, acct, "proofs")

	// The sample sources config, pointed at this test's container.
	srcFile := "../sample/sources.json"
	if o.format != "" {
		srcFile = "../sample/sources." + o.format + ".json"
	}
	src, err := sources.LoadFile(srcFile)
	if err != nil {
		t.Fatal(err)
	}
	for i := range src.Datasets {
		src.Datasets[i].Container = h.datasets
	}
	if o.editSources != nil {
		o.editSources(src)
	}
	h.sources = src
	srcPath := filepath.Join(t.TempDir(), "sources.json")
	b, _ := json.Marshal(src)
	if err := os.WriteFile(srcPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	upload := o.upload
	if upload == nil {
		upload = func(ctx context.Context, bc *blockblob.Client, f sample.File, size sample.Size) error {
			var buf bytes.Buffer
			if err := sample.Generate(&buf, f, size, 1); err != nil {
				return err
			}
			_, err := bc.UploadBuffer(ctx, buf.Bytes(), &blockblob.UploadBufferOptions{})
			return err
		}
	}
	if o.format != "" {
		// Every format keeps its files in the sample container.
		sink := &oneContainerSink{svc: acct.Service, container: h.datasets}
		if err := sample.WriteFormat(context.Background(), o.format, sink, h.size, 1); err != nil {
			t.Fatalf("write the %s sample: %v", o.format, err)
		}
	} else {
		for _, f := range sample.Files() {
			if err := upload(context.Background(), acct.Service.NewContainerClient(h.datasets).NewBlockBlobClient(f.Name), f, h.size); err != nil {
				t.Fatalf("upload %s: %v", f.Name, err)
			}
		}
	}

	storage := azuritetest.ConnectionString(t)
	if o.storageRTT > 0 {
		m := blobHost.FindStringSubmatch(storage)
		if m == nil {
			t.Fatal("the Azurite connection string names no blob endpoint")
		}
		storage = strings.Replace(storage, m[1], latencyproxy.Start(t, m[1], o.storageRTT/2), 1)
	}
	if o.traceStorage {
		m := blobHost.FindStringSubmatch(storage)
		if m == nil {
			t.Fatal("the Azurite connection string names no blob endpoint")
		}
		var addr string
		h.trace, addr = startStorageTrace(t, m[1])
		storage = strings.Replace(storage, m[1], addr, 1)
	}
	env := map[string]string{
		"AzureWebJobsStorage":   storage,
		"DSR_STATE_CONTAINER":   state,
		"DSR_EXPORTS_CONTAINER": exports,
		"DSR_AUDIT_CONTAINER":   auditName,
		"DSR_PROOF_CONTAINER":   h.proofs,
		"DSR_SOURCES_CONFIG":    srcPath,
		"DSR_EXPORT_LINK_TTL":   "1h",
		"DSR_KEY_ROLES":         "DSR.Admin",
		"DSR_PSEUDONYM_SECRET":  "harness-pseudonym-secret-0123456789",
		"DSR_ALLOW_TEST_ROLES":  "true",
		// Emails (verification codes) land in the outbox container.
		"DSR_EMAIL_OUTBOX_CONTAINER": h.outbox,
	}
	for k, v := range o.env {
		env[k] = v
	}
	h.cfg, err = config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	h.broker = embedded.New(embedded.Options{MaxDeliveryCount: o.maxDelivery})
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.app, err = functions.NewWithOptions(h.cfg, h.broker, log, o.app)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.app.Close)
	// Failing stages retry within milliseconds here, not minutes
	// (DSR_STAGE_RETRIES still sets how often).
	h.app.Service.StageBackoff = pipeline.Backoff{Base: 5 * time.Millisecond, Max: 40 * time.Millisecond}
	if o.manual {
		// Tests that deliver messages themselves follow a request from
		// queue to queue: its export goes through the export queue, as a
		// large one does, not chained to discovery (pipeline/chain.go).
		h.app.Service.ChainExportRecords = 0
	}
	handler := httptest.NewServer(funchost.RequireHostToken(h.app.Handler, harnessHostToken))
	t.Cleanup(handler.Close)
	h.handlerURL = handler.URL
	u, _ := url.Parse(handler.URL)
	h.host = &funchost.LocalHost{Functions: h.app.Functions, HandlerURL: u, Broker: h.broker, Log: log, FailureDelay: 10 * time.Millisecond,
		FunctionKey: harnessKey, HostToken: harnessHostToken, Concurrency: o.concurrency}
	if o.front != nil {
		h.front = httptest.NewUnstartedServer(h.host)
		h.front.Listener.Close()
		h.front.Listener = o.front
		h.front.Start()
	} else {
		h.front = httptest.NewServer(h.host)
	}
	t.Cleanup(h.front.Close)
	if !o.manual {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { h.host.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return h
}

func mustSize(t testing.TB, s string) sample.Size {
	size, err := sample.ParseSize(s)
	if err != nil {
		t.Fatal(err)
	}
	return size
}

// do sends an HTTP request through the host's front door.
func (h *harness) do(method, path string, body string, header ...string) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.front.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("x-functions-key", harnessKey)
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	// Every answer the tests see is held to the published contract.
	checkContract(h.t, method, path, resp, b)
	return resp, b
}

// submit posts a request and returns its document.
func (h *harness) submit(body string, header ...string) dsr.Request {
	h.t.Helper()
	resp, b := h.do("POST", "/api/requests", body, header...)
	if resp.StatusCode != http.StatusAccepted {
		h.t.Fatalf("POST /api/requests: %d %s", resp.StatusCode, b)
	}
	var doc dsr.Request
	if err := json.Unmarshal(b, &doc); err != nil {
		h.t.Fatal(err)
	}
	if got := resp.Header.Get("Location"); got != "/api/requests/"+doc.ID {
		h.t.Fatalf("Location = %q", got)
	}
	return doc
}

// get reads a request document (with its export link when there is one).
func (h *harness) get(id string) (dsr.Request, exportDoc) {
	h.t.Helper()
	resp, b := h.do("GET", "/api/requests/"+id, "")
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("GET %s: %d %s\n%s", id, resp.StatusCode, b, h.logs.String())
	}
	var doc dsr.Request
	var raw struct {
		Export exportDoc `json:"export"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		h.t.Fatal(err)
	}
	_ = json.Unmarshal(b, &raw)
	return doc, raw.Export
}

type exportDoc struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expiresAt"`
	Bytes     int64     `json:"bytes"`
	SHA256    string    `json:"sha256"`
}

// waitTerminal polls a request until it completes or fails.
func (h *harness) waitTerminal(id string) (dsr.Request, exportDoc) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		doc, exp := h.get(id)
		if doc.State.Terminal() {
			return doc, exp
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("request %s still %s/%s after 30s; logs:\n%s", id, doc.Stage, doc.State, h.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// deliver receives the next message of a queue and invokes its function
// through the host, as the Functions host would; it returns the delivery so
// the test can deliver it again.
func (h *harness) deliver(function string) *embedded.Delivery {
	h.t.Helper()
	f := h.function(function)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := h.broker.Receive(ctx, f.Trigger().QueueName)
	if err != nil {
		h.t.Fatalf("no message for %s: %v", function, err)
	}
	if err := h.host.Invoke(context.Background(), f, d); err != nil {
		h.t.Fatalf("invoke %s: %v\n%s", function, err, h.logs.String())
	}
	if err := h.broker.Complete(f.Trigger().QueueName, d.LockToken); err != nil {
		h.t.Fatal(err)
	}
	return d
}

// redeliver invokes a function again with a copy of an earlier delivery, as
// at-least-once delivery may do after the first one succeeded.
func (h *harness) redeliver(function string, d *embedded.Delivery) {
	h.t.Helper()
	again := *d
	again.DeliveryCount++
	if err := h.host.Invoke(context.Background(), h.function(function), &again); err != nil {
		h.t.Fatalf("redeliver %s: %v", function, err)
	}
}

func (h *harness) function(name string) funchost.Function {
	for _, f := range h.app.Functions {
		if f.Name == name {
			return f
		}
	}
	h.t.Fatalf("no function %s", name)
	return funchost.Function{}
}

// blobNames lists a container.
func (h *harness) blobNames(containerName string) []string {
	h.t.Helper()
	var names []string
	pager := h.app.Account.Service.NewContainerClient(containerName).NewListBlobsFlatPager(nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			h.t.Fatal(err)
		}
		for _, it := range page.Segment.BlobItems {
			names = append(names, *it.Name)
		}
	}
	return names
}

// waitState polls a request until it reaches state (or ends).
func (h *harness) waitState(id string, state dsr.State) dsr.Request {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		doc, _ := h.get(id)
		if doc.State == state || doc.State.Terminal() {
			return doc
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("request %s still %s/%s after 30s, want %s", id, doc.Stage, doc.State, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// approveWhenAsked approves a request once it awaits approval; requests of
// types that need none are left alone, unless they are held as a repeat.
func (h *harness) approveWhenAsked(id string) {
	h.t.Helper()
	doc, _ := h.get(id)
	if doc.Type != dsr.TypeErasure && doc.Type != dsr.TypeRectification && len(doc.RepeatOf) == 0 {
		return
	}
	if doc = h.waitState(id, dsr.StateAwaitingApproval); doc.State != dsr.StateAwaitingApproval {
		return
	}
	if resp, b := h.do("POST", "/api/requests/"+id+"/approve", ""); resp.StatusCode != 200 {
		h.t.Fatalf("approve %s: %d %s", id, resp.StatusCode, b)
	}
}

// logsOf is the app's last n log lines about one request, for a failure
// message.
func (h *harness) logsOf(id string, n int) string {
	var out []string
	for line := range strings.SplitSeq(h.logs.String(), "\n") {
		if strings.Contains(line, id) {
			out = append(out, line)
		}
	}
	return strings.Join(out[max(len(out)-n, 0):], "\n")
}
