// Package client calls the DSR Functions HTTP API: one typed method per
// route, the exact JSON of every answer kept beside its typed form (for
// scripts that want the API's own output), and errors that carry the API's
// RFC 9457 problem details.
//
// Callers authenticate as the deployment expects: a function key (header
// x-functions-key; the Functions host, and `dsr local`'s built-in host,
// check it before the app sees the call), an Entra ID access token
// (Authorization: Bearer; App Service Authentication checks it in Azure),
// or both, which is what an Azure deployment with App Service
// Authentication needs.
//
// Errors never hold personal data: they carry the API's problem details
// (which never repeat submitted values), status codes and request ids, and
// never request or response bodies, nor export links (which hold a SAS
// signature).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Config says where the API is and how to authenticate.
type Config struct {
	// BaseURL is the Function App's address, e.g. http://127.0.0.1:7071 or
	// https://<app>.azurewebsites.net; a trailing /api is accepted too.
	// Plain http is allowed for loopback addresses only, so that keys and
	// tokens never cross a network in clear text.
	BaseURL string
	// FunctionKey is sent as x-functions-key when set.
	FunctionKey string
	// Credential, when set, provides an Entra ID token for Scope, sent as
	// Authorization: Bearer.
	Credential azcore.TokenCredential
	// Scope is the token scope, e.g. api://<app client id>/.default.
	Scope string
	// HTTPClient makes the API calls (default: 60 s timeout). Redirects are
	// never followed, so credentials never reach another host.
	HTTPClient *http.Client
	// DownloadClient fetches export packages from their links, with no
	// credentials of ours (default: no overall timeout, since packages may
	// be large; the context bounds it).
	DownloadClient *http.Client
	// UserAgent is sent with every call.
	UserAgent string
}

// Client calls the API. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	key      string
	cred     azcore.TokenCredential
	scope    string
	http     *http.Client
	download *http.Client
	ua       string

	mu    sync.Mutex
	token azcore.AccessToken
}

// maxAnswer bounds an API answer read into memory (audit trails and list
// pages are the largest; export packages are streamed, never read whole).
const maxAnswer = 32 << 20

// New checks cfg and returns a client.
func New(cfg Config) (*Client, error) {
	base, err := ParseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if cfg.Credential != nil && cfg.Scope == "" {
		return nil, errors.New("client: an Entra credential needs a scope (api://<app client id>/.default)")
	}
	c := &Client{base: base, key: cfg.FunctionKey, cred: cfg.Credential, scope: cfg.Scope, http: cfg.HTTPClient, download: cfg.DownloadClient, ua: cfg.UserAgent}
	if c.http == nil {
		c.http = &http.Client{Timeout: 60 * time.Second}
	}
	c.http = noRedirects(c.http)
	if c.download == nil {
		c.download = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			ResponseHeaderTimeout: 60 * time.Second,
			TLSHandshakeTimeout:   30 * time.Second,
		}}
	}
	if c.ua == "" {
		c.ua = "dsr-cli"
	}
	return c, nil
}

// noRedirects returns a copy of hc that hands 3xx answers back instead of
// following them: Go forwards custom headers such as x-functions-key on a
// redirect, even to another host.
func noRedirects(hc *http.Client) *http.Client {
	cp := *hc
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cp
}

// ParseBaseURL checks a base URL and returns it without a trailing /api.
func ParseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("client: base URL %q: give http(s)://host[:port], e.g. http://127.0.0.1:7071", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("client: the base URL must not carry credentials, a query or a fragment")
	}
	if u.Scheme == "http" && !IsLoopback(u) {
		return nil, fmt.Errorf("client: %s: plain http is allowed for 127.0.0.1/localhost only; use https", u.Host)
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api")
	u.RawPath = ""
	return u, nil
}

// IsLoopback reports whether u names this machine (localhost or a loopback
// address): where `dsr local` listens.
func IsLoopback(u *url.URL) bool {
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Problem is an error answer in RFC 9457 problem details form, as the API
// and `dsr local`'s host send them. Its fields are the API's own words,
// which never repeat submitted values.
type Problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Code     string       `json:"code,omitempty"`
	Errors   []FieldError `json:"errors,omitempty"`
	// JSON is the problem document as received.
	JSON json.RawMessage `json:"-"`
}

// FieldError names a field at fault and why (never its value).
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// Error reads like "409 Conflict (not-allowed): the request has ended".
func (p *Problem) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", p.Status, p.Title)
	if p.Code != "" {
		fmt.Fprintf(&b, " (%s)", p.Code)
	}
	if p.Detail != "" {
		b.WriteString(": " + p.Detail)
	}
	// The detail names the first field already; list the others.
	for i, fe := range p.Errors {
		if i == 0 && strings.Contains(p.Detail, fe.Field) {
			continue
		}
		fmt.Fprintf(&b, "; %s: %s", fe.Field, fe.Detail)
	}
	return b.String()
}

// StatusError is an error answer that is not a problem document: from a
// layer in front of the app (App Service Authentication, a proxy, a host
// that does not know the route). Its body is not kept.
type StatusError struct {
	Method, Path string
	Status       int
	// Hint says what usually causes this answer.
	Hint string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// StatusOf returns the HTTP status of an error answer, or 0 for errors that
// are not answers (network, timeouts).
func StatusOf(err error) int {
	var p *Problem
	if errors.As(err, &p) {
		return p.Status
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// Transient reports whether retrying the same call later may succeed: no
// answer at all, 408, 429 or a 5xx.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	switch s := StatusOf(err); {
	case s == 0:
		var na *NoAnswerError
		return errors.As(err, &na)
	case s == http.StatusRequestTimeout, s == http.StatusTooManyRequests, s >= 500:
		return true
	}
	return false
}

// call is one API call.
type call struct {
	method string
	path   string // below the base URL, e.g. /api/requests
	query  url.Values
	body   []byte // sent as application/json when non-nil
	header http.Header
}

// answer is a successful API answer.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// do sends c with our credentials and returns a 2xx answer, or the error
// answer as a *Problem or *StatusError.
func (cl *Client) do(ctx context.Context, c call) (*answer, error) {
	u := cl.base.JoinPath(c.path)
	u.RawQuery = c.query.Encode()
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", c.method, c.path, err)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", cl.ua)
	if cl.key != "" {
		req.Header.Set("x-functions-key", cl.key)
	}
	if cl.cred != nil {
		tok, err := cl.bearer(ctx)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := cl.http.Do(req)
	if err != nil {
		return nil, &NoAnswerError{Method: c.method, Path: c.path, Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, &NoAnswerError{Method: c.method, Path: c.path, Err: fmt.Errorf("read answer: %w", unwrapURLError(err))}
	}
	if len(b) > maxAnswer {
		return nil, fmt.Errorf("%s %s: answer larger than %d MiB", c.method, c.path, maxAnswer>>20)
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return &answer{status: resp.StatusCode, header: resp.Header, body: b}, nil
	}
	return nil, errorAnswer(c.method, c.path, resp, b, cl.cred != nil, cl.key != "")
}

// unwrapURLError drops the URL from a transport error: it is ours, known to
// the caller, and for export links it holds a signature.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// errorAnswer turns a non-2xx answer into a *Problem when it is one, else a
// *StatusError with a hint about who probably answered.
func errorAnswer(method, path string, resp *http.Response, body []byte, sentToken, sentKey bool) error {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/problem+json" || mt == "application/json" {
		var p Problem
		if json.Unmarshal(body, &p) == nil && p.Status != 0 && (p.Title != "" || p.Type != "") {
			p.JSON = append(json.RawMessage(nil), body...)
			return &p
		}
	}
	se := &StatusError{Method: method, Path: path, Status: resp.StatusCode}
	switch {
	case resp.StatusCode == http.StatusUnauthorized && !sentToken:
		se.Hint = "refused before the app: give a function key (--key / DSR_FUNCTION_KEY), and in Azure with App Service Authentication a token (--entra-scope / DSR_ENTRA_SCOPE)"
	case resp.StatusCode == http.StatusUnauthorized:
		se.Hint = "App Service Authentication refused the token: check the scope's app id, that the token is v2, and that you hold an app role"
	case resp.StatusCode == http.StatusForbidden && !sentKey:
		se.Hint = "refused before the app: the Functions host needs the function key too (--key / DSR_FUNCTION_KEY)"
	case resp.StatusCode >= 300 && resp.StatusCode <= 399:
		se.Hint = "redirected (not followed, so that credentials stay with this host): check the base URL"
	case resp.StatusCode == http.StatusNotFound:
		se.Hint = "no such route here: check the base URL"
	}
	return se
}

// tokenSlack renews a token this long before it expires, so that a token
// never expires on its way to the server.
const tokenSlack = 2 * time.Minute

// bearer returns a cached token, renewed when it is about to expire. The
// Azure CLI credential caches nothing and runs `az` on every call, which
// would slow a polling `wait` to a crawl.
func (cl *Client) bearer(ctx context.Context) (string, error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.token.Token != "" && time.Until(cl.token.ExpiresOn) > tokenSlack {
		return cl.token.Token, nil
	}
	tok, err := cl.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{cl.scope}})
	if err != nil {
		return "", &TokenError{Scope: cl.scope, Err: err}
	}
	cl.token = tok
	return tok.Token, nil
}

// NoAnswerError says that a call got no (complete) answer: the network
// failed or the call timed out. Trying again later may succeed.
type NoAnswerError struct {
	Method, Path string
	Err          error
}

func (e *NoAnswerError) Error() string { return fmt.Sprintf("%s %s: %v", e.Method, e.Path, e.Err) }

func (e *NoAnswerError) Unwrap() error { return e.Err }

// TokenError says that no call was made because no token could be had.
type TokenError struct {
	Scope string
	Err   error
}

func (e *TokenError) Error() string {
	return fmt.Sprintf("get an Entra ID token for %s: %v", e.Scope, e.Err)
}

func (e *TokenError) Unwrap() error { return e.Err }
