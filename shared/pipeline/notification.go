package pipeline

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sources"
)

// Telling recipients (Art. 19): after an erasure, rectification or
// restriction (or its lifting) completes, every recipient the sources
// config names for a dataset the request changed gets a notice. Each notice
// is retried on its own schedule (scheduled stage messages, jittered
// exponential back-off), so a recipient that is down for a while does not
// burn the stage's deliveries; after MaxNotificationAttempts it is marked
// failed and the request completes marked for follow-up. A notice sent is
// recorded before the stage moves on, so a redelivered message does not
// send it again; a crash between sending and recording sends it once more
// with the same NoticeID, by which the recipient recognises it.

// Notice is what a recipient is told.
type Notice struct {
	// NoticeID is stable per request and recipient ("<request>:<recipient>").
	NoticeID  string
	RequestID string
	Type      dsr.Type
	// Lifted is set when a restriction was lifted.
	Lifted bool
	// Datasets are the recipient's datasets that the request changed, and
	// what was done in each.
	Datasets []NoticeDataset
	// Subject holds the person's identifiers; the notifier sends them raw
	// or as keyed hashes per recipient (never by email).
	Subject sources.Subject
	At      time.Time
}

// NoticeDataset is what was done in one dataset.
type NoticeDataset struct {
	Dataset    string `json:"dataset"`
	Deleted    int64  `json:"deleted,omitempty"`
	Masked     int64  `json:"masked,omitempty"`
	Retained   int64  `json:"retained,omitempty"`
	Rectified  int64  `json:"rectified,omitempty"`
	Restricted int64  `json:"restricted,omitempty"`
}

// Notifier tells one recipient (shared/recipients in the app). Errors hold
// no personal data.
type Notifier interface {
	Notify(ctx context.Context, r *sources.Recipient, n Notice) error
}

// MaxNotificationAttempts is how often a notice is tried before it is
// marked failed.
const MaxNotificationAttempts = 6

// notificationBackoff is the wait before the next try of a notice after n
// tries: 30 s doubling, at most an hour, jittered (Backoff.Delay).
var notificationBackoff = Backoff{Base: 30 * time.Second, Max: time.Hour}

// changed lists the datasets a request found the person in, whose
// recipients are told.
func changed(st *dsr.Stored) []string {
	var out []string
	if st.Discovery != nil {
		for _, s := range st.Discovery.Sources {
			if s.Records > 0 && s.Error == "" {
				out = append(out, s.Source)
			}
		}
	}
	return out
}

// notifies reports whether a request has recipients to tell.
func (s *Service) notifies(st *dsr.Stored) bool {
	return s.Sources != nil && len(s.Sources.RecipientsOf(changed(st))) > 0
}

// takes says which optional steps of its route a request takes: approval
// for the types that need it and for repeat requests (Art. 12(5): an
// operator decides), notification when there are recipients.
func (s *Service) takes(st *dsr.Stored) func(dsr.Step) bool {
	return func(step dsr.Step) bool {
		switch step.Stage {
		case dsr.StageApproval:
			return s.ApprovalTypes[st.Type] || st.Repeat()
		case dsr.StageNotification:
			return s.notifies(st)
		case dsr.StageTransmission:
			return st.TransmitTo != ""
		}
		return false
	}
}

// Notify sends the notices of a request (the erase queue) that are not
// sent yet, then completes the request, or schedules the next try.
func (s *Service) Notify(ctx context.Context, id string, attempt int) error {
	st, err := s.loadForStage(ctx, id, "notification")
	if st == nil || err != nil {
		return err
	}
	if st.State.Terminal() {
		return nil
	}
	if st.Stage != dsr.StageNotification {
		return fmt.Errorf("notification %s: request is at stage %s, not notification", id, st.Stage)
	}
	if s.Recipients == nil {
		return Permanent(fmt.Errorf("notification %s: no notifier configured", id))
	}
	notice := s.notice(st)
	for _, r := range s.Sources.RecipientsOf(changed(st)) {
		if n := notificationOf(st, r.Name); n != nil && n.Status != dsr.NotificationPending {
			continue
		}
		if n := notificationOf(st, r.Name); n != nil && n.At != nil && s.NowUTC().Before(n.At.Add(notificationBackoff.Floor(n.Attempts)/2)) {
			continue // a redelivery right after a failure: wait for the scheduled try
		}
		nt := notice
		nt.NoticeID = st.ID + ":" + r.Name
		nt.Datasets = slices.DeleteFunc(slices.Clone(notice.Datasets), func(d NoticeDataset) bool { return !slices.Contains(r.Datasets, d.Dataset) })
		sendErr := s.Recipients.Notify(ctx, r, nt)
		if st, err = s.recordNotification(ctx, id, r.Name, sendErr); err != nil {
			return err
		}
	}
	pending, failed := 0, 0
	for _, n := range st.Notifications {
		switch n.Status {
		case dsr.NotificationPending:
			pending++
		case dsr.NotificationFailed:
			failed++
		}
	}
	if pending > 0 {
		tries := 0
		for _, n := range st.Notifications {
			if n.Status == dsr.NotificationPending {
				tries = max(tries, n.Attempts)
			}
		}
		at := s.NowUTC().Add(notificationBackoff.Delay(tries, s.random()))
		s.Log.Info("notification: retry scheduled", "requestId", id, "pending", pending, "at", at)
		return s.sendStage(ctx, s.Queues.Erase, fmt.Sprintf("%s:notification:%d", id, tries), id, dsr.StageNotification, at)
	}
	st, err = s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
		if st.State.Terminal() || st.Stage != dsr.StageNotification {
			return false, nil
		}
		st.FollowUp = st.FollowUp || failed > 0
		return true, s.advance(st, dsr.StageNotification, attempt, fmt.Sprintf("%d recipient(s) told, %d not", len(st.Notifications)-failed, failed))
	})
	if err != nil {
		return err
	}
	return s.syncAudit(ctx, st)
}

func notificationOf(st *dsr.Stored, recipient string) *dsr.Notification {
	for i := range st.Notifications {
		if st.Notifications[i].Recipient == recipient {
			return &st.Notifications[i]
		}
	}
	return nil
}

// recordNotification records one attempt at a notice, and audits a sent
// or finally failed one.
func (s *Service) recordNotification(ctx context.Context, id, recipient string, sendErr error) (*dsr.Stored, error) {
	now := s.NowUTC()
	var event string
	st, err := s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
		event = ""
		n := notificationOf(st, recipient)
		if n == nil {
			st.Notifications = append(st.Notifications, dsr.Notification{Recipient: recipient, Status: dsr.NotificationPending})
			n = &st.Notifications[len(st.Notifications)-1]
		}
		if n.Status != dsr.NotificationPending {
			return false, nil
		}
		n.Attempts++
		n.At = &now
		switch {
		case sendErr == nil:
			n.Status, n.Error, event = dsr.NotificationSent, "", "notification.sent"
		case n.Attempts >= MaxNotificationAttempts:
			n.Status, n.Error, event = dsr.NotificationFailed, boundReason(sendErr), "notification.failed"
		default:
			n.Error = boundReason(sendErr)
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("notification %s: record %s: %w", id, recipient, err)
	}
	if sendErr != nil {
		s.Log.Warn("notification not delivered", "requestId", id, "recipient", recipient, "err", sendErr)
	}
	if event != "" && s.Audit != nil {
		detail := "told recipient " + recipient
		if event == "notification.failed" {
			detail = fmt.Sprintf("could not tell recipient %s after %d attempts: %s; a person must follow up", recipient, MaxNotificationAttempts, notificationOf(st, recipient).Error)
		}
		entry := s.decisionEntry(st, event, dsr.Actor{Kind: "system", ID: "notification"}, detail)
		entry.ID += ":" + recipient
		if err := s.Audit.Append(ctx, entry); err != nil {
			return st, fmt.Errorf("audit %s of %s: %w", event, id, err)
		}
	}
	return st, nil
}

// notice is what the request did, per changed dataset.
func (s *Service) notice(st *dsr.Stored) Notice {
	n := Notice{RequestID: st.ID, Type: st.Type, Subject: subjectOf(st), At: s.NowUTC()}
	index := map[string]int{}
	for _, name := range changed(st) {
		index[name] = len(n.Datasets)
		n.Datasets = append(n.Datasets, NoticeDataset{Dataset: name})
	}
	at := func(name string) *NoticeDataset {
		if i, ok := index[name]; ok {
			return &n.Datasets[i]
		}
		return nil
	}
	if e := st.Erasure; e != nil {
		for _, r := range e.Sources {
			if d := at(r.Source); d != nil {
				d.Deleted, d.Masked, d.Retained = r.Deleted, r.Masked, r.Retained
			}
		}
	}
	if r := st.Rectification; r != nil {
		for _, x := range r.Sources {
			if d := at(x.Source); d != nil {
				d.Rectified = x.Rectified
			}
		}
	}
	if r := st.Restriction; r != nil {
		n.Lifted = r.Lifted
		for _, x := range r.Sources {
			if d := at(x.Source); d != nil {
				d.Restricted = x.Flagged
			}
		}
	}
	return n
}
