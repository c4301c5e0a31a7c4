package sample

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/dsr-functions/dsr/shared/sources"
)

// The delta format writes each dataset as a Delta table whose version 0
// holds protocol (1, 2), metaData and one add per data file; the tables
// hold as many rows as the native files have records, the same bytes every
// time, and sample/sources.delta.json describes them.
func TestDeltaFormat(t *testing.T) {
	size, _ := ParseSize("tiny")
	write := func() (string, []string) {
		sink := &FolderSink{Dir: t.TempDir()}
		if err := WriteFormat(context.Background(), "delta", sink, size, 1); err != nil {
			t.Fatal(err)
		}
		return sink.Dir, sink.Written
	}
	dir, written := write()
	dir2, _ := write()
	for _, p := range written {
		a, _ := os.ReadFile(p)
		b, _ := os.ReadFile(filepath.Join(dir2, strings.TrimPrefix(p, dir)))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two runs", p)
		}
	}
	native := map[string]int{}
	for _, f := range Files() {
		n := 0
		if err := eachNative(context.Background(), f, size, 1, func(*map[string]any) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		native[f.Name] = n
	}
	tables := map[string]string{ContactsBlob: "contacts", CasesBlob: "cases", AgentsBlob: "agents", SurveysBlob: "surveys", ActivityBlob: "activity-log"}
	for blobName, table := range tables {
		root := filepath.Join(dir, Container, filepath.FromSlash(DeltaPrefix(table)))
		log, err := os.ReadFile(filepath.Join(root, "_delta_log", "00000000000000000000.json"))
		if err != nil {
			t.Fatal(err)
		}
		rows := 0
		var protocol, meta bool
		sc := bufio.NewScanner(bytes.NewReader(log))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var a struct {
				Protocol *struct{ MinReaderVersion, MinWriterVersion int } `json:"protocol"`
				MetaData *struct {
					SchemaString     string   `json:"schemaString"`
					PartitionColumns []string `json:"partitionColumns"`
				} `json:"metaData"`
				Add *struct {
					Path            string            `json:"path"`
					Size            int64             `json:"size"`
					PartitionValues map[string]string `json:"partitionValues"`
				} `json:"add"`
			}
			if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
				t.Fatal(err)
			}
			if a.Protocol != nil {
				protocol = a.Protocol.MinReaderVersion == 1 && a.Protocol.MinWriterVersion == 2
			}
			if a.MetaData != nil {
				meta = json.Valid([]byte(a.MetaData.SchemaString))
				if (table == "activity-log") != (len(a.MetaData.PartitionColumns) == 1) {
					t.Errorf("%s: partition columns %v", table, a.MetaData.PartitionColumns)
				}
			}
			if a.Add != nil {
				b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(a.Add.Path)))
				if err != nil || int64(len(b)) != a.Add.Size {
					t.Fatalf("%s: data file %s: %v (size %d, log says %d)", table, a.Add.Path, err, len(b), a.Add.Size)
				}
				f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
				if err != nil {
					t.Fatal(err)
				}
				rows += int(f.NumRows())
			}
		}
		if !protocol || !meta {
			t.Errorf("%s: protocol %v, metaData %v", table, protocol, meta)
		}
		if rows != native[blobName] {
			t.Errorf("%s: %d rows, native %s has %d records", table, rows, blobName, native[blobName])
		}
	}
	cfg, err := sources.LoadFile("../../sample/sources.delta.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range cfg.Datasets {
		if d.Format != sources.FormatDelta || d.Prefix != DeltaPrefix(d.Name) || tables[map[string]string{"contacts": ContactsBlob, "cases": CasesBlob, "agents": AgentsBlob, "surveys": SurveysBlob, "activity-log": ActivityBlob}[d.Name]] != d.Name {
			t.Errorf("sources.delta.json: dataset %s: %s %s", d.Name, d.Format, d.Prefix)
		}
	}
}
