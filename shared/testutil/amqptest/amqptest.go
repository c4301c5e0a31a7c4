// Package amqptest runs the AMQP 1.0 test double of Service Bus
// (shared/queue/servicebus/testdata/broker.mjs, on rhea from npm) for tests
// that send through the real azservicebus client: it answers the SDK's
// $cbs and $management requests and reports every message it receives.
package amqptest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Message is one message as the test broker received it.
type Message struct {
	Queue                 string                     `json:"queue"`
	MessageID             any                        `json:"message_id"`
	ContentType           string                     `json:"content_type"`
	Subject               string                     `json:"subject"`
	ApplicationProperties map[string]any             `json:"application_properties"`
	MessageAnnotations    map[string]json.RawMessage `json:"message_annotations"`
	BodyType              string                     `json:"body_type"`
	BodyBase64            string                     `json:"body_base64"`
}

// Broker is a running shared/queue/servicebus/testdata/broker.mjs: an AMQP 1.0 test double that
// answers the SDK's $cbs and $management requests and records what it receives.
type Broker struct {
	port     int
	messages chan Message
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

// Start runs the broker for the test (needs node and node_modules/rhea).
func Start(t *testing.T) *Broker {
	t.Helper()
	root := repoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "node_modules", "rhea", "package.json")); err != nil {
		t.Fatalf("node_modules/rhea is missing under %s (%v): run `npm ci` there (`make test` does) to install the AMQP test broker's dependency", root, err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required to run the AMQP test broker: %v", err)
	}
	script := filepath.Join(root, "shared", "queue", "servicebus", "testdata", "broker.mjs")
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

	b := &Broker{messages: make(chan Message, 16)}
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
			var m Message
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

// ConnectionString reaches the broker as azservicebus does the emulator.
func (b *Broker) ConnectionString() string {
	return fmt.Sprintf("Endpoint=sb://127.0.0.1:%d;SharedAccessKeyName=k;SharedAccessKey=x;UseDevelopmentEmulator=true", b.port)
}

// Next returns the next message the broker received.
func (b *Broker) Next(ctx context.Context, t *testing.T) Message {
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
	return Message{}
}

// testWriter forwards the broker's stderr to the test log.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("broker: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Messages is the stream of received messages (closed when the broker
// exits), for a test that checks nothing more arrives.
func (b *Broker) Messages() <-chan Message { return b.messages }
