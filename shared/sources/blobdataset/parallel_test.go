package blobdataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/testutil"
)

// parallelFixture is a prefix dataset of many NDJSON blobs (logs) and a
// prefix dataset of CSV blobs relating to it (sessions), with the
// subjects' records, decoys, blank lines and empty blobs spread over them.
func parallelFixture(rng *rand.Rand) (map[string]string, []sources.Dataset) {
	users := []string{"ann@x.example", "bob@y.example", "joann@x.example", "ann@x.example.au", "carol@z.example"}
	blobs := map[string]string{}
	sid := 0
	for b := range 23 {
		var sb strings.Builder
		n := rng.IntN(40)
		if b%7 == 3 {
			n = 0 // empty blob
		}
		for range n {
			u := users[rng.IntN(len(users))]
			if rng.IntN(3) == 0 {
				u = strings.ToUpper(u)
			}
			msg := []string{"login", "logout", "cc " + users[rng.IntN(len(users))], "call +1 425 555 0100", "call 425 555 0101"}[rng.IntN(5)]
			fmt.Fprintf(&sb, `{"sid":"S%d","user":%q,"msg":%q}`+"\n", sid, u, msg)
			sid++
			if rng.IntN(5) == 0 {
				sb.WriteString(" \n")
			}
		}
		blobs[fmt.Sprintf("logs/%02d.ndjson", b)] = sb.String()
	}
	for b := range 5 {
		var sb strings.Builder
		sb.WriteString("id,session\n")
		for k := range rng.IntN(30) {
			fmt.Fprintf(&sb, "E%d-%d,S%d\n", b, k, rng.IntN(sid+5))
		}
		blobs[fmt.Sprintf("sessions/%d.csv", b)] = sb.String()
	}
	return blobs, []sources.Dataset{
		{Name: "logs", Prefix: "logs/", Format: sources.FormatNDJSON, Key: "sid",
			Identifiers: []sources.Identifier{{Field: "user", Kind: sources.KindEmail}},
			FreeText:    []string{"msg"}},
		{Name: "sessions", Prefix: "sessions/", Format: sources.FormatCSV,
			Relations: []sources.Relation{{Field: "session", References: "logs", ReferencesField: "sid"}}},
	}
}

var parallelSubjects = []sources.Subject{
	ann,
	{Emails: []string{"bob@y.example"}, Phones: []string{"14255550101"}},
	{Emails: []string{"carol@z.example"}},
	{Emails: []string{"nobody@x.example"}},
}

// TestDiscoverParallelSameAsSequential: a dataset of many blobs gives the
// same Discovery whatever the parallelism (Locations in blob name order,
// each with its blob's ETag and the reference's ordinals), for one subject
// and for several at once.
func TestDiscoverParallelSameAsSequential(t *testing.T) {
	f := newFixture(t)
	blobs, datasets := parallelFixture(rand.New(rand.NewPCG(31, 32)))
	etags := map[string]string{}
	for name, data := range blobs {
		etags[name] = f.put(name, data)
	}
	seq := f.connectorWith([]Option{WithParallelism(1)}, datasets...)
	want, err := seq.DiscoverMany(f.ctx, parallelSubjects)
	if err != nil {
		t.Fatal(err)
	}
	// The sequential result is the reference's, blob by blob.
	ref := &memStore{blobs: blobs}
	matched := 0
	for i, s := range parallelSubjects {
		if got, w := ordinals(want[i]), naiveDiscover(t, seq.cfg, ref, s); !reflect.DeepEqual(got, w) {
			t.Fatalf("subject %d: sequential %v, reference %v", i, got, w)
		}
		for _, m := range want[i].Datasets {
			checkConsistent(t, m)
			if !sort.SliceIsSorted(m.Locations, func(a, b int) bool { return m.Locations[a].Blob < m.Locations[b].Blob }) {
				t.Errorf("subject %d dataset %s: Locations not in blob name order", i, m.Dataset)
			}
			for _, loc := range m.Locations {
				if loc.ETag != etags[loc.Blob] {
					t.Errorf("subject %d: Location %s has ETag %s, want %s", i, loc.Blob, loc.ETag, etags[loc.Blob])
				}
			}
			if len(m.Locations) > 1 {
				matched++
			}
		}
	}
	if matched < 4 {
		t.Fatalf("weak fixture: only %d datasets have matches in several blobs", matched)
	}
	for _, p := range []int{2, 3, 4, 8, 64} {
		c := f.connectorWith([]Option{WithParallelism(p)}, datasets...)
		got, err := c.DiscoverMany(f.ctx, parallelSubjects)
		if err != nil {
			t.Fatalf("parallelism %d: %v", p, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("parallelism %d: DiscoverMany differs from the sequential result", p)
		}
		for i, s := range parallelSubjects {
			one, err := c.Discover(f.ctx, s)
			if err != nil {
				t.Fatalf("parallelism %d: Discover: %v", p, err)
			}
			if !reflect.DeepEqual(one, want[i]) {
				t.Errorf("parallelism %d subject %d: Discover differs from the sequential result", p, i)
			}
		}
	}
	if c := New(seq.cfg, nil); c.parallelism != DefaultParallelism {
		t.Errorf("default parallelism %d, want %d", c.parallelism, DefaultParallelism)
	}
	if c := New(seq.cfg, nil, WithParallelism(0)); c.parallelism != 1 {
		t.Errorf("WithParallelism(0) gives %d, want 1", c.parallelism)
	}
}

// TestDiscoverParallelMalformedBlob (Azurite): a malformed candidate record
// in one blob of many fails the dataset for good, naming the dataset, the
// blob and the record, never its content.
func TestDiscoverParallelMalformedBlob(t *testing.T) {
	f := newFixture(t)
	for b := range 12 {
		data := `{"user":"bob@y.example"}` + "\n" + `{"user":"ann@x.example"}` + "\n"
		if b == 7 {
			data += `{"user":"ann@x.example", "secret": broken` + "\n"
		}
		f.put(fmt.Sprintf("logs/%02d.ndjson", b), data)
	}
	c := f.connector(sources.Dataset{Name: "logs", Prefix: "logs/", Format: sources.FormatNDJSON,
		Identifiers: []sources.Identifier{{Field: "user", Kind: sources.KindEmail}}})
	ds, err := c.DiscoverMany(f.ctx, []sources.Subject{ann, {Emails: []string{"bob@y.example"}}})
	checkBlobError(t, ds, err, "logs/07.ndjson", "record 2")
}

// checkBlobError checks the failure of blob in dataset logs: a data error
// marks the dataset failed for good in every result (discovery succeeds);
// any other error fails the call. Either way it names the dataset and the
// blob, never record content.
func checkBlobError(t *testing.T, ds []*sources.Discovery, err error, blob string, more ...string) {
	t.Helper()
	if err == nil {
		if len(ds) == 0 {
			t.Fatal("discovery succeeded without results")
		}
		for _, d := range ds {
			dm := d.Datasets[0]
			if dm.Error == "" || !dm.Permanent || dm.Records != 0 {
				t.Fatalf("discovery succeeded and dataset logs is not failed for good: %+v", dm)
			}
		}
		err = errors.New(ds[0].Datasets[0].Error)
	}
	if errors.Is(err, context.Canceled) {
		t.Errorf("error %q is a cancellation, not the blob's own failure", err)
	}
	msg := err.Error()
	for _, w := range append([]string{"dataset logs", "blob " + blob}, more...) {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
	for _, leak := range []string{"ann", "bob", "secret", "broken"} {
		if strings.Contains(msg, leak) {
			t.Errorf("error %q shows record content %q", msg, leak)
		}
	}
}

// blockingReader returns its data, then blocks until ctx ends.
type blockingReader struct {
	ctx  context.Context
	data io.Reader
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if n, err := r.data.Read(p); err != io.EOF {
		return n, err
	}
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

func (r *blockingReader) Close() error { return nil }

// manyBlobs is a memStore of n NDJSON blobs logs/NN.ndjson, each with a
// record of ann's and one of bob's.
func manyBlobs(n int) *memStore {
	st := &memStore{blobs: map[string]string{}}
	for b := range n {
		st.blobs[fmt.Sprintf("logs/%02d.ndjson", b)] = `{"user":"ann@x.example"}` + "\n" + `{"user":"bob@y.example"}` + "\n"
	}
	return st
}

func logsConfig() *sources.Config {
	return scanConfig(sources.Dataset{Name: "logs", Prefix: "logs/", Format: sources.FormatNDJSON,
		Identifiers: []sources.Identifier{{Field: "user", Kind: sources.KindEmail}}})
}

// waitFor polls cond for up to 5 s.

// TestDiscoverParallelCancel: cancelling discovery while every worker is
// inside a blob stops all of them: discovery returns the cancellation
// promptly, every blob reader is closed, and no further blob is opened.
func TestDiscoverParallelCancel(t *testing.T) {
	const parallelism = 3
	var cnt openCounter
	opened := 0
	st := manyBlobs(12)
	st.onOpen = func(ctx context.Context, _ string, r io.ReadCloser) (io.ReadCloser, error) {
		cnt.mu.Lock()
		opened++
		cnt.mu.Unlock()
		return cnt.wrap(&blockingReader{ctx: ctx, data: r}), nil
	}
	c := localConnector(logsConfig(), st, parallelism)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.DiscoverMany(ctx, parallelSubjects)
		done <- err
	}()
	testutil.WaitFor(t, 5*time.Second, "every worker inside a blob", func() bool { open, _ := cnt.counts(); return open == parallelism })
	time.Sleep(20 * time.Millisecond) // no worker may open a further blob meanwhile
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("DiscoverMany after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("DiscoverMany did not return after cancel")
	}
	open, maxOpen := cnt.counts()
	cnt.mu.Lock()
	n := opened
	cnt.mu.Unlock()
	if open != 0 || maxOpen != parallelism || n != parallelism {
		t.Errorf("after cancel: %d readers open (at most %d at once), %d opened; want 0, %d, %d", open, maxOpen, n, parallelism, parallelism)
	}
}

// TestDiscoverParallelBlobFailure: one blob failing (a malformed candidate
// record: the dataset fails for good; a blob that cannot be opened or read
// for now: discovery fails) names that blob, and stops the workers still reading other blobs (which would
// otherwise never finish).
func TestDiscoverParallelBlobFailure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(st *memStore)
		want  []string
		data  bool // a data error: the dataset fails, discovery does not
	}{
		{"malformed record", func(st *memStore) {
			st.blobs["logs/07.ndjson"] += `{"user":"ann@x.example", "secret": broken` + "\n"
		}, []string{"record 2"}, true},
		{"open fails", func(st *memStore) {
			next := st.onOpen
			st.onOpen = func(ctx context.Context, name string, r io.ReadCloser) (io.ReadCloser, error) {
				if name == "logs/07.ndjson" {
					return nil, errors.New("connection reset")
				}
				return next(ctx, name, r)
			}
		}, []string{"connection reset"}, false},
		{"read fails", func(st *memStore) {
			next := st.onOpen
			st.onOpen = func(ctx context.Context, name string, r io.ReadCloser) (io.ReadCloser, error) {
				if name == "logs/07.ndjson" {
					return cntless{io.MultiReader(r, errReader{errors.New("unexpected EOF from storage")})}, nil
				}
				return next(ctx, name, r)
			}
		}, []string{"unexpected EOF from storage"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cnt openCounter
			st := manyBlobs(12)
			st.onOpen = func(ctx context.Context, name string, r io.ReadCloser) (io.ReadCloser, error) {
				if name > "logs/07.ndjson" || name == "logs/02.ndjson" {
					// Never ends by itself; blob 02 is cancelled before the
					// failing blob 07 fails, and must not be blamed.
					r = &blockingReader{ctx: ctx, data: r}
				}
				return cnt.wrap(r), nil
			}
			tc.setup(st)
			c := localConnector(logsConfig(), st, 4)
			done := make(chan error, 1)
			var ds []*sources.Discovery
			go func() {
				var err error
				ds, err = c.DiscoverMany(context.Background(), parallelSubjects)
				done <- err
			}()
			select {
			case err := <-done:
				if (err == nil) != tc.data {
					t.Errorf("data error %v, discovery error %v", tc.data, err)
				}
				checkBlobError(t, ds, err, "logs/07.ndjson", tc.want...)
			case <-time.After(5 * time.Second):
				t.Fatal("discovery did not stop after a blob failed")
			}
			if open, _ := cnt.counts(); open != 0 {
				t.Errorf("%d blob readers left open", open)
			}
		})
	}
}

type cntless struct{ io.Reader }

func (cntless) Close() error { return nil }
