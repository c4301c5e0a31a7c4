package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/notify"
)

// withDelivery adds the export-ready email to withVerification.
func withDelivery(w *world) *memMailer {
	m := withVerification(w)
	w.svc.Identity.ComposeDelivery = func(d DeliveryMail) notify.Message {
		return notify.Message{To: d.To, Subject: "Your data is ready", Text: "Open the portal until " + d.LinkExpiresAt.String(), Key: d.Key}
	}
	return m
}

// verifiedAccess submits an access request through the portal, verifies
// it and runs it to completion.
func verifiedAccess(w *world, mail *memMailer, times int) *dsr.Stored {
	w.t.Helper()
	st, err := w.submitFrom("portal", `{"type":"access","subject":{"email":"ann@x.example"}}`)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.svc.VerifyCode(context.Background(), st.ID, mail.lastCode(w.t)); err != nil {
		w.t.Fatal(err)
	}
	w.drain(times)
	return w.get(st.ID)
}

func (a *memAudit) events(id string) []string {
	entries, _ := a.ForRequest(context.Background(), id)
	var out []string
	for _, e := range entries {
		if e.Event != "state" {
			out = append(out, e.Event)
		}
	}
	return out
}

// A verified portal request's export is announced to the person once,
// even when the export message is delivered twice; the link alone hands
// out nothing: a fresh code does, once, and the download is audited.
func TestDeliveryNeedsAFreshCode(t *testing.T) {
	w := newWorld(t)
	mail := withDelivery(w)
	st := verifiedAccess(w, mail, 2)
	if st.State != dsr.StateCompleted || st.Delivery == nil || st.Delivery.NotifiedAt == nil || st.Delivery.LinkExpiresAt == nil {
		t.Fatalf("completed request: %s %+v", st.State, st.Delivery)
	}
	if n := mail.sends[st.ID+":delivery"]; n != 1 {
		t.Fatalf("export-ready email sent %d times, want 1 (redelivery must not send it again)", n)
	}
	if !st.Delivery.LinkExpiresAt.Equal(st.Export.CreatedAt.Add(w.svc.LinkTTL)) {
		t.Errorf("link until %v, want the export's link lifetime", st.Delivery.LinkExpiresAt)
	}
	ctx := context.Background()
	if _, err := w.svc.Download(ctx, st.ID, "123456"); !errors.Is(err, ErrCodeExpired) {
		t.Fatalf("download without asking for a code: %v", err)
	}
	if err := w.svc.SendDownloadCode(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	last := mail.sent[len(mail.sent)-1]
	if last.To != "ann@x.example" || last.Key != st.ID+":download:1" {
		t.Fatalf("download code mail %+v", last)
	}
	code := mail.lastCode(t)
	if w.get(st.ID).DownloadCode.Hash == w.svc.codeHash(st.ID, code) {
		t.Error("a download code hashes like a verification code of the same request")
	}
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if _, err := w.svc.Download(ctx, st.ID, wrong); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("wrong code: %v", err)
	}
	link, err := w.svc.Download(ctx, st.ID, code)
	if err != nil || link.URL != "memory://"+st.ExportBlob {
		t.Fatalf("right code: %v %+v", err, link)
	}
	if _, err := w.svc.Download(ctx, st.ID, code); !errors.Is(err, ErrCodeExpired) {
		t.Errorf("the same code twice: %v (a code works once)", err)
	}
	if got := w.get(st.ID).Delivery; got.Downloads != 1 || got.LastDownloadAt == nil {
		t.Errorf("delivery %+v", got)
	}
	if ev := strings.Join(w.audit.events(st.ID), " "); ev != "export.delivery-sent export.downloaded" {
		t.Errorf("audit events %q", ev)
	}
	var soon *TooSoonError
	if err := w.svc.SendDownloadCode(ctx, st.ID); !errors.As(err, &soon) {
		t.Errorf("a second code at once: %v", err)
	}
	// After the link's lifetime the portal hands out nothing.
	w.now = st.Export.CreatedAt.Add(w.svc.LinkTTL)
	if err := w.svc.SendDownloadCode(ctx, st.ID); !errors.Is(err, ErrNoDownload) {
		t.Errorf("a code after the link's lifetime: %v", err)
	}
	if strings.Contains(w.logs.String(), "ann@x.example") {
		t.Error("the address reached the log")
	}
}

// Requests not verified by the person herself get no email and cannot be
// downloaded through the portal.
func TestNoDeliveryWithoutCodeVerification(t *testing.T) {
	w := newWorld(t)
	mail := withDelivery(w)
	id := w.submit(`{"type":"access","subject":{"email":"ann@x.example"},"verification":{"method":"operator","note":"checked her passport"}}`)
	w.drain(1)
	st := w.get(id)
	if st.State != dsr.StateCompleted || st.Delivery != nil || len(mail.sent) != 0 {
		t.Fatalf("operator-verified request: %s %+v %d mails", st.State, st.Delivery, len(mail.sent))
	}
	if err := w.svc.SendDownloadCode(context.Background(), id); !errors.Is(err, ErrNoDownload) {
		t.Errorf("download code for an operator's request: %v", err)
	}
}

// A failing mailer is retried through redelivery, then left for a person:
// the request stays completed and says why.
func TestDeliveryFailureLeftForAPerson(t *testing.T) {
	w := newWorld(t)
	mail := withDelivery(w)
	st, err := w.submitFrom("portal", `{"type":"access","subject":{"email":"ann@x.example"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.VerifyCode(context.Background(), st.ID, mail.lastCode(t)); err != nil {
		t.Fatal(err)
	}
	w.deliver(1) // discovery
	m, _, ok := w.sent.take(w.now)
	if !ok {
		t.Fatal("no export message")
	}
	sm, err := ParseStageMessage(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	mail.fail = true
	for attempt := 1; attempt < MaxDeliveryAttempts; attempt++ {
		if err := w.svc.RunStage(context.Background(), sm, attempt); err == nil {
			t.Fatalf("attempt %d: a failed email must be retried", attempt)
		}
	}
	if err := w.svc.RunStage(context.Background(), sm, MaxDeliveryAttempts); err != nil {
		t.Fatalf("last attempt: %v", err)
	}
	got := w.get(st.ID)
	if got.State != dsr.StateCompleted || got.Delivery == nil || got.Delivery.NotifiedAt != nil ||
		got.Delivery.Attempts != MaxDeliveryAttempts || got.Delivery.Error != "status 503 after 3 attempts" {
		t.Fatalf("after failing: %s %+v", got.State, got.Delivery)
	}
	if ev := w.audit.events(st.ID); len(ev) != 1 || ev[0] != "export.delivery-failed" {
		t.Errorf("audit events %v", ev)
	}
}
