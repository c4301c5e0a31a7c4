package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Signature headers.
const (
	HeaderTimestamp      = "X-DSR-Timestamp"
	HeaderSignature      = "X-DSR-Signature"
	HeaderRequestID      = "X-DSR-Request-Id"
	HeaderIdempotencyKey = "Idempotency-Key"
	signaturePrefix      = "sha256="
)

// DefaultMaxSkew is how far a signed timestamp may be from the receiver's
// clock, either way, for the callback endpoint.
const DefaultMaxSkew = 5 * time.Minute

// Errors of Verify. Neither carries any header or body value.
var (
	// ErrBadSignature: the signature header is missing, malformed or does not match.
	ErrBadSignature = errors.New("webhook: signature missing, malformed or wrong")
	// ErrStaleTimestamp: the timestamp header is missing, malformed or too far from now.
	ErrStaleTimestamp = errors.New("webhook: timestamp missing, malformed or outside the accepted window")
)

// Sign returns the X-DSR-Signature value for body sent at unix time ts:
// "sha256=" + hex(HMAC-SHA256(secret, decimal(ts) + "." + body)).
func Sign(secret []byte, ts int64, body []byte) string {
	return signaturePrefix + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts int64, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// SetSignature sets the X-DSR-Timestamp and X-DSR-Signature headers of a
// request carrying body, signed at now. Systems written in Go can use it to
// sign their callbacks.
func SetSignature(h http.Header, secret, body []byte, now time.Time) {
	ts := now.Unix()
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, Sign(secret, ts, body))
}

// Verify checks the X-DSR-Timestamp and X-DSR-Signature headers of a
// request whose raw body is body: the timestamp must be a decimal unix time
// within maxSkew of now (either way), and the signature must equal Sign's
// (compared in constant time). It fails with ErrStaleTimestamp or
// ErrBadSignature; a non-positive maxSkew means DefaultMaxSkew. Call it on
// the exact bytes received, before parsing them.
func Verify(secret []byte, header http.Header, body []byte, now time.Time, maxSkew time.Duration) error {
	if len(secret) == 0 {
		return fmt.Errorf("webhook: verify: no secret configured")
	}
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	tsText := header.Get(HeaderTimestamp)
	if tsText == "" || len(tsText) > 19 || strings.TrimLeft(tsText, "0123456789") != "" {
		return ErrStaleTimestamp
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return ErrStaleTimestamp
	}
	skew := now.Sub(time.Unix(ts, 0))
	if skew > maxSkew || skew < -maxSkew {
		return ErrStaleTimestamp
	}
	sig := header.Get(HeaderSignature)
	hexSig, ok := strings.CutPrefix(sig, signaturePrefix)
	if !ok || len(hexSig) != 2*sha256.Size {
		return ErrBadSignature
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return ErrBadSignature
	}
	// Sign over the timestamp as received: "0123" and "123" are different
	// strings, and the signer signed the text it sent.
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(tsText))
	m.Write([]byte{'.'})
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return ErrBadSignature
	}
	return nil
}
