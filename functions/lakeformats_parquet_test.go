package functions_test

// The README walkthrough over the Parquet sample (dsr sample -format
// parquet, sample/sources.parquet.json): access, erasure with verification,
// rectification; and the files our Parquet rewrite writes, read back with
// DuckDB (an independent reader).

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/duckdbtest"
	"github.com/dsr-functions/dsr/shared/sample"
)

func parquetHarness(t *testing.T) *harness {
	t.Helper()
	return newHarness(t, harnessOptions{format: "parquet"})
}

// parquetCounts maps the sample's per-blob counts (native blob names) to
// the dataset names of the Parquet sources config.
func (h *harness) parquetCounts(perBlob map[string]int) map[string]int {
	out := map[string]int{}
	for _, f := range sample.Files() {
		for _, d := range h.sources.Datasets {
			if d.Blob == sample.ParquetBlob(f.Name) {
				out[d.Name] = perBlob[f.Name]
			}
		}
	}
	if len(out) != len(sample.Files()) {
		h.t.Fatalf("sources.parquet.json does not name every Parquet file: %v", out)
	}
	return out
}

// parquetFiles downloads every Parquet sample file into dir and returns
// their paths by native blob name.
func (h *harness) parquetFiles(dir string) map[string]string {
	h.t.Helper()
	out := map[string]string{}
	for _, f := range sample.Files() {
		resp, err := h.app.Account.Service.NewContainerClient(h.datasets).NewBlobClient(sample.ParquetBlob(f.Name)).DownloadStream(context.Background(), nil)
		if err != nil {
			h.t.Fatal(err)
		}
		path := filepath.Join(dir, strings.ReplaceAll(f.Name, "/", "_")+".parquet")
		fh, err := os.Create(path)
		if err != nil {
			h.t.Fatal(err)
		}
		_, err = fh.ReadFrom(resp.Body)
		resp.Body.Close()
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			h.t.Fatal(err)
		}
		out[f.Name] = path
	}
	return out
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(x) == string(y)
}

func TestParquetAccessRequest(t *testing.T) {
	for _, tc := range []struct {
		name      string
		subject   string
		withPhone bool
		total     int
	}{
		{"email and contact id", `{"email":"avery.morgan@contoso.example","ids":{"contactId":"` + sample.DemoContactID + `"}}`, false, 12},
		{"email, phone and contact id", `{"email":"avery.morgan@contoso.example","phone":"+1 425 555 0199","ids":{"contactId":"` + sample.DemoContactID + `"}}`, true, 13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := parquetHarness(t)
			doc := h.submit(`{"type":"access","subject":` + tc.subject + `}`)
			doc, exp := h.waitTerminal(doc.ID)
			if doc.State != dsr.StateCompleted {
				t.Fatalf("state %s, error %+v\n%s", doc.State, doc.Error, h.logs.String())
			}
			demo := sample.Demo(h.size)
			want := h.parquetCounts(demo.RecordsWithoutPhone)
			if tc.withPhone {
				want = h.parquetCounts(demo.Records)
			}
			total := 0
			for _, s := range doc.Discovery.Sources {
				if int(s.Records) != want[s.Source] || s.Error != "" {
					t.Errorf("discovery %s: %d records (error %q), want %d", s.Source, s.Records, s.Error, want[s.Source])
				}
				total += want[s.Source]
			}
			if total != tc.total || int(doc.Discovery.TotalRecords) != total {
				t.Fatalf("discovery total %d, want %d (the README's walkthrough says %d)", doc.Discovery.TotalRecords, total, tc.total)
			}

			status, body, _ := download(t, exp.URL)
			if status != http.StatusOK {
				t.Fatalf("download: %d %s", status, body)
			}
			files := readZip(t, body)
			herCases := map[string]bool{}
			var cases []map[string]any
			if err := json.Unmarshal(files["data/cases.json"], &cases); err != nil {
				t.Fatalf("data/cases.json: %v", err)
			}
			for _, c := range cases {
				if c["customerid"] == sample.DemoContactID {
					herCases[c["incidentid"].(string)] = true
				}
			}
			if len(herCases) != 3 {
				t.Errorf("the export has %d of her own cases, want 3", len(herCases))
			}
			for _, d := range h.sources.Datasets {
				raw, ok := files["data/"+d.Name+".json"]
				if want[d.Name] == 0 {
					if ok {
						t.Errorf("package has data/%s.json but the subject has no records there", d.Name)
					}
					continue
				}
				var recs []map[string]any
				if err := json.Unmarshal(raw, &recs); err != nil {
					t.Fatalf("data/%s.json: %v", d.Name, err)
				}
				if len(recs) != want[d.Name] {
					t.Errorf("data/%s.json: %d records, want %d", d.Name, len(recs), want[d.Name])
				}
				for i, r := range recs {
					if !belongsToDemo(d.Name, r, herCases, tc.withPhone) {
						t.Errorf("data/%s.json record %d is not the subject's: %v", d.Name, i, r)
					}
				}
			}
			// Logical types survive into the export: her contact's
			// creation time as RFC 3339, her preference as a number.
			var contacts []map[string]any
			if err := json.Unmarshal(files["data/contacts.json"], &contacts); err != nil || len(contacts) != 1 {
				t.Fatalf("data/contacts.json: %v %v", err, contacts)
			}
			if c := contacts[0]; c["createdon"] != "2021-03-14T09:26:53Z" || c["preferredcontactmethodcode"] != float64(2) || c["emailaddress1"] != "Avery.Morgan@Contoso.example" {
				t.Errorf("her exported contact: %v", c)
			}
		})
	}
}

// duckRows reads a Parquet file with DuckDB.
func duckRows(t *testing.T, path string) duckdbtest.Result {
	t.Helper()
	return duckdbtest.ReadParquet(t, path)
}

// sameTypes checks that a rewritten file's columns are the original's,
// with the same DuckDB (logical) types.
func sameTypes(t *testing.T, name string, before, after duckdbtest.Result) {
	t.Helper()
	if !reflect.DeepEqual(before.Columns, after.Columns) {
		t.Errorf("%s: columns %v became %v", name, before.Columns, after.Columns)
	}
}

func TestParquetErasureReadsBackWithDuckDB(t *testing.T) {
	h := parquetHarness(t)
	dir := t.TempDir()
	before := h.parquetFiles(filepath.Join(dir))
	doc := h.submit(demoErasure)
	if w := h.waitState(doc.ID, dsr.StateAwaitingApproval); w.State != dsr.StateAwaitingApproval {
		t.Fatalf("erasure did not wait for approval: %s", w.State)
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
	want := h.parquetCounts(sample.Demo(h.size).RecordsWithoutPhone)
	if r := results["contacts"]; r.Deleted != int64(want["contacts"]) || r.Action != "delete" {
		t.Errorf("contacts: %+v", r)
	}
	if r := results["surveys"]; r.Deleted != int64(want["surveys"]) {
		t.Errorf("surveys: %+v", r)
	}
	if r := results["cases"]; r.Masked != int64(want["cases"]) || r.Action != "mask" {
		t.Errorf("cases: %+v", r)
	}
	if r := results["activity-log"]; r.Retained != int64(want["activity-log"]) || r.Action != "retain" {
		t.Errorf("activity-log: %+v", r)
	}
	if done.Verification == nil || done.Verification.Residual != 0 {
		t.Fatalf("verification: %+v", done.Verification)
	}

	afterDir := filepath.Join(dir, "after")
	os.MkdirAll(afterDir, 0o755)
	after := h.parquetFiles(afterDir)
	for _, name := range []string{sample.AgentsBlob, sample.ActivityBlob} {
		if !sameFile(t, before[name], after[name]) {
			t.Errorf("%s changed; it must be kept as it was", name)
		}
	}

	t.Run("read back with DuckDB", func(t *testing.T) {
		duckdbtest.Require(t)
		// DuckDB reads the rewritten files: contacts without her row, surveys
		// without hers, cases with her descriptions redacted and the mention
		// masked; every other row and every column type as before.
		oldC, newC := duckRows(t, before[sample.ContactsBlob]), duckRows(t, after[sample.ContactsBlob])
		sameTypes(t, "contacts", oldC, newC)
		var keptC []map[string]any
		for _, r := range oldC.Rows {
			if r["contactid"] != sample.DemoContactID {
				keptC = append(keptC, r)
			}
		}
		if len(keptC) != len(oldC.Rows)-1 || !reflect.DeepEqual(keptC, newC.Rows) {
			t.Errorf("contacts after erasure (DuckDB): %d rows, want the %d rows before without hers", len(newC.Rows), len(oldC.Rows))
		}
		if typ, _ := newC.Type("createdon"); typ != "TIMESTAMP WITH TIME ZONE" {
			t.Errorf("contacts.createdon is %s after the rewrite", typ)
		}

		oldK, newK := duckRows(t, before[sample.CasesBlob]), duckRows(t, after[sample.CasesBlob])
		sameTypes(t, "cases", oldK, newK)
		if len(oldK.Rows) != len(newK.Rows) {
			t.Fatalf("cases: %d rows became %d; masking keeps rows", len(oldK.Rows), len(newK.Rows))
		}
		herCases := map[string]bool{}
		redacted, mentions := 0, 0
		for i, o := range oldK.Rows {
			n := newK.Rows[i]
			od, nd := duckdbtest.String(o["description"]), duckdbtest.String(n["description"])
			switch {
			case o["customerid"] == sample.DemoContactID:
				herCases[duckdbtest.String(o["incidentid"])] = true
				redacted++
				if nd != "[redacted: data subject erasure]" {
					t.Errorf("cases row %d (hers): description %q", i, nd)
				}
			case od != nd:
				// Another customer's case that mentions her (decoys such as
				// lavery.morgan@ stay as they are): only the mention goes.
				mentions++
				if want := strings.ReplaceAll(od, sample.DemoEmail, "[redacted]"); nd != want {
					t.Errorf("cases row %d (mentions her): description %q, want %q", i, nd, want)
				}
			}
			o["description"], n["description"] = nil, nil
			if !reflect.DeepEqual(o, n) {
				t.Errorf("cases row %d: a column other than description changed: %v -> %v", i, o, n)
			}
		}
		if redacted != 3 || mentions != 1 {
			t.Errorf("cases: %d of hers redacted, %d mentions masked; want 3 and 1", redacted, mentions)
		}

		oldS, newS := duckRows(t, before[sample.SurveysBlob]), duckRows(t, after[sample.SurveysBlob])
		sameTypes(t, "surveys", oldS, newS)
		var keptS []map[string]any
		for _, r := range oldS.Rows {
			email := strings.TrimSpace(duckdbtest.String(r["respondentemail"]))
			if herCases[duckdbtest.String(r["incidentid"])] || strings.EqualFold(email, sample.DemoEmail) {
				continue
			}
			keptS = append(keptS, r)
		}
		if len(keptS) != len(oldS.Rows)-want["surveys"] || !reflect.DeepEqual(keptS, newS.Rows) {
			t.Errorf("surveys after erasure (DuckDB): %d rows, want the %d rows before without her %d", len(newS.Rows), len(oldS.Rows), want["surveys"])
		}

	})

	// Re-discovery finds nothing left to erase: only what the policy keeps
	// (the system log, and her masked cases), each with why it is kept.
	later, _ := h.waitTerminal(h.submit(`{"type":"access","subject":{"email":"avery.morgan@contoso.example","ids":{"contactId":"` + sample.DemoContactID + `"}}}`).ID)
	got := map[string]int64{}
	for _, s := range later.Discovery.Sources {
		if s.Records > 0 {
			got[s.Source] = s.Records
			if s.Kept == nil || s.Kept.RequestID != doc.ID {
				t.Errorf("after erasure, %s: %d records without the reason they are kept: %+v", s.Source, s.Records, s.Kept)
			}
		}
	}
	// Her 3 own cases are kept (masked); the other customer's case that
	// mentioned her no longer does.
	if done.Verification.Masked != 3 {
		t.Errorf("verification counts %d masked records, want her 3 cases", done.Verification.Masked)
	}
	wantKept := map[string]int64{"activity-log": results["activity-log"].Retained, "cases": 3}
	if !maps.Equal(got, wantKept) {
		t.Errorf("after erasure, discovery finds %v, want %v", got, wantKept)
	}
}

func TestParquetRectificationReadsBackWithDuckDB(t *testing.T) {
	h := parquetHarness(t)
	dir := t.TempDir()
	before := h.parquetFiles(dir)
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

	afterDir := filepath.Join(dir, "after")
	os.MkdirAll(afterDir, 0o755)
	after := h.parquetFiles(afterDir)
	for _, name := range []string{sample.CasesBlob, sample.AgentsBlob, sample.ActivityBlob} {
		if !sameFile(t, before[name], after[name]) {
			t.Errorf("%s changed, but it is not rectifiable", name)
		}
	}
	t.Run("read back with DuckDB", func(t *testing.T) {
		duckdbtest.Require(t)
		oldC, newC := duckRows(t, before[sample.ContactsBlob]), duckRows(t, after[sample.ContactsBlob])
		sameTypes(t, "contacts", oldC, newC)
		if len(oldC.Rows) != len(newC.Rows) {
			t.Fatalf("contacts: %d rows became %d", len(oldC.Rows), len(newC.Rows))
		}
		changed := 0
		for i, o := range oldC.Rows {
			n := newC.Rows[i]
			if reflect.DeepEqual(o, n) {
				continue
			}
			changed++
			if o["contactid"] != sample.DemoContactID {
				t.Fatalf("contacts row %d changed and is not hers", i)
			}
			if n["emailaddress1"] != "avery.quinn@contoso.example" || n["telephone1"] != "+14255550123" || n["fullname"] != "Avery Quinn" {
				t.Errorf("her corrected contact (DuckDB): %v", n)
			}
			// Only the corrected fields changed; her creation time and
			// preference keep their values and types.
			for _, k := range []string{"createdon", "preferredcontactmethodcode", "address1_city", "contactid"} {
				if fmt.Sprint(o[k]) != fmt.Sprint(n[k]) {
					t.Errorf("her contact's %s changed: %v -> %v", k, o[k], n[k])
				}
			}
		}
		if changed != 1 {
			t.Errorf("%d contacts changed, want 1", changed)
		}
		oldS, newS := duckRows(t, before[sample.SurveysBlob]), duckRows(t, after[sample.SurveysBlob])
		sameTypes(t, "surveys", oldS, newS)
		changed = 0
		for i, o := range oldS.Rows {
			n := newS.Rows[i]
			if reflect.DeepEqual(o, n) {
				continue
			}
			changed++
			if !strings.EqualFold(strings.TrimSpace(duckdbtest.String(o["respondentemail"])), sample.DemoEmail) || n["respondentemail"] != "avery.quinn@contoso.example" {
				t.Errorf("surveys row %d: %v -> %v", i, o, n)
			}
		}
		if changed != 2 {
			t.Errorf("%d survey responses changed, want 2", changed)
		}

	})

	// The corrected address now finds her.
	found, _ := h.waitTerminal(h.submit(`{"type":"discovery","subject":{"email":"avery.quinn@contoso.example"}}`).ID)
	for _, s := range found.Discovery.Sources {
		if s.Source == "contacts" && s.Records != 1 {
			t.Errorf("the corrected email finds %d contacts", s.Records)
		}
	}
}
