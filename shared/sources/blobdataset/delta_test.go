package blobdataset

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/sources"
)

// dlRow is a row of the test tables' data files.
type dlRow struct {
	Email *string `parquet:"email,optional"`
	Name  string  `parquet:"name"`
}

// Checkpoint rows, the shape Delta writers give checkpoints (a subset).
type cpAdd struct {
	Path             string            `parquet:"path"`
	PartitionValues  map[string]string `parquet:"partitionValues"`
	Size             int64             `parquet:"size"`
	ModificationTime int64             `parquet:"modificationTime"`
	DataChange       bool              `parquet:"dataChange"`
	Stats            *string           `parquet:"stats,optional"`
}

type cpRemove struct {
	Path              string `parquet:"path"`
	DeletionTimestamp int64  `parquet:"deletionTimestamp"`
	DataChange        bool   `parquet:"dataChange"`
}

type cpFormat struct {
	Provider string `parquet:"provider"`
}

type cpMeta struct {
	ID               string            `parquet:"id"`
	Format           cpFormat          `parquet:"format"`
	SchemaString     string            `parquet:"schemaString"`
	PartitionColumns []string          `parquet:"partitionColumns,list"`
	Configuration    map[string]string `parquet:"configuration"`
}

type cpProtocol struct {
	MinReaderVersion int32 `parquet:"minReaderVersion"`
	MinWriterVersion int32 `parquet:"minWriterVersion"`
}

type cpRow struct {
	Add      *cpAdd      `parquet:"add,optional"`
	Remove   *cpRemove   `parquet:"remove,optional"`
	MetaData *cpMeta     `parquet:"metaData,optional"`
	Protocol *cpProtocol `parquet:"protocol,optional"`
}

const dlSchema = `{"type":"struct","fields":[{"name":"email","type":"string","nullable":true,"metadata":{}},{"name":"name","type":"string","nullable":false,"metadata":{}},{"name":"region","type":"string","nullable":true,"metadata":{}}]}`

var dlDataset = sources.Dataset{Name: "people", Prefix: "tbl/", Format: sources.FormatDelta,
	Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}}}

// dlTable writes test tables under tbl/.
type dlTable struct {
	f     *fixture
	sizes map[string]int64
}

func newDLTable(f *fixture) *dlTable { return &dlTable{f: f, sizes: map[string]int64{}} }

// file writes a data file (path relative to the table root).
func (d *dlTable) file(p string, rows ...dlRow) {
	b := pqFile(d.f.t, rows, 2)
	d.f.put("tbl/"+p, string(b))
	d.sizes[p] = int64(len(b))
}

func (d *dlTable) add(p, region string) string {
	b, _ := json.Marshal(map[string]any{"add": map[string]any{"path": p, "partitionValues": map[string]string{"region": region},
		"size": d.sizes[p], "modificationTime": 1, "dataChange": true}})
	return string(b)
}

func dlRemove(p string) string {
	return `{"remove":{"path":"` + p + `","deletionTimestamp":2,"dataChange":true}}`
}

const dlProtocol = `{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}`
const dlMeta = `{"metaData":{"id":"t1","format":{"provider":"parquet","options":{}},"schemaString":` + "\"" + `{\"type\":\"struct\",\"fields\":[{\"name\":\"email\",\"type\":\"string\",\"nullable\":true,\"metadata\":{}},{\"name\":\"name\",\"type\":\"string\",\"nullable\":false,\"metadata\":{}},{\"name\":\"region\",\"type\":\"string\",\"nullable\":true,\"metadata\":{}}]}` + "\"" + `,"partitionColumns":["region"],"configuration":{}}}`

func (d *dlTable) commit(v int, lines ...string) {
	d.f.put(fmt.Sprintf("tbl/_delta_log/%020d.json", v), strings.Join(lines, "\n")+"\n")
}

func dlAnn(name string) dlRow { return dlRow{Email: sp("ann@x.example"), Name: name} }
func dlBob(name string) dlRow { return dlRow{Email: sp("bob@x.example"), Name: name} }

// readNames reads the matches and returns "name/region" per record.
func dlRead(t *testing.T, c *Connector, dm sources.DatasetMatches) ([]string, error) {
	t.Helper()
	var out []string
	err := c.Read(t.Context(), dm, func(r sources.Record) error {
		m := map[string]any{}
		for _, f := range r.Fields {
			m[f.Name] = f.Value
		}
		out = append(out, fmt.Sprintf("%v/%v", m["name"], m["region"]))
		return nil
	})
	return out, err
}

// The live files come from the newest checkpoint (the one _last_checkpoint
// names; the commits before it are cleaned up) and the commits after it;
// partition values become fields.
func TestDeltaLogReconciliationWithCheckpoint(t *testing.T) {
	f := newFixture(t)
	tb := newDLTable(f)
	tb.file("region=eu/a.parquet", dlAnn("a1"), dlBob("a2"))
	tb.file("region=eu/b.parquet", dlBob("b1"), dlAnn("b2"), dlAnn("b3"))
	tb.file("region=us/c.parquet", dlAnn("c1"))
	tb.file("region=us/d.parquet", dlBob("d1"), dlAnn("d2"))
	// Versions 0 and 1 are only in the checkpoint (their commits are gone;
	// version 0's would add a, version 1's remove a and add b and c).
	cp := []cpRow{
		{Protocol: &cpProtocol{1, 2}},
		{MetaData: &cpMeta{ID: "t1", Format: cpFormat{"parquet"}, SchemaString: dlSchema, PartitionColumns: []string{"region"}, Configuration: map[string]string{}}},
		{Add: &cpAdd{Path: "region=eu/b.parquet", PartitionValues: map[string]string{"region": "eu"}, Size: tb.sizes["region=eu/b.parquet"], DataChange: false}},
		{Add: &cpAdd{Path: "region=us/c.parquet", PartitionValues: map[string]string{"region": "us"}, Size: tb.sizes["region=us/c.parquet"], DataChange: false}},
		{Remove: &cpRemove{Path: "region=eu/a.parquet", DeletionTimestamp: 5, DataChange: true}},
	}
	f.put("tbl/_delta_log/00000000000000000001.checkpoint.parquet", string(pqFile(t, cp, 2)))
	f.put("tbl/_delta_log/_last_checkpoint", `{"version":1,"size":5}`)
	// An older, stale checkpoint that still lists a: it must not be used.
	f.put("tbl/_delta_log/00000000000000000000.checkpoint.parquet", string(pqFile(t, []cpRow{cp[0], cp[1],
		{Add: &cpAdd{Path: "region=eu/a.parquet", PartitionValues: map[string]string{"region": "eu"}}}}, 2)))
	tb.commit(2, `{"commitInfo":{"operation":"WRITE"}}`, tb.add("region=us/d.parquet", "us"), dlRemove("region=eu/b.parquet"))
	tb.commit(3, `{"commitInfo":{"operation":"WRITE"}}`, tb.add("region=eu/b.parquet", "eu"))

	c := f.connector(dlDataset)
	snap, err := c.loadDelta(f.ctx, c.cfg.Dataset("people"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := snap.blobs(), []string{"tbl/region=eu/b.parquet", "tbl/region=us/c.parquet", "tbl/region=us/d.parquet"}; !slices.Equal(got, want) || snap.version != 3 {
		t.Fatalf("live files %v at version %d, want %v at 3", got, snap.version, want)
	}
	dm := matchesOf(t, f.discover(c, rwSubject), "people")
	if dm.Records != 4 || dm.Error != "" {
		t.Fatalf("discovery: %+v", dm)
	}
	got, err := dlRead(t, c, dm)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"b2/eu", "b3/eu", "c1/us", "d2/us"}; !slices.Equal(got, want) {
		t.Errorf("read %v, want %v", got, want)
	}

	// A multi-part checkpoint at version 2 (both parts) is newer than
	// _last_checkpoint's and wins (it leaves d out, so the result tells
	// which checkpoint was read); an incomplete one at version 3 is
	// ignored.
	f.put("tbl/_delta_log/00000000000000000002.checkpoint.0000000001.0000000002.parquet", string(pqFile(t, []cpRow{cp[0], cp[1]}, 2)))
	f.put("tbl/_delta_log/00000000000000000002.checkpoint.0000000002.0000000002.parquet", string(pqFile(t, []cpRow{
		{Add: &cpAdd{Path: "region=us/c.parquet", PartitionValues: map[string]string{"region": "us"}}}}, 2)))
	f.put("tbl/_delta_log/00000000000000000003.checkpoint.0000000001.0000000002.parquet", string(pqFile(t, []cpRow{cp[0], cp[1]}, 2)))
	snap, err = c.loadDelta(f.ctx, c.cfg.Dataset("people"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := snap.blobs(), []string{"tbl/region=eu/b.parquet", "tbl/region=us/c.parquet"}; !slices.Equal(got, want) {
		t.Fatalf("with a multi-part checkpoint: live files %v, want %v", got, want)
	}

	// A gap in the log is refused.
	f.put("tbl/_delta_log/00000000000000000005.json", `{"commitInfo":{}}`+"\n")
	dm = matchesOf(t, f.discover(c, rwSubject), "people")
	if !dm.Permanent || !strings.Contains(dm.Error, "no commit for version 4") {
		t.Errorf("a log with a gap: %+v", dm)
	}
}

// Tables that need what the connector does not support are refused, with
// the feature named, and nothing is read.
func TestDeltaRefusesUnsupportedFeatures(t *testing.T) {
	for _, tc := range []struct {
		name, protocol, meta, add string
		want                      string
	}{
		{name: "deletion vectors",
			protocol: `{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors"],"writerFeatures":["deletionVectors"]}}`,
			want:     "reader feature deletionVectors is not supported"},
		{name: "a deletion vector on a file",
			add:  `{"add":{"path":"a.parquet","partitionValues":{},"size":1,"modificationTime":1,"dataChange":true,"deletionVector":{"storageType":"u","pathOrInlineDv":"ab^-aqEH.-t@S}K{vb[*k^","offset":4,"sizeInBytes":40,"cardinality":2}}}`,
			want: "deletion vector"},
		{name: "column mapping",
			protocol: `{"protocol":{"minReaderVersion":2,"minWriterVersion":5}}`,
			meta:     `{"metaData":{"id":"t1","format":{"provider":"parquet"},"schemaString":"{\"type\":\"struct\",\"fields\":[]}","partitionColumns":[],"configuration":{"delta.columnMapping.mode":"name"}}}`,
			want:     "column mapping (delta.columnMapping.mode name) is not supported"},
		{name: "reader version 4", protocol: `{"protocol":{"minReaderVersion":4,"minWriterVersion":7}}`, want: "minReaderVersion 4 is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tb := newDLTable(f)
			tb.file("a.parquet", dlAnn("a1"))
			p, m, a := tc.protocol, tc.meta, tc.add
			if p == "" {
				p = dlProtocol
			}
			if m == "" {
				m = dlMeta
			}
			if a == "" {
				a = tb.add("a.parquet", "eu")
			}
			tb.commit(0, p, m, a)
			c := f.connector(dlDataset)
			dm := matchesOf(t, f.discover(c, rwSubject), "people")
			if dm.Records != 0 || !dm.Permanent || !strings.Contains(dm.Error, tc.want) || !strings.Contains(dm.Error, "delta table tbl/") {
				t.Errorf("discovery: %+v, want a permanent error with %q", dm, tc.want)
			}
			err := c.Read(f.ctx, sources.DatasetMatches{Dataset: "people", Records: 1,
				Locations: []sources.Location{{Blob: "tbl/a.parquet", ETag: "x", Ordinals: []int64{0}}}}, func(sources.Record) error { return nil })
			var de *sources.DataError
			if !errors.As(err, &de) {
				t.Errorf("read: %v, want a DataError", err)
			}
		})
	}

	// Writing needs more: an append-only table is read, never rewritten.
	f := newFixture(t)
	tb := newDLTable(f)
	tb.file("a.parquet", dlAnn("a1"))
	tb.commit(0, dlProtocol, strings.Replace(dlMeta, `"configuration":{}`, `"configuration":{"delta.appendOnly":"true"}`, 1), tb.add("a.parquet", "eu"))
	c := f.connector(dlDataset)
	dm := matchesOf(t, f.discover(c, rwSubject), "people")
	if dm.Records != 1 {
		t.Fatalf("append-only table: %+v", dm)
	}
	_, err := c.Rewrite(f.ctx, "people", dm.Locations[0], func(int64, sources.Record) (*sources.Record, error) { return nil, nil })
	var de *sources.DataError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("rewrite of an append-only table: %v", err)
	}
}

// dlLive returns the live rows "name/region" of the table, sorted, and the
// log's versions.
func dlLive(t *testing.T, c *Connector) ([]string, *deltaSnapshot) {
	t.Helper()
	d := c.cfg.Dataset("people")
	snap, err := c.loadDelta(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range snap.blobs() {
		etag, _, err := azureStore{c.svc}.stat(t.Context(), d.Container, b)
		if err != nil {
			t.Fatal(err)
		}
		// Every row: read ordinals 0.. until the file ends.
		ra := &blobReaderAt{ctx: t.Context(), r: azureStore{c.svc}, cont: d.Container, name: b, etag: etag}
		_, size, _ := azureStore{c.svc}.stat(t.Context(), d.Container, b)
		ra.size = size
		pf, err := openParquet(ra)
		if err != nil {
			t.Fatal(err)
		}
		var ords []int64
		for i := range pf.NumRows() {
			ords = append(ords, i)
		}
		got, err := dlRead(t, c, sources.DatasetMatches{Dataset: "people", Locations: []sources.Location{{Blob: b, ETag: etag, Ordinals: ords}}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got...)
	}
	sort.Strings(out)
	return out, snap
}

// An erasure commits the next version only if absent: when another writer
// took it meanwhile, the log is read again and the commit made at the next
// version, the other writer's change kept; when the other writer removed
// the file, the rewrite reports sources.ErrChanged.
func TestDeltaCommitRetriesAfterAConcurrentCommit(t *testing.T) {
	f := newFixture(t)
	tb := newDLTable(f)
	tb.file("region=eu/a.parquet", dlAnn("a1"), dlBob("a2"), dlAnn("a3"))
	tb.file("region=us/b.parquet", dlBob("b1"))
	tb.file("region=us/e.parquet", dlBob("e1"))
	tb.commit(0, dlProtocol, dlMeta, tb.add("region=eu/a.parquet", "eu"), tb.add("region=us/b.parquet", "us"))
	c := f.connector(dlDataset)
	dm := matchesOf(t, f.discover(c, rwSubject), "people")
	if dm.Records != 2 || len(dm.Locations) != 1 {
		t.Fatalf("discovery: %+v", dm)
	}
	defer func() { deltaHook = nil }()
	deltaHook = func(stage string) error {
		if stage == "data-written" {
			// Another writer appends e as version 1.
			tb.commit(1, `{"commitInfo":{"operation":"WRITE"}}`, tb.add("region=us/e.parquet", "us"))
		}
		return nil
	}
	res, err := c.RewritePlanned(f.ctx, "people", dm.Locations[0], deleteAll, sources.CommitPlan{ID: "plan-1"})
	if err != nil {
		t.Fatal(err)
	}
	deltaHook = nil
	if res.Deleted != 2 || !strings.Contains(res.ETag, "@tbl/region=eu/part-dsr-") {
		t.Errorf("result %+v", res)
	}
	live, snap := dlLive(t, c)
	if want := []string{"a2/eu", "b1/us", "e1/us"}; !slices.Equal(live, want) || snap.version != 2 {
		t.Errorf("live rows %v at version %d, want %v at 2", live, snap.version, want)
	}
	if ok, etag, err := c.Committed(f.ctx, "people", dm.Locations[0].Blob, sources.PlanRef{ID: "plan-1"}); !ok || etag != res.ETag || err != nil {
		t.Errorf("committed: %v %q %v, want true %q", ok, etag, err, res.ETag)
	}
	// Version 2 is ours: commitInfo first, with the plan; the old file
	// stays in storage (until VACUUM).
	b2 := dlGet(f, "tbl/_delta_log/00000000000000000002.json")
	if !strings.HasPrefix(b2, `{"commitInfo":`) || !strings.Contains(b2, `"dsrPlan":"plan-1"`) || !strings.Contains(b2, `"remove":{"path":"region=eu/a.parquet"`) {
		t.Errorf("version 2: %s", b2)
	}
	if dlGet(f, "tbl/region=eu/a.parquet") == "" {
		t.Error("the old data file was deleted; it stays until VACUUM")
	}
	// Read follows the result's ETag to the new file.
	got, err := dlRead(t, c, sources.DatasetMatches{Dataset: "people", Locations: []sources.Location{{Blob: dm.Locations[0].Blob, ETag: res.ETag, Ordinals: []int64{0}}}})
	if err != nil || !slices.Equal(got, []string{"a2/eu"}) {
		t.Errorf("read after the rewrite: %v %v", got, err)
	}

	// The other writer removes the file the rewrite works on.
	dm = matchesOf(t, f.discover(c, sources.Subject{Emails: []string{"bob@x.example"}}), "people")
	var loc sources.Location
	for _, l := range dm.Locations {
		if l.Blob == "tbl/region=us/b.parquet" {
			loc = l
		}
	}
	deltaHook = func(stage string) error {
		if stage == "data-written" {
			tb.commit(3, `{"commitInfo":{"operation":"DELETE"}}`, dlRemove("region=us/b.parquet"))
		}
		return nil
	}
	if _, err := c.Rewrite(f.ctx, "people", loc, deleteAll); !errors.Is(err, sources.ErrChanged) {
		t.Errorf("rewrite of a file another writer removed: %v, want ErrChanged", err)
	}
}

// A rewrite that dies after writing the new data file but before the log
// commit changes nothing: the retry applies the change once. One that dies
// after the commit is recognised by Committed, and a retry of the same
// location does not apply it twice.
func TestDeltaCrashRetryDoesNotDouble(t *testing.T) {
	f := newFixture(t)
	tb := newDLTable(f)
	tb.file("region=eu/a.parquet", dlAnn("a1"), dlBob("a2"), dlAnn("a3"), dlBob("a4"))
	tb.commit(0, dlProtocol, dlMeta, tb.add("region=eu/a.parquet", "eu"))
	c := f.connector(dlDataset)
	dm := matchesOf(t, f.discover(c, rwSubject), "people")
	loc := dm.Locations[0]
	defer func() { deltaHook = nil }()
	crash := errors.New("crash")
	deltaHook = func(stage string) error {
		if stage == "data-written" {
			return crash
		}
		return nil
	}
	if _, err := c.RewritePlanned(f.ctx, "people", loc, deleteAll, sources.CommitPlan{ID: "p1"}); !errors.Is(err, crash) {
		t.Fatalf("crash before the log commit: %v", err)
	}
	if ok, _, err := c.Committed(f.ctx, "people", loc.Blob, sources.PlanRef{ID: "p1"}); ok || err != nil {
		t.Fatalf("committed after a crash before the commit: %v %v", ok, err)
	}
	live, snap := dlLive(t, c)
	if want := []string{"a1/eu", "a2/eu", "a3/eu", "a4/eu"}; !slices.Equal(live, want) || snap.version != 0 {
		t.Fatalf("after the crash: %v at version %d", live, snap.version)
	}

	// The retry (a new plan) commits once; then a crash right after the
	// commit.
	deltaHook = func(stage string) error {
		if stage == "log-committed" {
			return crash
		}
		return nil
	}
	if _, err := c.RewritePlanned(f.ctx, "people", loc, deleteAll, sources.CommitPlan{ID: "p2"}); !errors.Is(err, crash) {
		t.Fatalf("crash after the log commit: %v", err)
	}
	deltaHook = nil
	ok, etag, err := c.Committed(f.ctx, "people", loc.Blob, sources.PlanRef{ID: "p2"})
	if !ok || err != nil || !strings.Contains(etag, "@tbl/region=eu/part-dsr-") {
		t.Fatalf("committed after a crash after the commit: %v %q %v", ok, etag, err)
	}
	live, snap = dlLive(t, c)
	if want := []string{"a2/eu", "a4/eu"}; !slices.Equal(live, want) || snap.version != 1 {
		t.Fatalf("after the commit: %v at version %d", live, snap.version)
	}
	// Retrying the same location again: the file is no longer live.
	if _, err := c.RewritePlanned(f.ctx, "people", loc, deleteAll, sources.CommitPlan{ID: "p3"}); !errors.Is(err, sources.ErrChanged) {
		t.Fatalf("retry after the commit: %v, want ErrChanged", err)
	}
	live, snap = dlLive(t, c)
	if want := []string{"a2/eu", "a4/eu"}; !slices.Equal(live, want) || snap.version != 1 {
		t.Fatalf("after the retry: %v at version %d", live, snap.version)
	}
	// Deleting every row of a file removes it without adding one.
	dm = matchesOf(t, f.discover(c, sources.Subject{Emails: []string{"bob@x.example"}}), "people")
	res, err := c.Rewrite(f.ctx, "people", dm.Locations[0], deleteAll)
	if err != nil || res.Deleted != 2 || res.ETag != "" {
		t.Fatalf("delete a whole file: %+v %v", res, err)
	}
	if live, _ := dlLive(t, c); len(live) != 0 {
		t.Errorf("rows left: %v", live)
	}
}

// A replacement keeps the partition value; changing it is refused.
func TestDeltaRectifyKeepsPartition(t *testing.T) {
	f := newFixture(t)
	tb := newDLTable(f)
	tb.file("region=eu/a.parquet", dlAnn("a1"), dlBob("a2"))
	tb.commit(0, dlProtocol, dlMeta, tb.add("region=eu/a.parquet", "eu"))
	c := f.connector(dlDataset)
	dm := matchesOf(t, f.discover(c, rwSubject), "people")
	edit := func(field string, v any) Edit {
		return func(_ int64, rec sources.Record) (*sources.Record, error) {
			out := sources.Record{Fields: slices.Clone(rec.Fields)}
			for i := range out.Fields {
				if out.Fields[i].Name == field {
					out.Fields[i].Value = v
				}
			}
			return &out, nil
		}
	}
	if _, err := c.Rewrite(f.ctx, "people", dm.Locations[0], edit("region", "us")); err == nil || !strings.Contains(err.Error(), "partition column") {
		t.Errorf("moving a row to another partition: %v", err)
	}
	res, err := c.Rewrite(f.ctx, "people", dm.Locations[0], edit("name", "Ann Q"))
	if err != nil || res.Replaced != 1 {
		t.Fatalf("rectify: %+v %v", res, err)
	}
	if live, _ := dlLive(t, c); !slices.Equal(live, []string{"Ann Q/eu", "a2/eu"}) {
		t.Errorf("live rows: %v", live)
	}
}

// dlGet reads a blob ("" if it cannot).
func dlGet(f *fixture, name string) string {
	resp, err := f.acct.Service.NewContainerClient(f.c).NewBlobClient(name).DownloadStream(f.ctx, nil)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
