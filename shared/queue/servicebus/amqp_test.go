package servicebus

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/config"
	"github.com/dsr-functions/dsr/shared/queue"
)

// wireMessage is one message as the test broker (testdata/broker.mjs) received it.
type wireMessage struct {
	Queue                 string                     `json:"queue"`
	MessageID             any                        `json:"message_id"`
	ContentType           string                     `json:"content_type"`
	Subject               string                     `json:"subject"`
	ApplicationProperties map[string]any             `json:"application_properties"`
	MessageAnnotations    map[string]json.RawMessage `json:"message_annotations"`
	BodyType              string                     `json:"body_type"`
	BodyBase64            string                     `json:"body_base64"`
}

// testBroker is a running testdata/broker.mjs: an AMQP 1.0 test double that
// answers the SDK's $cbs and $management requests and records what it receives.
type testBroker struct {
	port     int
	messages chan wireMessage
}

// repoRoot walks up from the package folder to the folder holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test folder")
		}
		dir = parent
	}
}

func startBroker(t *testing.T) *testBroker {
	t.Helper()
	root := repoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "node_modules", "rhea", "package.json")); err != nil {
		t.Fatalf("node_modules/rhea is missing under %s (%v): run `npm ci` there (`make test` does) to install the AMQP test broker's dependency", root, err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required to run the AMQP test broker: %v", err)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "broker.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script, "0")
	cmd.Dir = root // so that Node resolves rhea from root/node_modules
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = &testWriter{t: t}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	b := &testBroker{messages: make(chan wireMessage, 16)}
	portc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
		first := true
		for sc.Scan() {
			if first {
				first = false
				portc <- sc.Text()
				continue
			}
			var m wireMessage
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("broker printed a line that is not a message: %q: %v", sc.Text(), err)
				continue
			}
			b.messages <- m
		}
		close(b.messages)
	}()
	select {
	case line, ok := <-portc:
		if !ok {
			t.Fatal("broker exited before printing its port")
		}
		b.port, err = strconv.Atoi(strings.TrimSpace(line))
		if err != nil {
			t.Fatalf("broker printed %q instead of its port", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("broker did not print its port within 10 s")
	}
	return b
}

func (b *testBroker) connectionString() string {
	return fmt.Sprintf("Endpoint=sb://127.0.0.1:%d;SharedAccessKeyName=k;SharedAccessKey=x;UseDevelopmentEmulator=true", b.port)
}

// next returns the next message the broker received.
func (b *testBroker) next(ctx context.Context, t *testing.T) wireMessage {
	t.Helper()
	select {
	case m, ok := <-b.messages:
		if !ok {
			t.Fatal("broker exited before receiving the message")
		}
		return m
	case <-ctx.Done():
		t.Fatalf("broker received no message: %v", ctx.Err())
	}
	return wireMessage{}
}

// testWriter forwards the broker's stderr to the test log.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("broker: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestSendOverAMQP sends through the real azservicebus client over an AMQP 1.0
// connection (CBS put-token, sender link attach, transfer, disposition) to the
// rhea test broker and checks what went on the wire.
func TestSendOverAMQP(t *testing.T) {
	b := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	s, err := New(config.Connection{ConnectionString: b.connectionString()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		_ = s.Close(cctx)
	})

	// Whole milliseconds: AMQP timestamps carry milliseconds.
	at := time.Date(2026, 5, 1, 12, 0, 0, 250_000_000, time.FixedZone("CEST", 2*3600))
	body := `{"requestId":"r1","stage":"export"}`
	err = s.Send(ctx, "dsr-export", queue.Message{
		ID:          "r1:export",
		Body:        []byte(body),
		Subject:     "export",
		Properties:  map[string]any{"requestId": "r1", "stage": "export"},
		ScheduledAt: at,
	})
	if err != nil {
		t.Fatalf("send: %v", err)
	}

	m := b.next(ctx, t)
	if m.Queue != "dsr-export" {
		t.Errorf("queue %q, want dsr-export", m.Queue)
	}
	if m.MessageID != "r1:export" {
		t.Errorf("message-id %#v, want the string r1:export", m.MessageID)
	}
	if m.ContentType != "application/json" {
		t.Errorf("content-type %q, want application/json", m.ContentType)
	}
	if m.Subject != "export" {
		t.Errorf("subject %q, want export", m.Subject)
	}
	if want := map[string]any{"requestId": "r1", "stage": "export"}; !reflect.DeepEqual(m.ApplicationProperties, want) {
		t.Errorf("application properties %v, want %v", m.ApplicationProperties, want)
	}
	raw, ok := m.MessageAnnotations["x-opt-scheduled-enqueue-time"]
	if !ok {
		t.Errorf("no x-opt-scheduled-enqueue-time annotation in %v", m.MessageAnnotations)
	} else {
		var ts struct {
			TimestampMS *int64 `json:"timestamp_ms"`
		}
		if err := json.Unmarshal(raw, &ts); err != nil || ts.TimestampMS == nil {
			t.Errorf("x-opt-scheduled-enqueue-time is %s, want an AMQP timestamp", raw)
		} else if got := time.UnixMilli(*ts.TimestampMS); !got.Equal(at) {
			t.Errorf("scheduled enqueue time %v, want %v", got.UTC(), at.UTC())
		}
	}
	if m.BodyType != "data" {
		t.Errorf("body section %q, want a data (binary) section", m.BodyType)
	}
	if got, err := base64.StdEncoding.DecodeString(m.BodyBase64); err != nil || string(got) != body {
		t.Errorf("body %q (%v), want %q", got, err, body)
	}

	// A second queue gets its own link; the message lands there and carries
	// no scheduled time or subject when none is set.
	err = s.Send(ctx, "dsr-discover", queue.Message{
		ID:          "r1:discover",
		Body:        []byte(`{"requestId":"r1","stage":"discover"}`),
		ContentType: "text/plain",
	})
	if err != nil {
		t.Fatalf("send to a second queue: %v", err)
	}
	m2 := b.next(ctx, t)
	if m2.Queue != "dsr-discover" || m2.MessageID != "r1:discover" {
		t.Errorf("second message on %q with id %#v, want dsr-discover / r1:discover", m2.Queue, m2.MessageID)
	}
	if m2.ContentType != "text/plain" || m2.Subject != "" {
		t.Errorf("second message content-type %q subject %q, want text/plain and none", m2.ContentType, m2.Subject)
	}
	if _, ok := m2.MessageAnnotations["x-opt-scheduled-enqueue-time"]; ok {
		t.Errorf("unscheduled message carries x-opt-scheduled-enqueue-time: %v", m2.MessageAnnotations)
	}
	if got, _ := base64.StdEncoding.DecodeString(m2.BodyBase64); string(got) != `{"requestId":"r1","stage":"discover"}` {
		t.Errorf("second body %q", got)
	}
}
