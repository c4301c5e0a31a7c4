// Package acs sends notify messages with Azure Communication Services Email,
// over its REST API (there is no Go SDK for the ACS data plane), signed in
// with a Microsoft Entra token (the Function App's managed identity), so no
// access key has to be stored anywhere.
//
// One Send is one long-running ACS operation:
//
//  1. POST {endpoint}/emails:send?api-version=… with the message, an
//     Operation-Id derived from the message's Key (notify.OperationID) and a
//     fresh x-ms-client-request-id. 429 and 5xx (and network errors) are
//     retried, up to MaxAttempts, after the service's Retry-After (capped at
//     MaxRetryAfter) or an exponential back-off, always with the same
//     Operation-Id: if ACS deduplicates by Operation-Id, a send whose
//     answer was lost is not sent twice. That deduplication is not
//     documented as a guarantee; Microsoft's own SDKs send a random UUID
//     per call. Other 4xx answers are final (notify.ErrRejected).
//  2. 202 Accepted carries Operation-Location and retry-after. Send polls
//     that URL (GET), waiting what retry-after says (capped), until the
//     status is Succeeded (Send returns nil: ACS calls it "out for
//     delivery"; per-recipient delivery is reported only through Azure
//     Monitor or Event Grid), Failed or Canceled (notify.ErrRejected, with
//     the service's error code such as EmailDropped, never its message,
//     which can quote the address), or PollTimeout passes
//     (notify.ErrStatusUnknown: the email may still go out).
//
// Status reads count against their own rate limit (10 a minute on an
// Azure-managed domain), which is why polls wait what the service asks and
// a 429 on a poll is waited out rather than failed.
//
// The bearer token is sent to the configured endpoint only: an
// Operation-Location on another host is not followed; the status URL is then
// built from the endpoint and the operation id instead.
package acs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/dsr-functions/dsr/shared/httpretry"
	"github.com/dsr-functions/dsr/shared/notify"
)

// Defaults for the Config fields left zero.
const (
	// DefaultScope is the token scope Microsoft's Communication SDKs
	// (Python, JavaScript, Java, .NET) request: the double slash is in
	// their code. Third-party code also uses
	// "https://communication.azure.com/.default"; which form the service
	// requires was not confirmed, so this follows Microsoft's SDKs.
	DefaultScope = "https://communication.azure.com//.default"
	// DefaultAPIVersion is the current stable Email data-plane API (the
	// Python SDK's default); 2023-03-31 has the same send body.
	DefaultAPIVersion = "2025-09-01"
	// DefaultMaxAttempts bounds the POSTs of one Send.
	DefaultMaxAttempts = 5
	// DefaultPollTimeout bounds the polling of one Send.
	DefaultPollTimeout = 2 * time.Minute
	// DefaultPollInterval is the wait between polls when the service
	// gives no retry-after.
	DefaultPollInterval = 5 * time.Second
	// DefaultMaxRetryAfter caps any wait the service asks for.
	DefaultMaxRetryAfter = time.Minute
	// DefaultBaseDelay is the first back-off after a 429 or 5xx without
	// Retry-After, or a network error; it doubles per attempt.
	DefaultBaseDelay = time.Second
	// DefaultAttemptTimeout bounds one HTTP exchange.
	DefaultAttemptTimeout = 30 * time.Second
)

// maxResponse bounds what is read of any response body.
const maxResponse = 64 << 10

// Config configures a Sender. Endpoint, Sender and Credential are required.
type Config struct {
	// Endpoint is the Communication Service's data-plane URL,
	// https://<resource>.communication.azure.com: take it from the
	// resource's read-only hostName (a bare host name is accepted and
	// given https://). It must be https and have no path or query.
	Endpoint string
	// Sender is the From address, on a domain verified and linked to the
	// Communication Service, e.g. DoNotReply@<domain>.
	Sender string
	// Credential gets the bearer token: the app's managed identity
	// (azidentity), which needs a role on the Communication Service that
	// allows sending (see the reference notes).
	Credential azcore.TokenCredential
	// Scope is the token scope; empty means DefaultScope.
	Scope string
	// HTTPClient sends the requests; nil means a client that does not
	// follow redirects (a redirect is an error, not a hop that could carry
	// the token elsewhere).
	HTTPClient *http.Client
	// APIVersion is the api-version query value; empty means
	// DefaultAPIVersion.
	APIVersion string
	// MaxAttempts bounds the POSTs of one Send (first try included);
	// 0 means DefaultMaxAttempts.
	MaxAttempts int
	// PollTimeout bounds how long Send polls for the outcome after ACS
	// accepted the message; 0 means DefaultPollTimeout. The caller's
	// context bounds it too.
	PollTimeout time.Duration
	// PollInterval is the wait between polls when the service gives no
	// retry-after; 0 means DefaultPollInterval.
	PollInterval time.Duration
	// MaxRetryAfter caps every wait the service asks for (Retry-After,
	// retry-after) and the back-off; 0 means DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
	// BaseDelay is the first back-off of a retried POST when the service
	// says nothing; 0 means DefaultBaseDelay.
	BaseDelay time.Duration
	// AttemptTimeout bounds one HTTP exchange; 0 means
	// DefaultAttemptTimeout.
	AttemptTimeout time.Duration
}

// Sender sends through ACS Email. It is safe for concurrent use.
type Sender struct {
	cfg      Config
	endpoint *url.URL
	client   *http.Client
	now      func() time.Time
	sleep    func(context.Context, time.Duration) error
	jitter   func(n int64) int64
}

var _ notify.Sender = (*Sender)(nil)

// New checks cfg, fills its defaults and returns a Sender.
func New(cfg Config) (*Sender, error) {
	ep, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	if !notify.ValidAddress(cfg.Sender) {
		return nil, errors.New("acs: Sender is not a single plain address (e.g. DoNotReply@<verified domain>)")
	}
	if cfg.Credential == nil {
		return nil, errors.New("acs: no Credential")
	}
	if cfg.MaxAttempts < 0 || cfg.PollTimeout < 0 || cfg.PollInterval < 0 || cfg.MaxRetryAfter < 0 || cfg.BaseDelay < 0 || cfg.AttemptTimeout < 0 {
		return nil, errors.New("acs: negative limit in Config")
	}
	if cfg.Scope == "" {
		cfg.Scope = DefaultScope
	}
	if cfg.APIVersion == "" {
		cfg.APIVersion = DefaultAPIVersion
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.PollTimeout == 0 {
		cfg.PollTimeout = DefaultPollTimeout
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxRetryAfter == 0 {
		cfg.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if cfg.BaseDelay == 0 {
		cfg.BaseDelay = DefaultBaseDelay
	}
	if cfg.AttemptTimeout == 0 {
		cfg.AttemptTimeout = DefaultAttemptTimeout
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &Sender{cfg: cfg, endpoint: ep, client: client, now: time.Now, sleep: httpretry.Sleep,
		jitter: func(n int64) int64 { return mrand.Int64N(n) }}, nil
}

func parseEndpoint(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("acs: no Endpoint (the Communication Service's hostName)")
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(strings.TrimSuffix(s, "/"))
	if err != nil {
		return nil, fmt.Errorf("acs: Endpoint: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("acs: Endpoint must be https://<host> with no path or query")
	}
	return &url.URL{Scheme: "https", Host: u.Host}, nil
}

// The wire format: EmailMessage, as the spec defines it, with only the
// members this product uses.
type (
	emailMessage struct {
		SenderAddress                  string     `json:"senderAddress"`
		Content                        content    `json:"content"`
		Recipients                     recipients `json:"recipients"`
		UserEngagementTrackingDisabled bool       `json:"userEngagementTrackingDisabled"`
	}
	content struct {
		Subject   string `json:"subject"`
		PlainText string `json:"plainText,omitempty"`
		HTML      string `json:"html,omitempty"`
	}
	recipients struct {
		To []address `json:"to"`
	}
	address struct {
		Address string `json:"address"`
	}
	// sendResult is EmailSendResult: the 202 body and each poll's body.
	sendResult struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Error  *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	// errorResponse is the common ErrorResponse of non-2xx answers.
	errorResponse struct {
		Error *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
)

// Terminal operation statuses (EmailSendStatus). The others, NotStarted
// and Running, mean "poll again".
const (
	statusSucceeded = "Succeeded"
	statusFailed    = "Failed"
	statusCanceled  = "Canceled"
)

// Send validates m, submits it and waits for the operation's outcome (see
// the package documentation). Errors are *notify.Error and never contain
// the recipient, subject or body.
func (s *Sender) Send(ctx context.Context, m notify.Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	ref := notify.KeyRef(m.Key)
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false) // <, > and & as themselves: the HTML body stays its size
	if err := enc.Encode(emailMessage{
		SenderAddress: s.cfg.Sender,
		Content:       content{Subject: m.Subject, PlainText: m.Text, HTML: m.HTML},
		Recipients:    recipients{To: []address{{Address: m.To}}},
		// No tracking pixels or rewritten links in mail to data subjects
		// (Azure-managed domains cannot track anyway).
		UserEngagementTrackingDisabled: true,
	}); err != nil {
		return &notify.Error{Ref: ref, Reason: "encode", Cause: err}
	}
	opID := notify.OperationID(m.Key)
	acc, err := s.submit(ctx, ref, opID, body.Bytes())
	if err != nil {
		return err
	}
	return s.poll(ctx, ref, acc)
}

// accepted is what a 202 told us.
type accepted struct {
	statusURL  string
	retryAfter time.Duration // -1: none given
	result     sendResult
}

// submit POSTs the message until ACS accepts it, refuses it, or attempts,
// time or the context run out.
func (s *Sender) submit(ctx context.Context, ref, opID string, body []byte) (accepted, error) {
	sendURL := s.endpoint.JoinPath("emails:send")
	sendURL.RawQuery = url.Values{"api-version": {s.cfg.APIVersion}}.Encode()
	var last *notify.Error
	for attempt := 1; ; attempt++ {
		resp, err := s.do(ctx, http.MethodPost, sendURL.String(), opID, body)
		wait := time.Duration(-1)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return accepted{}, &notify.Error{Ref: ref, Reason: "send cancelled", Cause: ctx.Err()}
			}
			var te *tokenError
			if errors.As(err, &te) { // azidentity retries its own calls; not ours to retry
				return accepted{}, &notify.Error{Ref: ref, Reason: "get token", Cause: te.err}
			}
			last = &notify.Error{Ref: ref, Reason: "send: " + transportReason(err)}
		case resp.status >= 200 && resp.status < 300: // the spec's answer is 202
			return s.acceptedFrom(resp, opID), nil
		case resp.status == http.StatusTooManyRequests || resp.status == http.StatusRequestTimeout || resp.status >= 500:
			last = &notify.Error{Ref: ref, Reason: "status " + strconv.Itoa(resp.status), Status: resp.status, Code: resp.code}
			wait = s.retryAfter(resp.header.Get("Retry-After"))
		default:
			return accepted{}, &notify.Error{Ref: ref, Reason: "status " + strconv.Itoa(resp.status), Status: resp.status,
				Code: resp.code, Kind: notify.ErrRejected}
		}
		if attempt >= s.cfg.MaxAttempts {
			last.Reason += fmt.Sprintf(" after %d attempts", attempt)
			return accepted{}, last
		}
		if wait < 0 || (wait == 0 && last.Status == http.StatusTooManyRequests) {
			// ACS: "Avoid immediate retries because all requests accrue
			// against your usage limits."
			wait = s.backoff(attempt)
		}
		if err := s.sleep(ctx, wait); err != nil {
			last.Reason = "send cancelled while retrying after " + last.Reason
			last.Cause = err
			return accepted{}, last
		}
	}
}

func (s *Sender) acceptedFrom(resp response, opID string) accepted {
	acc := accepted{retryAfter: s.retryAfter(resp.header.Get("retry-after"))}
	_ = json.Unmarshal(resp.body, &acc.result) // the status URL does not depend on it
	id := opID
	if validOpID(acc.result.ID) {
		id = acc.result.ID
	}
	acc.statusURL = s.statusURL(resp.header.Get("Operation-Location"), id)
	return acc
}

var opIDRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,128}$`)

func validOpID(id string) bool { return opIDRE.MatchString(id) }

// statusURL is Operation-Location when it points at the endpoint (same
// scheme and host, under /emails/operations/), else the documented status
// URL built from the endpoint: the token goes nowhere else.
func (s *Sender) statusURL(loc, id string) string {
	if loc != "" {
		if u, err := url.Parse(loc); err == nil && u.Scheme == s.endpoint.Scheme && strings.EqualFold(u.Host, s.endpoint.Host) &&
			u.User == nil && strings.HasPrefix(u.Path, "/emails/operations/") {
			q := u.Query()
			if q.Get("api-version") == "" {
				q.Set("api-version", s.cfg.APIVersion)
				u.RawQuery = q.Encode()
			}
			u.Fragment = ""
			return u.String()
		}
	}
	u := s.endpoint.JoinPath("emails", "operations", id)
	u.RawQuery = url.Values{"api-version": {s.cfg.APIVersion}}.Encode()
	return u.String()
}

// poll reads the operation's status until it ends, PollTimeout passes or
// ctx ends.
func (s *Sender) poll(ctx context.Context, ref string, acc accepted) error {
	pctx, cancel := context.WithTimeout(ctx, s.cfg.PollTimeout)
	defer cancel()
	// unknown is the error once polling stops early: the caller's context
	// ended, or PollTimeout passed.
	unknown := func(last string) error {
		if ctx.Err() != nil {
			return &notify.Error{Ref: ref, Reason: "accepted, then cancelled while polling (last: " + last + ")", Kind: notify.ErrStatusUnknown, Cause: ctx.Err()}
		}
		return &notify.Error{Ref: ref, Reason: fmt.Sprintf("accepted, delivery status unknown after %v (last: %s)", s.cfg.PollTimeout, last), Kind: notify.ErrStatusUnknown}
	}
	res, wait := acc.result, acc.retryAfter
	last := "status " + orNone(res.Status)
	for failures := 0; ; {
		switch res.Status {
		case statusSucceeded:
			return nil
		case statusFailed, statusCanceled:
			code := ""
			if res.Error != nil {
				code = safeCode(res.Error.Code)
			}
			return &notify.Error{Ref: ref, Reason: "operation " + res.Status, Code: code, Kind: notify.ErrRejected}
		}
		if wait < 0 {
			wait = s.cfg.PollInterval
		}
		if err := s.sleep(pctx, wait); err != nil {
			return unknown(last)
		}
		resp, err := s.do(pctx, http.MethodGet, acc.statusURL, "", nil)
		wait = -1
		switch {
		case err != nil:
			if pctx.Err() != nil {
				return unknown(last)
			}
			var te *tokenError
			if errors.As(err, &te) {
				return &notify.Error{Ref: ref, Reason: "accepted, then could not get a token to poll", Kind: notify.ErrStatusUnknown, Cause: te.err}
			}
			last = "poll: " + transportReason(err)
			failures++
			wait = s.backoff(failures)
			res = sendResult{}
		case resp.status == http.StatusOK:
			res = sendResult{}
			if err := json.Unmarshal(resp.body, &res); err != nil || res.Status == "" {
				// A proxy's page, a truncated answer: ask again.
				last = "poll answered 200 without a readable status"
				failures++
				wait = s.backoff(failures)
				res = sendResult{}
				continue
			}
			// NotStarted, Running, and any status a later API version
			// adds, are not terminal: poll again.
			last = "status " + orNone(res.Status)
			wait = s.retryAfter(resp.header.Get("retry-after"))
		case resp.status == http.StatusTooManyRequests || resp.status >= 500:
			last = "poll status " + strconv.Itoa(resp.status)
			failures++
			if wait = s.retryAfter(resp.header.Get("Retry-After")); wait <= 0 {
				wait = s.backoff(failures)
			}
			res = sendResult{}
		default:
			return &notify.Error{Ref: ref, Reason: "accepted, poll status " + strconv.Itoa(resp.status), Status: resp.status,
				Code: resp.code, Kind: notify.ErrStatusUnknown}
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return safeCode(s)
}

// response is one HTTP answer, read and closed.
type response struct {
	status int
	header http.Header
	body   []byte
	// code is the service's error code: x-ms-error-code, else the
	// ErrorResponse body's error.code; sanitised.
	code string
}

// tokenError is a failure of the credential, as opposed to the exchange.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "get token: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// do sends one request with a fresh token and client request id. An error
// is either a *tokenError or a transport error.
func (s *Sender) do(ctx context.Context, method, u, opID string, body []byte) (response, error) {
	actx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
	defer cancel()
	tok, err := s.cfg.Credential.GetToken(actx, policy.TokenRequestOptions{Scopes: []string{s.cfg.Scope}})
	if err != nil {
		if ctx.Err() != nil {
			return response{}, ctx.Err()
		}
		return response{}, &tokenError{err}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, u, rd)
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("x-ms-client-request-id", newUUID())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if opID != "" {
		req.Header.Set("Operation-Id", opID)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return response{}, err
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxResponse)
	r := response{status: resp.StatusCode, header: resp.Header, body: b}
	if resp.StatusCode >= 300 {
		r.code = safeCode(resp.Header.Get("x-ms-error-code"))
		if r.code == "" {
			var er errorResponse
			if json.Unmarshal(b, &er) == nil && er.Error != nil {
				r.code = safeCode(er.Error.Code)
			}
		}
	}
	return r, nil
}

// retryAfter reads a Retry-After value capped at MaxRetryAfter; -1 when
// absent or unreadable.
func (s *Sender) retryAfter(v string) time.Duration {
	if d, ok := httpretry.RetryAfter(v, s.now(), s.cfg.MaxRetryAfter); ok {
		return d
	}
	return -1
}

// backoff is BaseDelay·2^(n-1), capped at MaxRetryAfter, less up to a
// fifth at random so that many senders throttled together do not return
// together.
func (s *Sender) backoff(n int) time.Duration {
	d := s.cfg.BaseDelay
	for i := 1; i < n && d < s.cfg.MaxRetryAfter; i++ {
		d *= 2
	}
	d = min(d, s.cfg.MaxRetryAfter)
	if j := int64(d) / 5; j > 0 {
		d -= time.Duration(s.jitter(j))
	}
	return d
}

var codeRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// safeCode keeps a service error code or status only if it looks like one
// (an identifier such as EmailDropped): anything else could be prose, and
// prose may quote the recipient.
func safeCode(c string) string {
	if codeRE.MatchString(c) {
		return c
	}
	return ""
}

// transportReason names a failed exchange without repeating the error's
// text: a *url.Error repeats the URL and net/http may quote a malformed
// response.
func transportReason(err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "timeout"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op != "" {
		return "connection error (" + oe.Op + ")"
	}
	return "connection error"
}

// newUUID is a random (version 4) UUID for x-ms-client-request-id.
func newUUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return notify.FormatUUID(u)
}
