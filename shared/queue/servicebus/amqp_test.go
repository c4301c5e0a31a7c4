package servicebus

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/config"
	"github.com/dsr-functions/dsr/shared/queue"
	"github.com/dsr-functions/dsr/shared/testutil/amqptest"
)

// TestSendOverAMQP sends through the real azservicebus client over an AMQP 1.0
// connection (CBS put-token, sender link attach, transfer, disposition) to the
// rhea test broker and checks what went on the wire.
func TestSendOverAMQP(t *testing.T) {
	b := amqptest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	s, err := New(config.Connection{ConnectionString: b.ConnectionString()}, nil)
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

	m := b.Next(ctx, t)
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
	m2 := b.Next(ctx, t)
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
