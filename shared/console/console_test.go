package console

import (
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/store"
)

func TestLoginTokensAreOneTimeAndExpire(t *testing.T) {
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	s := newSessions(func() time.Time { return now })
	p := auth.Principal{Kind: "user", ID: "u1", Roles: []auth.Role{auth.RoleRead}}
	tok, err := s.issueLogin(p)
	if err != nil {
		t.Fatal(err)
	}
	sid, err := s.redeem(tok)
	if err != nil || s.lookup(sid) == nil || s.lookup(sid).principal.ID != "u1" {
		t.Fatalf("redeem: %v", err)
	}
	if _, err := s.redeem(tok); err == nil {
		t.Error("a login token worked twice")
	}
	late, _ := s.issueLogin(p)
	now = now.Add(LoginTokenTTL)
	if _, err := s.redeem(late); err == nil {
		t.Error("an expired login token worked")
	}
	if s.lookup(sid) != nil {
		t.Error("a session outlived SessionTTL") // LoginTokenTTL > SessionTTL
	}
	s.end("nothing")
	if s.lookup("") != nil || s.lookup("made-up") != nil {
		t.Error("an unknown session id was found")
	}
}

func TestCSRFCheck(t *testing.T) {
	c := &Console{key: []byte("k")}
	v := &visitor{principal: &auth.Principal{Kind: "user", ID: "u1"}}
	other := &visitor{principal: &auth.Principal{Kind: "user", ID: "u2"}}
	post := func(token string, header ...string) *http.Request {
		r := httptest.NewRequest("POST", "http://app.example/api/console/requests/x/approve", strings.NewReader(url.Values{"csrf": {token}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		return r
	}
	good := c.csrfToken(v)
	if good == c.csrfToken(other) {
		t.Fatal("two people share a CSRF token")
	}
	if !c.checkCSRF(post(good), v) || !c.checkCSRF(post(good, "Sec-Fetch-Site", "same-origin", "Origin", "http://app.example"), v) {
		t.Error("the page's own token was refused")
	}
	for name, r := range map[string]*http.Request{
		"empty":        post(""),
		"another's":    post(c.csrfToken(other)),
		"cross-site":   post(good, "Sec-Fetch-Site", "cross-site"),
		"same-site":    post(good, "Sec-Fetch-Site", "same-site"),
		"other origin": post(good, "Origin", "https://evil.example"),
	} {
		if c.checkCSRF(r, v) {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestStats(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC) // a Friday
	day := 24 * time.Hour
	items := []store.Summary{
		{Type: dsr.TypeAccess, State: dsr.StateCompleted, ReceivedAt: now.Add(-10 * day), UpdatedAt: now.Add(-8 * day), DueAt: now.Add(20 * day)},
		{Type: dsr.TypeAccess, State: dsr.StateCompleted, ReceivedAt: now.Add(-3 * day), UpdatedAt: now.Add(-2 * day), DueAt: now.Add(27 * day)},
		{Type: dsr.TypeErasure, State: dsr.StateAwaitingApproval, ReceivedAt: now.Add(-35 * day), DueAt: now.Add(-4 * day)},
		{Type: dsr.TypeErasure, State: dsr.StateInProgress, ReceivedAt: now.Add(-25 * day), DueAt: now.Add(5 * day)},
		{Type: dsr.TypeRestriction, State: dsr.StateReceived, ReceivedAt: now.Add(-200 * day), DueAt: now.Add(30 * day)},
	}
	s := computeStats(items, now)
	if s.Open != 3 {
		t.Errorf("open %d", s.Open)
	}
	last := s.Weeks[len(s.Weeks)-1]
	if !last.Start.Equal(time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)) || last.Opened[dsr.TypeAccess] != 1 { // received 1 Dec
		t.Errorf("last week %v opened %v", last.Start, last.Opened)
	}
	prev := s.Weeks[len(s.Weeks)-2]
	opened, closed := 0, 0
	for _, w := range s.Weeks {
		for _, n := range w.Opened {
			opened += n
		}
		for _, n := range w.Closed {
			closed += n
		}
	}
	if opened != 4 || closed != 2 { // the 200-day-old request is before the charts' weeks
		t.Errorf("opened %d closed %d (prev week %v)", opened, closed, prev.Opened)
	}
	want := []int{1, 1, 0, 0, 1} // overdue, 0–7, 8–14, 15–21, 22+
	for i, a := range s.Ages {
		if a.Count != want[i] {
			t.Errorf("age %s: %d, want %d", a.Label, a.Count, want[i])
		}
	}
	if len(s.Median) != 1 || s.Median[0].Type != dsr.TypeAccess || s.Median[0].Median != 36*time.Hour {
		t.Errorf("median %+v", s.Median)
	}
	svg := string(weeklyChart("Opened", s.Weeks, func(w weekRow) map[dsr.Type]int { return w.Opened }))
	if strings.Count(svg, "<rect") < 4 || strings.Contains(svg, "style=") {
		t.Errorf("chart %s", svg)
	}
}

func TestPlan(t *testing.T) {
	retain := &sources.Dataset{Name: "log", SystemLog: true}
	mask := &sources.Dataset{Name: "cases", Erasure: &sources.Erasure{Action: sources.EraseMask, Mask: []sources.MaskRule{{Field: "body", Strategy: sources.MaskRedact}}}}
	plain := &sources.Dataset{Name: "contacts", Rectifiable: true, RestrictionField: "restricted"}
	for _, tc := range []struct {
		t    dsr.Type
		d    *sources.Dataset
		verb string
		has  string
	}{
		{dsr.TypeErasure, plain, "Delete", "deleted"},
		{dsr.TypeErasure, mask, "Mask", "body (redact)"},
		{dsr.TypeErasure, retain, "Retain", "ground:"},
		{dsr.TypeRectification, retain, "Not rectifiable", "log"},
		{dsr.TypeRectification, mask, "Not rectifiable", "not marked"},
		{dsr.TypeRectification, plain, "Rectify", ""},
		{dsr.TypeRestriction, plain, "Restrict", "restricted"},
		{dsr.TypeAccess, plain, "Export", ""},
		{dsr.TypeErasure, nil, "Unknown", ""},
	} {
		got := plan(tc.t, tc.d, false)
		if got.Verb != tc.verb || !strings.Contains(got.Detail, tc.has) {
			t.Errorf("%s of %v: %+v", tc.t, tc.d, got)
		}
	}
}

// The stylesheet's text colours meet WCAG AA (4.5:1) on the backgrounds
// they are used on.
func TestContrast(t *testing.T) {
	css, err := assetFS.ReadFile("assets/console.css")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`--([a-z-]+):\s*(#[0-9a-fA-F]{6})`).FindAllStringSubmatch(string(css), -1) {
		vars[m[1]] = m[2]
	}
	color := func(s string) string {
		if strings.HasPrefix(s, "--") {
			v, ok := vars[s[2:]]
			if !ok {
				t.Fatalf("no colour %s in console.css", s)
			}
			return v
		}
		return s
	}
	lum := func(hex string) float64 {
		var rgb [3]float64
		for i := range 3 {
			n, _ := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
			c := float64(n) / 255
			if c <= 0.03928 {
				rgb[i] = c / 12.92
			} else {
				rgb[i] = math.Pow((c+0.055)/1.055, 2.4)
			}
		}
		return 0.2126*rgb[0] + 0.7152*rgb[1] + 0.0722*rgb[2]
	}
	for _, pair := range [][2]string{
		{"--fg", "--bg"}, {"--muted", "--bg"}, {"--accent", "--bg"}, {"--late", "--late-bg"}, {"--soon", "--soon-bg"},
		{"--ok", "--ok-bg"}, {"--accent", "#e9f1f9"}, {"--accent", "#eef4fa"}, {"#ffffff", "#14375a"}, {"#d7e3f0", "#14375a"},
		{"#ffffff", "--accent"}, {"--fg", "#f2f2f2"}, {"--late", "--bg"}, {"--ok", "--bg"},
	} {
		a, b := lum(color(pair[0])), lum(color(pair[1]))
		if a < b {
			a, b = b, a
		}
		if ratio := (a + 0.05) / (b + 0.05); ratio < 4.5 {
			t.Errorf("%s on %s: contrast %.2f, want at least 4.5", pair[0], pair[1], ratio)
		}
	} // Chart bars are graphical objects: 3:1 against the white page.
	for typ, c := range typeColors {
		if ratio := 1.05 / (lum(c) + 0.05); ratio < 3 {
			t.Errorf("chart colour of %s: contrast %.2f, want at least 3", typ, ratio)
		}
	}
}
