package functions_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/duckdbtest"
	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/sources"
)

// deltaDatasets names the sample's datasets by their native blob.
var deltaDatasets = map[string]string{
	sample.ContactsBlob: "contacts", sample.CasesBlob: "cases", sample.AgentsBlob: "agents",
	sample.SurveysBlob: "surveys", sample.ActivityBlob: "activity-log",
}

func deltaCounts(perBlob map[string]int) map[string]int {
	out := map[string]int{}
	for b, n := range perBlob {
		out[deltaDatasets[b]] = n
	}
	return out
}

// deltaTable is what a test reads of a sample Delta table on its own (no
// checkpoints in the sample): the JSON commits by version and the live
// rows (partition values as fields), sorted by their JSON.
type deltaTable struct {
	commits []string
	rows    []string
	// files are the live data files' blob names, sorted.
	files []string
}

func (h *harness) deltaBlob(name string) []byte {
	h.t.Helper()
	resp, err := h.app.Account.Service.NewContainerClient(h.datasets).NewBlobClient(name).DownloadStream(context.Background(), nil)
	if err != nil {
		h.t.Fatalf("read %s: %v", name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

func (h *harness) deltaTable(dataset string) deltaTable {
	h.t.Helper()
	prefix := sample.DeltaPrefix(dataset)
	var tbl deltaTable
	for v := 0; ; v++ {
		name := fmt.Sprintf("%s_delta_log/%020d.json", prefix, v)
		_, err := h.app.Account.Service.NewContainerClient(h.datasets).NewBlobClient(name).GetProperties(context.Background(), nil)
		if err != nil {
			break
		}
		tbl.commits = append(tbl.commits, string(h.deltaBlob(name)))
	}
	type add struct {
		Path            string            `json:"path"`
		PartitionValues map[string]string `json:"partitionValues"`
	}
	live := map[string]add{}
	for _, c := range tbl.commits {
		sc := bufio.NewScanner(strings.NewReader(c))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var a struct {
				Add    *add `json:"add"`
				Remove *add `json:"remove"`
			}
			if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
				h.t.Fatal(err)
			}
			if a.Add != nil {
				live[a.Add.Path] = *a.Add
			}
			if a.Remove != nil {
				delete(live, a.Remove.Path)
			}
		}
	}
	for _, a := range live {
		p, _ := url.PathUnescape(a.Path)
		tbl.files = append(tbl.files, prefix+p)
		b := h.deltaBlob(prefix + p)
		f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			h.t.Fatal(err)
		}
		cols := f.Schema().Columns()
		rows := parquet.NewReader(bytes.NewReader(b))
		buf := make([]parquet.Row, 1)
		for {
			n, err := rows.ReadRows(buf)
			if n == 1 {
				m := map[string]any{}
				for k, v := range a.PartitionValues {
					m[k] = v
				}
				for _, v := range buf[0] {
					name := cols[v.Column()][0]
					switch {
					case v.IsNull():
						m[name] = nil
					case v.Kind() == parquet.ByteArray:
						m[name] = string(v.ByteArray())
					case v.Kind() == parquet.Int64:
						m[name] = v.Int64()
					case v.Kind() == parquet.Boolean:
						m[name] = v.Boolean()
					default:
						m[name] = v.String()
					}
				}
				j, _ := json.Marshal(m)
				tbl.rows = append(tbl.rows, string(j))
			}
			if err != nil {
				break
			}
		}
		rows.Close()
	}
	sort.Strings(tbl.rows)
	sort.Strings(tbl.files)
	return tbl
}

// duckTable reads a Delta table's live files (as our log says) with
// DuckDB, an independent Parquet reader: every row, and the columns with
// their DuckDB types.
func (h *harness) duckTable(tbl deltaTable) duckdbtest.Result {
	h.t.Helper()
	dir := h.t.TempDir()
	var paths []string
	for i, name := range tbl.files {
		p := filepath.Join(dir, fmt.Sprintf("%d.parquet", i))
		if err := os.WriteFile(p, h.deltaBlob(name), 0o600); err != nil {
			h.t.Fatal(err)
		}
		paths = append(paths, duckdbtest.Quote(p))
	}
	return duckdbtest.Run(h.t, duckdbtest.Options{}, duckdbtest.Query{SQL: "SELECT * FROM read_parquet([" + strings.Join(paths, ", ") + "])", Rows: true})[0]
}

// The walkthrough over the delta sample: access finds what the native
// sample gives, erasure commits new table versions that drop or mask
// exactly her rows (and says the old files stay until VACUUM), and
// rectification corrects her rows in place of the old files.
func TestDeltaWalkthrough(t *testing.T) {
	t.Run("access", func(t *testing.T) {
		h := newHarness(t, harnessOptions{format: "delta"})
		for _, tc := range []struct {
			subject   string
			withPhone bool
		}{
			{`{"email":"  Avery.Morgan@CONTOSO.example "}`, false},
			{`{"email":"avery.morgan@contoso.example","phone":"+1 425 555 0199","ids":{"contactId":"` + sample.DemoContactID + `"}}`, true},
		} {
			doc := h.submit(`{"type":"access","subject":` + tc.subject + `}`)
			if tc.withPhone {
				// The second access request of the same subject is a
				// repeat: an operator lets it go on.
				h.waitState(doc.ID, dsr.StateAwaitingApproval)
				if resp, b := h.do("POST", "/api/requests/"+doc.ID+"/approve", ""); resp.StatusCode != 200 {
					t.Fatalf("approve the repeat: %d %s", resp.StatusCode, b)
				}
			}
			doc, exp := h.waitTerminal(doc.ID)
			if doc.State != dsr.StateCompleted {
				t.Fatalf("state %s, error %+v\n%s", doc.State, doc.Error, h.logs.String())
			}
			demo := sample.Demo(h.size)
			want := deltaCounts(demo.RecordsWithoutPhone)
			if tc.withPhone {
				want = deltaCounts(demo.Records)
			}
			total := 0
			for _, s := range doc.Discovery.Sources {
				if int(s.Records) != want[s.Source] || s.Error != "" {
					t.Errorf("discovery %s: %d records (error %q), want %d", s.Source, s.Records, s.Error, want[s.Source])
				}
				total += want[s.Source]
			}
			if int(doc.Discovery.TotalRecords) != total {
				t.Fatalf("discovery total %d, want %d", doc.Discovery.TotalRecords, total)
			}
			status, body, _ := download(t, exp.URL)
			if status != 200 {
				t.Fatalf("download: %d", status)
			}
			files := readZip(t, body)
			herCases := map[string]bool{}
			var cases []map[string]any
			if err := json.Unmarshal(files["data/cases.json"], &cases); err != nil {
				t.Fatalf("data/cases.json: %v", err)
			}
			for _, c := range cases {
				herCases[c["incidentid"].(string)] = true
			}
			for name, n := range want {
				if n == 0 {
					continue
				}
				var recs []map[string]any
				if err := json.Unmarshal(files["data/"+name+".json"], &recs); err != nil {
					t.Fatalf("data/%s.json: %v", name, err)
				}
				if len(recs) != n {
					t.Errorf("data/%s.json: %d records, want %d", name, len(recs), n)
				}
				for i, r := range recs {
					if !belongsToDemo(name, r, herCases, tc.withPhone) {
						t.Errorf("data/%s.json record %d is not hers: %v", name, i, r)
					}
					if name == "activity-log" && r["entity"] == nil {
						t.Errorf("activity-log record %d lacks its partition value entity: %v", i, r)
					}
				}
			}
		}
	})

	t.Run("erasure", func(t *testing.T) {
		h := newHarness(t, harnessOptions{format: "delta"})
		before := map[string]deltaTable{}
		for _, name := range deltaDatasets {
			before[name] = h.deltaTable(name)
		}
		doc := h.submit(demoErasure)
		h.waitState(doc.ID, dsr.StateAwaitingApproval)
		if resp, b := h.do("POST", "/api/requests/"+doc.ID+"/approve", ""); resp.StatusCode != 200 {
			t.Fatalf("approve: %d %s", resp.StatusCode, b)
		}
		done, _ := h.waitTerminal(doc.ID)
		if done.State != dsr.StateCompleted {
			t.Fatalf("state %s error %+v\n%s", done.State, done.Error, h.logs.String())
		}
		if done.Verification == nil || done.Verification.Residual != 0 {
			t.Fatalf("verification: %+v", done.Verification)
		}
		want := deltaCounts(sample.Demo(h.size).RecordsWithoutPhone)
		results := map[string]dsr.ErasureResult{}
		for _, r := range done.Erasure.Sources {
			results[r.Source] = r
		}
		if r := results["contacts"]; r.Deleted != int64(want["contacts"]) || r.Note != sources.DeltaVacuumNote {
			t.Errorf("contacts: %+v", r)
		}
		if r := results["surveys"]; r.Deleted != int64(want["surveys"]) || r.Note != sources.DeltaVacuumNote {
			t.Errorf("surveys: %+v", r)
		}
		if r := results["cases"]; r.Masked != int64(want["cases"]) || r.Note != sources.DeltaVacuumNote {
			t.Errorf("cases: %+v", r)
		}
		if r := results["activity-log"]; r.Retained != int64(want["activity-log"]) || r.Note != "" {
			t.Errorf("activity-log: %+v", r)
		}

		after := map[string]deltaTable{}
		for _, name := range deltaDatasets {
			after[name] = h.deltaTable(name)
		}
		for _, name := range []string{"agents", "activity-log"} {
			if !reflect.DeepEqual(before[name], after[name]) {
				t.Errorf("%s changed; it must be kept as it was", name)
			}
		}
		// History is kept: version 0 as it was, new versions after it, each
		// with commitInfo first.
		for _, name := range []string{"contacts", "cases", "surveys"} {
			b, a := before[name], after[name]
			if len(a.commits) <= len(b.commits) || a.commits[0] != b.commits[0] {
				t.Errorf("%s: %d commits became %d (history must be kept)", name, len(b.commits), len(a.commits))
				continue
			}
			for _, c := range a.commits[1:] {
				if !strings.HasPrefix(c, `{"commitInfo":`) || !strings.Contains(c, `"remove":`) {
					t.Errorf("%s: a new commit without commitInfo first or a remove: %s", name, c)
				}
			}
		}
		// Rows: contacts and surveys lose exactly hers; cases keep every
		// row, hers redacted.
		removed := func(name string, hers func(map[string]any) bool) {
			var kept []string
			n := 0
			for _, r := range before[name].rows {
				var m map[string]any
				json.Unmarshal([]byte(r), &m)
				if hers(m) {
					n++
					continue
				}
				kept = append(kept, r)
			}
			if n == 0 || !slices.Equal(kept, after[name].rows) {
				t.Errorf("%s: after erasure is not the old rows without her %d (%d rows became %d)", name, n, len(before[name].rows), len(after[name].rows))
			}
		}
		removed("contacts", func(m map[string]any) bool { return m["contactid"] == sample.DemoContactID })
		herCases := map[string]bool{}
		changed := 0
		if len(before["cases"].rows) != len(after["cases"].rows) {
			t.Fatalf("cases: %d rows became %d", len(before["cases"].rows), len(after["cases"].rows))
		}
		for _, r := range after["cases"].rows {
			if slices.Contains(before["cases"].rows, r) {
				continue
			}
			changed++
			var m map[string]any
			json.Unmarshal([]byte(r), &m)
			if m["customerid"] == sample.DemoContactID {
				herCases[m["incidentid"].(string)] = true
				if m["description"] != "[redacted: data subject erasure]" {
					t.Errorf("her case description = %v", m["description"])
				}
			}
		}
		if changed != want["cases"] {
			t.Errorf("cases: %d rows changed, want %d", changed, want["cases"])
		}
		removed("surveys", func(m map[string]any) bool {
			id, _ := m["incidentid"].(string)
			email, _ := m["respondentemail"].(string)
			return herCases[id] || strings.EqualFold(strings.TrimSpace(email), sample.DemoEmail)
		})

		t.Run("read back with DuckDB", func(t *testing.T) {
			duckdbtest.Require(t)
			// The files our commits made live read back with DuckDB: as
			// many rows as the log's live files hold, with the columns and
			// types the table had, and none of her contact rows.
			for _, name := range []string{"contacts", "cases", "surveys"} {
				old, cur := h.duckTable(before[name]), h.duckTable(after[name])
				if !reflect.DeepEqual(old.Columns, cur.Columns) {
					t.Errorf("%s: columns %v became %v", name, old.Columns, cur.Columns)
				}
				if len(cur.Rows) != len(after[name].rows) || len(old.Rows) != len(before[name].rows) {
					t.Errorf("%s: DuckDB reads %d rows (before: %d), our log's live files hold %d (before: %d)", name, len(cur.Rows), len(old.Rows), len(after[name].rows), len(before[name].rows))
				}
				if name != "contacts" {
					continue
				}
				for _, r := range cur.Rows {
					if r["contactid"] == sample.DemoContactID {
						t.Errorf("DuckDB still reads her contact row: %v", r)
					}
				}
			}
		})
	})

	t.Run("rectification", func(t *testing.T) {
		h := newHarness(t, harnessOptions{format: "delta"})
		before := h.deltaTable("contacts")
		doc := h.submit(`{"type":"rectification",
		"subject":{"email":"avery.morgan@contoso.example","phone":"+1 425 555 0199","name":"Avery Morgan"},
		"corrections":{"email":"Avery.Quinn@contoso.example","phone":"+1 (425) 555-0123","name":"Avery Quinn"}}`)
		h.waitState(doc.ID, dsr.StateAwaitingApproval)
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
		if s := status["contacts"]; s.Status != "rectified" || s.Rectified != 1 || s.Note != sources.DeltaVacuumNote {
			t.Errorf("contacts: %+v", s)
		}
		if s := status["surveys"]; s.Status != "rectified" || s.Rectified != 2 {
			t.Errorf("surveys: %+v", s)
		}
		after := h.deltaTable("contacts")
		if len(before.rows) != len(after.rows) {
			t.Fatalf("contacts: %d rows became %d", len(before.rows), len(after.rows))
		}
		changed := 0
		for _, r := range after.rows {
			if slices.Contains(before.rows, r) {
				continue
			}
			changed++
			var m map[string]any
			json.Unmarshal([]byte(r), &m)
			if m["contactid"] != sample.DemoContactID || m["emailaddress1"] != "avery.quinn@contoso.example" ||
				m["telephone1"] != "+14255550123" || m["fullname"] != "Avery Quinn" {
				t.Errorf("changed contact row: %v", m)
			}
		}
		if changed != 1 {
			t.Errorf("%d contact rows changed, want 1", changed)
		}
		access := h.submit(`{"type":"discovery","subject":{"email":"avery.quinn@contoso.example"}}`)
		found, _ := h.waitTerminal(access.ID)
		for _, s := range found.Discovery.Sources {
			if s.Source == "contacts" && s.Records != 1 {
				t.Errorf("the corrected email finds %d contacts", s.Records)
			}
		}
	})
}
