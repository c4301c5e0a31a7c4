package match

import (
	"bytes"
	"math"
)

// maxSmallPatterns is the largest pattern count searched pattern by pattern;
// above it the Prefilter uses an Aho–Corasick automaton.
const maxSmallPatterns = 8

// Prefilter is a multi-pattern, ASCII case-insensitive byte search used to
// reject lines that cannot match before any JSON/CSV parsing. Safe for
// concurrent use after construction.
//
// For up to 8 distinct patterns each pattern is searched on its own,
// anchored on its rarest byte (by a static English/JSON byte-frequency
// table) with bytes.IndexByte on both letter cases and verified around each
// hit. For more patterns a dense Aho–Corasick DFA over case-folded byte
// classes is used, whose memory is about 4 bytes × states × distinct
// pattern bytes (about 4 MB for 1000 email addresses).
type Prefilter struct {
	small []anchoredPattern
	ac    *automaton
}

// NewPrefilter builds a prefilter for patterns (empty patterns are ignored).
// With no patterns, Match always returns false. It panics if the patterns
// are so large that the automaton would need more than 2^31 table entries.
func NewPrefilter(patterns []string) *Prefilter {
	pats := uniqueLowered(patterns)
	return newPrefilter(pats, len(pats) > maxSmallPatterns)
}

// newPrefilter builds either implementation for lower-cased, de-duplicated
// non-empty patterns; tests use it to force one.
func newPrefilter(pats [][]byte, useAutomaton bool) *Prefilter {
	if len(pats) == 0 {
		return &Prefilter{}
	}
	if useAutomaton {
		return &Prefilter{ac: newAutomaton(pats)}
	}
	small := make([]anchoredPattern, len(pats))
	for i, p := range pats {
		small[i] = newAnchoredPattern(p)
	}
	return &Prefilter{small: small}
}

// Match reports whether line contains any pattern, ASCII case-insensitively.
// A nil or zero Prefilter matches nothing.
func (p *Prefilter) Match(line []byte) bool {
	if p == nil {
		return false
	}
	if p.ac != nil {
		return p.ac.match(line)
	}
	for i := range p.small {
		if p.small[i].match(line) {
			return true
		}
	}
	return false
}

// AppendDigits appends the ASCII digits of line to dst and returns the
// extended slice. It is a helper for phone prefilters: search the digits of
// a line for the digits of a number, whatever its punctuation.
func AppendDigits(dst, line []byte) []byte {
	for _, c := range line {
		if '0' <= c && c <= '9' {
			dst = append(dst, c)
		}
	}
	return dst
}

// uniqueLowered returns the non-empty patterns, ASCII lower-cased and
// de-duplicated, in first-seen order.
func uniqueLowered(patterns []string) [][]byte {
	seen := make(map[string]struct{}, len(patterns))
	out := make([][]byte, 0, len(patterns))
	for _, p := range patterns {
		if p == "" {
			continue
		}
		l := asciiLower(p)
		if _, dup := seen[l]; dup {
			continue
		}
		seen[l] = struct{}{}
		out = append(out, []byte(l))
	}
	return out
}

// anchoredPattern is one lower-cased pattern searched by its rarest byte.
type anchoredPattern struct {
	pat    []byte // lower-cased
	anchor int    // offset of the anchor byte in pat
	lo, up byte   // anchor byte in lower and upper case (equal if not a letter)
}

func newAnchoredPattern(pat []byte) anchoredPattern {
	best := 0
	for i := 1; i < len(pat); i++ {
		if foldedFreq(pat[i]) < foldedFreq(pat[best]) {
			best = i
		}
	}
	return anchoredPattern{pat: pat, anchor: best, lo: pat[best], up: upperByte(pat[best])}
}

// match searches line for the pattern. The anchor byte is located with
// bytes.IndexByte; for letters both cases are searched and the next
// position of each is cached, so the scan stays linear.
func (a *anchoredPattern) match(line []byte) bool {
	n := len(a.pat)
	if n > len(line) {
		return false
	}
	// hay[i] is the anchor byte of a pattern occurrence starting at line[i].
	hay := line[a.anchor : len(line)-n+a.anchor+1]
	if a.lo == a.up {
		for i := 0; i < len(hay); {
			k := bytes.IndexByte(hay[i:], a.lo)
			if k < 0 {
				return false
			}
			i += k
			if equalFoldLower(line[i:i+n], a.pat) {
				return true
			}
			i++
		}
		return false
	}
	nextLo, nextUp := -1, -1
	for i := 0; i < len(hay); {
		if nextLo < i {
			nextLo = len(hay)
			if k := bytes.IndexByte(hay[i:], a.lo); k >= 0 {
				nextLo = i + k
			}
		}
		if nextUp < i {
			nextUp = len(hay)
			if k := bytes.IndexByte(hay[i:], a.up); k >= 0 {
				nextUp = i + k
			}
		}
		i = min(nextLo, nextUp)
		if i == len(hay) {
			return false
		}
		if equalFoldLower(line[i:i+n], a.pat) {
			return true
		}
		i++
	}
	return false
}

// equalFoldLower reports whether b equals the lower-cased pat under ASCII
// case folding. len(b) must equal len(pat).
func equalFoldLower(b, pat []byte) bool {
	b = b[:len(pat)]
	for i, c := range pat {
		if lowerTable[b[i]] != c {
			return false
		}
	}
	return true
}

// foldedFreq is the combined frequency of c in both letter cases.
func foldedFreq(c byte) int {
	f := int(byteFreq[c])
	if u := upperByte(c); u != c {
		f += int(byteFreq[u])
	}
	return f
}

// byteFreq is an approximate frequency (per 10,000 bytes) of each byte in
// English text mixed with JSON/CSV punctuation and contact data. Only the
// ranking matters. Unlisted bytes (controls, non-ASCII) count as rare.
var byteFreq = [256]uint16{
	' ': 1500, '"': 600, ':': 200, ',': 200, '.': 130, '-': 60, '\n': 30,
	'{': 30, '}': 30, '@': 25, '_': 20, '\'': 20, '/': 15, '(': 10, ')': 10,
	'+': 10, '[': 5, ']': 5, '!': 5, '?': 5, ';': 5, '=': 3, '&': 3, '#': 3,
	'\\': 3, '\t': 3, '%': 2, '*': 2, '$': 2, '<': 2, '>': 2, '|': 1, '~': 1,
	'^': 1, '`': 1,
	'0': 100, '1': 100, '2': 90, '3': 80, '4': 80, '5': 80, '6': 75, '7': 75,
	'8': 75, '9': 75,
	'e': 900, 't': 650, 'a': 580, 'o': 540, 'i': 500, 'n': 480, 's': 450,
	'r': 430, 'h': 400, 'd': 300, 'l': 290, 'c': 200, 'u': 200, 'm': 170,
	'w': 160, 'f': 150, 'g': 140, 'y': 140, 'p': 135, 'b': 105, 'v': 70,
	'k': 55, 'j': 12, 'x': 12, 'q': 8, 'z': 6,
	'E': 40, 'T': 60, 'A': 50, 'O': 25, 'I': 45, 'N': 25, 'S': 50, 'R': 30,
	'H': 25, 'D': 30, 'L': 25, 'C': 40, 'U': 10, 'M': 40, 'W': 25, 'F': 20,
	'G': 20, 'Y': 10, 'P': 30, 'B': 25, 'V': 8, 'K': 10, 'J': 15, 'X': 2,
	'Q': 2, 'Z': 2,
}

// automaton is a dense Aho–Corasick DFA. Input bytes are mapped to
// equivalence classes (both cases of a letter share a class; bytes absent
// from every pattern share class 0). States are numbered breadth-first so
// the hot shallow states are contiguous, and transition entries hold the
// target state pre-multiplied by the class count; a negative entry means
// "a pattern ends here".
type automaton struct {
	class  [256]uint8
	trans  []int32
	nclass int
	maxLen int // longest pattern
}

func newAutomaton(pats [][]byte) *automaton {
	a := &automaton{}
	nclass := 1
	for _, p := range pats {
		for _, c := range p {
			if a.class[c] == 0 {
				a.class[c] = uint8(nclass)
				nclass++
			}
		}
	}
	for c := 'a'; c <= 'z'; c++ {
		a.class[c-'a'+'A'] = a.class[c]
	}
	a.nclass = nclass
	for _, p := range pats {
		a.maxLen = max(a.maxLen, len(p))
	}

	// Trie: goto[s*nclass+cls] = child or -1.
	total := 1
	for _, p := range pats {
		total += len(p)
	}
	if total*nclass > math.MaxInt32 {
		// Pre-multiplied int32 state ids would overflow (the table would
		// need more than 8 GB anyway).
		panic("match: Prefilter patterns too large for the automaton")
	}
	gotoT := make([]int32, nclass, total*nclass)
	for i := range gotoT {
		gotoT[i] = -1
	}
	terminal := []bool{false}
	for _, p := range pats {
		s := 0
		for _, c := range p {
			idx := s*nclass + int(a.class[c])
			if gotoT[idx] < 0 {
				ns := len(terminal)
				terminal = append(terminal, false)
				for range nclass {
					gotoT = append(gotoT, -1)
				}
				gotoT[idx] = int32(ns)
			}
			s = int(gotoT[idx])
		}
		terminal[s] = true
	}
	nstates := len(terminal)

	// Breadth-first: failure links, output propagation and completion of
	// the goto function into a DFA.
	fail := make([]int32, nstates)
	order := make([]int32, 0, nstates)
	order = append(order, 0)
	for c := range nclass {
		if child := gotoT[c]; child < 0 {
			gotoT[c] = 0
		} else {
			fail[child] = 0
			order = append(order, child)
		}
	}
	for qi := 1; qi < len(order); qi++ {
		s := int(order[qi])
		f := int(fail[s])
		terminal[s] = terminal[s] || terminal[f]
		for c := range nclass {
			idx := s*nclass + c
			if child := gotoT[idx]; child < 0 {
				gotoT[idx] = gotoT[f*nclass+c]
			} else {
				fail[child] = gotoT[f*nclass+c]
				order = append(order, child)
			}
		}
	}

	// Renumber in BFS order and pre-multiply.
	newID := make([]int32, nstates)
	for i, s := range order {
		newID[s] = int32(i)
	}
	a.trans = make([]int32, nstates*nclass)
	for _, s := range order {
		row := int(newID[s]) * nclass
		for c := range nclass {
			t := gotoT[int(s)*nclass+c]
			if terminal[t] {
				a.trans[row+c] = -1
			} else {
				a.trans[row+c] = newID[t] * int32(nclass)
			}
		}
	}
	return a
}

// match runs the DFA over line. A DFA step is one dependent load, so the
// loop is bound by load latency; long lines are therefore split into two
// halves that overlap by maxLen-1 bytes and are run as two independent
// interleaved streams (every occurrence lies entirely inside one of them).
func (a *automaton) match(line []byte) bool {
	if len(line) < 4*a.maxLen {
		return a.matchFrom(0, line)
	}
	half := len(line) / 2
	x, y := line[:half+a.maxLen-1], line[half:]
	n := min(len(x), len(y))
	x, xrest := x[:n], x[n:]
	y, yrest := y[:n], y[n:]
	trans, class := a.trans, &a.class
	sx, sy := int32(0), int32(0)
	for i := range x {
		sx = trans[sx+int32(class[x[i]])]
		sy = trans[sy+int32(class[y[i]])]
		if sx|sy < 0 {
			return true
		}
	}
	return a.matchFrom(sx, xrest) || a.matchFrom(sy, yrest)
}

// matchFrom runs the DFA over line starting in state s.
func (a *automaton) matchFrom(s int32, line []byte) bool {
	trans, class := a.trans, &a.class
	for _, c := range line {
		s = trans[s+int32(class[c])]
		if s < 0 {
			return true
		}
	}
	return false
}
