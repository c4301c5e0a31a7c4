package acs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/dsr-functions/dsr/shared/notify"
	"github.com/dsr-functions/dsr/shared/notify/acs"
)

const (
	token   = "test-token-7f3a"
	sender  = "DoNotReply@mail.contoso.example"
	avery   = "avery.morgan@contoso.example"
	subject = "Your verification code"
)

func message(key string) notify.Message {
	return notify.Message{To: avery, Subject: subject, Text: "Your code is 492113.", HTML: "<p>Your code is <b>492113</b> & more</p>", Key: key}
}

// fakeCredential stands in for Entra ID (which cannot run here): a fixed
// token, and a record of the scopes asked for.
type fakeCredential struct {
	mu     sync.Mutex
	scopes [][]string
	err    error
}

func (c *fakeCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scopes = append(c.scopes, o.Scopes)
	if c.err != nil {
		return azcore.AccessToken{}, c.err
	}
	return azcore.AccessToken{Token: token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// The EmailMessage schema of the 2025-09-01 spec, complete: decoding with
// DisallowUnknownFields into it rejects any member the spec does not have.
type (
	specEmailAddress struct {
		Address     *string `json:"address"`
		DisplayName *string `json:"displayName"`
	}
	specEmailMessage struct {
		Headers       map[string]string `json:"headers"`
		SenderAddress *string           `json:"senderAddress"`
		Content       *struct {
			Subject   *string `json:"subject"`
			PlainText *string `json:"plainText"`
			HTML      *string `json:"html"`
		} `json:"content"`
		Recipients *struct {
			To  []specEmailAddress `json:"to"`
			CC  []specEmailAddress `json:"cc"`
			BCC []specEmailAddress `json:"bcc"`
		} `json:"recipients"`
		Attachments []struct {
			Name            string `json:"name"`
			ContentType     string `json:"contentType"`
			ContentInBase64 string `json:"contentInBase64"`
		} `json:"attachments"`
		ReplyTo                        []specEmailAddress `json:"replyTo"`
		UserEngagementTrackingDisabled *bool              `json:"userEngagementTrackingDisabled"`
	}
)

// reply is one scripted answer.
type reply struct {
	status int
	header map[string]string
	body   string
}

// fakeACS reproduces the ACS Email data-plane contract strictly. Requests
// that break it are answered 400 with x-ms-error-code ContractViolation and
// fail the test. Scripted replies come first; then a send is accepted
// (202, Operation-Location, retry-after) and a poll answers Running, then
// Succeeded.
type fakeACS struct {
	t   *testing.T
	srv *httptest.Server

	mu            sync.Mutex
	sends         []reply // scripted answers to POSTs, in order
	polls         []reply // scripted answers to GETs, in order
	opLocation    func(opID string) string
	noOpLocation  bool
	postTimes     []time.Time
	opIDs         []string
	clientIDs     map[string]bool
	messages      []specEmailMessage
	pollCount     int
	runningPolled map[string]bool
	known         map[string]bool
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func newFake(t *testing.T) *fakeACS {
	f := &fakeACS{t: t, clientIDs: map[string]bool{}, runningPolled: map[string]bool{}, known: map[string]bool{}}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeACS) violation(w http.ResponseWriter, format string, args ...any) {
	f.t.Errorf("contract violation: "+format, args...)
	w.Header().Set("x-ms-error-code", "ContractViolation")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, `{"error":{"code":"ContractViolation","message":"bad request for %s"}}`, avery)
}

func write(w http.ResponseWriter, r reply) {
	for k, v := range r.header {
		w.Header().Set(k, v)
	}
	if r.body != "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(r.status)
	io.WriteString(w, r.body)
}

func (f *fakeACS) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := r.Header.Get("Authorization"); got != "Bearer "+token {
		f.violation(w, "Authorization = %q", got)
		return
	}
	if q := r.URL.Query(); q.Get("api-version") != acs.DefaultAPIVersion || len(q) != 1 {
		f.violation(w, "query = %q, want api-version=%s only", r.URL.RawQuery, acs.DefaultAPIVersion)
		return
	}
	cid := r.Header.Get("x-ms-client-request-id")
	if !uuidRE.MatchString(cid) || f.clientIDs[cid] {
		f.violation(w, "x-ms-client-request-id %q is not a fresh UUID", cid)
		return
	}
	f.clientIDs[cid] = true
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/emails:send":
		f.serveSend(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/emails/operations/"):
		f.servePoll(w, r, strings.TrimPrefix(r.URL.Path, "/emails/operations/"))
	default:
		f.violation(w, "%s %s is not an ACS Email operation", r.Method, r.URL.Path)
	}
}

func (f *fakeACS) serveSend(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		f.violation(w, "Content-Type = %q", r.Header.Get("Content-Type"))
		return
	}
	opID := r.Header.Get("Operation-Id")
	if !uuidRE.MatchString(opID) {
		f.violation(w, "Operation-Id %q is not a UUID", opID)
		return
	}
	raw, _ := io.ReadAll(r.Body)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var m specEmailMessage
	if err := dec.Decode(&m); err != nil || dec.More() {
		f.violation(w, "body does not match EmailMessage: %v", err)
		return
	}
	switch {
	case m.SenderAddress == nil || *m.SenderAddress == "":
		f.violation(w, "senderAddress missing")
		return
	case m.Content == nil || m.Content.Subject == nil || *m.Content.Subject == "":
		f.violation(w, "content.subject missing")
		return
	case m.Recipients == nil || len(m.Recipients.To) == 0:
		f.violation(w, "recipients.to missing")
		return
	}
	for _, a := range m.Recipients.To {
		if a.Address == nil || *a.Address == "" {
			f.violation(w, "recipients.to[].address missing")
			return
		}
	}
	f.postTimes = append(f.postTimes, time.Now())
	f.opIDs = append(f.opIDs, opID)
	f.messages = append(f.messages, m)
	if len(f.sends) > 0 {
		next := f.sends[0]
		f.sends = f.sends[1:]
		write(w, next)
		return
	}
	f.known[opID] = true
	loc := f.srv.URL + "/emails/operations/" + opID + "?api-version=" + acs.DefaultAPIVersion
	if f.opLocation != nil {
		loc = f.opLocation(opID)
	}
	h := map[string]string{"retry-after": "1"}
	if !f.noOpLocation {
		h["Operation-Location"] = loc
	}
	write(w, reply{status: http.StatusAccepted, header: h, body: fmt.Sprintf(`{"id":%q,"status":"Running"}`, opID)})
}

func (f *fakeACS) servePoll(w http.ResponseWriter, r *http.Request, id string) {
	if !f.known[id] {
		write(w, reply{status: http.StatusNotFound, header: map[string]string{"x-ms-error-code": "NotFound"}, body: `{"error":{"code":"NotFound","message":"no such operation"}}`})
		return
	}
	if r.Header.Get("Operation-Id") != "" || r.ContentLength > 0 {
		f.violation(w, "a poll carries a body or an Operation-Id")
		return
	}
	f.pollCount++
	if len(f.polls) > 0 {
		next := f.polls[0]
		f.polls = f.polls[1:]
		next.body = strings.ReplaceAll(next.body, "{id}", id)
		write(w, next)
		return
	}
	if !f.runningPolled[id] {
		f.runningPolled[id] = true
		write(w, reply{status: http.StatusOK, header: map[string]string{"retry-after": "1"}, body: fmt.Sprintf(`{"id":%q,"status":"Running"}`, id)})
		return
	}
	write(w, reply{status: http.StatusOK, body: fmt.Sprintf(`{"id":%q,"status":"Succeeded"}`, id)})
}

func (f *fakeACS) counts() (posts, polls int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.opIDs), f.pollCount
}

// newSender returns a Sender on f with waits shrunk: any retry-after is
// capped at maxWait, back-off starts at 1ms.
func newSender(t *testing.T, f *fakeACS, edit func(*acs.Config)) (*acs.Sender, *fakeCredential) {
	t.Helper()
	cred := &fakeCredential{}
	cfg := acs.Config{
		Endpoint: f.srv.URL, Sender: sender, Credential: cred, HTTPClient: f.srv.Client(),
		MaxRetryAfter: 20 * time.Millisecond, PollInterval: 5 * time.Millisecond, BaseDelay: time.Millisecond,
		PollTimeout: 5 * time.Second,
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := acs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, cred
}

// assertClean fails if err's text holds the recipient, subject or body.
func assertClean(t *testing.T, err error, m notify.Message) {
	t.Helper()
	if err == nil {
		return
	}
	s := err.Error()
	for _, v := range []string{m.To, m.Subject, m.Text, m.HTML, "contoso.example", "492113"} {
		if strings.Contains(s, v) {
			t.Fatalf("error %q contains %q", s, v)
		}
	}
	if !strings.HasPrefix(s, "notify: send "+notify.KeyRef(m.Key)+": ") {
		t.Errorf("error %q does not start with the key's ref", s)
	}
}

func TestSendSucceeds(t *testing.T) {
	f := newFake(t)
	s, cred := newSender(t, f, nil)
	m := message("r019a:verify:1")
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	posts, polls := f.counts()
	if posts != 1 || polls != 2 {
		t.Errorf("posts, polls = %d, %d; want 1 POST, 2 polls (Running, Succeeded)", posts, polls)
	}
	if f.opIDs[0] != notify.OperationID(m.Key) {
		t.Errorf("Operation-Id = %q, want the key's %q", f.opIDs[0], notify.OperationID(m.Key))
	}
	got := f.messages[0]
	if *got.SenderAddress != sender || len(got.Recipients.To) != 1 || *got.Recipients.To[0].Address != avery ||
		got.Recipients.To[0].DisplayName != nil || got.Recipients.CC != nil || got.Recipients.BCC != nil ||
		*got.Content.Subject != subject || *got.Content.PlainText != m.Text || *got.Content.HTML != m.HTML ||
		got.UserEngagementTrackingDisabled == nil || !*got.UserEngagementTrackingDisabled || got.Headers != nil {
		t.Errorf("sent %+v", got)
	}
	for _, sc := range cred.scopes {
		if len(sc) != 1 || sc[0] != "https://communication.azure.com//.default" {
			t.Errorf("token scopes = %v", sc)
		}
	}
	// The same key again: the same Operation-Id (ACS may deduplicate).
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if f.opIDs[1] != f.opIDs[0] {
		t.Errorf("the same key got Operation-Ids %q and %q", f.opIDs[0], f.opIDs[1])
	}
	if err := s.Send(context.Background(), message("r019a:verify:2")); err != nil {
		t.Fatal(err)
	}
	if f.opIDs[2] == f.opIDs[0] {
		t.Error("another key got the same Operation-Id")
	}
}

func TestRetryOn429HonoursRetryAfter(t *testing.T) {
	f := newFake(t)
	f.sends = []reply{{status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "1", "x-ms-error-code": "TooManyRequests"},
		body: `{"error":{"code":"TooManyRequests","message":"slow down"}}`}}
	// Retry-After: 1 is capped at 300ms; the back-off alone would be 1ms.
	s, _ := newSender(t, f, func(c *acs.Config) { c.MaxRetryAfter = 300 * time.Millisecond })
	m := message("r1:verify:1")
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	posts, _ := f.counts()
	if posts != 2 || f.opIDs[0] != f.opIDs[1] {
		t.Fatalf("posts = %d, Operation-Ids %v; want 2 with the same id", posts, f.opIDs)
	}
	if gap := f.postTimes[1].Sub(f.postTimes[0]); gap < 250*time.Millisecond || gap > 5*time.Second {
		t.Errorf("retried after %v; want Retry-After (capped at 300ms)", gap)
	}
}

func TestRetryOn5xx(t *testing.T) {
	f := newFake(t)
	f.sends = []reply{
		{status: http.StatusInternalServerError, body: `{"error":{"code":"InternalError","message":"oops"}}`},
		{status: http.StatusServiceUnavailable, header: map[string]string{"Retry-After": "0"}},
	}
	s, _ := newSender(t, f, nil)
	if err := s.Send(context.Background(), message("r2:verify:1")); err != nil {
		t.Fatal(err)
	}
	if posts, _ := f.counts(); posts != 3 || f.opIDs[0] != f.opIDs[1] || f.opIDs[1] != f.opIDs[2] {
		t.Fatalf("posts = %d, Operation-Ids %v; want 3 with one id", posts, f.opIDs)
	}
}

func TestRetriesStopAtMaxAttempts(t *testing.T) {
	f := newFake(t)
	for range 10 {
		f.sends = append(f.sends, reply{status: http.StatusServiceUnavailable, header: map[string]string{"x-ms-error-code": "ServiceUnavailable"}})
	}
	s, _ := newSender(t, f, func(c *acs.Config) { c.MaxAttempts = 3 })
	m := message("r3:verify:1")
	err := s.Send(context.Background(), m)
	var ne *notify.Error
	if !errors.As(err, &ne) || ne.Status != 503 || ne.Code != "ServiceUnavailable" || ne.Kind != nil {
		t.Fatalf("Send = %#v, want a transient 503 error", err)
	}
	if !strings.Contains(err.Error(), "status 503 after 3 attempts") {
		t.Errorf("error %q", err)
	}
	if posts, _ := f.counts(); posts != 3 {
		t.Errorf("posts = %d, want MaxAttempts", posts)
	}
	assertClean(t, err, m)
}

func TestClientErrorIsNotRetried(t *testing.T) {
	f := newFake(t)
	f.sends = []reply{{status: http.StatusBadRequest, header: map[string]string{"x-ms-error-code": "InvalidRecipient"},
		body: fmt.Sprintf(`{"error":{"code":"BadRequest","message":"The recipient %s in '%s' is invalid"}}`, avery, subject)}}
	s, _ := newSender(t, f, nil)
	m := message("r4:verify:1")
	err := s.Send(context.Background(), m)
	var ne *notify.Error
	if !errors.Is(err, notify.ErrRejected) || !errors.As(err, &ne) || ne.Status != 400 || ne.Code != "InvalidRecipient" {
		t.Fatalf("Send = %v, want ErrRejected, status 400, code from x-ms-error-code", err)
	}
	if !strings.Contains(err.Error(), "status 400 (InvalidRecipient)") {
		t.Errorf("error %q", err)
	}
	if posts, polls := f.counts(); posts != 1 || polls != 0 {
		t.Errorf("posts, polls = %d, %d; want 1, 0", posts, polls)
	}
	assertClean(t, err, m)

	// Without the header, the ErrorResponse body's code; never its message.
	f.sends = []reply{{status: http.StatusForbidden, body: fmt.Sprintf(`{"error":{"code":"Forbidden","message":"no access for %s"}}`, avery)}}
	err = s.Send(context.Background(), m)
	if !errors.As(err, &ne) || ne.Status != 403 || ne.Code != "Forbidden" || !errors.Is(err, notify.ErrRejected) {
		t.Fatalf("Send = %v", err)
	}
	assertClean(t, err, m)

	// A code that is prose is dropped.
	f.sends = []reply{{status: http.StatusBadRequest, header: map[string]string{"x-ms-error-code": "bad address " + avery}}}
	err = s.Send(context.Background(), m)
	if !errors.As(err, &ne) || ne.Code != "" {
		t.Fatalf("Send = %v", err)
	}
	assertClean(t, err, m)
}

func TestFailedOperation(t *testing.T) {
	f := newFake(t)
	f.polls = []reply{
		{status: http.StatusOK, header: map[string]string{"retry-after": "1"}, body: `{"id":"{id}","status":"Running"}`},
		{status: http.StatusOK, body: fmt.Sprintf(`{"id":"{id}","status":"Failed","error":{"code":"EmailDropped","message":"Email to %s was dropped after several attempts to deliver."}}`, avery)},
	}
	s, _ := newSender(t, f, nil)
	m := message("r5:verify:1")
	err := s.Send(context.Background(), m)
	var ne *notify.Error
	if !errors.Is(err, notify.ErrRejected) || !errors.As(err, &ne) || ne.Code != "EmailDropped" {
		t.Fatalf("Send = %v, want ErrRejected with EmailDropped", err)
	}
	if got, want := err.Error(), "notify: send "+notify.KeyRef(m.Key)+": operation Failed (EmailDropped): rejected"; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	assertClean(t, err, m)

	f.polls = []reply{{status: http.StatusOK, body: `{"id":"{id}","status":"Canceled","error":{"code":"Canceled","message":"canceled"}}`}}
	err = s.Send(context.Background(), message("r5:verify:2"))
	if !errors.Is(err, notify.ErrRejected) || !errors.As(err, &ne) || ne.Code != "Canceled" {
		t.Fatalf("Send = %v, want ErrRejected (Canceled)", err)
	}
}

func TestPollTimeout(t *testing.T) {
	f := newFake(t)
	for range 1000 {
		f.polls = append(f.polls, reply{status: http.StatusOK, header: map[string]string{"retry-after": "1"}, body: `{"id":"{id}","status":"Running"}`})
	}
	s, _ := newSender(t, f, func(c *acs.Config) { c.PollTimeout = 150 * time.Millisecond })
	m := message("r6:verify:1")
	start := time.Now()
	err := s.Send(context.Background(), m)
	if !errors.Is(err, notify.ErrStatusUnknown) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, want ErrStatusUnknown (and not the caller's deadline)", err)
	}
	if !strings.Contains(err.Error(), "delivery status unknown after 150ms (last: status Running)") {
		t.Errorf("error %q", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
	if _, polls := f.counts(); polls < 2 {
		t.Errorf("polled %d times", polls)
	}
	assertClean(t, err, m)
}

func TestPollToleratesThrottlingAndErrors(t *testing.T) {
	f := newFake(t)
	f.polls = []reply{
		{status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "1"}},
		{status: http.StatusBadGateway},
		{status: http.StatusOK, body: `<html>proxy</html>`},
		{status: http.StatusOK, body: `{"id":"{id}","status":"NotStarted"}`},
		{status: http.StatusOK, body: `{"id":"{id}","status":"Succeeded"}`},
	}
	s, _ := newSender(t, f, nil)
	if err := s.Send(context.Background(), message("r7:verify:1")); err != nil {
		t.Fatal(err)
	}
	if _, polls := f.counts(); polls != 5 {
		t.Errorf("polls = %d, want 5", polls)
	}
}

func TestPollNotFound(t *testing.T) {
	f := newFake(t)
	f.opLocation = func(string) string {
		return f.srv.URL + "/emails/operations/00000000-0000-4000-8000-000000000000?api-version=" + acs.DefaultAPIVersion
	}
	s, _ := newSender(t, f, nil)
	m := message("r8:verify:1")
	err := s.Send(context.Background(), m)
	var ne *notify.Error
	if !errors.Is(err, notify.ErrStatusUnknown) || !errors.As(err, &ne) || ne.Status != 404 || ne.Code != "NotFound" {
		t.Fatalf("Send = %v, want ErrStatusUnknown, 404", err)
	}
	assertClean(t, err, m)
}

func TestOperationLocationElsewhereIsNotFollowed(t *testing.T) {
	f := newFake(t)
	var stolen []string
	evil := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen = append(stolen, r.Header.Get("Authorization"))
		io.WriteString(w, `{"status":"Succeeded"}`)
	}))
	defer evil.Close()
	f.opLocation = func(opID string) string {
		return evil.URL + "/emails/operations/" + opID + "?api-version=" + acs.DefaultAPIVersion
	}
	s, _ := newSender(t, f, nil)
	if err := s.Send(context.Background(), message("r9:verify:1")); err != nil {
		t.Fatal(err)
	}
	if len(stolen) != 0 {
		t.Fatalf("the token went to another host: %v", stolen)
	}
	if _, polls := f.counts(); polls != 2 {
		t.Errorf("polls on the endpoint = %d, want 2", polls)
	}

	// No Operation-Location at all: the documented status URL.
	f.opLocation, f.noOpLocation = nil, true
	if err := s.Send(context.Background(), message("r9:verify:2")); err != nil {
		t.Fatal(err)
	}
}

func TestContextCancel(t *testing.T) {
	m := message("r10:verify:1")

	t.Run("while polling", func(t *testing.T) {
		f := newFake(t)
		for range 1000 {
			f.polls = append(f.polls, reply{status: http.StatusOK, header: map[string]string{"retry-after": "1"}, body: `{"id":"{id}","status":"Running"}`})
		}
		s, _ := newSender(t, f, func(c *acs.Config) { c.MaxRetryAfter = 10 * time.Second })
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := s.Send(ctx, m)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, notify.ErrStatusUnknown) {
			t.Fatalf("Send = %v, want the context's error and ErrStatusUnknown (the email was accepted)", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Send returned %v after the context ended", d)
		}
		assertClean(t, err, m)
	})

	t.Run("while waiting to retry", func(t *testing.T) {
		f := newFake(t)
		f.sends = []reply{{status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "60"}}}
		s, _ := newSender(t, f, func(c *acs.Config) { c.MaxRetryAfter = time.Minute })
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		err := s.Send(ctx, m)
		if !errors.Is(err, context.Canceled) || errors.Is(err, notify.ErrStatusUnknown) || errors.Is(err, notify.ErrRejected) {
			t.Fatalf("Send = %v, want context.Canceled only", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Send waited %v despite the cancel", d)
		}
		if posts, _ := f.counts(); posts != 1 {
			t.Errorf("posts = %d", posts)
		}
		assertClean(t, err, m)
	})

	t.Run("before sending", func(t *testing.T) {
		f := newFake(t)
		s, _ := newSender(t, f, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := s.Send(ctx, m)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Send = %v", err)
		}
		if posts, _ := f.counts(); posts != 0 {
			t.Errorf("posts = %d", posts)
		}
	})
}

func TestInvalidMessageSendsNothing(t *testing.T) {
	f := newFake(t)
	s, _ := newSender(t, f, nil)
	m := message("r11:verify:1")
	m.To = avery + "\r\nBcc: eve@evil.example"
	err := s.Send(context.Background(), m)
	if !errors.Is(err, notify.ErrInvalid) {
		t.Fatalf("Send = %v", err)
	}
	assertClean(t, err, m)
	if posts, _ := f.counts(); posts != 0 {
		t.Errorf("posts = %d", posts)
	}
}

func TestTokenFailure(t *testing.T) {
	f := newFake(t)
	s, cred := newSender(t, f, nil)
	cred.err = errors.New("no managed identity endpoint")
	m := message("r12:verify:1")
	err := s.Send(context.Background(), m)
	if err == nil || !errors.Is(err, cred.err) || errors.Is(err, notify.ErrRejected) {
		t.Fatalf("Send = %v", err)
	}
	assertClean(t, err, m)
	if posts, _ := f.counts(); posts != 0 {
		t.Errorf("posts = %d", posts)
	}
}

func TestConnectionErrorsAreRetriedThenReported(t *testing.T) {
	f := newFake(t)
	s, _ := newSender(t, f, func(c *acs.Config) { c.MaxAttempts = 2 })
	f.srv.Close() // nothing listens any more
	m := message("r13:verify:1")
	err := s.Send(context.Background(), m)
	if err == nil || !strings.Contains(err.Error(), "connection error") || !strings.Contains(err.Error(), "after 2 attempts") {
		t.Fatalf("Send = %v", err)
	}
	if strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("error %q repeats the URL", err)
	}
	assertClean(t, err, m)
}

func TestNewChecksConfig(t *testing.T) {
	cred := &fakeCredential{}
	for _, tc := range []struct {
		name string
		cfg  acs.Config
	}{
		{"no endpoint", acs.Config{Sender: sender, Credential: cred}},
		{"http endpoint", acs.Config{Endpoint: "http://x.communication.azure.com", Sender: sender, Credential: cred}},
		{"endpoint with path", acs.Config{Endpoint: "https://x.communication.azure.com/emails", Sender: sender, Credential: cred}},
		{"endpoint with query", acs.Config{Endpoint: "https://x.communication.azure.com/?a=b", Sender: sender, Credential: cred}},
		{"no sender", acs.Config{Endpoint: "https://x.communication.azure.com", Credential: cred}},
		{"sender with display name", acs.Config{Endpoint: "https://x.communication.azure.com", Sender: "Contoso <" + sender + ">", Credential: cred}},
		{"no credential", acs.Config{Endpoint: "https://x.communication.azure.com", Sender: sender}},
		{"negative limit", acs.Config{Endpoint: "https://x.communication.azure.com", Sender: sender, Credential: cred, MaxAttempts: -1}},
	} {
		if _, err := acs.New(tc.cfg); err == nil {
			t.Errorf("%s: New accepted %+v", tc.name, tc.cfg)
		}
	}
	for _, ep := range []string{"https://x.communication.azure.com", "https://x.communication.azure.com/", "x.europe.communication.azure.com"} {
		if _, err := acs.New(acs.Config{Endpoint: ep, Sender: sender, Credential: cred}); err != nil {
			t.Errorf("New(%q): %v", ep, err)
		}
	}
}
