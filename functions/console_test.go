package functions_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/console"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/queue/embedded"
	"github.com/dsr-functions/dsr/shared/sample"
)

// staff is a console user with roles.
func staff(name string, roles ...auth.Role) auth.Principal {
	return auth.Principal{Kind: "user", ID: "console-test-" + strings.ToLower(name), Name: name, Roles: roles}
}

// consoleClient is a browser without a browser: a cookie jar and the
// harness's front door, every answer held to the contract.
type consoleClient struct {
	h *harness
	c *http.Client
}

// signIn opens a fresh one-time login link for p.
func (h *harness) signIn(p auth.Principal) *consoleClient {
	h.t.Helper()
	link, err := h.app.Console.LoginURL(h.front.URL, p)
	if err != nil {
		h.t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	cc := &consoleClient{h: h, c: &http.Client{Jar: jar}}
	resp, body := cc.get(strings.TrimPrefix(link, h.front.URL))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Work queue") {
		h.t.Fatalf("login as %s: %d\n%s", p.Name, resp.StatusCode, body)
	}
	return cc
}

func (cc *consoleClient) do(req *http.Request) (*http.Response, string) {
	cc.h.t.Helper()
	resp, err := cc.c.Do(req)
	if err != nil {
		cc.h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	checkContract(cc.h.t, resp.Request.Method, resp.Request.URL.Path, resp, b)
	return resp, string(b)
}

func (cc *consoleClient) get(path string) (*http.Response, string) {
	req, _ := http.NewRequest("GET", cc.h.front.URL+path, nil)
	return cc.do(req)
}

// post sends a form, with the CSRF token of the page at from unless the
// form sets one.
func (cc *consoleClient) post(path string, form url.Values, header ...string) (*http.Response, string) {
	req, _ := http.NewRequest("POST", cc.h.front.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return cc.do(req)
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the form token from a page.
func (cc *consoleClient) csrf(page string) string {
	cc.h.t.Helper()
	m := csrfInput.FindStringSubmatch(page)
	if m == nil {
		cc.h.t.Fatalf("no CSRF token on the page:\n%s", page)
	}
	return m[1]
}

// The console's pages carry a CSP that forbids script and other origins;
// a login link works once; without a session nothing is shown.
func TestConsoleSignInAndHeaders(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	link, err := h.app.Console.LoginURL(h.front.URL, staff("Ada", auth.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	anon := &consoleClient{h: h, c: &http.Client{}}
	resp, body := anon.get("/api/console/")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Not signed in") {
		t.Fatalf("without a session: %d\n%s", resp.StatusCode, body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %s", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP %q allows script", csp)
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", resp.Header)
	}

	jar, _ := cookiejar.New(nil)
	cc := &consoleClient{h: h, c: &http.Client{Jar: jar}}
	resp, body = cc.get(strings.TrimPrefix(link, h.front.URL))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Ada") || resp.Request.URL.RawQuery != "" {
		t.Fatalf("login: %d at %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	var session *http.Cookie
	for _, c := range jar.Cookies(resp.Request.URL) {
		if c.Name == console.SessionCookie {
			session = c
		}
	}
	if session == nil {
		t.Fatal("no session cookie")
	}
	// The same link again, from another browser: refused.
	again := &consoleClient{h: h, c: &http.Client{}}
	if resp, _ := again.get(strings.TrimPrefix(link, h.front.URL)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("second use of the login link: %d", resp.StatusCode)
	}
	// A made-up session cookie is no session.
	req, _ := http.NewRequest("GET", h.front.URL+"/api/console/", nil)
	req.AddCookie(&http.Cookie{Name: console.SessionCookie, Value: "forged"})
	if resp, _ := anon.do(req); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged session: %d", resp.StatusCode)
	}
	// Signing out ends the session.
	_, page := cc.get("/api/console/")
	if resp, _ := cc.post("/api/console/logout", url.Values{"csrf": {cc.csrf(page)}}); resp.StatusCode != http.StatusOK {
		t.Errorf("logout: %d", resp.StatusCode)
	}
	if resp, _ := cc.get("/api/console/"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after logout: %d", resp.StatusCode)
	}
	// The stylesheet is served; unknown pages are 404.
	if resp, body := cc.get("/api/console/assets/console.css"); resp.StatusCode != 200 || !strings.Contains(body, "--accent") {
		t.Errorf("stylesheet: %d", resp.StatusCode)
	}
	if resp, _ := cc.get("/api/console/nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown page: %d", resp.StatusCode)
	}
}

// Decisions need the form's token from a console page of the same session
// and a same-origin browser; a role the API refuses stays refused, whatever
// the page shows.
func TestConsoleDecisionsAreGuarded(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	doc := h.submit(`{"type":"erasure","subject":{"email":"` + sample.DemoEmail + `"}}`)
	h.waitState(doc.ID, dsr.StateAwaitingApproval)
	page := "/api/console/requests/" + doc.ID
	approve := page + "/approve"

	reader := h.signIn(staff("Rita", auth.RoleRead))
	resp, body := reader.get(page)
	if resp.StatusCode != 200 || !strings.Contains(body, "awaiting approval") || !strings.Contains(body, "Delete") {
		t.Fatalf("request page for a reader: %d\n%s", resp.StatusCode, body)
	}
	if strings.Contains(body, `id="approve"`) || strings.Contains(body, `id="reject"`) {
		t.Error("a DSR.Read user is shown approve or reject")
	}
	// Forging the approve form anyway: the API refuses the role.
	resp, body = reader.post(approve, url.Values{"csrf": {reader.csrf(body)}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "DSR.Approve") {
		t.Errorf("reader approving: %d\n%s", resp.StatusCode, body)
	}

	approver := h.signIn(staff("Alex", auth.RoleApprove, auth.RoleRead))
	_, body = approver.get(page)
	token := approver.csrf(body)
	for name, tc := range map[string]struct {
		form   url.Values
		header []string
	}{
		"no token":            {url.Values{}, nil},
		"another's token":     {url.Values{"csrf": {reader.csrf(body)}}, nil},
		"cross-site":          {url.Values{"csrf": {token}}, []string{"Sec-Fetch-Site", "cross-site"}},
		"another origin":      {url.Values{"csrf": {token}}, []string{"Origin", "https://evil.example"}},
		"a token made up now": {url.Values{"csrf": {strings.Repeat("A", len(token))}}, nil},
	} {
		if name == "another's token" && reader.csrf(body) == token {
			continue
		}
		resp, _ := approver.post(approve, tc.form, tc.header...)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, resp.StatusCode)
		}
	}
	if got, _ := h.get(doc.ID); got.State != dsr.StateAwaitingApproval {
		t.Fatalf("a refused form changed the request: %s", got.State)
	}
	// The approver's own form goes through, and a second click is refused
	// by the API's state check, not done twice.
	resp, body = approver.post(approve, url.Values{"csrf": {token}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Done: approve") {
		t.Fatalf("approve: %d\n%s", resp.StatusCode, body)
	}
	resp, body = approver.post(approve, url.Values{"csrf": {token}})
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("approving twice: %d\n%s", resp.StatusCode, body)
	}
	if final, _ := h.waitTerminal(doc.ID); final.State != dsr.StateCompleted {
		t.Errorf("after approval: %s", final.State)
	}
}

// The submission form shows the API's field errors beside the fields and
// keeps what was typed; a valid one creates the request as the person.
func TestConsoleSubmitShowsFieldErrors(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	cc := h.signIn(staff("Sam", auth.RoleSubmit, auth.RoleRead))
	_, page := cc.get("/api/console/new")
	token := cc.csrf(page)
	resp, body := cc.post("/api/console/new", url.Values{"csrf": {token}, "type": {"access"}, "email": {"not-an-email"}, "name": {"Avery"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `id="email-err"`) || !strings.Contains(body, `aria-invalid="true"`) {
		t.Fatalf("invalid email: %d\n%s", resp.StatusCode, body)
	}
	if !strings.Contains(body, `value="Avery"`) {
		t.Error("the form lost what was typed")
	}
	resp, body = cc.post("/api/console/new", url.Values{"csrf": {token}, "type": {"access"}, "email": {sample.DemoEmail}, "note": {"by phone"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Done: submitted") {
		t.Fatalf("valid submission: %d\n%s", resp.StatusCode, body)
	}
	id := strings.TrimPrefix(resp.Request.URL.Path, "/api/console/requests/")
	doc, _ := h.get(id)
	if doc.Type != dsr.TypeAccess || doc.Note != "by phone" || doc.Origin != "http" {
		t.Errorf("created %+v", doc)
	}
	// The person is the submitter: they see it in their own listing.
	if resp, body := cc.get("/api/console/?state=received"); resp.StatusCode != 200 || !strings.Contains(body, id) {
		t.Errorf("work queue of the submitter lacks %s: %d", id, resp.StatusCode)
	}
}

// A failed request is re-driven from its page: back where it failed, its
// stage runs again from a fresh message, and it completes; the failure
// stays in the timeline.
func TestConsoleRedrivesAFailedRequest(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	doc := h.submit(`{"type":"access","subject":{"email":"` + sample.DemoEmail + `"}}`)
	h.deliverNothing("discover") // it dead-letters in Azure; here it is dropped
	if err := h.app.Service.FailDeadLettered(context.Background(), pipeline.StageMessage{RequestID: doc.ID, Stage: dsr.StageDiscovery}, "MaxDeliveryCountExceeded", ""); err != nil {
		t.Fatal(err)
	}
	reader := h.signIn(staff("Rita", auth.RoleRead))
	if _, body := reader.get("/api/console/requests/" + doc.ID); strings.Contains(body, `id="redrive"`) {
		t.Error("a reader is offered the re-drive")
	}
	ops := h.signIn(staff("Olu", auth.RoleApprove, auth.RoleRead))
	_, body := ops.get("/api/console/requests/" + doc.ID)
	if !strings.Contains(body, `id="redrive"`) || !strings.Contains(body, "stage-dead-lettered") {
		t.Fatalf("failed request page:\n%s", body)
	}
	resp, body := ops.post("/api/console/requests/"+doc.ID+"/redrive", url.Values{"csrf": {ops.csrf(body)}})
	if resp.StatusCode != 200 || !strings.Contains(body, "Done: redrive") {
		t.Fatalf("redrive: %d\n%s", resp.StatusCode, body)
	}
	h.deliver("discover")
	h.deliver("export")
	final, _ := h.get(doc.ID)
	if final.State != dsr.StateCompleted || final.Error != nil {
		t.Fatalf("after re-drive: %s/%s %+v", final.Stage, final.State, final.Error)
	}
	var failed, redriven bool
	for _, e := range final.History {
		failed = failed || e.State == dsr.StateFailed
		redriven = redriven || (e.Detail == "re-driven" && e.By != nil)
	}
	if !failed || !redriven {
		t.Errorf("history lost the failure or the re-drive: %+v", final.History)
	}
	if resp, _ := ops.post("/api/console/requests/"+doc.ID+"/redrive", url.Values{"csrf": {ops.csrf(body)}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("re-driving a completed request: %d", resp.StatusCode)
	}
}

// deliverNothing takes a function's next message off its queue without
// running it (a message lost to the request).
func (h *harness) deliverNothing(function string) *embedded.Delivery {
	h.t.Helper()
	f := h.function(function)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := h.broker.Receive(ctx, f.Trigger().QueueName)
	if err != nil {
		h.t.Fatalf("no message for %s: %v", function, err)
	}
	if err := h.broker.Complete(f.Trigger().QueueName, d.LockToken); err != nil {
		h.t.Fatal(err)
	}
	return d
}
