package functions_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sample"
)

type restrictionAnswer struct {
	Restricted bool    `json:"restricted"`
	Since      *string `json:"since"`
	RequestID  string  `json:"requestId"`
	LiftedAt   *string `json:"liftedAt"`
	LiftedBy   string  `json:"liftedBy"`
}

func (h *harness) restricted(query string) restrictionAnswer {
	h.t.Helper()
	resp, b := h.do("GET", "/api/restrictions?"+query, "")
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("restrictions?%s: %d %s", query, resp.StatusCode, b)
	}
	var a restrictionAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		h.t.Fatal(err)
	}
	return a
}

func TestRestrictionAndLift(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	before := h.snapshot()
	// Made by email only: her records give her phone and contact id, which
	// find the restriction too.
	doc := h.submit(`{"type":"restriction","subject":{"email":"avery.morgan@contoso.example"}}`)
	done, _ := h.waitTerminal(doc.ID)
	if done.State != dsr.StateCompleted || done.Restriction == nil || done.Restriction.Lifted {
		t.Fatalf("restriction: %s %+v %+v", done.State, done.Error, done.Restriction)
	}
	a := h.restricted("email=" + url.QueryEscape(" AVERY.Morgan@contoso.example"))
	if !a.Restricted || a.Since == nil || a.RequestID != doc.ID {
		t.Fatalf("registry after restriction: %+v", a)
	}
	if a := h.restricted("id=" + url.QueryEscape("contactId:"+sample.DemoContactID)); !a.Restricted {
		t.Fatalf("registry by id: %+v", a)
	}
	if a := h.restricted("phone=" + url.QueryEscape("+1 425 555 0199")); !a.Restricted || a.RequestID != doc.ID {
		t.Fatalf("registry by the phone in her contact row: %+v", a)
	}
	if a := h.restricted("phone=" + url.QueryEscape("+1 425 555 0198")); a.Restricted {
		t.Fatal("a phone one digit off is restricted")
	}
	if a := h.restricted("email=someone.else@contoso.example"); a.Restricted {
		t.Fatal("another person is restricted")
	}
	// Her contact carries the flag; every other record is byte-identical.
	after := h.snapshot()
	oldLines, newLines := rawRecords(before[sample.ContactsBlob]), rawRecords(after[sample.ContactsBlob])
	changed := 0
	for i := range oldLines {
		if bytes.Equal(oldLines[i], newLines[i]) {
			continue
		}
		changed++
		if !bytes.Contains(newLines[i], []byte(sample.DemoContactID)) || !bytes.Contains(newLines[i], []byte(`"dsr_restricted":true`)) {
			t.Errorf("changed contact line: %s", newLines[i])
		}
	}
	if changed != 1 {
		t.Fatalf("%d contact lines changed, want 1", changed)
	}

	// Lifted by phone alone: every identifier of the restriction is lifted.
	lift := h.submit(`{"type":"restriction","lift":true,"subject":{"phone":"+1 425 555 0199"}}`)
	lifted, _ := h.waitTerminal(lift.ID)
	if lifted.State != dsr.StateCompleted || lifted.Restriction == nil || !lifted.Restriction.Lifted || !strings.Contains(lifted.Restriction.Notice, "18(3)") {
		t.Fatalf("lift: %s %+v", lifted.State, lifted.Restriction)
	}
	for _, q := range []string{"email=avery.morgan@contoso.example", "phone=" + url.QueryEscape("+14255550199"), "id=" + url.QueryEscape("contactId:"+sample.DemoContactID)} {
		if a := h.restricted(q); a.Restricted || a.LiftedAt == nil || a.RequestID != doc.ID || a.LiftedBy != lift.ID {
			t.Fatalf("registry by %s after lifting: %+v (want made by %s, lifted by %s)", q, a, doc.ID, lift.ID)
		}
	}
	if !bytes.Contains(h.snapshot()[sample.ContactsBlob], []byte(`"dsr_restricted":false`)) {
		t.Fatal("lifting did not clear the flag")
	}
	if raw := h.auditRaw(lift.ID); !strings.Contains(raw, `"action":"restriction lifted"`) || len(leaks(raw)) > 0 {
		t.Fatalf("lift audit: %s", raw)
	}
}
