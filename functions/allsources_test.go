package functions_test

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dsr-functions/dsr/functions"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/dataverse"
	"github.com/dsr-functions/dsr/shared/sources/dataverse/dataversetest"
	"github.com/dsr-functions/dsr/shared/sources/postgres"
	"github.com/dsr-functions/dsr/shared/sources/webhook"
	"github.com/dsr-functions/dsr/shared/sources/webhook/webhooktest"
)

// The demo subject's records in the three other kinds of source, and near
// misses that must never be found: a similar email, an email with her
// address inside it, another person's order and case.
const (
	avery         = sample.DemoEmail
	dvAvery       = "6f1c2a3b-0000-4000-8000-00000000a001"
	dvAveryAU     = "6f1c2a3b-0000-4000-8000-00000000a002"
	dvAveryCase   = "6f1c2a3b-0000-4000-8000-00000000c001"
	dvOtherCase   = "6f1c2a3b-0000-4000-8000-00000000c002"
	webhookSecret = "billing-signing-secret-0123456789-abcdefghij"
)

const pgSchema = `
CREATE TABLE contacts (id bigint PRIMARY KEY, email text, phone text, full_name text);
CREATE TABLE orders (id bigint PRIMARY KEY, contact_id bigint REFERENCES contacts(id), item text, shipping_address text);
INSERT INTO contacts VALUES
 (1, 'Avery.Morgan@contoso.example', '+1 425 555 0199', 'Avery Morgan'),
 (2, 'avery.morgan@contoso.example.au', '+61 2 9999 0000', 'Avery Morgan (AU)'),
 (3, 'xavery.morgan@contoso.example', NULL, 'X. Avery');
INSERT INTO orders VALUES
 (10, 1, 'Laptop', '1 Harbour Street'),
 (11, 1, 'Mouse', '1 Harbour Street'),
 (12, 2, 'Desk', '9 Sydney Road');
`

// fourSources is a harness whose sources config holds the sample's Blob
// datasets, two PostgreSQL tables, two Dataverse entity sets and a webhook
// system, all with the demo subject and decoys in them.
type fourSources struct {
	*harness
	pg  *pgx.Conn
	dv  *dataversetest.Server
	sys *webhooktest.System
}

func newFourSources(t *testing.T, billingAttempts int, edit func(*sources.Config)) *fourSources {
	t.Helper()
	ctx := context.Background()
	dsn := postgresDSN(t)
	pg, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close(context.Background()) })
	if _, err := pg.Exec(ctx, pgSchema); err != nil {
		t.Fatal(err)
	}

	dv := dataversetest.New(t, 500)
	dv.AddEntitySet("contacts", "contact", "contactid", "fullname", "emailaddress1", "dsr_restricted")
	dv.AddEntitySet("incidents", "incident", "incidentid", "title", "_customerid_value")
	dv.Put("contacts", map[string]any{"contactid": dvAvery, "fullname": "Avery Morgan", "emailaddress1": "AVERY.MORGAN@contoso.example"})
	dv.Put("contacts", map[string]any{"contactid": dvAveryAU, "fullname": "Avery Morgan (AU)", "emailaddress1": "avery.morgan@contoso.example.au"})
	dv.Put("incidents", map[string]any{"incidentid": dvAveryCase, "title": "Invoice question", "_customerid_value": dvAvery})
	dv.Put("incidents", map[string]any{"incidentid": dvOtherCase, "title": "Other person's case", "_customerid_value": dvAveryAU})

	sys := webhooktest.New(t, []byte(webhookSecret), webhooktest.Options{Datasets: []webhooktest.Dataset{{Name: "billing"}}})
	sys.Put("billing", `{"id":"inv-1","email":"avery.morgan@contoso.example","amount":120.5}`)
	sys.Put("billing", `{"id":"inv-2","email":"someone@fabrikam.example","amount":7}`)

	t.Setenv("DSR_E2E_PG_DSN", dsn)
	t.Setenv("DSR_E2E_BILLING_URL", sys.URL())
	t.Setenv("DSR_E2E_BILLING_SECRET", webhookSecret)
	facts := sources.Facts{Categories: []string{"contact details"}, Purposes: []string{"customer service"}, Retention: "3 years", Source: "provided by you"}
	h := newHarness(t, harnessOptions{
		env: map[string]string{"DSR_APPROVAL_TYPES": "none"},
		app: functions.Options{HTTPClient: dv.Client(), Credential: dv.Credential()},
		editSources: func(c *sources.Config) {
			c.Connections = map[string]sources.Connection{
				"crm-db": {Kind: sources.ConnPostgres, Options: &postgres.ConnectionOptions{DSNSetting: "DSR_E2E_PG_DSN"}},
				"d365":   {Kind: sources.ConnDataverse, Options: &dataverse.ConnectionOptions{URL: dv.URL()}},
				"billing": {Kind: sources.ConnWebhook, Options: &webhook.ConnectionOptions{URLSetting: "DSR_E2E_BILLING_URL",
					SecretSetting: "DSR_E2E_BILLING_SECRET", MaxAttempts: billingAttempts}},
			}
			c.Datasets = append(c.Datasets,
				sources.Dataset{Name: "pg-contacts", Connection: "crm-db", Options: &postgres.TableOptions{Table: "contacts"}, Key: "id", Facts: facts,
					Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}, {Field: "phone", Kind: sources.KindPhone}}},
				sources.Dataset{Name: "pg-orders", Connection: "crm-db", Options: &postgres.TableOptions{Table: "orders"}, Key: "id", Facts: facts,
					Relations: []sources.Relation{{Field: "contact_id", References: "pg-contacts", ReferencesField: "id"}}},
				sources.Dataset{Name: "d365-contacts", Connection: "d365", Key: "contactid", Facts: facts,
					Options:     &dataverse.EntityOptions{EntitySet: "contacts", Select: []string{"fullname", "emailaddress1"}},
					Identifiers: []sources.Identifier{{Field: "emailaddress1", Kind: sources.KindEmail}}},
				sources.Dataset{Name: "d365-cases", Connection: "d365", Key: "incidentid", Facts: facts,
					Options:   &dataverse.EntityOptions{EntitySet: "incidents", Select: []string{"title", "_customerid_value"}},
					Relations: []sources.Relation{{Field: "_customerid_value", References: "d365-contacts", ReferencesField: "contactid"}}},
				sources.Dataset{Name: "billing", Connection: "billing", Options: &webhook.DatasetOptions{}, Facts: facts},
			)
			if edit != nil {
				edit(c)
			}
		},
	})
	return &fourSources{harness: h, pg: pg, dv: dv, sys: sys}
}

// exportedRecords downloads a completed request's package and returns the
// records of each dataset, and the summary text.
func (h *harness) exportedRecords(exp exportDoc) (map[string][]map[string]any, string, []byte) {
	h.t.Helper()
	status, b, _ := download(h.t, exp.URL)
	if status != 200 {
		h.t.Fatalf("download: %d", status)
	}
	files := readZip(h.t, b)
	out := map[string][]map[string]any{}
	for name, data := range files {
		ds, ok := strings.CutPrefix(name, "data/")
		if !ok || !strings.HasSuffix(ds, ".json") {
			continue
		}
		var recs []map[string]any
		if err := json.Unmarshal(data, &recs); err != nil {
			h.t.Fatalf("%s: %v", name, err)
		}
		out[strings.TrimSuffix(ds, ".json")] = recs
	}
	var all []byte
	for _, data := range files {
		all = append(all, data...)
	}
	return out, string(files["summary.txt"]), all
}

func (f *fourSources) pgIDs(table string) []int64 {
	f.t.Helper()
	rows, err := f.pg.Query(context.Background(), "SELECT id FROM "+table+" ORDER BY id")
	if err != nil {
		f.t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		f.t.Fatal(err)
	}
	return ids
}

// A subject in all four kinds of source: one access request exports all of
// her records and none of the decoys; one erasure removes her from all four.
func TestOneRequestCoversAllFourKindsOfSource(t *testing.T) {
	f := newFourSources(t, 0, nil)

	doc := f.submit(`{"type":"access","subject":{"email":"` + avery + `"}}`)
	doc, exp := f.waitTerminal(doc.ID)
	if doc.State != dsr.StateCompleted || len(doc.FailedSources) != 0 {
		t.Fatalf("access: state %s, failed %v, error %+v\n%s", doc.State, doc.FailedSources, doc.Error, f.logs.String())
	}
	recs, _, raw := f.exportedRecords(exp)
	want := map[string][]string{
		"pg-contacts":   {"id", "1"},
		"pg-orders":     {"id", "10", "11"},
		"d365-contacts": {"contactid", dvAvery},
		"d365-cases":    {"incidentid", dvAveryCase},
		"billing":       {"id", "inv-1"},
	}
	for ds, w := range want {
		var got []string
		for _, r := range recs[ds] {
			got = append(got, strings.TrimSuffix(strings.TrimSuffix(jsonText(r[w[0]]), ".0"), "\n"))
		}
		if strings.Join(got, ",") != strings.Join(w[1:], ",") {
			t.Errorf("export %s: keys %v, want %v", ds, got, w[1:])
		}
	}
	if len(recs["contacts"]) == 0 || len(recs["cases"]) == 0 {
		t.Errorf("the Blob datasets are missing from the export: %d contacts, %d cases", len(recs["contacts"]), len(recs["cases"]))
	}
	for _, decoy := range []string{"contoso.example.au", "xavery", "Desk", dvAveryAU, dvOtherCase, "inv-2", "fabrikam"} {
		if strings.Contains(string(raw), decoy) {
			t.Errorf("the export holds decoy %q", decoy)
		}
	}

	doc = f.submit(`{"type":"erasure","subject":{"email":"` + avery + `"}}`)
	doc, _ = f.waitTerminal(doc.ID)
	if doc.State != dsr.StateCompleted || doc.Verification == nil || doc.Verification.Residual != 0 || len(doc.FailedSources) != 0 {
		t.Fatalf("erasure: state %s, verification %+v, failed %v, error %+v\n%s", doc.State, doc.Verification, doc.FailedSources, doc.Error, f.logs.String())
	}
	results := map[string]dsr.ErasureResult{}
	for _, r := range doc.Erasure.Sources {
		results[r.Source] = r
	}
	for ds, n := range map[string]int64{"pg-contacts": 1, "pg-orders": 2, "d365-contacts": 1, "d365-cases": 1, "billing": 1} {
		if results[ds].Deleted != n || results[ds].Error != "" {
			t.Errorf("erasure of %s: %+v, want %d deleted", ds, results[ds], n)
		}
	}
	if got := f.pgIDs("contacts"); len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Errorf("PostgreSQL contacts left: %v, want [2 3]", got)
	}
	if got := f.pgIDs("orders"); len(got) != 1 || got[0] != 12 {
		t.Errorf("PostgreSQL orders left: %v, want [12]", got)
	}
	if f.dv.Row("contacts", dvAvery) != nil || f.dv.Row("incidents", dvAveryCase) != nil {
		t.Error("Dataverse still holds her contact or case")
	}
	if f.dv.Row("contacts", dvAveryAU) == nil || f.dv.Row("incidents", dvOtherCase) == nil {
		t.Error("Dataverse lost another person's contact or case")
	}
	if _, ok := f.sys.Record("billing", "inv-1"); ok {
		t.Error("the webhook system still holds her invoice")
	}
	if _, ok := f.sys.Record("billing", "inv-2"); !ok {
		t.Error("the webhook system lost another person's invoice")
	}
	if c := f.sys.Changes(); len(c) != 1 || c[0].Action != "erasure" || c[0].RequestID != doc.ID {
		t.Errorf("webhook changes %+v, want one erasure for %s", c, doc.ID)
	}
	// Nothing personal reached the logs.
	if logs := f.logs.String(); strings.Contains(strings.ToLower(logs), avery) || strings.Contains(logs, "Harbour") {
		t.Error("the logs hold personal data")
	}
}

// A system that keeps failing fails its part with the reason, after the
// retries; the other systems' records are exported all the same.
func TestFailingSystemFailsOnlyItsPart(t *testing.T) {
	f := newFourSources(t, 1, nil)
	f.sys.Fail(webhooktest.Failure{Action: "access", Status: 503, Times: -1})

	doc := f.submit(`{"type":"access","subject":{"email":"` + avery + `"}}`)
	doc, exp := f.waitTerminal(doc.ID)
	if doc.State != dsr.StateCompleted {
		t.Fatalf("state %s, error %+v\n%s", doc.State, doc.Error, f.logs.String())
	}
	if len(doc.FailedSources) != 1 || doc.FailedSources[0] != "billing" {
		t.Fatalf("failedSources %v, want [billing]", doc.FailedSources)
	}
	var reason string
	for _, s := range doc.Discovery.Sources {
		if s.Source == "billing" {
			reason = s.Error
		}
	}
	if !strings.Contains(reason, "billing") || !strings.Contains(reason, "503") {
		t.Errorf("discovery reason %q does not name the system and status", reason)
	}
	if n := len(f.sys.Requests()); n != 3 {
		t.Errorf("the failing system was asked %d times, want 3 (one per delivery, DefaultSourceAttempts)\n%s", n, f.logs.String())
	}
	recs, summary, _ := f.exportedRecords(exp)
	if len(recs["pg-orders"]) != 2 || len(recs["d365-cases"]) != 1 || len(recs["billing"]) != 0 {
		t.Errorf("export: %d pg-orders, %d d365-cases, %d billing", len(recs["pg-orders"]), len(recs["d365-cases"]), len(recs["billing"]))
	}
	if !strings.Contains(summary, "could not be searched") || !strings.Contains(summary, "503") {
		t.Errorf("summary does not say billing could not be searched:\n%s", summary)
	}
	if strings.Contains(reason, avery) || strings.Contains(summary, "someone@") {
		t.Error("the failure reason holds personal data")
	}
}

func jsonText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// newAsyncBilling is the sample app plus an asynchronous webhook system,
// "billing", holding one invoice of the demo subject; the app's front door
// is the address it tells the system to post its answers to.
func newAsyncBilling(t *testing.T, o webhooktest.Options) (*harness, *webhooktest.System) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.Datasets, o.Async = []webhooktest.Dataset{{Name: "billing"}}, true
	sys := webhooktest.New(t, []byte(webhookSecret), o)
	sys.Put("billing", `{"id":"inv-1","email":"avery.morgan@contoso.example","amount":120.5}`)
	t.Setenv("DSR_E2E_BILLING_URL", sys.URL())
	t.Setenv("DSR_E2E_BILLING_SECRET", webhookSecret)
	facts := sources.Facts{Categories: []string{"billing"}, Purposes: []string{"invoicing"}, Retention: "10 years", Source: "billing system"}
	h := newHarness(t, harnessOptions{
		front: ln,
		env:   map[string]string{"WEBSITE_HOSTNAME": ln.Addr().String()},
		editSources: func(c *sources.Config) {
			c.Connections = map[string]sources.Connection{"billing": {Kind: sources.ConnWebhook, Options: &webhook.ConnectionOptions{
				URLSetting: "DSR_E2E_BILLING_URL", SecretSetting: "DSR_E2E_BILLING_SECRET", Async: true}}}
			c.Datasets = append(c.Datasets, sources.Dataset{Name: "billing", Connection: "billing", Options: &webhook.DatasetOptions{}, Facts: facts})
		},
	})
	return h, sys
}

// A webhook system that answers later: discovery waits, the system posts
// its answer to the callback function, which drives the request on; the
// kept answer is removed when the request ends.
func TestAsyncWebhookSystemAnswersThroughTheCallback(t *testing.T) {
	h, sys := newAsyncBilling(t, webhooktest.Options{CallbackDelay: 100 * time.Millisecond})
	sys.Put("billing", `{"id":"inv-2","email":"someone@fabrikam.example","amount":7}`)
	// An unsigned delivery is refused by the app, and stores nothing.
	resp, b := h.do("POST", "/api/webhooks/billing/r0123456789abcdef0123456789ab", `{"records":{"billing":[{"id":"x"}]},"next":""}`, "x-functions-key", "")
	if resp.StatusCode != 401 || !strings.Contains(string(b), "signature") {
		t.Fatalf("unsigned callback: %d %s", resp.StatusCode, b)
	}
	if resp, _ := h.do("POST", "/api/webhooks/nope/r0123456789abcdef0123456789ab", `{}`); resp.StatusCode != 404 {
		t.Fatalf("callback for an unknown system: %d", resp.StatusCode)
	}

	doc := h.submit(`{"type":"access","subject":{"email":"` + avery + `"}}`)
	doc, exp := h.waitTerminal(doc.ID)
	if doc.State != dsr.StateCompleted || len(doc.FailedSources) != 0 {
		t.Fatalf("state %s, failed %v, error %+v\n%s", doc.State, doc.FailedSources, doc.Error, h.logs.String())
	}
	sys.Wait()
	if d := sys.Deliveries(); len(d) == 0 || d[len(d)-1].Status != 200 {
		t.Fatalf("callback deliveries %+v", d)
	}
	status, zb, _ := download(t, exp.URL)
	if status != 200 {
		t.Fatalf("download: %d", status)
	}
	files := readZip(t, zb)
	var recs []map[string]any
	if err := json.Unmarshal(files["data/billing.json"], &recs); err != nil || len(recs) != 1 || recs[0]["id"] != "inv-1" {
		t.Fatalf("billing in the export: %s (%v)", files["data/billing.json"], err)
	}
	// The answer the system posted is gone once the request has ended (the
	// stage removes it right after recording the end, so allow it a moment).
	var left []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left = left[:0]
		for _, name := range h.blobNames(h.cfg.StateContainer) {
			if strings.HasPrefix(name, "webhooks/") {
				left = append(left, name)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("kept answers left after the request ended: %v", left)
	}
}

// Rectification and restriction reach every kind of source too: the new
// email lands in PostgreSQL, Dataverse and the webhook system, and the
// restriction flag is set in each.
func TestRectificationAndRestrictionReachEverySource(t *testing.T) {
	f := newFourSources(t, 0, func(c *sources.Config) {
		for i := range c.Datasets {
			switch d := &c.Datasets[i]; d.Name {
			case "pg-contacts":
				d.Rectifiable, d.RestrictionField = true, "restricted"
			case "d365-contacts":
				d.Rectifiable, d.RestrictionField = true, "dsr_restricted"
				eo := d.Options.(*dataverse.EntityOptions)
				eo.Select = append(eo.Select, "dsr_restricted")
			case "billing":
				d.Rectifiable = true
			}
		}
	})
	ctx := context.Background()
	if _, err := f.pg.Exec(ctx, `ALTER TABLE contacts ADD COLUMN restricted boolean NOT NULL DEFAULT false`); err != nil {
		t.Fatal(err)
	}
	const newEmail = "avery.quinn@contoso.example"
	doc := f.submit(`{"type":"rectification","subject":{"email":"` + avery + `"},"corrections":{"email":"Avery.Quinn@contoso.example"}}`)
	doc, _ = f.waitTerminal(doc.ID)
	if doc.State != dsr.StateCompleted || len(doc.FailedSources) != 0 {
		t.Fatalf("rectification: state %s, failed %v, error %+v, report %+v\n%s", doc.State, doc.FailedSources, doc.Error, doc.Rectification, f.logs.String())
	}
	var email string
	if err := f.pg.QueryRow(ctx, `SELECT email FROM contacts WHERE id = 1`).Scan(&email); err != nil || email != newEmail {
		t.Errorf("PostgreSQL email %q (%v), want %s", email, err, newEmail)
	}
	if err := f.pg.QueryRow(ctx, `SELECT email FROM contacts WHERE id = 2`).Scan(&email); err != nil || email != "avery.morgan@contoso.example.au" {
		t.Errorf("another person's PostgreSQL email changed: %q", email)
	}
	if got := f.dv.Row("contacts", dvAvery)["emailaddress1"]; got != newEmail {
		t.Errorf("Dataverse email %v, want %s", got, newEmail)
	}
	if rec, _ := f.sys.Record("billing", "inv-1"); !strings.Contains(rec, newEmail) {
		t.Errorf("webhook record %s does not hold the new email", rec)
	}

	doc = f.submit(`{"type":"restriction","subject":{"email":"` + newEmail + `"}}`)
	doc, _ = f.waitTerminal(doc.ID)
	if doc.State != dsr.StateCompleted || len(doc.FailedSources) != 0 {
		t.Fatalf("restriction: state %s, failed %v, error %+v\n%s", doc.State, doc.FailedSources, doc.Error, f.logs.String())
	}
	var restricted bool
	if err := f.pg.QueryRow(ctx, `SELECT restricted FROM contacts WHERE id = 1`).Scan(&restricted); err != nil || !restricted {
		t.Errorf("PostgreSQL restricted = %v (%v), want true", restricted, err)
	}
	if err := f.pg.QueryRow(ctx, `SELECT restricted FROM contacts WHERE id = 2`).Scan(&restricted); err != nil || restricted {
		t.Errorf("another person's PostgreSQL row restricted = %v", restricted)
	}
	if got := f.dv.Row("contacts", dvAvery)["dsr_restricted"]; got != true {
		t.Errorf("Dataverse dsr_restricted = %v, want true", got)
	}
	if !f.sys.Restricted("billing", "inv-1") || f.sys.Restricted("billing", "inv-2") {
		t.Error("the webhook system's restriction flags are wrong")
	}
}

// A system that refuses its part of an erasure (here PostgreSQL: orders
// are retained for accounting, so their customer cannot be deleted) fails
// that part after the retries, with the reason; every other system is
// erased, and the request fails naming the system.
func TestErasureFailingInOneSystemKeepsTheOthers(t *testing.T) {
	f := newFourSources(t, 0, func(c *sources.Config) {
		for i := range c.Datasets {
			if c.Datasets[i].Name == "pg-orders" {
				c.Datasets[i].Erasure = &sources.Erasure{Action: sources.EraseRetain, Ground: "Art. 17(3)(b): accounting records", LegalBasis: "commercial code"}
			}
		}
	})
	doc := f.submit(`{"type":"erasure","subject":{"email":"` + avery + `"}}`)
	doc, _ = f.waitTerminal(doc.ID)
	if doc.State != dsr.StateFailed || doc.Error == nil || doc.Error.Code != "source-failed" || !strings.Contains(doc.Error.Message, "pg-contacts") {
		t.Fatalf("state %s, error %+v, failed %v\n%s", doc.State, doc.Error, doc.FailedSources, f.logs.String())
	}
	results := map[string]dsr.ErasureResult{}
	for _, r := range doc.Erasure.Sources {
		results[r.Source] = r
	}
	if r := results["pg-contacts"]; !strings.Contains(r.Error, "SQLSTATE 23503") || r.Deleted != 0 {
		t.Errorf("pg-contacts: %+v, want the foreign key violation and nothing deleted", r)
	}
	if r := results["pg-orders"]; r.Retained != 2 {
		t.Errorf("pg-orders: %+v, want 2 retained", r)
	}
	for ds, n := range map[string]int64{"d365-contacts": 1, "d365-cases": 1, "billing": 1} {
		if results[ds].Deleted != n || results[ds].Error != "" {
			t.Errorf("erasure of %s: %+v, want %d deleted", ds, results[ds], n)
		}
	}
	if f.dv.Row("contacts", dvAvery) != nil {
		t.Error("Dataverse still holds her contact")
	}
	if got := f.pgIDs("contacts"); len(got) != 3 {
		t.Errorf("PostgreSQL contacts %v: the failed transaction must change nothing", got)
	}
	if doc.Verification == nil || doc.Verification.Residual != 0 {
		t.Errorf("verification %+v: the known failure is not a surprise residual", doc.Verification)
	}
	if strings.Contains(doc.Error.Message, avery) || strings.Contains(results["pg-contacts"].Error, avery) {
		t.Error("the failure holds personal data")
	}
}

// A webhook system that takes a change and finishes it later (202): the
// stage asks again after PendingDelay and completes once the system says
// it is done, without asking it to erase twice.
func TestWebhookChangeAnsweredLater(t *testing.T) {
	f := newFourSources(t, 0, nil)
	f.app.Service.PendingDelay = 50 * time.Millisecond
	f.sys.Fail(webhooktest.Failure{Action: "erasure", Status: 202, Times: 2})
	doc := f.submit(`{"type":"erasure","subject":{"email":"` + avery + `"}}`)
	doc, _ = f.waitTerminal(doc.ID)
	if doc.State != dsr.StateCompleted || len(doc.FailedSources) != 0 {
		t.Fatalf("state %s, failed %v, error %+v\n%s", doc.State, doc.FailedSources, doc.Error, f.logs.String())
	}
	var erasures int
	for _, r := range f.sys.Requests() {
		if r.Action == "erasure" {
			erasures++
		}
	}
	if erasures != 3 {
		t.Errorf("the system was asked to erase %d times, want 3 (two 202s, then done)", erasures)
	}
	if c := f.sys.Changes(); len(c) != 1 {
		t.Errorf("changes %+v, want the erasure applied once", c)
	}
	if _, ok := f.sys.Record("billing", "inv-1"); ok {
		t.Error("the webhook system still holds her invoice")
	}
}

// A system that accepted an access request but never answers is given up
// after MaxPending: its part fails with the reason, the rest is exported.
func TestAsyncSystemThatNeverAnswersIsGivenUp(t *testing.T) {
	h, sys := newAsyncBilling(t, webhooktest.Options{ManualCallbacks: true})
	h.app.Service.PendingDelay = 50 * time.Millisecond
	h.app.Service.MaxPending = 300 * time.Millisecond
	doc := h.submit(`{"type":"access","subject":{"email":"` + avery + `"}}`)
	doc, _ = h.waitTerminal(doc.ID)
	if doc.State != dsr.StateCompleted || len(doc.FailedSources) != 1 || doc.FailedSources[0] != "billing" {
		t.Fatalf("state %s, failed %v, error %+v\n%s", doc.State, doc.FailedSources, doc.Error, h.logs.String())
	}
	var reason string
	for _, s := range doc.Discovery.Sources {
		if s.Source == "billing" {
			reason = s.Error
		}
	}
	if !strings.Contains(reason, "no answer in time") {
		t.Errorf("reason %q", reason)
	}
	var asked int
	for _, r := range sys.Requests() {
		if r.Action == "access" {
			asked++
		}
	}
	if asked < 2 {
		t.Errorf("the system was asked %d times while waiting, want it asked again", asked)
	}
}
