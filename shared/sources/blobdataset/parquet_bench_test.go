package blobdataset

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/duckdbtest"
	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/sources"
)

// Parquet discovery against DuckDB: the sample's contacts as one Parquet
// file (dsr sample -format parquet; DSR_PARQUET_BENCH_CONTACTS contacts,
// default 1,000,000), searched for 1 and 1,000 subjects by email, by our
// discovery (DiscoverMany over a local file, one blob, one goroutine) and
// by DuckDB (read_parquet with a WHERE over the same column), in one run.
// BENCHMARKS.md records the method and the results.

// pqFileStore is fileStore with the ranged reads Parquet discovery needs.
type pqFileStore struct{ fileStore }

func (s pqFileStore) stat(_ context.Context, _, name string) (string, int64, error) {
	fi, err := os.Stat(filepath.Join(s.dir, filepath.FromSlash(name)))
	if os.IsNotExist(err) {
		return "", 0, errBlobNotFound
	}
	if err != nil {
		return "", 0, err
	}
	return fmt.Sprintf("\"%d-%d\"", fi.Size(), fi.ModTime().UnixNano()), fi.Size(), nil
}

type sectionCloser struct {
	*io.SectionReader
	f *os.File
}

func (s sectionCloser) Close() error { return s.f.Close() }

func (s pqFileStore) read(ctx context.Context, cont, name, etag string, off, count int64) (io.ReadCloser, int64, error) {
	tag, size, err := s.stat(ctx, cont, name)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", sources.ErrChanged, err)
	}
	if tag != etag {
		return nil, 0, sources.ErrChanged
	}
	f, err := os.Open(filepath.Join(s.dir, filepath.FromSlash(name)))
	if err != nil {
		return nil, 0, err
	}
	if off == 0 && count == 0 {
		count = size
	}
	return sectionCloser{io.NewSectionReader(f, off, min(count, size-off)), f}, size, nil
}

func parquetBenchContacts(b *testing.B) int {
	b.Helper()
	v := os.Getenv("DSR_PARQUET_BENCH_CONTACTS")
	if v == "" {
		return 1_000_000
	}
	n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
	if err != nil || n < sample.MinContacts {
		b.Fatalf("DSR_PARQUET_BENCH_CONTACTS: want a number of contacts of at least %d", sample.MinContacts)
	}
	return n
}

var parquetBenchMu sync.Mutex

// parquetBenchData writes (once, in os.TempDir) the sample's contacts of
// size n as Parquet and returns the file's directory, its blob name there,
// and every contact's email in file order ("" for none).
func parquetBenchData(b *testing.B, n int) (dir, name string, emails []string) {
	b.Helper()
	parquetBenchMu.Lock()
	defer parquetBenchMu.Unlock()
	size := sample.SizeFor(n)
	dir = filepath.Join(os.TempDir(), fmt.Sprintf("dsr-parquet-bench-%d", n))
	name = "contacts.parquet"
	path := filepath.Join(dir, name)
	f := sample.File{Container: sample.Container, Name: sample.ContactsBlob}
	if _, err := os.Stat(path); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		out, err := os.Create(path + ".tmp")
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(out, 1<<20)
		if err := sample.GenerateParquet(context.Background(), w, f, size, 1); err != nil {
			b.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		if err := out.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			b.Fatal(err)
		}
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(sample.Generate(pw, f, size, 1)) }()
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var c struct {
			Email *string `json:"emailaddress1"`
		}
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			b.Fatal(err)
		}
		if c.Email == nil {
			emails = append(emails, "")
		} else {
			emails = append(emails, *c.Email)
		}
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	return dir, name, emails
}

// parquetBenchSubjects: 1 subject (the demo subject), or n subjects with
// the emails of n contacts spread over the file (normalised: lower case).
func parquetBenchSubjects(n int, emails []string) []sources.Subject {
	if n == 1 {
		return []sources.Subject{{Emails: []string{sample.DemoEmail}}}
	}
	var out []sources.Subject
	seen := map[string]bool{}
	for i := 0; len(out) < n && i < len(emails)*2; i++ {
		e := strings.ToLower(strings.TrimSpace(emails[(i*7919)%len(emails)]))
		if e == "" || seen[e] {
			continue
		}
		seen[e] = true
		out = append(out, sources.Subject{Emails: []string{e}})
	}
	return out
}

func parquetBenchConfig(name string) *sources.Config {
	return scanConfig(sources.Dataset{
		Name: "contacts", Blob: name, Format: sources.FormatParquet, Key: "contactid",
		Identifiers: []sources.Identifier{{Field: "emailaddress1", Kind: sources.KindEmail}},
		Facts:       testFacts,
	})
}

// BenchmarkParquetDiscovery: our Parquet discovery next to DuckDB on the
// same file, 1 and 1,000 subjects by email. MB/s is the file's size over
// the time of one search. DuckDB's time is measured inside Node around the
// query alone (the median of 5 runs after one warm-up; process start and
// opening DuckDB excluded); it runs with 1 thread (like our one blob) and
// with its default (every core).
func BenchmarkParquetDiscovery(b *testing.B) {
	requireBench(b)
	dir, name, emails := parquetBenchData(b, parquetBenchContacts(b))
	path := filepath.Join(dir, name)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	size := fi.Size()
	b.Logf("%s: %d bytes, %d contacts", path, size, len(emails))
	subjectsOf := map[int][]sources.Subject{}
	for _, n := range []int{1, scanSubjects} {
		subjectsOf[n] = parquetBenchSubjects(n, emails)
	}
	emails = nil // not to count in the heap of the scans
	cfg := parquetBenchConfig(name)
	for _, n := range []int{1, scanSubjects} {
		subjects := subjectsOf[n]
		var ours int64
		b.Run(fmt.Sprintf("subjects=%d/dsr", n), func(b *testing.B) {
			c := localConnector(cfg, pqFileStore{fileStore{dir: dir}}, 1)
			b.SetBytes(size)
			peakHeap, peakTotal, baseHeap := parquetPeakMemory(func() {
				for b.Loop() {
					ds, err := c.DiscoverMany(context.Background(), subjects)
					if err != nil {
						b.Fatal(err)
					}
					ours = 0
					for _, d := range ds {
						ours += d.Total()
					}
				}
			})
			b.ReportMetric(float64(ours), "records")
			b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(peakTotal)/(1<<20), "peak-runtime-MiB")
			b.ReportMetric(float64(baseHeap)/(1<<20), "base-heap-MiB")
		})
		var in []string
		for _, s := range subjects {
			in = append(in, duckdbtest.Quote(s.Emails[0]))
		}
		sql := "SELECT file_row_number FROM read_parquet(" + duckdbtest.Quote(path) + ", file_row_number = true) WHERE lower(trim(emailaddress1)) IN (" + strings.Join(in, ", ") + ")"
		for _, threads := range []int{1, 0} {
			label := "duckdb"
			if threads == 1 {
				label = "duckdb-1thread"
			}
			b.Run(fmt.Sprintf("subjects=%d/%s", n, label), func(b *testing.B) {
				res := duckdbtest.Run(b, duckdbtest.Options{Threads: threads}, duckdbtest.Query{SQL: sql, Runs: 6})[0]
				runs := slices.Clone(res.Runs[1:])
				slices.Sort(runs)
				med := runs[len(runs)/2]
				if ours != 0 && res.Count != ours {
					b.Errorf("DuckDB found %d rows, our discovery %d", res.Count, ours)
				}
				for b.Loop() {
				}
				b.ReportMetric(float64(med.Nanoseconds()), "ns/op")
				b.ReportMetric(float64(size)/med.Seconds()/1e6, "MB/s")
				b.ReportMetric(float64(res.Count), "records")
				b.ReportMetric(float64(res.MaxRSS)/(1<<20), "node-maxRSS-MiB")
			})
		}
	}
}

// parquetPeakMemory runs f and returns the peaks of the Go heap's objects
// and of all memory the Go runtime mapped, sampled every 2 ms, and the
// heap's objects before f.
func parquetPeakMemory(f func()) (heap, total, base uint64) {
	runtime.GC()
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"}}
	metrics.Read(samples)
	base = samples[0].Value.Uint64()
	done, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(samples)
			heap = max(heap, samples[0].Value.Uint64())
			total = max(total, samples[1].Value.Uint64())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(done)
	<-sampled
	return heap, total, base
}
