package transmit

import (
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Headers of a transmission. The signature covers, one per line:
// "dsr-transmit-v1", the timestamp, the request reference, the package's
// SHA-256 (hex) and the exact target URL, so a captured POST cannot be
// replayed to another controller or with another package.
const (
	HeaderRequest   = "DSR-Request"
	HeaderTimestamp = "DSR-Timestamp"
	HeaderSignature = "DSR-Signature"
	HeaderDigest    = "Content-Digest"
	signatureLabel  = "dsr-transmit-v1"
)

// Package is what is sent: the ZIP's bytes (streamed, never held in
// memory), their size and SHA-256.
type Package struct {
	// RequestRef is the request's reference, which the receiver quotes.
	RequestRef string
	Body       io.Reader
	Bytes      int64
	// SHA256 is the lower-case hex digest of Body.
	SHA256 string
}

// Result is the receiver's answer.
type Result struct {
	HTTPStatus int
}

// Client sends packages. The zero value is not usable; set Key.
type Client struct {
	// Key signs every transmission (see SigningKey); receivers verify
	// with its public half (PublicJWK).
	Key ed25519.PrivateKey
	// AllowHosts are host names (as in the URL, lower case) exempt from
	// the address refusal: a controller the operator reaches over a
	// private endpoint. Empty: none.
	AllowHosts []string
	// Resolve looks up a host's addresses (default the system resolver).
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// TLS is the TLS configuration (default: the system roots, TLS 1.2+).
	TLS *tls.Config
	// Timeout bounds one transmission (default 10 minutes: packages can
	// be large).
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// SigningKey derives the transmission signing key from a deployment
// secret (HKDF-SHA256), so no extra secret has to be kept; a different
// secret gives an unrelated key.
func SigningKey(secret string) (ed25519.PrivateKey, error) {
	if secret == "" {
		return nil, errors.New("transmit: no secret to derive the signing key from")
	}
	seed, err := hkdf.Key(sha256.New, []byte(secret), nil, "dsr-transmit-ed25519-v1", ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("transmit: derive signing key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// KeyID names a public key: the first 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// JWK is the public key as a JSON Web Key (RFC 8037), as published for
// receivers.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// PublicJWK returns the key receivers verify signatures with.
func PublicJWK(key ed25519.PrivateKey) JWK {
	pub := key.Public().(ed25519.PublicKey)
	return JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub), Kid: KeyID(pub), Use: "sig", Alg: "EdDSA"}
}

// signedText is what the signature covers.
func signedText(ts, ref, sha, target string) []byte {
	return []byte(strings.Join([]string{signatureLabel, ts, ref, sha, target}, "\n"))
}

// Verify checks a received transmission's headers against the package's
// SHA-256 and the URL it was posted to: what a receiving controller does
// (and what the tests do). maxAge bounds the timestamp's age.
func Verify(pub ed25519.PublicKey, h http.Header, sha, target string, now time.Time, maxAge time.Duration) error {
	ts := h.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("transmit: bad timestamp")
	}
	if age := now.Sub(time.Unix(sec, 0)); age > maxAge || age < -maxAge {
		return errors.New("transmit: timestamp out of range")
	}
	var kid, sig string
	for part := range strings.SplitSeq(h.Get(HeaderSignature), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "keyid":
			kid = v
		case "ed25519":
			sig = v
		}
	}
	if kid != KeyID(pub) {
		return errors.New("transmit: unknown key id")
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || !ed25519.Verify(pub, signedText(ts, h.Get(HeaderRequest), sha, target), raw) {
		return errors.New("transmit: bad signature")
	}
	return nil
}

// HTTPError is a receiver's non-2xx answer.
type HTTPError struct{ Status int }

func (e *HTTPError) Error() string {
	return fmt.Sprintf("transmit: the receiver answered HTTP %d", e.Status)
}

// Permanent reports whether err will not go away by trying again: a
// refused address, a bad URL, or a 4xx answer other than 408 and 429.
func Permanent(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status >= 400 && he.Status < 500 && he.Status != http.StatusRequestTimeout && he.Status != http.StatusTooManyRequests
	}
	return errors.Is(err, ErrRefused)
}

// Send POSTs p to target. Errors never hold the target or personal data
// beyond the receiver's status.
func (c *Client) Send(ctx context.Context, target string, p Package) (Result, error) {
	if err := CheckURL(target); err != nil {
		return Result{}, fmt.Errorf("transmit: %w: %v", ErrRefused, err)
	}
	if len(c.Key) != ed25519.PrivateKeySize {
		return Result{}, errors.New("transmit: no signing key")
	}
	u, _ := url.Parse(target)
	host := strings.ToLower(u.Hostname())
	allowed := slices.Contains(c.AllowHosts, host)
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLS != nil {
		tlsCfg = c.TLS.Clone()
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second}
	tr := &http.Transport{
		Proxy:               nil, // a proxy would dial for us, past the address check
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 30 * time.Second,
		ForceAttemptHTTP2:   true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			h, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			ip, err := c.pick(ctx, h, allowed)
			if err != nil {
				return nil, &pickError{err}
			}
			return dialer.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		// A redirect would take the package to an address nobody checked.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	ts := strconv.FormatInt(now().Unix(), 10)
	digest, err := hex.DecodeString(p.SHA256)
	if err != nil || len(digest) != sha256.Size {
		return Result{}, errors.New("transmit: package SHA-256 is not a hex digest")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, p.Body)
	if err != nil {
		return Result{}, fmt.Errorf("transmit: %w: %v", ErrRefused, err)
	}
	req.ContentLength = p.Bytes
	req.Header.Set("Content-Type", "application/zip")
	req.Header.Set(HeaderDigest, "sha-256=:"+base64.StdEncoding.EncodeToString(digest)+":")
	req.Header.Set(HeaderRequest, p.RequestRef)
	req.Header.Set(HeaderTimestamp, ts)
	sig := ed25519.Sign(c.Key, signedText(ts, p.RequestRef, p.SHA256, target))
	req.Header.Set(HeaderSignature, "keyid="+KeyID(c.Key.Public().(ed25519.PublicKey))+",ed25519="+base64.StdEncoding.EncodeToString(sig))
	req.Header.Set("User-Agent", "dsr-functions-transmit/1")
	resp, err := client.Do(req)
	if err != nil {
		var pe *pickError
		if errors.As(err, &pe) {
			return Result{}, fmt.Errorf("transmit: %w", pe.err) // without the address the dialler adds
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is the person's choice: not in our errors
		}
		return Result{}, fmt.Errorf("transmit: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return Result{HTTPStatus: resp.StatusCode}, &HTTPError{Status: resp.StatusCode}
	}
	return Result{HTTPStatus: resp.StatusCode}, nil
}

// pickError is pick's error on its way through the HTTP client, which
// wraps it with the address.
type pickError struct{ err error }

func (e *pickError) Error() string { return e.err.Error() }
func (e *pickError) Unwrap() error { return e.err }

// pick resolves host and returns the address to dial: refused if any of
// its addresses is one we never send to (unless the host is exempt).
func (c *Client) pick(ctx context.Context, host string, allowed bool) (netip.Addr, error) {
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		resolve := c.Resolve
		if resolve == nil {
			resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
				return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			}
		}
		if addrs, err = resolve(ctx, host); err != nil {
			// The resolver's message names the host: say only what failed.
			return netip.Addr{}, errors.New("could not resolve the receiver's host")
		}
	}
	if len(addrs) == 0 {
		return netip.Addr{}, errors.New("the receiver's host has no address")
	}
	if !allowed {
		for _, a := range addrs {
			if Refused(a) {
				return netip.Addr{}, fmt.Errorf("%w: the receiver's host resolves to a private or special-purpose address", ErrRefused)
			}
		}
	}
	return addrs[0].Unmap(), nil
}
