package blobdataset

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/sources"
)

// Scan benchmarks: the real discovery path (DiscoverMany: prefilter,
// parsing of the candidate lines, exact matching) over a local file,
// measured side by side with grep -F and ripgrep on the same file with the
// same patterns, and the peak memory of a scan for two input sizes. They
// generate a 1 GiB file (once, in os.TempDir), so they only run when
// benchmarks are asked for (-bench) and not in -short mode. scripts/bench.sh
// runs them and prints the ratios.
//
// DSR_SCAN_BENCH_MIB sets the size of the throughput benchmark's file
// (default 1024).

// requireBench skips b unless benchmarks were requested explicitly.
func requireBench(b *testing.B) {
	b.Helper()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		b.Skip("scan benchmarks run only with -bench")
	}
	if testing.Short() {
		b.Skip("scan benchmarks read a 1 GiB file: not in -short mode")
	}
}

func scanBenchMiB(b *testing.B) int {
	b.Helper()
	v := os.Getenv("DSR_SCAN_BENCH_MIB")
	if v == "" {
		return 1024
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatal("DSR_SCAN_BENCH_MIB: not a positive integer")
	}
	return n
}

// discoverFile runs DiscoverMany for subjects over the file at path as a
// single-blob dataset, or as a prefix dataset of blobs parts of it when
// blobs > 1, and returns the number of matched records over all subjects.
func discoverFile(path string, subjects []sources.Subject, blobs, parallelism int) (int64, error) {
	var c *Connector
	if blobs > 1 {
		st, err := newShardStore(path, "activity/", blobs)
		if err != nil {
			return 0, err
		}
		c = localConnector(scanConfig(scanDataset("", "activity/")), st, parallelism)
	} else {
		c = localConnector(scanConfig(scanDataset(filepath.Base(path), "")), fileStore{dir: filepath.Dir(path)}, parallelism)
	}
	ds, err := c.DiscoverMany(context.Background(), subjects)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, d := range ds {
		n += d.Total()
	}
	return n, nil
}

// candidateLines counts the lines of path that the combined prefilter of
// subjects accepts (what grep -F -i counts for the same emails).
func candidateLines(path string, subjects []sources.Subject) (int, error) {
	d := scanDataset(filepath.Base(path), "")
	due := make([]*subjectState, len(subjects))
	for i, s := range subjects {
		due[i] = &subjectState{subj: s, keys: keySet{}}
	}
	m := newDatasetMatcher(scanConfig(d), &d, due)
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), maxLine)
	n := 0
	for sc.Scan() {
		if m.hitsAny(sc.Bytes()) {
			n++
		}
	}
	return n, sc.Err()
}

// BenchmarkScan measures discovery throughput (file bytes per second) for 1
// and 1000 subjects next to grep -F and rg -F counting the lines that hold
// the subjects' emails, in one run. "dsr" is one blob scanned by one
// goroutine, like grep and rg on one file; "dsr-8blobs" is the same bytes
// as a dataset of 8 blobs scanned 4 at a time.
func BenchmarkScan(b *testing.B) {
	requireBench(b)
	path := scanData(b, scanBenchMiB(b))
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	size := fi.Size()
	for _, n := range []int{1, scanSubjects} {
		subjects := benchSubjects(n, false)
		patterns := benchPatterns(subjects)
		pf := filepath.Join(b.TempDir(), "patterns.txt")
		if err := os.WriteFile(pf, []byte(strings.Join(patterns, "\n")+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("subjects=%d/dsr", n), func(b *testing.B) {
			benchDiscover(b, path, size, subjects, 1, 1)
			cands, err := candidateLines(path, subjects)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(cands), "candidates")
		})
		// rg-i-nommap is rg -F -i reading the file with read(2), as we and
		// grep do, instead of through mmap (its choice for one file).
		for _, tool := range []struct {
			name, bin string
			flags     []string
		}{
			{"grep", "grep", nil}, {"grep-i", "grep", []string{"-i"}}, {"rg", "rg", nil}, {"rg-i", "rg", []string{"-i"}},
			{"rg-i-nommap", "rg", []string{"-i", "--no-mmap"}},
		} {
			b.Run(fmt.Sprintf("subjects=%d/%s", n, tool.name), func(b *testing.B) {
				bin, err := exec.LookPath(tool.bin)
				if err != nil {
					b.Skipf("%s not on PATH (Debian package %s; scripts/bench.sh installs it when run as root): no %s column", tool.bin, map[string]string{"grep": "grep", "rg": "ripgrep"}[tool.bin], tool.name)
				}
				args := append([]string{"-F", "-c"}, tool.flags...)
				args = append(args, "-f", pf, path)
				benchCount(b, bin, args, size)
			})
		}
	}
	// The same records with every '@' written as the JSON escape \u0040
	// (as some serializers write it): every line holds an escape mark, so
	// every line takes the decoded second look, the worst case of it. The
	// records found must be exactly those of the plain file.
	escaped, escSize := scanDataEscaped(b, path)
	for _, n := range []int{1, scanSubjects} {
		b.Run(fmt.Sprintf("subjects=%d/dsr-escaped", n), func(b *testing.B) {
			subjects := benchSubjects(n, false)
			want, err := discoverFile(path, subjects, 1, 1)
			if err != nil {
				b.Fatal(err)
			}
			benchDiscover(b, escaped, escSize, subjects, 1, 1)
			if got, err := discoverFile(escaped, subjects, 1, 1); err != nil || got != want {
				b.Fatalf("escaped file: %d records (%v), the plain file %d", got, err, want)
			}
		})
	}
	b.Run(fmt.Sprintf("subjects=%d/dsr-8blobs", 1), func(b *testing.B) {
		benchDiscover(b, path, size, benchSubjects(1, false), 8, 4)
	})
	b.Run(fmt.Sprintf("subjects=%d/dsr-8blobs", scanSubjects), func(b *testing.B) {
		benchDiscover(b, path, size, benchSubjects(scanSubjects, false), 8, 4)
	})
	b.Run(fmt.Sprintf("subjects=%d-with-phones/dsr", scanSubjects), func(b *testing.B) {
		benchDiscover(b, path, size, benchSubjects(scanSubjects, true), 1, 1)
	})
}

func benchDiscover(b *testing.B, path string, size int64, subjects []sources.Subject, blobs, parallelism int) {
	b.SetBytes(size)
	var records int64
	for b.Loop() {
		var err error
		if records, err = discoverFile(path, subjects, blobs, parallelism); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(records), "records")
}

// scanDataEscaped writes (once) the file at path with every '@' written as
// \u0040, and returns its path and size.
func scanDataEscaped(b *testing.B, path string) (string, int64) {
	b.Helper()
	esc := strings.TrimSuffix(path, ".ndjson") + "-escaped.ndjson"
	if fi, err := os.Stat(esc); err == nil && fi.ModTime().After(modTime(b, path)) {
		return esc, fi.Size()
	}
	in, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	tmp := esc + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(out, 1<<20)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), maxLine)
	for sc.Scan() {
		w.Write(bytes.ReplaceAll(sc.Bytes(), []byte("@"), []byte(`\u0040`)))
		w.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, esc); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(esc)
	if err != nil {
		b.Fatal(err)
	}
	return esc, fi.Size()
}

func modTime(b *testing.B, path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.ModTime()
}

// benchCount runs a line counter (grep -c, rg -c) over the file; its time
// includes starting the process (about 1 ms).
func benchCount(b *testing.B, bin string, args []string, size int64) {
	b.SetBytes(size)
	lines := 0
	for b.Loop() {
		cmd := exec.Command(bin, args...)
		// Byte semantics like ours; rg ignores LC_ALL.
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		// Output goes to a pipe: grep stops at the first match when its
		// output is /dev/null.
		out, err := cmd.Output()
		var exit *exec.ExitError
		if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
			b.Fatalf("%s: %v: %s", bin, err, stderr.Bytes())
		}
		if lines, err = strconv.Atoi(strings.TrimSpace(string(out))); err != nil {
			lines = 0 // rg prints nothing when nothing matches
		}
	}
	b.ReportMetric(float64(lines), "lines-matched")
}

// memoryChildEnv carries the scan a child process of BenchmarkScanMemory
// runs (JSON memoryJob).
const memoryChildEnv = "DSR_SCAN_MEMORY_CHILD"

type memoryJob struct {
	Path        string `json:"path"`
	Subjects    int    `json:"subjects"`
	Blobs       int    `json:"blobs"`
	Parallelism int    `json:"parallelism"`
}

type memoryReport struct {
	Records int64 `json:"records"`
	// MaxRSS is the peak resident set of the child (VmHWM), bytes.
	MaxRSS       uint64 `json:"maxRSS"`
	PeakHeap     uint64 `json:"peakHeap"`     // heap objects, bytes
	PeakRuntime  uint64 `json:"peakRuntime"`  // all memory the runtime mapped, bytes
	BaseHeap     uint64 `json:"baseHeap"`     // heap objects before the scan
	BaseRuntime  uint64 `json:"baseRuntime"`  // runtime memory before the scan
	Samples      int    `json:"samples"`      // memory samples taken
	ScanDuration string `json:"scanDuration"` // wall time of the scan
}

const memoryReportPrefix = "scan-memory-report: "

// TestScanMemoryChild is the child process of BenchmarkScanMemory: it scans
// as the environment says and prints the peak memory it sampled. It is
// skipped in normal runs.
func TestScanMemoryChild(t *testing.T) {
	v := os.Getenv(memoryChildEnv)
	if v == "" {
		t.Skip("child process of BenchmarkScanMemory")
	}
	var job memoryJob
	if err := json.Unmarshal([]byte(v), &job); err != nil {
		t.Fatal(err)
	}
	subjects := benchSubjects(job.Subjects, false)
	runtime.GC()
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"}}
	metrics.Read(samples)
	rep := memoryReport{BaseHeap: samples[0].Value.Uint64(), BaseRuntime: samples[1].Value.Uint64()}
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(samples)
			rep.PeakHeap = max(rep.PeakHeap, samples[0].Value.Uint64())
			rep.PeakRuntime = max(rep.PeakRuntime, samples[1].Value.Uint64())
			rep.Samples++
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	start := time.Now()
	n, err := discoverFile(job.Path, subjects, job.Blobs, job.Parallelism)
	rep.ScanDuration = time.Since(start).Round(time.Millisecond).String()
	close(done)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	rep.Records = n
	if rep.MaxRSS, err = peakRSS(); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(rep)
	fmt.Println(memoryReportPrefix + string(out))
}

// peakRSS is the peak resident set of this process (VmHWM of
// /proc/self/status). getrusage would not do for a child started by
// os/exec: Linux counts into its ru_maxrss the memory of the process it
// was cloned from (os/exec clones with CLONE_VM), that is the parent's.
func peakRSS() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}

// BenchmarkScanMemory runs one scan per iteration in a child process (this
// test binary, TestScanMemoryChild) over 100 MiB and 1 GiB files and
// reports the child's peak resident set and the peaks of the Go heap and
// of all memory the Go runtime mapped, sampled every 2 ms during the scan.
// The subjects' matches are kept (they are the result), so memory may grow
// with the number of matches, but not with the bytes scanned.
func BenchmarkScanMemory(b *testing.B) {
	requireBench(b)
	for _, mib := range []int{100, 1024} {
		path := scanData(b, mib)
		for _, v := range []struct{ subjects, blobs, parallelism int }{
			{1, 1, 1}, {scanSubjects, 1, 1}, {scanSubjects, 8, 4},
		} {
			name := fmt.Sprintf("input=%dMiB/subjects=%d/blobs=%d/parallelism=%d", mib, v.subjects, v.blobs, v.parallelism)
			b.Run(name, func(b *testing.B) {
				job, _ := json.Marshal(memoryJob{Path: path, Subjects: v.subjects, Blobs: v.blobs, Parallelism: v.parallelism})
				var rep memoryReport
				var maxRSS uint64
				for b.Loop() {
					cmd := exec.Command(os.Args[0], "-test.run=^TestScanMemoryChild$", "-test.count=1", "-test.v")
					cmd.Env = append(os.Environ(), memoryChildEnv+"="+string(job))
					var stderr bytes.Buffer
					cmd.Stderr = &stderr
					out, err := cmd.Output()
					if err != nil {
						b.Fatalf("child: %v\n%s%s", err, out, stderr.Bytes())
					}
					i := bytes.Index(out, []byte(memoryReportPrefix))
					if i < 0 {
						b.Fatalf("child printed no report:\n%s", out)
					}
					line, _, _ := bytes.Cut(out[i+len(memoryReportPrefix):], []byte("\n"))
					if err := json.Unmarshal(line, &rep); err != nil {
						b.Fatal(err)
					}
					maxRSS = max(maxRSS, rep.MaxRSS)
				}
				const mibf = 1 << 20
				b.ReportMetric(float64(maxRSS)/mibf, "maxRSS-MiB")
				b.ReportMetric(float64(rep.PeakHeap)/mibf, "peak-heap-MiB")
				b.ReportMetric(float64(rep.PeakRuntime)/mibf, "peak-runtime-MiB")
				b.ReportMetric(float64(rep.BaseRuntime)/mibf, "base-runtime-MiB")
				b.ReportMetric(float64(rep.Records), "records")
			})
		}
	}
}

// throttledStore delays the first byte of every blob and limits each
// blob's stream to a bandwidth, as a remote store does (Blob Storage
// serves one download stream at a fraction of the account's bandwidth).
type throttledStore struct {
	blobStore
	latency     time.Duration
	bytesPerSec float64
}

func (s throttledStore) open(ctx context.Context, cont, name string) (io.ReadCloser, string, error) {
	r, etag, err := s.blobStore.open(ctx, cont, name)
	if err != nil {
		return nil, "", err
	}
	return &throttledReader{ReadCloser: r, start: time.Now().Add(s.latency), rate: s.bytesPerSec}, etag, nil
}

type throttledReader struct {
	io.ReadCloser
	start time.Time
	rate  float64
	n     int64
}

func (r *throttledReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p[:min(len(p), 256<<10)])
	r.n += int64(n)
	due := r.start.Add(time.Duration(float64(r.n) / r.rate * float64(time.Second)))
	time.Sleep(time.Until(due))
	return n, err
}

// BenchmarkScanParallel shows what parallel blob scans are for: the 100 MiB
// file as a dataset of 16 blobs behind a store that answers each blob after
// 20 ms and streams it at 50 MB/s, scanned for 1000 subjects with 1 to 8
// blobs at a time.
func BenchmarkScanParallel(b *testing.B) {
	requireBench(b)
	path := scanData(b, 100)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	subjects := benchSubjects(scanSubjects, false)
	for _, p := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("blobs=16/parallelism=%d", p), func(b *testing.B) {
			st, err := newShardStore(path, "activity/", 16)
			if err != nil {
				b.Fatal(err)
			}
			c := localConnector(scanConfig(scanDataset("", "activity/")), throttledStore{st, 20 * time.Millisecond, 50e6}, p)
			b.SetBytes(fi.Size())
			var records int64
			for b.Loop() {
				ds, err := c.DiscoverMany(context.Background(), subjects)
				if err != nil {
					b.Fatal(err)
				}
				records = 0
				for _, d := range ds {
					records += d.Total()
				}
			}
			b.ReportMetric(float64(records), "records")
		})
	}
}
