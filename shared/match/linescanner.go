package match

import "bytes"

// LineScanner tells a scan of NDJSON lines which lines of a read buffer it
// must look at, so that it steps over the others in whole stretches, only
// counting them, instead of handing every line to the prefilter: the
// lines where one of a Prefilter's patterns occurs, those with an escape
// mark byte (a pattern may hide behind the escape, see HasEscapeMark) and
// those that may be blank (they are no record). Every other line is a
// record the Prefilter rejects, escape marks or not. This is ripgrep's way
// of searching whole buffers and finding line boundaries only around what
// it found; the search runs 32 bytes per step (SIMD kernels on three rare
// bytes of each pattern, see fingerprint, and on the bytes that make a
// line need a look), where a line-by-line search pays its calls on every
// line. For a single pattern one kernel does it all in one pass, counting
// the line ends on the way.
//
// It answers for one buffer at a time (Reset), about positions in
// increasing order; it is not safe for concurrent use (make one per scan).
type LineScanner struct {
	buf []byte
	// one is the single pattern's search (also for no pattern: its
	// fingerprint never matches); nil when there are several.
	one *bufferPattern
	// pats are the patterns when there are several; event is the next
	// line event at or after the last position asked about (-1: not
	// searched yet; len(buf): none).
	pats  []bufferPattern
	event int
}

type bufferPattern struct {
	pat []byte // lower-cased
	fp  fingerprint
	// next is where the next occurrence starts, at or after the last
	// position asked about (-1: not searched yet; len(buf): none).
	next int
}

// noFingerprint never matches: no byte ORed with 0x20 is 0.
var noFingerprint = fingerprint{m: 0x202020}

// LineScanner returns a new LineScanner for p's patterns, or nil when
// stepping over lines does not pay or does not apply: without SIMD
// kernels, for a digits prefilter, and for more patterns than the
// pattern-by-pattern search takes (the automaton runs line by line).
func (p *Prefilter) LineScanner() *LineScanner {
	if p == nil || !haveKernels || p.ac != nil {
		return nil
	}
	pats := make([]bufferPattern, len(p.small))
	for i := range p.small {
		pats[i] = bufferPattern{pat: p.small[i].pat, fp: newFingerprint(p.small[i].pat), next: -1}
	}
	switch len(pats) {
	case 0:
		return &LineScanner{one: &bufferPattern{fp: noFingerprint}}
	case 1:
		return &LineScanner{one: &pats[0]}
	}
	return &LineScanner{pats: pats}
}

// Reset starts answering for buf, the bytes read so far.
func (s *LineScanner) Reset(buf []byte) {
	s.buf = buf
	s.event = -1
	for i := range s.pats {
		s.pats[i].next = -1
	}
}

// Next returns the first position at or after from (a line start, no
// less than in the call before since Reset) that lies in a line the scan
// must look at, or len(buf) if there is none, and how many '\n' lie
// between from and it. So the lines lying wholly before it are records
// the scan need not look at, and there are that many of them.
func (s *LineScanner) Next(from int) (int, int) {
	if s.one != nil {
		return s.one.scan(s.buf, from)
	}
	q := len(s.buf)
	for i := range s.pats {
		p := &s.pats[i]
		if p.next < from {
			p.next = p.search(s.buf, from)
		}
		q = min(q, p.next)
	}
	if s.event < from {
		s.event = len(s.buf)
		if i := indexLineEvent(s.buf[from:]); i >= 0 {
			s.event = from + i
		}
	}
	q = min(q, s.event)
	return q, bytes.Count(s.buf[from:q], newline)
}

var newline = []byte{'\n'}

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

// scan is LineScanner.Next for a single pattern: the first line event or
// occurrence at or after from, found by one kernel that also counts the
// line ends. It returns the occurrence's fingerprint position rather than
// its start: a line that holds the occurrence holds that position too.
func (p *bufferPattern) scan(buf []byte, from int) (int, int) {
	lines := 0
	for j := from; j < len(buf); j++ {
		if j >= 2 && j+p.fp.d2+32 <= len(buf) {
			r, n := scanLinesAVX2(buf, j, p.fp.d1, p.fp.d2, p.fp.c, p.fp.m)
			lines += n
			if r < 0 {
				j = ^r
				if j >= len(buf) {
					break
				}
			} else {
				j = r
			}
		}
		if isLineEvent(buf, j) || p.occursAt(buf, from, j) {
			return j, lines
		}
		if buf[j] == '\n' {
			lines++
		}
	}
	return len(buf), lines
}

// occursAt reports whether the fingerprint is at buf[j] and the pattern
// occurs where it places it, starting at or after from.
func (p *bufferPattern) occursAt(buf []byte, from, j int) bool {
	s := j - p.fp.off
	return j+p.fp.d2 < len(buf) && p.fp.at(buf, j) && s >= from && s+len(p.pat) <= len(buf) &&
		equalFoldLower(buf[s:s+len(p.pat)], p.pat)
}
