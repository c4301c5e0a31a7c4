package pipeline

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/notify"
)

// memMailer keeps sent mail, as the outbox does, in memory.
type memMailer struct {
	mu    sync.Mutex
	sent  []notify.Message
	fail  bool
	sends map[string]int // Send calls per key
}

func (m *memMailer) Send(_ context.Context, msg notify.Message) error {
	if err := msg.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sends == nil {
		m.sends = map[string]int{}
	}
	m.sends[msg.Key]++
	if m.fail {
		return &notify.Error{Ref: notify.KeyRef(msg.Key), Reason: "status 503 after 3 attempts"}
	}
	for i, s := range m.sent {
		if s.Key == msg.Key { // the same key is one message
			m.sent[i] = msg
			return nil
		}
	}
	m.sent = append(m.sent, msg)
	return nil
}

var codeInText = regexp.MustCompile(`code: (\d{6})`)

// lastCode reads the code of the latest mail.
func (m *memMailer) lastCode(t *testing.T) string {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.sent) == 0 {
		t.Fatal("no mail sent")
	}
	c := codeInText.FindStringSubmatch(m.sent[len(m.sent)-1].Text)
	if c == nil {
		t.Fatalf("no code in %q", m.sent[len(m.sent)-1].Text)
	}
	return c[1]
}

// withVerification makes portal requests (and http erasures) wait for a
// code sent through a memory mailer.
func withVerification(w *world) *memMailer {
	m := &memMailer{}
	w.svc.Identity = &Verification{
		Required: func(origin string, t dsr.Type) bool { return origin == "portal" || t == dsr.TypeErasure },
		Mailer:   m,
		Compose: func(c CodeMail) notify.Message {
			return notify.Message{To: c.To, Subject: "Your code", Text: "Your code: " + c.Code, Key: c.Key}
		},
	}
	return m
}

func (w *world) submitFrom(origin, body string) (*dsr.Stored, error) {
	w.t.Helper()
	sub, err := dsr.ParseSubmission([]byte(body), "", w.now)
	if err != nil {
		w.t.Fatal(err)
	}
	st, _, err := w.svc.Submit(context.Background(), sub, "", origin, "", dsr.Actor{Kind: "subject"})
	return st, err
}

// A portal request waits for its code and searches nothing before it;
// wrong codes count, the right one moves it on to completion, once.
func TestVerificationBeforeDiscovery(t *testing.T) {
	w := newWorld(t)
	mail := withVerification(w)
	st, err := w.submitFrom("portal", `{"type":"access","subject":{"email":"ann@x.example"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dsr.StateAwaitingVerification || st.Stage != dsr.StageIdentity || st.Identity == nil || st.Identity.RequestedAt == nil {
		t.Fatalf("new portal request: %s/%s %+v", st.Stage, st.State, st.Identity)
	}
	if _, _, ok := w.sent.take(w.now); ok {
		t.Fatal("a stage message went out before verification")
	}
	if len(mail.sent) != 1 || mail.sent[0].To != "ann@x.example" || mail.sent[0].Key != st.ID+":verify:1" {
		t.Fatalf("mail %+v", mail.sent)
	}
	code := mail.lastCode(t)
	if strings.Contains(w.get(st.ID).Code.Hash, code) || w.get(st.ID).Code.Hash == "" {
		t.Error("the stored code is not a keyed hash")
	}
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if _, err := w.svc.VerifyCode(context.Background(), st.ID, wrong); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("wrong code: %v", err)
	}
	if got := w.get(st.ID); got.Code.Attempts != 1 || got.State != dsr.StateAwaitingVerification {
		t.Fatalf("after a wrong code: %+v %s", got.Code, got.State)
	}
	if w.conn.discoveries != 0 {
		t.Fatal("discovery ran before verification")
	}
	got, err := w.svc.VerifyCode(context.Background(), st.ID, code)
	if err != nil || got.Stage != dsr.StageDiscovery || got.Identity.VerifiedAt == nil || got.Code != nil {
		t.Fatalf("right code: %v %s/%s", err, got.Stage, got.State)
	}
	if _, err := w.svc.VerifyCode(context.Background(), st.ID, code); err != nil {
		t.Errorf("the same code again: %v (a double submit must be harmless)", err)
	}
	w.drain(1)
	if got := w.get(st.ID); got.State != dsr.StateCompleted {
		t.Fatalf("verified request ended %s", got.State)
	}
	want := []string{"intake/received", "identity/awaiting_verification", "discovery/in_progress", "export/in_progress", "done/completed"}
	if got := w.reqs.history(t, st.ID); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("history %v", got)
	}
	if w.get(st.ID).DueAt != dsr.DueAt(st.ReceivedAt) {
		t.Error("the deadline moved although it runs from receipt by default")
	}
}

// Five wrong codes exhaust a code; a new one waits, then works, and the
// old one no longer does; the sends run out.
func TestVerificationLimits(t *testing.T) {
	w := newWorld(t)
	mail := withVerification(w)
	st, err := w.submitFrom("portal", `{"type":"access","subject":{"email":"ann@x.example"}}`)
	if err != nil {
		t.Fatal(err)
	}
	first := mail.lastCode(t)
	for i := range DefaultMaxAttempts {
		if _, err := w.svc.VerifyCode(context.Background(), st.ID, "9999"+string(rune('0'+i))+"9"); !errors.Is(err, ErrWrongCode) && first != "9999"+string(rune('0'+i))+"9" {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := w.svc.VerifyCode(context.Background(), st.ID, first); !errors.Is(err, ErrTooManyAttempts) {
		t.Fatalf("the right code after %d wrong ones: %v", DefaultMaxAttempts, err)
	}
	var soon *TooSoonError
	if err := w.svc.ResendCode(context.Background(), st.ID); !errors.As(err, &soon) || soon.RetryAfter != DefaultResendAfter {
		t.Fatalf("resend at once: %v", err)
	}
	w.now = w.now.Add(DefaultResendAfter)
	if err := w.svc.ResendCode(context.Background(), st.ID); err != nil {
		t.Fatal(err)
	}
	second := mail.lastCode(t)
	if first != second {
		if _, err := w.svc.VerifyCode(context.Background(), st.ID, first); !errors.Is(err, ErrWrongCode) {
			t.Errorf("the first code after a resend: %v", err)
		}
	}
	// The next wait is twice as long.
	w.now = w.now.Add(DefaultResendAfter)
	if err := w.svc.ResendCode(context.Background(), st.ID); !errors.As(err, &soon) {
		t.Errorf("second resend after one wait: %v", err)
	}
	for sends := 2; sends < DefaultMaxSends; sends++ {
		w.now = w.now.Add(DefaultResendAfter << sends)
		if err := w.svc.ResendCode(context.Background(), st.ID); err != nil {
			t.Fatalf("send %d: %v", sends+1, err)
		}
	}
	w.now = w.now.Add(24 * time.Hour)
	if err := w.svc.ResendCode(context.Background(), st.ID); !errors.Is(err, ErrNoMoreCodes) {
		t.Errorf("send %d: %v", DefaultMaxSends+1, err)
	}
	if _, err := w.svc.VerifyCode(context.Background(), st.ID, mail.lastCode(t)); !errors.Is(err, ErrCodeExpired) {
		t.Errorf("a code a day old: %v", err)
	}
	if len(mail.sent) != DefaultMaxSends {
		t.Errorf("%d mails, want %d", len(mail.sent), DefaultMaxSends)
	}
}

// An unverified request expires in the sweep, with nothing discovered.
func TestUnverifiedRequestsExpire(t *testing.T) {
	w := newWorld(t)
	withVerification(w)
	st, err := w.submitFrom("portal", `{"type":"erasure","subject":{"email":"ann@x.example"}}`)
	if err != nil {
		t.Fatal(err)
	}
	w.now = w.now.Add(DefaultExpireAfter - time.Minute)
	if res, err := w.svc.Sweep(context.Background()); err != nil || res.Expired != 0 {
		t.Fatalf("sweep before the expiry: %+v %v", res, err)
	}
	w.now = w.now.Add(2 * time.Minute)
	if res, err := w.svc.Sweep(context.Background()); err != nil || res.Expired != 1 {
		t.Fatalf("sweep after the expiry: %+v %v", res, err)
	}
	got := w.get(st.ID)
	if got.State != dsr.StateExpired || got.Code != nil || w.conn.discoveries != 0 {
		t.Fatalf("expired request: %s %+v, %d discoveries", got.State, got.Code, w.conn.discoveries)
	}
	if _, err := w.svc.VerifyCode(context.Background(), st.ID, "123456"); !errors.Is(err, ErrNotAwaiting) {
		t.Errorf("a code for an expired request: %v", err)
	}
}

// A trusted caller's attestation skips the code and is audited; without it
// a channel that requires verification needs an address to send it to.
func TestOperatorVerificationAndMissingAddress(t *testing.T) {
	w := newWorld(t)
	mail := withVerification(w)
	st, err := w.submitFrom("http", `{"type":"erasure","subject":{"email":"ann@x.example"},"verification":{"method":"operator","note":"called back on the contract number"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dsr.StateReceived || st.Identity == nil || st.Identity.Method != dsr.VerifyOperator || len(mail.sent) != 0 {
		t.Fatalf("attested request: %s %+v, %d mails", st.State, st.Identity, len(mail.sent))
	}
	found := false
	for _, e := range w.audit.entries {
		found = found || (e.RequestID == st.ID && e.Event == "identity.attested" && strings.Contains(e.Detail, "called back"))
	}
	if !found {
		t.Error("the attestation is not in the audit trail")
	}
	_, err = w.submitFrom("http", `{"type":"erasure","subject":{"ids":{"contactId":"C1"}}}`)
	var ie *dsr.InputError
	if !errors.As(err, &ie) || ie.Code != "verification-required" || ie.Errors[0].Field != "subject.email" {
		t.Fatalf("no address to verify: %v", err)
	}
	// Access over http does not need it here.
	if st, err := w.submitFrom("http", `{"type":"access","subject":{"ids":{"contactId":"C1"}}}`); err != nil || st.State != dsr.StateReceived {
		t.Fatalf("access over http: %v", err)
	}
}

// With DSR_VERIFY_DEADLINE=verification the month runs from the code.
func TestDeadlineFromVerification(t *testing.T) {
	w := newWorld(t)
	mail := withVerification(w)
	w.svc.Identity.DeadlineFromVerification = true
	st, err := w.submitFrom("portal", `{"type":"access","subject":{"email":"ann@x.example"}}`)
	if err != nil {
		t.Fatal(err)
	}
	w.now = w.now.Add(3 * 24 * time.Hour)
	w.svc.Identity.CodeTTL = 0
	got, err := w.svc.VerifyCode(context.Background(), st.ID, mail.lastCode(t))
	if !errors.Is(err, ErrCodeExpired) {
		t.Fatalf("a 3-day-old code: %v", err)
	}
	w.now = w.now.Add(DefaultResendAfter)
	if err := w.svc.ResendCode(context.Background(), st.ID); err != nil {
		t.Fatal(err)
	}
	if got, err = w.svc.VerifyCode(context.Background(), st.ID, mail.lastCode(t)); err != nil {
		t.Fatal(err)
	}
	if !got.DueAt.Equal(dsr.DueAt(w.now)) {
		t.Errorf("due %s, want a month after verification (%s)", got.DueAt, dsr.DueAt(w.now))
	}
}

// A mail that cannot be sent changes nothing the requester sees: the
// request waits, and a resend later works.
func TestCodeMailFailureIsNotFatal(t *testing.T) {
	w := newWorld(t)
	mail := withVerification(w)
	mail.fail = true
	st, err := w.submitFrom("portal", `{"type":"access","subject":{"email":"ann@x.example"}}`)
	if err != nil || st.State != dsr.StateAwaitingVerification {
		t.Fatalf("submit with mail down: %v", err)
	}
	if strings.Contains(w.logs.String(), "ann@") {
		t.Error("the address is in the logs")
	}
	mail.fail = false
	w.now = w.now.Add(DefaultResendAfter)
	if err := w.svc.ResendCode(context.Background(), st.ID); err != nil || len(mail.sent) != 1 {
		t.Fatalf("resend: %v, %d mails", err, len(mail.sent))
	}
}
