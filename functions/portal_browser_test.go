package functions_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sample"
)

// A person on a phone asks for their data on the portal: the form, the
// code from the email (the outbox), the confirmation; the request then
// runs to completion. No script, no console errors, nothing wider than the
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
}
