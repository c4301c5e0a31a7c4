package recipients

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/config"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/queue/servicebus"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/testutil/amqptest"
)

// A Service Bus recipient gets the notice on its topic through the real
// azservicebus client over AMQP (the rhea test double): MessageId the
// notice id, the webhook body, identifiers hashed when configured.
func TestServiceBusRecipient(t *testing.T) {
	b := amqptest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	env := map[string]string{"PARTNER_SB": b.ConnectionString(), "PARTNER_KEY": "partner-hash-key-0123456789abcdef"}
	n := &Notifier{Getenv: func(k string) string { return env[k] },
		Bus: func(conn config.Connection) (BusSender, error) { return servicebus.New(conn, nil) }}
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	r := &sources.Recipient{Name: "partner", Description: "Partner", Datasets: []string{"contacts"},
		Notify: sources.RecipientNotify{ServiceBus: &sources.RecipientServiceBus{ConnectionSetting: "PARTNER_SB", Topic: "privacy/notices",
			Identifiers: "hashed", HashKeySetting: "PARTNER_KEY"}}}
	notice := pipeline.Notice{NoticeID: "r1:partner", RequestID: "r1", Type: "erasure",
		Datasets: []pipeline.NoticeDataset{{Dataset: "contacts", Deleted: 1}},
		Subject:  sources.Subject{Emails: []string{"ann@x.example"}}, At: time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)}
	for range 2 { // the second send reuses the recipient's sender
		if err := n.Notify(ctx, r, notice); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		m := b.Next(ctx, t)
		if m.Queue != "privacy/notices" || m.MessageID != "r1:partner" || m.Subject != "dsr-notice" || m.ContentType != "application/json" {
			t.Fatalf("message %+v", m)
		}
		if m.ApplicationProperties["requestId"] != "r1" || m.ApplicationProperties["type"] != "erasure" {
			t.Errorf("properties %v", m.ApplicationProperties)
		}
		raw, _ := base64.StdEncoding.DecodeString(m.BodyBase64)
		var body Body
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatal(err)
		}
		if body.NoticeID != "r1:partner" || len(body.Datasets) != 1 || body.Datasets[0].Deleted != 1 {
			t.Errorf("body %s", raw)
		}
		if strings.Contains(string(raw), "ann@x.example") || !strings.Contains(string(raw), "emailHashes") {
			t.Errorf("identifiers not hashed: %s", raw)
		}
	}
	if len(n.senders) != 1 {
		t.Errorf("%d senders for one recipient", len(n.senders))
	}

	// A missing setting or no Service Bus at all is an error that names
	// the setting, never a value.
	env["PARTNER_SB"] = ""
	r2 := *r
	r2.Name = "other"
	if err := n.Notify(ctx, &r2, notice); err == nil || !strings.Contains(err.Error(), "PARTNER_SB") {
		t.Errorf("missing connection: %v", err)
	}
	if err := (&Notifier{Getenv: func(k string) string { return env[k] }}).Notify(ctx, &r2, notice); err == nil || !strings.Contains(err.Error(), "Service Bus") {
		t.Errorf("no bus: %v", err)
	}
}
