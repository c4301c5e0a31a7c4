package functions_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sample"
)

func TestRectificationEndToEnd(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	before := h.snapshot()
	doc := h.submit(`{"type":"rectification",
		"subject":{"email":"avery.morgan@contoso.example","phone":"+1 425 555 0199","name":"Avery Morgan"},
		"corrections":{"email":"Avery.Quinn@contoso.example","phone":"+1 (425) 555-0123","name":"Avery Quinn"}}`)
	if got := h.waitState(doc.ID, dsr.StateAwaitingApproval); got.State != dsr.StateAwaitingApproval {
		t.Fatalf("rectification did not wait for approval: %s", got.State)
	}
	if resp, b := h.do("POST", "/api/requests/"+doc.ID+"/approve", ""); resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, b)
	}
	done, _ := h.waitTerminal(doc.ID)
	if done.State != dsr.StateCompleted || done.Rectification == nil || done.Verification == nil || done.Verification.Residual != 0 {
		t.Fatalf("rectification: %s %+v %+v %+v\n%s", done.State, done.Error, done.Rectification, done.Verification, h.logs.String())
	}
	status := map[string]dsr.RectificationSource{}
	for _, s := range done.Rectification.Sources {
		status[s.Source] = s
	}
	if s := status["contacts"]; s.Status != "rectified" || s.Rectified != 1 {
		t.Errorf("contacts: %+v", s)
	}
	if s := status["surveys"]; s.Status != "rectified" || s.Rectified != 2 {
		t.Errorf("surveys: %+v (two responses carry her email, one carries none)", s)
	}
	if s := status["activity-log"]; s.Status != "not rectifiable: system-generated log" || s.Rectified != 0 {
		t.Errorf("activity-log: %+v", s)
	}
	if s := status["cases"]; s.Status != "not rectifiable: not marked rectifiable" {
		t.Errorf("cases: %+v", s)
	}

	after := h.snapshot()
	for _, name := range []string{sample.CasesBlob, sample.AgentsBlob, sample.ActivityBlob} {
		if !bytes.Equal(before[name], after[name]) {
			t.Errorf("%s changed, but it is not rectifiable", name)
		}
	}
	oldLines, newLines := rawRecords(before[sample.ContactsBlob]), rawRecords(after[sample.ContactsBlob])
	if len(oldLines) != len(newLines) {
		t.Fatalf("contacts: %d lines became %d", len(oldLines), len(newLines))
	}
	for i := range oldLines {
		if bytes.Equal(oldLines[i], newLines[i]) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(newLines[i], &m); err != nil || m["contactid"] != sample.DemoContactID {
			t.Fatalf("contacts line %d changed and is not hers", i)
		}
		if m["emailaddress1"] != "avery.quinn@contoso.example" || m["telephone1"] != "+14255550123" || m["fullname"] != "Avery Quinn" {
			t.Errorf("her corrected contact: %v", m)
		}
	}

	// The corrected address now finds her.
	access := h.submit(`{"type":"discovery","subject":{"email":"avery.quinn@contoso.example"}}`)
	found, _ := h.waitTerminal(access.ID)
	for _, s := range found.Discovery.Sources {
		if s.Source == "contacts" && s.Records != 1 {
			t.Errorf("the corrected email finds %d contacts", s.Records)
		}
	}
}
