package match

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// naiveIndex is BufferFinder.Index by brute force: the least start at or
// after from of an occurrence of a pattern in buf, or len(buf).
func naiveIndex(patterns []string, buf []byte, from int) int {
	l := asciiOnlyLower(buf)
	first := len(buf)
	for _, p := range patterns {
		if p == "" {
			continue
		}
		if i := bytes.Index(l[from:], []byte(refLower(p))); i >= 0 {
			first = min(first, from+i)
		}
	}
	return first
}

// randomText is n bytes drawn mostly from alphabet, with now and then a
// byte of any value.
func randomText(r *rand.Rand, n int, alphabet string) []byte {
	b := make([]byte, n)
	for i := range b {
		if r.IntN(50) == 0 {
			b[i] = byte(r.IntN(256))
		} else {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
	}
	return b
}

func TestFingerprintIndexAgreesWithScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		pat := []byte(refLower(string(randomText(r, 1+r.IntN(6), "aAbB@.1\n"))))
		f := newFingerprint(pat)
		b := randomText(r, r.IntN(200), "aAbB@.1\n ")
		want := -1
		for j := 0; j+f.d2 < len(b); j++ {
			if f.at(b, j) {
				want = j
				break
			}
		}
		if got := f.index(b); got != want {
			t.Fatalf("pattern %q in %q: index %d, scalar %d", pat, b, got, want)
		}
	}
}

func TestFingerprintFoldsASCIILettersOnly(t *testing.T) {
	f := newFingerprint([]byte("@a["))
	for _, tc := range []struct {
		text string
		want int
	}{
		{"xx@a[", 2}, {"xx@A[", 2}, {"xx`a[", -1}, {"xx@a{", -1}, {"xx@\xc1[", -1}, {"@a", -1},
	} {
		b := []byte(strings.Repeat(".", 40) + tc.text)
		want := tc.want
		if want >= 0 {
			want += 40
		}
		if got := f.index(b); got != want {
			t.Errorf("%q: %d, want %d", tc.text, got, want)
		}
	}
}

func TestIndexLineEventAgreesWithScalar(t *testing.T) {
	if !haveKernels {
		t.Skip("no SIMD kernels here")
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		b := randomText(r, r.IntN(300), "{}\"ab: \n\r\t\\&%\x85\xa0")
		if r.IntN(2) == 0 {
			// Mostly plain lines, so that the kernel runs long stretches.
			b = randomText(r, r.IntN(300), "{}\"abcd:,\n")
		}
		if got, want := indexLineEvent(b), naiveLineEvent(b); got != want {
			t.Fatalf("indexLineEvent(%q) = %d, scalar %d", b, got, want)
		}
	}
}

// TestIndexLineEventFindsEveryBlankLine: a line that bytes.TrimSpace
// empties always ends in a '\n' indexLineEvent stops at.
func TestIndexLineEventFindsEveryBlankLine(t *testing.T) {
	if !haveKernels {
		t.Skip("no SIMD kernels here")
	}
	plain := strings.Repeat(`{"a":"b"}`+"\n", 8)
	for _, blank := range []string{"\n", "\r\n", " \n", "\t \r\n", "\v\n", "\f\n", "\u00a0\n", "\u0085\r\n", "\u2028\n", "\u3000 \n", "\r\r\n"} {
		for _, before := range []string{"", plain, `{"x":1}` + "\r\n"} {
			b := []byte(before + blank + plain)
			j := indexLineEvent(b)
			if j < 0 || j > len(before)+len(blank)-1 {
				t.Errorf("blank line %q after %q: indexLineEvent = %d, want at most %d", blank, before, j, len(before)+len(blank)-1)
			}
		}
	}
	if j := indexLineEvent([]byte(plain + strings.Replace(plain, "\n", "\r\n", -1))); j != -1 {
		t.Errorf("plain LF and CRLF lines: indexLineEvent = %d, want -1", j)
	}
}

func naiveLineEvent(b []byte) int {
	for j := range b {
		if isLineEvent(b, j) {
			return j
		}
	}
	return -1
}

// checkNext checks LineScanner.Next(from) on buf (from a line start)
// against brute force: the lines wholly before its answer are records the
// prefilter rejects (not blank, no pattern, no escape mark), their count
// is right, and the answer lies in a line of interest or in an occurrence
// (so that the scan is not sent to look at lines for nothing).
func checkNext(t *testing.T, patterns []string, s *LineScanner, buf []byte, from int) int {
	t.Helper()
	q, lines := s.Next(from)
	if q < from || q > len(buf) {
		t.Fatalf("patterns %q, buffer %q: Next(%d) = %d", patterns, buf, from, q)
	}
	if want := bytes.Count(buf[from:q], []byte{'\n'}); lines != want {
		t.Fatalf("patterns %q, buffer %q: Next(%d) = %d with %d lines, want %d lines", patterns, buf, from, q, lines, want)
	}
	// A line of interest: blank (or, by the kernel's cheap test, maybe
	// blank), with an escape mark byte, or holding a pattern.
	interesting := func(ls, le int) bool {
		line := buf[ls:le]
		return naiveLineEvent(line) >= 0 || naiveMatch(patterns, line) ||
			(le > 0 && buf[le-1] == '\n' && isLineEvent(buf, le-1))
	}
	ls := from
	for {
		i := bytes.IndexByte(buf[ls:], '\n')
		if i < 0 || ls+i >= q {
			break
		}
		if interesting(ls, ls+i+1) {
			t.Fatalf("patterns %q, buffer %q: Next(%d) = %d steps over line %q", patterns, buf, from, q, buf[ls:ls+i+1])
		}
		ls += i + 1
	}
	if q == len(buf) {
		return q
	}
	le := len(buf)
	if i := bytes.IndexByte(buf[q:], '\n'); i >= 0 {
		le = q + i + 1
	}
	if interesting(ls, le) {
		return q
	}
	for _, p := range patterns {
		for st := max(from, q-len(p)+1); p != "" && st <= q && st+len(p) <= len(buf); st++ {
			if naiveMatch([]string{p}, buf[st:st+len(p)]) {
				return q
			}
		}
	}
	t.Fatalf("patterns %q, buffer %q: Next(%d) = %d, in the uninteresting line %q", patterns, buf, from, q, buf[ls:le])
	return q
}

func TestLineScannerAgreesWithBruteForce(t *testing.T) {
	if !haveKernels {
		t.Skip("no SIMD kernels here: no LineScanner")
	}
	r := rand.New(rand.NewPCG(5, 6))
	for iter := range 4000 {
		var patterns []string
		for range iter % 4 {
			patterns = append(patterns, string(randomText(r, r.IntN(7), "aAbB@.1")))
		}
		s := NewPrefilter(patterns).LineScanner()
		if s == nil {
			t.Fatal("no LineScanner for a few patterns")
		}
		alphabet := "aAbB@.1\n"
		if r.IntN(2) == 0 {
			alphabet = "aAbB@.1{}\n\r \\&%"
		}
		buf := randomText(r, r.IntN(400), alphabet)
		s.Reset(buf)
		for from := 0; from < len(buf); {
			q := checkNext(t, patterns, s, buf, from)
			// Go on after the line of q, as a scan does.
			i := bytes.IndexByte(buf[q:], '\n')
			if i < 0 {
				break
			}
			from = q + i + 1
		}
	}
}

func TestPatternSearchAgreesWithNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 3000 {
		pat := string(randomText(r, 1+r.IntN(6), "aAbB@.1"))
		p := bufferPattern{pat: []byte(refLower(pat)), fp: newFingerprint([]byte(refLower(pat)))}
		buf := randomText(r, r.IntN(300), "aAbB@.1\n")
		for from := 0; from <= len(buf); from += 1 + r.IntN(30) {
			if got, want := p.search(buf, from), naiveIndex([]string{pat}, buf, from); got != want {
				t.Fatalf("pattern %q, buffer %q: search(%d) = %d, want %d", pat, buf, from, got, want)
			}
		}
	}
}

func TestLineScannerOnlyForFewPatterns(t *testing.T) {
	if haveKernels && NewPrefilter(manyEmails(8, "x")).LineScanner() == nil {
		t.Error("8 patterns: no LineScanner")
	}
	if NewPrefilter(manyEmails(9, "x")).LineScanner() != nil {
		t.Error("9 patterns (automaton): a LineScanner")
	}
	if NewDigitsPrefilter([]string{"123"}).LineScanner() != nil {
		t.Error("digits prefilter: a LineScanner")
	}
}

func FuzzLineScanner(f *testing.F) {
	f.Add("ann@x.com", []byte("{\"email\":\"ANN@X.COM\"}\nann@x.co\n"+strings.Repeat("x", 40)+"aNn@x.com"))
	f.Add("a\nbb", []byte("ABBA\nbB\n\n \r\n%41"))
	f.Fuzz(func(t *testing.T, patternList string, buf []byte) {
		patterns := strings.Split(patternList, "\n")
		if len(patterns) > maxSmallPatterns {
			patterns = patterns[:maxSmallPatterns]
		}
		s := NewPrefilter(patterns).LineScanner()
		if s == nil {
			return
		}
		s.Reset(buf)
		for from := 0; from < len(buf); {
			q := checkNext(t, patterns, s, buf, from)
			i := bytes.IndexByte(buf[q:], '\n')
			if i < 0 {
				break
			}
			from = q + i + 1
		}
		if got, want := indexLineEvent(buf), naiveLineEvent(buf); got != want {
			t.Fatalf("indexLineEvent(%q) = %d, scalar %d", buf, got, want)
		}
	})
}

// BenchmarkBufferSearch compares, on 1 MiB of the benchmark data held in
// memory (one read buffer, searched bufferPasses times per op so that make
// bench's -benchtime 3x means something), the kernels of a whole-buffer
// scan with the line-by-line prefilter they replace.
func BenchmarkBufferSearch(b *testing.B) {
	const bufferPasses = 64
	path, _ := benchData(b)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	n, err := io.ReadFull(f, buf)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	buf = buf[:bytes.LastIndexByte(buf[:n], '\n')+1]
	p := NewPrefilter([]string{benchTarget})
	run := func(name string, pass func()) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(bufferPasses * int64(len(buf)))
			for b.Loop() {
				for range bufferPasses {
					pass()
				}
			}
		})
	}
	run("lines", func() {
		for rest := buf; len(rest) > 0; {
			i := bytes.IndexByte(rest, '\n')
			p.Match(rest[:i])
			rest = rest[i+1:]
		}
	})
	if !haveKernels {
		return
	}
	run("line-events", func() {
		for from := 0; ; from++ {
			i := indexLineEvent(buf[from:])
			if i < 0 {
				break
			}
			from += i
		}
	})
	for _, pats := range [][]string{nil, {benchTarget}, {benchTarget, "CU0049201"}} {
		s := NewPrefilter(pats).LineScanner()
		run(fmt.Sprintf("line-scanner/patterns=%d", len(pats)), func() {
			s.Reset(buf)
			for from := 0; from < len(buf); {
				q, _ := s.Next(from)
				i := bytes.IndexByte(buf[q:], '\n')
				if i < 0 {
					break
				}
				from = q + i + 1
			}
		})
	}
	run("count-lines", func() { bytes.Count(buf, newline) })
}
