package blobdataset

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"

	"github.com/dsr-functions/dsr/shared/sources"
)

type pqItem struct {
	SKU string   `parquet:"sku"`
	Qty *int32   `parquet:"qty,optional"`
	Tag []string `parquet:"tag,list"`
}

type pqNested struct {
	ID     uint64            `parquet:"id"`
	Items  []pqItem          `parquet:"items,list"`
	Attrs  map[string]string `parquet:"attrs"`
	Legacy []int64           `parquet:"legacy"`
	When   int64             `parquet:"when,timestamp(nanosecond)"`
	UUID   [16]byte          `parquet:"uuid,uuid"`
	Amount [9]byte           `parquet:"amount,decimal(3:20)"`
	Raw    []byte            `parquet:"raw"`
	Small  float32           `parquet:"small"`
	Old    deprecated.Int96  `parquet:"old"`
}

// Every row read as a record and written back (the assembler and the
// shredder) gives the same values, for nested lists, maps, repeated
// fields and the logical types; and a change deep in a list changes only
// that value.
func TestParquetRecordRoundTrip(t *testing.T) {
	q := int32(7)
	amount := [9]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0x0c} // -500 unscaled
	rows := []pqNested{
		{ID: 1<<64 - 1, Items: []pqItem{{SKU: "a", Qty: &q, Tag: []string{"x", "y"}}, {SKU: "b"}}, Attrs: map[string]string{"k": "v", "l": "w"},
			Legacy: []int64{1, -2}, When: 1700000000123456789, UUID: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, Amount: amount,
			Raw: []byte{0, 1, 2, 255}, Small: 0.1, Old: deprecated.Int96{1, 2, 2460000}},
		{ID: 2, Old: deprecated.Int96{0, 0, 2440588}},
	}
	data := pqFile(t, rows, 10)
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := newPQSchema(f.Root())
	if err != nil {
		t.Fatal(err)
	}
	orig, _, _ := pqRows(t, data)
	var asm assembler
	for i, row := range orig {
		cols := byColumn(row, s.columns, nil)
		rec, err := asm.recordOf(s.fields, cols)
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		b, _ := json.Marshal(rec)
		t.Logf("row %d: %s", i, b)
		// Through JSON and back, as an Edit's replacement would come.
		back, err := sources.ParseRecordJSON(b)
		if err != nil {
			t.Fatal(err)
		}
		// Every field differs from orig (a fresh decode), so every field
		// is encoded from JSON.
		sh := shredder{out: make([][]parquet.Value, s.columns)}
		for k, fl := range s.fields {
			if err := sh.field(fl, back.Fields[k].Value, 0); err != nil {
				t.Fatalf("row %d field %s: %v", i, fl.name, err)
			}
		}
		var nr parquet.Row
		for _, vs := range sh.out {
			nr = append(nr, vs...)
		}
		if !nr.Equal(row) {
			t.Errorf("row %d round trip:\n%v\nwant\n%v", i, nr, row)
		}
	}
	rec, _ := asm.recordOf(s.fields, byColumn(orig[0], s.columns, nil))
	want := map[string]string{
		"id": `18446744073709551615`, "items": `[{"qty":7,"sku":"a","tag":["x","y"]},{"qty":null,"sku":"b","tag":[]}]`,
		"attrs": `{"k":"v","l":"w"}`, "legacy": `[1,-2]`, "when": `"2023-11-14T22:13:20.123456789Z"`,
		"uuid": `"01020304-0506-0708-090a-0b0c0d0e0f10"`, "amount": `-0.500`, "raw": `"AAEC/w=="`, "small": `0.1`,
	}
	for _, fl := range rec.Fields {
		if w, ok := want[fl.Name]; ok {
			if b, _ := json.Marshal(fl.Value); string(b) != w {
				t.Errorf("%s = %s, want %s", fl.Name, b, w)
			}
		}
	}
	// Change one nested value: only that leaf column changes.
	repl := sources.Record{Fields: append([]sources.Field(nil), rec.Fields...)}
	items, _ := json.Marshal(repl.Fields[1].Value)
	var changed []any
	d := json.NewDecoder(bytes.NewReader(bytes.Replace(items, []byte(`"sku":"b"`), []byte(`"sku":"[redacted]"`), 1)))
	d.UseNumber()
	_ = d.Decode(&changed)
	repl.Fields[1].Value = changed
	cols := byColumn(orig[0], s.columns, nil)
	nr, err := s.rowOf(&repl, rec, cols)
	if err != nil {
		t.Fatal(err)
	}
	ncols := byColumn(nr, s.columns, nil)
	for c := range cols {
		same := reflect.DeepEqual(parquet.Row(cols[c]), parquet.Row(ncols[c])) || parquet.Row(cols[c]).Equal(parquet.Row(ncols[c]))
		if c == s.fields[1].first { // items.list.element.sku
			if same {
				t.Errorf("column %d (sku) unchanged", c)
			}
			continue
		}
		if !same {
			t.Errorf("column %d changed", c)
		}
	}
}
