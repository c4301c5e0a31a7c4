package match

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// naiveMatches is the reference for AppendMatches: the indices of the
// non-empty patterns that line contains, ASCII case-insensitively.
func naiveMatches(patterns []string, line []byte) []int {
	l := asciiOnlyLower(line)
	var out []int
	for i, p := range patterns {
		if p != "" && bytes.Contains(l, []byte(refLower(p))) {
			out = append(out, i)
		}
	}
	return out
}

// naiveDigitsMatches is the reference for a digits prefilter: the indices of
// the patterns whose digits (if any) occur in the digits of line.
func naiveDigitsMatches(patterns []string, line []byte) []int {
	d := AppendDigits(nil, line)
	var out []int
	for i, p := range patterns {
		pd := AppendDigits(nil, []byte(p))
		if len(pd) > 0 && bytes.Contains(d, pd) {
			out = append(out, i)
		}
	}
	return out
}

func TestAppendMatches(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		line     string
		want     []int
	}{
		{"none", []string{"ann@x.com"}, "bob@x.com", nil},
		{"one", []string{"ann@x.com", "bob@x.com"}, "BOB@X.COM", []int{1}},
		{"both, reported in index order", []string{"ann@x.com", "bob@x.com"}, "bob@x.com ann@x.com bob@x.com", []int{0, 1}},
		{"duplicates report every index", []string{"K1", "x", "k1", "", "K1"}, "case k1", []int{0, 2, 4}},
		{"overlapping", []string{"he", "she", "his", "hers", "a", "b", "c", "d", "e"}, "USHERS", []int{0, 1, 3, 8}},
		{"substring of another", []string{"ann@x.example", "joann@x.example"}, "joann@x.example", []int{0, 1}},
		{"empty line", []string{"a"}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pats, orig := uniqueLoweredIndexed(tt.patterns)
			for k, p := range []*Prefilter{NewPrefilter(tt.patterns), withOrig(newPrefilter(pats, false), orig), withOrig(newPrefilter(pats, true), orig)} {
				got := p.AppendMatches(nil, []byte(tt.line))
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("impl %d: AppendMatches = %v, want %v", k, got, tt.want)
				}
			}
		})
	}
	// dst is extended, not overwritten; nil matches nothing.
	p := NewPrefilter([]string{"a", "b"})
	if got := p.AppendMatches([]int{7}, []byte("ba")); !reflect.DeepEqual(got, []int{7, 0, 1}) {
		t.Errorf("AppendMatches onto [7] = %v", got)
	}
	var nilP *Prefilter
	if got := nilP.AppendMatches(nil, []byte("a")); got != nil {
		t.Errorf("nil Prefilter: %v", got)
	}
}

func withOrig(p *Prefilter, orig [][]int) *Prefilter {
	p.orig = orig
	return p
}

// TestAppendMatchesProperty checks both implementations' AppendMatches (and
// its agreement with Match) against the naive search.
func TestAppendMatchesProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const alphabet = "aAbBcC@.-0\xe9"
	randStr := func(maxLen int) string {
		b := make([]byte, rng.IntN(maxLen+1))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	multi := 0
	for iter := range 3000 {
		patterns := make([]string, 1+rng.IntN(20))
		for i := range patterns {
			patterns[i] = randStr(5)
		}
		pats, orig := uniqueLoweredIndexed(patterns)
		impls := []*Prefilter{NewPrefilter(patterns), withOrig(newPrefilter(pats, false), orig), withOrig(newPrefilter(pats, true), orig)}
		for range 10 {
			line := []byte(randStr(60))
			want := naiveMatches(patterns, line)
			if len(want) > 1 {
				multi++
			}
			for k, p := range impls {
				got := p.AppendMatches(nil, line)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("iter %d impl %d: AppendMatches(%q) with patterns %q = %v, want %v", iter, k, line, patterns, got, want)
				}
				if p.Match(line) != (len(want) > 0) {
					t.Fatalf("iter %d impl %d: Match(%q) disagrees with AppendMatches", iter, k, line)
				}
			}
		}
	}
	if multi < 1000 {
		t.Errorf("weak property test: only %d lines matched several patterns", multi)
	}
}

func TestDigitsPrefilter(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		line     string
		want     []int
	}{
		{"plain", []string{"5550100"}, `{"phone":"5550100"}`, []int{0}},
		{"separated", []string{"5550100"}, `{"phone":"+1 (425) 555-0100"}`, []int{0}},
		{"across fields", []string{"5550100"}, `{"a":555,"b":"01","c":"00"}`, []int{0}},
		{"patterns with punctuation", []string{"+1 555-0100", "555 0101"}, "15550100", []int{0}},
		{"interrupted by another digit", []string{"5550100"}, "555-90100", nil},
		{"letters are skipped", []string{"5550100"}, "5a5b5c0d1e0f0", []int{0}},
		{"pattern without digits is ignored", []string{"abc", "12"}, "abc 1 2", []int{1}},
		{"several", []string{"5550100", "4255550", "999"}, "tel 425 555 0100", []int{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewDigitsPrefilter(tt.patterns)
			if got := p.AppendMatches(nil, []byte(tt.line)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("AppendMatches = %v, want %v", got, tt.want)
			}
			if got := p.Match([]byte(tt.line)); got != (len(tt.want) > 0) {
				t.Errorf("Match = %v, want %v", got, len(tt.want) > 0)
			}
		})
	}
	if NewDigitsPrefilter([]string{"no digits"}).Match([]byte("123")) {
		t.Error("a digits prefilter without patterns matched")
	}
}

// TestDigitsPrefilterProperty compares the digits prefilter with searching
// AppendDigits' output, on lines long enough to be split into two streams
// and with occurrences spread over many separators.
func TestDigitsPrefilterProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const alphabet = "0123-( )a\"7"
	matched := 0
	for iter := range 3000 {
		patterns := make([]string, 1+rng.IntN(12))
		for i := range patterns {
			b := make([]byte, 1+rng.IntN(7))
			for j := range b {
				b[j] = "0123"[rng.IntN(4)]
			}
			patterns[i] = string(b)
		}
		p := NewDigitsPrefilter(patterns)
		for range 10 {
			b := make([]byte, rng.IntN(200))
			for j := range b {
				b[j] = alphabet[rng.IntN(len(alphabet))]
			}
			want := naiveDigitsMatches(patterns, b)
			if len(want) > 0 {
				matched++
			}
			if got := p.AppendMatches(nil, b); !reflect.DeepEqual(got, want) {
				t.Fatalf("iter %d: AppendMatches(%q) with %q = %v, want %v", iter, b, patterns, got, want)
			}
			if p.Match(b) != (len(want) > 0) {
				t.Fatalf("iter %d: Match(%q) with %q = %v, want %v", iter, b, patterns, !(len(want) > 0), len(want) > 0)
			}
		}
	}
	if matched < 3000 || matched > 27000 {
		t.Errorf("unbalanced property test: %d of 30000 lines matched", matched)
	}
}

// TestDigitsPrefilterEveryPosition spreads a number over separators at every
// offset of long lines, so that it straddles the split into two streams.
func TestDigitsPrefilterEveryPosition(t *testing.T) {
	p := NewDigitsPrefilter([]string{"14255550100", "4255550199"})
	number := "+1 (425) 555-0100"
	for _, lineLen := range []int{len(number), 60, 99, 100, 101, 400} {
		for pos := 0; pos+len(number) <= lineLen; pos++ {
			line := []byte(strings.Repeat("ab-", lineLen/3+1)[:lineLen])
			copy(line[pos:], number)
			if !p.Match(line) {
				t.Fatalf("len %d pos %d: no match in %q", lineLen, pos, line)
			}
			line[pos+len(number)-1] = '1' // break the number
			if p.Match(line) {
				t.Fatalf("len %d pos %d: false match in %q", lineLen, pos, line)
			}
		}
	}
}

func TestAppendMatchesNoAllocWithRoom(t *testing.T) {
	line := []byte(strings.Repeat(`{"email":"person3@fabrikam.example","phone":"555 0100"} `, 5))
	for _, p := range []*Prefilter{NewPrefilter(manyEmails(4, "fabrikam")), NewPrefilter(manyEmails(100, "fabrikam")), NewDigitsPrefilter([]string{"5550100"})} {
		dst := make([]int, 0, 16)
		if allocs := testing.AllocsPerRun(100, func() { dst = p.AppendMatches(dst[:0], line) }); allocs != 0 {
			t.Errorf("AppendMatches allocates %v times", allocs)
		}
	}
}

// TestPrefilterAnchored checks that email-like patterns give an anchored
// automaton, and compares it with the naive search on random lines full of
// anchors (windows that overlap, touch or stand apart).
func TestPrefilterAnchored(t *testing.T) {
	if a := newPrefilter(uniqueLowered(manyEmails(100, "fabrikam")), true).ac; len(a.anchors) != 1 || a.anchors[0] != '@' || a.keys == nil || a.keys.before != 4 || a.keys.n != 8 {
		t.Fatalf("anchors of 100 emails: %q, key filter %+v; want @ and 4+4 key bytes", a.anchors, a.keys)
	}
	if a := newPrefilter(uniqueLowered([]string{"0000", "1111", "2222", "3333", "4444"}), true).ac; a.anchors != nil {
		t.Fatalf("anchors of 5 digit runs: %q, want none", a.anchors)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	const alphabet = "aAbB@@..xX"
	randStr := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	matched, keyed := 0, 0
	for iter := range 6000 {
		patterns := make([]string, 1+rng.IntN(12))
		for i := range patterns {
			if iter%2 == 0 {
				patterns[i] = randStr(rng.IntN(4)) + "@" + randStr(rng.IntN(4))
			} else {
				// Bytes other than '@' on both sides of it: the key
				// filter is used.
				noAt := func(n int) string { return strings.ReplaceAll(randStr(n), "@", "a") }
				patterns[i] = noAt(2+rng.IntN(3)) + "@" + noAt(1+rng.IntN(3))
			}
		}
		p := newPrefilter(uniqueLowered(patterns), true)
		if p.ac.anchors == nil {
			t.Fatalf("patterns %q: not anchored", patterns)
		}
		if p.ac.keys != nil {
			keyed++
		} else if iter%2 == 1 {
			t.Fatalf("patterns %q: no key filter", patterns)
		}
		for range 10 {
			line := []byte(randStr(rng.IntN(120)))
			want := naiveMatch(patterns, line)
			if want {
				matched++
			}
			if got := p.Match(line); got != want {
				t.Fatalf("iter %d: Match(%q) with patterns %q (anchors %q) = %v, want %v", iter, line, patterns, p.ac.anchors, got, want)
			}
		}
	}
	if matched < 6000 || matched > 54000 || keyed < 3000 {
		t.Errorf("unbalanced property test: %d of 60000 lines matched, %d key filters", matched, keyed)
	}
}
