package match

import "bytes"

// The kernels search a whole read buffer, 32 bytes per step with AVX2,
// for what a scan must look at: the places a pattern may occur, and the
// bytes that make a line need a look of its own (an escape mark, a line
// that may be blank). A scan that looks at every line pays a call or two
// per line; with these it pays them only around what they find. Without
// AVX2 (haveKernels false) they are not used at all.

// fingerprint is three bytes of a lower-cased pattern, at offsets off,
// off+d1 and off+d2 of it, matched ASCII case-insensitively: byte k of c
// is the lower-cased byte and byte k of m is 0x20 for a letter (so that
// b|m == c holds for both of its cases and for no other byte) or 0.
type fingerprint struct {
	off, d1, d2 int
	c, m        uint32
}

// newFingerprint picks the three consecutive bytes of pat (lower-cased,
// not empty) that are rarest together by the static byte frequencies, so
// that the kernel stops on few positions that are no occurrence. Shorter
// patterns repeat their last byte. In an email address they are taken
// from the local part when it has three bytes: the '@' is in every address
// of the data and the domain in many, so only the local part tells an
// address apart (with ".example" in every address, "xam" would stop the
// kernel on every line).
func newFingerprint(pat []byte) fingerprint {
	last := len(pat) - 3 // the last window start
	if at := bytes.IndexByte(pat, '@'); at >= 3 {
		last = at - 3
	}
	best, bestCost := 0, -1.0
	for i := 0; i == 0 || i <= last; i++ {
		cost := 1.0
		for _, c := range pat[i:min(i+3, len(pat))] {
			cost *= float64(foldedFreq(c) + 1)
		}
		if bestCost < 0 || cost < bestCost {
			best, bestCost = i, cost
		}
	}
	f := fingerprint{off: best, d1: min(1, len(pat)-1-best), d2: min(2, len(pat)-1-best)}
	for k, d := range [3]int{0, f.d1, f.d2} {
		c := pat[best+d]
		var m byte
		if 'a' <= c && c <= 'z' {
			m = 0x20
		}
		f.c |= uint32(c) << (8 * k)
		f.m |= uint32(m) << (8 * k)
	}
	return f
}

// at reports whether the fingerprint's bytes are at b[j], b[j+d1], b[j+d2].
func (f *fingerprint) at(b []byte, j int) bool {
	return b[j]|byte(f.m) == byte(f.c) &&
		b[j+f.d1]|byte(f.m>>8) == byte(f.c>>8) &&
		b[j+f.d2]|byte(f.m>>16) == byte(f.c>>16)
}

// index returns the least j with the fingerprint's bytes at b[j], b[j+d1],
// b[j+d2], or -1.
func (f *fingerprint) index(b []byte) int {
	j := 0
	if haveKernels && len(b) >= f.d2+32 {
		r := indexFold3AVX2(b, f.d1, f.d2, f.c, f.m)
		if r >= 0 {
			return r
		}
		j = ^r
	}
	for ; j+f.d2 < len(b); j++ {
		if f.at(b, j) {
			return j
		}
	}
	return -1
}

// indexLineEvent returns the index of the first byte of b, a stretch of
// NDJSON lines, that a line-skipping scan must not skip over, or -1 if
// there is none: an escape mark byte ('\\', '&', '%': the line may hide a
// pattern behind an escape, see HasEscapeMark) or a '\n' that may end a
// blank line (one that is not preceded by a printable non-space ASCII
// byte, or by '\r' preceded by one; bytes before b count as blanks). Every
// line of b whose bytes hold no such byte holds an escape mark in no shape
// and is not blank. It needs the SIMD kernels (haveKernels).
func indexLineEvent(b []byte) int {
	j := 0
	for ; j < min(2, len(b)); j++ {
		if isLineEvent(b, j) {
			return j
		}
	}
	if len(b) >= 34 {
		r := indexLineEventAVX2(b)
		if r >= 0 {
			return r
		}
		j = ^r
	}
	for ; j < len(b); j++ {
		if isLineEvent(b, j) {
			return j
		}
	}
	return -1
}

// isLineEvent is what indexLineEvent looks for, at b[j].
func isLineEvent(b []byte, j int) bool {
	switch b[j] {
	case '\\', '&', '%':
		return true
	case '\n':
		before := func(k int) byte {
			if j-k < 0 {
				return ' '
			}
			return b[j-k]
		}
		return !(printable(before(1)) || (before(1) == '\r' && printable(before(2))))
	}
	return false
}

// printable reports whether c is a printable ASCII byte other than space:
// a line that holds one is not blank.
func printable(c byte) bool { return 0x20 < c && c < 0x7f }
