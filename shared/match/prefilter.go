package match

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
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
//
// A Prefilter made by NewDigitsPrefilter searches the digits of a line
// instead (see there).
type Prefilter struct {
	small []anchoredPattern
	ac    *automaton
	// orig[u] lists the indices, in the patterns given to the constructor,
	// of unique pattern u (nil: u itself).
	orig [][]int
}

// NewPrefilter builds a prefilter for patterns (empty patterns are ignored).
// With no patterns, Match always returns false. It panics if the patterns
// are so large that the automaton would need more than 2^31 table entries.
func NewPrefilter(patterns []string) *Prefilter {
	pats, orig := uniqueLoweredIndexed(patterns)
	p := newPrefilter(pats, len(pats) > maxSmallPatterns)
	p.orig = orig
	return p
}

// NewDigitsPrefilter builds a prefilter that searches the ASCII digits of a
// line for patterns of digits, skipping every other byte of the line: it
// matches where AppendDigits(nil, line) contains a pattern, without
// building that slice. Non-digit bytes of the patterns are dropped
// ("+1 425-555-0100" is the pattern "14255550100"); patterns without digits
// are ignored. It is meant for phone numbers, whose digits a line may
// separate with spaces, dashes or brackets. It always uses the automaton
// (one table step per byte of the line).
func NewDigitsPrefilter(patterns []string) *Prefilter {
	digits := make([]string, len(patterns))
	for i, p := range patterns {
		digits[i] = string(AppendDigits(nil, []byte(p)))
	}
	pats, orig := uniqueLoweredIndexed(digits)
	if len(pats) == 0 {
		return &Prefilter{}
	}
	return &Prefilter{ac: newAutomaton(pats, true), orig: orig}
}

// newPrefilter builds either implementation for lower-cased, de-duplicated
// non-empty patterns; tests use it to force one.
func newPrefilter(pats [][]byte, useAutomaton bool) *Prefilter {
	if len(pats) == 0 {
		return &Prefilter{}
	}
	if useAutomaton {
		return &Prefilter{ac: newAutomaton(pats, false)}
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

// AppendMatches appends to dst the index, in the patterns given to the
// constructor, of every pattern that line contains (as Match decides) and
// returns the extended slice. Each index is appended once, in increasing
// order; patterns that are equal after ASCII lower-casing (or, for a digits
// prefilter, after dropping non-digits) match together. It finds every
// occurrence rather than the first, so it is slower than Match: call it on
// the lines Match accepted, to learn which patterns they hold. It allocates
// only to grow dst.
func (p *Prefilter) AppendMatches(dst []int, line []byte) []int {
	if p == nil {
		return dst
	}
	start := len(dst)
	add := func(u int) {
		if p.orig == nil {
			dst = append(dst, u)
		} else {
			dst = append(dst, p.orig[u]...)
		}
	}
	if p.ac != nil {
		s := int32(0)
		trans, class, out := p.ac.trans, &p.ac.class, p.ac.out
		nclass := int32(p.ac.nclass)
		for _, c := range line {
			s = trans[s+int32(class[c])]
			if s < 0 {
				s = ^s
				for _, u := range out[s/nclass] {
					add(int(u))
				}
			}
		}
	} else {
		for u := range p.small {
			if p.small[u].match(line) {
				add(u)
			}
		}
	}
	found := dst[start:]
	if len(found) > 1 {
		slices.Sort(found)
		dst = dst[:start+len(slices.Compact(found))]
	}
	return dst
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
	pats, _ := uniqueLoweredIndexed(patterns)
	return pats
}

// uniqueLoweredIndexed is uniqueLowered that also returns, for each unique
// pattern, the indices of the patterns it stands for.
func uniqueLoweredIndexed(patterns []string) ([][]byte, [][]int) {
	seen := make(map[string]int, len(patterns))
	out := make([][]byte, 0, len(patterns))
	var orig [][]int
	for i, p := range patterns {
		if p == "" {
			continue
		}
		l := asciiLower(p)
		if u, dup := seen[l]; dup {
			orig[u] = append(orig[u], i)
			continue
		}
		seen[l] = len(out)
		out = append(out, []byte(l))
		orig = append(orig, []int{i})
	}
	return out, orig
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
		if anchorCost(pat[i]) < anchorCost(pat[best]) {
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

// anchorCost is the cost of searching for c as an anchor: its frequency in
// both letter cases, doubled for a letter, whose two cases take two
// searches.
func anchorCost(c byte) int {
	if upperByte(c) != c {
		return 2 * foldedFreq(c)
	}
	return foldedFreq(c)
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
// target state pre-multiplied by the class count; a negative entry ^t means
// "a pattern ends here, in state t".
//
// In digits mode (NewDigitsPrefilter) every non-digit byte falls into one
// extra class whose transitions leave the state as it is.
type automaton struct {
	class  [256]uint8
	trans  []int32
	nclass int
	maxLen int // longest pattern
	digits bool
	// out[s] lists the unique patterns that end in state s (by state
	// number, not pre-multiplied); nil for non-final states.
	out [][]int32
	// anchors, when set, are bytes one of which every pattern holds (both
	// cases of a letter), rare enough that running the DFA only near them
	// beats running it over every byte.
	anchors []byte
	// reach is how far the window around an anchor byte reaches: from
	// reach[0] bytes before it to reach[1] bytes after it (excluded). It
	// is the same for every anchor so that windows start in the order of
	// their anchors.
	reach [2]int
	// keys, if set, rules out most anchor occurrences before their window
	// is run.
	keys *keyFilter
}

// maxAnchors is the most anchor byte values an automaton searches for;
// each costs one bytes.IndexByte pass over the line.
const maxAnchors = 4

// maxAnchorCover is the largest expected share of line bytes that anchor
// windows may cover (by the static byte frequencies) for anchors to be
// used.
const maxAnchorCover = 0.5

// newAutomaton builds the DFA of lower-cased, de-duplicated, non-empty
// patterns; with digits set the patterns must be ASCII digits only and
// non-digit input bytes are skipped.
func newAutomaton(pats [][]byte, digits bool) *automaton {
	a := &automaton{digits: digits}
	nclass := 1
	for _, p := range pats {
		for _, c := range p {
			if a.class[c] == 0 {
				a.class[c] = uint8(nclass)
				nclass++
			}
		}
	}
	skip := -1
	if digits {
		skip = nclass
		nclass++
		for c := range a.class {
			if c < '0' || c > '9' {
				a.class[c] = uint8(skip)
			}
		}
	} else {
		for c := 'a'; c <= 'z'; c++ {
			a.class[c-'a'+'A'] = a.class[c]
		}
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
	ends := map[int32]int32{} // trie node -> the pattern ending there
	for u, p := range pats {
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
		ends[int32(s)] = int32(u)
	}
	nstates := len(terminal)

	// Breadth-first: failure links, output propagation and completion of
	// the goto function into a DFA. out[s] is the patterns ending at s and
	// those of its failure state (which is shallower, so done before s).
	fail := make([]int32, nstates)
	out := make([][]int32, nstates)
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
		if terminal[s] {
			if u, ok := ends[int32(s)]; ok {
				out[s] = append(out[s], u)
			}
			out[s] = append(out[s], out[f]...)
		}
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
	a.out = make([][]int32, nstates)
	for _, s := range order {
		row := int(newID[s]) * nclass
		for c := range nclass {
			t := gotoT[int(s)*nclass+c]
			switch {
			case c == skip:
				// A skipped byte leaves the state (even a final one) as
				// it is; a match is reported on the digit that ends it.
				a.trans[row+c] = int32(row)
			case terminal[t]:
				a.trans[row+c] = ^(newID[t] * int32(nclass))
			default:
				a.trans[row+c] = newID[t] * int32(nclass)
			}
		}
		a.out[newID[s]] = out[s]
	}
	if !digits {
		a.anchors, a.reach = chooseAnchors(pats)
		if a.anchors != nil {
			a.keys = newKeyFilter(pats, a.anchors)
		}
	}
	return a
}

// keyFilter is a set (a bitmap of hashes, so with false positives) of the
// bytes around the anchor of every pattern: the "before" bytes before its
// first byte of the anchor byte value that covers it, and the n-before
// bytes from there on (the anchor included), ASCII case-folded. An anchor
// occurrence in a line whose bytes around it are not in the set starts no
// occurrence of any pattern, so its window need not be run.
type keyFilter struct {
	before, n int
	shift     uint // 64 - log2(bitmap bits)
	bits      []uint64
}

// maxKeyBytes is the most bytes a key holds on either side of the anchor.
const maxKeyBytes = 4

// newKeyFilter builds the key filter of the patterns covered by anchors (in
// the order chooseAnchors chose them, both cases of a letter listed), or
// returns nil if some pattern leaves too few bytes around its anchor for a
// key to tell patterns apart.
func newKeyFilter(pats [][]byte, anchors []byte) *keyFilter {
	pos := make([]int, len(pats)) // offset of each pattern's covering anchor
	before, after := maxKeyBytes, maxKeyBytes
	for i, p := range pats {
		pos[i] = -1
		for _, b := range anchors {
			if j := bytes.IndexByte(p, b); j >= 0 {
				pos[i] = j
				break
			}
		}
		if pos[i] < 0 {
			return nil // cannot happen: every pattern holds an anchor
		}
		before = min(before, pos[i])
		after = min(after, len(p)-pos[i])
	}
	if before+after < 3 {
		return nil
	}
	f := &keyFilter{before: before, n: before + after}
	logBits := 12
	for 1<<logBits < 64*len(pats) && logBits < 24 {
		logBits++
	}
	f.shift = uint(64 - logBits)
	f.bits = make([]uint64, 1<<logBits/64)
	for i, p := range pats {
		h := f.hash(p[pos[i]-before : pos[i]-before+f.n])
		f.bits[h/64] |= 1 << (h % 64)
	}
	return f
}

// hash maps the case-folded key bytes k (f.n of them) to a bit of the map.
func (f *keyFilter) hash(k []byte) uint64 {
	var v uint64
	for _, c := range k[:f.n] {
		v = v<<8 | uint64(lowerTable[c])
	}
	return (v * 0x9e3779b97f4a7c15) >> f.shift
}

// mayStart reports whether the anchor at line[q] may be the covering
// anchor of a pattern occurrence.
func (f *keyFilter) mayStart(line []byte, q int) bool {
	lo := q - f.before
	if lo < 0 || lo+f.n > len(line) {
		return false // no pattern has its anchor there
	}
	h := f.hash(line[lo:])
	return f.bits[h/64]&(1<<(h%64)) != 0
}

// chooseAnchors picks bytes such that every pattern holds one of them
// (greedy set cover, cheapest by static frequency first, a letter costing
// two searches), and how far the window around them must reach to hold
// the patterns: a pattern whose first anchor byte (of the one that covers
// it) is at offset j needs j bytes before the anchor and len-j from it on.
// It returns nil if that takes more than maxAnchors byte values or the
// windows would cover too much of a line by the static frequencies.
func chooseAnchors(pats [][]byte) ([]byte, [2]int) {
	cost := func(c byte) float64 {
		if u := upperByte(c); u != c {
			return 2 * float64(foldedFreq(c)+1)
		}
		return float64(foldedFreq(c) + 1)
	}
	covered := make([]bool, len(pats))
	left := len(pats)
	var anchors []byte
	var reach [2]int
	freq := 0
	for left > 0 {
		var count [256]int
		for i, p := range pats {
			if covered[i] {
				continue
			}
			var seen [256]bool
			for _, c := range p {
				if !seen[c] {
					seen[c] = true
					count[c]++
				}
			}
		}
		best, bestScore := -1, 0.0
		for c := range 256 {
			if count[c] == 0 {
				continue
			}
			if score := float64(count[c]) / cost(byte(c)); score > bestScore {
				best, bestScore = c, score
			}
		}
		b := byte(best)
		for i, p := range pats {
			if j := bytes.IndexByte(p, b); !covered[i] && j >= 0 {
				covered[i] = true
				left--
				reach[0] = max(reach[0], j)
				reach[1] = max(reach[1], len(p)-j)
			}
		}
		anchors = append(anchors, b)
		if u := upperByte(b); u != b {
			anchors = append(anchors, u)
		}
		freq += foldedFreq(b)
		if len(anchors) > maxAnchors || float64(freq)/10000*float64(reach[0]+reach[1]) > maxAnchorCover {
			return nil, [2]int{}
		}
	}
	return anchors, reach
}

// match runs the DFA over line. A DFA step is one dependent load, so the
// loop is bound by load latency; three ways keep the steps few or fast:
//
//   - In digits mode only the digits of the line are stepped (the others
//     leave the state as it is); they are found eight bytes at a time.
//   - With anchors, only windows around the anchor bytes are run.
//   - Otherwise long lines are split into two halves that overlap by
//     maxLen-1 bytes and are run as two independent interleaved streams
//     (every occurrence lies entirely inside one of them).
func (a *automaton) match(line []byte) bool {
	if a.digits {
		return a.matchDigits(line)
	}
	if a.anchors != nil {
		return a.matchAnchored(line)
	}
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

// matchAnchored runs the DFA over the windows of line around the anchor
// bytes. Every pattern holds an anchor byte, and the window around it
// reaches as far as the patterns it covers, so an occurrence lies inside
// the window of its first anchor byte; the key filter skips the anchors
// whose neighbourhood is no pattern's. Overlapping windows
// are run as one stretch; a new stretch starts in the root state.
func (a *automaton) matchAnchored(line []byte) bool {
	n := len(line)
	var next [maxAnchors]int
	for k := range a.anchors {
		next[k] = -1
	}
	trans, class := a.trans, &a.class
	s := int32(0)
	done := 0 // the current stretch has been run up to line[done]
	for pos := 0; ; {
		q := n
		for k, c := range a.anchors {
			if next[k] < pos {
				next[k] = n
				if j := bytes.IndexByte(line[pos:], c); j >= 0 {
					next[k] = pos + j
				}
			}
			q = min(q, next[k])
		}
		if q == n {
			return false
		}
		if a.keys != nil && !a.keys.mayStart(line, q) {
			pos = q + 1
			continue
		}
		lo, hi := q-a.reach[0], min(n, q+a.reach[1])
		if lo > done {
			s, done = 0, lo
		}
		for _, c := range line[done:hi] {
			s = trans[s+int32(class[c])]
			if s < 0 {
				return true
			}
		}
		done = max(done, hi)
		pos = q + 1
	}
}

// matchDigits steps the DFA on the ASCII digits of line only (the other
// bytes would leave the state as it is). It looks at eight bytes at a time
// and skips words without a digit.
func (a *automaton) matchDigits(line []byte) bool {
	trans, class := a.trans, &a.class
	s := int32(0)
	i := 0
	for ; i+8 <= len(line); i += 8 {
		// High bit of each byte of m: that byte is in '0'..'9'. x is
		// below 10 exactly for digits; adding 0x76 to its low 7 bits sets
		// their high bit when they are 10 or more, without carries.
		x := binary.LittleEndian.Uint64(line[i:]) ^ 0x3030303030303030
		m := ^(((x & 0x7f7f7f7f7f7f7f7f) + 0x7676767676767676) | x) & 0x8080808080808080
		for m != 0 {
			j := i + bits.TrailingZeros64(m)>>3
			s = trans[s+int32(class[line[j]])]
			if s < 0 {
				return true
			}
			m &= m - 1
		}
	}
	return a.matchFrom(s, line[i:])
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
