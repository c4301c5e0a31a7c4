package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dsr-functions/dsr/shared/blobs"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/notify"
)

// Delivery to the person: when the export of an access request she
// verified by code is ready, she gets an email with a link to the portal.
// The link alone hands out nothing: the portal sends a fresh code to the
// same address and mints the download link only for that code, so a
// forwarded or intercepted email is not enough, and every download is in
// the audit trail.

// DeliveryMail is what the export-ready email says.
type DeliveryMail struct {
	To        string
	RequestID string
	Type      dsr.Type
	// LinkExpiresAt is when the portal link stops working.
	LinkExpiresAt time.Time
	// Key is the idempotency key of this send.
	Key string
}

// MaxDeliveryAttempts is how many stage deliveries try the email before
// the request is left for a person (it shows delivery.error).
const MaxDeliveryAttempts = 5

// ErrNoDownload is a download asked for a request the person cannot
// download from the portal: not hers to fetch this way, not completed, or
// its package is gone.
var ErrNoDownload = errors.New("there is no export to download for this request")

// deliversToSubject reports whether a request's export goes to its
// subject through the portal.
func (s *Service) deliversToSubject(st *dsr.Stored) bool {
	return s.Identity != nil && s.Identity.Mailer != nil && s.Identity.ComposeDelivery != nil && s.Identity.Compose != nil &&
		(st.Type == dsr.TypeAccess || st.Type == dsr.TypePortability) && st.State == dsr.StateCompleted && st.Subject.Email != "" &&
		st.Identity != nil && st.Identity.Method == dsr.VerifyEmailCode && st.Identity.VerifiedAt != nil &&
		st.Export != nil && st.Export.DeletedAt == nil && st.ExportBlob != ""
}

// DownloadUntil is when the portal stops handing out a request's export:
// the lifetime of a link from the package's creation (the sweeper deletes
// the package a grace period later).
func (s *Service) DownloadUntil(st *dsr.Stored) time.Time {
	if st.Export == nil {
		return time.Time{}
	}
	return st.Export.CreatedAt.Add(s.LinkTTL)
}

// deliver sends the export-ready email once. A failed send is recorded
// on the request and returned, so the stage message is redelivered, until
// MaxDeliveryAttempts; then the request is left for a person to follow up
// and the stage succeeds.
func (s *Service) deliver(ctx context.Context, st *dsr.Stored, attempt int) error {
	if !s.deliversToSubject(st) || (st.Delivery != nil && st.Delivery.NotifiedAt != nil) {
		return nil
	}
	until := s.DownloadUntil(st)
	key := st.ID + ":delivery"
	msg := s.Identity.ComposeDelivery(DeliveryMail{To: st.Subject.Email, RequestID: st.ID, Type: st.Type, LinkExpiresAt: until, Key: key})
	msg.Key = key
	sendErr := s.Identity.Mailer.Send(ctx, msg)
	now := s.NowUTC()
	id := st.ID
	st, err := s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
		if st.Delivery == nil {
			st.Delivery = &dsr.Delivery{}
		}
		if st.Delivery.NotifiedAt != nil {
			return false, nil
		}
		if sendErr != nil {
			st.Delivery.Attempts++
			st.Delivery.Error = sendReason(sendErr)
			return true, nil
		}
		st.Delivery.NotifiedAt, st.Delivery.LinkExpiresAt, st.Delivery.Error = &now, &until, ""
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("delivery %s: record: %w", id, err)
	}
	if sendErr != nil {
		s.Log.Error("export-ready email not sent", "requestId", st.ID, "attempt", attempt, "err", sendErr)
		if attempt < MaxDeliveryAttempts {
			return fmt.Errorf("delivery %s: %w", st.ID, sendErr)
		}
		return s.auditDelivery(ctx, st, "export.delivery-failed", "the export-ready email could not be sent; a person must tell the requester: "+st.Delivery.Error)
	}
	s.Log.Info("export-ready email sent", "requestId", st.ID)
	return s.auditDelivery(ctx, st, "export.delivery-sent", "export-ready email sent to the verified address; the portal link works until "+until.Format(time.RFC3339))
}

func (s *Service) auditDelivery(ctx context.Context, st *dsr.Stored, event, detail string) error {
	if s.Audit == nil {
		return nil
	}
	if err := s.Audit.Append(ctx, s.decisionEntry(st, event, dsr.Actor{Kind: "system", ID: "delivery"}, detail)); err != nil {
		return fmt.Errorf("audit %s of %s: %w", event, st.ID, err)
	}
	return nil
}

// sendReason is what a failed send says on the request: the notifier's
// reason (which holds no address), or nothing more specific.
func sendReason(err error) string {
	var ne *notify.Error
	if errors.As(err, &ne) && ne.Reason != "" {
		return ne.Reason
	}
	return "send failed"
}

// SendDownloadCode emails a fresh one-time code for downloading a
// request's export from the portal, after the same doubling wait as
// verification codes and at most MaxSends in all: the person downloads a
// few times, then asks a person.
func (s *Service) SendDownloadCode(ctx context.Context, id string) error {
	var code string
	st, err := s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
		code = ""
		now := s.NowUTC()
		if !s.deliversToSubject(st) || !now.Before(s.DownloadUntil(st)) {
			return false, ErrNoDownload
		}
		next, c, err := s.nextCode(st.DownloadCode, downloadKey(st.ID), now)
		if err != nil {
			return false, err
		}
		st.DownloadCode, code = next, c
		return true, nil
	})
	if err != nil {
		return err
	}
	n := st.DownloadCode.Sends
	key := fmt.Sprintf("%s:download:%d", st.ID, n)
	msg := s.Identity.Compose(CodeMail{To: st.Subject.Email, RequestID: st.ID, Type: st.Type, Code: code,
		ExpiresAt: st.DownloadCode.ExpiresAt, Purpose: PurposeDownload, Key: key})
	msg.Key = key
	if err := s.Identity.Mailer.Send(ctx, msg); err != nil {
		s.Log.Error("download code not sent", "requestId", st.ID, "send", n, "err", err)
		return fmt.Errorf("download code of %s: %w", st.ID, err)
	}
	s.Log.Info("download code sent", "requestId", st.ID, "send", n)
	return nil
}

// downloadKey binds download codes to their request apart from
// verification codes.
func downloadKey(id string) string { return id + ":download" }

// Download checks a download code and mints a fresh read-only link to the
// export. The code works once; the download is audited.
func (s *Service) Download(ctx context.Context, id, code string) (blobs.ReadLink, error) {
	var verdict error
	st, err := s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
		verdict = nil
		now := s.NowUTC()
		if !s.deliversToSubject(st) || !now.Before(s.DownloadUntil(st)) {
			return false, ErrNoDownload
		}
		if st.DownloadCode == nil || st.DownloadCode.Hash == "" {
			return false, ErrCodeExpired
		}
		if verdict = s.checkCode(st.DownloadCode, s.codeHash(downloadKey(st.ID), code), now); verdict != nil {
			return errors.Is(verdict, ErrWrongCode), nil
		}
		// Used up, but its sends and their wait still count: a download
		// does not reset the limits on codes.
		st.DownloadCode.Hash = ""
		if st.Delivery == nil {
			st.Delivery = &dsr.Delivery{}
		}
		st.Delivery.Downloads++
		st.Delivery.LastDownloadAt = &now
		return true, nil
	})
	if err != nil {
		return blobs.ReadLink{}, err
	}
	if verdict != nil {
		return blobs.ReadLink{}, verdict
	}
	link, err := s.ExportLink(ctx, st)
	if err != nil {
		return blobs.ReadLink{}, err
	}
	if err := s.auditDelivery(ctx, st, "export.downloaded", fmt.Sprintf("download link %d issued to the requester after a fresh code; it works until %s",
		st.Delivery.Downloads, link.ExpiresAt.Format(time.RFC3339))); err != nil {
		// The link is the person's: refuse it if the trail cannot say so.
		return blobs.ReadLink{}, err
	}
	s.Log.Info("export downloaded through the portal", "requestId", st.ID, "download", st.Delivery.Downloads)
	return link, nil
}
