package pipeline

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/notify"
)

// Identity verification: before anything is searched, a request from an
// untrusted channel (the portal) waits in the identity step until the
// person enters a one-time code sent to the address they gave. Handing one
// person's data to another is the worst failure a DSR system can have, and
// an email address alone proves nothing.
//
// Codes are 6 random digits, stored only as a keyed hash (HMAC-SHA256 with
// DSR_PSEUDONYM_SECRET, bound to the request id), short-lived, compared in
// constant time, with at most MaxAttempts wrong tries per code and
// MaxSends codes per request, each resend after a doubling wait. Every
// check is a write conditional on the request's ETag, so attempts cannot be
// raced past the limit.

// Verification configures identity verification.
type Verification struct {
	// Required reports whether a request of type t arriving on channel
	// origin ("portal", "http", "queue") needs a verified requester.
	Required func(origin string, t dsr.Type) bool
	// Mailer sends the codes; nil: no request can wait for one (a
	// submission that needs one is refused).
	Mailer notify.Sender
	// Compose writes the email of a code.
	Compose func(CodeMail) notify.Message
	// ComposeDelivery writes the email that tells a verified requester her
	// export is ready (shared/portal); nil: no such email.
	ComposeDelivery func(DeliveryMail) notify.Message
	// CodeTTL is how long a code works (default 30 minutes).
	CodeTTL time.Duration
	// ExpireAfter is how long an unverified request waits before it
	// expires (default 7 days).
	ExpireAfter time.Duration
	// DeadlineFromVerification restarts the Art. 12(3) month when the
	// requester is verified; by default it runs from receipt (the
	// conservative reading).
	DeadlineFromVerification bool
	// MaxAttempts per code (default 5) and MaxSends per request (default 5).
	MaxAttempts, MaxSends int
	// ResendAfter is the wait before the second code; it doubles for each
	// further one (default 1 minute).
	ResendAfter time.Duration
}

// CodeMail is what a code's email says.
type CodeMail struct {
	To        string
	RequestID string
	Type      dsr.Type
	Code      string
	ExpiresAt time.Time
	// Purpose is what the code is for: PurposeVerify (the request) or
	// PurposeDownload (the export).
	Purpose string
	// Key is the idempotency key of this send.
	Key string
	// Agent is the name of who asked on the subject's behalf ("" when she
	// asked herself), so the email tells her who acts for her.
	Agent string
}

// Code purposes.
const (
	PurposeVerify   = "verify"
	PurposeDownload = "download"
)

// Defaults of Verification.
const (
	DefaultCodeTTL     = 30 * time.Minute
	DefaultExpireAfter = 7 * 24 * time.Hour
	DefaultMaxAttempts = 5
	DefaultMaxSends    = 5
	DefaultResendAfter = time.Minute
)

func (v *Verification) codeTTL() time.Duration { return orDuration(v.CodeTTL, DefaultCodeTTL) }
func (v *Verification) expireAfter() time.Duration {
	return orDuration(v.ExpireAfter, DefaultExpireAfter)
}
func (v *Verification) resendAfter() time.Duration {
	return orDuration(v.ResendAfter, DefaultResendAfter)
}
func (v *Verification) maxAttempts() int { return orInt(v.MaxAttempts, DefaultMaxAttempts) }
func (v *Verification) maxSends() int    { return orInt(v.MaxSends, DefaultMaxSends) }

func orDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func orInt(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}

// Verification errors; their text is safe to show to the requester.
var (
	ErrWrongCode       = errors.New("the code is not right")
	ErrCodeExpired     = errors.New("the code has expired; ask for a new one")
	ErrTooManyAttempts = errors.New("too many wrong codes; ask for a new one")
	ErrNoMoreCodes     = errors.New("no more codes can be sent for this request; submit it again later")
	ErrNotAwaiting     = errors.New("the request does not wait for a code")
)

// TooSoonError is a resend asked for before its wait is over.
type TooSoonError struct{ RetryAfter time.Duration }

func (e *TooSoonError) Error() string {
	return fmt.Sprintf("a new code can be sent in %d seconds", int(e.RetryAfter.Seconds()+0.999))
}

// needsVerification reports whether a new request waits for a code.
func (s *Service) needsVerification(origin string, sub *dsr.Submission) bool {
	return sub.Verification == nil && s.Identity != nil && s.Identity.Required != nil && s.Identity.Required(origin, sub.Type)
}

// verificationRequired is the input error of a submission that needs a
// code but cannot get one.
func verificationRequired(detail string) error {
	return &dsr.InputError{Status: http.StatusUnprocessableEntity, Code: "verification-required", Title: "Verification required",
		Errors: []dsr.FieldError{{Field: "subject.email", Detail: detail}}}
}

// prepareIdentity sets a new request's identity step before it is stored:
// a trusted caller's attestation, or a wait for a code (returned, to send
// once the request exists).
func (s *Service) prepareIdentity(st *dsr.Stored, origin string, sub *dsr.Submission, now time.Time) (string, error) {
	if v := sub.Verification; v != nil {
		at := now.UTC()
		st.Identity = &dsr.IdentityCheck{Method: dsr.VerifyOperator, VerifiedAt: &at, Note: v.Note}
		return "", nil
	}
	if !s.needsVerification(origin, sub) {
		return "", nil
	}
	switch {
	case st.Subject.Email == "":
		return "", verificationRequired("required: the requester proves the address with a code sent there (or a trusted caller gives verification.method \"operator\")")
	case s.Identity.Mailer == nil || s.Identity.Compose == nil || len(s.Secret) == 0:
		return "", verificationRequired("verification by email is not configured (DSR_EMAIL_* settings and DSR_PSEUDONYM_SECRET); a trusted caller may give verification.method \"operator\"")
	}
	if err := st.AwaitVerification(now, now.Add(s.Identity.expireAfter())); err != nil {
		return "", err
	}
	code, err := newCode()
	if err != nil {
		return "", err
	}
	st.Code = &dsr.CodeState{Hash: s.codeHash(st.ID, code), ExpiresAt: now.Add(s.Identity.codeTTL()), Sends: 1, LastSentAt: now}
	return code, nil
}

// newCode is 6 random decimal digits.
func newCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", fmt.Errorf("code: %w", err)
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// codeHash binds a code to its request under the app's secret.
func (s *Service) codeHash(id, code string) string {
	m := hmac.New(sha256.New, s.Secret)
	m.Write([]byte("dsr-verify-code\x00" + id + "\x00" + code))
	return hex.EncodeToString(m.Sum(nil))
}

// sendCode emails code number n of a request. A failure is logged, not
// returned: the requester asks for a new code, and the answer to the
// submission must not differ.
func (s *Service) sendCode(ctx context.Context, st *dsr.Stored, code string, n int) {
	key := fmt.Sprintf("%s:verify:%d", st.ID, n)
	m := CodeMail{To: st.Subject.Email, RequestID: st.ID, Type: st.Type, Code: code, ExpiresAt: st.Code.ExpiresAt, Purpose: PurposeVerify, Key: key}
	if st.Agent != nil {
		m.Agent = st.Agent.Name // the code still goes to the subject, never to the agent
	}
	msg := s.Identity.Compose(m)
	msg.Key = key
	if err := s.Identity.Mailer.Send(ctx, msg); err != nil {
		s.Log.Error("verification code not sent", "requestId", st.ID, "send", n, "err", err)
		return
	}
	s.Log.Info("verification code sent", "requestId", st.ID, "send", n)
}

// ResendCode sends a new code for a request awaiting verification, after
// the wait since the last one; the old code stops working.
func (s *Service) ResendCode(ctx context.Context, id string) error {
	var code string
	var n int
	st, err := s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
		code = ""
		if st.State != dsr.StateAwaitingVerification || st.Code == nil {
			return false, ErrNotAwaiting
		}
		next, c, err := s.nextCode(st.Code, st.ID, s.NowUTC())
		if err != nil {
			return false, err
		}
		st.Code, code, n = next, c, next.Sends
		return true, nil
	})
	if err != nil {
		return err
	}
	s.sendCode(ctx, st, code, n)
	return nil
}

// nextCode makes the code after prev (nil: the first), bound to key:
// ErrNoMoreCodes once MaxSends were sent, a TooSoonError before the wait
// since the last one (doubling with each) is over. The old code stops
// working.
func (s *Service) nextCode(prev *dsr.CodeState, key string, now time.Time) (*dsr.CodeState, string, error) {
	sends := 0
	if prev != nil {
		sends = prev.Sends
		if sends >= s.Identity.maxSends() {
			return nil, "", ErrNoMoreCodes
		}
		wait := s.Identity.resendAfter() << max(sends-1, 0)
		if next := prev.LastSentAt.Add(wait); now.Before(next) {
			return nil, "", &TooSoonError{RetryAfter: next.Sub(now)}
		}
	}
	c, err := newCode()
	if err != nil {
		return nil, "", err
	}
	return &dsr.CodeState{Hash: s.codeHash(key, c), ExpiresAt: now.Add(s.Identity.codeTTL()), Sends: sends + 1, LastSentAt: now}, c, nil
}

// VerifyCode checks a code a requester entered. The right code moves the
// request on to discovery (and says so to the audit trail); a wrong one
// counts against the code's attempts. A request already verified answers
// nil again, so a double submit is harmless.
func (s *Service) VerifyCode(ctx context.Context, id, code string) (*dsr.Stored, error) {
	var verdict error
	st, err := s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
		verdict = nil
		if st.State != dsr.StateAwaitingVerification || st.Code == nil {
			if st.Identity != nil && st.Identity.VerifiedAt != nil && st.Identity.Method == dsr.VerifyEmailCode {
				return false, nil
			}
			return false, ErrNotAwaiting
		}
		now := s.NowUTC()
		if verdict = s.checkCode(st.Code, s.codeHash(st.ID, code), now); verdict != nil {
			// A wrong code counts against the code's attempts.
			return errors.Is(verdict, ErrWrongCode), nil
		}
		next, ok := dsr.Next(st.Type, dsr.StageIdentity, s.takes(st))
		if !ok {
			return false, fmt.Errorf("%s %s: no stage after identity", st.Type, st.ID)
		}
		if err := st.Verified(now, next, s.Identity.DeadlineFromVerification); err != nil {
			return false, err
		}
		st.Code = nil
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if verdict != nil {
		return st, verdict
	}
	if err := s.syncAudit(ctx, st); err != nil {
		return st, err
	}
	return st, s.nextMessage(ctx, st)
}

// checkCode compares the hash of an entered code with the pending one in
// constant time: ErrTooManyAttempts once the attempts are used up,
// ErrCodeExpired after its time, ErrWrongCode (counted on cs) when it
// differs.
func (s *Service) checkCode(cs *dsr.CodeState, got string, now time.Time) error {
	switch {
	case cs.Attempts >= s.Identity.maxAttempts():
		return ErrTooManyAttempts
	case !now.Before(cs.ExpiresAt):
		return ErrCodeExpired
	}
	want, _ := hex.DecodeString(cs.Hash)
	have, _ := hex.DecodeString(got)
	if !hmac.Equal(want, have) {
		cs.Attempts++
		return ErrWrongCode
	}
	return nil
}

// expireUnverified ends a request whose requester did not verify in time.
// It reports whether it did.
func (s *Service) expireUnverified(ctx context.Context, id string, now time.Time) (bool, error) {
	done := false
	st, err := s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
		done = false
		if st.State != dsr.StateAwaitingVerification || st.Identity == nil || st.Identity.ExpiresAt == nil || now.Before(*st.Identity.ExpiresAt) {
			return false, nil
		}
		if err := st.Expire(now); err != nil {
			return false, err
		}
		st.Code = nil
		done = true
		return true, nil
	})
	if err != nil || !done {
		return false, err
	}
	s.Log.Info("unverified request expired", "requestId", id)
	return true, s.syncAudit(ctx, st)
}
