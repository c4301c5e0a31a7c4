package blobdataset

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dsr-functions/dsr/shared/sources"
)

// TestIndexWithFanout: in a dataset that fans out, the blobs with a fresh
// index are looked up and only the others are fanned out; once every blob
// has its index, nothing is fanned out. The results equal an in-process
// scan's throughout.
func TestIndexWithFanout(t *testing.T) {
	r := newFanoutRig(t)
	for i := range r.datasets {
		r.datasets[i].Index = true
	}
	c := r.connector(true)
	WithIndex(IndexOptions{Container: r.acct.Service.NewContainerClient(r.state), Secret: testIndexSecret})(c)
	build := func(dataset string, blobs ...string) {
		for _, b := range blobs {
			if _, err := c.BuildIndex(r.ctx, dataset, b); err != nil {
				t.Fatalf("BuildIndex %s: %v", b, err)
			}
		}
	}
	for b := range 4 {
		build("contacts", fmt.Sprintf("contacts/part-%d.ndjson", b))
		build("cases", fmt.Sprintf("cases/part-%d.ndjson", b))
	}
	subjects := []sources.Subject{annSubj, {Phones: []string{"12065550101"}}, {IDs: map[string]string{"id": "c35"}}, {Emails: []string{"person201@example.com"}}}
	want, err := r.connector(false).DiscoverMany(context.Background(), subjects)
	if err != nil {
		t.Fatal(err)
	}
	ctx := sources.WithWaiters(context.Background(), []sources.Waiter{{ID: "r1", Since: r.now}, {ID: "r2", Since: r.now}, {ID: "r3", Since: r.now}, {ID: "r4", Since: r.now}})
	_, err = c.DiscoverMany(ctx, subjects)
	var p *PendingScan
	if !errors.As(err, &p) || p.Progress.Shards != 2 {
		t.Fatalf("first discovery: %v; want the two contacts blobs without an index fanned out", err)
	}
	r.runAll(c, r.take())
	got, err := c.DiscoverMany(ctx, subjects)
	if err != nil {
		t.Fatalf("second discovery: %v (the cases are all indexed: nothing should fan out)", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("index and fan-out:\n%+v\nin process:\n%+v", got, want)
	}
	build("contacts", "contacts/part-4.ndjson", "contacts/part-5.ndjson")
	c.index.used.Store(0)
	if got, err = c.DiscoverMany(context.Background(), subjects); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("every blob indexed: %v, %+v; want the scan's result", err, got)
	}
	if len(r.take()) != 0 || c.index.used.Load() != 10 {
		t.Errorf("every blob indexed: %d lookups answered (want 10), shards sent", c.index.used.Load())
	}
	if want[0].Total() < 6 || want[3].Total() == 0 {
		t.Fatalf("the test data finds too little: %d and %d records", want[0].Total(), want[3].Total())
	}
}

// listCountingStore is the Blob Storage store, counting the calls that tell
// what blobs a dataset has (listings and HEADs).
type listCountingStore struct {
	azureStore
	calls atomic.Int64
}

func (s *listCountingStore) list(ctx context.Context, cont, prefix string) ([]string, error) {
	s.calls.Add(1)
	return s.azureStore.list(ctx, cont, prefix)
}

func (s *listCountingStore) sizes(ctx context.Context, cont, prefix, blob string) (map[string]blobProps, error) {
	s.calls.Add(1)
	return s.azureStore.sizes(ctx, cont, prefix, blob)
}

func (s *listCountingStore) listETags(ctx context.Context, cont, prefix string) (map[string]string, error) {
	s.calls.Add(1)
	return s.azureStore.listETags(ctx, cont, prefix)
}

func (s *listCountingStore) stat(ctx context.Context, cont, name string) (string, int64, error) {
	s.calls.Add(1)
	return s.azureStore.stat(ctx, cont, name)
}

// A discovery pass lists each dataset once, whatever it needs to know of
// the blobs: their names, their ETags (is the index fresh?) and their
// sizes (fan out?). It used to list an indexed dataset that may fan out
// twice, and a plain one that may fan out twice as well.
func TestOneListingPerDatasetAndPass(t *testing.T) {
	r := newFanoutRig(t)
	for _, indexed := range []bool{false, true} {
		for i := range r.datasets {
			r.datasets[i].Index = indexed
		}
		c := r.connector(true)
		c.fanout.ShardBytes = 1 << 30 // planned, but one shard: scanned in process
		if indexed {
			WithIndex(IndexOptions{Container: r.acct.Service.NewContainerClient(r.state), Secret: testIndexSecret})(c)
			if _, err := c.BuildIndex(r.ctx, "contacts", "contacts/part-0.ndjson"); err != nil {
				t.Fatal(err)
			}
		}
		st := &listCountingStore{azureStore: c.store.(azureStore)}
		c.store = st
		got, err := c.DiscoverMany(context.Background(), []sources.Subject{annSubj})
		if err != nil {
			t.Fatal(err)
		}
		want, err := r.connector(false).DiscoverMany(context.Background(), []sources.Subject{annSubj})
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("indexed %v: %+v, want the plain scan's %+v (%v)", indexed, got, want, err)
		}
		if n := st.calls.Load(); n != int64(len(r.datasets)) {
			t.Errorf("indexed %v: %d listings for %d datasets, want one each", indexed, n, len(r.datasets))
		}
		if len(r.take()) != 0 {
			t.Errorf("indexed %v: shards sent", indexed)
		}
	}
}

// A discovery that finds a blob's index missing or stale asks for its
// build at once (IndexOptions.Stale), once per blob version and at most
// maxStaleAsks times per dataset pass; fresh indexes ask for nothing.
func TestStaleIndexAsksForABuild(t *testing.T) {
	r := newFanoutRig(t)
	for i := range r.datasets {
		r.datasets[i].Index = true
	}
	c := r.connector(false)
	var mu sync.Mutex
	asked := map[string]int{}
	WithIndex(IndexOptions{Container: r.acct.Service.NewContainerClient(r.state), Secret: testIndexSecret,
		Stale: func(_ context.Context, dataset, blob, etag string) {
			mu.Lock()
			defer mu.Unlock()
			if etag == "" {
				t.Errorf("%s: asked without its version", blob)
			}
			asked[dataset+" "+blob]++
		}})(c)
	discover := func() map[string]int {
		t.Helper()
		mu.Lock()
		clear(asked)
		mu.Unlock()
		if _, err := c.DiscoverMany(context.Background(), []sources.Subject{annSubj}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(asked)
	}
	all := map[string]int{}
	for b := range 6 {
		all[fmt.Sprintf("contacts contacts/part-%d.ndjson", b)] = 1
	}
	for b := range 4 {
		all[fmt.Sprintf("cases cases/part-%d.ndjson", b)] = 1
	}
	if got := discover(); !reflect.DeepEqual(got, all) {
		t.Fatalf("no index built: asked %v, want every blob once", got)
	}
	if got := discover(); len(got) != 0 {
		t.Fatalf("again: asked %v, want nothing (each blob version is asked for once)", got)
	}
	for name := range all {
		ds, blob, _ := strings.Cut(name, " ")
		if _, err := c.BuildIndex(r.ctx, ds, blob); err != nil {
			t.Fatal(err)
		}
	}
	if got := discover(); len(got) != 0 {
		t.Fatalf("every index fresh: asked %v", got)
	}
	r.put("contacts/part-2.ndjson", `{"id":"c999","email":"someone@example.com"}`+"\n")
	if got := discover(); !reflect.DeepEqual(got, map[string]int{"contacts contacts/part-2.ndjson": 1}) {
		t.Fatalf("one blob changed: asked %v, want that blob", got)
	}

	old := maxStaleAsks
	maxStaleAsks = 2
	t.Cleanup(func() { maxStaleAsks = old })
	for b := range 6 {
		r.put(fmt.Sprintf("contacts/part-%d.ndjson", b), fmt.Sprintf(`{"id":"c%d","email":"other@example.com"}`+"\n", 1000+b))
	}
	seen := map[string]bool{}
	for pass := range 3 {
		got := discover()
		if len(got) != 2 {
			t.Fatalf("six blobs changed, pass %d: asked %v, want 2 (the bound)", pass, got)
		}
		for b := range got {
			if seen[b] {
				t.Fatalf("pass %d asked for %s again", pass, b)
			}
			seen[b] = true
		}
	}
	if got := discover(); len(got) != 0 {
		t.Fatalf("every changed blob asked for: asked %v", got)
	}
}
