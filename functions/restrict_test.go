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
	doc := h.submit(`{"type":"restriction","subject":{"email":"avery.morgan@contoso.example","ids":{"contactId":"` + sample.DemoContactID + `"}}}`)
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
	if a := h.restricted("phone=" + url.QueryEscape("+1 425 555 0199")); a.Restricted {
		t.Fatal("an identifier the request did not give is restricted")
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

	lift := h.submit(`{"type":"restriction","lift":true,"subject":{"email":"avery.morgan@contoso.example","ids":{"contactId":"` + sample.DemoContactID + `"}}}`)
	lifted, _ := h.waitTerminal(lift.ID)
	if lifted.State != dsr.StateCompleted || lifted.Restriction == nil || !lifted.Restriction.Lifted || !strings.Contains(lifted.Restriction.Notice, "18(3)") {
		t.Fatalf("lift: %s %+v", lifted.State, lifted.Restriction)
	}
	if a := h.restricted("email=avery.morgan@contoso.example"); a.Restricted || a.LiftedAt == nil || a.RequestID != doc.ID {
		t.Fatalf("registry after lifting: %+v", a)
	}
	if !bytes.Contains(h.snapshot()[sample.ContactsBlob], []byte(`"dsr_restricted":false`)) {
		t.Fatal("lifting did not clear the flag")
	}
	if raw := h.auditRaw(lift.ID); !strings.Contains(raw, `"action":"restriction lifted"`) || len(leaks(raw)) > 0 {
		t.Fatalf("lift audit: %s", raw)
	}
}
