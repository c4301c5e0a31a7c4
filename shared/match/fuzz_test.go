package match

import (
	"slices"
	"strings"
	"testing"
)

func FuzzContainsEmailToken(f *testing.F) {
	f.Add("ann@x.com", "ann@x.com")
	f.Add("joann@x.com, Ann@X.com.", "ann@x.com")
	f.Add("ann@x.com.au ann@x.com-old ann@x.community", "ann@x.com")
	f.Add("<ANN@X.COM>", "ann@x.com")
	f.Add("x@@y.z@y.z.", "@y.z")
	f.Add("\xff\xfeann@x.com\x00", "ann@x.com")
	f.Add("abcABC", "bc")
	f.Fuzz(func(t *testing.T, text, email string) {
		got := ContainsEmailToken(text, email)
		if want := refContainsEmailToken(text, email); got != want {
			t.Fatalf("ContainsEmailToken(%q, %q) = %v, reference %v", text, email, got, want)
		}
	})
}

func FuzzPrefilter(f *testing.F) {
	f.Add("ann@x.com", []byte(`{"email":"ANN@X.COM"}`))
	f.Add("he\nshe\nhis\nhers", []byte("ushers"))
	f.Add("a\nb\nc\nd\ne\nf\ng\nh\ni\nj", []byte("xyzJ"))
	f.Add("\xe9t\xe9\n\nZZ", []byte("\xc9T\xc9 zz"))
	f.Add("", []byte("anything"))
	f.Fuzz(func(t *testing.T, patternList string, line []byte) {
		patterns := strings.Split(patternList, "\n")
		want := naiveMatch(patterns, line)
		pats := uniqueLowered(patterns)
		for k, p := range []*Prefilter{NewPrefilter(patterns), newPrefilter(pats, false), newPrefilter(pats, true)} {
			if got := p.Match(line); got != want {
				t.Fatalf("impl %d: Match(%q) with patterns %q = %v, want %v", k, line, patterns, got, want)
			}
		}
		if got, want := NewPrefilter(patterns).AppendMatches(nil, line), naiveMatches(patterns, line); !slices.Equal(got, want) {
			t.Fatalf("AppendMatches(%q) with patterns %q = %v, want %v", line, patterns, got, want)
		}
		if got, want := NewDigitsPrefilter(patterns).AppendMatches(nil, line), naiveDigitsMatches(patterns, line); !slices.Equal(got, want) {
			t.Fatalf("digits AppendMatches(%q) with patterns %q = %v, want %v", line, patterns, got, want)
		}
	})
}
