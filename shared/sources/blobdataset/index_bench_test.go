package blobdataset

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/sources"
)

// BenchmarkIndexedAccess measures the identifier index over the sample
// data (sample.Generate, seed 1, the five datasets of sample/sources.json
// with index: true) in local files: building every blob's index (MB/s of
// data, index size as a share of the data, peak Go heap while building),
// then discovery of the demo subject (email, phone and contact id, as an
// access request gives them) with fresh indexes and with a full scan of
// the same files. It runs only with -bench.
//
// DSR_INDEX_BENCH_SIZE is the sample size: a preset (tiny, small, medium,
// large, huge) or a number of contacts; default medium (100,000 contacts,
// about 184 MB). About 10 GB of data is "5500000" contacts (the sample
// holds about 1.84 KB per contact; large is 1.8 GB, huge 18 GB). The data
// is generated once into $TMPDIR/dsr-index-bench/<size>/ and kept.
//
// The indexes are built once (timed, with the heap's peak sampled every
// 2 ms) and reported with the indexed discovery: build-MB/s, build/scan
// (the build's throughput over the scan's), index-% (index bytes over data
// bytes) and build-peak-heap-MiB.
//
//	DSR_INDEX_BENCH_SIZE=medium go test ./shared/sources/blobdataset/ -run '^$' -bench BenchmarkIndexedAccess -benchtime 5x -timeout 60m
func BenchmarkIndexedAccess(b *testing.B) {
	requireBench(b)
	name := os.Getenv("DSR_INDEX_BENCH_SIZE")
	if name == "" {
		name = "medium"
	}
	size, err := sample.ParseSize(name)
	if err != nil {
		b.Fatal(err)
	}
	dir, total := indexBenchData(b, size)
	cfg := indexBenchConfig(b)
	store := versionedFileStore{fileStore{dir: dir}}
	idxDir := b.TempDir()
	plain := localConnector(cfg, store, DefaultParallelism)
	idx := localConnector(cfg, store, DefaultParallelism)
	idxStore := &countingIndexStore{indexStore: &dirIndexStore{dir: idxDir}}
	idx.index = newIndexer(idxStore, "", testIndexSecret, nil)
	dataReads := &countingBlobReader{blobReader: store}
	idx.reader = dataReads
	demo := sample.Demo(size)
	subject := sources.Subject{Emails: []string{demo.Email}, Phones: []string{demo.Phone}, IDs: map[string]string{"contactId": demo.ContactID}}
	ctx := context.Background()

	// Build, once, watching the heap.
	// The blobs are built DefaultParallelism at a time, as the scan reads
	// them and as the index queue's shards run on one instance.
	type job struct{ dataset, blob string }
	var jobs []job
	for _, d := range cfg.Datasets {
		names, err := idx.blobs(ctx, &d)
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range names {
			jobs = append(jobs, job{d.Name, n})
		}
	}
	stats := make([]IndexStats, len(jobs))
	peak, buildTime := heapPeak(func() {
		err := forEachN(ctx, len(jobs), DefaultParallelism, func(ctx context.Context, i int) error {
			st, err := idx.BuildIndex(ctx, jobs[i].dataset, jobs[i].blob)
			stats[i] = st
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	})
	var indexBytes, entries int64
	for _, st := range stats {
		indexBytes += st.IndexBytes
		entries += st.Entries
	}
	buildMBs := float64(total) / 1e6 / buildTime.Seconds()
	b.Logf("size %s: %d bytes of data in %d blobs; index %d bytes (%.2f %%), %d entries; built in %v (%.1f MB/s), peak heap %.1f MiB",
		name, total, len(stats), indexBytes, 100*float64(indexBytes)/float64(total), entries, buildTime.Round(time.Millisecond),
		buildMBs, float64(peak)/(1<<20))

	want, err := plain.Discover(ctx, subject)
	if err != nil {
		b.Fatal(err)
	}
	if want.Total() != 13 {
		b.Fatalf("the scan found %d records of the demo subject, want 13", want.Total())
	}
	run := func(b *testing.B, c *Connector) float64 {
		for b.Loop() {
			got, err := c.Discover(ctx, subject)
			if err != nil {
				b.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				b.Fatalf("found %d records, the scan %d (or at other positions)", got.Total(), want.Total())
			}
		}
		mbs := float64(total) / 1e6 / (b.Elapsed().Seconds() / float64(b.N))
		b.ReportMetric(mbs, "MB/s")
		return mbs
	}
	var scanMBs float64
	b.Run("discover=scan", func(b *testing.B) { scanMBs = run(b, plain) })
	b.Run("discover=indexed", func(b *testing.B) {
		idx.index.used.Store(0)
		idx.index.bypassed.Store(0)
		idxStore.gets.Store(0)
		dataReads.reads.Store(0)
		run(b, idx)
		// Requests per discovery: what network latency multiplies on
		// Blob Storage (the local files here answer in microseconds).
		b.ReportMetric(float64(idxStore.gets.Load())/float64(b.N), "index-reads/op")
		b.ReportMetric(float64(dataReads.reads.Load())/float64(b.N), "data-reads/op")
		if idx.index.used.Load() == 0 || idx.index.bypassed.Load() != 0 {
			b.Fatalf("index used for %d blobs, bypassed for %d", idx.index.used.Load(), idx.index.bypassed.Load())
		}
		// The build, measured once above, reported beside the lookup.
		b.ReportMetric(buildMBs, "build-MB/s")
		if scanMBs > 0 {
			b.ReportMetric(buildMBs/scanMBs, "build/scan")
		}
		b.ReportMetric(100*float64(indexBytes)/float64(total), "index-%")
		b.ReportMetric(float64(peak)/(1<<20), "build-peak-heap-MiB")
	})
}

// heapPeak runs fn and returns the peak of the Go heap's live objects
// while it ran (sampled every 2 ms) above the heap before, and how long
// fn took.
func heapPeak(fn func()) (uint64, time.Duration) {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	base := s[0].Value.Uint64()
	var peak uint64
	done, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	start := time.Now()
	fn()
	d := time.Since(start)
	close(done)
	<-sampled
	return peak - min(peak, base), d
}

// indexBenchConfig is sample/sources.json with the index on everywhere.
func indexBenchConfig(b *testing.B) *sources.Config {
	cfg, err := sources.LoadFile("../../../sample/sources.json")
	if err != nil {
		b.Fatal(err)
	}
	for i := range cfg.Datasets {
		cfg.Datasets[i].Index = true
	}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	return cfg
}

// indexBenchData generates the sample of size into a kept directory (once)
// and returns it with the data's total size.
func indexBenchData(b *testing.B, size sample.Size) (string, int64) {
	dir := filepath.Join(os.TempDir(), "dsr-index-bench", size.String())
	var total int64
	for _, f := range sample.Files() {
		path := filepath.Join(dir, filepath.FromSlash(f.Name))
		if fi, err := os.Stat(path); err == nil {
			total += fi.Size()
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			b.Fatal(err)
		}
		tmp := path + ".tmp"
		out, err := os.Create(tmp)
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(out, 1<<20)
		cw := &countingWriter{w: w}
		if err := sample.Generate(cw, f, size, 1); err != nil {
			b.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		if err := out.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
		total += cw.n
	}
	if total == 0 {
		b.Fatal(fmt.Errorf("no data in %s", dir))
	}
	return dir, total
}

// countingIndexStore counts the reads of index objects.
type countingIndexStore struct {
	indexStore
	gets atomic.Int64
}

func (s *countingIndexStore) get(ctx context.Context, name, etag string, off, count int64) ([]byte, string, int64, error) {
	s.gets.Add(1)
	return s.indexStore.get(ctx, name, etag, off, count)
}

// countingBlobReader counts ranged reads of data blobs.
type countingBlobReader struct {
	blobReader
	reads atomic.Int64
}

func (r *countingBlobReader) read(ctx context.Context, cont, name, etag string, off, count int64) (io.ReadCloser, int64, error) {
	r.reads.Add(1)
	return r.blobReader.read(ctx, cont, name, etag, off, count)
}

// BenchmarkIndexedAccessAzurite is BenchmarkIndexedAccess against Azurite
// (the sample uploaded to a container, the indexes in another), so that
// every index and data read is an HTTP request as on Blob Storage: it
// shows what the requests of an indexed discovery cost, which local files
// hide. DSR_INDEX_BENCH_SIZE as there (default small here: uploading
// takes a while).
func BenchmarkIndexedAccessAzurite(b *testing.B) {
	requireBench(b)
	name := os.Getenv("DSR_INDEX_BENCH_SIZE")
	if name == "" {
		name = "small"
	}
	size, err := sample.ParseSize(name)
	if err != nil {
		b.Fatal(err)
	}
	f := newFixture(b)
	total := f.putSample(size, 1, sample.Files()...)
	p := f.indexedConnectors(f.sampleConfig())
	start := time.Now()
	stats := buildAll(b, p.idx)
	buildTime := time.Since(start)
	var indexBytes int64
	for _, st := range stats {
		indexBytes += st.IndexBytes
	}
	b.Logf("size %s: %d bytes; index %.2f %%; built in %v (%.1f MB/s) reading from Azurite", name, total,
		100*float64(indexBytes)/float64(total), buildTime.Round(time.Millisecond), float64(total)/1e6/buildTime.Seconds())
	demo := sample.Demo(size)
	subject := sources.Subject{Emails: []string{demo.Email}, Phones: []string{demo.Phone}, IDs: map[string]string{"contactId": demo.ContactID}}
	want, err := p.plain.Discover(f.ctx, subject)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		c    *Connector
	}{{"scan", p.plain}, {"indexed", p.idx}} {
		b.Run("discover="+c.name, func(b *testing.B) {
			p.counts()
			for b.Loop() {
				got, err := c.c.Discover(f.ctx, subject)
				if err != nil {
					b.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					b.Fatal("the indexed discovery differs from the scan")
				}
			}
			b.ReportMetric(float64(total)/1e6/(b.Elapsed().Seconds()/float64(b.N)), "MB/s")
			if used, bypassed := p.counts(); c.c == p.idx && (used == 0 || bypassed != 0) {
				b.Fatalf("index used for %d blobs, bypassed for %d", used, bypassed)
			}
		})
	}
}

// BenchmarkIndexBuild builds every blob's index of the sample data (as
// BenchmarkIndexedAccess does, DefaultParallelism blobs at a time) once
// per iteration, with nothing else running in the process. Besides MB/s
// it reports the process's CPU time per build (cpu-s/op, user + system,
// from getrusage) and the data built per CPU second (MB/cpu-s), which a
// busy machine disturbs much less than wall time: the build is CPU-bound.
//
//	DSR_INDEX_BENCH_SIZE=medium go test ./shared/sources/blobdataset/ -run '^$' -bench 'BenchmarkIndexBuild$' -benchtime 5x
func BenchmarkIndexBuild(b *testing.B) {
	requireBench(b)
	name := os.Getenv("DSR_INDEX_BENCH_SIZE")
	if name == "" {
		name = "medium"
	}
	size, err := sample.ParseSize(name)
	if err != nil {
		b.Fatal(err)
	}
	dir, total := indexBenchData(b, size)
	cfg := indexBenchConfig(b)
	store := versionedFileStore{fileStore{dir: dir}}
	idx := localConnector(cfg, store, DefaultParallelism)
	ctx := context.Background()
	type job struct{ dataset, blob string }
	var jobs []job
	for _, d := range cfg.Datasets {
		names, err := idx.blobs(ctx, &d)
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range names {
			jobs = append(jobs, job{d.Name, n})
		}
	}
	cpu0 := processCPU(b)
	b.SetBytes(total)
	for b.Loop() {
		// An empty index store each time: a fresh index is not rebuilt.
		idx.index = newIndexer(&dirIndexStore{dir: b.TempDir()}, "", testIndexSecret, nil)
		err := forEachN(ctx, len(jobs), DefaultParallelism, func(ctx context.Context, i int) error {
			st, err := idx.BuildIndex(ctx, jobs[i].dataset, jobs[i].blob)
			if err == nil && st.Fresh {
				err = fmt.Errorf("%s: not built", jobs[i].blob)
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	cpu := (processCPU(b) - cpu0).Seconds() / float64(b.N)
	b.ReportMetric(cpu, "cpu-s/op")
	b.ReportMetric(float64(total)/1e6/cpu, "MB/cpu-s")
}

// processCPU is the user and system time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
