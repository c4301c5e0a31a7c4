package functions_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/dsr-functions/dsr/shared/dsr"
)

// The letter of a completed erasure says, per place, what was deleted,
// masked and kept (with the ground and until when), and her rights; it is
// refused before the request ends; an access export carries its own. It
// reads well in a browser on a phone (rendered in Chromium; the screenshot
// is docs/letter-erasure.png).
func TestLetterOfAnErasure(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	doc := h.submit(demoErasure)
	h.waitState(doc.ID, dsr.StateAwaitingApproval)
	if resp, b := h.do("GET", "/api/requests/"+doc.ID+"/letter", ""); resp.StatusCode != 409 || !strings.Contains(string(b), "not-answered") {
		t.Fatalf("letter before the end: %d %s", resp.StatusCode, b)
	}
	if resp, b := h.do("POST", "/api/requests/"+doc.ID+"/approve", ""); resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, b)
	}
	done, _ := h.waitTerminal(doc.ID)
	if done.State != dsr.StateCompleted {
		t.Fatalf("erasure ended %s", done.State)
	}
	resp, b := h.do("GET", "/api/requests/"+doc.ID+"/letter", "")
	page := string(b)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("letter: %d %v", resp.StatusCode, resp.Header)
	}
	var deleted, kept bool
	for _, r := range done.Erasure.Sources {
		if r.Deleted > 0 {
			deleted = true
		}
		if r.Retained > 0 {
			kept = true
			if !strings.Contains(page, r.Ground) {
				t.Errorf("the letter does not say why %s was kept (%q)", r.Source, r.Ground)
			}
		}
	}
	for want, needed := range map[string]bool{
		"erase the personal data we hold about you": true,
		"We deleted":            deleted,
		"We kept":               kept,
		"supervisory authority": true,
		"Fabrikam Marketing Ltd (newsletter partner)": true,
		"79 GDPR": true,
		doc.ID:    true,
	} {
		if needed && !strings.Contains(page, want) {
			t.Errorf("the letter does not say %q", want)
		}
	}
	if strings.Contains(strings.ToLower(page), "avery") || strings.Contains(page, "<script") {
		t.Error("the letter names the person or carries script")
	}

	// In a browser at phone width: nothing wider than the screen.
	file := filepath.Join(t.TempDir(), "letter.html")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	br := newBrowser(t, 390, 844)
	br.run("open the letter", chromedp.Navigate("file://"+file), chromedp.WaitVisible(chromedp.CSS("h1")))
	br.checkPage("letter")
	if s := br.text("h1"); s != "Erasing your personal data" {
		t.Errorf("heading %q", s)
	}
	br.screenshot("docs-letter-erasure")

	// An access export carries the letter of what it holds.
	access := h.submit(demoAccess)
	_, exp := h.waitTerminal(access.ID)
	_, zip, _ := download(t, exp.URL)
	letter := string(readZip(t, zip)["letter.html"])
	if !strings.Contains(letter, "give you a copy of the personal data") || !strings.Contains(letter, "Why we use it") {
		t.Errorf("the export's letter:\n%s", letter)
	}
}
