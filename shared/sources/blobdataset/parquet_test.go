package blobdataset

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/sourcestest"
)

type pqAddress struct {
	Street string `parquet:"street"`
	City   string `parquet:"city"`
}

// pqContact is a contact of the sample's shape, with the logical types
// export must keep.
type pqContact struct {
	ContactID int64      `parquet:"contactid"`
	Email     *string    `parquet:"email,optional"`
	Phone     *string    `parquet:"phone,optional"`
	FullName  string     `parquet:"fullname"`
	Address   *pqAddress `parquet:"address,optional"`
	Tags      []string   `parquet:"tags,list"`
	CreatedOn int64      `parquet:"createdon,timestamp(microsecond)"`
	Birthdate int32      `parquet:"birthdate,date"`
	Balance   int64      `parquet:"balance,decimal(2:12)"`
	Notes     *string    `parquet:"notes,optional"`
	Score     float64    `parquet:"score"`
	Payload   string     `parquet:"payload"`
}

func sp(s string) *string { return &s }

// pqContacts: 0 ann by email (mixed case), 1 bob, 2 ann by phone (another
// spelling), 3 carl whose notes mention ann, 4 dora, 5 ann's email in a
// nested-free row with an escape-free plain email, 6 eve.
func pqContacts() []pqContact {
	ts := time.Date(2024, 3, 1, 12, 30, 45, 123456000, time.UTC).UnixMicro()
	day := int32(time.Date(1990, 5, 17, 0, 0, 0, 0, time.UTC).Unix() / 86400)
	mk := func(id int64, email, phone *string, name, city string, notes *string) pqContact {
		k := id % 100
		return pqContact{ContactID: id, Email: email, Phone: phone, FullName: name, Address: &pqAddress{Street: "1 Main St", City: city},
			Tags: []string{"a", name}, CreatedOn: ts + k, Birthdate: day + int32(k), Balance: 123450 + k, Notes: notes, Score: 0.1 * float64(k),
			Payload: strings.Repeat(string(rune('a'+k)), 20)}
	}
	return []pqContact{
		mk(9007199254740993, sp("Ann@Example.COM"), nil, "Ann", "Oslo", nil),
		mk(2, sp("bob@example.com"), sp("+1 206 555 0111"), "Bob", "Bergen", sp("likes tea")),
		mk(3, nil, sp("(206) 555-0100"), "Ann B", "Oslo", nil),
		mk(4, sp("carl@example.com"), nil, "Carl", "Paris", sp("called ann@example.com about it")),
		mk(5, sp("dora@example.com"), nil, "Dora", "Rome", nil),
		mk(6, sp("eve@example.com"), nil, "Eve", "Lima", nil),
		{ContactID: 7, FullName: "Nobody", Tags: nil},
	}
}

// pqFile writes rows as a Parquet file with row groups of groupRows rows.
func pqFile[T any](t testing.TB, rows []T, groupRows int64) []byte {
	t.Helper()
	var b bytes.Buffer
	w := parquet.NewGenericWriter[T](&b, parquet.MaxRowsPerRowGroup(groupRows), parquet.Compression(&parquet.Snappy))
	for i := 0; i < len(rows); i += int(groupRows) {
		if _, err := w.Write(rows[i:min(len(rows), i+int(groupRows))]); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pqRows reads every row of a Parquet file, and its schema and row group
// sizes.
func pqRows(t testing.TB, data []byte) ([]parquet.Row, string, []int64) {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var rows []parquet.Row
	var groups []int64
	for _, rg := range f.RowGroups() {
		groups = append(groups, rg.NumRows())
		r := rg.Rows()
		buf := make([]parquet.Row, 16)
		for {
			n, err := r.ReadRows(buf)
			for _, row := range buf[:n] {
				rows = append(rows, row.Clone())
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		r.Close()
	}
	return rows, f.Schema().String(), groups
}

var pqDataset = sources.Dataset{
	Name: "contacts", Blob: "crm/contacts.parquet", Format: sources.FormatParquet,
	Identifiers: []sources.Identifier{
		{Field: "email", Kind: sources.KindEmail},
		{Field: "phone", Kind: sources.KindPhone},
		{Field: "contactid", Kind: sources.KindID},
	},
	FreeText: []string{"notes"},
}

// countingStore counts the bytes discovery downloads.
type countingStore struct {
	azureStore
	bytes atomic.Int64
}

func (s *countingStore) read(ctx context.Context, cont, name, etag string, off, count int64) (io.ReadCloser, int64, error) {
	s.bytes.Add(count)
	return s.azureStore.read(ctx, cont, name, etag, off, count)
}

func (s *countingStore) open(ctx context.Context, cont, name string) (io.ReadCloser, string, error) {
	panic("a Parquet blob is never streamed")
}

func TestParquetDiscoverReadRewrite(t *testing.T) {
	f := newFixture(t)
	data := pqFile(t, pqContacts(), 2)
	f.put(pqDataset.Blob, string(data))
	c := f.connector(pqDataset)
	cs := &countingStore{azureStore: azureStore{f.acct.Service}}
	c.store = cs

	ann := sources.Subject{Emails: []string{"ann@example.com"}, Phones: []string{"12065550100"}}
	d := f.discover(c, ann)
	checkOrdinals(t, d, map[string][]int64{"contacts": {0, 2, 3}})
	loc := matchesOf(t, d, "contacts").Locations[0]
	if !reflect.DeepEqual(loc.Mentions, []int64{3}) {
		t.Errorf("mentions %v, want [3]", loc.Mentions)
	}

	byEmail := f.discover(c, sources.Subject{Emails: []string{"ann@example.com"}})
	checkOrdinals(t, byEmail, map[string][]int64{"contacts": {0, 3}})
	byPhone := f.discover(c, sources.Subject{Phones: []string{"12065550100"}})
	checkOrdinals(t, byPhone, map[string][]int64{"contacts": {2}})
	byID := f.discover(c, sources.Subject{IDs: map[string]string{"contactid": "9007199254740993"}})
	checkOrdinals(t, byID, map[string][]int64{"contacts": {0}})

	// Export keeps the logical types.
	recs := mustRead(t, c, matchesOf(t, d, "contacts"))
	if len(recs) != 3 {
		t.Fatalf("read %d records, want 3", len(recs))
	}
	want0 := `{"contactid":9007199254740993,"email":"Ann@Example.COM","phone":null,"fullname":"Ann","address":{"city":"Oslo","street":"1 Main St"},"tags":["a","Ann"],"createdon":"2024-03-01T12:30:45.123456Z","birthdate":"1990-05-17","balance":1234.50,"notes":null,"score":0,"payload":"` + strings.Repeat("a", 20) + `"}`
	// contactid 9007199254740993 adds to the timestamp and date: take them from the record.
	var r0 map[string]json.RawMessage
	if err := json.Unmarshal([]byte(recs[0]), &r0); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"contactid", "email", "phone", "address", "tags", "notes"} {
		var w map[string]json.RawMessage
		_ = json.Unmarshal([]byte(want0), &w)
		if string(r0[k]) != string(w[k]) {
			t.Errorf("record 0 field %s = %s, want %s", k, r0[k], w[k])
		}
	}
	var r2 map[string]json.RawMessage
	_ = json.Unmarshal([]byte(recs[1]), &r2)
	for k, w := range map[string]string{"createdon": `"2024-03-01T12:30:45.123459Z"`, "birthdate": `"1990-05-20"`, "balance": `1234.53`, "score": `0.30000000000000004`, "email": `null`} {
		if string(r2[k]) != w {
			t.Errorf("record 2 field %s = %s, want %s", k, r2[k], w)
		}
	}
	if got := string(r0["balance"]); got != "1235.43" || string(r0["score"]) != "9.3" {
		t.Errorf("balance %s, score %s; want 1235.43, 9.3", got, r0["score"])
	}
	if got := string(r0["createdon"]); got != `"2024-03-01T12:30:45.123549Z"` {
		t.Errorf("createdon %s", got)
	}
	before, schema, groups := pqRows(t, data)

	// Erasure: delete ann's own rows, mask the mention.
	res, err := c.Rewrite(f.ctx, "contacts", loc, func(o int64, rec sources.Record) (*sources.Record, error) {
		if !loc.Mentioned(o) {
			return nil, nil
		}
		out := sources.Record{Fields: slices.Clone(rec.Fields)}
		for i := range out.Fields {
			if out.Fields[i].Name == "notes" {
				out.Fields[i].Value = "[redacted]"
			}
		}
		return &out, nil
	})
	if err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	if res.Deleted != 2 || res.Replaced != 1 {
		t.Errorf("Rewrite = %+v, want 2 deleted, 1 replaced", res)
	}
	after := f.get(pqDataset.Blob)
	if after.etag != res.ETag {
		t.Errorf("ETag %s, Rewrite said %s", after.etag, res.ETag)
	}
	rows, schema2, groups2 := pqRows(t, []byte(after.data))
	if schema2 != schema {
		t.Errorf("schema changed:\n%s\nwant\n%s", schema2, schema)
	}
	if !reflect.DeepEqual(groups2, []int64{1, 1, 2, 1}) || !reflect.DeepEqual(groups, []int64{2, 2, 2, 1}) {
		t.Errorf("row groups %v -> %v, want [2 2 2 1] -> [1 1 2 1]", groups, groups2)
	}
	wantRows := []parquet.Row{before[1], nil, before[4], before[5], before[6]}
	if len(rows) != len(wantRows) {
		t.Fatalf("%d rows after erasure, want %d", len(rows), len(wantRows))
	}
	for i, w := range wantRows {
		if w != nil && !w.Equal(rows[i]) {
			t.Errorf("row %d changed", i)
		}
	}
	var got []pqContact
	gr := parquet.NewGenericReader[pqContact](bytes.NewReader([]byte(after.data)))
	got = make([]pqContact, 5)
	if n, err := gr.Read(got); n != 5 || (err != nil && err != io.EOF) {
		t.Fatalf("read back %d rows: %v", n, err)
	}
	wantMasked := pqContacts()[3]
	wantMasked.Notes = sp("[redacted]")
	if !reflect.DeepEqual(got[1], wantMasked) {
		t.Errorf("masked row = %+v\nwant %+v", got[1], wantMasked)
	}

	// Rectification of bob's email, on the new version.
	d = f.discover(c, sources.Subject{Emails: []string{"bob@example.com"}})
	bloc := matchesOf(t, d, "contacts").Locations[0]
	if !reflect.DeepEqual(bloc.Ordinals, []int64{0}) {
		t.Fatalf("bob at %v, want [0]", bloc.Ordinals)
	}
	if _, err := c.Rewrite(f.ctx, "contacts", bloc, func(o int64, rec sources.Record) (*sources.Record, error) {
		out := sources.Record{Fields: slices.Clone(rec.Fields)}
		for i := range out.Fields {
			if out.Fields[i].Name == "email" {
				out.Fields[i].Value = "robert@example.com"
			}
		}
		return &out, nil
	}); err != nil {
		t.Fatalf("rectify: %v", err)
	}
	final := f.get(pqDataset.Blob)
	rows3, _, _ := pqRows(t, []byte(final.data))
	for i := 1; i < len(rows); i++ {
		if !rows[i].Equal(rows3[i]) {
			t.Errorf("row %d changed by the rectification", i)
		}
	}
	gr = parquet.NewGenericReader[pqContact](bytes.NewReader([]byte(final.data)))
	got = make([]pqContact, 5)
	if n, _ := gr.Read(got); n != 5 {
		t.Fatalf("read back %d rows", n)
	}
	wantBob := pqContacts()[1]
	wantBob.Email = sp("robert@example.com")
	if !reflect.DeepEqual(got[0], wantBob) {
		t.Errorf("rectified row = %+v\nwant %+v", got[0], wantBob)
	}
	checkOrdinals(t, f.discover(c, sources.Subject{Emails: []string{"robert@example.com"}}), map[string][]int64{"contacts": {0}})
	checkOrdinals(t, f.discover(c, sources.Subject{Emails: []string{"bob@example.com"}}), map[string][]int64{"contacts": nil})

	// A value that does not fit its column's type is refused, nothing written.
	_, err = c.Rewrite(f.ctx, "contacts", sources.Location{Blob: pqDataset.Blob, ETag: final.etag, Ordinals: []int64{0}}, func(o int64, rec sources.Record) (*sources.Record, error) {
		out := sources.Record{Fields: slices.Clone(rec.Fields)}
		out.Fields[0].Value = "[redacted]" // contactid is an INT64
		return &out, nil
	})
	if err == nil || strings.Contains(err.Error(), "redacted") {
		t.Errorf("Rewrite with a string in an integer column = %v, want an error naming no value", err)
	}
	f.wantUnchanged(pqDataset.Blob, final)
}

// A Parquet blob that changed since discovery is refused by Read and
// Rewrite, before or during the rewrite, like the other formats.
func TestParquetChanged(t *testing.T) {
	f := newFixture(t)
	data := pqFile(t, pqContacts(), 3)
	f.put(pqDataset.Blob, string(data))
	c := f.connector(pqDataset)
	ann := sources.Subject{Emails: []string{"ann@example.com"}}
	d := f.discover(c, ann)
	dm := matchesOf(t, d, "contacts")
	loc := dm.Locations[0]

	other := pqContacts()
	other[1].FullName = "Robert"
	otherData := string(pqFile(t, other, 3))

	// Overwritten while the rewrite runs: ranged reads or the commit refuse.
	var overwrote string
	_, err := c.Rewrite(f.ctx, "contacts", loc, func(o int64, rec sources.Record) (*sources.Record, error) {
		if overwrote == "" {
			overwrote = f.put(pqDataset.Blob, otherData)
		}
		return nil, nil
	})
	if !errors.Is(err, sources.ErrChanged) {
		t.Fatalf("Rewrite racing an overwrite = %v, want ErrChanged", err)
	}
	f.wantUnchanged(pqDataset.Blob, blobState{data: otherData, etag: overwrote})

	// Overwritten before: Read and Rewrite refuse, edit never called.
	wantChanged(t, c, dm)
	called := false
	_, err = c.Rewrite(f.ctx, "contacts", loc, func(int64, sources.Record) (*sources.Record, error) {
		called = true
		return nil, nil
	})
	if !errors.Is(err, sources.ErrChanged) || called {
		t.Fatalf("Rewrite of a stale location = %v (edit called %v), want ErrChanged", err, called)
	}

	// Plan tagging: Committed finds the plan that committed.
	d = f.discover(c, ann)
	loc = matchesOf(t, d, "contacts").Locations[0]
	res, err := c.RewritePlanned(f.ctx, "contacts", loc, func(int64, sources.Record) (*sources.Record, error) { return nil, nil }, sources.CommitPlan{ID: "plan-1"})
	if err != nil {
		t.Fatal(err)
	}
	ok, etag, err := c.Committed(f.ctx, "contacts", pqDataset.Blob, sources.PlanRef{ID: "plan-1"})
	if err != nil || !ok || etag != res.ETag {
		t.Errorf("Committed = %v %s %v, want true %s", ok, etag, err, res.ETag)
	}

	// Not a Parquet file: the dataset fails, permanently, naming no data.
	f.put(pqDataset.Blob, "ann@example.com is not parquet")
	d, err = c.Discover(f.ctx, ann)
	if err != nil {
		t.Fatal(err)
	}
	m := matchesOf(t, d, "contacts")
	if !m.Permanent || m.Error == "" || strings.Contains(m.Error, "ann@") {
		t.Errorf("discovery of a non-Parquet blob = %+v, want a permanent error naming no data", m)
	}
}

// parquetHarness loads the conformance scenario as Parquet blobs of
// optional string columns.
type parquetHarness struct{}

func (parquetHarness) Delegates() bool { return false }

func (parquetHarness) Open(t *testing.T) sourcestest.Fixture {
	f := newFixture(t)
	data := map[string][]sourcestest.Record{}
	for ds, recs := range sourcestest.Scenario {
		data[ds] = slices.Clone(recs)
	}
	blob := func(ds string) string { return "conformance/" + ds + ".parquet" }
	write := func(ds string) {
		f.put(blob(ds), string(stringParquet(t, data[ds])))
	}
	var datasets []sources.Dataset
	for _, d := range sourcestest.Datasets() {
		d.Blob, d.Format = blob(d.Name), sources.FormatParquet
		datasets = append(datasets, d)
		write(d.Name)
	}
	return sourcestest.Fixture{
		Connector: f.connector(datasets...),
		Remove: func(t *testing.T, ds, key string) {
			data[ds] = slices.DeleteFunc(data[ds], func(r sourcestest.Record) bool { return r[sourcestest.Keys[ds]] == key })
			write(ds)
		},
	}
}

// stringParquet writes records as a Parquet file of optional string
// columns (a missing field is null), two rows per row group.
func stringParquet(t testing.TB, recs []sourcestest.Record) []byte {
	t.Helper()
	g := parquet.Group{}
	for _, r := range recs {
		for k := range r {
			g[k] = parquet.Optional(parquet.String())
		}
	}
	schema := parquet.NewSchema("records", g)
	var b bytes.Buffer
	w := parquet.NewWriter(&b, schema, parquet.MaxRowsPerRowGroup(2))
	for _, r := range recs {
		var row parquet.Row
		for i, fl := range schema.Fields() {
			v, ok := r[fl.Name()]
			if !ok {
				row = append(row, parquet.NullValue().Level(0, 0, i))
				continue
			}
			row = append(row, parquet.ByteArrayValue([]byte(v)).Level(0, 1, i))
		}
		if _, err := w.WriteRows([]parquet.Row{row}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestParquetConformance(t *testing.T) { sourcestest.Run(t, parquetHarness{}) }

type pqWide struct {
	Email   string `parquet:"email"`
	Payload string `parquet:"payload"`
}

// Discovery downloads the footer and the columns it matches on, not the
// others: here the payload column is most of the file.
func TestParquetDiscoveryReadsOnlyNeededColumns(t *testing.T) {
	f := newFixture(t)
	rows := make([]pqWide, 20000)
	for i := range rows {
		rows[i] = pqWide{Email: "user" + strconv.Itoa(i) + "@example.com", Payload: fmt.Sprintf("%x", sha256.Sum256([]byte(strconv.Itoa(i))))}
	}
	data := pqFile(t, rows, 5000)
	d := sources.Dataset{Name: "wide", Blob: "wide.parquet", Format: sources.FormatParquet, Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}}}
	f.put(d.Blob, string(data))
	c := f.connector(d)
	cs := &countingStore{azureStore: azureStore{f.acct.Service}}
	c.store = cs
	checkOrdinals(t, f.discover(c, sources.Subject{Emails: []string{"user12345@example.com"}}), map[string][]int64{"wide": {12345}})
	got := cs.bytes.Load()
	t.Logf("discovery downloaded %d of the file's %d bytes", got, len(data))
	if got*3 > int64(len(data)) {
		t.Errorf("discovery downloaded %d of the file's %d bytes", got, len(data))
	}
	recs := mustRead(t, c, matchesOf(t, f.discover(c, sources.Subject{Emails: []string{"user12345@example.com"}}), "wide"))
	if len(recs) != 1 || !strings.Contains(recs[0], `"email":"user12345@example.com"`) {
		t.Errorf("read %v", recs)
	}
}

// pqMixed has identifiers in string, integer and timestamp columns, in
// encoded forms and in free text.
type pqMixed struct {
	ID    int64   `parquet:"id" json:"id"`
	Email *string `parquet:"email,optional" json:"email"`
	Phone string  `parquet:"phone" json:"phone"`
	Notes string  `parquet:"notes" json:"notes"`
	When  int64   `parquet:"when,timestamp(millisecond)" json:"-"`
}

// Rows that no value of holds an identifier are passed over before they
// are assembled (rowCells): discovery over a Parquet file must find, per
// subject, exactly what it finds over the same records as NDJSON, for
// emails in encoded forms, phones spelled differently, ids in integer
// columns, mentions in free text, and several subjects at once.
func TestParquetRowSkipFindsWhatNDJSONFinds(t *testing.T) {
	f := newFixture(t)
	rows := []pqMixed{
		{ID: 1, Email: sp("Ann <ANN@Example.com>"), Phone: "555 0100", Notes: "x"},
		{ID: 2, Email: sp("mailto:ann%40example.com"), Phone: "", Notes: "y"},
		{ID: 3, Email: sp("bob@example.com"), Phone: "+1 (206) 555-0100", Notes: ""},
		{ID: 4, Email: nil, Phone: "2065550111", Notes: "ask ann@example.com later"},
		{ID: 5, Email: sp("carl@example.com"), Phone: "206.555.0199", Notes: "met bob@example.com"},
		{ID: 4711, Email: sp("dora@example.com"), Phone: "", Notes: ""},
		{ID: 6, Email: sp("eve@example.com"), Phone: "", Notes: "id 4711 is not an id field"},
		{ID: 7, Email: sp("ann&#64;example.com"), Phone: "", Notes: ""},
		{ID: 8, Email: sp("ann@example.org"), Phone: "", Notes: ""},
	}
	var nd strings.Builder
	for _, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		nd.Write(b)
		nd.WriteByte('\n')
	}
	ids := []sources.Identifier{{Field: "email", Kind: sources.KindEmail}, {Field: "phone", Kind: sources.KindPhone}, {Field: "id", Kind: sources.KindID}}
	pq := sources.Dataset{Name: "pq", Blob: "mixed.parquet", Format: sources.FormatParquet, Identifiers: ids, FreeText: []string{"notes"}}
	js := sources.Dataset{Name: "nd", Blob: "mixed.ndjson", Format: sources.FormatNDJSON, Identifiers: ids, FreeText: []string{"notes"}}
	f.put(pq.Blob, string(pqFile(t, rows, 3)))
	f.put(js.Blob, nd.String())
	c := f.connector(pq, js)
	subjects := []sources.Subject{
		{Emails: []string{"ann@example.com"}},
		{Phones: []string{"12065550100"}},
		{IDs: map[string]string{"id": "4711"}},
		{Emails: []string{"bob@example.com"}, Phones: []string{"12065550111"}},
		{Emails: []string{"nobody@example.com"}},
	}
	many, err := c.DiscoverMany(f.ctx, subjects)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range many {
		got, want := matchesOf(t, d, "pq"), matchesOf(t, d, "nd")
		var g, w [][]int64
		for _, l := range got.Locations {
			g = append(g, l.Ordinals, l.Mentions)
		}
		for _, l := range want.Locations {
			w = append(w, l.Ordinals, l.Mentions)
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("subject %d: Parquet ordinals/mentions %v, NDJSON %v", i, g, w)
		}
		if i < 4 && want.Records == 0 {
			t.Errorf("subject %d: found nowhere; the test data is wrong", i)
		}
	}
	if got := matchesOf(t, many[0], "pq").Records; got != 4 {
		t.Errorf("ann: %d Parquet records, want 4: plain, mailto, HTML-escaped and the mention", got)
	}
}
