package functions_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/functions"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/recipients"
	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/webhook"
	"github.com/dsr-functions/dsr/shared/testutil/amqptest"
)

// An erasure tells each recipient once: a webhook recipient over HTTPS gets
// one POST whose signature verifies, with hashed identifiers, even when the
// notification message is delivered again; the sample's email recipient
// gets one email that names no one; a Service Bus recipient gets one
// message on its topic (through the real SDK, over AMQP to the test
// double), with the raw identifiers it is configured for. The request
// lists all as sent, and the letter says who was told.
func TestRecipientsToldAfterErasure(t *testing.T) {
	const secret = "recipient-notice-secret-0123456789abcdef"
	const hashKey = "recipient-hash-key-0123456789abcdefghij"
	t.Setenv("TEST_NOTICE_SECRET", secret)
	t.Setenv("TEST_NOTICE_HASH_KEY", hashKey)
	var mu sync.Mutex
	var bodies []recipients.Body
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := webhook.Verify([]byte(secret), r.Header, b, time.Now(), time.Minute); err != nil {
			t.Errorf("notice signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var body recipients.Body
		if err := json.Unmarshal(b, &body); err != nil || r.Header.Get(recipients.HeaderNoticeID) != body.NoticeID {
			t.Errorf("notice body %s: %v", b, err)
		}
		mu.Lock()
		bodies = append(bodies, body)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	bus := amqptest.Start(t)
	t.Setenv("TEST_ANALYTICS_SB", bus.ConnectionString())
	h := newHarness(t, harnessOptions{manual: true, app: functions.Options{HTTPClient: srv.Client()}, editSources: func(c *sources.Config) {
		c.Recipients = append(c.Recipients, sources.Recipient{Name: "support-outsourcer", Description: "Our support outsourcer",
			Datasets: []string{"cases"}, Notify: sources.RecipientNotify{Webhook: &sources.RecipientWebhook{
				URL: srv.URL + "/notices", SecretSetting: "TEST_NOTICE_SECRET", Identifiers: "hashed", HashKeySetting: "TEST_NOTICE_HASH_KEY"}}})
		c.Recipients = append(c.Recipients, sources.Recipient{Name: "analytics", Description: "Our analytics subsidiary",
			Datasets: []string{"surveys"}, Notify: sources.RecipientNotify{ServiceBus: &sources.RecipientServiceBus{
				ConnectionSetting: "TEST_ANALYTICS_SB", Topic: "privacy-notices"}}})
		for i := range c.Datasets {
			switch c.Datasets[i].Name {
			case "cases":
				c.Datasets[i].Facts.Recipients = append(c.Datasets[i].Facts.Recipients, "support-outsourcer")
			case "surveys":
				c.Datasets[i].Facts.Recipients = append(c.Datasets[i].Facts.Recipients, "analytics")
			}
		}
	}})
	doc := h.submit(demoErasure)
	h.deliver("discover")
	if resp, b := h.do("POST", "/api/requests/"+doc.ID+"/approve", ""); resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, b)
	}
	h.deliver("erase")
	h.deliver("verify")
	d := h.deliver("erase") // notification
	h.redeliver("erase", d)
	got, _ := h.get(doc.ID)
	if got.State != dsr.StateCompleted || got.FollowUp {
		t.Fatalf("erasure: %s follow-up %v %+v", got.State, got.FollowUp, got.Notifications)
	}
	var told []string
	for _, n := range got.Notifications {
		if n.Status == dsr.NotificationSent && n.Attempts == 1 {
			told = append(told, n.Recipient)
		}
	}
	slices.Sort(told)
	if !slices.Equal(told, []string{"analytics", "fabrikam-marketing", "support-outsourcer"}) {
		t.Fatalf("notifications %+v", got.Notifications)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 {
		t.Fatalf("webhook recipient got %d notices, want 1", len(bodies))
	}
	b := bodies[0]
	if b.NoticeID != doc.ID+":support-outsourcer" || b.Type != "erasure" || len(b.Datasets) != 1 || b.Datasets[0].Dataset != "cases" || b.Datasets[0].Masked == 0 {
		t.Errorf("notice %+v", b)
	}
	subject, _ := json.Marshal(b.Subject)
	if strings.Contains(string(subject), "avery") || !strings.Contains(string(subject), webhook.HashIdentifier([]byte(hashKey), sample.DemoEmail)) {
		t.Errorf("hashed subject %s", subject)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m := bus.Next(ctx, t)
	raw, _ := base64.StdEncoding.DecodeString(m.BodyBase64)
	var onBus recipients.Body
	if err := json.Unmarshal(raw, &onBus); err != nil || m.Queue != "privacy-notices" || m.MessageID != doc.ID+":analytics" ||
		onBus.Datasets[0].Dataset != "surveys" || !strings.Contains(string(raw), sample.DemoEmail) {
		t.Errorf("service bus notice on %s id %v: %s (%v)", m.Queue, m.MessageID, raw, err)
	}
	select {
	case extra := <-bus.Messages():
		t.Errorf("a second service bus notice: %+v", extra)
	case <-time.After(300 * time.Millisecond):
	}
	mails := h.mail("privacy@fabrikam.example")
	if len(mails) != 1 || !strings.Contains(mails[0].Text, doc.ID) || strings.Contains(strings.ToLower(mails[0].Text), "avery") {
		t.Fatalf("email notices %+v", mails)
	}
	if resp, page := h.do("GET", "/api/requests/"+doc.ID+"/letter", ""); resp.StatusCode != 200 || !strings.Contains(string(page), "Our support outsourcer") {
		t.Errorf("the letter does not say who was told")
	}
}
