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
	"time"

	"github.com/dsr-functions/dsr/shared/auth"
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

// waitMail waits until n messages went to an address (the delivery email
// leaves just after the request completes).
func (h *harness) waitMail(to string, n int) []outbox.Stored {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := h.mail(to)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%d mails to the address, want %d", len(got), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var downloadLinkInMail = regexp.MustCompile(`\S*/api/portal/requests/(\S+)/download`)

// The export reaches the person: an email with a link to the portal, which
// hands out nothing until a fresh code from the same address is entered;
// the link then downloads the ZIP with plain HTTP, and the trail says so.
func TestPortalDeliveryNeedsAFreshCode(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	v := h.visitor()
	resp, body := v.do("POST", "/api/portal/requests", "application/json", `{"type":"access","email":"`+sample.DemoEmail+`"}`)
	var sub struct{ Ticket, Verify string }
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal([]byte(body), &sub) != nil {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	if resp, body := v.do("POST", sub.Verify, "application/json", `{"code":"`+h.code(sample.DemoEmail)+`"}`); resp.StatusCode != 200 {
		t.Fatalf("verify: %d %s", resp.StatusCode, body)
	}
	id, _, _ := strings.Cut(sub.Ticket, ".")
	if final, _ := h.waitTerminal(id); final.State != dsr.StateCompleted {
		t.Fatalf("request ended %s", final.State)
	}
	mails := h.waitMail(sample.DemoEmail, 2)
	ready := mails[1]
	m := downloadLinkInMail.FindStringSubmatch(ready.Text)
	if ready.Subject != "Your data is ready" || m == nil || !strings.Contains(ready.HTML, m[0]) || downloadLinkInMail.MatchString(mails[0].Text) {
		t.Fatalf("export-ready mail %q:\n%s", ready.Subject, ready.Text)
	}
	if strings.Contains(ready.Text, ".blob.") || strings.Contains(ready.Text, "sig=") || strings.Contains(ready.Text, "devstoreaccount") {
		t.Fatal("the email carries the download link itself")
	}
	page := "/api/portal/requests/" + m[1] + "/download"
	// The page asks for a code; opening it sends nothing.
	resp, html := v.do("GET", page, "", "")
	if resp.StatusCode != 200 || !strings.Contains(html, `id="send-code"`) || len(h.mail(sample.DemoEmail)) != 2 {
		t.Fatalf("download page: %d\n%s", resp.StatusCode, html)
	}
	// Without a code, or with a made-up one, nothing is handed out.
	if resp, body := v.do("POST", page, "application/json", `{"code":"123456"}`); resp.StatusCode != http.StatusUnprocessableEntity || strings.Contains(body, "sig=") {
		t.Fatalf("download before a code was sent: %d %s", resp.StatusCode, body)
	}
	// Forged, altered or prolonged tickets get nowhere.
	ticketID, rest, _ := strings.Cut(m[1], ".")
	exp, mac, _ := strings.Cut(rest, ".")
	for name, forged := range map[string]string{
		"other request": "r" + strings.Repeat("0", len(ticketID)-1) + "." + exp + "." + mac,
		"prolonged":     ticketID + ".9999999999." + mac,
		"verify ticket": sub.Ticket,
	} {
		if resp, _ := v.do("GET", "/api/portal/requests/"+forged+"/download", "", ""); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d", name, resp.StatusCode)
		}
	}
	if resp, body := v.do("POST", page+"/code", "application/json", ``); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("send a code: %d %s", resp.StatusCode, body)
	}
	mails = h.waitMail(sample.DemoEmail, 3)
	if mails[2].Subject != "Your code to download your data" {
		t.Fatalf("third mail %q", mails[2].Subject)
	}
	code := h.code(sample.DemoEmail)
	resp, body = v.do("POST", page, "application/json", `{"code":"`+code+`"}`)
	var link struct {
		URL       string    `json:"url"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &link) != nil || link.URL == "" {
		t.Fatalf("download with the code: %d %s", resp.StatusCode, body)
	}
	zipResp, err := http.Get(link.URL)
	if err != nil {
		t.Fatal(err)
	}
	zipBytes, _ := io.ReadAll(zipResp.Body)
	zipResp.Body.Close()
	if zipResp.StatusCode != 200 || !strings.HasPrefix(string(zipBytes), "PK") {
		t.Fatalf("the link: %d, %d bytes", zipResp.StatusCode, len(zipBytes))
	}
	// The code worked once.
	if resp, _ := v.do("POST", page, "application/json", `{"code":"`+code+`"}`); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("the code again: %d", resp.StatusCode)
	}
	doc, _ := h.get(id)
	if doc.Delivery == nil || doc.Delivery.NotifiedAt == nil || doc.Delivery.Downloads != 1 {
		t.Fatalf("delivery on the request: %+v", doc.Delivery)
	}
	// The privacy team sees it on the request page.
	if _, page := h.signIn(staff("Rita", auth.RoleRead)).get("/api/console/requests/" + id); !strings.Contains(page, "export-ready email sent") || !strings.Contains(page, "downloaded 1×") {
		t.Errorf("console request page does not show the delivery")
	}
	var events []string
	for _, e := range h.auditTrail(id) {
		if e.Event != "state" {
			events = append(events, e.Event)
		}
	}
	if strings.Join(events, " ") != "export.delivery-sent export.downloaded" {
		t.Errorf("audit events %v", events)
	}
	if strings.Contains(h.logs.String(), code) || strings.Contains(strings.ToLower(h.logs.String()), sample.DemoEmail) {
		t.Error("the code or the address is in the logs")
	}
}
