package match

import (
	"bytes"
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
		t.Skip("no SIMD kernels here: IndexLineEvent answers 0")
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		b := randomText(r, r.IntN(300), "{}\"ab: \n\r\t\\&%\x85\xa0")
		if r.IntN(2) == 0 {
			// Mostly plain lines, so that the kernel runs long stretches.
			b = randomText(r, r.IntN(300), "{}\"abcd:,\n")
		}
		want := -1
		for j := range b {
			if isLineEvent(b, j) {
				want = j
				break
			}
		}
		if got := IndexLineEvent(b); got != want {
			t.Fatalf("IndexLineEvent(%q) = %d, scalar %d", b, got, want)
		}
	}
}

// TestIndexLineEventFindsEveryBlankLine: a line that bytes.TrimSpace
// empties always ends in a '\n' IndexLineEvent stops at.
func TestIndexLineEventFindsEveryBlankLine(t *testing.T) {
	if !haveKernels {
		t.Skip("no SIMD kernels here: IndexLineEvent answers 0")
	}
	plain := strings.Repeat(`{"a":"b"}`+"\n", 8)
	for _, blank := range []string{"\n", "\r\n", " \n", "\t \r\n", "\v\n", "\f\n", "\u00a0\n", "\u0085\r\n", "\u2028\n", "\u3000 \n", "\r\r\n"} {
		for _, before := range []string{"", plain, `{"x":1}` + "\r\n"} {
			b := []byte(before + blank + plain)
			j := IndexLineEvent(b)
			if j < 0 || j > len(before)+len(blank)-1 {
				t.Errorf("blank line %q after %q: IndexLineEvent = %d, want at most %d", blank, before, j, len(before)+len(blank)-1)
			}
		}
	}
	if j := IndexLineEvent([]byte(plain + strings.Replace(plain, "\n", "\r\n", -1))); j != -1 {
		t.Errorf("plain LF and CRLF lines: IndexLineEvent = %d, want -1", j)
	}
}

func TestBufferFinderAgreesWithNaive(t *testing.T) {
	if !haveKernels {
		t.Skip("no SIMD kernels here: no BufferFinder")
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		var patterns []string
		for range 1 + r.IntN(4) {
			patterns = append(patterns, string(randomText(r, r.IntN(7), "aAbB@.1")))
		}
		f := NewPrefilter(patterns).BufferFinder()
		if f == nil {
			t.Fatal("no BufferFinder for a few patterns")
		}
		buf := randomText(r, r.IntN(400), "aAbB@.1\n")
		f.Reset(buf)
		for from := 0; from <= len(buf); from += 1 + r.IntN(40) {
			if got, want := f.Index(from), naiveIndex(patterns, buf, from); got != want {
				t.Fatalf("patterns %q, buffer %q: Index(%d) = %d, want %d", patterns, buf, from, got, want)
			}
		}
	}
}

func TestBufferFinderOnlyForFewPatterns(t *testing.T) {
	if haveKernels && NewPrefilter(manyEmails(8, "x")).BufferFinder() == nil {
		t.Error("8 patterns: no BufferFinder")
	}
	if NewPrefilter(manyEmails(9, "x")).BufferFinder() != nil {
		t.Error("9 patterns (automaton): a BufferFinder")
	}
	if NewDigitsPrefilter([]string{"123"}).BufferFinder() != nil {
		t.Error("digits prefilter: a BufferFinder")
	}
}

func FuzzBufferFinder(f *testing.F) {
	f.Add("ann@x.com", []byte("{\"email\":\"ANN@X.COM\"}\nann@x.co\n"+strings.Repeat("x", 40)+"aNn@x.com"))
	f.Add("a\nbb", []byte("ABBA\nbB"))
	f.Fuzz(func(t *testing.T, patternList string, buf []byte) {
		patterns := strings.Split(patternList, "\n")
		if len(patterns) > maxSmallPatterns {
			patterns = patterns[:maxSmallPatterns]
		}
		bf := NewPrefilter(patterns).BufferFinder()
		if bf == nil {
			return
		}
		bf.Reset(buf)
		for from := 0; from <= len(buf); from += 7 {
			if got, want := bf.Index(from), naiveIndex(patterns, buf, from); got != want {
				t.Fatalf("patterns %q, buffer %q: Index(%d) = %d, want %d", patterns, buf, from, got, want)
			}
		}
		if got, want := IndexLineEvent(buf), naiveLineEvent(buf); haveKernels && got != want {
			t.Fatalf("IndexLineEvent(%q) = %d, scalar %d", buf, got, want)
		}
	})
}

func naiveLineEvent(b []byte) int {
	for j := range b {
		if isLineEvent(b, j) {
			return j
		}
	}
	return -1
}

// BenchmarkBufferSearch compares, on 1 MiB of the benchmark data held in
// memory (one read buffer), the kernels of a whole-buffer scan with the
// line-by-line prefilter they replace.
func BenchmarkBufferSearch(b *testing.B) {
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
	b.Run("lines", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			for rest := buf; len(rest) > 0; {
				i := bytes.IndexByte(rest, '\n')
				p.Match(rest[:i])
				rest = rest[i+1:]
			}
		}
	})
	if !haveKernels {
		return
	}
	b.Run("line-events", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			for from := 0; ; from++ {
				i := IndexLineEvent(buf[from:])
				if i < 0 {
					break
				}
				from += i
			}
		}
	})
	b.Run("buffer-finder", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		bf := p.BufferFinder()
		for b.Loop() {
			bf.Reset(buf)
			for from := 0; from < len(buf); from++ {
				from = bf.Index(from)
			}
		}
	})
	b.Run("count-lines", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			bytes.Count(buf, []byte{'\n'})
		}
	})
}
