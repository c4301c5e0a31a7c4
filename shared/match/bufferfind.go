package match

// BufferFinder finds where a Prefilter's patterns occur in a whole buffer
// of many lines, so that a scan hands only the lines around them to the
// prefilter instead of every line: the search runs 32 bytes per step over
// the buffer (a SIMD kernel on three rare bytes of each pattern, see
// fingerprint), where a line-by-line search pays its calls on every line.
// It answers for one buffer at a time (Reset), about positions in
// increasing order; it is not safe for concurrent use (make one per scan).
type BufferFinder struct {
	pats []bufferPattern
	buf  []byte
}

type bufferPattern struct {
	pat []byte // lower-cased
	fp  fingerprint
	// next is where the next occurrence starts, at or after the last
	// position asked about (-1: not searched yet; len(buf): none).
	next int
}

// BufferFinder returns a new BufferFinder for p's patterns, or nil when
// whole-buffer search does not pay or does not apply: without SIMD
// kernels, for a digits prefilter, and for more patterns than the
// pattern-by-pattern search takes (the automaton runs line by line).
func (p *Prefilter) BufferFinder() *BufferFinder {
	if p == nil || !haveKernels || p.ac != nil {
		return nil
	}
	f := &BufferFinder{pats: make([]bufferPattern, len(p.small))}
	for i := range p.small {
		f.pats[i] = bufferPattern{pat: p.small[i].pat, fp: newFingerprint(p.small[i].pat), next: -1}
	}
	return f
}

// Reset starts answering for buf.
func (f *BufferFinder) Reset(buf []byte) {
	f.buf = buf
	for i := range f.pats {
		f.pats[i].next = -1
	}
}

// Index returns where in buf the first occurrence at or after from of any
// pattern starts (ASCII case-insensitively, as Prefilter.Match decides),
// or len(buf) if none does. Calls must ask about non-decreasing from.
func (f *BufferFinder) Index(from int) int {
	first := len(f.buf)
	for i := range f.pats {
		p := &f.pats[i]
		if p.next < from {
			p.next = p.search(f.buf, from)
		}
		first = min(first, p.next)
	}
	return first
}

// search returns where the first occurrence of the pattern at or after
// from starts, or len(buf).
func (p *bufferPattern) search(buf []byte, from int) int {
	n := len(p.pat)
	for s := from; s+n <= len(buf); s++ {
		// The fingerprint of an occurrence at s is at s+off; none past
		// buf[len(buf)-n+off] starts an occurrence that fits.
		j := p.fp.index(buf[s+p.fp.off : len(buf)-n+p.fp.off+p.fp.d2+1])
		if j < 0 {
			break
		}
		s += j
		if equalFoldLower(buf[s:s+n], p.pat) {
			return s
		}
	}
	return len(buf)
}
