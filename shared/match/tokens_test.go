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
		if memo.fields.len() > size || memo.numbers.len() > size {
			t.Fatalf("memo %d holds %d fields and %d runs", size, memo.fields.len(), memo.numbers.len())
		}
		if size > 0 && (memo.fields.len() == 0 || memo.numbers.len() == 0) {
			t.Fatalf("memo %d remembered nothing", size)
		}
	}
}

// phoneKeySeed and phoneKeyRounds are variables so that a longer search
// can be run by hand.
var phoneKeySeed, phoneKeyRounds = 12, 2500

// TestPhoneKeyKeepsTheNumber checks phoneKey's claim against the phone
// library: for numbers of many countries written in national and
// international forms, with their separators shuffled, digits dropped or
// added and prefixes changed, in many default regions (and none, and an
// unknown one), NormalizePhone gives the same answer for an input and its
// canonical form.
func TestPhoneKeyKeepsTheNumber(t *testing.T) {
	numbers := []string{
		"+1 425 555 0100", "(425) 555-0100", "1-425-555-0100", "425.555.0100", "+1 (212) 555-0122", "011 44 20 7946 0958",
		"+44 20 7946 0958", "020 7946 0958", "+49 30 901820", "030 901820", "+39 06 6982 1234", "06 6982 1234",
		"0039 06 6982 1234", "+54 9 11 1234 5678", "011 15 1234 5678", "+33 1 42 68 53 00", "01 42 68 53 00",
		"+55 11 91234 5678", "+91 98765 43210", "+81 3-1234-5678", "03-1234-5678", "+61 2 9876 5432",
		"+52 55 1234 5678", "4482913", "2024-07-01", "12/05/2024 10:30", "555-0149", "00 1 425 555 0100",
	}
	regions := []string{"US", "GB", "DE", "IT", "AR", "FR", "BR", "IN", "JP", "AU", "MX", "", "ZZ"}
	seps := []string{" ", "(", ")", "-", ".", "/", "", "  "}
	rng := rand.New(rand.NewPCG(11, uint64(phoneKeySeed)))
	mutate := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch r := rng.IntN(20); {
			case r == 0 && isDigit(c):
				continue // drop a digit
			case r == 1:
				b.WriteString(seps[rng.IntN(len(seps))])
			case r == 2:
				b.WriteByte(byte('0' + rng.IntN(10)))
			case r < 6 && !isDigit(c) && c != '+':
				b.WriteString(seps[rng.IntN(len(seps))])
				continue
			}
			b.WriteByte(c)
		}
		out := b.String()
		switch rng.IntN(8) {
		case 0:
			out = "+" + strings.TrimLeft(out, "+")
		case 1:
			out = "00" + strings.TrimLeft(out, "+")
		case 2:
			out = " " + out + " "
		case 3:
			out = "(" + out
		}
		return out
	}
	same, checked := 0, 0
	for range phoneKeyRounds {
		s := mutate(numbers[rng.IntN(len(numbers))])
		key, ok := phoneKey(nil, s)
		if !ok {
			continue
		}
		checked++
		for _, r := range regions {
			want, werr := NormalizePhone(s, r)
			got, gerr := NormalizePhone(string(key), r)
			if (werr == nil) != (gerr == nil) || want != got {
				t.Fatalf("region %q: NormalizePhone(%q) = %q, %v; its key %q gives %q, %v", r, s, want, werr, key, got, gerr)
			}
			if werr == nil {
				same++
			}
		}
	}
	// The check means something only if most inputs have a key and many
	// are numbers.
	t.Logf("%d inputs had a key, %d answers were numbers", checked, same)
	if checked < 1500 || same < 5000 {
		t.Fatalf("only %d inputs had a key, %d answers were numbers", checked, same)
	}
	for _, s := range []string{"12", "0 0 44 20 7946 0958", "1+425 555 0100", "425 555 0100 ext 7", "+1 425 555 0100#", strings.Repeat("1 ", 40)} {
		if key, ok := phoneKey(nil, s); ok {
			t.Errorf("phoneKey(%q) = %q, want none", s, key)
		}
	}
}

// TestNorthAmericanIsTheLibrarys checks northAmerican against the phone
// library: ten-digit numbers (area codes starting with every digit,
// 0 and 1 included) written in many ways, with and without "+1", "1",
// "001" and "011" before them, in default regions US (as configured, in
// any case and spacing), CA, GB, DE, none and an unknown one. Every
// answer it gives must be NormalizePhone's.
func TestNorthAmericanIsTheLibrarys(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, uint64(phoneKeySeed)))
	regions := []string{"US", "us", " US ", "CA", "GB", "DE", "", "ZZ"}
	prefixes := []string{"", "+1", "+1 ", "1", "1-", "1 ", "001 ", "011 ", "+", "+44 "}
	formats := []func(d string) string{
		func(d string) string { return d },
		func(d string) string { return "(" + d[:3] + ") " + d[3:6] + "-" + d[6:] },
		func(d string) string { return d[:3] + "." + d[3:6] + "." + d[6:] },
		func(d string) string { return d[:3] + "-" + d[3:6] + "-" + d[6:] },
		func(d string) string { return d[:3] + " " + d[3:6] + " " + d[6:] },
		func(d string) string { return d[:3] + "/" + d[3:] },
		func(d string) string { return d[:9] },   // nine digits
		func(d string) string { return d + "5" }, // eleven
	}
	answered := 0
	for range phoneKeyRounds + 1500 {
		var d strings.Builder
		for range 10 {
			d.WriteByte(byte('0' + rng.IntN(10)))
		}
		s := prefixes[rng.IntN(len(prefixes))] + formats[rng.IntN(len(formats))](d.String())
		key, ok := phoneKey(nil, s)
		if !ok {
			continue
		}
		for _, r := range regions {
			got, ok := northAmerican(key, strings.ToUpper(strings.TrimSpace(r)) == "US")
			if !ok {
				continue
			}
			answered++
			want, err := NormalizePhone(s, r)
			if err != nil || got != want {
				t.Fatalf("region %q: %q (key %q): northAmerican %q, NormalizePhone %q, %v", r, s, key, got, want, err)
			}
		}
	}
	t.Logf("%d answers checked", answered)
	if answered < 5000 {
		t.Fatalf("only %d answers checked", answered)
	}
}
