package functions_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sample"
)

// synapseNative maps the datasets of sample/sources.synapse.json to the
// native sample files they are exported from (same records, same names).
var synapseNative = map[string]string{
	"contacts":     sample.ContactsBlob,
	"cases":        sample.CasesBlob,
	"agents":       sample.AgentsBlob,
	"surveys":      sample.SurveysBlob,
	"activity-log": sample.ActivityBlob,
}

// synapseCounts maps the sample's per-blob counts to the synapse
// datasets.
func (h *harness) synapseCounts(perBlob map[string]int) map[string]int {
	h.t.Helper()
	out := map[string]int{}
	for _, d := range h.sources.Datasets {
		f, ok := synapseNative[d.Name]
		if !ok {
			h.t.Fatalf("dataset %s of sources.synapse.json has no native file", d.Name)
		}
		out[d.Name] = perBlob[f]
	}
	return out
}

// synapseSnapshot downloads every blob of the synapse sample.
func (h *harness) synapseSnapshot() map[string][]byte {
	h.t.Helper()
	out := map[string][]byte{}
	for _, n := range h.blobNames(h.datasets) {
		if strings.HasPrefix(n, sample.SynapsePrefix) {
			out[n] = h.readBlob(n)
		}
	}
	if len(out) == 0 {
		h.t.Fatal("no synapse sample blobs")
	}
	return out
}

func equalBlobs(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// The walkthrough over the Synapse Link sample: an access request finds
// exactly the records the native sample holds of her (the incremental
// folder versions only other people's contacts), and exports them typed by
// model.json.
func TestSynapseAccessRequest(t *testing.T) {
	for _, tc := range []struct {
		name      string
		subject   string
		withPhone bool
	}{
		{"email and contact id", `{"email":"avery.morgan@contoso.example","ids":{"contactId":"` + sample.DemoContactID + `"}}`, false},
		{"email, phone and contact id", `{"email":"avery.morgan@contoso.example","phone":"+1 425 555 0199","ids":{"contactId":"` + sample.DemoContactID + `"}}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{format: "synapse"})
			doc := h.submit(`{"type":"access","subject":` + tc.subject + `}`)
			doc, exp := h.waitTerminal(doc.ID)
			if doc.State != dsr.StateCompleted {
				t.Fatalf("state %s, error %+v\n%s", doc.State, doc.Error, h.logs.String())
			}
			demo := sample.Demo(h.size)
			want := h.synapseCounts(demo.RecordsWithoutPhone)
			if tc.withPhone {
				want = h.synapseCounts(demo.Records)
			}
			total := 0
			for _, s := range doc.Discovery.Sources {
				if int(s.Records) != want[s.Source] {
					t.Errorf("discovery %s: %d records, want %d", s.Source, s.Records, want[s.Source])
				}
				total += want[s.Source]
			}
			wantTotal := 12
			if tc.withPhone {
				wantTotal = 13
			}
			if total != wantTotal || int(doc.Discovery.TotalRecords) != total || len(doc.Discovery.Sources) != len(h.sources.Datasets) {
				t.Fatalf("discovery total %d over %d sources, want %d (%d) over %d", doc.Discovery.TotalRecords, len(doc.Discovery.Sources), total, wantTotal, len(h.sources.Datasets))
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
				herCases[c["incidentid"].(string)] = true
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
			// Typed by model.json: numbers and booleans as such, strings
			// (dates included) exactly as the files hold them.
			var contacts []map[string]any
			if err := json.Unmarshal(files["data/contacts.json"], &contacts); err != nil || len(contacts) != 1 {
				t.Fatalf("data/contacts.json: %v %v", err, contacts)
			}
			c := contacts[0]
			if _, ok := c["preferredcontactmethodcode"].(float64); !ok {
				t.Errorf("preferredcontactmethodcode %#v, want a number", c["preferredcontactmethodcode"])
			}
			if c["IsDelete"] != false || c["versionnumber"] != 1.0 || c["Id"] != sample.DemoContactID {
				t.Errorf("system columns: IsDelete %#v versionnumber %#v Id %#v", c["IsDelete"], c["versionnumber"], c["Id"])
			}
			if s, _ := c["SinkCreatedOn"].(string); !strings.HasSuffix(s, "M") {
				t.Errorf("SinkCreatedOn %#v, want Synapse Link's own format kept", c["SinkCreatedOn"])
			}
			if _, ok := c["msdyn_gdproptout"]; ok {
				t.Errorf("her row predates the added column, yet the export has it: %v", c)
			}
		})
	}
}

// Erasure over Synapse Link files is refused: the datasets to delete or
// mask in end source-failed with the reason (change it in Dataverse), the
// retained ones report what they kept, and no file changes.
func TestSynapseErasureRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{format: "synapse"})
	before := h.synapseSnapshot()
	doc := h.submit(demoErasure)
	if got := h.waitState(doc.ID, dsr.StateAwaitingApproval); got.State != dsr.StateAwaitingApproval {
		t.Fatalf("erasure did not wait for approval: %s", got.State)
	}
	if resp, b := h.do("POST", "/api/requests/"+doc.ID+"/approve", ""); resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, b)
	}
	done, _ := h.waitTerminal(doc.ID)
	if done.State != dsr.StateFailed || done.Error == nil || done.Error.Code != "source-failed" {
		t.Fatalf("state %s error %+v\n%s", done.State, done.Error, h.logs.String())
	}
	for _, name := range []string{"contacts", "cases", "surveys"} {
		if !strings.Contains(done.Error.Message, name) {
			t.Errorf("error %q does not name %s", done.Error.Message, name)
		}
	}
	if done.Erasure == nil {
		t.Fatalf("no erasure report: %+v", done)
	}
	want := h.synapseCounts(sample.Demo(h.size).RecordsWithoutPhone)
	results := map[string]dsr.ErasureResult{}
	for _, r := range done.Erasure.Sources {
		results[r.Source] = r
	}
	for _, name := range []string{"contacts", "cases", "surveys"} {
		r := results[name]
		if !strings.Contains(r.Error, "read-only") || !strings.Contains(r.Error, "Dataverse") || r.Deleted != 0 || r.Masked != 0 {
			t.Errorf("%s: %+v, want the Synapse Link refusal", name, r)
		}
	}
	if r := results["activity-log"]; r.Retained != int64(want["activity-log"]) || r.Error != "" {
		t.Errorf("activity-log: %+v", r)
	}
	if !equalBlobs(before, h.synapseSnapshot()) {
		t.Error("Synapse Link files changed")
	}
}

// Rectification is refused the same way; restriction too (the contacts
// table names a restriction field).
func TestSynapseRectificationAndRestrictionRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{format: "synapse"})
	before := h.synapseSnapshot()
	doc := h.submit(`{"type":"rectification",
		"subject":{"email":"avery.morgan@contoso.example","phone":"+1 425 555 0199","name":"Avery Morgan"},
		"corrections":{"email":"Avery.Quinn@contoso.example","phone":"+1 (425) 555-0123","name":"Avery Quinn"}}`)
	h.approveWhenAsked(doc.ID)
	done, _ := h.waitTerminal(doc.ID)
	if done.State != dsr.StateFailed || done.Error == nil || done.Error.Code != "source-failed" || done.Rectification == nil {
		t.Fatalf("rectification: %s %+v %+v\n%s", done.State, done.Error, done.Rectification, h.logs.String())
	}
	status := map[string]dsr.RectificationSource{}
	for _, s := range done.Rectification.Sources {
		status[s.Source] = s
	}
	for _, name := range []string{"contacts", "surveys"} {
		if s := status[name]; s.Rectified != 0 || !strings.Contains(s.Error, "read-only") || !strings.Contains(s.Error, "Dataverse") {
			t.Errorf("%s: %+v, want the Synapse Link refusal", name, s)
		}
	}
	if !equalBlobs(before, h.synapseSnapshot()) {
		t.Error("Synapse Link files changed")
	}

	doc = h.submit(`{"type":"restriction","subject":{"email":"avery.morgan@contoso.example","ids":{"contactId":"` + sample.DemoContactID + `"}}}`)
	h.approveWhenAsked(doc.ID)
	done, _ = h.waitTerminal(doc.ID)
	if done.State != dsr.StateFailed || done.Error == nil || done.Error.Code != "source-failed" || !strings.Contains(done.Error.Message, "contacts") {
		t.Fatalf("restriction: %s %+v\n%s", done.State, done.Error, h.logs.String())
	}
	if !equalBlobs(before, h.synapseSnapshot()) {
		t.Error("Synapse Link files changed")
	}
}
