package sample

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/sources"
)

// writeSynapseSample writes the synapse sample of size into a folder and
// returns it and the blob names written (relative to Container).
func writeSynapseSample(t *testing.T, size Size) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	sink := &FolderSink{Dir: dir}
	if err := WriteFormat(context.Background(), "synapse", sink, size, 1); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range sink.Written {
		rel, _ := filepath.Rel(filepath.Join(dir, Container), p)
		names = append(names, filepath.ToSlash(rel))
	}
	return filepath.Join(dir, Container), names
}

// TestSynapseSample: every native record is one row of its table (the
// yearly files hold them all, each as long as the table's columns less
// the contact table's added column), the incremental folder holds the
// changed and deleted contacts with the added column and nothing of the
// demo subject's or the decoys', and the output is deterministic.
func TestSynapseSample(t *testing.T) {
	size, _ := ParseSize("tiny")
	dir, names := writeSynapseSample(t, size)
	type model struct {
		Entities []struct {
			Name       string      `json:"name"`
			Attributes []synColumn `json:"attributes"`
			Partitions []struct {
				Name string `json:"name"`
			} `json:"partitions"`
		} `json:"entities"`
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var root model
	if err := json.Unmarshal(read(SynapsePrefix+"model.json"), &root); err != nil {
		t.Fatal(err)
	}
	if len(root.Entities) != len(synapseTables) {
		t.Fatalf("%d entities", len(root.Entities))
	}
	for i, tb := range synapseTables {
		e := root.Entities[i]
		if e.Name != tb.entity {
			t.Fatalf("entity %d is %s, want %s", i, e.Name, tb.entity)
		}
		var native int
		if err := synNativeRecords(context.Background(), tb.file, size, 1, func([]synField) error { native++; return nil }); err != nil {
			t.Fatal(err)
		}
		rows := 0
		for _, p := range e.Partitions {
			cr := csv.NewReader(bytes.NewReader(read(SynapsePrefix + tb.entity + "/" + p.Name + ".csv")))
			cr.FieldsPerRecord = -1
			recs, err := cr.ReadAll()
			if err != nil {
				t.Fatalf("%s/%s: %v", tb.entity, p.Name, err)
			}
			for _, r := range recs {
				want := len(e.Attributes)
				if tb.entity == "contact" {
					want-- // written before the added column
				}
				if len(r) != want {
					t.Fatalf("%s/%s: a row of %d fields, want %d", tb.entity, p.Name, len(r), want)
				}
			}
			rows += len(recs)
		}
		if rows != native {
			t.Errorf("%s: %d rows, native file has %d records", tb.entity, rows, native)
		}
	}
	inc := read(SynapsePrefix + SynapseFolders[0] + "/contact/2026.csv")
	recs, err := csv.NewReader(bytes.NewReader(inc)).ReadAll()
	if err != nil || len(recs) != SynapseChanged+1 {
		t.Fatalf("incremental folder: %d rows, %v", len(recs), err)
	}
	if synDemoLike.Match(inc) || bytes.Contains(bytes.ToLower(inc), []byte("avery")) {
		t.Error("the incremental folder holds something of the demo subject or a decoy")
	}
	if last := recs[len(recs)-1]; last[len(last)-2] != "True" {
		t.Errorf("the last incremental row is not a deletion: %v", last)
	}
	var empty model
	if err := json.Unmarshal(read(SynapsePrefix+SynapseFolders[1]+"/model.json"), &empty); err != nil {
		t.Fatal(err)
	}
	for _, e := range empty.Entities {
		if len(e.Partitions) != 0 {
			t.Errorf("the empty interval lists partitions of %s", e.Name)
		}
	}
	for _, n := range names {
		if !strings.HasPrefix(n, SynapsePrefix) {
			t.Errorf("%s is outside %s", n, SynapsePrefix)
		}
	}
	dir2, names2 := writeSynapseSample(t, size)
	if strings.Join(names, " ") != strings.Join(names2, " ") {
		t.Fatal("a second write wrote other files")
	}
	for _, n := range names {
		a, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(n)))
		b, _ := os.ReadFile(filepath.Join(dir2, filepath.FromSlash(n)))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two writes", n)
		}
	}
}

// TestSynapseSourcesConfig: sample/sources.synapse.json is
// sample/sources.json with every dataset a table of the synapse sample.
func TestSynapseSourcesConfig(t *testing.T) {
	load := func(p string) *sources.Config {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := sources.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return cfg
	}
	native, syn := load("../../sample/sources.json"), load("../../sample/sources.synapse.json")
	if len(native.Datasets) != len(syn.Datasets) {
		t.Fatalf("%d datasets, native has %d", len(syn.Datasets), len(native.Datasets))
	}
	for i, d := range syn.Datasets {
		n, tb := native.Datasets[i], synapseTables[i]
		if d.Name != n.Name || n.Blob != tb.file || d.Format != sources.FormatSynapse || d.Prefix != SynapsePrefix || d.Entity != tb.entity || d.Container != Container {
			t.Errorf("dataset %d: %s %s %s %s, want %s as table %s of %s", i, d.Name, d.Format, d.Prefix, d.Entity, n.Name, tb.entity, SynapsePrefix)
		}
		if len(d.Identifiers) != len(n.Identifiers) || len(d.Relations) != len(n.Relations) || d.Key != n.Key {
			t.Errorf("dataset %s: identifiers, relations or key differ from the native config", d.Name)
		}
	}
}
