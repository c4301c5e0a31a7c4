package funchost_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/problem"
	"github.com/dsr-functions/dsr/shared/queue/embedded"
	"github.com/dsr-functions/dsr/shared/testutil"
)

// postEnvelope sends body to the local host's queue route for queueName.
func postEnvelope(t *testing.T, base, queueName, key, contentType, body string) (int, []byte, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/admin/queues/"+queueName+"/messages", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("x-functions-key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header.Get("Content-Type")
}

// A message put on the embedded queue from outside reaches the function as
// a Service Bus message would: the body as sent, the MessageId, the
// application properties with their types; a second message with the same
// MessageId inside the duplicate detection window is dropped.
func TestLocalHostTakesQueueMessagesFromOutside(t *testing.T) {
	h := &fakeHandler{}
	e := startLocal(t, withDeadLetter(), h, embedded.Options{}, nil)
	body := `{"type":"access","subject":{"email":"x@example.com"}}`
	env, _ := json.Marshal(map[string]any{
		"messageId": "ticket-4711", "body": body,
		"applicationProperties": map[string]any{"source": "crm", "priority": 2, "urgent": true, "weight": 1.5},
	})
	status, answer, ct := postEnvelope(t, e.front.URL, workQueue, testKey, "application/json", string(env))
	if status != http.StatusCreated || ct != "application/json" {
		t.Fatalf("send: %d %q %s", status, ct, answer)
	}
	var receipt funchost.SendReceipt
	if err := json.Unmarshal(answer, &receipt); err != nil || receipt.Queue != workQueue || receipt.MessageID != "ticket-4711" {
		t.Fatalf("receipt %s: %v", answer, err)
	}
	testutil.WaitFor(t, 5*time.Second, "the delivery", func() bool { return len(h.callsTo("/work")) == 1 && e.broker.Idle() })

	var req funchost.InvokeRequest
	if err := json.Unmarshal(h.callsTo("/work")[0].body, &req); err != nil {
		t.Fatal(err)
	}
	m, err := funchost.DecodeQueueMessage(&req, "msg")
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Body) != body || m.MessageID != "ticket-4711" || m.ContentType != "application/json" {
		t.Errorf("delivered body %q, MessageId %q, ContentType %q", m.Body, m.MessageID, m.ContentType)
	}
	for k, want := range map[string]any{"source": "crm", "priority": float64(2), "urgent": true, "weight": 1.5} {
		if got := m.Properties[k]; got != want {
			t.Errorf("property %s = %#v, want %#v", k, got, want)
		}
	}

	// The same MessageId again: accepted, as Service Bus accepts it, and
	// dropped by duplicate detection.
	if status, answer, _ := postEnvelope(t, e.front.URL, workQueue, testKey, "application/json", string(env)); status != http.StatusCreated {
		t.Fatalf("resend: %d %s", status, answer)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(h.callsTo("/work")); n != 1 {
		t.Fatalf("a duplicate MessageId was delivered again (%d deliveries)", n)
	}
}

// Only holders of the function key may send, only to queues a function
// listens to, and only envelopes Service Bus would take; every refusal is
// a problem document naming what is wrong, never a submitted value.
func TestLocalHostRefusesBadQueueMessages(t *testing.T) {
	h := &fakeHandler{}
	e := startLocal(t, withDeadLetter(), h, embedded.Options{}, nil)
	const secret = "do-not-echo@example.com"
	ok := `{"messageId":"m1","body":"{}"}`
	for _, tc := range []struct {
		name, queue, key, contentType, body string
		status                              int
		code, field                         string
	}{
		{"no key", workQueue, "", "application/json", ok, 401, "function-key-required", ""},
		{"wrong key", workQueue, "nope", "application/json", ok, 401, "function-key-required", ""},
		{"unknown queue", "dsr-nowhere", testKey, "application/json", ok, 404, "queue-not-found", ""},
		{"dead-letter queue", workQueue + "%2F%24deadletterqueue", testKey, "application/json", ok, 404, "queue-not-found", ""},
		{"not JSON", workQueue, testKey, "text/plain", ok, 415, "unsupported-media-type", ""},
		{"malformed", workQueue, testKey, "application/json", `{"messageId":"m1","body":"` + secret, 400, "malformed-envelope", ""},
		{"unknown field", workQueue, testKey, "application/json", `{"messageId":"m1","body":"{}","sessionId":"` + secret + `"}`, 400, "malformed-envelope", ""},
		{"no MessageId", workQueue, testKey, "application/json", `{"body":"` + secret + `"}`, 400, "invalid-message", "messageId"},
		{"long MessageId", workQueue, testKey, "application/json", `{"messageId":"` + strings.Repeat("m", 129) + `","body":"{}"}`, 400, "invalid-message", "messageId"},
		{"no body", workQueue, testKey, "application/json", `{"messageId":"m1"}`, 400, "invalid-message", "body"},
		{"body too large", workQueue, testKey, "application/json", `{"messageId":"m1","body":"` + strings.Repeat("a", funchost.MaxQueueMessageBody+1) + `"}`, 413, "message-too-large", "body"},
		{"object property", workQueue, testKey, "application/json", `{"messageId":"m1","body":"{}","applicationProperties":{"who":{"email":"` + secret + `"}}}`, 400, "invalid-message", "applicationProperties.who"},
		{"null property", workQueue, testKey, "application/json", `{"messageId":"m1","body":"{}","applicationProperties":{"who":null}}`, 400, "invalid-message", "applicationProperties.who"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, answer, ct := postEnvelope(t, e.front.URL, tc.queue, tc.key, tc.contentType, tc.body)
			if status != tc.status || ct != problem.ContentType {
				t.Fatalf("%d %q %s, want %d problem+json", status, ct, answer, tc.status)
			}
			var p problem.Details
			if err := json.Unmarshal(answer, &p); err != nil || p.Code != tc.code {
				t.Fatalf("problem %s, want code %s (%v)", answer, tc.code, err)
			}
			if tc.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != tc.field) {
				t.Errorf("problem %s does not name field %s", answer, tc.field)
			}
			if tc.code == "queue-not-found" && !strings.Contains(p.Detail, workQueue) {
				t.Errorf("unknown queue: %q does not list the known queues", p.Detail)
			}
			if strings.Contains(string(answer), secret) {
				t.Errorf("problem echoes a submitted value: %s", answer)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(h.callsTo("/work")) + len(h.callsTo("/work-deadletter")); n != 0 {
		t.Fatalf("a refused message was delivered (%d deliveries)", n)
	}
}

// The custom handler that `dsr serve` runs in Azure has no such route:
// there, messages go to Service Bus.
func TestServeHandlerHasNoQueueRoute(t *testing.T) {
	h, err := funchost.NewHandler(loadDefs(t, testDefs), funchost.Registry{
		HTTP: map[string]http.Handler{"items-get": http.NotFoundHandler(), "items-create": http.NotFoundHandler()},
		Queue: map[string]funchost.QueueFunc{"work": func(context.Context, *funchost.QueueMessage) error {
			t.Error("the handler delivered a message sent to the queue route")
			return nil
		}},
	}, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	status, answer, _ := postEnvelope(t, srv.URL, workQueue, testKey, "application/json", `{"messageId":"m1","body":"{}"}`)
	if status != http.StatusNotFound {
		t.Fatalf("dsr serve's handler answered %d %s to the local queue route, want 404", status, answer)
	}
}
