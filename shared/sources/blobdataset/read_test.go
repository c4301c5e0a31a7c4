package blobdataset

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
)

// checkPositions checks, for every record of data in format that export
// can read, that the position iterate gives it (the one discovery records)
// holds exactly that record: parseAt on those bytes, with the byte before
// them and the CSV header parsed from the bytes before them, gives what a
// streaming read gives. It also checks that iterateSpans gives the same
// positions and that they hold its spans. It returns how many records it
// checked.
func checkPositions(t testing.TB, format sources.Format, data []byte) int {
	t.Helper()
	type pos struct{ off, length int64 }
	var spans []pos
	_ = iterateSpans(context.Background(), bytes.NewReader(data), format, func(r *rawRecord) error {
		spans = append(spans, pos{r.offset, r.length})
		if r.offset < 0 || r.length <= 0 || r.offset+r.length > int64(len(data)) {
			t.Fatalf("record %d: position %d+%d outside the %d bytes", r.ordinal, r.offset, r.length, len(data))
		}
		b := data[r.offset : r.offset+r.length]
		if format == sources.FormatCSV {
			// The row, after the empty lines csv.Reader skipped.
			lead := bytes.TrimSuffix(b, r.span)
			if len(lead) == len(b) || strings.Trim(strings.ReplaceAll(string(lead), "\r\n", "\n"), "\n") != "" {
				t.Fatalf("record %d: bytes %q at the position are not blank lines and the span %q", r.ordinal, b, r.span)
			}
		} else if !bytes.Equal(b, r.span) {
			t.Fatalf("record %d: bytes %q at the position, span %q", r.ordinal, b, r.span)
		}
		return nil
	}, func([]byte) error { return nil })
	n := 0
	_ = iterate(context.Background(), bytes.NewReader(data), format, func(r *rawRecord) error {
		if r.ordinal >= int64(len(spans)) || spans[r.ordinal] != (pos{r.offset, r.length}) {
			t.Fatalf("record %d: position %d+%d without spans, %v with", r.ordinal, r.offset, r.length, spans)
		}
		want, err := r.ordered()
		if err != nil {
			return nil
		}
		var header []string
		if format == sources.FormatCSV {
			h, ok := parseCSVHeader(data[:r.offset])
			if !ok || !reflect.DeepEqual(h, r.header) {
				t.Fatalf("record %d: header from the bytes before it %q (ok %v), want %q", r.ordinal, h, ok, r.header)
			}
			header = h
		}
		prev := -1
		if r.offset > 0 {
			prev = int(data[r.offset-1])
		}
		end := r.offset + r.length
		got, err := parseAt(format, header, data[r.offset:end], prev, end == int64(len(data)))
		if err != nil {
			t.Fatalf("record %d: parseAt(%q): %v", r.ordinal, data[r.offset:end], err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("record %d: parseAt gives %+v, streaming %+v", r.ordinal, got, want)
		}
		n++
		return nil
	})
	return n
}

// randomBlob makes a blob in format with n records, some of which hold
// ann@x.example in their email field, and with the awkward parts of each
// format: blank and whitespace lines, CRLF, quoted CSV cells holding
// commas, quotes and line breaks, a BOM, JSON strings holding brackets,
// whitespace and line breaks between JSON elements, no final line ending.
func randomBlob(rng *rand.Rand, format sources.Format, n int) string {
	email := func() string {
		if rng.IntN(3) == 0 {
			return "ann@x.example"
		}
		return fmt.Sprintf("p%d@y.example", rng.IntN(1000))
	}
	texts := []string{"plain", "with, comma", `say "hi"`, "two\nlines", "crlf\r\nlines", "", " padded ", "ünï 😀", `{"}]`, "[1,2]"}
	text := func() string { return texts[rng.IntN(len(texts))] }
	eol := func() string { return []string{"\n", "\r\n"}[rng.IntN(2)] }
	var sb strings.Builder
	switch format {
	case sources.FormatNDJSON:
		for i := range n {
			for rng.IntN(4) == 0 {
				sb.WriteString([]string{"", " ", "\t", "\r"}[rng.IntN(4)] + eol())
			}
			note, _ := json.Marshal(text())
			fmt.Fprintf(&sb, "%s{\"id\":%d, \"email\":%q,\"note\":%s,\"n\":[1.50,{\"x\":null}]}%s", []string{"", " ", "\t"}[rng.IntN(3)], i, email(), note, []string{"", "  "}[rng.IntN(2)])
			if i < n-1 || rng.IntN(2) == 0 {
				sb.WriteString(eol())
			}
		}
	case sources.FormatCSV:
		if rng.IntN(2) == 0 {
			sb.WriteString("\ufeff")
		}
		sb.WriteString("id,email,note" + eol())
		for i := range n {
			for rng.IntN(4) == 0 {
				sb.WriteString(eol())
			}
			note := text()
			if strings.ContainsAny(note, ",\"\r\n") || rng.IntN(3) == 0 {
				note = `"` + strings.ReplaceAll(note, `"`, `""`) + `"`
			}
			fmt.Fprintf(&sb, "%d,%s,%s", i, email(), note)
			if i < n-1 || rng.IntN(2) == 0 {
				sb.WriteString(eol())
			}
		}
	case sources.FormatJSONArray:
		ws := func() string { return []string{"", " ", "\n", "\r\n  ", "\t"}[rng.IntN(5)] }
		sb.WriteString(ws() + "[" + ws())
		for i := range n {
			if i > 0 {
				sb.WriteString(ws() + "," + ws())
			}
			note, _ := json.Marshal(text())
			fmt.Fprintf(&sb, "{\"id\": %d,%s\"email\": %q, \"note\": %s, \"nested\": {\"a\": [1, {\"b\": \"]\"}]}}", i, ws(), email(), note)
		}
		sb.WriteString(ws() + "]" + ws())
	}
	return sb.String()
}

var allFormats = []sources.Format{sources.FormatNDJSON, sources.FormatCSV, sources.FormatJSONArray}

// TestRecordPositions: the position of every record holds exactly that
// record, on the fixtures and on random blobs of every format, with NDJSON
// lines crossing the splitter's buffer boundaries.
func TestRecordPositions(t *testing.T) {
	defer func(n int) { ndjsonBufSize = n }(ndjsonBufSize)
	check := func(format sources.Format, data string, want int) {
		t.Helper()
		if n := checkPositions(t, format, []byte(data)); n != want {
			t.Fatalf("%s: checked %d records, want %d", format, n, want)
		}
	}
	for _, tc := range rewriteCases() {
		check(tc.format, tc.content, 6)
	}
	check(sources.FormatNDJSON, strings.Join(contactsLines, "\n")+"\n", 16)
	check(sources.FormatCSV, casesCSV, 10)
	check(sources.FormatJSONArray, notesJSON, 10)
	rng := rand.New(rand.NewPCG(5, 6))
	for iter := range 600 {
		format := allFormats[iter%3]
		n := 1 + rng.IntN(20)
		ndjsonBufSize = 1 + rng.IntN(64)
		check(format, randomBlob(rng, format, n), n)
	}
}

// locationsOf returns the locations of one dataset in d, with or without
// their byte positions (copies: d is not changed).
func locationsOf(t testing.TB, d *sources.Discovery, name string, positions bool) sources.DatasetMatches {
	t.Helper()
	m := matchesOf(t, d, name)
	m.Locations = slices.Clone(m.Locations)
	for i := range m.Locations {
		loc := &m.Locations[i]
		if len(loc.Offsets) != len(loc.Ordinals) || len(loc.Lengths) != len(loc.Ordinals) {
			t.Fatalf("dataset %s: blob %s: %d ordinals, %d offsets, %d lengths", name, loc.Blob, len(loc.Ordinals), len(loc.Offsets), len(loc.Lengths))
		}
		if positions {
			loc.Offsets, loc.Lengths = slices.Clone(loc.Offsets), slices.Clone(loc.Lengths)
		} else {
			loc.Offsets, loc.Lengths = nil, nil
		}
	}
	return m
}

// setReadSizes sets readGap, readChunk and csvHeaderProbe for one test.
func setReadSizes(t testing.TB, gap, chunk, probe int64) {
	oldGap, oldChunk, oldProbe := readGap, readChunk, csvHeaderProbe
	readGap, readChunk, csvHeaderProbe = gap, chunk, probe
	t.Cleanup(func() { readGap, readChunk, csvHeaderProbe = oldGap, oldChunk, oldProbe })
}

// randomStore puts random blobs of one format under "r/" and returns them
// with their dataset.
func randomStore(rng *rand.Rand, format sources.Format, blobs, records int) (*memStore, sources.Dataset) {
	st := &memStore{blobs: map[string]string{}}
	for i := range blobs {
		st.blobs[fmt.Sprintf("r/%02d", i)] = randomBlob(rng, format, 1+rng.IntN(records))
	}
	return st, sources.Dataset{
		Name: "r", Container: "c", Prefix: "r/", Format: format,
		Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}},
		Facts:       testFacts,
	}
}

func memConnector(t testing.TB, st *memStore, d sources.Dataset) *Connector {
	t.Helper()
	cfg := &sources.Config{Version: 1, DefaultPhoneRegion: "US", Datasets: []sources.Dataset{d}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return localConnector(cfg, st, 2)
}

// TestReadRangedSameAsStreaming (in memory): on random blobs of every
// format, Read with byte positions emits exactly the records that Read
// without them (streaming each blob) emits, whatever the gap and chunk
// sizes and the CSV header probe. Reads with positions never download a
// whole blob; a request spans more than readChunk bytes only to hold one
// record; with a huge gap and chunk, each blob takes one request.
func TestReadRangedSameAsStreaming(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	sizes := []struct{ gap, chunk, probe int64 }{
		{256 << 10, 8 << 20, 16 << 10}, // the defaults
		{0, 1, 1},                      // every piece alone, the header byte by byte
		{1, 64, 3},
		{40, 200, 8},
		{1 << 30, 1 << 30, 1 << 30}, // one request per blob
	}
	for iter := range 60 {
		format := allFormats[iter%3]
		st, d := randomStore(rng, format, 1+rng.IntN(3), 40)
		c := memConnector(t, st, d)
		disc, err := c.Discover(context.Background(), sources.Subject{Emails: []string{"ann@x.example"}})
		if err != nil {
			t.Fatal(err)
		}
		checkConsistent(t, disc.Datasets[0])
		want := mustRead(t, c, locationsOf(t, disc, "r", false))
		for _, r := range st.takeReads() {
			if r.off != 0 || r.count != 0 {
				t.Fatalf("a read without positions is ranged: %+v", r)
			}
		}
		if int64(len(want)) != disc.Datasets[0].Records {
			t.Fatalf("streaming read gave %d records, discovery found %d", len(want), disc.Datasets[0].Records)
		}
		maxLen := int64(0)
		for _, loc := range disc.Datasets[0].Locations {
			maxLen = max(maxLen, slices.Max(loc.Lengths)+1)
		}
		for _, sz := range sizes {
			setReadSizes(t, sz.gap, sz.chunk, sz.probe)
			got := mustRead(t, c, locationsOf(t, disc, "r", true))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("iter %d (%s), sizes %+v: ranged read\n%q\nstreaming\n%q", iter, format, sz, got, want)
			}
			reads := st.takeReads()
			perBlob := map[string]int{}
			for _, r := range reads {
				perBlob[r.name]++
				if r.count == 0 {
					t.Fatalf("sizes %+v: a ranged read downloaded the whole blob %s", sz, r.name)
				}
				if r.count > max(sz.chunk, maxLen) && !(format == sources.FormatCSV && r.off == 0) {
					t.Fatalf("sizes %+v: a request of %d bytes", sz, r.count)
				}
			}
			if sz.gap == 1<<30 {
				for name, n := range perBlob {
					if n != 1 {
						t.Fatalf("sizes %+v: %d requests for blob %s, want 1", sz, n, name)
					}
				}
			}
			if len(perBlob) != len(disc.Datasets[0].Locations) {
				t.Fatalf("sizes %+v: read %d blobs, discovery found %d", sz, len(perBlob), len(disc.Datasets[0].Locations))
			}
		}
	}
}

// TestReadTamperedPositions (in memory): positions that do not hold the
// records (an offset or length off by a few bytes, at the same ETag) never
// make Read emit other records: it fails with ErrChanged or, where the
// bytes still hold exactly the same record (a CSV row with the empty line
// before it), emits the same. For NDJSON and JSON arrays a shifted offset
// always fails (even when the bytes, without the blanks before a line, are
// a whole JSON object). Positions that do not fit the ordinals make Read stream.
func TestReadTamperedPositions(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	changed := map[sources.Format]int{}
	for iter := range 30 {
		format := allFormats[iter%3]
		st, d := randomStore(rng, format, 1, 30)
		c := memConnector(t, st, d)
		disc, err := c.Discover(context.Background(), sources.Subject{Emails: []string{"ann@x.example"}})
		if err != nil {
			t.Fatal(err)
		}
		if disc.Datasets[0].Records == 0 {
			continue
		}
		want := mustRead(t, c, locationsOf(t, disc, "r", false))
		n := len(disc.Datasets[0].Locations[0].Ordinals)
		for i := range n {
			for _, tamper := range []struct {
				name       string
				dOff, dLen int64
			}{{"offset-2", -2, 0}, {"offset-1", -1, 0}, {"offset+1", 1, 0}, {"offset+2", 2, 0}, {"length-1", 0, -1}, {"length+1", 0, 1}, {"start-1", -1, 1}, {"start+1", 1, -1}} {
				dm := locationsOf(t, disc, "r", true)
				loc := &dm.Locations[0]
				loc.Offsets[i] += tamper.dOff
				loc.Lengths[i] += tamper.dLen
				got, err := readAll(t, c, dm)
				switch {
				case errors.Is(err, sources.ErrChanged):
					changed[format]++
				case err != nil:
					t.Fatalf("%s, record %d, %s: %v", format, i, tamper.name, err)
				case !reflect.DeepEqual(got, want):
					t.Fatalf("%s, record %d, %s: read\n%q\nwant\n%q", format, i, tamper.name, got, want)
				case format != sources.FormatCSV && tamper.dOff != 0 && positioned(*loc, format):
					t.Fatalf("%s, record %d, %s: a shifted offset read as the record", format, i, tamper.name)
				}
			}
		}
		// Positions that do not fit the ordinals: Read streams.
		for _, bad := range []func(loc *sources.Location){
			func(loc *sources.Location) { loc.Offsets = loc.Offsets[1:] },
			func(loc *sources.Location) { loc.Lengths = nil },
			func(loc *sources.Location) { loc.Lengths[0] = 0 },
			func(loc *sources.Location) { loc.Offsets[n-1] = -5 },
			func(loc *sources.Location) { slices.Reverse(loc.Offsets); slices.Reverse(loc.Lengths) },
		} {
			dm := locationsOf(t, disc, "r", true)
			bad(&dm.Locations[0])
			if n == 1 && positioned(dm.Locations[0], format) {
				continue // reversing one record changes nothing
			}
			st.takeReads()
			if got := mustRead(t, c, dm); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: Read with unfitting positions\n%q\nwant\n%q", format, got, want)
			}
			if r := st.takeReads(); len(r) != 1 || r[0].count != 0 {
				t.Fatalf("%s: Read with unfitting positions made reads %+v, want one whole-blob read", format, r)
			}
		}
	}
	for _, f := range allFormats {
		if changed[f] == 0 {
			t.Errorf("%s: no tampered position failed", f)
		}
	}
}

// TestParseAtBoundaries: parseAt refuses bytes that are not one whole
// record of the blob, though they may parse as one: an object nested in a
// record, a line without the blanks before it, two CSV rows, a CSV row cut
// inside a quoted cell.
func TestParseAtBoundaries(t *testing.T) {
	header := []string{"a", "b"}
	for _, tc := range []struct {
		name   string
		format sources.Format
		blob   string
		at     string // the bytes, found in blob after skip bytes
		skip   int
		ok     bool
	}{
		{"ndjson line", sources.FormatNDJSON, "{\"a\":1}\n  {\"b\":{\"c\":2}}\r\n", "  {\"b\":{\"c\":2}}\r\n", 0, true},
		{"ndjson last line", sources.FormatNDJSON, "{\"a\":1}\n{\"b\":2}", "{\"b\":2}", 0, true},
		{"ndjson nested object", sources.FormatNDJSON, "{\"a\":1}\n{\"b\":{\"c\":2}}\n", "{\"c\":2}", 0, false},
		{"ndjson without its blanks", sources.FormatNDJSON, "{\"a\":1}\n  {\"b\":2}\n", "{\"b\":2}\n", 0, false},
		{"ndjson two lines", sources.FormatNDJSON, "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n", "{\"b\":2}\n{\"c\":3}\n", 0, false},
		{"ndjson without its line ending", sources.FormatNDJSON, "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n", "{\"b\":2}", 0, false},
		{"ndjson blank line", sources.FormatNDJSON, "{\"a\":1}\n \n{\"c\":3}\n", " \n", 0, false},
		{"json element", sources.FormatJSONArray, `[{"a":{"b":1}}, {"c":2}]`, `{"c":2}`, 0, true},
		{"json first element", sources.FormatJSONArray, `[{"a":{"b":1}}, {"c":2}]`, `{"a":{"b":1}}`, 0, true},
		{"json nested object", sources.FormatJSONArray, `[{"a":{"b":1}}, {"c":2}]`, `{"b":1}`, 0, false},
		{"json with the next", sources.FormatJSONArray, `[{"a":1},{"c":2}]`, `{"a":1},{"c":2}`, 0, false},
		{"json with a blank", sources.FormatJSONArray, `[{"a":1}, {"c":2}]`, ` {"c":2}`, 0, false},
		{"csv row", sources.FormatCSV, "a,b\n1,\"x\ny\"\r\n2,z\n", "2,z\n", 0, true},
		{"csv quoted row", sources.FormatCSV, "a,b\n1,\"x\ny\"\r\n2,z\n", "1,\"x\ny\"\r\n", 0, true},
		{"csv row after an empty line", sources.FormatCSV, "a,b\n1,2\n\r\n2,z", "\r\n2,z", 0, true},
		{"csv two rows", sources.FormatCSV, "a,b\n1,2\n3,4\n5,6\n", "3,4\n5,6\n", 0, false},
		{"csv inside a quoted cell", sources.FormatCSV, "a,b\n1,\"x\ny\",z\"\n", "y\",z\"\n", 0, false},
		{"csv field count", sources.FormatCSV, "a,b\n1,2,3\n", "1,2,3\n", 0, false},
		{"csv mid-row", sources.FormatCSV, "a,b\n1,2\n33,4\n", "3,4\n", 6, false},
		{"csv cut row", sources.FormatCSV, "a,b\n1,2\n3,4\n", "1,", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			off := tc.skip + strings.Index(tc.blob[tc.skip:], tc.at)
			if off < tc.skip {
				t.Fatal("bytes not in the blob")
			}
			prev := -1
			if off > 0 {
				prev = int(tc.blob[off-1])
			}
			end := off + len(tc.at)
			_, err := parseAt(tc.format, header, []byte(tc.at), prev, end == len(tc.blob))
			if (err == nil) != tc.ok {
				t.Errorf("parseAt(%q after %q): %v, want ok %v", tc.at, tc.blob[:off], err, tc.ok)
			}
		})
	}
}

// getLog is an azcore policy that logs the blob downloads (GETs that are
// not listings or properties) a client makes: the range asked, the
// If-Match condition and the bytes the service sent.
type getLog struct {
	mu   sync.Mutex
	gets []loggedGet
}

type loggedGet struct {
	blob, rng, ifMatch string
	status             int
	bytes              int64
}

func (l *getLog) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	if r.Method != http.MethodGet || strings.Contains(r.URL.RawQuery, "comp=") {
		return req.Next()
	}
	g := loggedGet{blob: r.URL.Path, rng: header(r.Header, "x-ms-range") + header(r.Header, "Range"), ifMatch: header(r.Header, "If-Match")}
	resp, err := req.Next()
	if resp != nil {
		g.status, g.bytes = resp.StatusCode, resp.ContentLength
	}
	l.mu.Lock()
	l.gets = append(l.gets, g)
	l.mu.Unlock()
	return resp, err
}

// header returns a request header by its name in any case: the SDK sets
// some headers under names that are not canonical.
func header(h http.Header, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// take returns the downloads logged since the last call.
func (l *getLog) take() []loggedGet {
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.gets
	l.gets = nil
	return g
}

// loggedConnector is f.connector over a service client that logs its
// downloads.
func (f *fixture) loggedConnector(datasets ...sources.Dataset) (*Connector, *getLog) {
	f.t.Helper()
	log := &getLog{}
	svc, err := service.NewClientFromConnectionString(azuritetest.ConnectionString(f.t), &service.ClientOptions{ClientOptions: azcore.ClientOptions{PerCallPolicies: []policy.Policy{log}}})
	if err != nil {
		f.t.Fatal(err)
	}
	c := f.connector(datasets...)
	return New(c.cfg, svc), log
}

// checkRanged checks that every download is a ranged GET conditional on
// an ETag, and returns their total bytes.
func checkRanged(t testing.TB, gets []loggedGet) int64 {
	t.Helper()
	var n int64
	for _, g := range gets {
		if g.rng == "" || g.ifMatch == "" || g.status != http.StatusPartialContent {
			t.Errorf("download %+v: want a ranged GET with If-Match answered 206", g)
		}
		n += g.bytes
	}
	return n
}

// TestReadRanged (Azurite): on the fixtures of every format (NDJSON with
// CRLF and blank lines, CSV with quoted cells holding line breaks, JSON
// arrays), Read with the positions discovery recorded emits the same
// records as Read without them, with ranged GETs conditional on the ETag
// only. A discovery stored before positions existed (its JSON without
// them) reads the same, by streaming.
func TestReadRanged(t *testing.T) {
	f := newFixture(t)
	f.putCRM()
	var datasets []sources.Dataset
	subjects := map[string]sources.Subject{"contacts": ann, "cases": ann, "notes": ann}
	for _, tc := range rewriteCases() {
		f.putTyped(tc.blob, tc.content, tc.contentType)
		datasets = append(datasets, tc.dataset())
		subjects[tc.name] = rwSubject
	}
	datasets = append(datasets, contactsDataset(), casesDataset(), notesDataset())
	c, log := f.loggedConnector(datasets...)
	for _, subj := range []sources.Subject{ann, rwSubject} {
		d := f.discover(c, subj)
		for name, s := range subjects {
			if !reflect.DeepEqual(s, subj) {
				continue
			}
			t.Run(name, func(t *testing.T) {
				log.take()
				want := mustRead(t, c, locationsOf(t, d, name, false))
				if g := log.take(); len(g) != 1 || g[0].rng != "" || g[0].ifMatch == "" {
					t.Errorf("Read without positions: downloads %+v, want one whole-blob GET with If-Match", g)
				}
				if len(want) < 3 {
					t.Fatalf("only %d records", len(want))
				}
				got := mustRead(t, c, locationsOf(t, d, name, true))
				if !reflect.DeepEqual(got, want) {
					t.Errorf("ranged read:\n%q\nstreaming read:\n%q", got, want)
				}
				checkRanged(t, log.take())

				// The discovery as stored: positions travel as JSON; an old
				// discovery has none.
				b, err := json.Marshal(matchesOf(t, d, name))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(b, []byte(`"offsets":[`)) || !bytes.Contains(b, []byte(`"lengths":[`)) {
					t.Fatalf("stored discovery without positions: %s", b)
				}
				var stored, old sources.DatasetMatches
				if err := json.Unmarshal(b, &stored); err != nil {
					t.Fatal(err)
				}
				if got := mustRead(t, c, stored); !reflect.DeepEqual(got, want) {
					t.Errorf("stored discovery reads\n%q\nwant\n%q", got, want)
				}
				checkRanged(t, log.take())
				var raw map[string]any
				if err := json.Unmarshal(b, &raw); err != nil {
					t.Fatal(err)
				}
				for _, l := range raw["locations"].([]any) {
					delete(l.(map[string]any), "offsets")
					delete(l.(map[string]any), "lengths")
				}
				b, _ = json.Marshal(raw)
				if err := json.Unmarshal(b, &old); err != nil {
					t.Fatal(err)
				}
				if got := mustRead(t, c, old); !reflect.DeepEqual(got, want) {
					t.Errorf("old discovery reads\n%q\nwant\n%q", got, want)
				}
				if g := log.take(); len(g) != 1 || g[0].rng != "" {
					t.Errorf("old discovery: downloads %+v, want one whole-blob GET", g)
				}
			})
		}
	}
}

// TestReadRangedChanged (Azurite): with positions, a blob that changed
// since discovery (even to the same content), was deleted, or whose
// container was deleted fails Read with ErrChanged, as does a position
// moved by one byte at the same ETag.
func TestReadRangedChanged(t *testing.T) {
	tests := []struct {
		name   string
		change func(f *fixture, dm *sources.DatasetMatches)
	}{
		{"overwritten with other content", func(f *fixture, dm *sources.DatasetMatches) {
			f.put(dm.Locations[0].Blob, "x")
		}},
		{"overwritten with the same content", func(f *fixture, dm *sources.DatasetMatches) {
			f.put(dm.Locations[0].Blob, f.get(dm.Locations[0].Blob).data)
		}},
		{"deleted", func(f *fixture, dm *sources.DatasetMatches) { f.del(dm.Locations[0].Blob) }},
		{"container deleted", func(f *fixture, _ *sources.DatasetMatches) {
			if _, err := f.acct.Service.DeleteContainer(f.ctx, f.c, nil); err != nil {
				f.t.Fatal(err)
			}
		}},
		{"offset moved", func(f *fixture, dm *sources.DatasetMatches) { dm.Locations[0].Offsets[1]++ }},
		{"offset beyond the end", func(f *fixture, dm *sources.DatasetMatches) {
			loc := &dm.Locations[0]
			loc.Offsets[len(loc.Offsets)-1] += 1 << 20
		}},
	}
	for _, name := range []string{"contacts", "cases", "notes"} {
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				f := newFixture(t)
				f.putCRM()
				c, log := f.loggedConnector(contactsDataset(), casesDataset(), notesDataset())
				d := f.discover(c, ann)
				dm := locationsOf(t, d, name, true)
				if len(mustRead(t, c, dm)) < 4 {
					t.Fatal("unchanged read is short")
				}
				log.take()
				tt.change(f, &dm)
				wantChanged(t, c, dm)
				for _, g := range log.take() {
					if g.rng == "" {
						t.Errorf("a whole-blob download %+v", g)
					}
				}
			})
		}
	}
}

// bigBlob makes an NDJSON or CSV blob of about size bytes of 100-byte
// records, ann@x.example's at the given ordinals (others belong to other
// people), and returns it with its record count.
func bigBlob(format sources.Format, size int, ann ...int) (string, int) {
	var sb strings.Builder
	if format == sources.FormatCSV {
		sb.WriteString("id,email,note\r\n")
	}
	n := 0
	for ; sb.Len() < size; n++ {
		email := fmt.Sprintf("person%07d@y.example", n)
		if slices.Contains(ann, n) {
			email = "ann@x.example"
		}
		if format == sources.FormatCSV {
			fmt.Fprintf(&sb, "%07d,%s,\"a note, over\ntwo lines %s\"\r\n", n, email, strings.Repeat("x", 30))
		} else {
			fmt.Fprintf(&sb, `{"id":%d,"email":%q,"note":"%s"}`+"\n", n, email, strings.Repeat("x", 40))
		}
	}
	return sb.String(), n
}

// TestReadRangedBytes (Azurite): export of 3 records from a 5 MB blob
// downloads a few hundred bytes, not the blob: one ranged GET per record
// when they lie far apart, one for all when they lie close together (plus
// one for the header of a CSV blob whose records lie far from it), where
// a streaming read downloads the whole blob. Many records close together
// are fetched in requests of at most readChunk bytes.
func TestReadRangedBytes(t *testing.T) {
	const size = 5 << 20
	for _, tc := range []struct {
		name   string
		format sources.Format
		spread bool
		// gets is how many ranged GETs Read makes.
		gets int
	}{
		{"ndjson far apart", sources.FormatNDJSON, true, 3},
		{"ndjson close together", sources.FormatNDJSON, false, 1},
		{"csv far apart", sources.FormatCSV, true, 4},
		{"csv close together", sources.FormatCSV, false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, n := bigBlob(tc.format, size)
			at := []int{n / 5, n/5 + 3, n/5 + 9}
			if tc.spread {
				at = []int{n / 5, n / 2, n * 9 / 10}
			}
			data, _ := bigBlob(tc.format, size, at...)
			f := newFixture(t)
			f.put("big", data)
			d := sources.Dataset{Name: "big", Blob: "big", Format: tc.format, Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}}}
			c, log := f.loggedConnector(d)
			c.recent = nil // the downloads themselves are tested here (recent_test.go: the kept records)
			disc := f.discover(c, rwSubject)
			checkOrdinals(t, disc, map[string][]int64{"big": {int64(at[0]), int64(at[1]), int64(at[2])}})

			log.take()
			want := mustRead(t, c, locationsOf(t, disc, "big", false))
			streamed := log.take()
			if len(streamed) != 1 || streamed[0].bytes != int64(len(data)) {
				t.Fatalf("streaming read: downloads %+v, want one of %d bytes", streamed, len(data))
			}
			got := mustRead(t, c, locationsOf(t, disc, "big", true))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("ranged read:\n%q\nwant\n%q", got, want)
			}
			gets := log.take()
			total := checkRanged(t, gets)
			if len(gets) != tc.gets {
				t.Errorf("%d ranged GETs %+v, want %d", len(gets), gets, tc.gets)
			}
			limit := int64(1 << 10)
			if tc.format == sources.FormatCSV {
				limit += csvHeaderProbe
			}
			if total > limit {
				t.Errorf("ranged read downloaded %d bytes of %d, want at most %d", total, len(data), limit)
			}
			t.Logf("%d records: streaming downloads %d bytes in 1 GET; ranged %d bytes in %d GETs", len(got), streamed[0].bytes, total, len(gets))
		})
	}

	t.Run("chunks", func(t *testing.T) {
		// Every 3rd of records 10000..19999 (about a third of 1 MB)
		// with requests of at most 64 KiB: the gaps are small, so the
		// requests cover the whole stretch, in chunks.
		setReadSizes(t, readGap, 64<<10, csvHeaderProbe)
		var at []int
		for i := 10000; i < 20000; i += 3 {
			at = append(at, i)
		}
		data, _ := bigBlob(sources.FormatNDJSON, size, at...)
		f := newFixture(t)
		f.put("big", data)
		d := sources.Dataset{Name: "big", Blob: "big", Format: sources.FormatNDJSON, Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}}}
		c, log := f.loggedConnector(d)
		c.recent = nil
		disc := f.discover(c, rwSubject)
		if disc.Datasets[0].Records != int64(len(at)) {
			t.Fatalf("discovered %d records, want %d", disc.Datasets[0].Records, len(at))
		}
		log.take()
		want := mustRead(t, c, locationsOf(t, disc, "big", false))
		log.take()
		got := mustRead(t, c, locationsOf(t, disc, "big", true))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ranged read differs from streaming (%d and %d records)", len(got), len(want))
		}
		gets := log.take()
		total := checkRanged(t, gets)
		for _, g := range gets {
			if g.bytes > 64<<10 {
				t.Errorf("a request of %d bytes", g.bytes)
			}
		}
		// The bytes from the first match to the end of the last.
		loc := disc.Datasets[0].Locations[0]
		span := loc.Offsets[len(at)-1] + loc.Lengths[len(at)-1] - loc.Offsets[0]
		if int64(len(gets)) < span/(64<<10) || total < span*9/10 || total > span*11/10 {
			t.Errorf("%d GETs of %d bytes in all for about %d bytes of records", len(gets), total, span)
		}
	})
}
