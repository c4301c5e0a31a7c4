package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dsr-functions/dsr/shared/httpretry"
)

// Back-off between attempts: base·2^(attempt-1) capped at maxBackoff, half
// of it fixed and half random (jitter). Retry-After is honoured up to
// maxRetryAfter.
const (
	baseBackoff   = 500 * time.Millisecond
	maxBackoff    = 30 * time.Second
	maxRetryAfter = 60 * time.Second
	// drainLimit is how much of an unwanted body is read so the connection
	// can be reused.
	drainLimit = 64 << 10
)

// Error is a failed call to the system. Its message names the system, the
// datasets and the action and says why; it never contains personal data
// nor any text of the system's response.
type Error struct {
	// System is the config's Name (or the URL's host).
	System string
	// Datasets the call was about.
	Datasets []string
	// Action of the call ("access", "erasure", …).
	Action string
	// Status is the last HTTP status received, 0 if none.
	Status int
	// Attempts made.
	Attempts int
	// Reason is why the call failed, e.g. "HTTP 503", "timeout".
	Reason string
	// Retried is true when the failure was retryable and the attempts ran out.
	Retried bool
	// Err is the underlying error, if any (for errors.Is). Error() never
	// prints it: it may hold transport detail.
	Err error
}

// Error describes the failure: system, datasets, action and reason.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("webhook ")
	b.WriteString(e.System)
	b.WriteString(": ")
	b.WriteString(describeDatasets(e.Datasets))
	b.WriteString(": ")
	b.WriteString(e.Action)
	b.WriteString(": ")
	b.WriteString(e.Reason)
	if e.Retried {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

func describeDatasets(ds []string) string {
	if len(ds) == 1 {
		return "dataset " + ds[0]
	}
	return "datasets " + strings.Join(ds, ", ")
}

// call is one logical POST to the system, tried up to MaxAttempts times.
type call struct {
	action    string
	datasets  []string
	requestID string
	idemKey   string
	body      []byte
	// handle reads a 2xx response inside the attempt (its ctx bounded by
	// Timeout). An error it returns is final unless the response body
	// failed to read (a transport failure), which is retried.
	handle func(ctx context.Context, resp *http.Response, body *capReader) error
	// limit caps the bytes handle may read.
	limit int64
}

// outcome of one attempt.
type outcome struct {
	err        error
	retry      bool
	retryAfter time.Duration // <0: none given
	status     int
	reason     string
}

func (c *Connector) errorf(cl *call, attempts, status int, reason string, retried bool, err error) *Error {
	return &Error{System: c.cfg.Name, Datasets: cl.datasets, Action: cl.action, Status: status, Attempts: attempts, Reason: reason, Retried: retried, Err: err}
}

// do runs the call with retries: timeouts, transport errors, 408, 429 and
// 5xx are retried with exponential back-off and jitter (429 and 503 honour
// Retry-After up to 60 s); other statuses fail at once.
func (c *Connector) do(ctx context.Context, cl *call) error {
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return c.errorf(cl, attempt-1, 0, "cancelled: "+err.Error(), false, err)
		}
		o := c.attempt(ctx, cl)
		if o.err == nil {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return c.errorf(cl, attempt, o.status, "cancelled: "+err.Error(), false, err)
		}
		if !o.retry {
			return c.errorf(cl, attempt, o.status, o.reason, false, o.err)
		}
		if attempt >= c.cfg.MaxAttempts {
			return c.errorf(cl, attempt, o.status, o.reason, true, o.err)
		}
		wait := o.retryAfter
		if wait < 0 {
			wait = c.backoff(attempt)
		}
		if err := c.sleep(ctx, wait); err != nil {
			return c.errorf(cl, attempt, o.status, "cancelled while waiting to retry after "+o.reason, false, err)
		}
	}
}

func (c *Connector) backoff(attempt int) time.Duration {
	d := maxBackoff
	if attempt < 16 {
		d = min(baseBackoff<<(attempt-1), maxBackoff)
	}
	half := int64(d / 2)
	return time.Duration(half + c.jitter(half+1))
}

// attempt makes one POST and, for a 2xx, runs the handler, all within
// Timeout.
func (c *Connector) attempt(parent context.Context, cl *call) (o outcome) {
	o.retryAfter = -1
	ctx, cancel := context.WithTimeout(parent, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL, bytes.NewReader(cl.body))
	if err != nil {
		o.err, o.reason = err, "cannot build the request"
		return o
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "dsr-functions-webhook/1")
	req.Header.Set(HeaderRequestID, cl.requestID)
	req.Header.Set(HeaderIdempotencyKey, cl.idemKey)
	SetSignature(req.Header, c.cfg.Secret, cl.body, c.now())
	resp, err := c.client.Do(req)
	if err != nil {
		return transportOutcome(ctx, parent, err)
	}
	defer func() {
		_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
		resp.Body.Close()
	}()
	o.status = resp.StatusCode
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		body := &capReader{r: resp.Body, n: cl.limit}
		if err := cl.handle(ctx, resp, body); err != nil {
			if body.readErr != nil && !errors.Is(err, ErrResponseTooLarge) {
				t := transportOutcome(ctx, parent, body.readErr)
				t.status = o.status
				t.reason += " while reading the response"
				return t
			}
			o.err, o.reason = err, err.Error()
			return o
		}
		return o
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		o.retryAfter = retryAfter(resp.Header.Get("Retry-After"), c.now())
		fallthrough
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		o.retry = true
		o.reason = "HTTP " + strconv.Itoa(resp.StatusCode)
		o.err = fmt.Errorf("%s", o.reason)
		return o
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		o.reason = "HTTP " + strconv.Itoa(resp.StatusCode) + " (redirects are not followed)"
	default:
		o.reason = "HTTP " + strconv.Itoa(resp.StatusCode) + " (not retried)"
	}
	o.err = fmt.Errorf("%s", o.reason)
	return o
}

// transportOutcome classifies a failure to send or to read: a timeout of
// the attempt or a network error, both retried; the caller's cancellation is
// final.
func transportOutcome(ctx, parent context.Context, err error) outcome {
	o := outcome{retryAfter: -1, err: err}
	if parent.Err() != nil {
		o.reason = "cancelled"
		return o
	}
	o.retry = true
	var ne net.Error
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		o.reason = "timeout"
		return o
	}
	// The error's text is not repeated: a *url.Error repeats the URL (which
	// may carry a key in its query) and net/http quotes malformed response
	// lines. Only the failed operation is named.
	o.reason = "connection error"
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op != "" {
		o.reason += " (" + oe.Op + ")"
	}
	return o
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date,
// capped at maxRetryAfter; -1 if absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	if d, ok := httpretry.RetryAfter(v, now, maxRetryAfter); ok {
		return d
	}
	return -1
}
