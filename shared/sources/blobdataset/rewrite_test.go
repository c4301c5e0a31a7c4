package blobdataset

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/dsr-functions/dsr/shared/sources"
)

// The rewrite fixtures: one blob per format holding the subject
// (ann@x.example) at ordinals 1, 3 and 5. The standard rewrite deletes
// ordinal 1 and replaces ordinal 3 (her email redacted); ordinal 5 stays, at
// ordinal 4 afterwards.
var rwSubject = sources.Subject{Emails: []string{"ann@x.example"}}

type rwCase struct {
	name, blob, contentType string
	format                  sources.Format
	content                 string
	// edited is the record the edit sees at ordinal 3, as JSON.
	edited string
	// replace makes the replacement of ordinal 3.
	replace func(sources.Record) sources.Record
	// want is the whole blob after the standard rewrite.
	want string
	// remaining is what Read returns for the subject afterwards.
	remaining []string
}

func (tc rwCase) dataset() sources.Dataset {
	return sources.Dataset{
		Name: tc.name, Blob: tc.blob, Format: tc.format,
		Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}},
	}
}

// redact replaces the email field's value, keeping the field order.
func redact(rec sources.Record) sources.Record {
	out := sources.Record{Fields: append([]sources.Field(nil), rec.Fields...)}
	for i := range out.Fields {
		if out.Fields[i].Name == "email" {
			out.Fields[i].Value = "[redacted]"
		}
	}
	return out
}

func rewriteCases() []rwCase {
	return []rwCase{
		{
			name: "ndjson", blob: "rw/people.ndjson", contentType: "application/x-ndjson", format: sources.FormatNDJSON,
			content: `{"id":1,"email":"bob@x.example","name":"Bob"}` + "\n" +
				"\n" + // a blank line is not a record
				/* 1 */ `{"id":2,"email":"ann@x.example","name":"Ann Ünïcødé 😀"}` + "\r\n" +
				" \t\r\n" +
				/* 2 */ `{"id":3,"email":"carol@x.example","note":"naïve café — \u00e9 \"q\""}` + "\n" +
				/* 3 */ `  {"id":4,"email":"ann@x.example","city":"Zürich"}  ` + "\n" +
				/* 4 */ `{"id":5, "email" : "dave@x.example",  "n": 1.50}` + "\r\n" +
				/* 5 */ `{"id":6,"email":"ann@x.example","keep":true}`, // no final newline
			edited:  `{"id":4,"email":"ann@x.example","city":"Zürich"}`,
			replace: redact,
			want: `{"id":1,"email":"bob@x.example","name":"Bob"}` + "\n" +
				"\n" +
				" \t\r\n" +
				`{"id":3,"email":"carol@x.example","note":"naïve café — \u00e9 \"q\""}` + "\n" +
				`{"id":4,"email":"[redacted]","city":"Zürich"}` + "\n" +
				`{"id":5, "email" : "dave@x.example",  "n": 1.50}` + "\r\n" +
				`{"id":6,"email":"ann@x.example","keep":true}`,
			remaining: []string{`{"id":6,"email":"ann@x.example","keep":true}`},
		},
		{
			name: "csv", blob: "rw/people.csv", contentType: "text/csv; charset=utf-8", format: sources.FormatCSV,
			content: "\ufeffid,email,note\r\n" +
				/* 0 */ "1,bob@x.example,\"Line one\r\nline two, with comma\"\r\n" +
				/* 1 */ "2,ann@x.example,\"She said \"\"hi\"\"\nover two lines\"\r\n" +
				"\r\n" + // an empty line is not a record
				/* 2 */ "3,carol@x.example,Ünïcødé plain 😀\r\n" +
				/* 3 */ "4,ann@x.example,\"quoted, with \"\"quotes\"\"\"\r\n" +
				/* 4 */ "5,dave@x.example,  spaces kept  \n" +
				/* 5 */ "6,ann@x.example,last row without newline",
			edited: `{"id":"4","email":"ann@x.example","note":"quoted, with \"quotes\""}`,
			replace: func(sources.Record) sources.Record {
				// Out of header order: written in header order.
				return sources.Record{Fields: []sources.Field{
					{Name: "note", Value: "new \"note\", two\nlines"},
					{Name: "email", Value: "[redacted]"},
					{Name: "id", Value: json.Number("4")},
				}}
			},
			want: "\ufeffid,email,note\r\n" +
				"1,bob@x.example,\"Line one\r\nline two, with comma\"\r\n" +
				"\r\n" +
				"3,carol@x.example,Ünïcødé plain 😀\r\n" +
				"4,[redacted],\"new \"\"note\"\", two\r\nlines\"\r\n" +
				"5,dave@x.example,  spaces kept  \n" +
				"6,ann@x.example,last row without newline",
			remaining: []string{`{"id":"6","email":"ann@x.example","note":"last row without newline"}`},
		},
		{
			name: "json", blob: "rw/people.json", contentType: "application/json", format: sources.FormatJSONArray,
			content: "[\n" +
				`  {"id": 1, "email": "bob@x.example"},` + "\n" +
				`  {"id": 2, "email": "ann@x.example", "nested": {"a": [1, 2]}},` + "\n" +
				`  {"id": 3, "email": "carol@x.example", "big": 12345678901234567890, "u": "\u00e9 é 😀"},` + "\n" +
				`  {"id": 4, "email": "ann@x.example", "tags": ["x"]},` + "\n" +
				`  {"id": 5, "email": "dave@x.example"}  ,  ` + "\n" +
				`  {"id": 6,` + "\n" + `   "email": "ann@x.example"}` + "\n" +
				"]\n",
			edited:  `{"id":4,"email":"ann@x.example","tags":["x"]}`,
			replace: redact,
			want: "[\n" +
				`  {"id": 1, "email": "bob@x.example"},` + "\n" +
				`  {"id": 3, "email": "carol@x.example", "big": 12345678901234567890, "u": "\u00e9 é 😀"},` + "\n" +
				`  {"id":4,"email":"[redacted]","tags":["x"]},` + "\n" +
				`  {"id": 5, "email": "dave@x.example"}  ,  ` + "\n" +
				`  {"id": 6,` + "\n" + `   "email": "ann@x.example"}` + "\n" +
				"]\n",
			remaining: []string{`{"id":6,"email":"ann@x.example"}`},
		},
	}
}

// setBlockSize makes Rewrite stage blocks of n bytes for one test.
func setBlockSize(t *testing.T, n int) {
	old := rewriteBlockSize
	rewriteBlockSize = n
	t.Cleanup(func() { rewriteBlockSize = old })
}

// putTyped uploads a blob with a content type and metadata; returns its ETag.
func (f *fixture) putTyped(name, data, contentType string) string {
	f.t.Helper()
	resp, err := f.acct.Service.NewContainerClient(f.c).NewBlockBlobClient(name).UploadBuffer(f.ctx, []byte(data), &blockblob.UploadBufferOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr(contentType)},
		Metadata:    map[string]*string{"owner": to.Ptr("crm")},
	})
	if err != nil {
		f.t.Fatalf("upload %s: %v", name, err)
	}
	return string(*resp.ETag)
}

// blobState is a blob's content and properties.
type blobState struct {
	data, etag, contentType, owner string
	md5                            []byte
}

func (f *fixture) get(name string) blobState {
	f.t.Helper()
	resp, err := f.acct.Service.NewContainerClient(f.c).NewBlobClient(name).DownloadStream(f.ctx, nil)
	if err != nil {
		f.t.Fatalf("download %s: %v", name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatalf("download %s: %v", name, err)
	}
	s := blobState{data: string(b), etag: string(*resp.ETag), md5: resp.ContentMD5}
	if resp.ContentType != nil {
		s.contentType = *resp.ContentType
	}
	for k, v := range resp.Metadata {
		if strings.EqualFold(k, "owner") && v != nil {
			s.owner = *v
		}
	}
	return s
}

// wantUnchanged fails unless the blob still has exactly the state before.
func (f *fixture) wantUnchanged(name string, before blobState) {
	f.t.Helper()
	now := f.get(name)
	if now.etag != before.etag {
		f.t.Errorf("ETag changed: %s, was %s", now.etag, before.etag)
	}
	if now.data != before.data {
		f.t.Errorf("content changed:\n%q\nwas\n%q", now.data, before.data)
	}
}

// setup uploads the case's blob and discovers the subject in it.
func setup(t *testing.T, tc rwCase) (*fixture, *Connector, sources.Location) {
	t.Helper()
	f := newFixture(t)
	c := f.connector(tc.dataset())
	etag := f.putTyped(tc.blob, tc.content, tc.contentType)
	d := f.discover(c, rwSubject)
	checkOrdinals(t, d, map[string][]int64{tc.name: {1, 3, 5}})
	m := matchesOf(t, d, tc.name)
	if len(m.Locations) != 1 || m.Locations[0].ETag != etag || m.Locations[0].Blob != tc.blob {
		t.Fatalf("locations %+v, want one for %s at %s", m.Locations, tc.blob, etag)
	}
	return f, c, m.Locations[0]
}

// standardEdit deletes ordinal 1 and replaces the others with tc.replace.
func standardEdit(tc rwCase) Edit {
	return func(o int64, rec sources.Record) (*sources.Record, error) {
		if o == 1 {
			return nil, nil
		}
		r := tc.replace(rec)
		return &r, nil
	}
}

func TestRewrite(t *testing.T) {
	for _, tc := range rewriteCases() {
		for _, bs := range []int{rewriteBlockSize, 7} {
			t.Run(fmt.Sprintf("%s/block%d", tc.name, bs), func(t *testing.T) {
				setBlockSize(t, bs)
				f, c, loc := setup(t, tc)
				loc.Ordinals = loc.Ordinals[:2] // ordinal 5 stays
				var seen []int64
				var edited string
				edit := standardEdit(tc)
				res, err := c.Rewrite(f.ctx, tc.name, loc, func(o int64, rec sources.Record) (*sources.Record, error) {
					seen = append(seen, o)
					if o == 3 {
						b, _ := json.Marshal(rec)
						edited = string(b)
					}
					return edit(o, rec)
				})
				if err != nil {
					t.Fatalf("Rewrite: %v", err)
				}
				if fmt.Sprint(seen) != "[1 3]" {
					t.Errorf("edit saw ordinals %v, want [1 3]", seen)
				}
				if edited != tc.edited {
					t.Errorf("edit saw record 3 as\n%s\nwant\n%s", edited, tc.edited)
				}
				if res.Deleted != 1 || res.Replaced != 1 {
					t.Errorf("deleted %d, replaced %d; want 1, 1", res.Deleted, res.Replaced)
				}
				now := f.get(tc.blob)
				if now.data != tc.want {
					t.Errorf("content:\n%q\nwant\n%q", now.data, tc.want)
				}
				if res.ETag == loc.ETag || res.ETag != now.etag {
					t.Errorf("returned ETag %s; old %s, blob now %s", res.ETag, loc.ETag, now.etag)
				}
				if now.contentType != tc.contentType || now.owner != "crm" {
					t.Errorf("content type %q, metadata owner %q; want %q, crm", now.contentType, now.owner, tc.contentType)
				}
				if sum := md5.Sum([]byte(tc.want)); !bytes.Equal(now.md5, sum[:]) {
					t.Errorf("Content-MD5 %x, want %x", now.md5, sum)
				}
				// Discovery finds what is left of the subject, and it reads.
				d := f.discover(c, rwSubject)
				checkOrdinals(t, d, map[string][]int64{tc.name: {4}})
				if got := mustRead(t, c, matchesOf(t, d, tc.name)); fmt.Sprint(got) != fmt.Sprint(tc.remaining) {
					t.Errorf("Read after rewrite: %v, want %v", got, tc.remaining)
				}
				// The old location is stale now.
				if _, err := c.Rewrite(f.ctx, tc.name, loc, edit); !errors.Is(err, sources.ErrChanged) {
					t.Errorf("Rewrite at the old ETag: %v, want ErrChanged", err)
				}
			})
		}
	}
}

func TestRewriteStaleETag(t *testing.T) {
	for _, tc := range rewriteCases() {
		t.Run(tc.name, func(t *testing.T) {
			f, c, loc := setup(t, tc)
			other := strings.Replace(tc.content, "bob@", "bobby@", 1)
			f.put(tc.blob, other)
			after := f.get(tc.blob)
			called := false
			_, err := c.Rewrite(f.ctx, tc.name, loc, func(int64, sources.Record) (*sources.Record, error) {
				called = true
				return nil, nil
			})
			if !errors.Is(err, sources.ErrChanged) {
				t.Fatalf("Rewrite = %v, want ErrChanged", err)
			}
			if called {
				t.Error("edit called on a changed blob")
			}
			f.wantUnchanged(tc.blob, after)
			if after.data != other {
				t.Errorf("blob does not hold the overwriting content")
			}
		})
	}
}

// The blob is overwritten while the rewrite runs (after its download
// started): the conditional commit refuses, and the overwrite stays.
func TestRewriteRaceAtCommit(t *testing.T) {
	for _, tc := range rewriteCases() {
		t.Run(tc.name, func(t *testing.T) {
			f, c, loc := setup(t, tc)
			other := strings.Replace(tc.content, "bob@", "bobby@", 1)
			var overwrote string
			_, err := c.Rewrite(f.ctx, tc.name, loc, func(o int64, rec sources.Record) (*sources.Record, error) {
				if overwrote == "" {
					overwrote = f.put(tc.blob, other)
				}
				return standardEdit(tc)(o, rec)
			})
			if !errors.Is(err, sources.ErrChanged) {
				t.Fatalf("Rewrite = %v, want ErrChanged", err)
			}
			f.wantUnchanged(tc.blob, blobState{data: other, etag: overwrote})
		})
	}
}

func TestRewriteEditErrorChangesNothing(t *testing.T) {
	errPolicy := errors.New("policy refuses")
	for _, tc := range rewriteCases() {
		t.Run(tc.name, func(t *testing.T) {
			f, c, loc := setup(t, tc)
			before := f.get(tc.blob)
			_, err := c.Rewrite(f.ctx, tc.name, loc, func(o int64, rec sources.Record) (*sources.Record, error) {
				return nil, errPolicy
			})
			if !errors.Is(err, errPolicy) {
				t.Fatalf("Rewrite = %v, want the edit's error", err)
			}
			f.wantUnchanged(tc.blob, before)
		})
	}
}

// Crash injection: blocks are staged (the block size is tiny) and the first
// record already edited when the edit fails, or panics as a crash would, on
// the 2nd of 3 ordinals. The blob keeps its old content and version, and a
// later rewrite of the same version succeeds.
func TestRewriteCrashBeforeCommit(t *testing.T) {
	for _, tc := range rewriteCases() {
		for _, crash := range []string{"error", "panic"} {
			t.Run(tc.name+"/"+crash, func(t *testing.T) {
				setBlockSize(t, 7)
				f, c, loc := setup(t, tc)
				before := f.get(tc.blob)
				var seen []int64
				func() {
					defer func() {
						if r := recover(); r != nil && crash != "panic" {
							t.Fatalf("unexpected panic: %v", r)
						}
					}()
					_, err := c.Rewrite(f.ctx, tc.name, loc, func(o int64, rec sources.Record) (*sources.Record, error) {
						seen = append(seen, o)
						if len(seen) == 2 {
							if crash == "panic" {
								panic("crash")
							}
							return nil, errors.New("crash")
						}
						return nil, nil
					})
					if err == nil {
						t.Fatal("Rewrite succeeded")
					}
				}()
				if fmt.Sprint(seen) != "[1 3]" {
					t.Errorf("edit saw %v, want [1 3]", seen)
				}
				bl, err := f.acct.Service.NewContainerClient(f.c).NewBlockBlobClient(tc.blob).GetBlockList(f.ctx, blockblob.BlockListTypeUncommitted, nil)
				if err != nil {
					t.Fatalf("GetBlockList: %v", err)
				}
				if len(bl.UncommittedBlocks) == 0 {
					t.Error("no blocks were staged before the crash: the test proves nothing")
				}
				f.wantUnchanged(tc.blob, before)

				loc.Ordinals = loc.Ordinals[:2]
				if _, err := c.Rewrite(f.ctx, tc.name, loc, standardEdit(tc)); err != nil {
					t.Fatalf("Rewrite after the crash: %v", err)
				}
				if got := f.get(tc.blob).data; got != tc.want {
					t.Errorf("content after the crash and a rewrite:\n%q\nwant\n%q", got, tc.want)
				}
			})
		}
	}
}

func TestRewriteOrdinalsBeyondEnd(t *testing.T) {
	for _, tc := range rewriteCases() {
		t.Run(tc.name, func(t *testing.T) {
			f, c, loc := setup(t, tc)
			before := f.get(tc.blob)
			loc.Ordinals = []int64{1, 3, 6}
			_, err := c.Rewrite(f.ctx, tc.name, loc, standardEdit(tc))
			if !errors.Is(err, sources.ErrChanged) {
				t.Fatalf("Rewrite = %v, want ErrChanged", err)
			}
			f.wantUnchanged(tc.blob, before)
		})
	}
}

func TestRewriteCSVFieldNotInHeader(t *testing.T) {
	tc := rewriteCases()[1]
	f, c, loc := setup(t, tc)
	before := f.get(tc.blob)
	for _, fields := range [][]sources.Field{
		{{Name: "id", Value: "4"}, {Name: "phone", Value: "+1 425 555 0100"}},
		{{Name: "id", Value: "4"}, {Name: "id", Value: "4"}},          // twice, one column
		{{Name: "id", Value: "4"}, {Name: "note", Value: []any{"x"}}}, // not a scalar
	} {
		_, err := c.Rewrite(f.ctx, tc.name, loc, func(int64, sources.Record) (*sources.Record, error) {
			return &sources.Record{Fields: fields}, nil
		})
		if err == nil || errors.Is(err, sources.ErrChanged) {
			t.Errorf("%v: Rewrite = %v, want an error", fields, err)
		}
		if strings.Contains(fmt.Sprint(err), "425") {
			t.Errorf("error echoes the value: %v", err)
		}
		f.wantUnchanged(tc.blob, before)
	}
}

func TestRewriteRefusals(t *testing.T) {
	tc := rewriteCases()[0]
	f, c, loc := setup(t, tc)
	before := f.get(tc.blob)
	edit := standardEdit(tc)
	for _, x := range []struct {
		what    string
		dataset string
		loc     sources.Location
		edit    Edit
		changed bool
	}{
		{"unknown dataset", "nope", loc, edit, true},
		{"blob outside the dataset", tc.name, sources.Location{Blob: "rw/other.ndjson", ETag: loc.ETag, Ordinals: loc.Ordinals}, edit, true},
		{"no ETag", tc.name, sources.Location{Blob: loc.Blob, Ordinals: loc.Ordinals}, edit, false},
		{"ordinals not increasing", tc.name, sources.Location{Blob: loc.Blob, ETag: loc.ETag, Ordinals: []int64{3, 1}}, edit, false},
		{"negative ordinal", tc.name, sources.Location{Blob: loc.Blob, ETag: loc.ETag, Ordinals: []int64{-1}}, edit, false},
		{"no edit", tc.name, loc, nil, false},
		{"no ordinals at a stale ETag", tc.name, sources.Location{Blob: loc.Blob, ETag: `"0x1"`}, edit, true},
	} {
		_, err := c.Rewrite(f.ctx, x.dataset, x.loc, x.edit)
		if err == nil || errors.Is(err, sources.ErrChanged) != x.changed {
			t.Errorf("%s: Rewrite = %v, want an error (ErrChanged: %v)", x.what, err, x.changed)
		}
	}
	// A system log is never rewritten.
	logs := tc.dataset()
	logs.SystemLog = true
	if _, err := f.connector(logs).Rewrite(f.ctx, tc.name, loc, edit); err == nil || errors.Is(err, sources.ErrChanged) {
		t.Errorf("Rewrite of a system log = %v, want an error", err)
	}
	// No ordinals at the current version: nothing to do, nothing written.
	res, err := c.Rewrite(f.ctx, tc.name, sources.Location{Blob: loc.Blob, ETag: loc.ETag}, edit)
	if err != nil || res != (RewriteResult{ETag: loc.ETag}) {
		t.Errorf("Rewrite without ordinals = %+v, %v", res, err)
	}
	f.wantUnchanged(tc.blob, before)
}

// genNDJSON streams an NDJSON blob of n generated records; the subject's
// records are at the ordinals in subj. edited applies the large test's
// rewrite (delete the first and last subject record, redact the middle).
type genNDJSON struct {
	n, i   int
	subj   map[int]bool
	edited bool
	buf    []byte
}

const genPad = "................................................................................"

func (g *genNDJSON) line(i int) []byte {
	email := fmt.Sprintf("user%d@x.example", i)
	if g.subj[i] {
		email = "ann@x.example"
	}
	return fmt.Appendf(nil, `{"id":%d,"email":%q,"pad":%q}`+"\n", i, email, genPad)
}

func (g *genNDJSON) Read(p []byte) (int, error) {
	for len(g.buf) == 0 {
		if g.i == g.n {
			return 0, io.EOF
		}
		i := g.i
		g.i++
		switch {
		case !g.edited || !g.subj[i]:
			g.buf = g.line(i)
		case i == g.n/2:
			g.buf = fmt.Appendf(nil, `{"id":%d,"email":"[redacted]","pad":%q}`+"\n", i, genPad)
		}
	}
	k := copy(p, g.buf)
	g.buf = g.buf[k:]
	return k, nil
}

func TestRewriteLargeBlobStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads and rewrites a 20 MiB blob")
	}
	const n = 150_000 // ~20 MiB
	subj := map[int]bool{10: true, n / 2: true, n - 1: true}
	ds := sources.Dataset{
		Name: "big", Blob: "rw/big.ndjson", Format: sources.FormatNDJSON,
		Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}},
	}
	f := newFixture(t)
	c := f.connector(ds)
	bb := f.acct.Service.NewContainerClient(f.c).NewBlockBlobClient(ds.Blob)
	if _, err := bb.UploadStream(f.ctx, &genNDJSON{n: n, subj: subj}, nil); err != nil {
		t.Fatalf("upload: %v", err)
	}
	d := f.discover(c, rwSubject)
	checkOrdinals(t, d, map[string][]int64{"big": {10, n / 2, n - 1}})
	loc := matchesOf(t, d, "big").Locations[0]

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak uint64
	var mu sync.Mutex
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapInuse)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	res, err := c.Rewrite(f.ctx, "big", loc, func(o int64, rec sources.Record) (*sources.Record, error) {
		if o == n/2 {
			r := redact(rec)
			return &r, nil
		}
		return nil, nil
	})
	close(stop)
	<-done
	if err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	if res.Deleted != 2 || res.Replaced != 1 {
		t.Errorf("deleted %d, replaced %d; want 2, 1", res.Deleted, res.Replaced)
	}
	if growth := int64(peak) - int64(base); growth > 32<<20 {
		t.Errorf("heap grew by %d MiB during the rewrite of a 20 MiB blob", growth>>20)
	} else {
		t.Logf("heap growth during the rewrite: %.1f MiB", float64(growth)/(1<<20))
	}

	want := sha256.New()
	wn, _ := io.Copy(want, &genNDJSON{n: n, subj: subj, edited: true})
	resp, err := bb.DownloadStream(f.ctx, nil)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	got := sha256.New()
	gn, err := io.Copy(got, resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	if gn != wn || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Errorf("content differs from the expected (%d bytes, want %d)", gn, wn)
	}
	if string(*resp.ETag) != res.ETag {
		t.Errorf("ETag %s, Rewrite returned %s", *resp.ETag, res.ETag)
	}
	checkOrdinals(t, f.discover(c, rwSubject), map[string][]int64{"big": nil})
}

// rewriteString runs rewriteStream over a string.
func rewriteString(format sources.Format, in string, ordinals []int64, edit Edit) (string, error) {
	var out bytes.Buffer
	_, _, err := rewriteStream(context.Background(), strings.NewReader(in), &out, format, ordinals, edit)
	return out.String(), err
}

func deleteAll(int64, sources.Record) (*sources.Record, error) { return nil, nil }

func replaceWith(fields ...sources.Field) Edit {
	return func(int64, sources.Record) (*sources.Record, error) {
		return &sources.Record{Fields: fields}, nil
	}
}

// Edge cases of the byte-level rewrite, without storage.
func TestRewriteStream(t *testing.T) {
	b := sources.Field{Name: "b", Value: []any{json.Number("1"), "2"}}
	for _, x := range []struct {
		format   sources.Format
		in       string
		ordinals []int64
		edit     Edit
		want     string
	}{
		// JSON arrays: separators stay valid whichever elements go.
		{sources.FormatJSONArray, `[{"a":1},{"a":2},{"a":3}]`, []int64{0}, deleteAll, `[{"a":2},{"a":3}]`},
		{sources.FormatJSONArray, `[{"a":1},{"a":2},{"a":3}]`, []int64{1}, deleteAll, `[{"a":1},{"a":3}]`},
		{sources.FormatJSONArray, `[{"a":1},{"a":2},{"a":3}]`, []int64{2}, deleteAll, `[{"a":1},{"a":2}]`},
		{sources.FormatJSONArray, `[{"a":1},{"a":2},{"a":3}]`, []int64{0, 2}, deleteAll, `[{"a":2}]`},
		{sources.FormatJSONArray, `[{"a":1},{"a":2},{"a":3}]`, []int64{0, 1, 2}, deleteAll, `[]`},
		{sources.FormatJSONArray, " [ {\"a\":1} ,\n {\"a\":2} ] \n", []int64{0}, deleteAll, " [ {\"a\":2} ] \n"},
		{sources.FormatJSONArray, `[{"a":1}, {"a":2}]`, []int64{1}, replaceWith(b), `[{"a":1}, {"b":[1,"2"]}]`},
		{sources.FormatJSONArray, `[{"a":1}, {"a":2}]`, []int64{0}, replaceWith(), `[{}, {"a":2}]`},
		// NDJSON: blank lines stay; a replacement keeps the line ending.
		{sources.FormatNDJSON, "{\"a\":1}\n{\"a\":2}", []int64{1}, deleteAll, "{\"a\":1}\n"},
		{sources.FormatNDJSON, "{\"a\":1}\n{\"a\":2}", []int64{1}, replaceWith(b), "{\"a\":1}\n{\"b\":[1,\"2\"]}"},
		{sources.FormatNDJSON, "\n{\"a\":1}\r\n\r\n{\"a\":2}\r\n", []int64{0}, replaceWith(b), "\n{\"b\":[1,\"2\"]}\r\n\r\n{\"a\":2}\r\n"},
		{sources.FormatNDJSON, "{\"a\":1}\n\n{\"a\":2}\n", []int64{0, 1}, deleteAll, "\n"},
		{sources.FormatNDJSON, `{"a":"<&>"}` + "\n", []int64{0}, replaceWith(sources.Field{Name: "a", Value: "<é\u2028>"}), `{"a":"\u003cé\u2028\u003e"}` + "\n"},
		// CSV.
		{sources.FormatCSV, "a,b\n1,2\n3,4", []int64{1}, replaceWith(sources.Field{Name: "b", Value: json.Number("5")}), "a,b\n1,2\n,5"},
		{sources.FormatCSV, "a,b\r\n1,2\r\n3,4\r\n", []int64{0}, replaceWith(sources.Field{Name: "a", Value: true}, sources.Field{Name: "b", Value: 1.5}), "a,b\r\ntrue,1.5\r\n3,4\r\n"},
		{sources.FormatCSV, "a,b\r\n1,2\r\n\r\n\n3,4\r\n", []int64{1}, deleteAll, "a,b\r\n1,2\r\n\r\n\n"},
		{sources.FormatCSV, "a,b\r\n1,2\r\n", []int64{0}, replaceWith(sources.Field{Name: "a", Value: "x\ry"}, sources.Field{Name: "b", Value: "p\nq"}), "a,b\r\n\"x\ry\",\"p\nq\"\r\n"},
		{sources.FormatCSV, "a\nx\ny\n", []int64{0}, replaceWith(sources.Field{Name: "a", Value: nil}), "a\n\"\"\ny\n"},
		{sources.FormatCSV, "a,a,b\n1,2,3\n", []int64{0}, replaceWith(sources.Field{Name: "a", Value: "x"}, sources.Field{Name: "b", Value: "z"}, sources.Field{Name: "a", Value: "y"}), "a,a,b\nx,y,z\n"},
		{sources.FormatCSV, "\ufeffa\n1\n", []int64{0}, replaceWith(sources.Field{Name: "a", Value: " lead"}), "\ufeffa\n\" lead\"\n"},
	} {
		got, err := rewriteString(x.format, x.in, x.ordinals, x.edit)
		if err != nil || got != x.want {
			t.Errorf("%s %q at %v: %q, %v; want %q", x.format, x.in, x.ordinals, got, err, x.want)
		}
	}
	if _, err := rewriteString(sources.FormatNDJSON, "{\"a\":1}\n", []int64{1}, deleteAll); !errors.Is(err, errMissing) {
		t.Errorf("ordinal past the end: %v, want errMissing", err)
	}
	if _, err := rewriteString(sources.FormatNDJSON, "{\"a\":1}\n[1]\n", []int64{1}, deleteAll); err == nil {
		t.Error("editing a record that is not an object succeeded")
	}
}

// collectSpans iterates with spans and returns the bytes joined in call
// order and each record's span.
func collectSpans(format sources.Format, data []byte) ([]byte, [][]byte, error) {
	var all []byte
	var spans [][]byte
	err := iterateSpans(context.Background(), bytes.NewReader(data), format, func(r *rawRecord) error {
		all = append(all, r.span...)
		spans = append(spans, append([]byte(nil), r.span...))
		return nil
	}, func(b []byte) error {
		all = append(all, b...)
		return nil
	})
	return all, spans, err
}

// orderedJSON iterates data and returns each record's ordered form as JSON
// ("" for a record that does not parse).
func orderedJSON(format sources.Format, data []byte) ([]string, error) {
	var out []string
	err := iterate(context.Background(), bytes.NewReader(data), format, func(r *rawRecord) error {
		rec, err := r.ordered()
		if err != nil {
			out = append(out, "")
			return nil
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		out = append(out, string(b))
		return nil
	})
	return out, err
}

// For any input: iterateSpans yields the records iterate yields, and its
// spans and gaps joined are the input; deleting or replacing (with itself)
// any set of records leaves a blob whose records are the others, unchanged.
func FuzzRewrite(f *testing.F) {
	for _, tc := range rewriteCases() {
		f.Add(uint8(0), []byte(tc.content), uint64(0b101010), false)
		f.Add(uint8(0), []byte(tc.content), uint64(0b111111), true)
	}
	f.Add(uint8(1), []byte("a,b\n1,2\n\n\r\n3,\"x\r\ny\"\r\n4,5\r"), uint64(0b011), false)
	f.Add(uint8(2), []byte(" [ 1 , {\"a\":1},\n\"s\" ] "), uint64(0b010), true)
	f.Fuzz(func(t *testing.T, fb uint8, data []byte, mask uint64, replace bool) {
		formats := []sources.Format{sources.FormatNDJSON, sources.FormatCSV, sources.FormatJSONArray}
		format := formats[int(fb)%len(formats)]
		want, err := orderedJSON(format, data)
		joined, spans, serr := collectSpans(format, data)
		if (err == nil) != (serr == nil) {
			t.Fatalf("iterate error %v, iterateSpans error %v", err, serr)
		}
		if err != nil {
			return
		}
		if len(spans) != len(want) {
			t.Fatalf("iterateSpans saw %d records, iterate %d", len(spans), len(want))
		}
		if !bytes.Equal(joined, data) {
			t.Fatalf("spans and gaps joined:\n%q\nwant\n%q", joined, data)
		}
		var ordinals []int64
		var keep []string
		for i, w := range want {
			if w != "" && mask>>(i%64)&1 == 1 {
				ordinals = append(ordinals, int64(i))
				if replace {
					keep = append(keep, w)
				}
				continue
			}
			keep = append(keep, w)
		}
		if format == sources.FormatCSV && replace && strings.Contains(string(data), "\r") {
			return // CSV cannot hold "\r\n" inside a value; readers make it "\n"
		}
		var out bytes.Buffer
		_, _, err = rewriteStream(context.Background(), bytes.NewReader(data), &out, format, ordinals, func(o int64, rec sources.Record) (*sources.Record, error) {
			if replace {
				return &rec, nil
			}
			return nil, nil
		})
		if err != nil {
			t.Fatalf("rewriteStream: %v", err)
		}
		got, err := orderedJSON(format, out.Bytes())
		if err != nil {
			t.Fatalf("the rewritten blob does not read: %v\n%q", err, out.Bytes())
		}
		if fmt.Sprint(got) != fmt.Sprint(keep) {
			t.Fatalf("after rewriting %v: records\n%q\nwant\n%q\nblob %q", ordinals, got, keep, out.Bytes())
		}
	})
}
