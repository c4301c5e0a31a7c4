package functions_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/sources"
)

const demoErasure = `{"type":"erasure","subject":{"email":"avery.morgan@contoso.example","ids":{"contactId":"` + sample.DemoContactID + `"}}}`

// snapshot downloads every sample dataset blob.
func (h *harness) snapshot() map[string][]byte {
	h.t.Helper()
	out := map[string][]byte{}
	for _, f := range sample.Files() {
		resp, err := h.app.Account.Service.NewContainerClient(h.datasets).NewBlobClient(f.Name).DownloadStream(context.Background(), nil)
		if err != nil {
			h.t.Fatal(err)
		}
		out[f.Name], _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	return out
}

// rawRecords splits NDJSON or CSV bytes into raw records, each with its line
// ending (a CSV record ends at a newline outside quotes).
func rawRecords(b []byte) [][]byte {
	var out [][]byte
	start, quotes := 0, 0
	for i, c := range b {
		switch c {
		case '"':
			quotes++
		case '\n':
			if quotes%2 == 0 {
				out = append(out, b[start:i+1])
				start, quotes = i+1, 0
			}
		}
	}
	if start < len(b) {
		out = append(out, b[start:])
	}
	return out
}

func csvCells(t *testing.T, raw []byte) []string {
	t.Helper()
	rec, err := csv.NewReader(bytes.NewReader(raw)).Read()
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestErasureEndToEnd(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	before := h.snapshot()
	doc := h.submit(demoErasure)
	waiting := h.waitState(doc.ID, dsr.StateAwaitingApproval)
	if waiting.State != dsr.StateAwaitingApproval || waiting.Discovery == nil || waiting.Discovery.TotalRecords == 0 {
		t.Fatalf("erasure did not stop for approval after discovery: %+v", waiting)
	}
	// Nothing changes before a person approves.
	if now := h.snapshot(); !equalSnapshots(before, now) {
		t.Fatal("datasets changed before approval")
	}
	if resp, b := h.do("POST", "/api/requests/"+doc.ID+"/approve", ""); resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, b)
	}
	done, _ := h.waitTerminal(doc.ID)
	if done.State != dsr.StateCompleted {
		t.Fatalf("state %s error %+v\n%s", done.State, done.Error, h.logs.String())
	}
	results := map[string]dsr.ErasureResult{}
	for _, r := range done.Erasure.Sources {
		results[r.Source] = r
	}
	demo := sample.Demo(h.size)
	want := h.datasetCounts(demo.RecordsWithoutPhone)
	if r := results["contacts"]; r.Deleted != int64(want["contacts"]) || r.Action != "delete" {
		t.Errorf("contacts: %+v", r)
	}
	if r := results["surveys"]; r.Deleted != int64(want["surveys"]) {
		t.Errorf("surveys: %+v", r)
	}
	if r := results["cases"]; r.Masked != int64(want["cases"]) || r.Action != "mask" {
		t.Errorf("cases: %+v", r)
	}
	if r := results["activity-log"]; r.Retained != int64(want["activity-log"]) || r.Action != "retain" || !strings.Contains(r.Ground, "system-generated log") || r.LegalBasis == "" {
		t.Errorf("activity-log: %+v", r)
	}
	if done.Verification == nil || done.Verification.Residual != 0 {
		t.Fatalf("verification: %+v", done.Verification)
	}

	// Byte-level: only the subject's records changed, exactly as configured.
	after := h.snapshot()
	for _, name := range []string{sample.AgentsBlob, sample.ActivityBlob} {
		if !bytes.Equal(before[name], after[name]) {
			t.Errorf("%s changed; it must be kept as it was", name)
		}
	}
	expectRemoved := func(name, field string, hers func(map[string]any) bool) {
		var kept [][]byte
		removed := 0
		for _, line := range rawRecords(before[name]) {
			var m map[string]any
			if json.Unmarshal(line, &m) == nil && hers(m) {
				removed++
				continue
			}
			kept = append(kept, line)
		}
		if removed == 0 {
			t.Fatalf("%s: the test found none of her records", name)
		}
		if got := after[name]; !bytes.Equal(got, bytes.Join(kept, nil)) {
			t.Errorf("%s: after erasure is not exactly the old content without her %d records", name, removed)
		}
	}
	expectRemoved(sample.ContactsBlob, "contactid", func(m map[string]any) bool { return m["contactid"] == sample.DemoContactID })
	herCases := map[string]bool{}
	oldRows, newRows := rawRecords(before[sample.CasesBlob]), rawRecords(after[sample.CasesBlob])
	if len(oldRows) != len(newRows) {
		t.Fatalf("cases: %d rows became %d; masking must keep rows", len(oldRows), len(newRows))
	}
	header := csvCells(t, oldRows[0])
	changed, mentions := 0, 0
	for i := range oldRows {
		if bytes.Equal(oldRows[i], newRows[i]) {
			continue
		}
		changed++
		o, n := csvCells(t, oldRows[i]), csvCells(t, newRows[i])
		own := slices.Contains(o, sample.DemoContactID)
		for j, col := range header {
			if col == "description" {
				switch {
				case own && n[j] != "[redacted: data subject erasure]":
					t.Errorf("cases row %d (hers) description = %q", i, n[j])
				case !own:
					// Another customer's case that mentions her: only the
					// mention goes.
					mentions++
					if want := strings.ReplaceAll(o[j], sample.DemoEmail, "[redacted]"); n[j] != want || n[j] == o[j] {
						t.Errorf("cases row %d (mentions her) description = %q, want %q", i, n[j], want)
					}
				}
				continue
			}
			if o[j] != n[j] {
				t.Errorf("cases row %d: column %s changed", i, col)
			}
		}
		if own {
			herCases[o[0]] = true
		}
	}
	if changed != want["cases"] || mentions != 1 {
		t.Errorf("cases: %d rows changed (%d mentions), want %d (1 mention)", changed, mentions, want["cases"])
	}
	expectRemoved(sample.SurveysBlob, "incidentid", func(m map[string]any) bool {
		id, _ := m["incidentid"].(string)
		email, _ := m["respondentemail"].(string)
		return herCases[id] || strings.EqualFold(strings.TrimSpace(email), sample.DemoEmail)
	})

	// Verification counts what was kept as the erasure report says.
	if v := done.Verification; v.Retained != results["activity-log"].Retained || v.Masked != int64(len(herCases)) {
		t.Errorf("verification retained %d, masked %d; the erasure retained %d and masked %d of her own cases",
			v.Retained, v.Masked, results["activity-log"].Retained, len(herCases))
	}

	// A later access request, by any of her identifiers, finds exactly what
	// the erasure kept (through its tombstone: her contact row is gone) and
	// says why it is kept.
	// Her phone was not in the erasure request, but in her deleted contact
	// row: the tombstone is filed under it too. By phone, the call note
	// that mentions it (a system log, kept anyway) comes along.
	withPhone := sample.Demo(h.size).Records[sample.ActivityBlob]
	for _, tc := range []struct {
		body     string
		activity int64
	}{
		{demoAccess, results["activity-log"].Retained},
		{`{"type":"access","subject":{"ids":{"contactId":"` + sample.DemoContactID + `"}}}`, results["activity-log"].Retained},
		{`{"type":"access","subject":{"phone":"+` + sample.DemoPhone + `"}}`, int64(withPhone)},
	} {
		access := h.submit(tc.body)
		later, _ := h.waitTerminal(access.ID)
		got := map[string]int64{}
		for _, s := range later.Discovery.Sources {
			if s.Records == 0 {
				continue
			}
			got[s.Source] = s.Records
			if s.Kept == nil || s.Kept.RequestID != doc.ID {
				t.Errorf("after erasure, %s: %d records without the reason they are kept: %+v", s.Source, s.Records, s.Kept)
			}
		}
		wantKept := map[string]int64{"activity-log": tc.activity, "cases": int64(len(herCases))}
		if !maps.Equal(got, wantKept) {
			t.Errorf("after erasure, access by %s finds %v, want %v", tc.body, got, wantKept)
		}
	}

	// The audit trail records every record action with a keyed hash, never
	// the subject's identifiers.
	raw := h.auditRaw(doc.ID)
	for _, want := range []string{`"event":"record"`, `"action":"deleted"`, `"action":"masked"`, `"action":"retained"`, `"recordKey":"k_`} {
		if !strings.Contains(raw, want) {
			t.Errorf("audit trail lacks %s", want)
		}
	}
	if found := leaks(raw); len(found) > 0 {
		t.Errorf("audit trail holds personal data: %v", found)
	}
}

func equalSnapshots(a, b map[string][]byte) bool {
	for k := range a {
		if !bytes.Equal(a[k], b[k]) {
			return false
		}
	}
	return len(a) == len(b)
}

// The same erase message delivered twice changes nothing the second time,
// and writes one audit entry per record action.
func TestEraseRedeliveredChangesNothing(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	doc := h.submit(demoErasure)
	h.deliver("discover")
	if resp, b := h.do("POST", "/api/requests/"+doc.ID+"/approve", ""); resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, b)
	}
	e := h.deliver("erase")
	once := h.snapshot()
	h.redeliver("erase", e)
	if twice := h.snapshot(); !equalSnapshots(once, twice) {
		t.Fatal("a redelivered erase changed the datasets again")
	}
	h.deliver("verify")
	h.deliver("erase") // the sample's recipient is told (the notification stage runs on the erase queue)
	got, _ := h.get(doc.ID)
	if got.State != dsr.StateCompleted {
		t.Fatalf("state %s %+v", got.State, got.Error)
	}
	seen := map[string]bool{}
	for _, e := range h.auditTrail(doc.ID) {
		if seen[e.ID] {
			t.Fatalf("audit entry %s twice", e.ID)
		}
		seen[e.ID] = true
	}
	_, b := h.do("GET", "/api/requests/"+doc.ID+"/audit", "")
	records := strings.Count(string(b), `"event":"record"`)
	if records == 0 || records != int(got.Discovery.TotalRecords) {
		t.Fatalf("%d record entries for %d records", records, got.Discovery.TotalRecords)
	}
}

func TestRejectGivesTheArticle12Notice(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	doc := h.submit(demoErasure)
	h.waitState(doc.ID, dsr.StateAwaitingApproval)
	if resp, b := h.do("POST", "/api/requests/"+doc.ID+"/reject", `{}`); resp.StatusCode != 422 {
		t.Fatalf("reject without reason: %d %s", resp.StatusCode, b)
	}
	before := h.snapshot()
	resp, b := h.do("POST", "/api/requests/"+doc.ID+"/reject", `{"reason":"the data is needed for an ongoing legal claim"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reject: %d %s", resp.StatusCode, b)
	}
	got, _ := h.get(doc.ID)
	if got.State != dsr.StateRejected || got.Rejection == nil || !strings.Contains(got.Rejection.Notice, "supervisory authority") || got.Rejection.Reason == "" {
		t.Fatalf("rejected request: %+v", got)
	}
	if resp, _ := h.do("POST", "/api/requests/"+doc.ID+"/approve", ""); resp.StatusCode != http.StatusConflict {
		t.Fatalf("approve after reject: %d", resp.StatusCode)
	}
	if !equalSnapshots(before, h.snapshot()) {
		t.Fatal("a rejected erasure changed data")
	}
	if strings.Contains(h.auditRaw(doc.ID), "legal claim") {
		t.Fatal("the free-text reason reached the audit trail")
	}
}

// crashingConnector fails the first rewrite of one dataset after reading
// it and before committing, as a crash would.
type crashingConnector struct {
	sources.Connector
	dataset string
	crashed bool
}

func (c *crashingConnector) Rewrite(ctx context.Context, dataset string, loc sources.Location, edit sources.Edit) (sources.RewriteResult, error) {
	rw := c.Connector.(sources.Rewriter)
	if dataset == c.dataset && !c.crashed {
		c.crashed = true
		return rw.Rewrite(ctx, dataset, loc, func(o int64, rec sources.Record) (*sources.Record, error) {
			if _, err := edit(o, rec); err != nil {
				return nil, err
			}
			return nil, errors.New("injected crash between reading and committing")
		})
	}
	return rw.Rewrite(ctx, dataset, loc, edit)
}

// A crash between reading and committing a dataset, and a dataset that
// changes after discovery, both end with the correct data and one audit
// entry per record action.
func TestEraseSurvivesCrashAndConcurrentChange(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	before := h.snapshot()
	crash := &crashingConnector{Connector: h.app.Service.Connector, dataset: "cases"}
	h.app.Service.Connector = crash
	doc := h.submit(demoErasure)
	h.deliver("discover")
	if resp, b := h.do("POST", "/api/requests/"+doc.ID+"/approve", ""); resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, b)
	}
	// Someone appends a survey after discovery: erasure must not clobber it.
	newSurvey := []byte(`{"responseid":"zz-new","incidentid":"none","respondentemail":"someone@contoso.example","score":5,"comment":"fine"}` + "\n")
	changed := append(append([]byte(nil), before[sample.SurveysBlob]...), newSurvey...)
	if _, err := h.app.Account.Service.NewContainerClient(h.datasets).NewBlockBlobClient(sample.SurveysBlob).UploadBuffer(context.Background(), changed, nil); err != nil {
		t.Fatal(err)
	}
	// The erase stage fails (crash in cases, stale surveys) and is retried
	// on scheduled messages, each delivered once, until it is done.
	for attempt := 1; ; attempt++ {
		if attempt > 5 {
			t.Fatalf("erasure did not finish:\n%s", h.logs.String())
		}
		if d := h.deliver("erase"); d.DeliveryCount != 1 {
			t.Fatalf("erase message %s delivered %d times", d.MessageID, d.DeliveryCount)
		}
		if got, _ := h.get(doc.ID); got.Stage != dsr.StageErasure {
			break
		}
	}
	if !crash.crashed {
		t.Fatal("the crash was never injected")
	}
	h.deliver("verify")
	h.deliver("erase") // the sample's recipient is told (the notification stage runs on the erase queue)
	got, _ := h.get(doc.ID)
	if got.State != dsr.StateCompleted {
		t.Fatalf("state %s %+v", got.State, got.Error)
	}
	after := h.snapshot()
	if !bytes.Contains(after[sample.SurveysBlob], newSurvey) {
		t.Fatal("the survey added after discovery was lost")
	}
	for _, line := range rawRecords(after[sample.SurveysBlob]) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil {
			if email, _ := m["respondentemail"].(string); strings.EqualFold(strings.TrimSpace(email), sample.DemoEmail) {
				t.Fatalf("her survey survived: %s", line)
			}
		}
	}
	seen := map[string]bool{}
	records := 0
	for _, e := range h.auditTrail(doc.ID) {
		if seen[e.ID] {
			t.Fatalf("audit entry %s twice", e.ID)
		}
		seen[e.ID] = true
	}
	_, b := h.do("GET", "/api/requests/"+doc.ID+"/audit", "")
	records = strings.Count(string(b), `"event":"record"`)
	if records != int(got.Discovery.TotalRecords) {
		t.Fatalf("%d record entries for %d records", records, got.Discovery.TotalRecords)
	}
}
