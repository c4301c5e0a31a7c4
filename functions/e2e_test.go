package functions_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/sources"
)

// datasetCounts maps the sample's per-blob counts to dataset names.
func (h *harness) datasetCounts(perBlob map[string]int) map[string]int {
	out := map[string]int{}
	for _, d := range h.sources.Datasets {
		out[d.Name] = perBlob[d.Blob]
	}
	return out
}

// download fetches a link with nothing but plain HTTP.
func download(t testing.TB, url string) (int, []byte, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	return resp.StatusCode, b, resp.Header
}

// herPhoneRun matches her phone in free text in any of the sample's formats.
var herPhoneRun = regexp.MustCompile(`425\D{0,2}555\D?0199`)

// belongsToDemo decides, independently of the matcher, whether an exported
// record is the demo subject's: by her contact id, her email as a whole
// token, her phone, or (surveys) one of her cases.
func belongsToDemo(dataset string, rec map[string]any, herCases map[string]bool, withPhone bool) bool {
	str := func(k string) string { s, _ := rec[k].(string); return s }
	emailToken := regexp.MustCompile(`(?i)(^|[^a-z0-9._%+-])avery\.morgan@contoso\.example($|[^a-z0-9.-]|\.($|[^a-z0-9-]))`)
	switch dataset {
	case "contacts":
		return str("contactid") == sample.DemoContactID
	case "cases":
		return str("customerid") == sample.DemoContactID || emailToken.MatchString(str("description"))
	case "surveys":
		return herCases[str("incidentid")] || strings.EqualFold(strings.TrimSpace(str("respondentemail")), sample.DemoEmail)
	case "activity-log":
		return str("entityid") == sample.DemoContactID || (withPhone && herPhoneRun.MatchString(str("details")))
	}
	return false
}

func readZip(t testing.TB, b []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name], err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read %s: %v", f.Name, err)
		}
	}
	return files
}

func TestAccessRequestEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name      string
		subject   string
		withPhone bool
	}{
		{"email only", `{"email":"  Avery.Morgan@CONTOSO.example "}`, false},
		{"email, phone and contact id", `{"email":"avery.morgan@contoso.example","phone":"+1 425 555 0199","ids":{"contactId":"` + sample.DemoContactID + `"}}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			doc := h.submit(`{"type":"access","subject":` + tc.subject + `,"receivedAt":"2026-01-31T09:00:00Z"}`)
			if doc.State != dsr.StateReceived || doc.Stage != dsr.StageIntake {
				t.Fatalf("new request is %s/%s", doc.Stage, doc.State)
			}
			if want := "2026-02-28T09:00:00Z"; doc.DueAt.Format("2006-01-02T15:04:05Z07:00") != want {
				t.Fatalf("dueAt = %s, want %s", doc.DueAt, want)
			}
			doc, exp := h.waitTerminal(doc.ID)
			if doc.State != dsr.StateCompleted {
				t.Fatalf("state %s, error %+v\n%s", doc.State, doc.Error, h.logs.String())
			}
			var stages []string
			for _, e := range doc.History {
				stages = append(stages, string(e.Stage)+"/"+string(e.State))
			}
			if got := strings.Join(stages, " "); got != "intake/received discovery/in_progress export/in_progress done/completed" {
				t.Fatalf("history: %s", got)
			}

			demo := sample.Demo(h.size)
			want := h.datasetCounts(demo.RecordsWithoutPhone)
			if tc.withPhone {
				want = h.datasetCounts(demo.Records)
			}
			total := 0
			for _, s := range doc.Discovery.Sources {
				if int(s.Records) != want[s.Source] {
					t.Errorf("discovery %s: %d records, want %d", s.Source, s.Records, want[s.Source])
				}
				total += want[s.Source]
			}
			if int(doc.Discovery.TotalRecords) != total || len(doc.Discovery.Sources) != len(h.sources.Datasets) {
				t.Fatalf("discovery total %d over %d sources, want %d over %d", doc.Discovery.TotalRecords, len(doc.Discovery.Sources), total, len(h.sources.Datasets))
			}

			// The link alone downloads the package.
			status, body, hdr := download(t, exp.URL)
			if status != http.StatusOK {
				t.Fatalf("download: %d %s", status, body)
			}
			if !strings.HasPrefix(hdr.Get("Content-Disposition"), "attachment") {
				t.Errorf("Content-Disposition %q", hdr.Get("Content-Disposition"))
			}
			sum := sha256.Sum256(body)
			if int64(len(body)) != exp.Bytes || hex.EncodeToString(sum[:]) != exp.SHA256 {
				t.Fatalf("package is %d bytes sha %x; document says %d bytes sha %s", len(body), sum, exp.Bytes, exp.SHA256)
			}
			files := readZip(t, body)
			for _, name := range []string{"manifest.json", "summary.txt"} {
				if len(files[name]) == 0 {
					t.Fatalf("package lacks %s", name)
				}
			}
			var manifest struct {
				TotalRecords int64 `json:"totalRecords"`
				Datasets     []struct {
					Name    string        `json:"name"`
					Records int64         `json:"records"`
					Facts   sources.Facts `json:"facts"`
				} `json:"datasets"`
			}
			if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
				t.Fatal(err)
			}
			if int(manifest.TotalRecords) != total {
				t.Errorf("manifest total %d, want %d", manifest.TotalRecords, total)
			}
			for _, d := range manifest.Datasets {
				if len(d.Facts.Purposes) == 0 || d.Facts.Retention == "" {
					t.Errorf("manifest %s lacks Art. 15 facts", d.Name)
				}
			}

			// Every dataset's records: exactly hers, from every dataset,
			// including the case that names her only in free text and the
			// cases linked to her only by contact id.
			herCases := map[string]bool{}
			var cases []map[string]any
			if err := json.Unmarshal(files["data/cases.json"], &cases); err != nil {
				t.Fatalf("data/cases.json: %v", err)
			}
			byFreeText, byID := 0, 0
			for _, c := range cases {
				herCases[c["incidentid"].(string)] = true
				if c["customerid"] == sample.DemoContactID {
					byID++
				} else {
					byFreeText++
				}
			}
			if byID < 3 || byFreeText != 1 {
				t.Errorf("cases: %d linked by id, %d by free text; want >=3 and 1", byID, byFreeText)
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
				if len(files["data/"+d.Name+".csv"]) == 0 {
					t.Errorf("package lacks data/%s.csv", d.Name)
				}
			}
			// The decoys never made it in.
			for _, decoy := range []string{"lavery.morgan@", "avery.morgan@contoso.example.au", "avery.morgan2@"} {
				for name, b := range files {
					if strings.HasPrefix(name, "data/") && bytes.Contains(bytes.ToLower(b), []byte(decoy)) {
						t.Errorf("%s contains decoy %s", name, decoy)
					}
				}
			}
		})
	}
}

func TestDiscoveryRequestReportsWithoutExport(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	doc := h.submit(`{"type":"discovery","subject":{"ids":{"contactId":"` + sample.DemoContactID + `"}}}`)
	doc, exp := h.waitTerminal(doc.ID)
	if doc.State != dsr.StateCompleted || doc.Stage != dsr.StageDone {
		t.Fatalf("%s/%s %+v", doc.Stage, doc.State, doc.Error)
	}
	if exp.URL != "" || doc.Export != nil {
		t.Fatal("a discovery request must not produce an export")
	}
	got := map[string]int64{}
	for _, s := range doc.Discovery.Sources {
		got[s.Source] = s.Records
	}
	// By contact id alone: her contact, her 3 id-linked cases (not the one
	// naming her email in free text), the surveys of those cases, and the
	// activity-log entries about her contact.
	if got["contacts"] != 1 || got["cases"] != 3 || got["agents"] != 0 || got["activity-log"] != 4 {
		t.Fatalf("discovery by contact id: %v", got)
	}
	if resp, b := h.do("POST", "/api/requests/"+doc.ID+"/export-link", ""); resp.StatusCode != http.StatusConflict ||
		!strings.Contains(string(b), `"no-export"`) || !strings.Contains(string(b), "discovery requests have no export") {
		t.Fatalf("export-link of a discovery request: %d %s", resp.StatusCode, b)
	}
	// A bad state filter lists every state a request can be in.
	resp, b := h.do("GET", "/api/requests?state=bogus", "")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("state=bogus: %d %s", resp.StatusCode, b)
	}
	for _, st := range dsr.States {
		if !strings.Contains(string(b), string(st)) {
			t.Errorf("state=bogus: the error does not list %s: %s", st, b)
		}
	}
}
