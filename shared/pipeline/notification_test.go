package pipeline

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sources"
)

// memNotifier records notices per recipient; a recipient in down fails.
type memNotifier struct {
	mu     sync.Mutex
	got    map[string][]Notice
	tries  map[string]int
	down   map[string]bool
	panics bool
}

func (m *memNotifier) Notify(_ context.Context, r *sources.Recipient, n Notice) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tries[r.Name]++
	if m.down[r.Name] {
		return errors.New("post notice: status 503")
	}
	m.got[r.Name] = append(m.got[r.Name], n)
	return nil
}

// withRecipients declares a recipient of contacts and one of orders.
func withRecipients(w *world) *memNotifier {
	w.svc.Sources.Recipients = []sources.Recipient{
		{Name: "crm-partner", Description: "Our CRM partner", Datasets: []string{"contacts"}, Notify: sources.RecipientNotify{Email: &sources.RecipientEmail{To: "dpo@partner.example"}}},
		{Name: "shipping", Description: "The shipping company", Datasets: []string{"orders"}, Notify: sources.RecipientNotify{Email: &sources.RecipientEmail{To: "privacy@ship.example"}}},
	}
	m := &memNotifier{got: map[string][]Notice{}, tries: map[string]int{}, down: map[string]bool{}}
	w.svc.Recipients = m
	return m
}

// An erasure tells each recipient of a changed dataset once, what was done
// there, even when every stage message is delivered twice.
func TestRecipientsToldOnce(t *testing.T) {
	w := newWorld(t)
	m := withRecipients(w)
	id := w.submit(`{"type":"erasure","subject":{"email":"ann@x.example"}}`)
	w.drain(2)
	if _, err := w.svc.Approve(context.Background(), id, dsr.Actor{Kind: "test"}); err != nil {
		t.Fatal(err)
	}
	w.drain(2)
	st := w.get(id)
	if st.State != dsr.StateCompleted || st.FollowUp {
		t.Fatalf("erasure: %s follow-up %v", st.State, st.FollowUp)
	}
	if h := w.reqs.history(t, id); !strings.Contains(strings.Join(h, " "), "notification/in_progress done/completed") {
		t.Errorf("history %v", h)
	}
	for name, ds := range map[string]string{"crm-partner": "contacts", "shipping": "orders"} {
		got := m.got[name]
		if len(got) != 1 {
			t.Fatalf("%s told %d times, want once", name, len(got))
		}
		n := got[0]
		if n.NoticeID != id+":"+name || len(n.Datasets) != 1 || n.Datasets[0].Dataset != ds || n.Subject.Emails[0] != "ann@x.example" {
			t.Errorf("%s: notice %+v", name, n)
		}
	}
	if c := m.got["crm-partner"][0].Datasets[0]; c.Deleted != 1 {
		t.Errorf("contacts notice %+v, want 1 deleted", c)
	}
	var sent int
	for _, n := range st.Notifications {
		if n.Status == dsr.NotificationSent && n.Attempts == 1 && n.At != nil {
			sent++
		}
	}
	if sent != 2 {
		t.Errorf("notifications %+v", st.Notifications)
	}
	if ev := w.audit.events(id); strings.Count(strings.Join(ev, " "), "notification.sent") != 2 {
		t.Errorf("audit %v", ev)
	}
	// An access request changes nothing: nobody is told.
	before := len(m.got["crm-partner"])
	w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
	w.drain(1)
	if len(m.got["crm-partner"]) != before {
		t.Error("an access request told a recipient")
	}
}

// A recipient that is down is tried again later, on a growing schedule,
// without holding the others; when it never answers the request completes
// marked for follow-up and says why.
func TestFailingRecipientLeftForFollowUp(t *testing.T) {
	w := newWorld(t)
	m := withRecipients(w)
	m.down["shipping"] = true
	id := w.submit(`{"type":"erasure","subject":{"email":"ann@x.example"}}`)
	w.drain(1)
	if _, err := w.svc.Approve(context.Background(), id, dsr.Actor{Kind: "test"}); err != nil {
		t.Fatal(err)
	}
	w.drain(1)
	if st := w.get(id); st.State != dsr.StateInProgress || st.Stage != dsr.StageNotification || m.tries["shipping"] != 1 || len(m.got["crm-partner"]) != 1 {
		t.Fatalf("after the first try: %s/%s, tries %v got %d notifications %+v %v\n%s", st.Stage, st.State, m.tries, len(m.got["crm-partner"]), st.Notifications, w.reqs.history(t, id), w.logs)
	}
	if _, _, ok := w.sent.take(w.now); ok {
		t.Fatal("the retry is due at once; it must wait")
	}
	var waits []time.Duration
	for try := 2; try <= MaxNotificationAttempts; try++ {
		start := w.now
		for range 200 {
			w.now = w.now.Add(5 * time.Second)
			if w.deliver(1); m.tries["shipping"] == try {
				break
			}
		}
		if m.tries["shipping"] != try {
			t.Fatalf("try %d never came", try)
		}
		waits = append(waits, w.now.Sub(start))
	}
	if waits[len(waits)-1] <= waits[0] {
		t.Errorf("waits between tries do not grow: %v", waits)
	}
	st := w.get(id)
	if st.State != dsr.StateCompleted || !st.FollowUp || !st.NeedsFollowUp() {
		t.Fatalf("after giving up: %s follow-up %v", st.State, st.FollowUp)
	}
	n := notificationOf(st, "shipping")
	if n.Status != dsr.NotificationFailed || n.Attempts != MaxNotificationAttempts || n.Error != "post notice: status 503" {
		t.Errorf("shipping %+v", n)
	}
	if len(m.got["crm-partner"]) != 1 {
		t.Errorf("crm-partner told %d times", len(m.got["crm-partner"]))
	}
	if ev := strings.Join(w.audit.events(id), " "); !strings.Contains(ev, "notification.failed") {
		t.Errorf("audit %s", ev)
	}
}
