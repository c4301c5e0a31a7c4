package match

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeEmail(t *testing.T) {
	long := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 58) + ".ex" // 254
	tests := []struct {
		name, in, want string
		wantErr        string // substring of the error, "" = no error
	}{
		{"plain", "ann@x.com", "ann@x.com", ""},
		{"uppercase", "Ann.Lee@Contoso.EXAMPLE", "ann.lee@contoso.example", ""},
		{"surrounding whitespace", " \t ann@x.com \r\n", "ann@x.com", ""},
		{"specials in local part", "O'Brien+tag!#$%&*/=?^_`{|}~-@mail.example.co.uk", "o'brien+tag!#$%&*/=?^_`{|}~-@mail.example.co.uk", ""},
		{"hyphen inside label", "a@my-host.example", "a@my-host.example", ""},
		{"digits", "1@2.3", "1@2.3", ""},
		{"max length", long, long, ""},
		{"too long", "x" + long, "", "longer than 254"},
		{"empty", "", "", "empty"},
		{"blank", "   ", "", "empty"},
		{"no at", "ann.lee.example.com", "", "missing @"},
		{"two at", "ann@lee@example.com", "", "more than one @"},
		{"double at", "ann@@example.com", "", "more than one @"},
		{"no dot in domain", "ann@localhost", "", "no dot"},
		{"empty local", "@example.com", "", "empty local part"},
		{"empty domain", "ann@", "", "empty domain"},
		{"space in local", "ann lee@example.com", "", "invalid character in local part"},
		{"space in domain", "ann@exa mple.com", "", "invalid character in domain"},
		{"label starts with hyphen", "ann@-example.com", "", "hyphen"},
		{"label ends with hyphen", "ann@example-.com", "", "hyphen"},
		{"tld starts with hyphen", "ann@example.-com", "", "hyphen"},
		{"leading dot in domain", "ann@.example.com", "", "dot"},
		{"trailing dot in domain", "ann@example.com.", "", "dot"},
		{"empty label", "ann@example..com", "", "empty domain label"},
		{"underscore in domain", "ann@ex_ample.com", "", "invalid character in domain"},
		{"non-ASCII local", "änn@example.com", "", "invalid character in local part"},
		{"comma in local", "ann,lee@example.com", "", "invalid character in local part"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeEmail(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NormalizeEmail: unexpected error %v", err)
				}
				if got != tt.want {
					t.Fatalf("NormalizeEmail = %q, want %q", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("NormalizeEmail = %q, want error containing %q", got, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidEmail) {
				t.Errorf("error %v does not wrap ErrInvalidEmail", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			assertNoPersonalData(t, err, tt.in)
		})
	}
}

// assertNoPersonalData fails if err's message contains the input or any
// distinctive part of it.
func assertNoPersonalData(t *testing.T, err error, in string) {
	t.Helper()
	msg := err.Error()
	in = strings.TrimSpace(in)
	if len(in) >= 4 && strings.Contains(msg, in) {
		t.Errorf("error %q echoes the input", msg)
	}
	for _, part := range strings.FieldsFunc(in, func(r rune) bool { return strings.ContainsRune("@. -()+", r) }) {
		if len(part) >= 4 && strings.Contains(strings.ToLower(msg), strings.ToLower(part)) {
			t.Errorf("error %q contains part %q of the input", msg, part)
		}
	}
}

func TestNormalizePhone(t *testing.T) {
	tests := []struct {
		in, region, want string // want "" = error
	}{
		{"+1 425-555-0100", "", "14255550100"},
		{"+1 (425) 555-0100", "", "14255550100"},
		{"+1.425.555.0100", "", "14255550100"},
		{"(425) 555-0100", "US", "14255550100"},
		{"(425) 555-0100", "us", "14255550100"},
		{"425 555 0100", "CA", "14255550100"},
		{"1-425-555-0100", "US", "14255550100"},
		{"00 1 425 555 0100", "", "14255550100"},
		{"00 1 425 555 0100", "US", "14255550100"},
		{"011 1 425 555 0100", "US", "14255550100"},
		{"+14255550100", "DE", "14255550100"},
		{"  +1 425 555 0100  ", "", "14255550100"},
		{"+44 20 7946 0958", "", "442079460958"},
		{"0044 20 7946 0958", "", "442079460958"},
		{"020 7946 0958", "GB", "442079460958"},
		{"+44 (0)20 7946 0958", "", "442079460958"},
		{"+39 06 1234 5678", "", "390612345678"}, // Italian leading zero kept
		{"011 15 2345-6789", "AR", "5491123456789"},
		{"12", "US", ""},
		{"12", "", ""},
		{"abcdefg", "US", ""},
		{"call me", "US", ""},
		{"", "US", ""},
		{"(425) 555-0100", "", ""},    // national number without region
		{"425 555 0100", "XX", ""},    // unknown region
		{"555-0100", "US", ""},        // local-only, no area code
		{"+999 425 555 0100", "", ""}, // unassigned country code
		{"+1 425 555 0100 0000 0000", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in+"/"+tt.region, func(t *testing.T) {
			got, err := NormalizePhone(tt.in, tt.region)
			if tt.want != "" {
				if err != nil {
					t.Fatalf("NormalizePhone: unexpected error %v", err)
				}
				if got != tt.want {
					t.Fatalf("NormalizePhone = %q, want %q", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("NormalizePhone = %q, want error", got)
			}
			if !errors.Is(err, ErrInvalidPhone) {
				t.Errorf("error %v does not wrap ErrInvalidPhone", err)
			}
			assertNoPersonalData(t, err, tt.in)
		})
	}
}

func TestContainsEmailToken(t *testing.T) {
	const email = "ann@x.com"
	tests := []struct {
		text string
		want bool
	}{
		{"ann@x.com", true},
		{"joann@x.com", false},
		{"ann@x.com.au", false},
		{"Ann@X.com.", true},
		{"Write to Ann@X.COM. Thanks", true},
		{"<ann@x.com>", true},
		{"mail:ann@x.com,", true},
		{`{"email":"ANN@X.COM","name":"Ann"}`, true},
		{"ann@x.com\n", true},
		{"ann@x.com.\n", true},
		{"ann@x.com..", true},
		{"ann@x.com-old", false},
		{"ann@x.com_old", false},
		{"ann@x.community", false},
		{"ann@x.com.-x", false},
		{"ann@x.co", false},
		{"x.ann@x.com", false},
		{"j+ann@x.com", false},
		{"\xc3\xa9ann@x.com", true}, // non-ASCII byte before is not a local-part char
		{"joann@x.com, ann@x.com", true},
		{"ann@x.com.au; ann@x.com", true},
		{"ann@x.community ANN@X.COM.", true},
		{"joann@x.com ann@x.com.au ann@x.commerce", false},
		{"", false},
		{"ann@", false},
		{"@x.com", false},
	}
	for _, tt := range tests {
		if got := ContainsEmailToken(tt.text, email); got != tt.want {
			t.Errorf("ContainsEmailToken(%q, %q) = %v, want %v", tt.text, email, got, tt.want)
		}
		if got, want := ContainsEmailToken(tt.text, email), refContainsEmailToken(tt.text, email); got != want {
			t.Errorf("ContainsEmailToken(%q) = %v, reference %v", tt.text, got, want)
		}
	}
	if ContainsEmailToken("ann@x.com", "") {
		t.Error("empty email matched")
	}
	// Without '@' the search anchors on the first byte.
	if !ContainsEmailToken("mail Ann.X now", "ann.x") || ContainsEmailToken("mail joAnn.X now", "ann.x") {
		t.Error("email without @ mismatched")
	}
}

func TestContainsEmailTokenNoAlloc(t *testing.T) {
	text := strings.Repeat(`{"id":1,"email":"joann@x.com","note":"Ann@X.com.au"} `, 20) + "ANN@X.COM."
	allocs := testing.AllocsPerRun(100, func() {
		if !ContainsEmailToken(text, "ann@x.com") {
			t.Fatal("no match")
		}
	})
	if allocs != 0 {
		t.Errorf("ContainsEmailToken allocates %v times per call", allocs)
	}
}

func TestContainsPhone(t *testing.T) {
	tests := []struct {
		text, digits, region string
		want                 bool
	}{
		{"call me at (425) 555-0100 tomorrow", "14255550100", "US", true},
		{"+1.425.555.0100", "14255550100", "", true},
		{"tel: +1 425 555 0100.", "14255550100", "", true},
		{`{"phone":"425-555-0100"}`, "14255550100", "US", true},
		{"4255550100", "14255550100", "US", true},
		{"1-425-555-0100", "14255550100", "US", true},
		{"dial 00 1 425 555 0100 from Europe", "14255550100", "GB", true},
		{"dial 011 1 425 555 0100", "14255550100", "US", true},
		{"born 2024-01-15 425 555 0100", "14255550100", "US", true},      // fallback window
		{"01/02/2024 425 555 0100", "14255550100", "US", true},           // fallback window
		{"+1 206 555 0100 / +1 425 555 0100", "14255550100", "", true},   // two numbers in one run
		{"call me at (425) 555-0100 tomorrow", "14255550100", "", false}, // national, no region
		{"(206) 555-0100", "14255550100", "US", false},                   // same last 7 digits, other area code
		{"+1 206 555 0100", "14255550100", "US", false},
		{"call 425 555 0101", "14255550100", "US", false},
		{"order 9914255550100", "14255550100", "US", false}, // inside a longer digit run
		{"order 9914255550100 shipped", "14255550100", "US", false},
		{"id 42555501009", "14255550100", "US", false},
		{"425 555 0100", "14255550100", "GB", false}, // a UK national number
		{"2024-01-15", "14255550100", "US", false},
		{"2024-01-15", "120240115", "US", false},
		{"", "14255550100", "US", false},
		{"call me at (425) 555-0100", "", "US", false},
		{"call me at (425) 555-0100", "1425555010x", "US", false},
		{"call me at (425) 555-0100", "9994255550100", "US", false}, // unknown country code
		{"London office: 020 7946 0958.", "442079460958", "GB", true},
		{"London office: +44 (0)20 7946 0958", "442079460958", "US", true},
		{"London office: 0044 20 7946 0958", "442079460958", "", true},
		{"móvil 011 15 2345-6789", "5491123456789", "AR", true},
		{"Roma 06 1234 5678", "390612345678", "IT", true},
	}
	for _, tt := range tests {
		if got := ContainsPhone(tt.text, tt.digits, tt.region); got != tt.want {
			t.Errorf("ContainsPhone(%q, %q, %q) = %v, want %v", tt.text, tt.digits, tt.region, got, tt.want)
		}
	}
}

func TestContainsPhoneFastRejectNoAlloc(t *testing.T) {
	text := `{"id":12345,"name":"Ann Lee","phone":"+1 206 555 0199","note":"order 2024-01-15"}`
	allocs := testing.AllocsPerRun(100, func() {
		if ContainsPhone(text, "14255550100", "US") {
			t.Fatal("unexpected match")
		}
	})
	if allocs != 0 {
		t.Errorf("ContainsPhone fast reject allocates %v times per call", allocs)
	}
}

func TestContainsDigitsInRun(t *testing.T) {
	tests := []struct {
		text, key string
		want      bool
	}{
		{"555-0100", "5550100", true},
		{"5 5 5 (0) 1.0/0", "5550100", true},
		{"555x0100", "5550100", false}, // a letter breaks the run
		{"55550100", "5550100", true},  // KMP fallback
		{"5550101", "5550100", false},
		{"aab", "ab", false}, // key must be digits; letters never match
		{"1121", "121", true},
		{"", "1", false},
	}
	for _, tt := range tests {
		if got := containsDigitsInRun(tt.text, tt.key); got != tt.want {
			t.Errorf("containsDigitsInRun(%q, %q) = %v, want %v", tt.text, tt.key, got, tt.want)
		}
	}
}

func TestAppendDigits(t *testing.T) {
	got := AppendDigits([]byte("x"), []byte("+1 (425) 555-0100 ext. 7, ٣"))
	if string(got) != "x142555501007" {
		t.Errorf("AppendDigits = %q", got)
	}
	if got := AppendDigits(nil, []byte("no digits")); len(got) != 0 {
		t.Errorf("AppendDigits = %q, want empty", got)
	}
}

// refContainsEmailToken is a slow, obviously-correct reference for
// ContainsEmailToken.
func refContainsEmailToken(text, email string) bool {
	if email == "" {
		return false
	}
	lt, le := refLower(text), refLower(email)
	const local = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.!#$%&'*+/=?^_`{|}~-"
	const tail = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
	const label = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
	in := func(set string, c byte) bool { return strings.IndexByte(set, c) >= 0 }
	for i := 0; i+len(le) <= len(lt); i++ {
		if lt[i:i+len(le)] != le {
			continue
		}
		if i > 0 && in(local, text[i-1]) {
			continue
		}
		j := i + len(le)
		if j < len(text) {
			if in(tail, text[j]) {
				continue
			}
			if text[j] == '.' && j+1 < len(text) && in(label, text[j+1]) {
				continue
			}
		}
		return true
	}
	return false
}

// refLower lower-cases ASCII letters only, keeping byte offsets.
func refLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// Normalisation is a fixed point: a normalised number normalises to itself
// (found by FuzzParseSubmission: "R000000000" in region BY became
// +37500000000, which parses as +3750000000).
func TestNormalizePhoneIsAFixedPoint(t *testing.T) {
	if got, err := NormalizePhone("R000000000", "BY"); err == nil {
		again, err2 := NormalizePhone("+"+got, "")
		if err2 != nil || again != got {
			t.Fatalf("%q then %q (%v)", got, again, err2)
		}
	}
	for _, in := range []string{"+1 (425) 555-0199", "0044 20 7946 0958", "(425) 555-0100"} {
		got, err := NormalizePhone(in, "US")
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if again, err := NormalizePhone("+"+got, ""); err != nil || again != got {
			t.Fatalf("%s: %q then %q (%v)", in, got, again, err)
		}
	}
}
