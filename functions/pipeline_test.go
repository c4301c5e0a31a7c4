package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/queue"
	"github.com/dsr-functions/dsr/shared/queue/embedded"
	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/sources"
)

const demoAccess = `{"type":"access","subject":{"email":"avery.morgan@contoso.example"}}`

// The same message delivered twice changes nothing: one history entry per
// stage, one next-stage message, one export.
func TestRedeliveryIsIdempotent(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	doc := h.submit(demoAccess)
	if n := len(h.broker.Peek("dsr-discover")); n != 1 {
		t.Fatalf("%d discover messages after submit, want 1", n)
	}

	d := h.deliver("discover")
	h.redeliver("discover", d)
	if n := len(h.broker.Peek("dsr-export")); n != 1 {
		t.Fatalf("%d export messages after a redelivered discover, want 1", n)
	}
	mid, _ := h.get(doc.ID)

	e := h.deliver("export")
	first, exp1 := h.get(doc.ID)
	h.redeliver("export", e)
	h.redeliver("discover", d)
	after, exp2 := h.get(doc.ID)

	if len(mid.History) != 3 || len(first.History) != 4 || len(after.History) != 4 {
		t.Fatalf("history lengths %d, %d, %d; want 3, 4, 4", len(mid.History), len(first.History), len(after.History))
	}
	if after.State != dsr.StateCompleted || exp1.SHA256 != exp2.SHA256 || exp1.Bytes != exp2.Bytes {
		t.Fatalf("redelivery changed the request: %s, %s vs %s", after.State, exp1.SHA256, exp2.SHA256)
	}
	if names := h.blobNames(h.cfg.ExportsContainer); len(names) != 1 {
		t.Fatalf("exports container holds %v, want one package", names)
	}
	if !h.broker.Idle() {
		t.Fatal("redelivery after completion enqueued more work")
	}
	// The audit trail has one entry per transition, whatever was redelivered.
	entries := h.auditTrail(doc.ID)
	var got []string
	for _, e := range entries {
		got = append(got, e.Stage+"/"+e.State+"/"+e.Actor.Kind)
	}
	if strings.Join(got, " ") != "intake/received/key discovery/in_progress/system export/in_progress/system done/completed/system" {
		t.Fatalf("audit trail: %v", got)
	}
}

type auditEntry struct {
	ID    string `json:"id"`
	Event string `json:"event"`
	Stage string `json:"stage"`
	State string `json:"state"`
	Actor struct {
		Kind string `json:"kind"`
	} `json:"actor"`
}

func (h *harness) auditTrail(id string) []auditEntry {
	h.t.Helper()
	resp, b := h.do("GET", "/api/requests/"+id+"/audit", "")
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("audit: %d %s", resp.StatusCode, b)
	}
	var trail struct {
		Items []auditEntry `json:"items"`
	}
	if err := json.Unmarshal(b, &trail); err != nil {
		h.t.Fatal(err)
	}
	return trail.Items
}

// A crash after discovery saved its result but before the next message went
// out is resumed by redelivery of the discover message.
func TestLostNextMessageIsResent(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	doc := h.submit(demoAccess)
	d := h.deliver("discover")
	// Simulate the crash: the export message never reached the queue.
	ctx := context.Background()
	lost, err := h.broker.Receive(ctx, "dsr-export")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.broker.Complete("dsr-export", lost.LockToken); err != nil {
		t.Fatal(err)
	}
	// Outside the duplicate window the resent message is accepted again.
	h.broker = embedded.New(embedded.Options{})
	h.host.Broker = h.broker
	h.app.Service.Sender = h.broker
	h.redeliver("discover", d)
	h.deliver("export")
	if got, _ := h.get(doc.ID); got.State != dsr.StateCompleted {
		t.Fatalf("state %s after resume", got.State)
	}
}

// Data that changes between discovery and export is discovered again, never
// read at stale positions.
func TestDatasetChangedAfterDiscovery(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	doc := h.submit(demoAccess)
	h.deliver("discover")
	before, _ := h.get(doc.ID)

	// A new contact is inserted at the top of contacts: every position moves.
	var buf bytes.Buffer
	buf.WriteString(`{"contactid":"00000000-0000-0000-0000-000000000001","fullname":"Zed Newcomer","emailaddress1":"zed@contoso.example"}` + "\n")
	if err := sample.Generate(&buf, sample.File{Container: sample.Container, Name: sample.ContactsBlob}, h.size, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := h.app.Account.Service.NewContainerClient(h.datasets).NewBlockBlobClient(sample.ContactsBlob).UploadBuffer(context.Background(), buf.Bytes(), &blockblob.UploadBufferOptions{}); err != nil {
		t.Fatal(err)
	}
	h.deliver("export")
	after, exp := h.waitTerminal(doc.ID)
	if after.State != dsr.StateCompleted {
		t.Fatalf("state %s: %+v", after.State, after.Error)
	}
	if after.Discovery.TotalRecords != before.Discovery.TotalRecords {
		t.Fatalf("rediscovery found %d records, first discovery %d", after.Discovery.TotalRecords, before.Discovery.TotalRecords)
	}
	_, body, _ := download(t, exp.URL)
	files := readZip(t, body)
	if bytes.Contains(files["data/contacts.json"], []byte("zed@")) || !bytes.Contains(bytes.ToLower(files["data/contacts.json"]), []byte(sample.DemoEmail)) {
		t.Fatalf("contacts export after the change: %s", files["data/contacts.json"])
	}
}

func TestIntakeQueue(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	ctx := context.Background()
	send := func(id, body string) {
		if err := h.broker.Send(ctx, "dsr-intake", queue.Message{ID: id, Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}

	// A valid message becomes a request; the same message again (as a
	// redelivery) does not make a second one.
	send("crm-4711", demoAccess)
	d := h.deliver("intake")
	h.redeliver("intake", d)
	items := h.list("")
	if len(items) != 1 || items[0].Type != dsr.TypeAccess {
		t.Fatalf("requests after intake: %+v", items)
	}
	st, _, err := h.app.Service.Store.Get(ctx, items[0].ID)
	if err != nil || st.Origin != "queue" || st.Subject.Email != sample.DemoEmail {
		t.Fatalf("stored request: %+v %v", st, err)
	}
	if n := len(h.broker.Peek("dsr-discover")); n != 1 {
		t.Fatalf("%d discover messages, want 1", n)
	}

	// An invalid message is rejected at once with a reason: not retried,
	// not stored, and the reason names the field but not the value.
	send("crm-4712", `{"type":"access","subject":{"email":"not-an-email@"}}`)
	d = h.deliver("intake")
	if d.DeliveryCount != 1 {
		t.Fatalf("invalid message delivered %d times", d.DeliveryCount)
	}
	rejected := h.broker.Peek("dsr-intake-rejected")
	if len(rejected) != 1 {
		t.Fatalf("%d rejection notices, want 1", len(rejected))
	}
	r := rejected[0]
	if r.Properties["DeadLetterReason"] != "invalid-request" || r.Properties["OriginalMessageId"] != "crm-4712" {
		t.Fatalf("rejection properties %v", r.Properties)
	}
	if !strings.Contains(r.Properties["DeadLetterErrorDescription"].(string), "subject.email") || strings.Contains(string(r.Body), "not-an-email") {
		t.Fatalf("rejection notice %s / %v", r.Body, r.Properties)
	}
	if len(h.broker.Peek("dsr-intake")) != 0 || len(h.broker.Peek("dsr-intake"+embedded.DeadLetterSuffix)) != 0 {
		t.Fatal("the invalid message is still on the intake queue")
	}
	if items := h.list(""); len(items) != 1 {
		t.Fatalf("an invalid message stored a request: %d requests", len(items))
	}
}

// unreachable is the app's connector with its storage failing for now: a
// transient error, retried on scheduled messages until the retries run out
// (a broken dataset, by contrast, fails its part at once).
type unreachable struct{ sources.Connector }

func (unreachable) Discover(context.Context, sources.Subject) (*sources.Discovery, error) {
	return nil, errors.New("dataset contacts: read blob crm/contacts.ndjson: connection reset by peer")
}

// A stage that keeps failing is retried on scheduled messages, each
// delivered once (no invocation fails, so no delivery is burnt and nothing
// dead-letters), and after the last retry the request fails with the cause.
func TestFailingStageFailsRequestWithCause(t *testing.T) {
	h := newHarness(t, harnessOptions{maxDelivery: 3, env: map[string]string{"DSR_STAGE_RETRIES": "4"}})
	h.app.Service.Connector = unreachable{h.app.Service.Connector}
	doc := h.submit(demoAccess)
	doc, _ = h.waitTerminal(doc.ID)
	if doc.State != dsr.StateFailed || doc.Error == nil || doc.Error.Code != "stage-retries-exhausted" {
		t.Fatalf("state %s error %+v", doc.State, doc.Error)
	}
	for _, want := range []string{"discovery", "5 times", "connection reset"} {
		if !strings.Contains(doc.Error.Message, want) {
			t.Errorf("error message %q lacks %q", doc.Error.Message, want)
		}
	}
	if strings.Contains(doc.Error.Message, sample.DemoEmail) {
		t.Fatal("error message holds personal data")
	}
	logs := h.logs.String()
	if n := strings.Count(logs, "retry scheduled"); n != 4 {
		t.Errorf("%d retries scheduled, want 4", n)
	}
	if strings.Contains(logs, "message abandoned") || len(h.broker.Peek("dsr-discover"+embedded.DeadLetterSuffix)) != 0 {
		t.Errorf("a failing stage burnt deliveries:\n%s", logs)
	}
}

func TestIdempotencyKey(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	a := h.submit(demoAccess, "Idempotency-Key", "portal-123")
	resp, b := h.do("POST", "/api/requests", demoAccess, "Idempotency-Key", "portal-123")
	var again dsr.Request
	_ = json.Unmarshal(b, &again)
	if resp.StatusCode != http.StatusAccepted || again.ID != a.ID || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s (first %s)", resp.StatusCode, again.ID, a.ID)
	}
	resp, b = h.do("POST", "/api/requests", `{"type":"discovery","subject":{"email":"avery.morgan@contoso.example"}}`, "Idempotency-Key", "portal-123")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(b), "idempotency-key-reused") {
		t.Fatalf("key reused with another body: %d %s", resp.StatusCode, b)
	}
	if n := len(h.list("")); n != 1 {
		t.Fatalf("%d requests stored, want 1", n)
	}
	if n := len(h.broker.Peek("dsr-discover")); n != 1 {
		t.Fatalf("%d discover messages, want 1", n)
	}
}

type summary struct {
	ID    string    `json:"id"`
	Type  dsr.Type  `json:"type"`
	State dsr.State `json:"state"`
}

// list reads every page of GET /api/requests with the given query.
func (h *harness) list(query string) []summary {
	h.t.Helper()
	var all []summary
	token := ""
	for pages := 0; ; pages++ {
		q := query
		if token != "" {
			q += "&pageToken=" + token
		}
		resp, b := h.do("GET", "/api/requests?limit=2"+q, "")
		if resp.StatusCode != http.StatusOK {
			h.t.Fatalf("list: %d %s", resp.StatusCode, b)
		}
		var page struct {
			Items         []summary `json:"items"`
			NextPageToken string    `json:"nextPageToken"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			h.t.Fatal(err)
		}
		all = append(all, page.Items...)
		if page.NextPageToken == "" {
			return all
		}
		if pages > 100 {
			h.t.Fatal("pagination does not end")
		}
		token = page.NextPageToken
	}
}

func TestListFiltersAndPages(t *testing.T) {
	h := newHarness(t, harnessOptions{env: noRepeatFlagging})
	var ids []string
	for i := 0; i < 3; i++ {
		ids = append(ids, h.submit(demoAccess).ID)
	}
	disc := h.submit(`{"type":"discovery","subject":{"email":"nobody@contoso.example"}}`)
	for _, id := range append(ids, disc.ID) {
		h.waitTerminal(id)
	}
	all := h.list("")
	if len(all) != 4 {
		t.Fatalf("listed %d requests, want 4", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].ID >= all[i].ID {
			t.Fatalf("not in creation order: %v", all)
		}
	}
	if got := h.list("&type=discovery"); len(got) != 1 || got[0].ID != disc.ID {
		t.Fatalf("type filter: %+v", got)
	}
	if got := h.list("&state=completed&type=access"); len(got) != 3 {
		t.Fatalf("state+type filter: %+v", got)
	}
	if got := h.list("&state=failed"); len(got) != 0 {
		t.Fatalf("state filter: %+v", got)
	}
}

func TestExportLinkMintsFreshLinks(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	doc := h.submit(demoAccess)
	h.waitTerminal(doc.ID)
	resp, b := h.do("POST", "/api/requests/"+doc.ID+"/export-link", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("export-link: %d %s", resp.StatusCode, b)
	}
	var link exportDoc
	if err := json.Unmarshal(b, &link); err != nil || link.URL == "" {
		t.Fatalf("link %s: %v", b, err)
	}
	if status, body, _ := download(t, link.URL); status != http.StatusOK || int64(len(body)) != link.Bytes {
		t.Fatalf("download: %d, %d bytes (want %d)", status, len(body), link.Bytes)
	}
	// The link is read-only and for that one blob only.
	if status, _, _ := download(t, strings.Replace(link.URL, doc.ID+"%2Fdsr-export", doc.ID+"%2Fother", 1)); status != http.StatusForbidden && status != http.StatusNotFound {
		t.Fatalf("link used for another blob: %d", status)
	}
	if !strings.Contains(h.logs.String(), doc.ID) || strings.Contains(h.logs.String(), "sig=") {
		t.Fatal("export links must never be logged")
	}
}
