package functions_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sample"
)

// The console in a real browser: headless Chromium (Debian's chromium,
// which `make test` installs when missing) driven over the DevTools
// protocol. Every page's console errors, exceptions and CSP violations
// fail the test; screenshots go to the artifacts folder
// (DSR_TEST_ARTIFACTS, default .local/test-artifacts) and, with
// DSR_UPDATE_SCREENSHOTS=1, to docs/.

// chromiumPath finds the browser.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DSR_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: install Debian's chromium (make test does) or set DSR_CHROMIUM")
	return ""
}

// browser is one headless Chromium tab and what its pages reported.
type browser struct {
	t      *testing.T
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

// newBrowser starts Chromium with a window of width × height CSS pixels.
func newBrowser(t *testing.T, width, height int) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(width, height),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx}
	// Listen starts the browser and opens the tab; chromedp enables the
	// Runtime and Log domains, whose events report script errors, console
	// errors and CSP violations.
	err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			b.report("exception: " + e.ExceptionDetails.Text)
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
				b.report("console." + string(e.Type))
			}
		case *log.EventEntryAdded:
			if e.Entry.Level == log.EntryLevelError {
				b.report(fmt.Sprintf("%s: %s (%s)", e.Entry.Source, e.Entry.Text, e.Entry.URL))
			}
		}
	})
	if err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	// A desktop window has a minimum width; the viewport of a phone is
	// emulated, as the browser's device mode does.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("viewport: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, e := range b.errors {
			t.Errorf("browser reported an error: %s", e)
		}
	})
	return b
}

func (b *browser) report(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errors = append(b.errors, s)
}

// run runs actions with a time limit.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// get runs one action that returns a value, with a time limit.
func get[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// text returns the text of the first element matching the CSS selector.
func (b *browser) text(sel string) string {
	b.t.Helper()
	return get(b, "read "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// eval evaluates a JavaScript expression in the page (DevTools, not the
// page's own script: the console has none, and its CSP forbids it).
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	return get(b, "evaluate "+expr, chromedp.Evaluate[T](expr))
}

// waitState reloads the request page until its state reads want.
func (b *browser) waitState(want string) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		// A page that is still being replaced by the reload has no
		// node to read yet: read again.
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#state")))
		cancel()
		if err != nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("state %q after 30 s, want %q", got, want)
		}
		time.Sleep(200 * time.Millisecond)
		b.run("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#state")))
	}
}

// screenshot saves the full page as name.png among the artifacts (and in
// docs/ when asked to).
func (b *browser) screenshot(name string) {
	b.t.Helper()
	png := get(b, "screenshot "+name, chromedp.FullScreenshot(100))
	dir := os.Getenv("DSR_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", ".local", "test-artifacts")
	}
	dir = filepath.Join(dir, "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	if os.Getenv("DSR_UPDATE_SCREENSHOTS") == "1" && strings.HasPrefix(name, "docs-") {
		if err := os.WriteFile(filepath.Join("..", "docs", strings.TrimPrefix(name, "docs-")+".png"), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
}

// checkPage checks what every page must be: each form control labelled,
// nothing wider than the window.
func (b *browser) checkPage(what string) {
	b.t.Helper()
	unlabelled := eval[[]string](b, `[...document.querySelectorAll('input:not([type=hidden]),select,textarea')]
		.filter(e => !(e.labels && e.labels.length)).map(e => e.id || e.name)`)
	if len(unlabelled) > 0 {
		b.t.Errorf("%s: controls without a label: %v", what, unlabelled)
	}
	if eval[bool](b, `document.documentElement.scrollWidth > window.innerWidth + 1`) {
		b.t.Errorf("%s: the page is %d px wide in a %d px window", what,
			eval[int](b, `document.documentElement.scrollWidth`), eval[int](b, `window.innerWidth`))
	}
}

// The whole erasure flow through the console: submit, wait for approval
// with the planned actions shown, approve, completed, audit visible.
func TestConsoleBrowserErasureFlow(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	link, err := h.app.Console.LoginURL(h.front.URL, staff("Ada Admin", auth.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, 1280, 900)
	b.run("sign in", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#queue-summary")))
	b.checkPage("work queue")

	b.run("open the form", chromedp.Click(chromedp.CSS(`a[href="/api/console/new"]`)), chromedp.WaitVisible(chromedp.CSS("#email")))
	b.checkPage("new request")
	b.run("submit an erasure",
		chromedp.SetValue(chromedp.CSS("#type"), "erasure"),
		chromedp.SendKeys(chromedp.CSS("#email"), sample.DemoEmail),
		chromedp.SendKeys(chromedp.CSS("#note"), "asked by email"),
		chromedp.Click(chromedp.CSS("#submit")),
		chromedp.WaitVisible(chromedp.CSS("#state")))
	if s := b.text("main .alert"); !strings.Contains(s, "submitted") {
		t.Errorf("after submitting: %q", s)
	}
	b.waitState("awaiting approval")
	location := get(b, "read the address", chromedp.Location())
	id := location[strings.LastIndex(location, "/")+1:]
	if i := strings.Index(id, "?"); i >= 0 {
		id = id[:i]
	}
	plan := b.text("table.plan")
	for _, want := range []string{"Delete", "Mask", "Retain", "description (redact)"} {
		if !strings.Contains(plan, want) {
			t.Errorf("planned actions lack %q:\n%s", want, plan)
		}
	}
	b.checkPage("request awaiting approval")
	b.screenshot("request-awaiting-approval-1280")
	// More work in the queue: one overdue, one due soon, one waiting.
	for _, body := range []string{
		`{"type":"rectification","subject":{"email":"noah.fischer@example.org"},"corrections":{"email":"noah@example.org"},"receivedAt":"` + time.Now().AddDate(0, -1, -3).UTC().Format(time.RFC3339) + `"}`,
		`{"type":"erasure","subject":{"phone":"+44 20 7946 0958"},"receivedAt":"` + time.Now().AddDate(0, 0, -26).UTC().Format(time.RFC3339) + `"}`,
		`{"type":"rectification","subject":{"email":"mia.jensen@example.org","name":"Mia Jenson"},"corrections":{"name":"Mia Jensen"}}`,
	} {
		h.waitState(h.submit(body).ID, dsr.StateAwaitingApproval)
	}
	b.run("back to the queue", chromedp.Click(chromedp.CSS(`a[href="/api/console/"]`)), chromedp.WaitVisible(chromedp.CSS("table.queue")))
	if q := b.text("table.queue"); !strings.Contains(q, id) || !strings.Contains(q, "awaiting approval") {
		t.Errorf("work queue lacks %s awaiting approval:\n%s", id, q)
	}
	b.screenshot("docs-console-queue")
	b.run("open the request", chromedp.Click(chromedp.CSS(`a[href="/api/console/requests/`+id+`"]`)), chromedp.WaitVisible(chromedp.CSS("#approve")))
	b.screenshot("docs-console-approval")

	b.run("approve", chromedp.Click(chromedp.CSS("#approve")), chromedp.WaitVisible(chromedp.CSS("#state")))
	b.waitState("completed")
	if s := b.text("#h-erasure"); s == "" {
		t.Error("no erasure report")
	}
	audit := b.text("#audit")
	for _, want := range []string{"approved", "record"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit trail lacks %q:\n%.2000s", want, audit)
		}
	}
	if doc, _ := h.get(id); doc.State != dsr.StateCompleted || doc.Erasure == nil {
		t.Errorf("request after the console's approval: %s", doc.State)
	}
	b.run("charts", chromedp.Click(chromedp.CSS(`a[href="/api/console/charts"]`)), chromedp.WaitVisible(chromedp.CSS("svg.chart")))
	if eval[int](b, `document.querySelectorAll('svg.chart rect').length`) == 0 {
		t.Error("the charts draw nothing")
	}
	b.checkPage("charts")
	b.screenshot("charts-1280")
}

// A reject with its reason, on a phone-sized screen: the person's notice
// is previewed and recorded.
func TestConsoleBrowserRejectOnAPhone(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	doc := h.submit(`{"type":"erasure","subject":{"email":"` + sample.DemoEmail + `"}}`)
	h.waitState(doc.ID, dsr.StateAwaitingApproval)
	link, err := h.app.Console.LoginURL(h.front.URL, staff("Alex Approver", auth.RoleApprove, auth.RoleRead))
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, 390, 844)
	b.run("sign in", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#queue-summary")))
	b.checkPage("work queue at 390 px")
	b.run("open the request", chromedp.Navigate(h.front.URL+"/api/console/requests/"+doc.ID), chromedp.WaitVisible(chromedp.CSS("#reject")))
	if s := b.text(".notice-preview"); !strings.Contains(s, "supervisory authority") {
		t.Errorf("notice preview %q", s)
	}
	b.checkPage("request at 390 px")
	b.screenshot("request-awaiting-approval-390")
	b.run("reject",
		chromedp.SendKeys(chromedp.CSS("#reject-reason"), "We hold no data we may erase beyond what the law requires us to keep."),
		chromedp.Click(chromedp.CSS("#reject")),
		chromedp.WaitVisible(chromedp.CSS("#h-rej")))
	b.waitState("rejected")
	if s := b.text("#h-rej + p"); !strings.Contains(s, "law requires") {
		t.Errorf("rejection shown as %q", s)
	}
	got, _ := h.get(doc.ID)
	if got.State != dsr.StateRejected || got.Rejection == nil || !strings.Contains(got.Rejection.Reason, "law requires") {
		t.Errorf("request after reject: %+v", got.Rejection)
	}
}

// A DSR.Read user sees the request but no decision; the keyboard reaches
// every link and control in order.
func TestConsoleBrowserReaderCannotDecide(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	doc := h.submit(`{"type":"erasure","subject":{"email":"` + sample.DemoEmail + `"}}`)
	h.waitState(doc.ID, dsr.StateAwaitingApproval)
	link, err := h.app.Console.LoginURL(h.front.URL, staff("Rita Reader", auth.RoleRead))
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, 1280, 900)
	b.run("sign in", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#queue-summary")))
	b.run("open the request", chromedp.Navigate(h.front.URL+"/api/console/requests/"+doc.ID), chromedp.WaitVisible(chromedp.CSS("#state")))
	if controls := eval[int](b, `document.querySelectorAll('#approve, #reject, #extend, #cancel, #mint-link').length`); controls != 0 {
		t.Errorf("a DSR.Read user is shown %d decision controls", controls)
	}
	if s := b.text("table.plan"); !strings.Contains(s, "Delete") {
		t.Errorf("the reader does not see the planned actions: %q", s)
	}
	// Tab moves focus through the page from the skip link on.
	b.run("tab", chromedp.KeyEvent("\t"))
	if first := eval[string](b, `document.activeElement.textContent.trim()`); first != "Skip to content" {
		t.Errorf("first Tab stop %q, want the skip link", first)
	}
}
