package functions_test

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sample"
)

// A person on a phone asks for their data on the portal, the whole way:
// the form, the code from the email (the outbox), the confirmation,
// discovery and export, the export-ready email's link, a fresh code, and
// the download over plain HTTP. No script, no console errors, nothing wider than the
// screen, every control labelled.
func TestPortalBrowserAccessRequest(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	b := newBrowser(t, 390, 844)
	b.run("open the portal", chromedp.Navigate(h.front.URL+"/api/portal/"), chromedp.WaitVisible(chromedp.CSS("#email")))
	b.checkPage("portal form")
	b.screenshot("portal-form-390")
	b.run("submit",
		chromedp.Click(chromedp.CSS("#type-access")),
		chromedp.SendKeys(chromedp.CSS("#email"), sample.DemoEmail),
		chromedp.Click(chromedp.CSS("#submit")),
		chromedp.WaitVisible(chromedp.CSS("#code")))
	if s := b.text("h1"); !strings.Contains(s, "Check your email") {
		t.Fatalf("after submitting: %q", s)
	}
	b.checkPage("code page")
	action := get(b, "read the form", chromedp.AttributeValue(chromedp.CSS("form"), "action"))
	id := strings.TrimPrefix(action.Value, "/api/portal/requests/")
	id, _, _ = strings.Cut(id, ".")
	code := h.code(sample.DemoEmail)
	b.run("enter the code", chromedp.SendKeys(chromedp.CSS("#code"), code), chromedp.Click(chromedp.CSS("#verify")),
		chromedp.WaitNotPresent(chromedp.CSS("#code")))
	if s := b.text("h1"); !strings.Contains(s, "confirmed") {
		t.Fatalf("after the code: %q", s)
	}
	b.screenshot("portal-confirmed-390")
	if final, _ := h.waitTerminal(id); final.State != dsr.StateCompleted {
		t.Fatalf("the verified request ended %s", final.State)
	}
	// The export-ready email's link, a fresh code, the download.
	mails := h.waitMail(sample.DemoEmail, 2)
	link := downloadLinkInMail.FindString(mails[1].Text)
	if link == "" {
		t.Fatalf("no portal link in the export-ready mail:\n%s", mails[1].Text)
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	b.run("open the email's link", chromedp.Navigate(h.front.URL+u.RequestURI()), chromedp.WaitVisible(chromedp.CSS("#send-code")))
	b.checkPage("download page")
	b.run("ask for a code", chromedp.Click(chromedp.CSS("#send-code")), chromedp.WaitVisible(chromedp.CSS(`[role="status"]`)))
	h.waitMail(sample.DemoEmail, 3)
	b.run("enter it", chromedp.SendKeys(chromedp.CSS("#code"), h.code(sample.DemoEmail)), chromedp.Click(chromedp.CSS("#download")),
		chromedp.WaitVisible(chromedp.CSS("#download-link")))
	b.checkPage("ready page")
	b.screenshot("portal-download-390")
	href := get(b, "read the link", chromedp.AttributeValue(chromedp.CSS("#download-link"), "href"))
	resp, err := http.Get(href.Value)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	zip, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(zip), "PK") {
		t.Fatalf("the download link: %d, %d bytes", resp.StatusCode, len(zip))
	}
	if doc, _ := h.get(id); doc.Delivery == nil || doc.Delivery.Downloads != 1 {
		t.Errorf("delivery %+v", doc.Delivery)
	}
}

// Someone asks for their mother on a phone: the agent part of the form
// with a PDF chosen in the file input, the code page, the code the mother
// receives (not the agent), the confirmation; the request records the
// agent and the proof, and the console's reader sees both.
func TestPortalBrowserAgentRequest(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	file := filepath.Join(t.TempDir(), "power-of-attorney.pdf")
	if err := os.WriteFile(file, testProof, 0o600); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, 390, 844)
	b.run("open the portal", chromedp.Navigate(h.front.URL+"/api/portal/"), chromedp.WaitVisible(chromedp.CSS("#agentName")))
	b.run("fill in the form as an agent",
		chromedp.Click(chromedp.CSS("#type-access")),
		chromedp.SendKeys(chromedp.CSS("#email"), sample.DemoEmail),
		chromedp.SendKeys(chromedp.CSS("#agentName"), agentName),
		chromedp.SendKeys(chromedp.CSS("#agentEmail"), agentEmail),
		chromedp.SendKeys(chromedp.CSS("#agentRelationship"), "son"),
		chromedp.SetUploadFiles(chromedp.CSS("#proof"), []string{file}))
	b.checkPage("portal form, agent part filled in")
	b.screenshot("portal-agent-form-390")
	b.run("submit", chromedp.Click(chromedp.CSS("#submit")), chromedp.WaitVisible(chromedp.CSS("#code")))
	if s := b.text("[role=status]"); !strings.Contains(s, "the person you act for") {
		t.Fatalf("after submitting: %q", s)
	}
	action := get(b, "read the form", chromedp.AttributeValue(chromedp.CSS("form"), "action"))
	id, _, _ := strings.Cut(strings.TrimPrefix(action.Value, "/api/portal/requests/"), ".")
	if len(h.mail(agentEmail)) != 0 {
		t.Fatal("the agent got the code")
	}
	b.run("enter the code the person received", chromedp.SendKeys(chromedp.CSS("#code"), h.code(sample.DemoEmail)),
		chromedp.Click(chromedp.CSS("#verify")), chromedp.WaitNotPresent(chromedp.CSS("#code")))
	if s := b.text("h1"); !strings.Contains(s, "confirmed") {
		t.Fatalf("after the code: %q", s)
	}
	final, _ := h.waitTerminal(id)
	if final.State != dsr.StateCompleted || final.Agent == nil || final.Agent.Name != agentName || final.Agent.Relationship != "son" ||
		final.Agent.Proof == nil || final.Agent.Proof.ContentType != "application/pdf" || final.Agent.Proof.Bytes != int64(len(testProof)) {
		t.Fatalf("final %s, agent %+v", final.State, final.Agent)
	}
	link, err := h.app.Console.LoginURL(h.front.URL, staff("Rita Reader", auth.RoleRead))
	if err != nil {
		t.Fatal(err)
	}
	b.run("open the request in the console", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("h1")),
		chromedp.Navigate(h.front.URL+"/api/console/requests/"+id), chromedp.WaitVisible(chromedp.CSS("#proof-link")))
	if s := b.text("#agent-name"); s != agentName {
		t.Errorf("the console shows the agent as %q", s)
	}
	b.checkPage("console request with an agent")
}
