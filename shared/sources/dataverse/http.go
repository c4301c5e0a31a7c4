package dataverse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/dsr-functions/dsr/shared/httpretry"
)

const (
	// maxRetryAfter caps a server's Retry-After, so a hostile or confused
	// server cannot stall a request for long.
	maxRetryAfter = 60 * time.Second
	// baseBackoff and maxBackoff bound the exponential back-off of 5xx and
	// network errors (before jitter, which takes half of it away at most).
	baseBackoff = time.Second
	maxBackoff  = 30 * time.Second
	// tokenRefreshMargin is how long before its expiry a token is renewed.
	tokenRefreshMargin = 5 * time.Minute
	// maxResponseBytes bounds one response body.
	maxResponseBytes = 256 << 20
	// maxErrorBytes bounds the part of an error body read for its code.
	maxErrorBytes = 64 << 10
)

// request is one Web API call. what names it in errors without personal
// data: the method and the entity set, with "(id)" standing for a key.
type request struct {
	dataset string
	stage   string // "discover", "read" or "rewrite"
	method  string
	what    string // e.g. "contacts" or "contacts(id)"
	url     string // absolute
	body    []byte // JSON, for PATCH
	ifMatch string
	paged   bool // a collection GET: ask for odata.maxpagesize
}

// response is a completed call: a 2xx, 404 or 412.
type response struct {
	status int
	body   []byte
}

// requestError is a failed call. Its message names the dataset, method,
// entity set, status and Dataverse error code, never the URL's query, a
// record key or the server's message (which can echo values).
type requestError struct {
	dataset  string
	stage    string
	op       string // "GET contacts"
	status   int    // 0 for a network error
	code     string // Dataverse error code, if any
	attempts int
	err      error // network cause
}

func (e *requestError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dataverse: dataset %s: %s: %s: ", e.dataset, e.stage, e.op)
	if e.status != 0 {
		fmt.Fprintf(&b, "HTTP %d %s", e.status, http.StatusText(e.status))
		if e.code != "" {
			fmt.Fprintf(&b, " (Dataverse error code %s)", e.code)
		}
	} else {
		fmt.Fprintf(&b, "%v", e.err)
	}
	if e.attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.attempts)
	}
	return b.String()
}

func (e *requestError) Unwrap() error { return e.err }

// send runs a request, retrying throttling (429, after Retry-After), server
// errors (5xx) and network errors with back-off, at most MaxAttempts times.
// A 2xx, 404 or 412 is returned as a response for the caller to judge;
// every other status is an error.
func (c *Connector) send(ctx context.Context, r *request) (*response, error) {
	op := r.method + " " + r.what
	for attempt := 1; ; attempt++ {
		status, hdr, body, err := c.once(ctx, r)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, &requestError{dataset: r.dataset, stage: r.stage, op: op, attempts: attempt, err: ctx.Err()}
			}
			var te *tokenError
			if errors.As(err, &te) {
				return nil, &requestError{dataset: r.dataset, stage: r.stage, op: op, attempts: attempt, err: err}
			}
			if attempt >= c.cfg.MaxAttempts {
				return nil, &requestError{dataset: r.dataset, stage: r.stage, op: op, attempts: attempt, err: err}
			}
			wait = c.backoff(attempt)
		case status >= 200 && status < 300, status == http.StatusNotFound, status == http.StatusPreconditionFailed:
			return &response{status: status, body: body}, nil
		case status == http.StatusTooManyRequests || status >= 500:
			if attempt >= c.cfg.MaxAttempts {
				return nil, &requestError{dataset: r.dataset, stage: r.stage, op: op, status: status, code: errorCode(body), attempts: attempt}
			}
			var ok bool
			if wait, ok = c.retryAfter(hdr); !ok {
				wait = c.backoff(attempt)
			}
		default:
			if status == http.StatusUnauthorized {
				// The token may have been revoked: fetch a new one next time.
				c.mu.Lock()
				c.token.Token = ""
				c.mu.Unlock()
			}
			return nil, &requestError{dataset: r.dataset, stage: r.stage, op: op, status: status, code: errorCode(body), attempts: attempt}
		}
		if err := c.sleep(ctx, wait); err != nil {
			return nil, &requestError{dataset: r.dataset, stage: r.stage, op: op, attempts: attempt, err: err}
		}
	}
}

// once makes one attempt. A network error is returned stripped of the
// *url.Error around it, whose message would carry the URL.
func (c *Connector) once(ctx context.Context, r *request) (int, http.Header, []byte, error) {
	tok, err := c.bearer(ctx)
	if err != nil {
		return 0, nil, nil, err
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return 0, nil, nil, errors.New("cannot build the request")
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-MaxVersion", "4.0")
	req.Header.Set("OData-Version", "4.0")
	if r.paged {
		req.Header.Set("Prefer", "odata.maxpagesize="+strconv.Itoa(c.cfg.PageSize))
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.ifMatch != "" {
		req.Header.Set("If-Match", r.ifMatch)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, nil, stripURL(err)
	}
	defer resp.Body.Close()
	limit := int64(maxResponseBytes)
	if resp.StatusCode >= 300 {
		limit = maxErrorBytes
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read response: %w", stripURL(err))
	}
	if int64(len(b)) > limit {
		if resp.StatusCode < 300 {
			return 0, nil, nil, fmt.Errorf("response larger than %d bytes", limit)
		}
		b = nil
	}
	return resp.StatusCode, resp.Header, b, nil
}

// stripURL unwraps a *url.Error, whose message includes the request URL.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// tokenError is a failure to get a token, which is not retried here
// (credentials retry on their own).
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "get token: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// bearer returns a cached token, or a new one when the cached one is within
// tokenRefreshMargin of expiry or past its suggested refresh time.
func (c *Connector) bearer(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.token.Token != "" && now.Before(c.token.ExpiresOn.Add(-tokenRefreshMargin)) &&
		(c.token.RefreshOn.IsZero() || now.Before(c.token.RefreshOn)) {
		return c.token.Token, nil
	}
	tok, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{c.scope}})
	if err != nil {
		return "", &tokenError{err}
	}
	if tok.Token == "" {
		return "", &tokenError{errors.New("the credential returned an empty token")}
	}
	c.token = tok
	return tok.Token, nil
}

// retryAfter reads a Retry-After header (seconds or an HTTP date), capped
// at maxRetryAfter.
func (c *Connector) retryAfter(h http.Header) (time.Duration, bool) {
	return httpretry.RetryAfter(h.Get("Retry-After"), c.now(), maxRetryAfter)
}

// backoff is the wait after the attempt-th failure: base·2^(attempt-1),
// capped, of which a random half is taken away (jitter).
func (c *Connector) backoff(attempt int) time.Duration {
	d := maxBackoff
	if attempt <= 5 {
		d = min(baseBackoff<<(attempt-1), maxBackoff)
	}
	half := d / 2
	return half + time.Duration(c.jitter()*float64(half))
}

var errorCodeRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// errorCode extracts the code of a Dataverse error body
// {"error":{"code":"0x80040217","message":"…"}}. The message is dropped: it
// can echo the values of a request.
func errorCode(body []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || !errorCodeRE.MatchString(e.Error.Code) {
		return ""
	}
	return e.Error.Code
}
