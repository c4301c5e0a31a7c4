// Package notify sends email to data subjects: a one-time verification code
// today, a link to their export later. It holds what every backend shares:
// the Message, the Sender interface, the checks a message must pass before
// any backend sees it, the idempotency key's derived forms, and the one
// error shape every backend returns.
//
// Two backends implement Sender: notify/acs (Azure Communication Services
// Email, what production uses) and notify/outbox (one JSON blob per message
// in a Blob container, for local runs and tests, where nothing may leave
// the machine).
//
// # Personal data in errors
//
// A message's recipient, subject and body are personal data (the subject
// line may name the request; the body carries a verification code), and
// errors end up in logs, queue dead-letter reasons and the audit trail. So
// no error from this package or its backends contains any of them: errors
// name the message by KeyRef (a hash prefix of its Key) and say what went
// wrong with a status code or a service error code, never with text the
// service may have built from the message (ACS error messages can echo the
// address).
//
// # Idempotency
//
// Message.Key is chosen by the caller and names one logical email (for
// example "<requestId>:verify:1"). Queue messages are redelivered and
// functions are retried, so the same email may be handed to Send more than
// once; backends use the Key so that, where they can, a repeat does not
// become a second email: the outbox writes the same blob again (one
// message), ACS gets the same Operation-Id (OperationID). Whether ACS
// deduplicates sends by Operation-Id is not documented as a guarantee (see
// the acs package), so a caller that must never send twice should still
// record that a Key was sent.
package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Message is one email to one person.
type Message struct {
	// To is the recipient: one plain address, "name@domain", with no
	// display name, angle brackets or comments.
	To string
	// Subject is the subject line: one line, no control characters.
	Subject string
	// Text is the plain-text body. At least one of Text and HTML is needed;
	// send both when you can (clients that show text only, screen readers).
	Text string
	// HTML is the HTML body.
	HTML string
	// Key is the idempotency key chosen by the caller: the same Key must
	// mean the same email (see the package documentation).
	Key string
}

// Sender sends one message. A nil error means the backend took the message
// (ACS: it reported the send operation Succeeded, "out for delivery"; the
// outbox: the blob is written), not that it reached the inbox.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Limits checked by Validate.
const (
	// MaxBodyBytes caps Text and HTML together. ACS accepts 10 MB per
	// request including attachments; our emails are a code or a link, and
	// JSON escaping can grow a body several times over, so 1 MiB leaves
	// room under the service's limit while refusing anything that is
	// clearly a bug.
	MaxBodyBytes = 1 << 20
	// MaxSubjectBytes caps the subject: RFC 5322's line limit.
	MaxSubjectBytes = 998
	// MaxAddressBytes caps the recipient: RFC 5321's path limit (256)
	// less the angle brackets.
	MaxAddressBytes = 254
	// MaxKeyBytes caps the idempotency key.
	MaxKeyBytes = 1024
)

// The kinds of failure a caller may act on, for errors.Is. A failure that
// is none of them (a network error, 429 or 5xx after the last attempt, the
// caller's context ending before the backend took the message) is
// transient: the same Message may be sent again later.
var (
	// ErrInvalid: the message was refused before anything was sent (see
	// Validate). Sending it again will fail again.
	ErrInvalid = errors.New("invalid message")
	// ErrRejected: the backend refused the message or reported that it was
	// not sent (ACS: a 4xx other than 429, or status Failed/Canceled such
	// as EmailDropped). Sending it unchanged will most likely fail again.
	ErrRejected = errors.New("rejected")
	// ErrStatusUnknown: the backend accepted the message but its outcome
	// was not learnt (ACS: the operation was still running at the poll
	// timeout, or the caller's context ended while polling). The email
	// may or may not go out; sending again with the same Key may produce
	// a second email unless the backend deduplicates by Key.
	ErrStatusUnknown = errors.New("delivery status unknown")
)

// Error is what Senders return. Its text is free of personal data by
// construction: it names the message by Ref only, and Reason, Code and
// Cause are built by the backends from status codes, service error codes
// and transport errors, never from the message or service-written prose.
type Error struct {
	// Ref is KeyRef of the message's Key.
	Ref string
	// Reason says what failed, e.g. "status 429 after 5 attempts".
	Reason string
	// Status is the HTTP status of the failing response, if any.
	Status int
	// Code is the service's error code (ACS x-ms-error-code or the
	// operation's error.code, e.g. "EmailDropped"), if any.
	Code string
	// Kind is ErrInvalid, ErrRejected, ErrStatusUnknown or nil (transient).
	Kind error
	// Cause is the underlying error (a transport or storage error, the
	// context's error), if any.
	Cause error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("notify: send ")
	b.WriteString(e.Ref)
	b.WriteString(": ")
	b.WriteString(e.Reason)
	if e.Code != "" {
		b.WriteString(" (")
		b.WriteString(e.Code)
		b.WriteString(")")
	}
	if e.Kind != nil && !strings.Contains(e.Reason, e.Kind.Error()) {
		b.WriteString(": ")
		b.WriteString(e.Kind.Error())
	}
	if e.Cause != nil {
		b.WriteString(": ")
		b.WriteString(e.Cause.Error())
	}
	return b.String()
}

// Unwrap lets errors.Is find Kind and Cause.
func (e *Error) Unwrap() []error {
	var out []error
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.Cause != nil {
		out = append(out, e.Cause)
	}
	return out
}

// KeyRef names a message in errors and logs without naming anything in it:
// the first 12 hex digits of SHA-256(key). A caller holding the Key can
// compute it to match a log line.
func KeyRef(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:6])
}

// KeyHash is the full hex SHA-256 of key: a name for storage that depends
// on the key alone and is safe to list (the outbox's blob name).
func KeyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// operationNamespace separates OperationID's hashes from any other use of
// SHA-256 over the same keys. It is a fixed, random UUID; changing it would
// give every in-flight Key a new Operation-Id.
var operationNamespace = [16]byte{0x6b, 0x1e, 0x4c, 0x0d, 0x93, 0x2a, 0x4f, 0x57, 0xa8, 0x11, 0x3c, 0x9e, 0x70, 0xd5, 0x2b, 0x86}

// OperationID derives a UUID from key, the same for the same key on every
// machine and run, so a retried send carries the same ACS Operation-Id.
//
// It is the name-based SHA-256 construction of RFC 9562 (appendix B.2):
// SHA-256 over a fixed namespace UUID and the key, the first 16 bytes, with
// the version set to 8 and the RFC variant. (Version 5 is the standard
// name-based form but is defined on SHA-1.) The result is a canonical
// lower-case 8-4-4-4-12 UUID, which is what the ACS spec asks for
// (format: uuid); that ACS accepts a version-8 UUID, rather than checking
// for version 4, has not been confirmed against the live service.
func OperationID(key string) string {
	h := sha256.New()
	h.Write(operationNamespace[:])
	h.Write([]byte(key))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // variant 10
	return FormatUUID(u)
}

// FormatUUID writes u in the canonical 8-4-4-4-12 lower-case form.
func FormatUUID(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// Validate checks m before any backend sees it: a Key; one plain recipient
// address; a one-line subject; a body, within MaxBodyBytes; valid UTF-8
// throughout. Headers (To, Subject) may hold no control characters at all,
// CR and LF above all, so that nothing a data subject typed can add a
// header or a recipient, whatever the backend does with them. The error is
// an *Error of kind ErrInvalid and names the field, never its value.
func (m Message) Validate() error {
	ref := KeyRef(m.Key)
	bad := func(reason string) error { return &Error{Ref: ref, Reason: reason, Kind: ErrInvalid} }
	switch {
	case m.Key == "":
		return bad("invalid message: no idempotency key")
	case len(m.Key) > MaxKeyBytes || !utf8.ValidString(m.Key):
		return bad("invalid message: idempotency key is not UTF-8 of at most 1024 bytes")
	case m.To == "":
		return bad("invalid message: no recipient")
	case !ValidAddress(m.To):
		return bad("invalid message: recipient is not a single plain address")
	case strings.TrimSpace(m.Subject) == "":
		return bad("invalid message: no subject")
	case len(m.Subject) > MaxSubjectBytes:
		return bad("invalid message: subject is longer than 998 bytes")
	case !validHeaderText(m.Subject):
		return bad("invalid message: subject holds control characters, line breaks or invalid UTF-8")
	case strings.TrimSpace(m.Text) == "" && strings.TrimSpace(m.HTML) == "":
		return bad("invalid message: no body (text or HTML)")
	case len(m.Text)+len(m.HTML) > MaxBodyBytes:
		return bad(fmt.Sprintf("invalid message: body is larger than %d bytes", MaxBodyBytes))
	case !utf8.ValidString(m.Text) || !utf8.ValidString(m.HTML):
		return bad("invalid message: body is not valid UTF-8")
	}
	return nil
}

// ValidAddress reports whether s is exactly one plain address,
// "local@domain": what net/mail parses as an address with no display name,
// which reads back unchanged (so no angle brackets, comments, quoting,
// surrounding spaces or lists), at most MaxAddressBytes long, with no
// control characters, and a domain that has a dot and no brackets (no
// address literals).
func ValidAddress(s string) bool {
	if s == "" || len(s) > MaxAddressBytes || !validHeaderText(s) || strings.ContainsAny(s, " ,;<>()\"\\[]") {
		return false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return false
	}
	domain := s[at+1:]
	return strings.Contains(domain, ".") && !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
}

// validHeaderText: valid UTF-8 with no control characters (C0, DEL, C1,
// which include CR, LF and NEL) and no Unicode line or paragraph
// separators.
func validHeaderText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}
