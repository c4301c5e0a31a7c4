package funchost_test

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/funchost"
)

// fuzzQueueFn is the one queue function the invocation fuzzer posts to.
var fuzzQueueFn = funchost.Function{Name: "work", Bindings: []funchost.Binding{{
	Type: funchost.ServiceBusTrigger, Direction: "in", Name: "msg", QueueName: "q-work", Connection: "ServiceBusConnection",
}}}

func FuzzInvocation(f *testing.F) {
	for _, s := range []string{
		hostPayload,
		`{"Data":{"msg":{"id":"42"}},"Metadata":{"DeliveryCount":1,"MessageId":"a1b2"}}`,
		`{"Data":{},"Metadata":{}}`,
		`null`,
		`{"Data":{"msg":"x"}} trailing`,
		`{"Data":{"msg":`,
		"",
	} {
		f.Add([]byte(s))
	}
	var calls atomic.Int64
	h, err := funchost.NewHandler([]funchost.Function{fuzzQueueFn}, funchost.Registry{
		Queue: map[string]funchost.QueueFunc{"work": func(_ context.Context, m *funchost.QueueMessage) error {
			if m == nil || m.Function != "work" {
				panic("queue function called without the message of its function")
			}
			calls.Add(1)
			return nil
		}},
	}, discardLog())
	if err != nil {
		f.Fatalf("NewHandler: %v", err)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		req := httptest.NewRequest(http.MethodPost, "/work", bytes.NewReader(payload))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Azure-Functions-InvocationId", "11111111-2222-3333-4444-555555555555")
		w := httptest.NewRecorder()
		before := calls.Load()
		h.ServeHTTP(w, req)
		called := calls.Load() - before
		switch w.Code {
		case http.StatusOK:
			if called != 1 {
				t.Fatalf("200 with the queue function called %d times", called)
			}
		case http.StatusBadRequest, http.StatusInternalServerError:
			if w.Code == http.StatusBadRequest && called != 0 {
				t.Fatalf("400 after the queue function ran")
			}
		default:
			t.Fatalf("status %d for payload %q", w.Code, payload)
		}
		if mt, _, err := mime.ParseMediaType(w.Header().Get("Content-Type")); err != nil || mt != "application/json" {
			t.Fatalf("Content-Type %q, want application/json", w.Header().Get("Content-Type"))
		}
		body := w.Body.Bytes()
		if len(bytes.TrimSpace(body)) == 0 {
			t.Fatalf("empty reply body (status %d)", w.Code)
		}
		var resp funchost.InvokeResponse
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatalf("reply %q is not an InvokeResponse: %v", body, err)
		}
		if resp.Outputs == nil || resp.Logs == nil {
			t.Fatalf("reply %q lacks Outputs or Logs", body)
		}
	})
}

// metadataKeys are the metadata entries DecodeQueueMessage reads.
var metadataKeys = []string{"MessageId", "ContentType", "DeliveryCount", "EnqueuedTimeUtc",
	"ApplicationProperties", "UserProperties", "DeadLetterSource", "sys"}

func FuzzDecodeQueueMessage(f *testing.F) {
	f.Add([]byte(`{"msg":"\"{\\\"id\\\":\\\"42\\\"}\""}`), []byte(`{"DeliveryCount":"1","MessageId":"\"a1b2\"","EnqueuedTimeUtc":"2025-05-01T12:34:56","sys":{"MethodName":"discover"}}`))
	f.Add([]byte(`{"msg":{"id":"42"}}`), []byte(`{"DeliveryCount":1,"MessageId":"a1b2","ApplicationProperties":{"DeadLetterReason":"r"}}`))
	f.Add([]byte(`{"other":1}`), []byte(`{}`))
	f.Add([]byte(`"\"4\""`), []byte(`"99999999999999999999"`))
	f.Add([]byte("\xff"), []byte(`{"sys":"{\"MethodName\":7}","UserProperties":"{\"DeadLetterReason\":\"x\"}"}`))
	f.Fuzz(func(t *testing.T, data, metadata []byte) {
		// data is the Data map, or else the trigger value itself; metadata is
		// the Metadata map, or else the value of every entry read.
		req := &funchost.InvokeRequest{}
		if json.Unmarshal(data, &req.Data) != nil {
			req.Data = map[string]json.RawMessage{"msg": data}
		}
		if json.Unmarshal(metadata, &req.Metadata) != nil {
			req.Metadata = map[string]json.RawMessage{}
			for _, k := range metadataKeys {
				req.Metadata[k] = metadata
			}
		}
		raw, ok := req.Data["msg"]
		m, err := funchost.DecodeQueueMessage(req, "msg")
		if !ok {
			if err == nil || m != nil {
				t.Fatalf("no Data.msg: got %+v, %v", m, err)
			}
			return
		}
		if err != nil || m == nil {
			t.Fatalf("DecodeQueueMessage: %+v, %v", m, err)
		}
		if !bytes.Equal(m.Body, funchost.Body(raw)) {
			t.Fatalf("Body %q, want %q", m.Body, funchost.Body(raw))
		}
		if m.MessageID != funchost.String(req.Metadata["MessageId"]) {
			t.Fatalf("MessageID %q", m.MessageID)
		}
		if _, err := funchost.Int(req.Metadata["DeliveryCount"]); err != nil && m.DeliveryCount != 1 {
			t.Fatalf("DeliveryCount %d without a count, want 1", m.DeliveryCount)
		}
		if !m.EnqueuedTime.IsZero() && m.EnqueuedTime.Location() != time.UTC {
			t.Fatalf("EnqueuedTime %v not in UTC", m.EnqueuedTime)
		}
	})
}
