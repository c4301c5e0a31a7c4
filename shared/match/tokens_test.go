package match

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// tokenFragments build random free texts around a few addresses and phone
// numbers, in the shapes the matchers accept and in near misses.
var tokenFragments = []string{
	"ann@x.example", "ANN@X.Example", "joann@x.example", "ann@x.example.au", "ann@x.example.",
	"ann\\u0040x.example", "ann&#64;x.example", "ann%40x.example", "mailto:ann%40x.example?s=1",
	"an\nn@x.example", "ann@x.\n  example", "ann\r\n@x.example", "ann@\nx.example", "ann@x\n.example",
	"<ann@x.example>", "b.c+d@sub.x.example", "b.c+d@sub.x.\nexample",
	"+1 (425) 555-0199", "425-555-0199", "4255550199", "1-425-555-0199", "+44 20 7946 0958",
	"0044 20 7946 0958", "425 555 0199 / 206 555 0100", "12/05/2024 425 555 0199", "\\u002B1 425 555 0199",
	"order 42555501999", "2024-05-22", " ", ", ", ".", "\n", "\t", "@", "x", "a", "&", "%", "\\n",
}

// TestMentionTokensCoverMatchers checks the promise the identifier index
// rests on: whatever MentionsEmail or MentionsPhone finds in a text is
// among the tokens of that text.
func TestMentionTokensCoverMatchers(t *testing.T) {
	// Subjects' emails are normalised (the index falls back to a scan
	// for any other): only such addresses are asked about.
	emails := []string{"ann@x.example", "b.c+d@sub.x.example", "joann@x.example", "ann@x.example.au", "n@x.example", "c+d@sub.x.example"}
	phones := []string{"14255550199", "442079460958", "12065550100", "4255550199"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b strings.Builder
		for range 1 + rng.IntN(6) {
			b.WriteString(tokenFragments[rng.IntN(len(tokenFragments))])
		}
		text := b.String()
		var gotE, gotP []string
		EmailMentionTokens(text, func(e string) { gotE = append(gotE, e) })
		PhoneMentionTokens(text, "US", func(p string) { gotP = append(gotP, p) })
		for _, e := range emails {
			if MentionsEmail(text, e) && !slices.Contains(gotE, e) {
				t.Fatalf("MentionsEmail(%q, %q) but the tokens %q lack it", text, e, gotE)
			}
		}
		for _, p := range phones {
			if MentionsPhone(text, p, "US") && !slices.Contains(gotP, p) {
				t.Fatalf("MentionsPhone(%q, %q) but the tokens %q lack it", text, p, gotP)
			}
		}
	}
}

func TestMentionTokensExamples(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"write to ANN@X.example.", "ann@x.example"},
		{"ann&#64;x.example", "ann@x.example"},
		{"contact: an\n  n@x.example today", "ann@x.example"},
		{"ann@x.\nexample", "ann@x.example"},
	} {
		var got []string
		EmailMentionTokens(c.text, func(e string) { got = append(got, e) })
		if !slices.Contains(got, c.want) {
			t.Errorf("EmailMentionTokens(%q) = %q, want %q among them", c.text, got, c.want)
		}
	}
	var got []string
	PhoneMentionTokens("Called back 425-555-0199", "US", func(p string) { got = append(got, p) })
	if !slices.Equal(got, []string{"14255550199"}) {
		t.Errorf("PhoneMentionTokens = %q", got)
	}
}

// TestPhoneMemoIsExact checks that remembering changes nothing: for random
// texts and field values, repeated so they are answered from memory, and
// with a memory so small it fills, PhoneMemo gives what
// NormalizePhoneField and PhoneMentionTokens give.
func TestPhoneMemoIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, size := range []int{0, 8, 1 << 12} {
		memo := NewPhoneMemo("US", size)
		var inputs []string
		for range 400 {
			var b strings.Builder
			for range 1 + rng.IntN(3) {
				b.WriteString(tokenFragments[rng.IntN(len(tokenFragments))])
			}
			inputs = append(inputs, b.String())
		}
		for range 3000 {
			s := inputs[rng.IntN(len(inputs))]
			want, err := NormalizePhoneField(s, "US")
			if got, ok := memo.Field(s); ok != (err == nil) || got != want && ok {
				t.Fatalf("memo %d: Field(%q) = %q, %v; NormalizePhoneField %q, %v", size, s, got, ok, want, err)
			}
			var wantT, gotT []string
			PhoneMentionTokens(s, "US", func(p string) { wantT = append(wantT, p) })
			memo.MentionTokens(s, func(p string) { gotT = append(gotT, p) })
			if !slices.Equal(gotT, wantT) {
				t.Fatalf("memo %d: MentionTokens(%q) = %q, PhoneMentionTokens %q", size, s, gotT, wantT)
			}
		}
		if len(memo.fields) > size || len(memo.runs) > size {
			t.Fatalf("memo %d holds %d fields and %d runs", size, len(memo.fields), len(memo.runs))
		}
		if size > 0 && (len(memo.fields) == 0 || len(memo.runs) == 0) {
			t.Fatalf("memo %d remembered nothing", size)
		}
	}
}
