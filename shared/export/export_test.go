package export_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"math/big"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/export"
	"github.com/dsr-functions/dsr/shared/sources"
)

var generatedAt = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

var testRequest = export.Request{
	ID:         "req-0001",
	Type:       "access",
	CreatedAt:  time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC),
	ReceivedAt: time.Date(2026, 3, 1, 8, 59, 0, 0, time.UTC),
	DueAt:      time.Date(2026, 4, 1, 8, 59, 0, 0, time.UTC),
}

// rec builds a record from name, value pairs.
func rec(kv ...any) sources.Record {
	var r sources.Record
	for i := 0; i < len(kv); i += 2 {
		r.Fields = append(r.Fields, sources.Field{Name: kv[i].(string), Value: kv[i+1]})
	}
	return r
}

// from returns a Read that emits records and counts its calls.
func from(calls *int, records ...sources.Record) func(context.Context, func(sources.Record) error) error {
	return func(ctx context.Context, emit func(sources.Record) error) error {
		if calls != nil {
			*calls++
		}
		for _, r := range records {
			if err := emit(r); err != nil {
				return err
			}
		}
		return nil
	}
}

var contacts = []sources.Record{
	rec("id", json.Number("12"), "name", "Zoë", "email", "zoe@example.com", "score", 3.5,
		"active", true, "tags", []any{"a", "b"},
		"address", map[string]any{"city": "Berlin", "zip": "10115"}, "note", nil),
	rec("id", json.Number("123456789012345678901234"), "big", 1e21, "note", "line1\nline2, with \"quotes\"",
		"formula", `=HYPERLINK("http://x")`, "plus", "+1", "minus", "-2", "at", "@SUM(A1)",
		"tab", "\tx", "cr", "\rx", "active", false, "neg", json.Number("-5"), "html", "a & b <c>"),
	rec("email", "other@example.com"),
}

var orders = []sources.Record{
	rec("orderId", "o-1", "=cmd", "x", "total", 12.0),
	rec("orderId", "o-2", "total", json.Number("99.95"), "items", []any{map[string]any{"sku": "s1", "qty": json.Number("2")}}),
}

var contactsFacts = sources.Facts{
	Categories: []string{"contact details", "preferences"},
	Purposes:   []string{"customer service"},
	Recipients: []string{"Mail provider"},
	Retention:  "3 years after last contact",
	Source:     "provided by you",
	LegalBasis: "contract (Art. 6(1)(b))",
}

func testDatasets(calls map[string]*int) []export.Dataset {
	c := func(name string) *int {
		if calls == nil {
			return nil
		}
		calls[name] = new(int)
		return calls[name]
	}
	return []export.Dataset{
		{Name: "crm-contacts", Description: "Customer contact records", Facts: contactsFacts, Read: from(c("crm-contacts"), contacts...)},
		{Name: "tickets", Description: "Support tickets", Facts: sources.Facts{
			Categories: []string{"support messages"}, Purposes: []string{"support"}, Retention: "1 year", Source: "you",
		}, Read: from(c("tickets"))},
		{Name: "orders", Description: "Web shop orders", Facts: sources.Facts{
			Categories: []string{"purchases"}, Purposes: []string{"order fulfilment", "accounting"}, Retention: "10 years", Source: "web shop",
		}, Read: from(c("orders"), orders...)},
	}
}

func writeZip(t *testing.T, datasets []export.Dataset) ([]byte, export.Result) {
	t.Helper()
	var buf bytes.Buffer
	res, err := export.Write(context.Background(), &buf, testRequest, datasets, generatedAt)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes(), res
}

type archive struct {
	names []string
	files map[string]*zip.File
	data  map[string][]byte
}

func openZip(t *testing.T, b []byte) archive {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("open zip: %v", err)
	}
	a := archive{files: map[string]*zip.File{}, data: map[string][]byte{}}
	for _, f := range zr.File {
		a.names = append(a.names, f.Name)
		a.files[f.Name] = f
		rc, err := f.Open()
		if err != nil {
			t.Fatalf("open %s: %v", f.Name, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read %s: %v", f.Name, err)
		}
		a.data[f.Name] = data
	}
	return a
}

func TestEntriesAndOrder(t *testing.T) {
	calls := map[string]*int{}
	b, _ := writeZip(t, testDatasets(calls))
	a := openZip(t, b)
	want := []string{
		"manifest.json", "summary.txt", "letter.html",
		"data/crm-contacts.json", "data/crm-contacts.csv",
		"data/orders.json", "data/orders.csv",
	}
	if !reflect.DeepEqual(a.names, want) {
		t.Fatalf("entries = %q, want %q", a.names, want)
	}
	for _, name := range want {
		f := a.files[name]
		if f.Method != zip.Deflate {
			t.Errorf("%s: method %d, want Deflate", name, f.Method)
		}
		if !f.Modified.Equal(generatedAt) {
			t.Errorf("%s: modified %v, want %v", name, f.Modified, generatedAt)
		}
	}
	for name, n := range calls {
		if *n != 1 {
			t.Errorf("dataset %s: Read called %d times, want 1", name, *n)
		}
	}
}

func TestManifest(t *testing.T) {
	b, res := writeZip(t, testDatasets(nil))
	a := openZip(t, b)
	raw := a.data["manifest.json"]
	if !bytes.HasPrefix(raw, []byte("{\n  \"format\": \"dsr-export/v1\",\n  \"generatedAt\"")) {
		t.Errorf("manifest does not start with format and generatedAt:\n%s", raw)
	}
	var m struct {
		Format      string `json:"format"`
		GeneratedAt string `json:"generatedAt"`
		Request     struct {
			ID, Type, CreatedAt, ReceivedAt, DueAt string
		} `json:"request"`
		TotalRecords int64 `json:"totalRecords"`
		Datasets     []struct {
			Name        string        `json:"name"`
			Description string        `json:"description"`
			Records     int64         `json:"records"`
			Files       []string      `json:"files"`
			Facts       sources.Facts `json:"facts"`
		} `json:"datasets"`
		Rights []string `json:"rights"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode manifest: %v", err)
	}
	if m.Format != "dsr-export/v1" || m.GeneratedAt != "2026-03-14T15:09:26Z" {
		t.Errorf("format %q generatedAt %q", m.Format, m.GeneratedAt)
	}
	if m.Request.ID != "req-0001" || m.Request.Type != "access" ||
		m.Request.CreatedAt != "2026-03-01T09:00:00Z" || m.Request.ReceivedAt != "2026-03-01T08:59:00Z" ||
		m.Request.DueAt != "2026-04-01T08:59:00Z" {
		t.Errorf("request = %+v", m.Request)
	}
	if m.TotalRecords != 5 || res.Records != 5 {
		t.Errorf("totalRecords %d, Result.Records %d, want 5", m.TotalRecords, res.Records)
	}
	wantCounts := []export.DatasetCount{{"crm-contacts", 3}, {"tickets", 0}, {"orders", 2}}
	if !reflect.DeepEqual(res.Datasets, wantCounts) {
		t.Errorf("Result.Datasets = %+v, want %+v", res.Datasets, wantCounts)
	}
	if len(m.Datasets) != 3 {
		t.Fatalf("manifest has %d datasets, want 3", len(m.Datasets))
	}
	for i, d := range m.Datasets {
		if d.Name != wantCounts[i].Name || d.Records != wantCounts[i].Records {
			t.Errorf("datasets[%d] = %s/%d, want %+v", i, d.Name, d.Records, wantCounts[i])
		}
	}
	if d := m.Datasets[0]; d.Description != "Customer contact records" ||
		!reflect.DeepEqual(d.Files, []string{"data/crm-contacts.json", "data/crm-contacts.csv"}) ||
		!reflect.DeepEqual(d.Facts, contactsFacts) {
		t.Errorf("datasets[0] = %+v", d)
	}
	if d := m.Datasets[1]; d.Files == nil || len(d.Files) != 0 {
		t.Errorf("zero-record dataset files = %#v, want []", d.Files)
	}
	if len(m.Rights) != 6 {
		t.Errorf("rights has %d entries, want 6", len(m.Rights))
	}
	all := strings.Join(m.Rights, "\n")
	for _, art := range []string{"Art. 16", "Art. 17", "Art. 18", "Art. 21", "Art. 77", "Art. 20"} {
		if !strings.Contains(all, art) {
			t.Errorf("rights do not mention %s", art)
		}
	}
}

func TestManifestUnsetTimesAreNull(t *testing.T) {
	var buf bytes.Buffer
	_, err := export.Write(context.Background(), &buf, export.Request{ID: "r", Type: "access"}, nil, generatedAt)
	if err != nil {
		t.Fatal(err)
	}
	a := openZip(t, buf.Bytes())
	var m struct {
		Request      map[string]any `json:"request"`
		Datasets     []any          `json:"datasets"`
		TotalRecords int64          `json:"totalRecords"`
	}
	if err := json.Unmarshal(a.data["manifest.json"], &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"createdAt", "receivedAt", "dueAt"} {
		if v, ok := m.Request[k]; !ok || v != nil {
			t.Errorf("request.%s = %v (present %v), want null", k, v, ok)
		}
	}
	if m.Datasets == nil || len(m.Datasets) != 0 || m.TotalRecords != 0 {
		t.Errorf("datasets %#v total %d", m.Datasets, m.TotalRecords)
	}
	if !reflect.DeepEqual(a.names, []string{"manifest.json", "summary.txt", "letter.html"}) {
		t.Errorf("entries = %q", a.names)
	}
}

// decodeOrderedArray decodes a JSON array of objects keeping member order.
func decodeOrderedArray(t *testing.T, b []byte) [][]sources.Field {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	expectDelim := func(want json.Delim) {
		tok, err := dec.Token()
		if err != nil || tok != want {
			t.Fatalf("token = %v, %v; want %v", tok, err, want)
		}
	}
	var out [][]sources.Field
	expectDelim('[')
	for dec.More() {
		expectDelim('{')
		var fields []sources.Field
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			fields = append(fields, sources.Field{Name: tok.(string), Value: v})
		}
		expectDelim('}')
		out = append(out, fields)
	}
	expectDelim(']')
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("trailing data after array: %v", err)
	}
	return out
}

// sameJSON reports whether a and b encode to the same JSON, treating equal
// numbers written differently (1e+21, 1000000000000000000000) as the same.
func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		return false
	}
	if bytes.Equal(ja, jb) {
		return true
	}
	fa, ok1 := new(big.Float).SetString(string(ja))
	fb, ok2 := new(big.Float).SetString(string(jb))
	return ok1 && ok2 && fa.Cmp(fb) == 0
}

func TestJSONMatchesInput(t *testing.T) {
	b, _ := writeZip(t, testDatasets(nil))
	a := openZip(t, b)
	for name, input := range map[string][]sources.Record{"crm-contacts": contacts, "orders": orders} {
		raw := a.data["data/"+name+".json"]
		if !json.Valid(raw) {
			t.Fatalf("%s.json is not valid JSON:\n%s", name, raw)
		}
		if lines := strings.Count(string(raw), "\n"); lines != len(input)+2 {
			t.Errorf("%s.json has %d lines, want one per record plus brackets", name, lines)
		}
		got := decodeOrderedArray(t, raw)
		if len(got) != len(input) {
			t.Fatalf("%s.json has %d records, want %d", name, len(got), len(input))
		}
		for i, r := range input {
			if len(got[i]) != len(r.Fields) {
				t.Fatalf("%s record %d has %d fields, want %d", name, i, len(got[i]), len(r.Fields))
			}
			for j, f := range r.Fields {
				g := got[i][j]
				if g.Name != f.Name || !sameJSON(g.Value, f.Value) {
					t.Errorf("%s record %d field %d = %q:%#v, want %q:%#v", name, i, j, g.Name, g.Value, f.Name, f.Value)
				}
			}
		}
	}
	raw := string(a.data["data/crm-contacts.json"])
	for _, want := range []string{`"big":1000000000000000000000`, `"html":"a & b <c>"`, `"name":"Zoë"`,
		`"id":123456789012345678901234`} {
		if !strings.Contains(raw, want) {
			t.Errorf("crm-contacts.json lacks %s", want)
		}
	}
}

func readCSV(t *testing.T, b []byte) (header []string, rows []map[string]string) {
	t.Helper()
	all, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatalf("parse CSV: %v", err)
	}
	if len(all) == 0 {
		t.Fatal("empty CSV")
	}
	header = all[0]
	for _, r := range all[1:] {
		m := map[string]string{}
		for i, c := range r {
			m[header[i]] = c
		}
		rows = append(rows, m)
	}
	return header, rows
}

func TestCSV(t *testing.T) {
	b, _ := writeZip(t, testDatasets(nil))
	a := openZip(t, b)

	header, rows := readCSV(t, a.data["data/crm-contacts.csv"])
	wantHeader := []string{"id", "name", "email", "score", "active", "tags", "address", "note",
		"big", "formula", "plus", "minus", "at", "tab", "cr", "neg", "html"}
	if !reflect.DeepEqual(header, wantHeader) {
		t.Fatalf("header = %q, want %q", header, wantHeader)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	checks := []struct {
		row       int
		col, want string
	}{
		{0, "id", "12"},
		{0, "name", "Zoë"},
		{0, "score", "3.5"},
		{0, "active", "true"},
		{0, "tags", `["a","b"]`},
		{0, "address", `{"city":"Berlin","zip":"10115"}`},
		{0, "note", ""},
		{0, "big", ""}, // missing field
		{1, "id", "123456789012345678901234"},
		{1, "big", "1000000000000000000000"},
		{1, "note", "line1\nline2, with \"quotes\""},
		{1, "formula", `'=HYPERLINK("http://x")`},
		{1, "plus", "'+1"},
		{1, "minus", "'-2"},
		{1, "at", "'@SUM(A1)"},
		{1, "tab", "'\tx"},
		{1, "cr", "'\rx"},
		{1, "active", "false"},
		{1, "neg", "-5"}, // a number, not a formula
		{1, "html", "a & b <c>"},
		{1, "name", ""},
		{2, "email", "other@example.com"},
		{2, "id", ""},
	}
	for _, c := range checks {
		if got := rows[c.row][c.col]; got != c.want {
			t.Errorf("row %d %s = %q, want %q", c.row, c.col, got, c.want)
		}
	}

	header, rows = readCSV(t, a.data["data/orders.csv"])
	if want := []string{"orderId", "'=cmd", "total", "items"}; !reflect.DeepEqual(header, want) {
		t.Errorf("orders header = %q, want %q", header, want)
	}
	if rows[0]["total"] != "12" || rows[1]["total"] != "99.95" {
		t.Errorf("totals = %q, %q; want 12, 99.95", rows[0]["total"], rows[1]["total"])
	}
	if got := rows[1]["items"]; got != `[{"qty":2,"sku":"s1"}]` {
		t.Errorf("items = %q", got)
	}
}

func TestZeroRecordDataset(t *testing.T) {
	b, _ := writeZip(t, testDatasets(nil))
	a := openZip(t, b)
	for _, name := range a.names {
		if strings.HasPrefix(name, "data/tickets") {
			t.Errorf("zero-record dataset has data file %s", name)
		}
	}
	if !bytes.Contains(a.data["manifest.json"], []byte(`"name": "tickets"`)) {
		t.Error("zero-record dataset missing from manifest")
	}
	summary := string(a.data["summary.txt"])
	if !strings.Contains(summary, "Support tickets") || !strings.Contains(summary, "none found") {
		t.Errorf("summary does not report the zero-record dataset:\n%s", summary)
	}
}

func TestSummary(t *testing.T) {
	b, _ := writeZip(t, testDatasets(nil))
	s := string(openZip(t, b).data["summary.txt"])
	for _, want := range []string{
		"req-0001", "1 March 2026, 08:59 UTC", "1 April 2026, 08:59 UTC", "14 March 2026, 15:09 UTC",
		"Customer contact records", "Records about you:   3", "contact details; preferences",
		"customer service", "Mail provider", "3 years after last contact", "provided by you",
		"contract (Art. 6(1)(b))", "data/crm-contacts.json", "data/crm-contacts.csv",
		"Art. 16", "Art. 17", "Art. 18", "Art. 20", "Art. 21", "Art. 77",
		"apostrophe", "manifest.json", "5 records",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	if strings.Contains(s, "zoe@example.com") {
		t.Error("summary contains record data")
	}
}

func TestBytesAndSHA256(t *testing.T) {
	b, res := writeZip(t, testDatasets(nil))
	sum := sha256.Sum256(b)
	if res.Bytes != int64(len(b)) {
		t.Errorf("Bytes = %d, wrote %d", res.Bytes, len(b))
	}
	if res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("SHA256 = %s, want %x", res.SHA256, sum)
	}
}

func TestDeterministic(t *testing.T) {
	b1, r1 := writeZip(t, testDatasets(nil))
	b2, r2 := writeZip(t, testDatasets(nil))
	if !bytes.Equal(b1, b2) || r1.SHA256 != r2.SHA256 {
		t.Fatal("two writes of the same input differ")
	}
	// The same instant in another time zone gives the same bytes.
	var buf bytes.Buffer
	at := generatedAt.In(time.FixedZone("X", 5*3600+1800))
	if _, err := export.Write(context.Background(), &buf, testRequest, testDatasets(nil), at); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1, buf.Bytes()) {
		t.Error("output depends on generatedAt's time zone")
	}
}

// Compressors are pooled across packages (and goroutines): packages
// written at once, some abandoned half-way by a failing writer, still give
// the same bytes as one written alone.
func TestDeterministicWhenConcurrent(t *testing.T) {
	want, _ := writeZip(t, testDatasets(nil))
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	for i := range got {
		wg.Go(func() {
			if i%2 == 1 { // abandoned: its writer fails after a few bytes
				_, err := export.Write(context.Background(), &failingWriter{n: 10 * i}, testRequest, testDatasets(nil), generatedAt)
				if err == nil {
					t.Error("a write to a failing writer succeeded")
				}
				return
			}
			var buf bytes.Buffer
			if _, err := export.Write(context.Background(), &buf, testRequest, testDatasets(nil), generatedAt); err != nil {
				t.Error(err)
			}
			got[i] = buf.Bytes()
		})
	}
	wg.Wait()
	for i := 0; i < len(got); i += 2 {
		if !bytes.Equal(got[i], want) {
			t.Errorf("package %d written concurrently differs from one written alone", i)
		}
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestReadErrorPropagatesAndTempRemoved(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	boom := errors.New("connector failed")
	spooled := -1
	datasets := testDatasets(nil)
	datasets[2].Read = func(ctx context.Context, emit func(sources.Record) error) error {
		if err := emit(rec("orderId", "secret-order")); err != nil {
			return err
		}
		spooled = countFiles(t, dir)
		return boom
	}
	var buf bytes.Buffer
	res, err := export.Write(context.Background(), &buf, testRequest, datasets, generatedAt)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if !strings.Contains(err.Error(), `"orders"`) {
		t.Errorf("error %q does not name the dataset", err)
	}
	if strings.Contains(err.Error(), "secret-order") {
		t.Errorf("error %q contains a record value", err)
	}
	if !reflect.DeepEqual(res, export.Result{}) {
		t.Errorf("Result = %+v, want zero", res)
	}
	if buf.Len() != 0 {
		t.Errorf("%d bytes written before all datasets were read", buf.Len())
	}
	if spooled < 1 || spooled > len(datasets) {
		t.Errorf("during Read TMPDIR held %d files, want a spool file per dataset read", spooled)
	}
	if n := countFiles(t, dir); n != 0 {
		t.Errorf("TMPDIR holds %d files after Write, want 0", n)
	}

	// And after a successful write.
	if _, err := export.Write(context.Background(), io.Discard, testRequest, testDatasets(nil), generatedAt); err != nil {
		t.Fatal(err)
	}
	if n := countFiles(t, dir); n != 0 {
		t.Errorf("TMPDIR holds %d files after a successful Write, want 0", n)
	}
}

func TestUnencodableValueErrorHasNoValues(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	for name, v := range map[string]any{
		"nan":  math.NaN(),
		"chan": map[string]any{"x": "s3cr3t-value", "c": make(chan int)},
		"func": []any{"s3cr3t-value", func() {}},
	} {
		ds := []export.Dataset{{Name: "d", Read: from(nil, rec("ok", "s3cr3t-value", "bad", v))}}
		_, err := export.Write(context.Background(), io.Discard, testRequest, ds, generatedAt)
		if err == nil {
			t.Fatalf("%s: Write succeeded", name)
		}
		if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "NaN") {
			t.Errorf("%s: error %q contains a value", name, err)
		}
		if !strings.Contains(err.Error(), `"bad"`) || !strings.Contains(err.Error(), "record 1") {
			t.Errorf("%s: error %q does not say where", name, err)
		}
	}
	if n := countFiles(t, os.TempDir()); n != 0 {
		t.Errorf("TMPDIR holds %d files", n)
	}
}

func TestCancel(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	for _, ignoreEmitErrors := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		emitted := 0
		ds := []export.Dataset{{Name: "d", Read: func(_ context.Context, emit func(sources.Record) error) error {
			for i := range 100 {
				if i == 10 {
					cancel()
				}
				if err := emit(rec("i", float64(i))); err != nil {
					if !ignoreEmitErrors {
						return err
					}
					continue
				}
				emitted++
			}
			return nil
		}}}
		_, err := export.Write(ctx, io.Discard, testRequest, ds, generatedAt)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("ignore=%v: err = %v, want context.Canceled", ignoreEmitErrors, err)
		}
		if emitted != 10 {
			t.Errorf("ignore=%v: %d records accepted after cancel at 10", ignoreEmitErrors, emitted)
		}
	}
	if n := countFiles(t, dir); n != 0 {
		t.Errorf("TMPDIR holds %d files", n)
	}
}

func TestInvalidDatasets(t *testing.T) {
	called := 0
	read := from(&called)
	for name, ds := range map[string][]export.Dataset{
		"path":      {{Name: "../etc", Read: read}},
		"upper":     {{Name: "Contacts", Read: read}},
		"empty":     {{Name: "", Read: read}},
		"duplicate": {{Name: "a", Read: read}, {Name: "a", Read: read}},
		"nil read":  {{Name: "a"}},
	} {
		var buf bytes.Buffer
		if _, err := export.Write(context.Background(), &buf, testRequest, ds, generatedAt); err == nil {
			t.Errorf("%s: Write succeeded", name)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: wrote %d bytes", name, buf.Len())
		}
	}
	if called != 0 {
		t.Errorf("Read called %d times for invalid input", called)
	}
	if _, err := export.Write(context.Background(), io.Discard, testRequest, nil, time.Time{}); err == nil {
		t.Error("zero generatedAt accepted")
	}
}

func TestEmitAfterReadReturns(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	var saved func(sources.Record) error
	ds := []export.Dataset{{Name: "d", Read: func(_ context.Context, emit func(sources.Record) error) error {
		saved = emit
		return emit(rec("a", "b"))
	}}}
	if _, err := export.Write(context.Background(), io.Discard, testRequest, ds, generatedAt); err != nil {
		t.Fatal(err)
	}
	if err := saved(rec("a", "c")); err == nil {
		t.Error("emit after Read returned succeeded")
	}
}

type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > 100 {
		return 0, errors.New("disk full")
	}
	w.n += len(p)
	return len(p), nil
}

func TestWriterError(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	_, err := export.Write(context.Background(), &failingWriter{}, testRequest, testDatasets(nil), generatedAt)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v, want disk full", err)
	}
	if n := countFiles(t, os.TempDir()); n != 0 {
		t.Errorf("TMPDIR holds %d files", n)
	}
}

// hashingDiscard counts and hashes what is written and keeps nothing.
type hashingDiscard struct {
	h hash.Hash
	n int64
}

func (d *hashingDiscard) Write(p []byte) (int, error) {
	d.h.Write(p)
	d.n += int64(len(p))
	return len(p), nil
}

// lorem is varied text records are cut from.
var lorem = func() string {
	var b strings.Builder
	words := strings.Fields("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua Zoë Ångström naïve café")
	x := uint32(1)
	for b.Len() < 64<<10 {
		x = x*1664525 + 1013904223
		b.WriteString(words[x>>16%uint32(len(words))])
		b.WriteByte(' ')
	}
	return b.String()
}()

// bigRecord returns a record of about size bytes of JSON.
func bigRecord(i, size int) sources.Record {
	off := (i * 7919) % (len(lorem) - size)
	return rec(
		"id", json.Number(strconv.Itoa(i)),
		"email", fmt.Sprintf("user%d@example.com", i),
		"createdAt", "2025-01-02T03:04:05Z",
		"amount", float64(i)/4,
		"active", i%2 == 0,
		"tags", []any{"t" + strconv.Itoa(i%13), "x"},
		"note", lorem[off:off+size-130],
	)
}

func TestMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes ~200 MB")
	}
	t.Setenv("TMPDIR", t.TempDir())
	const records = 200_000
	size := len(mustJSON(t, bigRecord(0, 1024)))
	if size < 1000 || size > 1100 {
		t.Fatalf("record size %d, want ~1 KiB", size)
	}

	runtime.GC()
	var (
		mu      sync.Mutex
		maxHeap uint64
		stop    = make(chan struct{})
		done    = make(chan struct{})
	)
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		mu.Lock()
		maxHeap = max(maxHeap, ms.HeapInuse)
		mu.Unlock()
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				sample()
			}
		}
	}()

	out := &hashingDiscard{h: sha256.New()}
	ds := []export.Dataset{{Name: "big", Description: "many records", Read: func(ctx context.Context, emit func(sources.Record) error) error {
		for i := range records {
			if err := emit(bigRecord(i, 1024)); err != nil {
				return err
			}
		}
		return nil
	}}}
	start := time.Now()
	res, err := export.Write(context.Background(), out, testRequest, ds, generatedAt)
	close(stop)
	<-done
	sample()
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != records || res.Bytes != out.n || res.SHA256 != hex.EncodeToString(out.h.Sum(nil)) {
		t.Errorf("Result = %+v, wrote %d bytes", res, out.n)
	}
	const limit = 64 << 20
	t.Logf("%d records (~%d MB) in %v, zip %d MB, max HeapInuse %.1f MiB",
		records, records*size>>20, time.Since(start).Round(time.Millisecond), res.Bytes>>20, float64(maxHeap)/(1<<20))
	if maxHeap > limit {
		t.Errorf("max HeapInuse %d MiB, want < %d MiB", maxHeap>>20, limit>>20)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func BenchmarkWrite(b *testing.B) {
	b.Setenv("TMPDIR", b.TempDir())
	const records = 10_000
	var input int64
	for i := range records {
		input += int64(len(mustJSON(b, bigRecord(i, 512))))
	}
	ds := []export.Dataset{{Name: "bench", Read: func(ctx context.Context, emit func(sources.Record) error) error {
		for i := range records {
			if err := emit(bigRecord(i, 512)); err != nil {
				return err
			}
		}
		return nil
	}}}
	b.SetBytes(input)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := export.Write(context.Background(), io.Discard, testRequest, ds, generatedAt); err != nil {
			b.Fatal(err)
		}
	}
}

func TestUnavailableDataset(t *testing.T) {
	ds := testDatasets(nil)
	ds[1].Read = nil
	ds[1].Unavailable = "billing: HTTP 503 after 5 attempts"
	b, res := writeZip(t, ds)
	a := openZip(t, b)
	for _, name := range a.names {
		if strings.HasPrefix(name, "data/"+ds[1].Name) {
			t.Errorf("unavailable dataset has data file %s", name)
		}
	}
	if !bytes.Contains(a.data["manifest.json"], []byte(`"unavailable": "billing: HTTP 503 after 5 attempts"`)) {
		t.Errorf("manifest does not say the dataset was unavailable:\n%s", a.data["manifest.json"])
	}
	s := string(a.data["summary.txt"])
	if !strings.Contains(s, "1 dataset could not be searched in time") || !strings.Contains(s, "HTTP 503 after 5 attempts") {
		t.Errorf("summary does not report the unavailable dataset:\n%s", s)
	}
	for _, d := range res.Datasets {
		if d.Name == ds[1].Name && d.Records != 0 {
			t.Errorf("unavailable dataset counted %d records", d.Records)
		}
	}
}

// TestKeptAfterErasure: records an erasure kept come with the reason, in
// the summary and the manifest; datasets without records say nothing.
func TestKeptAfterErasure(t *testing.T) {
	ds := testDatasets(nil)
	erased := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	ds[0].Kept = &dsr.KeptAfterErasure{RequestID: "r019a0000000000000000000000ab", ErasedAt: erased, Action: "retained",
		Ground: "system-generated log: audit information is kept", LegalBasis: "Art. 6(1)(c) GDPR"}
	ds[2].Kept = &dsr.KeptAfterErasure{RequestID: "r019a0000000000000000000000ab", ErasedAt: erased, Action: "masked", Fields: []string{"description"}}
	ds[1].Kept = ds[2].Kept // no records: nothing to say
	b, _ := writeZip(t, ds)
	a := openZip(t, b)
	s := string(a.data["summary.txt"])
	for _, want := range []string{
		"Why it is kept:      kept after your erasure request r019a0000000000000000000000ab (3 November 2026, 10:00 UTC): retained unchanged because system-generated log: audit information is kept (legal basis: Art. 6(1)(c) GDPR)",
		"with description masked",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	var m struct {
		Datasets []struct {
			Name             string `json:"name"`
			KeptAfterErasure *struct {
				RequestID, Action, ErasedAt, Reason string
			} `json:"keptAfterErasure"`
		} `json:"datasets"`
	}
	if err := json.Unmarshal(a.data["manifest.json"], &m); err != nil {
		t.Fatal(err)
	}
	k := m.Datasets[0].KeptAfterErasure
	if k == nil || k.Action != "retained" || k.ErasedAt != "2026-11-03T10:00:00Z" || !strings.Contains(k.Reason, "retained unchanged") {
		t.Errorf("manifest keptAfterErasure of %s: %+v", m.Datasets[0].Name, k)
	}
	if m.Datasets[1].KeptAfterErasure != nil || m.Datasets[2].KeptAfterErasure == nil {
		t.Errorf("manifest: keptAfterErasure only where records are: %+v, %+v", m.Datasets[1].KeptAfterErasure, m.Datasets[2].KeptAfterErasure)
	}
}

// TestSchemaDescribesTheJSONFile: a dataset with Schema gets a JSON Schema
// whose properties, types and required fields match its records.
func TestSchemaDescribesTheJSONFile(t *testing.T) {
	ds := []export.Dataset{{
		Name: "profile", Description: "What you told us", Schema: true,
		Facts: sources.Facts{Categories: []string{"contact"}, Purposes: []string{"service"}, Retention: "1 year", Source: "you"},
		Read: from(nil,
			rec("email", "a@example.com", "age", json.Number("41"), "score", 1.5, "tags", []any{"x"}, "optIn", true, "address", map[string]any{"city": "Oslo"}),
			rec("email", "a@example.com", "age", nil, "score", json.Number("2"), "nickname", "Al", "optIn", false),
		),
	}, {
		Name: "orders", Facts: sources.Facts{Categories: []string{"purchases"}, Purposes: []string{"orders"}, Retention: "1 year", Source: "shop"},
		Read: from(nil, rec("id", json.Number("7"))),
	}}
	b, _ := writeZip(t, ds)
	a := openZip(t, b)
	if _, ok := a.data["schemas/orders.schema.json"]; ok {
		t.Fatal("a dataset without Schema got a schema")
	}
	raw, ok := a.data["schemas/profile.schema.json"]
	if !ok {
		t.Fatalf("no schema in %v", a.names)
	}
	var schema struct {
		Schema string `json:"$schema"`
		Title  string `json:"title"`
		Type   string `json:"type"`
		Items  struct {
			Type       string                     `json:"type"`
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
			Additional bool                       `json:"additionalProperties"`
		} `json:"items"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	if schema.Schema != export.SchemaDraft || schema.Title != "profile" || schema.Type != "array" || schema.Items.Type != "object" || schema.Items.Additional {
		t.Fatalf("schema header %+v", schema)
	}
	want := map[string]string{
		"email": `{"type":"string"}`, "age": `{"type":["integer","null"]}`, "score": `{"type":"number"}`,
		"tags": `{"type":"array"}`, "optIn": `{"type":"boolean"}`, "address": `{"type":"object"}`, "nickname": `{"type":"string"}`,
	}
	if len(schema.Items.Properties) != len(want) {
		t.Fatalf("properties %v", schema.Items.Properties)
	}
	for k, v := range want {
		var compact bytes.Buffer
		_ = json.Compact(&compact, schema.Items.Properties[k])
		if got := compact.String(); got != v {
			t.Errorf("property %s: %s, want %s", k, got, v)
		}
	}
	if fmt.Sprint(schema.Items.Required) != "[email age score optIn]" {
		t.Errorf("required %v, want the fields every record has", schema.Items.Required)
	}
	var m struct {
		Datasets []struct {
			Name  string   `json:"name"`
			Files []string `json:"files"`
		} `json:"datasets"`
	}
	if err := json.Unmarshal(a.data["manifest.json"], &m); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(m.Datasets[0].Files) != "[data/profile.json data/profile.csv schemas/profile.schema.json]" {
		t.Errorf("manifest files %v", m.Datasets[0].Files)
	}
}

// Datasets are read at once: the first one's Read does not end before the
// last one's has started (read one after another, this would never
// finish), and the package is the same as when each waits for none.
func TestDatasetsReadTogether(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	want, _ := writeZip(t, testDatasets(nil))
	datasets := testDatasets(nil)
	lastStarted := make(chan struct{})
	first, last := datasets[0].Read, datasets[len(datasets)-1].Read
	datasets[0].Read = func(ctx context.Context, emit func(sources.Record) error) error {
		select {
		case <-lastStarted:
		case <-time.After(10 * time.Second):
			return errors.New("the last dataset was not read while the first was")
		}
		return first(ctx, emit)
	}
	datasets[len(datasets)-1].Read = func(ctx context.Context, emit func(sources.Record) error) error {
		close(lastStarted)
		return last(ctx, emit)
	}
	got, _ := writeZip(t, datasets)
	if !bytes.Equal(got, want) {
		t.Error("a package whose datasets were read together differs")
	}
}
