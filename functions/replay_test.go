package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/sample"
)

func (h *harness) replay(body string) pipeline.ReplayReport {
	h.t.Helper()
	resp, b := h.do("POST", "/api/erasures/replay", body)
	if resp.StatusCode != 200 {
		h.t.Fatalf("replay %s: %d %s", body, resp.StatusCode, b)
	}
	var rep pipeline.ReplayReport
	if err := json.Unmarshal(b, &rep); err != nil {
		h.t.Fatal(err)
	}
	return rep
}

func (h *harness) restore(name string, content []byte) {
	h.t.Helper()
	bc := h.app.Account.Service.NewContainerClient(h.datasets).NewBlockBlobClient(name)
	if _, err := bc.UploadBuffer(context.Background(), content, nil); err != nil {
		h.t.Fatal(err)
	}
}

// TestReplayAfterRestore: after an erasure, restoring an old copy of the
// datasets brings her data back; the replay erases it again exactly as the
// erasure did, audits it, and a second replay changes nothing.
func TestReplayAfterRestore(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	before := h.snapshot()
	doc := h.submit(`{"type":"erasure","subject":{"email":"avery.morgan@contoso.example"}}`)
	h.approveWhenAsked(doc.ID)
	if done, _ := h.waitTerminal(doc.ID); done.State != dsr.StateCompleted {
		t.Fatalf("erasure: %s %+v", done.State, done.Error)
	}
	erased := h.snapshot()

	// Nothing to do before a restore.
	if rep := h.replay(`{"all":true}`); rep.Erasures != 1 || rep.SubjectsFound != 0 || rep.Deleted+rep.Masked != 0 {
		t.Fatalf("replay without a restore: %+v", rep)
	}

	// The contacts blob comes back from the backup: replaying contacts
	// deletes her row again, and only that.
	h.restore(sample.ContactsBlob, before[sample.ContactsBlob])
	rep := h.replay(`{"dataset":"contacts"}`)
	if rep.SubjectsFound != 1 || rep.Deleted != 1 || rep.Masked != 0 || len(rep.Failed) > 0 || strings.Join(rep.Datasets, ",") != "contacts" {
		t.Fatalf("replay of contacts: %+v", rep)
	}
	if got := h.snapshot(); !bytes.Equal(got[sample.ContactsBlob], erased[sample.ContactsBlob]) {
		t.Error("contacts after the replay differ from contacts after the erasure")
	}

	// Everything comes back: the replay of all datasets gives the erased
	// state byte for byte (the contact row through the tombstone's key too).
	for name, content := range before {
		h.restore(name, content)
	}
	rep = h.replay(`{"all":true,"limit":10}`)
	if rep.SubjectsFound != 1 || rep.Deleted == 0 || rep.Masked == 0 || len(rep.Failed) > 0 || rep.Next != "" {
		t.Fatalf("replay of all datasets: %+v", rep)
	}
	got := h.snapshot()
	for name := range before {
		if !bytes.Equal(got[name], erased[name]) {
			t.Errorf("%s after the replay differs from %s after the erasure", name, name)
		}
	}
	// Idempotent: nothing more to do.
	if rep := h.replay(`{"all":true}`); rep.SubjectsFound != 0 || rep.Deleted+rep.Masked != 0 {
		t.Errorf("second replay changed things: %+v", rep)
	}
	// Audited on the erasure's own trail, without identifiers.
	raw := h.auditRaw(doc.ID)
	if strings.Count(raw, `"event":"erasure.replayed"`) != 2 || !strings.Contains(raw, `"policy":"replay: delete"`) {
		t.Errorf("audit trail lacks the replays:\n%s", raw)
	}
	if found := leaks(raw); len(found) > 0 {
		t.Errorf("audit trail holds personal data: %v", found)
	}

	// Bad input changes nothing and says which field.
	for body, field := range map[string]string{
		`{}`:                                "dataset",
		`{"dataset":"contacts","all":true}`: "dataset",
		`{"dataset":"nope"}`:                "dataset",
		`{"all":true,"after":"x"}`:          "after",
		`{"all":true,"limit":5000}`:         "limit",
	} {
		resp, b := h.do("POST", "/api/erasures/replay", body)
		if resp.StatusCode != 422 || !strings.Contains(string(b), `"field":"`+field+`"`) {
			t.Errorf("%s: %d %s, want 422 naming %s", body, resp.StatusCode, b, field)
		}
	}
	if resp, _ := h.do("POST", "/api/erasures/replay", `{"all":true}`, "X-DSR-Test-Roles", "DSR.Approve"); resp.StatusCode != 403 {
		t.Errorf("replay as DSR.Approve: %d, want 403 (DSR.Admin only)", resp.StatusCode)
	}
}
