package blobdataset

import (
	"context"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/sources"
)

// BenchmarkIndexedManyBlobs measures an indexed discovery over a dataset
// of many small blobs in Azurite, where every blob's index is looked up
// (a header, then the fanout entries and buckets of the subject's hashes:
// a few round trips per blob, whether or not she is in it). It compares
// lookups 4 at a time (the scans' parallelism) with indexLookupParallelism
// (32), and the full scan of the same blobs. DSR_INDEX_MANY_BLOBS sets the
// number of blobs (default 1,000, 200 contacts each, about 25 KB).
//
// Azurite answers a small read in about a millisecond, one request at a
// time (one Node thread), which hides what parallel lookups are for: Blob
// Storage answers many at once, each after a first-byte latency of several
// milliseconds. So every index read, blob download and ranged read here
// waits DSR_INDEX_MANY_LATENCY_MS (default 10) before it goes to Azurite,
// as the fan-out benchmark's throttled store does; 0 turns that off.
//
//	go test ./shared/sources/blobdataset/ -run '^$' -bench BenchmarkIndexedManyBlobs -benchtime 5x -timeout 30m
func BenchmarkIndexedManyBlobs(b *testing.B) {
	requireBench(b)
	blobs := 1000
	if v := os.Getenv("DSR_INDEX_MANY_BLOBS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("DSR_INDEX_MANY_BLOBS=%q", v)
		}
		blobs = n
	}
	const perBlob = 200
	f := newFixture(b)
	var total int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for k := range blobs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var sb strings.Builder
			for i := range perBlob {
				n := k*perBlob + i
				fmt.Fprintf(&sb, `{"id":"c%d","email":"person%d@example.com","phone":"+1 206 %03d %04d","note":"customer since %d"}`+"\n", n, n, 200+(n/10000)%800, n%10000, 2000+n%25)
			}
			f.put(fmt.Sprintf("contacts/part-%05d.ndjson", k), sb.String())
			mu.Lock()
			total += int64(sb.Len())
			mu.Unlock()
		})
	}
	wg.Wait()
	cfg := &sources.Config{Version: 1, DefaultPhoneRegion: "US", Datasets: []sources.Dataset{{
		Name: "contacts", Container: f.c, Prefix: "contacts/", Format: sources.FormatNDJSON, Key: "id", Facts: testFacts,
		Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}, {Field: "phone", Kind: sources.KindPhone}, {Field: "id", Kind: sources.KindID}},
	}}}
	p := f.indexedConnectors(cfg)
	latency := 10 * time.Millisecond
	if v := os.Getenv("DSR_INDEX_MANY_LATENCY_MS"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms < 0 {
			b.Fatalf("DSR_INDEX_MANY_LATENCY_MS=%q", v)
		}
		latency = time.Duration(ms) * time.Millisecond
	}
	idxStore := &countingIndexStore{indexStore: p.idx.index.store}
	p.idx.index.store = latencyIndexStore{idxStore, latency}
	for _, c := range []*Connector{p.idx, p.plain} {
		c.store = latencyStore{c.store.(azureStore), latency}
		c.reader = c.store.(blobReader)
	}
	start := time.Now()
	stats := buildAll(b, p.idx)
	var indexBytes int64
	for _, st := range stats {
		indexBytes += st.IndexBytes
	}
	b.Logf("%d blobs, %d bytes: %d indexes (%.2f %% of the data) built in %v", blobs, total, len(stats),
		100*float64(indexBytes)/float64(total), time.Since(start).Round(time.Millisecond))
	// A subject in one blob, by email, phone and id.
	n := (blobs / 2) * perBlob
	subject := sources.Subject{Emails: []string{fmt.Sprintf("person%d@example.com", n)},
		Phones: []string{fmt.Sprintf("1206%03d%04d", 200+(n/10000)%800, n%10000)}, IDs: map[string]string{"id": fmt.Sprintf("c%d", n)}}
	want, err := p.plain.Discover(f.ctx, subject)
	if err != nil || len(want.Datasets) != 1 || want.Datasets[0].Records != 1 {
		b.Fatalf("scan: %v, %+v, want 1 record", err, want)
	}
	run := func(name string, c *Connector, lookups int) {
		b.Run(name, func(b *testing.B) {
			old := indexLookupParallelism
			indexLookupParallelism = lookups
			defer func() { indexLookupParallelism = old }()
			gets := idxStore.gets.Load()
			p.counts()
			for b.Loop() {
				got, err := c.Discover(f.ctx, subject)
				if err != nil {
					b.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					b.Fatal("the indexed discovery differs from the scan")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/discovery")
			if c == p.idx {
				used, bypassed := p.counts()
				if used != int64(blobs*b.N) || bypassed != 0 {
					b.Fatalf("index used for %d blobs, bypassed for %d; want %d used", used, bypassed, blobs*b.N)
				}
				b.ReportMetric(float64(idxStore.gets.Load()-gets)/float64(b.N*blobs), "index-reads/blob")
			}
		})
	}
	run("discover=scan", p.plain, indexLookupParallelism)
	run("discover=indexed/lookups-at-once=4", p.idx, 4)
	run(fmt.Sprintf("discover=indexed/lookups-at-once=%d", indexLookupParallelism), p.idx, indexLookupParallelism)
}

// latencyIndexStore and latencyStore wait a first-byte latency before each
// read (see BenchmarkIndexedManyBlobs).
type latencyIndexStore struct {
	indexStore
	d time.Duration
}

func (s latencyIndexStore) get(ctx context.Context, name, etag string, off, count int64) ([]byte, string, int64, error) {
	time.Sleep(s.d)
	return s.indexStore.get(ctx, name, etag, off, count)
}

type latencyStore struct {
	azureStore
	d time.Duration
}

func (s latencyStore) open(ctx context.Context, cont, name string) (io.ReadCloser, string, error) {
	time.Sleep(s.d)
	return s.azureStore.open(ctx, cont, name)
}

func (s latencyStore) read(ctx context.Context, cont, name, etag string, off, count int64) (io.ReadCloser, int64, error) {
	time.Sleep(s.d)
	return s.azureStore.read(ctx, cont, name, etag, off, count)
}
