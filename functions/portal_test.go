package functions_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/notify/outbox"
	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
)

// visitor is an anonymous browser without a browser: no key, no cookie.
type visitor struct {
	h *harness
	c *http.Client
}

func (h *harness) visitor() *visitor { return &visitor{h: h, c: &http.Client{}} }

func (v *visitor) do(method, path, contentType, body string, header ...string) (*http.Response, string) {
	v.h.t.Helper()
	req, _ := http.NewRequest(method, v.h.front.URL+path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := v.c.Do(req)
	if err != nil {
		v.h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	checkContract(v.h.t, resp.Request.Method, resp.Request.URL.Path, resp, b)
	return resp, string(b)
}

func (v *visitor) form(path string, f url.Values, header ...string) (*http.Response, string) {
	return v.do("POST", path, "application/x-www-form-urlencoded", f.Encode(), header...)
}

var ticketInPage = regexp.MustCompile(`/api/portal/requests/([^/"]+)/verify`)

// mail reads the messages the app sent to an address (the outbox).
func (h *harness) mail(to string) []outbox.Stored {
	h.t.Helper()
	ob, err := outbox.OpenAccount(context.Background(), azuritetest.Account(h.t), h.outbox)
	if err != nil {
		h.t.Fatal(err)
	}
	got, err := ob.Find(context.Background(), to)
	if err != nil {
		h.t.Fatal(err)
	}
	return got
}

var codeInMail = regexp.MustCompile(`\n    (\d{6})\n`)

// code is the code of the latest mail to an address.
func (h *harness) code(to string) string {
	h.t.Helper()
	mails := h.mail(to)
	if len(mails) == 0 {
		h.t.Fatalf("no mail to the address")
	}
	m := codeInMail.FindStringSubmatch(mails[len(mails)-1].Text)
	if m == nil {
		h.t.Fatalf("no code in the mail:\n%s", mails[len(mails)-1].Text)
	}
	return m[1]
}

// The portal in plain HTTP: a person submits, the code arrives in the
// outbox, a wrong code is refused, the right one starts the request, which
// completes; nothing of the address is in any answer or log line that does
// not need it.
func TestPortalSubmitVerifyComplete(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	v := h.visitor()
	resp, page := v.do("GET", "/api/portal/", "", "")
	if resp.StatusCode != 200 || !strings.Contains(page, `name="email"`) || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("portal form: %d %v\n%s", resp.StatusCode, resp.Header, page)
	}
	resp, page = v.form("/api/portal/requests", url.Values{"type": {"access"}, "email": {strings.ToUpper(sample.DemoEmail)}})
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(page, "Check your email") {
		t.Fatalf("submit: %d\n%s", resp.StatusCode, page)
	}
	if strings.Contains(strings.ToLower(page), sample.DemoEmail) {
		t.Error("the answer repeats the address")
	}
	ticket := ticketInPage.FindStringSubmatch(page)[1]
	id, _, _ := strings.Cut(ticket, ".")
	doc, _ := h.get(id)
	if doc.State != dsr.StateAwaitingVerification || doc.Origin != "portal" || doc.Discovery != nil {
		t.Fatalf("request after submit: %s %s", doc.State, doc.Origin)
	}
	mails := h.mail(sample.DemoEmail)
	if len(mails) != 1 || !strings.Contains(mails[0].Text, ticket) || !strings.Contains(mails[0].HTML, "<strong>") {
		t.Fatalf("mails %+v", mails)
	}
	code := h.code(sample.DemoEmail)
	wrong := "000000"
	if code == wrong {
		wrong = "000001"
	}
	resp, page = v.form("/api/portal/requests/"+ticket+"/verify", url.Values{"code": {wrong}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "not right") {
		t.Fatalf("wrong code: %d\n%s", resp.StatusCode, page)
	}
	// The mail's link opens the code page with the code filled in, and
	// changes nothing by itself (mail scanners open links).
	link := regexp.MustCompile(`\S*/api/portal/requests/\S+/verify\?code=\d{6}`).FindString(mails[0].Text)
	u, _ := url.Parse(link)
	resp, page = v.do("GET", u.RequestURI(), "", "")
	if resp.StatusCode != 200 || !strings.Contains(page, `value="`+code+`"`) {
		t.Fatalf("mail link %q: %d\n%s", link, resp.StatusCode, page)
	}
	if doc, _ := h.get(id); doc.State != dsr.StateAwaitingVerification {
		t.Fatal("opening the link verified the request")
	}
	resp, page = v.form("/api/portal/requests/"+ticket+"/verify", url.Values{"code": {code}})
	if resp.StatusCode != 200 || !strings.Contains(page, "confirmed") {
		t.Fatalf("right code: %d\n%s", resp.StatusCode, page)
	}
	final, _ := h.waitTerminal(id)
	if final.State != dsr.StateCompleted || final.Identity == nil || final.Identity.Method != dsr.VerifyEmailCode || final.Identity.VerifiedAt == nil {
		t.Fatalf("final: %s %+v", final.State, final.Identity)
	}
	// The code cannot be used again to move anything.
	if resp, _ := v.form("/api/portal/requests/"+ticket+"/verify", url.Values{"code": {code}}); resp.StatusCode != 200 && resp.StatusCode != http.StatusConflict {
		t.Errorf("the code again: %d", resp.StatusCode)
	}
	if strings.Contains(strings.ToLower(h.logs.String()), "avery") || strings.Contains(h.logs.String(), code) {
		t.Error("the address or the code is in the logs")
	}
}

// The answer does not say whether we hold anything about an address; made
// up tickets and codes get nowhere; the limits hold per address.
func TestPortalNoEnumerationAndLimits(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	v := h.visitor()
	anyTicket := regexp.MustCompile(`/api/portal/requests/[^/"]+/`)
	normalise := func(page string) string { return anyTicket.ReplaceAllString(page, "/api/portal/requests/T/") }
	_, known := v.form("/api/portal/requests", url.Values{"type": {"erasure"}, "email": {sample.DemoEmail}})
	resp, unknown := v.form("/api/portal/requests", url.Values{"type": {"erasure"}, "email": {"nobody.at.all@example.org"}})
	if resp.StatusCode != http.StatusAccepted || normalise(known) != normalise(unknown) {
		t.Fatalf("known and unknown addresses are answered differently:\n%s\n---\n%s", known, unknown)
	}
	// JSON clients get the same, as JSON.
	resp, body := v.do("POST", "/api/portal/requests", "application/json", `{"type":"access","email":"someone@example.org"}`)
	var ticket struct{ Ticket, Verify string }
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal([]byte(body), &ticket) != nil || ticket.Ticket == "" {
		t.Fatalf("JSON submit: %d %s", resp.StatusCode, body)
	}
	resp, body = v.do("POST", ticket.Verify, "application/json", `{"code":"12345"}`)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `"invalid-code"`) {
		t.Errorf("a 5-digit code: %d %s", resp.StatusCode, body)
	}
	id, _, _ := strings.Cut(ticket.Ticket, ".")
	for name, forged := range map[string]string{
		"no mac":    id,
		"wrong mac": id + ".AAAAAAAAAAAAAAAAAAAAAAAA",
		"not an id": "r0.x",
	} {
		if resp, _ := v.form("/api/portal/requests/"+forged+"/verify", url.Values{"code": {"123456"}}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s ticket: %d", name, resp.StatusCode)
		}
	}
	// A second, third and fourth request for one address within the hour:
	// the fourth is refused, with when to try again.
	for range 2 {
		if resp, _ := v.form("/api/portal/requests", url.Values{"type": {"access"}, "email": {sample.DemoEmail}}); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("request within the limit: %d", resp.StatusCode)
		}
	}
	resp, page := v.form("/api/portal/requests", url.Values{"type": {"access"}, "email": {sample.DemoEmail}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(page, "Too many") {
		t.Fatalf("fourth request for one address: %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Bad input is named, changes nothing, and the form keeps what was typed.
	resp, page = v.form("/api/portal/requests", url.Values{"type": {"access"}, "email": {"not-an-address"}, "name": {"Avery"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `aria-invalid="true"`) || !strings.Contains(page, `value="Avery"`) {
		t.Errorf("bad address: %d\n%s", resp.StatusCode, page)
	}
	resp, _ = v.form("/api/portal/requests", url.Values{"type": {"discovery"}, "email": {"x@example.org"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("a type the portal does not offer: %d", resp.StatusCode)
	}
	// Another site's form is refused.
	resp, _ = v.form("/api/portal/requests", url.Values{"type": {"access"}, "email": {"x@example.org"}}, "Sec-Fetch-Site", "cross-site")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site form: %d", resp.StatusCode)
	}
	// A request for an address asks for a new code only after the wait.
	resp, _ = v.form(strings.TrimSuffix(ticket.Verify, "/verify")+"/resend", nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("resend at once: %d", resp.StatusCode)
	}
}

// A trusted caller may attest the requester's identity; the audit trail
// records it. Through the API a channel that requires verification (here
// erasure over http) waits for a code like the portal's.
func TestAPIVerificationRules(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true, env: map[string]string{"DSR_VERIFY": "portal:*,http:erasure"}})
	doc := h.submit(`{"type":"erasure","subject":{"email":"` + sample.DemoEmail + `"},"verification":{"method":"operator","note":"ID checked at the counter"}}`)
	if doc.State != dsr.StateReceived || doc.Identity == nil || doc.Identity.Method != dsr.VerifyOperator {
		t.Fatalf("attested: %s %+v", doc.State, doc.Identity)
	}
	resp, b := h.do("GET", "/api/requests/"+doc.ID+"/audit", "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), "identity.attested") || !strings.Contains(string(b), "ID checked at the counter") {
		t.Errorf("audit: %d %s", resp.StatusCode, b)
	}
	waiting := h.submit(`{"type":"erasure","subject":{"email":"` + sample.DemoEmail + `"}}`)
	if waiting.State != dsr.StateAwaitingVerification || len(h.mail(sample.DemoEmail)) != 1 {
		t.Fatalf("unattested erasure over http: %s", waiting.State)
	}
	resp, b = h.do("POST", "/api/requests", `{"type":"erasure","subject":{"ids":{"contactId":"x"}}}`)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(b), "verification-required") {
		t.Errorf("no address to verify: %d %s", resp.StatusCode, b)
	}
	resp, b = h.do("POST", "/api/requests", `{"type":"access","subject":{"email":"a@b.example"},"verification":{"method":"selfie"}}`)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(b), "verification.method") {
		t.Errorf("unknown method: %d %s", resp.StatusCode, b)
	}
}
