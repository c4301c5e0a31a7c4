package match

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestMentionsEmailShapes(t *testing.T) {
	const quinn = "quinn.obrien@fabrikam.example"
	const marie = "m.dupont+support@fabrikam.example"
	cases := []struct {
		name, text, email string
		want              bool
	}{
		{"plain", "write to quinn.obrien@fabrikam.example today", quinn, true},
		{"json escape of @", `pasted: {"email":"quinn.obrien\u0040fabrikam.example"}`, quinn, true},
		{"json escape upper hex", `quinn\u002Eobrien\u0040FABRIKAM.example`, quinn, true},
		{"json escape of +", `m.dupont\u002Bsupport@fabrikam.example`, marie, true},
		{"json escape of + lower hex", `m.dupont\u002bsupport@fabrikam.example`, marie, true},
		{"double-escaped json", `{\"to\":\"quinn.obrien\\u0040fabrikam.example\"}`, quinn, true},
		{"html decimal", "quinn.obrien&#64;fabrikam.example", quinn, true},
		{"html hex", "quinn.obrien&#x40;fabrikam.example", quinn, true},
		{"html named", "quinn.obrien&commat;fabrikam&period;example", quinn, true},
		{"html double", "quinn.obrien&amp;#64;fabrikam.example", quinn, true},
		{"percent mailto", "<a href=\"mailto:m.dupont%2Bsupport%40fabrikam.example\">", marie, true},
		{"percent mailto literal @", "mailto:m.dupont%2Bsupport@fabrikam.example", marie, true},
		{"wrapped in domain", "please contact quinn.obrien@fabrikam.\nexample about it", quinn, true},
		{"wrapped after @", "quinn.obrien@\r\n   fabrikam.example", quinn, true},
		{"wrapped in local part", "from quinn.\n obrien@fabrikam.example.", quinn, true},
		{"wrapped before @", "quinn.obrien\n@fabrikam.example", quinn, true},
		{"wrapped json escape", `quinn.obrien@fabrikam.\nexample`, quinn, true},

		// Decoys: never the address, in any shape.
		{"prefix letter", "lquinn.obrien@fabrikam.example", quinn, false},
		{"prefix letter escaped", `lquinn.obrien\u0040fabrikam.example`, quinn, false},
		{"suffix TLD", "quinn.obrien@fabrikam.example.au", quinn, false},
		{"suffix TLD escaped", `quinn.obrien\u0040fabrikam.example\u002Eau`, quinn, false},
		{"suffix TLD html", "quinn.obrien&#64;fabrikam.example&#46;au", quinn, false},
		{"subdomain", "quinn.obrien@mail.fabrikam.example", quinn, false},
		{"other tld percent", "mailto:quinn.obrien%40fabrikam.examples", quinn, false},
		{"dropped plus tag", "m.dupont@fabrikam.example", marie, false},
		{"dropped plus tag escaped", `m.dupont\u0040fabrikam.example`, marie, false},
		{"changed plus tag", `m.dupont\u002Bsales@fabrikam.example`, marie, false},
		{"added plus tag", `m.dupont%2Bsupport%2Bx@fabrikam.example`, marie, false},
		{"digit added", "quinn.obrien2@fabrikam.example", quinn, false},
		{"wrapped decoy suffix", "quinn.obrien@fabrikam.\nexample.au", quinn, false},
		{"wrapped decoy prefix", "lquinn.\nobrien@fabrikam.example", quinn, false},
		{"two breaks", "quinn.\nobrien@fabrikam.\nexample", quinn, false},
		{"space is no wrap", "quinn.obrien@ fabrikam.example", quinn, false},
		{"blank line is no wrap", "quinn.obrien@fabrikam.\n\nexample", quinn, false},
		{"wrapped different address", "quinn.obrien@fabrikam.\nexamples", quinn, false},
	}
	for _, c := range cases {
		if got := MentionsEmail(c.text, c.email); got != c.want {
			t.Errorf("%s: MentionsEmail(%q, %q) = %v, want %v", c.name, c.text, c.email, got, c.want)
		}
		if c.want {
			canon := bytes.ToLower(AppendCanonical(nil, []byte(c.text), true))
			if !bytes.Contains(canon, []byte(c.email)) {
				t.Errorf("%s: the prefilter's canonical form %q misses the address", c.name, canon)
			}
		}
	}
}

func TestMentionsPhoneEncoded(t *testing.T) {
	if !MentionsPhone(`call \u002B1 425 555 0199`, "14255550199", "") {
		t.Error("escaped + of an international number not found")
	}
	if !MentionsPhone("tel:%2B1-425-555-0199", "14255550199", "") {
		t.Error("percent-encoded tel: link not found")
	}
	if MentionsPhone(`call \u002B1 425 555 0198`, "14255550199", "") {
		t.Error("a number one digit off matched")
	}
}

func TestNormalizeEmailField(t *testing.T) {
	cases := []struct{ in, want string }{
		{"QUINN.OBRIEN@fabrikam.example", "quinn.obrien@fabrikam.example"},
		{`"Quinn O'Brien" <QUINN.OBRIEN@fabrikam.example>`, "quinn.obrien@fabrikam.example"},
		{"Marie Dupont <m.dupont+support@fabrikam.example>", "m.dupont+support@fabrikam.example"},
		{"<m.dupont+support@fabrikam.example>", "m.dupont+support@fabrikam.example"},
		{"mailto:m.dupont%2Bsupport@fabrikam.example?subject=hi", "m.dupont+support@fabrikam.example"},
		{`quinn.obrien\u0040fabrikam.example`, "quinn.obrien@fabrikam.example"},
		{"Quinn &lt;quinn.obrien&#64;fabrikam.example&gt;", "quinn.obrien@fabrikam.example"},
	}
	for _, c := range cases {
		got, err := NormalizeEmailField(c.in)
		if err != nil || got != c.want {
			t.Errorf("NormalizeEmailField(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	// The display name never counts, and junk stays an error.
	for _, in := range []string{`"quinn.obrien@fabrikam.example" <lquinn@fabrikam.example>`, "Quinn O'Brien", "<>", "mailto:"} {
		got, err := NormalizeEmailField(in)
		if err == nil && got == "quinn.obrien@fabrikam.example" {
			t.Errorf("NormalizeEmailField(%q) = %q: the display name matched", in, got)
		}
	}
	if _, err := NormalizeEmailField("Quinn O'Brien"); err == nil {
		t.Error("a name alone normalised as an email")
	}
}

func TestMarkFinderAgreesWithHasEscapeMark(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(`ab\u%&#4F0n"x` + "\n")
	for round := 0; round < 2000; round++ {
		var lines [][]byte
		var buf []byte
		for range 1 + rng.IntN(8) {
			n := rng.IntN(12)
			l := make([]byte, n)
			for i := range l {
				l[i] = alphabet[rng.IntN(len(alphabet))]
				if l[i] == '\n' {
					l[i] = ' '
				}
			}
			lines = append(lines, l)
			buf = append(buf, l...)
			buf = append(buf, '\n')
		}
		var f MarkFinder
		f.Reset(buf)
		pos := 0
		for _, l := range lines {
			got := f.Has(pos, pos+len(l))
			if want := HasEscapeMark(l); got != want {
				t.Fatalf("line %q of buffer %q: MarkFinder %v, HasEscapeMark %v", l, buf, got, want)
			}
			pos += len(l) + 1
		}
	}
}

func FuzzMentionsEmail(f *testing.F) {
	f.Add(`quinn.obrien\u0040fabrikam.example`, "quinn.obrien@fabrikam.example")
	f.Add("quinn.obrien&#x40;fabrikam.example", "quinn.obrien@fabrikam.example")
	f.Add("mailto:m.dupont%2Bsupport@x.example", "m.dupont+support@x.example")
	f.Add("a@b.\n c", "a@b.c")
	f.Add(`\uD83D\uDE00 %zz &#; \`, "a@b.c")
	f.Fuzz(func(t *testing.T, text, email string) {
		_, _ = NormalizeEmailField(text)
		email, err := NormalizeEmail(email) // discovery only searches normalised addresses
		if err != nil {
			return
		}
		got := MentionsEmail(text, email)
		if ContainsEmailToken(text, email) && !got {
			t.Fatalf("MentionsEmail(%q, %q) is false, but the plain token is there", text, email)
		}
		if got {
			// The prefilter's second look must see every mention the exact
			// rule accepts, or discovery would miss it.
			canon := bytes.ToLower(AppendCanonical(nil, []byte(text), true))
			if !strings.Contains(strings.ToLower(text), email) && !bytes.Contains(canon, []byte(email)) {
				t.Fatalf("MentionsEmail(%q, %q) is true but the canonical form %q misses it", text, email, canon)
			}
		}
	})
}

func TestReplaceMentions(t *testing.T) {
	got, n := ReplaceEmailTokens("To Ann@X.example, cc joann@x.example and ann@x.example.", "ann@x.example", "[redacted]")
	if want := "To [redacted], cc joann@x.example and [redacted]."; got != want || n != 2 {
		t.Errorf("ReplaceEmailTokens = %q, %d; want %q, 2", got, n, want)
	}
	got, n = ReplacePhones("call (425) 555-0100 or 425 555 0101 today", "14255550100", "US", "[redacted]")
	if want := "call [redacted] or 425 555 0101 today"; got != want || n != 1 {
		t.Errorf("ReplacePhones = %q, %d; want %q, 1", got, n, want)
	}
	if got, n := ReplacePhones("order 14255550100123", "14255550100", "US", "x"); n != 0 || got != "order 14255550100123" {
		t.Errorf("a longer digit run was replaced: %q", got)
	}
}
