package blobdataset

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/sources"
)

// synapseModel is a model.json with one contact table of the given
// attributes (name:type, comma-separated) and an unrelated account table.
func synapseModel(attrs string) string {
	var b strings.Builder
	b.WriteString(`{"name":"cdm","version":"1.0","entities":[{"$type":"LocalEntity","name":"account","attributes":[{"name":"Id","dataType":"guid"}],"partitions":[]},`)
	b.WriteString(`{"$type":"LocalEntity","name":"contact","annotations":[{"name":"Athena:PartitionGranularity","value":"Year"}],"attributes":[`)
	for i, a := range strings.Split(attrs, ",") {
		name, typ, _ := strings.Cut(a, ":")
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"name":"` + name + `","dataType":"` + typ + `","maxLength":-1}`)
	}
	b.WriteString(`],"partitions":[{"name":"2024","location":"https://x.dfs.core.windows.net/c/contact/2024.csv"}]}]}`)
	return b.String()
}

const synapseAttrs = "Id:guid,SinkModifiedOn:dateTime,fullname:string,emailaddress1:string,telephone1:string,score:int64,balance:decimal,donotemail:boolean,versionnumber:int64,IsDelete:boolean"

func synapseDataset(prefix string) sources.Dataset {
	return sources.Dataset{Name: "contacts", Prefix: prefix, Format: sources.FormatSynapse, Entity: "contact", Rectifiable: true,
		Identifiers: []sources.Identifier{{Field: "emailaddress1", Kind: sources.KindEmail}, {Field: "telephone1", Kind: sources.KindPhone}, {Field: "Id", Kind: sources.KindID, IDName: "contactId"}}}
}

// TestSynapseDiscoverAndRead covers headerless rows with the columns of
// model.json, every version of a row (append-only), deletion markers,
// incremental folders (each with its own model.json, one with a column
// added later so older rows are short, one empty), the system folders and
// other tables skipped, and export typed by dataType.
func TestSynapseDiscoverAndRead(t *testing.T) {
	f := newFixture(t)
	const id = "6d1f7a3c-2b94-4e58-a0c7-58e2b91d4f36"
	old := synapseModel(synapseAttrs)
	grown := synapseModel(synapseAttrs + ",optout:boolean")
	f.put("lake/model.json", grown)
	// Written before optout existed: short rows.
	f.put("lake/contact/2023.csv", "\ufeff"+`0a0a0a0a-0000-0000-0000-000000000001,"6/28/2021 4:34:35 PM","Someone Else","someone@example.com","+1 206 555 0100",3,12.50,False,1,False`+"\r\n"+
		id+`,"6/28/2021 4:34:35 PM","Avery ""AM"" Morgan","Avery.Morgan@Contoso.example","+1 (425) 555-0199",7,-0.25,True,1,False`+"\r\n")
	f.put("lake/contact/2024.csv", `0a0a0a0a-0000-0000-0000-000000000002,"1/2/2024 9:00:00 AM","Third","third@example.com",,,,,1,False,True`+"\n"+
		id+`,"1/2/2024 9:00:00 AM","Avery Morgan","avery.morgan@contoso.example","line one`+"\n"+`line two",,,,2,False,False,`+"\n")
	// An incremental folder with its own (older) model.json: a new version
	// and a deletion marker (only Id and the system columns).
	f.put("lake/2026-01-15T10.15.00Z/model.json", old)
	f.put("lake/2026-01-15T10.15.00Z/contact/2026.csv", id+`,"1/15/2026 10:21:07 AM","Avery Morgan","avery.morgan@contoso.example",,,,,3,False`+"\n"+
		id+`,"1/15/2026 10:30:00 AM",,,,,,,4,True`+"\n")
	// A file in a subfolder of the table's folder is the table's too.
	f.put("lake/contact/2025/01.csv", `0a0a0a0a-0000-0000-0000-000000000003,"1/2/2025 9:00:00 AM","Sub","sub@example.com"`+"\n")
	// An interval that changed nothing.
	f.put("lake/2026-01-15T10.30.00Z/model.json", strings.Replace(old, `"partitions":[{"name":"2024","location":"https://x.dfs.core.windows.net/c/contact/2024.csv"}]`, `"partitions":[]`, 1))
	// Never read: system folders, other tables, other files.
	for _, n := range []string{"OptionsetMetadata/contact.csv", "Microsoft.Athena.TrickleFeedService/contact/x.csv", "Changelog/contact/x.csv", "EntitySyncFailure/contact/2024.csv", "account/2024.csv", "contact/readme.txt", "other/model.json"} {
		f.put("lake/"+n, "not,a,synapse,row,"+id+",avery.morgan@contoso.example\n")
	}
	f.put("lake/Microsoft.Athena.TrickleFeedService/contact-model.json", "{")

	c := f.connector(synapseDataset("lake/"))
	d := f.discover(c, sources.Subject{Emails: []string{"avery.morgan@contoso.example"}})
	checkOrdinals(t, d, map[string][]int64{"contacts": {0, 1, 1}})
	dm := matchesOf(t, d, "contacts")
	var blobs []string
	for _, l := range dm.Locations {
		blobs = append(blobs, l.Blob)
	}
	if got := strings.Join(blobs, " "); got != "lake/2026-01-15T10.15.00Z/contact/2026.csv lake/contact/2023.csv lake/contact/2024.csv" {
		t.Errorf("blobs %s", got)
	}
	// By id, the deletion marker is hers too: every stored row is.
	d = f.discover(c, sources.Subject{IDs: map[string]string{"contactId": id}})
	checkOrdinals(t, d, map[string][]int64{"contacts": {0, 1, 1, 1}})
	d = f.discover(c, sources.Subject{Emails: []string{"sub@example.com"}})
	if dm := matchesOf(t, d, "contacts"); dm.Records != 1 || dm.Locations[0].Blob != "lake/contact/2025/01.csv" {
		t.Errorf("the file in a subfolder: %+v", dm)
	}
	// By phone, with the region's default.
	d = f.discover(c, sources.Subject{Phones: []string{"14255550199"}})
	checkOrdinals(t, d, map[string][]int64{"contacts": {1}})

	d = f.discover(c, sources.Subject{IDs: map[string]string{"contactId": id}})
	got := mustRead(t, c, matchesOf(t, d, "contacts"))
	want := []string{
		`{"Id":"` + id + `","SinkModifiedOn":"1/15/2026 10:21:07 AM","fullname":"Avery Morgan","emailaddress1":"avery.morgan@contoso.example","telephone1":"","score":null,"balance":null,"donotemail":null,"versionnumber":3,"IsDelete":false}`,
		`{"Id":"` + id + `","SinkModifiedOn":"1/15/2026 10:30:00 AM","fullname":"","emailaddress1":"","telephone1":"","score":null,"balance":null,"donotemail":null,"versionnumber":4,"IsDelete":true}`,
		`{"Id":"` + id + `","SinkModifiedOn":"6/28/2021 4:34:35 PM","fullname":"Avery \"AM\" Morgan","emailaddress1":"Avery.Morgan@Contoso.example","telephone1":"+1 (425) 555-0199","score":7,"balance":-0.25,"donotemail":true,"versionnumber":1,"IsDelete":false}`,
		`{"Id":"` + id + `","SinkModifiedOn":"1/2/2024 9:00:00 AM","fullname":"Avery Morgan","emailaddress1":"avery.morgan@contoso.example","telephone1":"line one\nline two","score":null,"balance":null,"donotemail":null,"versionnumber":2,"IsDelete":false,"optout":false}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("read:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The same by streaming (a location without byte positions) and by
	// one request per record.
	streamed := matchesOf(t, d, "contacts")
	streamed.Locations = slices.Clone(streamed.Locations)
	for i := range streamed.Locations {
		streamed.Locations[i].Offsets, streamed.Locations[i].Lengths = nil, nil
	}
	if got := mustRead(t, c, streamed); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("streamed read:\n%s", strings.Join(got, "\n"))
	}
	defer func(g int64) { readGap = g }(readGap)
	readGap = 0
	if got := mustRead(t, c, matchesOf(t, d, "contacts")); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("read one record a request:\n%s", strings.Join(got, "\n"))
	}
	// Positions that do not hold a whole row.
	moved := matchesOf(t, d, "contacts")
	moved.Locations = slices.Clone(moved.Locations)
	moved.Locations[1].Offsets = []int64{moved.Locations[1].Offsets[0] + 1}
	moved.Locations[1].Lengths = []int64{moved.Locations[1].Lengths[0] - 1}
	wantChanged(t, c, moved)

	// A data file that changed since discovery.
	f.put("lake/contact/2024.csv", "changed\n")
	wantChanged(t, c, matchesOf(t, d, "contacts"))
}

// TestSynapseExtraFields: a trailing comma (an empty field past the
// columns) is dropped, a non-empty one is kept as _column<n>.
func TestSynapseExtraFields(t *testing.T) {
	f := newFixture(t)
	f.put("model.json", synapseModel("Id:guid,emailaddress1:string"))
	f.put("contact/2024.csv", "1,a@example.com,\n2,a@example.com,,surprise\n")
	c := f.connector(synapseDataset(""))
	d := f.discover(c, sources.Subject{Emails: []string{"a@example.com"}})
	got := strings.Join(mustRead(t, c, matchesOf(t, d, "contacts")), "\n")
	if want := `{"Id":"1","emailaddress1":"a@example.com"}` + "\n" + `{"Id":"2","emailaddress1":"a@example.com","_column4":"surprise"}`; got != want {
		t.Errorf("read:\n%s\nwant:\n%s", got, want)
	}
}

// TestSynapseBrokenLayouts: what cannot be read fails the dataset, for
// good (a DataError), with a reason that says why.
func TestSynapseBrokenLayouts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		blobs map[string]string
		want  string
	}{
		{"no model.json", map[string]string{"contact/2024.csv": "1,a@example.com\n"}, "no model.json"},
		{"not JSON", map[string]string{"model.json": "{", "contact/2024.csv": "1,a@example.com\n"}, "not a CDM model.json"},
		{"table not described", map[string]string{"model.json": strings.ReplaceAll(synapseModel("Id:guid"), `"contact"`, `"lead"`), "contact/2024.csv": "1,a@example.com\n"}, "does not describe table contact"},
		{"folder without model.json", map[string]string{"model.json": synapseModel("Id:guid,emailaddress1:string"), "2026-01-15T10.15.00Z/contact/2026.csv": "1,a@example.com\n"}, "has no"},
		{"header row", map[string]string{"model.json": strings.Replace(synapseModel("Id:guid,emailaddress1:string"), `"location"`, `"fileFormatSettings":{"$type":"CsvFormatSettings","columnHeaders":true},"location"`, 1), "contact/2024.csv": "1,a@example.com\n"}, "column headers"},
		{"bad quoting", map[string]string{"model.json": synapseModel("Id:guid,emailaddress1:string"), "contact/2024.csv": "1,\"a@example.com\n"}, "csv record at line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			for n, b := range tc.blobs {
				f.put(n, b)
			}
			c := f.connector(synapseDataset(""))
			d := f.discover(c, sources.Subject{Emails: []string{"a@example.com"}})
			dm := matchesOf(t, d, "contacts")
			if !dm.Permanent || !strings.Contains(dm.Error, tc.want) {
				t.Errorf("error %q (permanent %v), want one with %q", dm.Error, dm.Permanent, tc.want)
			}
		})
	}
}

// TestSynapseRewriteRefused: Synapse Link's files are never rewritten; the
// refusal is a DataError saying where to make the change.
func TestSynapseRewriteRefused(t *testing.T) {
	f := newFixture(t)
	f.put("model.json", synapseModel("Id:guid,emailaddress1:string"))
	f.put("contact/2024.csv", "1,a@example.com\n")
	c := f.connector(synapseDataset(""))
	d := f.discover(c, sources.Subject{Emails: []string{"a@example.com"}})
	loc := matchesOf(t, d, "contacts").Locations[0]
	_, err := c.Rewrite(f.ctx, "contacts", loc, func(int64, sources.Record) (*sources.Record, error) { return nil, nil })
	var bad *sources.DataError
	if !errors.As(err, &bad) || !strings.Contains(err.Error(), "read-only") || !strings.Contains(err.Error(), "Dataverse") {
		t.Fatalf("Rewrite: %v, want the read-only DataError", err)
	}
}

// TestSynapseConfig checks the dataset shape: prefix (the folder holding
// model.json) and entity.
func TestSynapseConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*sources.Dataset)
		want string
	}{
		{"ok at the root", func(d *sources.Dataset) { d.Prefix = "" }, ""},
		{"ok in a folder", func(d *sources.Dataset) { d.Prefix = "lake/" }, ""},
		{"no entity", func(d *sources.Dataset) { d.Entity = "" }, "entity: required"},
		{"blob", func(d *sources.Dataset) { d.Blob = "x.csv" }, "not blob"},
		{"prefix without slash", func(d *sources.Dataset) { d.Prefix = "lake" }, `ends with "/"`},
		{"system folder", func(d *sources.Dataset) { d.Entity = "Changelog" }, "system folder"},
		{"entity on csv", func(d *sources.Dataset) { d.Format = sources.FormatCSV; d.Prefix = "x/" }, "only a dataset of format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := synapseDataset("")
			d.Container, d.Facts = "c", testFacts
			tc.edit(&d)
			err := (&sources.Config{Version: 1, Datasets: []sources.Dataset{d}}).Validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}
