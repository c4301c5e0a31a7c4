package match

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestPrefilter(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		line     string
		want     bool
	}{
		{"no patterns", nil, "anything", false},
		{"only empty patterns", []string{"", ""}, "anything", false},
		{"single exact", []string{"ann@x.com"}, `{"email":"ann@x.com"}`, true},
		{"single case-insensitive", []string{"Ann@X.com"}, `{"email":"ANN@x.COM"}`, true},
		{"single miss", []string{"ann@x.com"}, `{"email":"ann@y.com"}`, false},
		{"substring match is enough", []string{"ann@x.com"}, "joann@x.community", true},
		{"empty pattern ignored", []string{"", "zed"}, "ZED", true},
		{"pattern longer than line", []string{"ann@x.com"}, "ann", false},
		{"empty line", []string{"a"}, "", false},
		{"at line start", []string{"qux"}, "QUX rest", true},
		{"at line end", []string{"qux"}, "rest qUx", true},
		{"non-letter anchor", []string{"@"}, "a@b", true},
		{"non-ASCII exact", []string{"zoë"}, "ZOë", true},
		{"non-ASCII not folded", []string{"zoë"}, "ZOË", false},
		{"second of several", []string{"aaa@x.io", "bbb@y.io", "ccc@z.io"}, "x BBB@Y.IO y", true},
		{"many patterns", manyEmails(50, "fabrikam"), "x PERSON37@FABRIKAM.EXAMPLE y", true},
		{"many patterns miss", manyEmails(50, "fabrikam"), "x person37@contoso.example y", false},
		{"many patterns overlapping", []string{"he", "she", "his", "hers", "a", "b", "c", "d", "e"}, "USHERS", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewPrefilter(tt.patterns).Match([]byte(tt.line)); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
			for _, ac := range []bool{false, true} {
				if got := newPrefilter(uniqueLowered(tt.patterns), ac).Match([]byte(tt.line)); got != tt.want {
					t.Errorf("Match (automaton=%v) = %v, want %v", ac, got, tt.want)
				}
			}
		})
	}
	var nilP *Prefilter
	if nilP.Match([]byte("x")) || (&Prefilter{}).Match([]byte("x")) {
		t.Error("nil/zero Prefilter matched")
	}
}

func TestPrefilterChoosesImplementation(t *testing.T) {
	if p := NewPrefilter(manyEmails(8, "x")); p.ac != nil || len(p.small) != 8 {
		t.Errorf("8 patterns: want per-pattern search")
	}
	if p := NewPrefilter(manyEmails(9, "x")); p.ac == nil {
		t.Errorf("9 patterns: want automaton")
	}
	// Duplicates (case-insensitively) count once.
	if p := NewPrefilter(append(manyEmails(8, "x"), strings.ToUpper(manyEmails(8, "x")[0]))); p.ac != nil {
		t.Errorf("8 distinct patterns + duplicate: want per-pattern search")
	}
}

// TestPrefilterAnchorIsRare: the anchor is the byte that is cheapest to
// search for, by frequency, a letter counting twice (both cases are
// searched): '@' (25 in 10,000) beats 'x' (2 × 14), and 'q' (2 × 10) or a
// 'z' (2 × 8) beats '@'.
func TestPrefilterAnchorIsRare(t *testing.T) {
	for pat, want := range map[string]byte{
		"first.last@contoso.example": '@',
		"quinn@contoso.example":      'q',
		"liz@fabrikam.example":       'z',
		"c1":                         '1',
	} {
		a := newAnchoredPattern([]byte(pat))
		if c := a.pat[a.anchor]; c != want {
			t.Errorf("%s: anchor byte = %q, want %q", pat, c, want)
		}
	}
}

func TestPrefilterNoAlloc(t *testing.T) {
	line := []byte(strings.Repeat(`{"email":"someone@contoso.example"} `, 10))
	for _, n := range []int{1, 100} {
		p := NewPrefilter(manyEmails(n, "fabrikam"))
		if allocs := testing.AllocsPerRun(100, func() { p.Match(line) }); allocs != 0 {
			t.Errorf("%d patterns: Match allocates %v times", n, allocs)
		}
	}
}

// TestPrefilterProperty checks both implementations against a naive search
// on random patterns and lines over a small alphabet (so matches, partial
// matches and overlaps are common).
func TestPrefilterProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "aAbBcC@.-0\xe9"
	randStr := func(maxLen int) string {
		b := make([]byte, rng.IntN(maxLen+1))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	matches := 0
	for iter := range 5000 {
		patterns := make([]string, 1+rng.IntN(20))
		for i := range patterns {
			patterns[i] = randStr(6)
		}
		pats := uniqueLowered(patterns)
		impls := []*Prefilter{NewPrefilter(patterns), newPrefilter(pats, false), newPrefilter(pats, true)}
		for range 10 {
			line := []byte(randStr(40))
			want := naiveMatch(patterns, line)
			if want {
				matches++
			}
			for k, p := range impls {
				if got := p.Match(line); got != want {
					t.Fatalf("iter %d impl %d: Match(%q) with patterns %q = %v, want %v", iter, k, line, patterns, got, want)
				}
			}
		}
	}
	if matches < 1000 || matches > 49000 {
		t.Errorf("unbalanced property test: %d of 50000 lines matched", matches)
	}
}

func naiveMatch(patterns []string, line []byte) bool {
	l := asciiOnlyLower(line)
	for _, p := range patterns {
		if p != "" && bytes.Contains(l, []byte(refLower(p))) {
			return true
		}
	}
	return false
}

func asciiOnlyLower(b []byte) []byte {
	return []byte(refLower(string(b)))
}

func manyEmails(n int, domain string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "person" + itoa(i) + "@" + domain + ".example"
	}
	return out
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// TestPrefilterEveryPosition places a pattern at every offset of lines of
// several lengths, which covers the automaton's split into two streams
// (including occurrences that straddle the split point).
func TestPrefilterEveryPosition(t *testing.T) {
	patterns := manyEmails(20, "fabrikam")
	target := "PERSON13@FABRIKAM.EXAMPLE"
	ac := newPrefilter(uniqueLowered(patterns), true)
	small := newPrefilter(uniqueLowered(patterns[10:18]), false)
	for _, lineLen := range []int{len(target), 50, 99, 100, 101, 137, 400} {
		for pos := 0; pos+len(target) <= lineLen; pos++ {
			line := bytes.Repeat([]byte("person1@fabrikam.exampl "), lineLen/24+1)[:lineLen]
			copy(line[pos:], target)
			if !ac.Match(line) || !small.Match(line) {
				t.Fatalf("len %d pos %d: no match in %q", lineLen, pos, line)
			}
			line[pos+len(target)-1] = 'X' // break the occurrence
			if ac.Match(line) || small.Match(line) {
				t.Fatalf("len %d pos %d: false match in %q", lineLen, pos, line)
			}
		}
	}
}
