package blobdataset

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/sources"
)

// The CRM fixture: contacts (NDJSON) ← cases (CSV, relation contact_id and
// free text) ← notes (JSON array, relation case). The subject is
// ann@x.example, +1 425 555 0100 and contactId C1. Comments give each
// record's ordinal and why it does or does not belong to her.
var contactsLines = []string{
	/* 0 */ `{"contactid":"C2","name":"Joann Example","email":"joann@x.example","phone":"+1 425 555 0101"}`, // decoys: joann@, phone one digit off
	``, // blank lines are not records
	/* 1 */ `{"contactid":"C3","name":"A. Example","email":"ANN@X.EXAMPLE","phone":""}`, // email in upper case
	/* 2 */ `{"contactid":"C4","name":"Ann Example","email":"ann@x.example.au"}`, // longer domain; the name never identifies
	/* 3 */ `{"contactid":"C5","name":"Ann Example","email":"ann@x.examples"}`, // longer TLD
	/* 4 */ `{"contactid":"C6","name":"Ann B","email":"ann.b@x.example"}`, // other local part
	" \t ",
	/* 5 */ `{"contactid":"C7","email":"  Ann@X.Example  "}` + "\r", // padded, mixed case, CRLF line end
	/* 6 */ `{"contactid":"C8","name":"Ann Example","phone":"+44 425 555 0100"}`, // same digits, other country
	/* 7 */ `{"contactid":"C9","phone":"(425) 555-0100"}`, // national format, default region US
	/* 8 */ `{"contactid":"C10","name":"Ann Example","email":"ann@x.example.au"}`, // id C10 is not C1
	/* 9 */ `{"contactid":"C1 ","email":"other@y.example"}`, // ids are trimmed: "C1 " is C1
	/* 10 */ `{"contactid":"C1","name":"Ann Example","email":"ann@x.example","phone":"+1 425 555 0100","notes":"prefers email"}`, // her own contact
	/* 11 */ `{"contactid":"C12","phone":14255550100}`, // phone stored as a JSON number
	/* 12 */ `{"contactid":"C13","email":"joann@x.example","comment":"cc ann@x.example"}`, // her email only in an unconfigured field
	/* 13 */ `{"contactid":"C14","phone":"+1 425 555 01000"}`, // one digit too many
	/* 14 */ `{"contactid":"C17","phone":"  001 425 555 0100 "}`, // padded, 00 international prefix
	/* 15 */ `{"contactid":"C18","email":"ann@x.example@y.example"}`, // not an email
}

// Cases: header order is deliberately not alphabetical; descriptions are
// quoted and hold commas, doubled quotes and line breaks.
const casesCSV = "case_id,contact_id,title,description\r\n" +
	/* 0 */ "K1,C1,Login,\"Customer says \"\"cannot log in\"\", tried twice,\nthen called back.\"\r\n" + // relation to C1
	/* 1 */ "K2,C2,Refund,\"Joann wrote from joann@x.example, asking for a refund.\"\r\n" + // decoy email
	/* 2 */ "K3,C5,Forwarded,\"Forwarded by a colleague.\nPlease reply to Ann@X.example.\"\r\n" + // free text, end of sentence; C5 is not hers
	/* 3 */ "K4,C10,Other,\"Mentions ann@x.example.au, ann@x.examples and ann.b@x.example; also C1.\"\r\n" + // decoys only; ids are not searched in free text
	/* 4 */ "K5,C3,Upper,No contact details here.\r\n" + // relation to C3 (matched by upper-case email)
	/* 5 */ "K6,C6,Callback,\"Call back on 425-555-0100, please.\"\r\n" + // free-text phone
	/* 6 */ "K7,C8,Decoy phones,\"Call +1 425 555 0101 or +44 425 555 0100.\"\r\n" + // decoy phones
	/* 7 */ "K8,C10,Order,Order 14255550100123 shipped\r\n" + // digits glued into an order number
	/* 8 */ "K10,C4,Prefix,\"K1 is not this case; \"\"K1\"\" neither.\"\r\n" + // case id K10 (notes must not confuse it with K1)
	/* 9 */ "K9,C17,Intl,International caller.\r\n" // relation to C17

const notesJSON = `[
  {"note_id": 1, "case": "K2", "text": "refund approved"},
  {"note_id": 2, "case": "K3", "text": "replied"},
  {"note_id": 3, "case": "K1", "text": "password reset"},
  {"note_id": 4, "case": "K10", "text": "closed"},
  {"note_id": 5, "case": "K6", "text": "called"},
  {"note_id": 6, "case": "K7", "text": "no answer"},
  {"note_id": 7, "case": null},
  {"note_id": 8, "case": "K9", "tags": ["intl"], "n": 12345678901234567890},
  {"note_id": 9, "case": "K5", "text": "escalated"},
  {"note_id": 10, "case": "K1", "text": "confirmed"}
]`

func contactsDataset() sources.Dataset {
	return sources.Dataset{
		Name: "contacts", Blob: "crm/contacts.ndjson", Format: sources.FormatNDJSON, Key: "contactid",
		Identifiers: []sources.Identifier{
			{Field: "email", Kind: sources.KindEmail},
			{Field: "phone", Kind: sources.KindPhone},
			{Field: "contactid", Kind: sources.KindID, IDName: "contactId"},
			{Field: "name", Kind: sources.KindName},
		},
	}
}

func casesDataset() sources.Dataset {
	return sources.Dataset{
		Name: "cases", Blob: "crm/cases.csv", Format: sources.FormatCSV, Key: "case_id",
		FreeText:  []string{"description"},
		Relations: []sources.Relation{{Field: "contact_id", References: "contacts", ReferencesField: "contactid"}},
	}
}

func notesDataset() sources.Dataset {
	return sources.Dataset{
		Name: "notes", Blob: "crm/notes.json", Format: sources.FormatJSONArray,
		Relations: []sources.Relation{{Field: "case", References: "cases", ReferencesField: "case_id"}},
	}
}

// putCRM uploads the CRM fixture and returns the ETags by blob name.
func (f *fixture) putCRM() map[string]string {
	return map[string]string{
		"crm/contacts.ndjson": f.put("crm/contacts.ndjson", strings.Join(contactsLines, "\n")+"\n"),
		"crm/cases.csv":       f.put("crm/cases.csv", casesCSV),
		"crm/notes.json":      f.put("crm/notes.json", notesJSON),
	}
}

var ann = sources.Subject{Emails: []string{"ann@x.example"}, Phones: []string{"14255550100"}, IDs: map[string]string{"contactId": "C1"}}

// crmCases are the subjects tried on the CRM fixture and their records.
var crmCases = []struct {
	name    string
	subject sources.Subject
	want    map[string][]int64
}{
	// K3 and K6 only mention her (free text): they are disclosed, but the
	// notes under them are not hers (relations run only from her own
	// records).
	{"email, phone and id", ann, map[string][]int64{
		"contacts": {1, 5, 7, 9, 10, 11, 14},
		"cases":    {0, 2, 4, 5, 9},
		"notes":    {2, 7, 8, 9},
	}},
	{"email only", sources.Subject{Emails: []string{"ann@x.example"}}, map[string][]int64{
		"contacts": {1, 5, 10},
		"cases":    {0, 2, 4}, // C1, free text, C3
		"notes":    {2, 8, 9}, // K1 and K5 (not K3, which only mentions her)
	}},
	{"phone only", sources.Subject{Phones: []string{"14255550100"}}, map[string][]int64{
		"contacts": {7, 10, 11, 14},
		"cases":    {0, 5, 9}, // C1, free-text phone, C17
		"notes":    {2, 7, 9},
	}},
	{"id only", sources.Subject{IDs: map[string]string{"contactId": "C1"}}, map[string][]int64{
		"contacts": {9, 10},
		"cases":    {0},
		"notes":    {2, 9},
	}},
	{"id C10 is not C1", sources.Subject{IDs: map[string]string{"contactId": "C10"}}, map[string][]int64{
		"contacts": {8},
		"cases":    {3, 7},
		"notes":    nil,
	}},
	{"id under another name", sources.Subject{IDs: map[string]string{"systemUserId": "C1"}}, map[string][]int64{
		"contacts": nil, "cases": nil, "notes": nil,
	}},
	{"identifiers not present", sources.Subject{
		Emails: []string{"nobody@x.example", "ann@x.exampl"},
		Phones: []string{"442079460958", "14255550102"},
		IDs:    map[string]string{"contactId": "C999"},
	}, map[string][]int64{"contacts": nil, "cases": nil, "notes": nil}},
	{"no identifiers at all", sources.Subject{}, map[string][]int64{
		"contacts": nil, "cases": nil, "notes": nil,
	}},
}

func TestDiscoverCRM(t *testing.T) {
	f := newFixture(t)
	etags := f.putCRM()
	c := f.connector(contactsDataset(), casesDataset(), notesDataset())
	for _, tt := range crmCases {
		t.Run(tt.name, func(t *testing.T) {
			d := f.discover(c, tt.subject)
			checkOrdinals(t, d, tt.want)
			var total int64
			for _, m := range d.Datasets {
				total += int64(len(tt.want[m.Dataset]))
				if len(tt.want[m.Dataset]) == 0 {
					if m.Records != 0 || m.Locations != nil {
						t.Errorf("dataset %s: %+v, want no records and no Locations", m.Dataset, m)
					}
					continue
				}
				if len(m.Locations) != 1 {
					t.Fatalf("dataset %s: %d Locations, want 1", m.Dataset, len(m.Locations))
				}
				loc := m.Locations[0]
				if etag := etags[loc.Blob]; etag == "" || loc.ETag != etag {
					t.Errorf("dataset %s: Location %s ETag %q, want %q", m.Dataset, loc.Blob, loc.ETag, etag)
				}
			}
			if d.Total() != total {
				t.Errorf("Total %d, want %d", d.Total(), total)
			}
		})
	}
}

// TestDiscoverConfigOrderAndCycles: listing datasets in reverse order, and
// closing the relations into a cycle (a case whose id a matched note
// references belongs to the subject: no new record) settle to the same
// result as the plain config.
func TestDiscoverConfigOrderAndCycles(t *testing.T) {
	f := newFixture(t)
	f.putCRM()
	cyclic := casesDataset()
	cyclic.Relations = append(cyclic.Relations, sources.Relation{Field: "case_id", References: "notes", ReferencesField: "case"})
	configs := map[string]*Connector{
		"forward":           f.connector(contactsDataset(), casesDataset(), notesDataset()),
		"reverse":           f.connector(notesDataset(), casesDataset(), contactsDataset()),
		"middle first":      f.connector(casesDataset(), notesDataset(), contactsDataset()),
		"cycle":             f.connector(contactsDataset(), cyclic, notesDataset()),
		"reverse and cycle": f.connector(notesDataset(), cyclic, contactsDataset()),
	}
	for _, tt := range crmCases {
		t.Run(tt.name, func(t *testing.T) {
			for name, c := range configs {
				d := f.discover(c, tt.subject)
				got := ordinals(d)
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("config %s: %v, want %v", name, got, tt.want)
				}
			}
		})
	}
}

// TestDiscoverLongRelationChain follows a relation of a dataset to itself
// (a reply belongs to whoever the message it replies to belongs to) down a
// chain longer than the number of datasets, stored so that every pass
// finds only the next reply. Discovery must reach the fixed point rather
// than give up after a fixed number of passes.
func TestDiscoverLongRelationChain(t *testing.T) {
	f := newFixture(t)
	var lines []string
	const n = 9
	// Stored newest first: M9 replies to M8, ..., M2 to M1; M1 is from Ann.
	for i := n; i >= 2; i-- {
		lines = append(lines, `{"id":"M`+strconv.Itoa(i)+`","from":"bob@y.example","reply_to":"M`+strconv.Itoa(i-1)+`"}`)
	}
	lines = append(lines, `{"id":"M1","from":"Ann@x.example"}`)
	lines = append(lines, `{"id":"M10","from":"bob@y.example","reply_to":"M0"}`) // replies to nobody of hers
	f.put("messages.ndjson", strings.Join(lines, "\n"))
	msgs := sources.Dataset{
		Name: "messages", Blob: "messages.ndjson", Format: sources.FormatNDJSON,
		Identifiers: []sources.Identifier{{Field: "from", Kind: sources.KindEmail}},
		Relations:   []sources.Relation{{Field: "reply_to", References: "messages", ReferencesField: "id"}},
	}
	// The same data seen from a second dataset that relates to the first,
	// so there are more datasets than one and the chain is still longer.
	copies := sources.Dataset{
		Name: "attachments", Blob: "messages.ndjson", Format: sources.FormatNDJSON,
		Relations: []sources.Relation{{Field: "id", References: "messages", ReferencesField: "id"}},
	}
	c := f.connector(copies, msgs)
	d := f.discover(c, sources.Subject{Emails: []string{"ann@x.example"}})
	all := []int64{0, 1, 2, 3, 4, 5, 6, 7, 8}
	checkOrdinals(t, d, map[string][]int64{"messages": all, "attachments": all})
}

// TestRelationValuesAreTrimmed: relation values compare like ids, trimmed;
// a blank referenced value links nothing.
func TestRelationValuesAreTrimmed(t *testing.T) {
	f := newFixture(t)
	f.put("contacts.ndjson", `{"id":"  ","email":"ann@x.example"}`+"\n"+`{"id":" C1 ","email":"ann@x.example"}`+"\n"+`{"id":"C2","email":"bob@y.example"}`)
	f.put("cases.csv", "case,contact\nK1,C1\nK2,\"  \"\nK3,\nK4, C1\nK5,C2\nK6,\"\t\"\n")
	c := f.connector(
		sources.Dataset{Name: "contacts", Blob: "contacts.ndjson", Format: sources.FormatNDJSON,
			Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}}},
		sources.Dataset{Name: "cases", Blob: "cases.csv", Format: sources.FormatCSV,
			Relations: []sources.Relation{{Field: "contact", References: "contacts", ReferencesField: "id"}}},
	)
	d := f.discover(c, sources.Subject{Emails: []string{"ann@x.example"}})
	checkOrdinals(t, d, map[string][]int64{"contacts": {0, 1}, "cases": {0, 3}})
}

// TestDiscoverPrefix: a prefix dataset has one Location per blob with
// matches, in blob name order, each with that blob's ETag, ordinals that
// do not count blank lines, and the byte offset and length of each
// matched line with its line ending.
func TestDiscoverPrefix(t *testing.T) {
	f := newFixture(t)
	etags := map[string]string{}
	content := map[string]string{}
	put := func(name, data string) { etags[name], content[name] = f.put(name, data), data }
	// at is the location of the given lines (each with its line ending)
	// of one blob.
	at := func(name string, ordinals []int64, lines ...string) sources.Location {
		loc := sources.Location{Blob: name, ETag: etags[name], Ordinals: ordinals}
		for _, l := range lines {
			i := strings.Index(content[name], l)
			if i < 0 || strings.Count(content[name], l) != 1 {
				t.Fatalf("line %q not once in %s", l, name)
			}
			loc.Offsets = append(loc.Offsets, int64(i))
			loc.Lengths = append(loc.Lengths, int64(len(l)))
		}
		return loc
	}
	put("logs/2025-01.ndjson", "\n"+
		`{"user":"bob@y.example","msg":"login"}`+"\n\n"+ // 0
		`{"user":"ann@x.example","msg":"login"}`+"\n   \n\t\n"+ // 1: identifier
		`{"user":"carol@y.example","msg":"ann@x.example changed her password"}`+"\r\n"+ // 2: free text
		`{"user":"dan@y.example","msg":"joann@x.example"}`+"\n\n") // 3: decoy
	put("logs/2025-02.ndjson", `{"user":"Ann@X.example","msg":"logout"}`+"\n\n\n"+ // 0
		`{"user":"bob@y.example","msg":"x"}`+"\n"+ // 1
		`{"user":"bob@y.example","msg":"call +1 425 555 0100"}`) // 2: free-text phone, no final newline
	put("logs/2025-03.ndjson", `{"user":"bob@y.example","msg":"nothing"}`+"\n")
	put("logs/empty.ndjson", "")
	put("logs-archive/2024.ndjson", `{"user":"ann@x.example"}`)
	put("other/logs/2025.ndjson", `{"user":"ann@x.example"}`)
	put("logs/2024-12.ndjson", "\n\n"+`{"user":"ann@x.example","msg":"signup"}`) // uploaded last, listed first

	logs := sources.Dataset{
		Name: "logs", Prefix: "logs/", Format: sources.FormatNDJSON,
		Identifiers: []sources.Identifier{{Field: "user", Kind: sources.KindEmail}},
		FreeText:    []string{"msg"},
	}
	none := sources.Dataset{
		Name: "none", Prefix: "nothing-here/", Format: sources.FormatNDJSON,
		Identifiers: []sources.Identifier{{Field: "user", Kind: sources.KindEmail}},
	}
	c := f.connector(logs, none)
	d := f.discover(c, ann)
	want := sources.DatasetMatches{Dataset: "logs", Records: 5, Locations: []sources.Location{
		at("logs/2024-12.ndjson", []int64{0}, `{"user":"ann@x.example","msg":"signup"}`),
		at("logs/2025-01.ndjson", []int64{1, 2}, `{"user":"ann@x.example","msg":"login"}`+"\n", `{"user":"carol@y.example","msg":"ann@x.example changed her password"}`+"\r\n"),
		at("logs/2025-02.ndjson", []int64{0, 2}, `{"user":"Ann@X.example","msg":"logout"}`+"\n", `{"user":"bob@y.example","msg":"call +1 425 555 0100"}`),
	}}
	// Records 2 of 2025-01 and 2025-02 only mention her in free text.
	want.Locations[1].Mentions = []int64{2}
	want.Locations[2].Mentions = []int64{2}
	if got := matchesOf(t, d, "logs"); !reflect.DeepEqual(got, want) {
		t.Errorf("logs:\n got %+v\nwant %+v", got, want)
	}
	if got := matchesOf(t, d, "none"); got.Records != 0 || got.Locations != nil {
		t.Errorf("none: %+v", got)
	}

	recs := mustRead(t, c, want)
	wantRecs := []string{
		`{"user":"ann@x.example","msg":"signup"}`,
		`{"user":"ann@x.example","msg":"login"}`,
		`{"user":"carol@y.example","msg":"ann@x.example changed her password"}`,
		`{"user":"Ann@X.example","msg":"logout"}`,
		`{"user":"bob@y.example","msg":"call +1 425 555 0100"}`,
	}
	if !reflect.DeepEqual(recs, wantRecs) {
		t.Errorf("Read:\n got %q\nwant %q", recs, wantRecs)
	}

	// One blob of the prefix changes: reading fails, even though the
	// other blobs are unchanged.
	f.put("logs/2025-02.ndjson", `{"user":"Ann@X.example","msg":"logout"}`)
	wantChanged(t, c, want)
}

// TestDiscoverNestedFields: dotted field paths reach into nested objects,
// and free text is searched in strings nested in arrays and objects.
func TestDiscoverNestedFields(t *testing.T) {
	f := newFixture(t)
	lines := []string{
		/* 0 */ `{"id":1,"customer":{"email":"Ann@x.example","name":"Ann"}}`,
		/* 1 */ `{"id":2,"customer":{"email":"joann@x.example"},"messages":["ann@x.example.au"]}`,
		/* 2 */ `{"id":3,"customer":{"name":"x"},"messages":["hi",{"from":"bob","body":"contact me at ann@x.example"}]}`,
		/* 3 */ `{"id":4,"customer":{"contact":{"phone":"+1 (425) 555-0100"}}}`,
		/* 4 */ `{"id":5,"customer":"ann@x.example"}`, // "customer" itself is no identifier
		/* 5 */ `{"id":6,"customer.email":"ann@x.example"}`, // a literal dotted key is found too
		/* 6 */ `{"id":7,"messages":[["deep",["reply to ann@x.example."]]]}`,
		/* 7 */ `{"id":8,"messages":[{"body":"joann@x.example"},{"body":"4255550101"}]}`,
		/* 8 */ `{"id":9,"messages":{"last":{"body":"call 425 555 0100"}}}`,
		/* 9 */ `{"id":10,"email":"ann@x.example","customer":{"email":null}}`, // top-level email is not configured
		/* 10 */ `{"id":11,"messages":[12345,true,null,"ann at x.example"]}`,
		/* 11 */ `{"id":12,"account":{"ref":"A-7"}}`, // id in a nested field
		/* 12 */ `{"id":13,"account":{"ref":"A-77"}}`,
	}
	f.put("orders.ndjson", strings.Join(lines, "\n"))
	c := f.connector(sources.Dataset{
		Name: "orders", Blob: "orders.ndjson", Format: sources.FormatNDJSON,
		Identifiers: []sources.Identifier{
			{Field: "customer.email", Kind: sources.KindEmail},
			{Field: "customer.contact.phone", Kind: sources.KindPhone},
			{Field: "account.ref", Kind: sources.KindID, IDName: "account"},
		},
		FreeText: []string{"messages"},
	})
	subj := ann
	subj.IDs = map[string]string{"account": "A-7"}
	d := f.discover(c, subj)
	checkOrdinals(t, d, map[string][]int64{"orders": {0, 2, 3, 5, 6, 8, 11}})
}

func TestReadCRM(t *testing.T) {
	f := newFixture(t)
	f.putCRM()
	c := f.connector(contactsDataset(), casesDataset(), notesDataset())
	d := f.discover(c, ann)
	want := map[string][]string{
		"contacts": {
			`{"contactid":"C3","name":"A. Example","email":"ANN@X.EXAMPLE","phone":""}`,
			`{"contactid":"C7","email":"  Ann@X.Example  "}`,
			`{"contactid":"C9","phone":"(425) 555-0100"}`,
			`{"contactid":"C1 ","email":"other@y.example"}`,
			`{"contactid":"C1","name":"Ann Example","email":"ann@x.example","phone":"+1 425 555 0100","notes":"prefers email"}`,
			`{"contactid":"C12","phone":14255550100}`,
			`{"contactid":"C17","phone":"  001 425 555 0100 "}`,
		},
		"cases": { // columns in header order, cells exactly as stored
			`{"case_id":"K1","contact_id":"C1","title":"Login","description":"Customer says \"cannot log in\", tried twice,\nthen called back."}`,
			`{"case_id":"K3","contact_id":"C5","title":"Forwarded","description":"Forwarded by a colleague.\nPlease reply to Ann@X.example."}`,
			`{"case_id":"K5","contact_id":"C3","title":"Upper","description":"No contact details here."}`,
			`{"case_id":"K6","contact_id":"C6","title":"Callback","description":"Call back on 425-555-0100, please."}`,
			`{"case_id":"K9","contact_id":"C17","title":"Intl","description":"International caller."}`,
		},
		"notes": {
			`{"note_id":3,"case":"K1","text":"password reset"}`,
			`{"note_id":8,"case":"K9","tags":["intl"],"n":12345678901234567890}`,
			`{"note_id":9,"case":"K5","text":"escalated"}`,
			`{"note_id":10,"case":"K1","text":"confirmed"}`,
		},
	}
	for _, m := range d.Datasets {
		got := mustRead(t, c, m)
		if !reflect.DeepEqual(got, want[m.Dataset]) {
			t.Errorf("Read %s:\n got %q\nwant %q", m.Dataset, got, want[m.Dataset])
		}
	}

	// Reading nothing emits nothing.
	if got := mustRead(t, c, sources.DatasetMatches{Dataset: "notes"}); len(got) != 0 {
		t.Errorf("Read without Locations emitted %q", got)
	}

	// An emit error stops Read and comes back wrapped.
	errStopHere := errors.New("stop here")
	calls := 0
	err := c.Read(context.Background(), matchesOf(t, d, "cases"), func(sources.Record) error {
		calls++
		return errStopHere
	})
	if !errors.Is(err, errStopHere) || calls != 1 {
		t.Errorf("Read with failing emit: %v after %d calls", err, calls)
	}
	if errors.Is(err, sources.ErrChanged) {
		t.Errorf("emit error reported as ErrChanged: %v", err)
	}

	// A cancelled context stops Read.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Read(ctx, matchesOf(t, d, "contacts"), func(sources.Record) error { return nil }); err == nil {
		t.Error("Read with a cancelled context succeeded")
	}
}

// TestReadChanged: Read refuses data that changed since discovery.
func TestReadChanged(t *testing.T) {
	tests := []struct {
		name   string
		change func(f *fixture, dm *sources.DatasetMatches)
	}{
		{"overwritten with other content", func(f *fixture, _ *sources.DatasetMatches) {
			f.put("crm/contacts.ndjson", `{"contactid":"C1","email":"ann@x.example"}`)
		}},
		{"overwritten with the same content", func(f *fixture, _ *sources.DatasetMatches) {
			f.put("crm/contacts.ndjson", strings.Join(contactsLines, "\n")+"\n")
		}},
		{"deleted", func(f *fixture, _ *sources.DatasetMatches) { f.del("crm/contacts.ndjson") }},
		{"container deleted", func(f *fixture, _ *sources.DatasetMatches) {
			if _, err := f.acct.Service.DeleteContainer(f.ctx, f.c, nil); err != nil {
				f.t.Fatal(err)
			}
		}},
		{"positions beyond the end", func(f *fixture, dm *sources.DatasetMatches) {
			// Same ETag, but an ordinal the blob does not have (a stale
			// or forged position): never silently fewer records.
			dm.Locations[0].Ordinals = append(dm.Locations[0].Ordinals, 1000)
			dm.Records++
		}},
		{"dataset no longer configured", func(f *fixture, dm *sources.DatasetMatches) { dm.Dataset = "gone" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.putCRM()
			c := f.connector(contactsDataset(), casesDataset(), notesDataset())
			d := f.discover(c, ann)
			dm := matchesOf(t, d, "contacts")
			if len(mustRead(t, c, dm)) != 7 {
				t.Fatal("unchanged read is not 7 records")
			}
			tt.change(f, &dm)
			wantChanged(t, c, dm)
		})
	}
}

// TestDiscoverMalformed: a malformed record that passes the prefilter fails
// discovery with an error naming the dataset, blob and record number but
// no content. A malformed record the prefilter rejects is never parsed, so
// it does not fail discovery: discovery only vouches for the records that
// may hold the subject's identifiers.
func TestDiscoverMalformed(t *testing.T) {
	tests := []struct {
		name    string
		format  sources.Format
		data    string
		wantErr []string // substrings; nil means discovery succeeds
		want    []int64
	}{
		{"ndjson candidate line", sources.FormatNDJSON,
			`{"email":"bob@y.example"}` + "\n\n" + `{"email":"ann@x.example", "secret": broken` + "\n" + `{"email":"ann@x.example"}`,
			[]string{"dataset bad", "data.ndjson", "record 1"}, nil},
		{"ndjson candidate that is not an object", sources.FormatNDJSON,
			`["ann@x.example","secret"]`,
			[]string{"dataset bad", "record 0"}, nil},
		{"ndjson candidate with two objects on a line", sources.FormatNDJSON,
			`{"email":"bob@y.example"}` + "\n" + `{"email":"ann@x.example"} {"secret":"x"}`,
			[]string{"dataset bad", "record 1"}, nil},
		{"ndjson line the prefilter rejects", sources.FormatNDJSON,
			`{"email":"bob@y.example", secret broken` + "\n" + `{"email":"Ann@x.example"}` + "\nnot json at all secret\n",
			nil, []int64{1}},
		{"csv with a wrong number of cells", sources.FormatCSV,
			"email,note\nbob@y.example,x\nann@x.example,secret,extra\n",
			[]string{"dataset bad", "line 3"}, nil},
		{"csv with a bare quote", sources.FormatCSV,
			"email,note\nann@x.example,sec\"ret\n",
			[]string{"dataset bad"}, nil},
		{"json-array that is an object", sources.FormatJSONArray,
			`{"email":"ann@x.example","secret":1}`,
			[]string{"dataset bad", "not a JSON array"}, nil},
		{"json-array candidate element that is no object", sources.FormatJSONArray,
			`[{"email":"bob@y.example"}, "ann@x.example secret"]`,
			[]string{"dataset bad", "record 1"}, nil},
		{"json-array element the prefilter rejects", sources.FormatJSONArray,
			`[{"email":"bob@y.example"}, "secret", 7, {"email":"ANN@x.example"}]`,
			nil, []int64{3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			blob := "data." + map[sources.Format]string{sources.FormatNDJSON: "ndjson", sources.FormatCSV: "csv", sources.FormatJSONArray: "json"}[tt.format]
			f.put(blob, tt.data)
			c := f.connector(sources.Dataset{
				Name: "bad", Blob: blob, Format: tt.format,
				Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}},
			})
			d, err := c.Discover(context.Background(), sources.Subject{Emails: []string{"ann@x.example"}})
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Discover: %v", err)
				}
				checkOrdinals(t, d, map[string][]int64{"bad": tt.want})
				return
			}
			// A data error fails this dataset for good; discovery goes on.
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			dm := d.Datasets[0]
			if !dm.Permanent || dm.Records != 0 {
				t.Fatalf("dataset not failed for good: %+v", dm)
			}
			msg := dm.Error
			for _, w := range tt.wantErr {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			for _, leak := range []string{"ann", "secret", "broken", "bob"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q shows record content %q", msg, leak)
				}
			}
		})
	}
}

// A missing blob fails its dataset for good, not the discovery: the other
// datasets are searched.
func TestDiscoverMissingBlob(t *testing.T) {
	f := newFixture(t)
	f.put("other.ndjson", `{"email":"ann@x.example"}`+"\n")
	c := f.connector(contactsDataset(), sources.Dataset{Name: "other", Blob: "other.ndjson", Format: sources.FormatNDJSON,
		Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}}})
	d, err := c.Discover(context.Background(), ann)
	if err != nil {
		t.Fatalf("Discover with a missing blob: %v", err)
	}
	if dm := d.Datasets[0]; !dm.Permanent || !strings.Contains(dm.Error, "contacts") || !strings.Contains(dm.Error, "not found") {
		t.Fatalf("missing blob: %+v", dm)
	}
	if dm := d.Datasets[1]; dm.Error != "" || dm.Records != 1 {
		t.Fatalf("the other dataset: %+v", dm)
	}
}

func TestDiscoverCancelled(t *testing.T) {
	f := newFixture(t)
	f.putCRM()
	c := f.connector(contactsDataset(), casesDataset(), notesDataset())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Discover(ctx, ann); err == nil {
		t.Fatal("Discover with a cancelled context succeeded")
	}
}
