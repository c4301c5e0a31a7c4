package sample

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/dsr-functions/dsr/shared/sources"
)

// nativeRecords parses native file f as objects (numbers as json.Number,
// CSV cells as strings).
func nativeRecords(t *testing.T, f File, size Size, seed uint64) []map[string]any {
	t.Helper()
	var b bytes.Buffer
	if err := Generate(&b, f, size, seed); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	add := func(m map[string]any) error { out = append(out, m); return nil }
	var err error
	switch filepath.Ext(f.Name) {
	case ".ndjson":
		err = eachNDJSON(&b, add)
	case ".csv":
		err = eachCSV(&b, add)
	default:
		err = eachJSONArray(&b, add)
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestParquetSample writes the Parquet sample and reads every file back:
// the native file's records, value for value, in the declared column
// order and logical types, in row groups of at most ParquetGroupRows.
func TestParquetSample(t *testing.T) {
	defer func(n int64) { ParquetGroupRows = n }(ParquetGroupRows)
	ParquetGroupRows = 500
	size := mustSize(t, "small")
	dir := t.TempDir()
	sink := &FolderSink{Dir: dir}
	if err := WriteFormat(context.Background(), "parquet", sink, size, 7); err != nil {
		t.Fatal(err)
	}
	if len(sink.Written) != len(Files()) {
		t.Fatalf("wrote %d files, want %d", len(sink.Written), len(Files()))
	}
	for _, f := range Files() {
		t.Run(f.Name, func(t *testing.T) {
			path := filepath.Join(dir, f.Container, filepath.FromSlash(ParquetBlob(f.Name)))
			fh, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			st, _ := fh.Stat()
			pf, err := parquet.OpenFile(fh, st.Size())
			if err != nil {
				t.Fatal(err)
			}
			cols := parquetSchemas[f.Name]
			leaves := pf.Schema().Columns()
			if len(leaves) != len(cols) {
				t.Fatalf("%d columns, want %d", len(leaves), len(cols))
			}
			for i, c := range cols {
				leaf, _ := pf.Schema().Lookup(leaves[i]...)
				if leaves[i][0] != c.name || leaf.ColumnIndex != i || leaf.Node.Optional() != c.optional {
					t.Errorf("column %d is %v (optional %v), want %s (optional %v)", i, leaves[i], leaf.Node.Optional(), c.name, c.optional)
				}
				lt := leaf.Node.Type().LogicalType()
				switch c.kind {
				case pqString:
					if _, ok := ltValue(lt).(*format.StringType); !ok {
						t.Errorf("column %s is not STRING: %v", c.name, lt)
					}
				case pqInt:
					if leaf.Node.Type().Kind() != parquet.Int64 {
						t.Errorf("column %s is not INT64", c.name)
					}
				case pqTime:
					ts, ok := ltValue(lt).(*format.TimestampType)
					if !ok || !ts.IsAdjustedToUTC {
						t.Errorf("column %s is not TIMESTAMP(UTC): %v", c.name, lt)
					} else if _, ms := ts.Unit.Value.(*format.MilliSeconds); !ms {
						t.Errorf("column %s is not TIMESTAMP(MILLIS, UTC): %v", c.name, lt)
					}
				case pqBool:
					if leaf.Node.Type().Kind() != parquet.Boolean {
						t.Errorf("column %s is not BOOLEAN", c.name)
					}
				}
			}
			want := nativeRecords(t, f, size, 7)
			if pf.NumRows() != int64(len(want)) {
				t.Fatalf("%d rows, want %d", pf.NumRows(), len(want))
			}
			if len(want) > 500 && len(pf.RowGroups()) < 2 {
				t.Errorf("%d rows in %d row groups; want groups of at most 500", len(want), len(pf.RowGroups()))
			}
			i := 0
			for _, rg := range pf.RowGroups() {
				if rg.NumRows() > ParquetGroupRows {
					t.Errorf("row group of %d rows", rg.NumRows())
				}
				rows := rg.Rows()
				buf := make([]parquet.Row, 100)
				for {
					n, err := rows.ReadRows(buf)
					for _, row := range buf[:n] {
						checkRow(t, i, cols, row, want[i])
						i++
					}
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				rows.Close()
			}
			if i != len(want) {
				t.Fatalf("read %d rows, want %d", i, len(want))
			}
		})
	}
}

func checkRow(t *testing.T, i int, cols []pqCol, row parquet.Row, want map[string]any) {
	t.Helper()
	if len(row) != len(cols) {
		t.Fatalf("row %d has %d values", i, len(row))
	}
	if len(want) != len(cols)-extraCols(cols) {
		t.Fatalf("native record %d has %d fields, want %d", i, len(want), len(cols)-extraCols(cols))
	}
	for c, col := range cols {
		v, x := row[c], want[col.name]
		if x == nil {
			if !v.IsNull() {
				t.Fatalf("row %d %s = %v, want null", i, col.name, v)
			}
			continue
		}
		s := fmt.Sprint(x)
		var got string
		switch col.kind {
		case pqString:
			got = string(v.ByteArray())
		case pqInt:
			got = strconv.FormatInt(v.Int64(), 10)
		case pqTime:
			nt, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				t.Fatal(err)
			}
			if !time.UnixMilli(v.Int64()).Equal(nt) {
				t.Fatalf("row %d %s = %v, want %s", i, col.name, time.UnixMilli(v.Int64()).UTC(), s)
			}
			continue
		}
		if got != s {
			t.Fatalf("row %d %s = %q, want %q", i, col.name, got, s)
		}
	}
}

func ltValue(lt *format.LogicalType) format.LogicalTypeValue {
	if lt == nil {
		return nil
	}
	return lt.Value
}

func extraCols(cols []pqCol) int {
	n := 0
	for _, c := range cols {
		if c.extra {
			n++
		}
	}
	return n
}

// A record with a field the schema does not declare fails the write rather
// than lose the field.
func TestParquetSchemaMustCoverTheGenerator(t *testing.T) {
	conv := &pqConverter{cols: parquetSchemas[AgentsBlob]}
	rec := map[string]any{"systemuserid": "a", "fullname": "b", "internalemailaddress": "c", "title": "d", "businessunit": "e"}
	if _, err := conv.row(rec); err != nil {
		t.Fatal(err)
	}
	rec["hiredon"] = "2020-01-01"
	if _, err := conv.row(rec); err == nil {
		t.Fatal("an undeclared field was accepted")
	}
	delete(rec, "hiredon")
	delete(rec, "title")
	if _, err := conv.row(rec); err == nil {
		t.Fatal("a missing required field was accepted")
	}
	rec["title"] = json.Number("3")
	if _, err := conv.row(rec); err == nil {
		t.Fatal("a number in a STRING column was accepted")
	}
}

// sample/sources.parquet.json is sample/sources.json with the Parquet
// files' names and format, nothing else.
func TestParquetSourcesConfig(t *testing.T) {
	native, pq := loadSampleConfig(t, "sources.json"), loadSampleConfig(t, "sources.parquet.json")
	if len(pq.Datasets) != len(native.Datasets) {
		t.Fatalf("%d datasets, want %d", len(pq.Datasets), len(native.Datasets))
	}
	for i := range native.Datasets {
		n, p := native.Datasets[i], pq.Datasets[i]
		if p.Format != sources.FormatParquet || p.Blob != ParquetBlob(n.Blob) || p.Container != Container {
			t.Errorf("dataset %s: %s %s/%s, want parquet %s/%s", p.Name, p.Format, p.Container, p.Blob, Container, ParquetBlob(n.Blob))
		}
		p.Format, p.Blob = n.Format, n.Blob
		if !reflect.DeepEqual(n, p) {
			t.Errorf("dataset %s differs from sources.json beyond blob and format", n.Name)
		}
	}
	native.Datasets, pq.Datasets = nil, nil
	if !reflect.DeepEqual(native, pq) {
		t.Error("sources.parquet.json differs from sources.json beyond the datasets' blobs and formats")
	}
}

// sample/sources.indexed.json (`make run INDEX=1`) is sample/sources.json
// with the identifier index on for every Blob dataset, nothing else.
func TestIndexedSourcesConfig(t *testing.T) {
	native, indexed := loadSampleConfig(t, "sources.json"), loadSampleConfig(t, "sources.indexed.json")
	if len(indexed.Datasets) != len(native.Datasets) {
		t.Fatalf("%d datasets, want %d", len(indexed.Datasets), len(native.Datasets))
	}
	for i := range native.Datasets {
		if !indexed.Datasets[i].Index {
			t.Errorf("dataset %s is not indexed", indexed.Datasets[i].Name)
		}
		indexed.Datasets[i].Index = false
	}
	if !reflect.DeepEqual(native, indexed) {
		t.Error("sources.indexed.json differs from sources.json beyond the index fields")
	}
}

// loadSampleConfig parses one of the sample/ sources configs.
func loadSampleConfig(t *testing.T, name string) *sources.Config {
	t.Helper()
	b, err := os.ReadFile("../../sample/" + name)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := sources.Parse(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return cfg
}
