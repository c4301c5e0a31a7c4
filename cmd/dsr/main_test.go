package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
)

func TestMain(m *testing.M) { os.Exit(azuritetest.Run(m)) }

const localKey = "local-test-function-key-42"

// build compiles the dsr binary once per test binary.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dsr")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// start runs the binary and waits until GET / answers, as the host's
// readiness probe does.
func start(t *testing.T, bin string, port int, env []string, args ...string) *bytes.Buffer {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), env...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err == nil {
			resp.Body.Close()
			return &logs
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 30 s (the host's start limit):\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dsr serve, as the Functions host runs it: port from the environment,
// readiness on GET /, forwarded HTTP at /api/..., invocations at /<function>.
func TestServeSpeaksTheHostContract(t *testing.T) {
	bin := build(t)
	port := freePort(t)
	acct := azuritetest.Account(t)
	env := []string{
		fmt.Sprintf("FUNCTIONS_CUSTOMHANDLER_PORT=%d", port),
		"AzureWebJobsStorage=" + azuritetest.ConnectionString(t),
		"DSR_STATE_CONTAINER=" + azuritetest.Container(t, acct, "state"),
		"DSR_SOURCES_CONFIG=sample/sources.json",
		// Never contacted in this test: no message is sent.
		"ServiceBusConnection=Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=k;SharedAccessKey=eA==",
	}
	logs := start(t, bin, port, env, "serve")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	resp, err := http.Get(base + "/api/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"ok"`) {
		t.Fatalf("health: %d %s\n%s", resp.StatusCode, body, logs)
	}

	// A discover invocation in the host's double-encoded shape, for a
	// request that does not exist: handled (dropped), so 200 with a JSON body.
	payload := `{"Data":{"msg":"\"{\\\"requestId\\\":\\\"r000000000000aaaaaaaaaaaaaaaa\\\",\\\"stage\\\":\\\"discovery\\\"}\""},` +
		`"Metadata":{"DeliveryCount":"1","MessageId":"\"r000000000000aaaaaaaaaaaaaaaa:discovery\"","EnqueuedTimeUtc":"2026-05-01T12:34:56",` +
		`"sys":{"MethodName":"discover","UtcNow":"2026-05-01T12:34:57Z","RandGuid":"x"}}}`
	req, _ := http.NewRequest("POST", base+"/discover", strings.NewReader(payload))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-Azure-Functions-InvocationId", "11111111-2222-3333-4444-555555555555")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || len(body) == 0 {
		t.Fatalf("invocation: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var reply struct {
		Outputs map[string]any
		Logs    []string
	}
	if err := json.Unmarshal(body, &reply); err != nil || reply.Outputs == nil || reply.Logs == nil {
		t.Fatalf("invocation reply %s: %v", body, err)
	}
}

// dsr serve refuses to start on bad settings, saying which.
func TestServeRefusesBadSettings(t *testing.T) {
	bin := build(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "AzureWebJobsStorage=UseDevelopmentStorage=true", "DSR_EXPORT_LINK_TTL=200h")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "DSR_EXPORT_LINK_TTL") {
		t.Fatalf("started with a 200h link lifetime: %v\n%s", err, out)
	}
}

// dsr local, as `make run` starts it, seeds the sample and serves the API.
func TestLocalServesTheWalkthrough(t *testing.T) {
	bin := build(t)
	port := freePort(t)
	acct := azuritetest.Account(t)
	env := []string{
		"AzureWebJobsStorage=" + azuritetest.ConnectionString(t),
		"DSR_STATE_CONTAINER=" + azuritetest.Container(t, acct, "state"),
		"DSR_EXPORTS_CONTAINER=" + azuritetest.Container(t, acct, "exports"),
		"DSR_LOCAL_FUNCTION_KEY=" + localKey,
	}
	logs := start(t, bin, port, env, "local", "-port", fmt.Sprint(port), "-sample", "tiny", "-queue-dir", t.TempDir())
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	// Without the function key: refused.
	resp, err := http.Post(base+"/api/requests", "application/json", strings.NewReader(`{"type":"access","subject":{"email":"avery.morgan@contoso.example"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without a key: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", base+"/api/requests", strings.NewReader(`{"type":"access","subject":{"email":"avery.morgan@contoso.example"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-functions-key", localKey)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		ID     string `json:"id"`
		State  string `json:"state"`
		Export struct {
			URL string `json:"url"`
		} `json:"export"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if resp.StatusCode != 202 || doc.ID == "" {
		t.Fatalf("submit: %d\n%s", resp.StatusCode, logs)
	}
	deadline := time.Now().Add(30 * time.Second)
	for doc.State != "completed" {
		if doc.State == "failed" || time.Now().After(deadline) {
			t.Fatalf("request %s is %s\n%s", doc.ID, doc.State, logs)
		}
		time.Sleep(50 * time.Millisecond)
		resp, err := http.Get(base + "/api/requests/" + doc.ID + "?code=" + localKey)
		if err != nil {
			t.Fatal(err)
		}
		_ = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
	}
	resp, err = http.Get(doc.Export.URL)
	if err != nil {
		t.Fatal(err)
	}
	zipBytes, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.HasPrefix(zipBytes, []byte("PK")) {
		t.Fatalf("download: %d, %d bytes", resp.StatusCode, len(zipBytes))
	}
	if strings.Contains(strings.ToLower(logs.String()), "avery") {
		t.Fatalf("personal data in the logs:\n%s", logs)
	}

	// The console: the login link printed and saved signs the developer in
	// once; the page shows the request just made.
	link, err := os.ReadFile("../../.local/console-url")
	if err != nil {
		t.Fatal(err)
	}
	consoleURL := strings.TrimSpace(string(link))
	if !strings.HasPrefix(consoleURL, base+"/api/console/login?token=") || !strings.Contains(logs.String(), consoleURL) {
		t.Fatalf("console link %q not printed:\n%s", consoleURL, logs)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err = browser.Get(consoleURL + "")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Work queue") || !strings.Contains(string(page), "DSR.Admin") {
		t.Fatalf("console: %d\n%s", resp.StatusCode, page)
	}
	resp, err = browser.Get(base + "/api/console/requests/" + doc.ID)
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "completed") {
		t.Fatalf("console request page: %d\n%s", resp.StatusCode, page)
	}
	if resp, err := http.Get(consoleURL); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the login link worked twice: %v", err)
	}

	// The portal: a request waits for the code that `dsr mail` shows.
	resp, err = http.PostForm(base+"/api/portal/requests", url.Values{"type": {"access"}, "email": {"portal.person@example.org"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("portal submit: %d\n%s", resp.StatusCode, logs)
	}
	mail := exec.Command(bin, "mail", "--to", "portal.person@example.org")
	mail.Env = append(os.Environ(), "AzureWebJobsStorage="+azuritetest.ConnectionString(t))
	out, err := mail.CombinedOutput()
	if err != nil || !regexp.MustCompile(`\n    \d{6}\n`).Match(out) || !strings.Contains(string(out), base+"/api/portal/requests/") {
		t.Fatalf("dsr mail: %v\n%s", err, out)
	}
}
