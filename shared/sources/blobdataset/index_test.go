package blobdataset

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/dsr-functions/dsr/shared/match"
	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/sources"
)

// sampleRecords generates one sample file and returns its records' fields
// (NDJSON files only).
func sampleRecords(t testing.TB, size sample.Size, name string) []map[string]any {
	t.Helper()
	var buf bytes.Buffer
	if err := sample.Generate(&buf, sample.File{Container: sample.Container, Name: name}, size, 1); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// sampleSubjects draws n subjects from the sample's contacts and activity
// log: by email, by phone, by contact id, by combinations of another
// person's identifiers, by an agent's email (many log lines), by a phone
// that only free text holds, and by identifiers nobody has.
func sampleSubjects(t testing.TB, size sample.Size, n int) []sources.Subject {
	t.Helper()
	contacts := sampleRecords(t, size, sample.ContactsBlob)
	activity := sampleRecords(t, size, sample.ActivityBlob)
	rng := rand.New(rand.NewPCG(7, 8))
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	email := func(m map[string]any) []string {
		if e, err := match.NormalizeEmailField(str(m, "emailaddress1")); err == nil {
			return []string{e}
		}
		return nil
	}
	phone := func(m map[string]any) []string {
		if p, err := match.NormalizePhoneField(str(m, "telephone1"), "US"); err == nil {
			return []string{p}
		}
		return nil
	}
	var out []sources.Subject
	demo := sample.Demo(size)
	out = append(out,
		sources.Subject{Emails: []string{demo.Email}, Phones: []string{demo.Phone}, IDs: map[string]string{"contactId": demo.ContactID}},
		sources.Subject{Emails: []string{demo.Email}},
		sources.Subject{Phones: []string{demo.Phone}},
		sources.Subject{IDs: map[string]string{"contactId": demo.ContactID}},
		sources.Subject{Emails: []string{"nobody@nowhere.example"}, Phones: []string{"12065550000"}},
	)
	for len(out) < n {
		c := contacts[rng.IntN(len(contacts))]
		switch rng.IntN(7) {
		case 0:
			out = append(out, sources.Subject{Emails: email(c)})
		case 1:
			out = append(out, sources.Subject{Phones: phone(c)})
		case 2:
			out = append(out, sources.Subject{IDs: map[string]string{"contactId": str(c, "contactid")}})
		case 3:
			other := contacts[rng.IntN(len(contacts))]
			out = append(out, sources.Subject{Emails: email(c), Phones: phone(other), IDs: map[string]string{"contactId": " " + str(c, "contactid") + " "}})
		case 4:
			a := activity[rng.IntN(len(activity))]
			out = append(out, sources.Subject{Emails: []string{strings.ToLower(str(a, "actor"))}})
		case 5:
			a := activity[rng.IntN(len(activity))]
			var ps []string
			match.PhoneMentionTokens(str(a, "details"), "US", func(p string) { ps = append(ps, p) })
			out = append(out, sources.Subject{Phones: ps, Emails: email(c)})
		default:
			out = append(out, sources.Subject{Emails: email(c), Phones: phone(c), IDs: map[string]string{"contactId": str(c, "contactid")}})
		}
	}
	return out
}

// TestIndexDiscoveryMatchesScan is the index's differential test:
// discovery through fresh indexes finds exactly what a scan of the same
// sample data finds (ordinals, mentions, byte positions, ETags) for the
// demo subject and many random ones, one at a time and many in one
// DiscoverMany call, relations followed through the related datasets'
// indexes.
func TestIndexDiscoveryMatchesScan(t *testing.T) {
	smallIndexBlocks(t, 2<<10)
	// Builds sort in many runs merged from a temporary file.
	oldRun := sortRunPairs
	sortRunPairs = 97
	t.Cleanup(func() { sortRunPairs = oldRun })
	f := newFixture(t)
	size, _ := sample.ParseSize("small")
	f.putSample(size, 1, sample.Files()...)
	p := f.indexedConnectors(f.sampleConfig())
	buildAll(t, p.idx)
	subjects := sampleSubjects(t, size, 60)
	demo := p.sameDiscovery(t, subjects[0])[0]
	for name, want := range sample.Demo(size).Records {
		var got int64
		for _, m := range demo.Datasets {
			for _, loc := range m.Locations {
				if loc.Blob == name {
					got += int64(len(loc.Ordinals))
				}
			}
		}
		if got != int64(want) {
			t.Errorf("demo subject: %d records in %s, want %d", got, name, want)
		}
	}
	for i, s := range subjects[1:] {
		p.sameDiscovery(t, s)
		if i%10 == 0 {
			p.sameDiscovery(t, subjects[i:min(i+12, len(subjects))]...)
		}
	}
	used, bypassed := p.counts()
	if used == 0 || bypassed != 0 {
		t.Errorf("index answered %d blob lookups and left %d to a scan; want all answered", used, bypassed)
	}
}

// shapesData holds identifiers in the shapes the exact rules accept
// (display names, mailto: links, JSON, HTML and percent encodings,
// addresses wrapped across lines, phones spelled many ways) and near
// misses, in all three indexable formats, related to each other.
var shapesData = map[string]string{
	"people/a.ndjson": `{"pid":"p1","email":"Ann Lee <ANN@X.example>","phone":"+1 (425) 555-0199","notes":"prefers mail"}
{"pid":"p2","email":"mailto:bob%40y.example?subject=hi","phone":"425.555.0100","notes":"friend of ann\u0040x.example"}

{"pid":" p3 ","email":"joann@x.example","phone":"0044 20 7946 0958","notes":"ann@x.example.au is not ann"}
{"pid":"p4","email":"carl&#64;z.example","phone":"(206) 555-0142","notes":["call 425 555 0199 / 206 555 0100", {"deep":"an\nn@x.example"}]}
`,
	"people/b.ndjson": `{"pid":"p5","email":"dora\u0040w.example","phone":"+12065550111","notes":"wrote to ann@x.\n  example and BOB@Y.EXAMPLE."}` + "\r\n" +
		`{"pid":"p6","contacts":[{"email":"ann@x.example"}],"phone":"not a phone","notes":"\u002B1 425 555 0100"}` + "\r\n" +
		`{"pid":"p8","merged":" p6","email":"eve@v.example"}` + "\r\n\r\n" +
		`{"pid":"p9","merged":"p8","n":12.50}`,
	"people/empty.ndjson": "",
	"tickets.csv": "\ufefftid,person,body\r\n" +
		"t1,p1,\"Customer an\nn@x.example called from 425-555-0199\"\r\n" +
		"t2, p2 ,plain text\r\n" +
		"\r\n" +
		"t3,p9,\"mentions carl&#64;z.example and 206.555.0142\"\r\n" +
		"t4,p3,nothing\r\n",
	"msgs.json": `[
 {"mid":"m1","from":"ANN@x.example","ticket":"t4","text":"hi"},
 {"mid":"m2","from":"x@q.example","ticket":"t3","text":"see mailto:dora%40w.example"} ,
 {"mid":"m3","from":"y@q.example","ticket":"t9","text":"+44 20 7946 0958"}
]`,
}

func shapesDatasets() []sources.Dataset {
	return []sources.Dataset{
		{Name: "people", Prefix: "people/", Format: sources.FormatNDJSON, Key: "pid",
			Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}, {Field: "contacts[].email", Kind: sources.KindEmail},
				{Field: "phone", Kind: sources.KindPhone}, {Field: "pid", Kind: sources.KindID, IDName: "personId"}},
			FreeText:  []string{"notes"},
			Relations: []sources.Relation{{Field: "merged", References: "people", ReferencesField: "pid"}}},
		{Name: "tickets", Blob: "tickets.csv", Format: sources.FormatCSV, Key: "tid", FreeText: []string{"body"},
			Relations: []sources.Relation{{Field: "person", References: "people", ReferencesField: "pid"}}},
		{Name: "msgs", Blob: "msgs.json", Format: sources.FormatJSONArray, Key: "mid",
			Identifiers: []sources.Identifier{{Field: "from", Kind: sources.KindEmail}}, FreeText: []string{"text"},
			Relations: []sources.Relation{{Field: "ticket", References: "tickets", ReferencesField: "tid"}}},
	}
}

func shapesConfig(f *fixture) *sources.Config {
	cfg := &sources.Config{Version: 1, DefaultPhoneRegion: "US"}
	for _, d := range shapesDatasets() {
		d.Container, d.Facts = f.c, testFacts
		cfg.Datasets = append(cfg.Datasets, d)
	}
	return cfg
}

// TestIndexEncodedShapes runs the differential test over identifiers in
// every shape the rules read, blocks of one record and of several.
func TestIndexEncodedShapes(t *testing.T) {
	for _, block := range []int64{1, 200} {
		smallIndexBlocks(t, block)
		f := newFixture(t)
		for name, data := range shapesData {
			f.put(name, data)
		}
		p := f.indexedConnectors(shapesConfig(f))
		buildAll(t, p.idx)
		subjects := []sources.Subject{
			{Emails: []string{"ann@x.example"}},
			{Emails: []string{"ann@x.example"}, Phones: []string{"14255550199"}, IDs: map[string]string{"personId": "p1"}},
			{Emails: []string{"bob@y.example"}},
			{Phones: []string{"14255550100"}},
			{Phones: []string{"442079460958"}},
			{Emails: []string{"carl@z.example"}},
			{Phones: []string{"12065550142"}},
			{Emails: []string{"dora@w.example"}},
			{IDs: map[string]string{"personId": "p3"}},
			{IDs: map[string]string{"personId": " p2"}},
			{Keys: map[string]map[string][]string{"tickets": {"tid": {"t3"}}}},
			{Emails: []string{"joann@x.example"}, Phones: []string{"12065550111"}},
			{Emails: []string{"eve@v.example"}},
			{IDs: map[string]string{"personId": "p6"}},
		}
		var total int64
		for _, s := range subjects {
			total += p.sameDiscovery(t, s)[0].Total()
		}
		p.sameDiscovery(t, subjects...)
		if total < 20 {
			t.Errorf("the shapes matched %d records in all; the test data should match more", total)
		}
		if used, bypassed := p.counts(); used == 0 || bypassed != 0 {
			t.Errorf("blocks of %d bytes: index answered %d lookups and left %d to a scan", block, used, bypassed)
		}
		// A subject the index cannot answer for is scanned, with the
		// same result.
		p.sameDiscovery(t, sources.Subject{Emails: []string{"ANN@x.example"}}, sources.Subject{Phones: []string{""}})
		if used, bypassed := p.counts(); used != 0 || bypassed != 0 {
			t.Errorf("unanswerable subjects: %d lookups answered, %d bypassed; want the blobs scanned without opening the index", used, bypassed)
		}
	}
}

// TestIndexStaleBypassed changes a blob after its index was built: the
// index no longer matches the blob's ETag, so discovery scans the blob and
// finds the new record (a stale index never hides data). A deleted index
// and a corrupt one are scanned around too, and the log says why without
// any personal data.
func TestIndexStaleBypassed(t *testing.T) {
	smallIndexBlocks(t, 100)
	f := newFixture(t)
	for name, data := range shapesData {
		f.put(name, data)
	}
	p := f.indexedConnectors(shapesConfig(f))
	buildAll(t, p.idx)
	ann := sources.Subject{Emails: []string{"ann@x.example"}}
	before := matchesOf(t, p.sameDiscovery(t, ann)[0], "people").Records
	p.counts()

	// Append a record of hers to a blob whose index is now stale.
	f.put("people/b.ndjson", shapesData["people/b.ndjson"]+"\n"+`{"pid":"p7","email":"ann@x.example"}`+"\n")
	if stale, err := p.idx.StaleIndexes(f.ctx, "people"); err != nil || len(stale) != 1 || stale[0] != "people/b.ndjson" {
		t.Fatalf("StaleIndexes = %v, %v; want [people/b.ndjson]", stale, err)
	}
	got := matchesOf(t, p.sameDiscovery(t, ann)[0], "people")
	if got.Records != before+1 {
		t.Fatalf("after appending her record: %d records, want %d", got.Records, before+1)
	}
	if _, bypassed := p.counts(); bypassed == 0 {
		t.Error("the stale index was not bypassed")
	}

	// Deleted: scanned.
	d := p.idx.cfg.Dataset("people")
	if _, err := p.state.NewBlobClient(p.idx.index.name(d, "people/a.ndjson")).Delete(f.ctx, nil); err != nil {
		t.Fatal(err)
	}
	p.sameDiscovery(t, ann)

	// Corrupt in several ways: scanned, same result.
	buildAll(t, p.idx)
	good := p.indexBytes(t, "tickets", "tickets.csv")
	flipped := bytes.Clone(good)
	for i := len(flipped) - 40; i < len(flipped); i++ {
		flipped[i] ^= 0xff
	}
	for _, bad := range [][]byte{[]byte("garbage"), good[:len(good)/2], flipped, append(bytes.Clone(good), 0)} {
		p.putIndex(t, "tickets", "tickets.csv", bad)
		p.sameDiscovery(t, ann, sources.Subject{IDs: map[string]string{"personId": "p1"}}, sources.Subject{Emails: []string{"carl@z.example"}})
		// The corrupt index is deleted, so that the fan-out rebuilds it.
		if stale, err := p.idx.StaleIndexes(f.ctx, "tickets"); err != nil || len(stale) != 1 {
			t.Fatalf("after a corrupt index was bypassed StaleIndexes = %v, %v; want tickets.csv", stale, err)
		}
	}
	logs := p.log.String()
	if !strings.Contains(logs, "bypassed") {
		t.Errorf("nothing logged about bypassed indexes: %q", logs)
	}
	for _, personal := range []string{"ann@", "x.example", "4255550199", "p1"} {
		if strings.Contains(strings.ReplaceAll(logs, "reason=", ""), personal) {
			t.Errorf("the log holds %q: %s", personal, logs)
		}
	}
}

// TestIndexOfAnotherFormatRebuilt checks an upgrade of the index format:
// an index written by the previous version (format 1's magic, its version
// in the metadata) is stale, not corrupt: discovery scans the blob
// without a warning and leaves the object, StaleIndexes names the blob,
// and the next build replaces it.
func TestIndexOfAnotherFormatRebuilt(t *testing.T) {
	smallIndexBlocks(t, 100)
	f := newFixture(t)
	for name, data := range shapesData {
		f.put(name, data)
	}
	p := f.indexedConnectors(shapesConfig(f))
	buildAll(t, p.idx)
	ann := sources.Subject{Emails: []string{"ann@x.example"}}
	p.counts()

	old := p.indexBytes(t, "tickets", "tickets.csv")
	copy(old, "DSRIDX01")
	p.putIndex(t, "tickets", "tickets.csv", old)
	d := p.idx.cfg.Dataset("tickets")
	if _, err := p.state.NewBlobClient(p.idx.index.name(d, "tickets.csv")).SetMetadata(f.ctx,
		map[string]*string{metaVersion: to.Ptr("1")}, nil); err != nil {
		t.Fatal(err)
	}
	p.sameDiscovery(t, ann, sources.Subject{IDs: map[string]string{"personId": "p1"}})
	if _, bypassed := p.counts(); bypassed == 0 {
		t.Error("the index of format 1 was not bypassed")
	}
	if logs := p.log.String(); !strings.Contains(logs, "another index format") || strings.Contains(logs, "level=WARN") {
		t.Errorf("want the old index bypassed at debug level as stale: %s", logs)
	}
	if got := p.indexBytes(t, "tickets", "tickets.csv"); !bytes.Equal(got, old) {
		t.Error("the index of format 1 was deleted or changed by a lookup")
	}
	if stale, err := p.idx.StaleIndexes(f.ctx, "tickets"); err != nil || len(stale) != 1 || stale[0] != "tickets.csv" {
		t.Fatalf("StaleIndexes = %v, %v; want [tickets.csv]", stale, err)
	}
	buildAll(t, p.idx)
	if got := p.indexBytes(t, "tickets", "tickets.csv"); !bytes.HasPrefix(got, []byte(indexMagic)) {
		t.Errorf("after the build the index starts %q, want %q", got[:8], indexMagic)
	}
	p.counts()
	p.sameDiscovery(t, ann, sources.Subject{IDs: map[string]string{"personId": "p1"}})
	if used, bypassed := p.counts(); used == 0 || bypassed != 0 {
		t.Errorf("after the rebuild: index used for %d blobs, bypassed for %d", used, bypassed)
	}
}

// identifierFields are the sample's fields that hold identifiers or free
// text about people.
var identifierFields = map[string]bool{
	"contactid": true, "fullname": true, "firstname": true, "lastname": true, "emailaddress1": true, "telephone1": true,
	"actor": true, "entityid": true, "details": true, "responseid": true, "incidentid": true, "respondentemail": true,
	"comment": true, "eventid": true,
}

// TestIndexHoldsNoIdentifiers checks that no identifier of the sample,
// in any of its written or normalised forms, appears in the index bytes.
func TestIndexHoldsNoIdentifiers(t *testing.T) {
	f := newFixture(t)
	size, _ := sample.ParseSize("tiny")
	f.putSample(size, 1, sample.Files()...)
	p := f.indexedConnectors(f.sampleConfig())
	buildAll(t, p.idx)
	var idx [][]byte
	for _, d := range p.idx.cfg.Datasets {
		names, err := p.idx.blobs(f.ctx, &d)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			idx = append(idx, p.indexBytes(t, d.Name, n))
		}
	}
	var values []string
	for _, name := range []string{sample.ContactsBlob, sample.ActivityBlob, sample.SurveysBlob} {
		for _, r := range sampleRecords(t, size, name) {
			for k, v := range r {
				s, ok := v.(string)
				if !ok || len(s) < 6 || !identifierFields[k] {
					continue
				}
				values = append(values, s, strings.ToLower(s))
				if e, err := match.NormalizeEmailField(s); err == nil {
					values = append(values, e)
				}
				if ph, err := match.NormalizePhoneField(s, "US"); err == nil {
					values = append(values, ph, ph[len(ph)-7:])
				}
			}
		}
	}
	for _, b := range idx {
		for _, v := range values {
			if bytes.Contains(b, []byte(v)) {
				t.Fatalf("an index object holds %q", v)
			}
		}
	}
	if len(idx) != 5 || len(values) < 500 {
		t.Fatalf("checked %d index objects against %d values", len(idx), len(values))
	}
}

// TestIndexRefreshedByErasure erases a subject's record from an indexed
// blob: the rewrite rebuilds the blob's index for its new ETag, discovery
// for her then finds nothing there through the index, and another
// subject's records are still found through it.
func TestIndexRefreshedByErasure(t *testing.T) {
	smallIndexBlocks(t, 100)
	f := newFixture(t)
	for name, data := range shapesData {
		f.put(name, data)
	}
	p := f.indexedConnectors(shapesConfig(f))
	buildAll(t, p.idx)
	carl := sources.Subject{Emails: []string{"carl@z.example"}}
	bob := sources.Subject{Emails: []string{"bob@y.example"}}
	dm := matchesOf(t, p.sameDiscovery(t, carl)[0], "people")
	if dm.Records != 1 {
		t.Fatalf("carl: %d people records, want 1", dm.Records)
	}
	loc := dm.Locations[0]
	res, err := p.idx.Rewrite(f.ctx, "people", loc, func(int64, sources.Record) (*sources.Record, error) { return nil, nil })
	if err != nil || res.Deleted != 1 {
		t.Fatalf("Rewrite = %+v, %v", res, err)
	}
	if stale, err := p.idx.StaleIndexes(f.ctx, "people"); err != nil || len(stale) != 0 {
		t.Fatalf("after the erasure StaleIndexes = %v, %v; want the index refreshed", stale, err)
	}
	h, err := decodeHeader(p.indexBytes(t, "people", loc.Blob), nil)
	if err != nil || h.ETag != res.ETag {
		t.Fatalf("index header %+v, %v; want ETag %s", h, err, res.ETag)
	}
	p.counts()
	if got := matchesOf(t, p.sameDiscovery(t, carl)[0], "people"); got.Records != 0 {
		t.Errorf("after the erasure carl still has %d people records", got.Records)
	}
	if got := matchesOf(t, p.sameDiscovery(t, bob)[0], "people"); got.Records == 0 {
		t.Error("bob's records are gone")
	}
	if used, bypassed := p.counts(); used == 0 || bypassed != 0 {
		t.Errorf("after the erasure the index answered %d lookups and left %d to a scan", used, bypassed)
	}
}

// TestBuildIndexErrors: malformed data is a DataError with a content-free
// reason, a missing blob one too, and a dataset without index: true or a
// connector without WithIndex refuse to build.
func TestBuildIndexErrors(t *testing.T) {
	f := newFixture(t)
	f.put("bad.ndjson", `{"pid":"p1","email":"secret@x.example"}`+"\n"+`{"pid":"p2","email":"leak@x.example"`+"\n")
	cfg := &sources.Config{Version: 1, DefaultPhoneRegion: "US", Datasets: []sources.Dataset{{
		Name: "people", Blob: "bad.ndjson", Container: f.c, Format: sources.FormatNDJSON, Facts: testFacts,
		Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}},
	}}}
	p := f.indexedConnectors(cfg)
	_, err := p.idx.BuildIndex(f.ctx, "people", "bad.ndjson")
	var de *sources.DataError
	if !errors.As(err, &de) || strings.Contains(err.Error(), "x.example") {
		t.Fatalf("BuildIndex(malformed) = %v; want a content-free DataError", err)
	}
	f.del("bad.ndjson")
	if _, err := p.idx.BuildIndex(f.ctx, "people", "bad.ndjson"); !errors.As(err, &de) {
		t.Fatalf("BuildIndex(missing) = %v; want a DataError", err)
	}
	if _, err := p.idx.BuildIndex(f.ctx, "people", "other.ndjson"); err == nil {
		t.Fatal("BuildIndex of a blob outside the dataset succeeded")
	}
	if _, err := p.plain.BuildIndex(f.ctx, "people", "bad.ndjson"); err == nil {
		t.Fatal("BuildIndex without WithIndex succeeded")
	}
	weak := New(cfg, f.acct.Service, WithIndex(IndexOptions{Container: p.state, Secret: []byte("short")}))
	if _, err := weak.BuildIndex(f.ctx, "people", "bad.ndjson"); err == nil {
		t.Fatal("BuildIndex with a short secret succeeded")
	}
	_ = context.Background
}

// hookStore is the Azure store with a hook after a blob is opened.
type hookStore struct {
	azureStore
	afterOpen func()
}

func (s hookStore) open(ctx context.Context, cont, name string) (io.ReadCloser, string, error) {
	r, etag, err := s.azureStore.open(ctx, cont, name)
	if err == nil && s.afterOpen != nil {
		hook := s.afterOpen
		s.afterOpen = nil
		hook()
	}
	return r, etag, err
}

// TestBuildIndexRaces: a build whose blob changes while it reads stores
// nothing (sources.ErrChanged), so an older build never overwrites the
// index of a newer version; a build that finds an index of the same
// version stored meanwhile keeps it.
func TestBuildIndexRaces(t *testing.T) {
	f := newFixture(t)
	for name, data := range shapesData {
		f.put(name, data)
	}
	p := f.indexedConnectors(shapesConfig(f))
	buildAll(t, p.idx)
	inner := New(p.idx.cfg, f.acct.Service, WithIndex(IndexOptions{Container: p.state, Secret: testIndexSecret}))
	v2 := strings.Replace(shapesData["tickets.csv"], "plain text", "plain text changed", 1)

	// A blob whose index is fresh is not read again.
	if st, err := p.idx.BuildIndex(f.ctx, "tickets", "tickets.csv"); err != nil || !st.Fresh || st.Records != 0 {
		t.Fatalf("BuildIndex of a fresh index = %+v, %v; want Fresh", st, err)
	}
	// The blob changes after the build opened it; a newer build indexes
	// the new version meanwhile.
	f.put("tickets.csv", strings.Replace(shapesData["tickets.csv"], "nothing", "nothing yet", 1))
	outer := New(p.idx.cfg, f.acct.Service, WithIndex(IndexOptions{Container: p.state, Secret: testIndexSecret}))
	outer.store = hookStore{azureStore: outer.store.(azureStore), afterOpen: func() {
		f.put("tickets.csv", v2)
		if _, err := inner.BuildIndex(f.ctx, "tickets", "tickets.csv"); err != nil {
			t.Errorf("inner BuildIndex: %v", err)
		}
	}}
	if _, err := outer.BuildIndex(f.ctx, "tickets", "tickets.csv"); !errors.Is(err, sources.ErrChanged) {
		t.Fatalf("BuildIndex of a blob changed while read = %v; want ErrChanged", err)
	}
	if stale, err := p.idx.StaleIndexes(f.ctx, "tickets"); err != nil || len(stale) != 0 {
		t.Fatalf("StaleIndexes = %v, %v; want the newer build's index kept", stale, err)
	}
	p.sameDiscovery(t, sources.Subject{IDs: map[string]string{"personId": "p2"}})

	// Another build of the same version stores first: kept, no error.
	f.put("tickets.csv", strings.Replace(v2, "nothing", "nothing at all", 1))
	outer.store = hookStore{azureStore: outer.store.(hookStore).azureStore, afterOpen: func() {
		if _, err := inner.BuildIndex(f.ctx, "tickets", "tickets.csv"); err != nil {
			t.Errorf("inner BuildIndex: %v", err)
		}
	}}
	if _, err := outer.BuildIndex(f.ctx, "tickets", "tickets.csv"); err != nil {
		t.Fatalf("BuildIndex racing a build of the same version: %v", err)
	}
	if stale, err := p.idx.StaleIndexes(f.ctx, "tickets"); err != nil || len(stale) != 0 {
		t.Fatalf("StaleIndexes = %v, %v", stale, err)
	}

	// A changed secret or matching config makes every index stale.
	other := New(p.idx.cfg, f.acct.Service, WithIndex(IndexOptions{Container: p.state, Secret: []byte("another-secret-0123456789")}))
	if stale, err := other.StaleIndexes(f.ctx, "people"); err != nil || len(stale) != 3 {
		t.Fatalf("StaleIndexes under another secret = %v, %v; want every blob", stale, err)
	}
	cfg := shapesConfig(f)
	for i := range cfg.Datasets {
		cfg.Datasets[i].Index = true
	}
	cfg.Datasets[0].FreeText = nil
	moved := New(cfg, f.acct.Service, WithIndex(IndexOptions{Container: p.state, Secret: testIndexSecret}))
	if stale, err := moved.StaleIndexes(f.ctx, "people"); err != nil || len(stale) != 3 {
		t.Fatalf("StaleIndexes under another matching config = %v, %v; want every blob", stale, err)
	}
}

// TestBuildIndexDataErrorPosition: a malformed record deep in a blob
// (past many chunks of the build's pipeline) fails the build with its own
// position.
func TestBuildIndexDataErrorPosition(t *testing.T) {
	f := newFixture(t)
	var b strings.Builder
	for i := range 3000 {
		if i == 2100 {
			b.WriteString(`{"pid":"p","email":` + "\n")
			continue
		}
		fmt.Fprintf(&b, `{"pid":"p%d","email":"u%d@x.example"}`+"\n", i, i)
	}
	f.put("big.ndjson", b.String())
	cfg := &sources.Config{Version: 1, DefaultPhoneRegion: "US", Datasets: []sources.Dataset{{
		Name: "people", Blob: "big.ndjson", Container: f.c, Format: sources.FormatNDJSON, Facts: testFacts,
		Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}},
	}}}
	p := f.indexedConnectors(cfg)
	_, err := p.idx.BuildIndex(f.ctx, "people", "big.ndjson")
	var de *sources.DataError
	if !errors.As(err, &de) || !strings.Contains(de.Reason, "record 2100 ") {
		t.Fatalf("BuildIndex = %v; want a DataError at record 2100", err)
	}
}

// TestPruneIndexes deletes the index objects of blobs that are gone and
// keeps the others.
func TestPruneIndexes(t *testing.T) {
	f := newFixture(t)
	for name, data := range shapesData {
		f.put(name, data)
	}
	p := f.indexedConnectors(shapesConfig(f))
	buildAll(t, p.idx)
	if n, err := p.idx.PruneIndexes(f.ctx, "people"); err != nil || n != 0 {
		t.Fatalf("PruneIndexes with every blob there = %d, %v", n, err)
	}
	f.del("people/a.ndjson")
	f.del("tickets.csv")
	for ds, want := range map[string]int{"people": 1, "tickets": 1, "msgs": 0} {
		if n, err := p.idx.PruneIndexes(f.ctx, ds); err != nil || n != want {
			t.Fatalf("PruneIndexes(%s) = %d, %v; want %d", ds, n, err, want)
		}
	}
	objs, err := p.idx.index.store.list(f.ctx, p.idx.index.prefix)
	if err != nil || len(objs) != 3 {
		t.Fatalf("after pruning %d index objects (%v); want 3 (people b and empty, msgs)", len(objs), err)
	}
	if stale, err := p.idx.StaleIndexes(f.ctx, "people"); err != nil || len(stale) != 0 {
		t.Fatalf("StaleIndexes after pruning = %v, %v", stale, err)
	}
}

// TestIndexRebuildHook: with IndexOptions.Rebuild a rewrite hands the
// rebuild to the app instead of reading the blob again; until it runs,
// the blob's index is stale and the blob is scanned.
func TestIndexRebuildHook(t *testing.T) {
	f := newFixture(t)
	for name, data := range shapesData {
		f.put(name, data)
	}
	p := f.indexedConnectors(shapesConfig(f))
	buildAll(t, p.idx)
	var calls []string
	c := New(p.idx.cfg, f.acct.Service, WithIndex(IndexOptions{Container: p.state, Secret: testIndexSecret,
		Rebuild: func(_ context.Context, dataset, blob string) { calls = append(calls, dataset+" "+blob) }}))
	carl := sources.Subject{Emails: []string{"carl@z.example"}}
	dm := matchesOf(t, p.sameDiscovery(t, carl)[0], "people")
	if _, err := c.Rewrite(f.ctx, "people", dm.Locations[0], func(int64, sources.Record) (*sources.Record, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0] != "people "+dm.Locations[0].Blob {
		t.Fatalf("Rebuild calls %q", calls)
	}
	if stale, err := c.StaleIndexes(f.ctx, "people"); err != nil || len(stale) != 1 {
		t.Fatalf("StaleIndexes before the rebuild = %v, %v", stale, err)
	}
	p.sameDiscovery(t, carl)
	if _, err := c.BuildIndex(f.ctx, "people", dm.Locations[0].Blob); err != nil {
		t.Fatal(err)
	}
	if stale, err := c.StaleIndexes(f.ctx, "people"); err != nil || len(stale) != 0 {
		t.Fatalf("StaleIndexes after the rebuild = %v, %v", stale, err)
	}
}
