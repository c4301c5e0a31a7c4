package servicebus

import (
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/config"
	"github.com/dsr-functions/dsr/shared/queue"
)

func TestToMessageCarriesIDsTypeAndProperties(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	m := toMessage(queue.Message{ID: "r1:export", Body: []byte(`{"requestId":"r1"}`), Subject: "export",
		Properties: map[string]any{"requestId": "r1"}, ScheduledAt: at})
	if *m.MessageID != "r1:export" || *m.ContentType != "application/json" || *m.Subject != "export" {
		t.Fatalf("message %+v", m)
	}
	if m.ApplicationProperties["requestId"] != "r1" || string(m.Body) != `{"requestId":"r1"}` {
		t.Fatalf("properties %v body %s", m.ApplicationProperties, m.Body)
	}
	if !m.ScheduledEnqueueTime.Equal(at) || m.ScheduledEnqueueTime.Location() != time.UTC {
		t.Fatalf("scheduled %v", m.ScheduledEnqueueTime)
	}
	plain := toMessage(queue.Message{ID: "x", ContentType: "text/plain"})
	if *plain.ContentType != "text/plain" || plain.Subject != nil || plain.ScheduledEnqueueTime != nil {
		t.Fatalf("plain message %+v", plain)
	}
}

func TestNewNeedsAConnection(t *testing.T) {
	if _, err := New(config.Connection{}, nil); err == nil || !strings.Contains(err.Error(), "ServiceBusConnection") {
		t.Fatalf("no connection: %v", err)
	}
	if _, err := New(config.Connection{FullyQualifiedNamespace: "ns.servicebus.windows.net"}, nil); err == nil {
		t.Fatal("identity-based connection without a credential accepted")
	}
	s, err := New(config.Connection{ConnectionString: "Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=k;SharedAccessKey=eA=="}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.sender("dsr-discover"); err != nil {
		t.Fatal(err)
	}
}
