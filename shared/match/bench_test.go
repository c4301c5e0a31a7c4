package match

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The benchmark data set is a deterministic NDJSON file of contact-like
// records, generated once per process and kept under os.TempDir with a
// fixed name so later runs reuse it (its exact size is checked).
// DSR_MATCH_BENCH_MIB overrides the size (default 64 MiB).

const (
	benchFileVersion = 1
	benchDefaultMiB  = 64
	// benchTarget is the subject's email; it appears (in varying case) in
	// about 0.01% of the lines.
	benchTarget     = "mira.okonkwo@contoso.example"
	benchTargetRate = 1e-4
)

var (
	benchOnce sync.Once
	benchPath string
	benchSize int64
	benchErr  error
)

// benchData returns the path and size of the benchmark file.
func benchData(b *testing.B) (string, int64) {
	b.Helper()
	benchOnce.Do(func() {
		mib := benchDefaultMiB
		if v := os.Getenv("DSR_MATCH_BENCH_MIB"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				benchErr = fmt.Errorf("DSR_MATCH_BENCH_MIB: not a positive integer")
				return
			}
			mib = n
		}
		benchSize = int64(mib) << 20
		benchPath = filepath.Join(os.TempDir(), fmt.Sprintf("dsr-match-bench-v%d-%dMiB.ndjson", benchFileVersion, mib))
		if fi, err := os.Stat(benchPath); err == nil && fi.Size() == benchSize {
			return
		}
		benchErr = writeBenchFile(benchPath, benchSize)
	})
	if benchErr != nil {
		b.Fatalf("benchmark data: %v", benchErr)
	}
	return benchPath, benchSize
}

var (
	benchFirst = strings.Fields(`james mary robert patricia john jennifer michael linda david elizabeth
		william barbara richard susan joseph jessica thomas sarah charles karen christopher lisa daniel
		nancy matthew betty anthony sandra mark margaret donald ashley steven kimberly andrew emily paul
		donna joshua michelle kenneth carol kevin amanda brian melissa george deborah timothy stephanie
		ahmed fatima wei li yuki hiroshi olga ivan sofia lucas emma noah amara kwame priya arjun zoe jose`)
	benchLast = strings.Fields(`smith johnson williams brown jones garcia miller davis rodriguez martinez
		hernandez lopez gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson
		white harris sanchez clark ramirez lewis robinson walker young allen king wright scott torres
		nguyen hill flores green adams nelson baker hall rivera campbell mitchell carter roberts chen
		wang kim patel singh mueller schmidt rossi dubois novak kowalski jensen larsen silva costa`)
	benchWords = strings.Fields(`the customer called about an order and asked us to update the delivery
		address please note that invoice was paid last week refund requested for damaged item follow up
		next tuesday contact prefers email over phone meeting scheduled with account manager renewal of
		subscription discussed pricing tier upgrade support ticket closed after reset of password shipped
		via express courier tracking number sent warranty claim approved replacement unit on backorder
		left voicemail no answer will try again tomorrow morning marketing consent withdrawn newsletter
		unsubscribe request processed gdpr data export requested by customer complaint escalated to team
		lead satisfied with resolution quote accepted purchase order received budget approval pending
		q3 review zone quick jazz box fix`)
	benchDisplayNames = []string{"José", "Zoë", "Ана", "李"}
)

// writeBenchFile writes exactly size bytes of NDJSON to path (via a
// temporary file and rename, so a partial file is never reused).
func writeBenchFile(path string, size int64) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".dsr-match-bench-*")
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(20240115, 42))
	const minFinal = 600 // every line is shorter than this
	var line []byte
	remaining := size
	for id := 1; ; id++ {
		line = appendBenchLine(line[:0], rng, id, -1)
		if int64(len(line))+minFinal > remaining {
			// Final line, padded to the exact remaining size.
			line = appendBenchLine(line[:0], rng, id, int(remaining))
			if _, err := w.Write(line); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			break
		}
		if _, err := w.Write(line); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		remaining -= int64(len(line))
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	return nil
}

// appendBenchLine appends one NDJSON record terminated by '\n'. If exactLen
// is positive the note is padded so the line is exactly that long.
func appendBenchLine(dst []byte, rng *rand.Rand, id, exactLen int) []byte {
	first := benchFirst[rng.IntN(len(benchFirst))]
	last := benchLast[rng.IntN(len(benchLast))]
	email := first + "." + last
	if rng.IntN(10) < 3 {
		email += strconv.Itoa(10 + rng.IntN(90))
	}
	email += "@contoso.example"
	isTarget := rng.Float64() < benchTargetRate
	targetInNote := false
	if isTarget {
		if rng.IntN(2) == 0 {
			first, last, email = "mira", "okonkwo", randomCase(rng, benchTarget)
		} else {
			targetInNote = true
		}
	}
	display := title(first) + " " + title(last)
	if rng.IntN(50) == 0 {
		display = benchDisplayNames[rng.IntN(len(benchDisplayNames))] + " " + title(last)
	}
	if rng.IntN(4) == 0 {
		email = randomCase(rng, email)
	}
	start := len(dst)
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, int64(id), 10)
	dst = append(dst, `,"name":"`...)
	dst = append(dst, display...)
	dst = append(dst, `","email":"`...)
	dst = append(dst, email...)
	dst = append(dst, `","phone":"+1 `...)
	dst = fmt.Appendf(dst, "%03d-555-%04d", 200+rng.IntN(800), rng.IntN(10000))
	dst = append(dst, `","created":"2024-`...)
	dst = fmt.Appendf(dst, "%02d-%02dT%02d:%02d:00Z", 1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60))
	dst = append(dst, `","note":"`...)
	noteStart := len(dst)
	if exactLen > 0 {
		const tail = "\"}\n"
		for len(dst)-start+len(tail) < exactLen {
			dst = append(dst, benchWords[rng.IntN(len(benchWords))]...)
			dst = append(dst, ' ')
		}
		dst = dst[:start+exactLen-len(tail)]
		return append(dst, tail...)
	}
	noteLen := 150 + rng.IntN(100)
	for len(dst)-noteStart < noteLen {
		switch r := rng.IntN(60); {
		case r == 0:
			dst = append(dst, "cc "...)
			dst = append(dst, benchFirst[rng.IntN(len(benchFirst))]...)
			dst = append(dst, "@fabrikam.example "...)
		case r == 1:
			dst = fmt.Appendf(dst, "call (425) 555-%04d ", rng.IntN(10000))
		case r == 2 && targetInNote:
			dst = append(dst, "forward to "...)
			dst = append(dst, randomCase(rng, benchTarget)...)
			dst = append(dst, ". "...)
			targetInNote = false
		default:
			dst = append(dst, benchWords[rng.IntN(len(benchWords))]...)
			dst = append(dst, ' ')
		}
	}
	if targetInNote {
		dst = append(dst, "re: "...)
		dst = append(dst, benchTarget...)
	}
	return append(dst, "\"}\n"...)
}

func title(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

func randomCase(rng *rand.Rand, s string) string {
	switch rng.IntN(3) {
	case 0:
		return s
	case 1:
		return strings.ToUpper(s)
	}
	b := []byte(s)
	for i := range b {
		if rng.IntN(2) == 0 {
			b[i] = upperByte(b[i])
		}
	}
	return string(b)
}

// benchPatterns returns n patterns: the target email first, then
// first.last<NNNN>@contoso.example addresses that share long prefixes with
// the data but never occur in it.
func benchPatterns(n int) []string {
	rng := rand.New(rand.NewPCG(7, 7))
	out := []string{benchTarget}
	for len(out) < n {
		out = append(out, fmt.Sprintf("%s.%s%04d@contoso.example",
			benchFirst[rng.IntN(len(benchFirst))], benchLast[rng.IntN(len(benchLast))], 1000+len(out)))
	}
	return out[:n]
}

// scanCount counts the lines of path matched by p, line by line.
func scanCount(path string, p *Prefilter) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		if p.Match(sc.Bytes()) {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("scan: %w", err)
	}
	return n, nil
}

var benchPatternCounts = []int{1, 1000}

// BenchmarkPrefilterScan measures a line-by-line Prefilter scan of the
// benchmark file (MB/s = file bytes / time).
func BenchmarkPrefilterScan(b *testing.B) {
	path, size := benchData(b)
	for _, n := range benchPatternCounts {
		b.Run(fmt.Sprintf("patterns=%d", n), func(b *testing.B) {
			p := NewPrefilter(benchPatterns(n))
			b.SetBytes(size)
			matched := 0
			for b.Loop() {
				var err error
				if matched, err = scanCount(path, p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(matched), "lines-matched")
		})
	}
}

// BenchmarkGrepBaseline runs grep -F -i -c on the same file, in the C locale
// (byte semantics, as Prefilter) and in C.UTF-8.
func BenchmarkGrepBaseline(b *testing.B) {
	grep, err := exec.LookPath("grep")
	if err != nil {
		b.Skip("grep not on PATH")
	}
	path, size := benchData(b)
	for _, n := range benchPatternCounts {
		var args []string
		if n == 1 {
			args = []string{"-F", "-i", "-c", "-e", benchTarget, path}
		} else {
			pf := filepath.Join(b.TempDir(), "patterns.txt")
			if err := os.WriteFile(pf, []byte(strings.Join(benchPatterns(n), "\n")+"\n"), 0o600); err != nil {
				b.Fatal(err)
			}
			args = []string{"-F", "-i", "-c", "-f", pf, path}
		}
		for _, locale := range []string{"C", "C.UTF-8"} {
			b.Run(fmt.Sprintf("patterns=%d/LC_ALL=%s", n, locale), func(b *testing.B) {
				b.SetBytes(size)
				matched := 0
				for b.Loop() {
					cmd := exec.Command(grep, args...)
					cmd.Env = append(os.Environ(), "LC_ALL="+locale)
					var stderr bytes.Buffer
					cmd.Stderr = &stderr
					out, err := cmd.Output()
					var exit *exec.ExitError
					if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
						b.Fatalf("grep: %v: %s", err, stderr.Bytes())
					}
					if matched, err = strconv.Atoi(strings.TrimSpace(string(out))); err != nil {
						b.Fatalf("grep output: %v", err)
					}
				}
				b.ReportMetric(float64(matched), "lines-matched")
			})
		}
	}
}
