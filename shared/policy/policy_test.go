package policy_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/policy"
	"github.com/dsr-functions/dsr/shared/sources"
)

var (
	secret  = []byte("0123456789abcdef-test-secret")
	secret2 = []byte("another-secret-of-enough-bytes")
	pseudo  = regexp.MustCompile(`^pseu_[0-9a-f]{32}$`)
)

// wantMAC is the pseudonym of s under key, computed independently.
func wantMAC(key []byte, s string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(s))
	return "pseu_" + hex.EncodeToString(h.Sum(nil))[:32]
}

// rec builds a record from name, value pairs.
func rec(kv ...any) sources.Record {
	var r sources.Record
	for i := 0; i < len(kv); i += 2 {
		r.Fields = append(r.Fields, sources.Field{Name: kv[i].(string), Value: kv[i+1]})
	}
	return r
}

// deepCopy copies a record for comparing the input after Mask.
func deepCopy(t *testing.T, r sources.Record) sources.Record {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sources.ParseRecordJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, r) {
		t.Fatalf("copy %#v differs from %#v", c, r)
	}
	return c
}

func TestMaskStrategies(t *testing.T) {
	m := policy.Masker{Secret: secret}
	tests := []struct {
		name string
		csv  bool
		rule sources.MaskRule
		in   any
		want any
	}{
		// JSON values.
		{"null on string", false, sources.MaskRule{Strategy: sources.MaskNull}, "a@b.co", nil},
		{"null on number", false, sources.MaskRule{Strategy: sources.MaskNull}, json.Number("42"), nil},
		{"null on bool", false, sources.MaskRule{Strategy: sources.MaskNull}, true, nil},
		{"null on object", false, sources.MaskRule{Strategy: sources.MaskNull}, map[string]any{"a": "b"}, nil},
		{"null on array", false, sources.MaskRule{Strategy: sources.MaskNull}, []any{"a"}, nil},
		{"null on null", false, sources.MaskRule{Strategy: sources.MaskNull}, nil, nil},
		{"redact default", false, sources.MaskRule{Strategy: sources.MaskRedact}, "Jane Doe", "[redacted]"},
		{"redact text", false, sources.MaskRule{Strategy: sources.MaskRedact, Text: "[erased]"}, "Jane Doe", "[erased]"},
		{"redact number", false, sources.MaskRule{Strategy: sources.MaskRedact}, json.Number("3.5"), "[redacted]"},
		{"redact null", false, sources.MaskRule{Strategy: sources.MaskRedact}, nil, "[redacted]"},
		{"hmac string", false, sources.MaskRule{Strategy: sources.MaskHMAC}, "a@b.co", wantMAC(secret, "a@b.co")},
		{"hmac number as written", false, sources.MaskRule{Strategy: sources.MaskHMAC}, json.Number("1.50"), wantMAC(secret, "1.50")},
		{"hmac float64", false, sources.MaskRule{Strategy: sources.MaskHMAC}, 2.5, wantMAC(secret, "2.5")},
		{"hmac bool", false, sources.MaskRule{Strategy: sources.MaskHMAC}, false, wantMAC(secret, "false")},
		{"hmac object as canonical JSON", false, sources.MaskRule{Strategy: sources.MaskHMAC}, map[string]any{"b": "2", "a": json.Number("1")}, wantMAC(secret, `{"a":1,"b":"2"}`)},
		{"hmac array", false, sources.MaskRule{Strategy: sources.MaskHMAC}, []any{"x", nil}, wantMAC(secret, `["x",null]`)},
		{"hmac null stays null", false, sources.MaskRule{Strategy: sources.MaskHMAC}, nil, nil},
		{"hmac empty string stays empty", false, sources.MaskRule{Strategy: sources.MaskHMAC}, "", ""},
		{"year of date", false, sources.MaskRule{Strategy: sources.MaskYear}, "1984-06-30", "1984"},
		{"year of timestamp", false, sources.MaskRule{Strategy: sources.MaskYear}, "2021-03-04T05:06:07Z", "2021"},
		{"year null stays null", false, sources.MaskRule{Strategy: sources.MaskYear}, nil, nil},
		{"year empty stays empty", false, sources.MaskRule{Strategy: sources.MaskYear}, "", ""},

		// CSV: every value is a string and stays one.
		{"csv null", true, sources.MaskRule{Strategy: sources.MaskNull}, "a@b.co", ""},
		{"csv null on empty", true, sources.MaskRule{Strategy: sources.MaskNull}, "", ""},
		{"csv redact default", true, sources.MaskRule{Strategy: sources.MaskRedact}, "Jane Doe", "[redacted]"},
		{"csv redact text", true, sources.MaskRule{Strategy: sources.MaskRedact, Text: "***"}, "Jane Doe", "***"},
		{"csv hmac", true, sources.MaskRule{Strategy: sources.MaskHMAC}, "a@b.co", wantMAC(secret, "a@b.co")},
		{"csv hmac number text", true, sources.MaskRule{Strategy: sources.MaskHMAC}, "42", wantMAC(secret, "42")},
		{"csv hmac empty", true, sources.MaskRule{Strategy: sources.MaskHMAC}, "", ""},
		{"csv year of date", true, sources.MaskRule{Strategy: sources.MaskYear}, "2024-02-29", "2024"},
		{"csv year of US date", true, sources.MaskRule{Strategy: sources.MaskYear}, "12/31/1999", "1999"},
		{"csv year empty", true, sources.MaskRule{Strategy: sources.MaskYear}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.rule.Field = "f"
			in := rec("id", "7", "f", tt.in, "z", "last")
			out, err := m.Mask(in, []sources.MaskRule{tt.rule}, tt.csv)
			if err != nil {
				t.Fatal(err)
			}
			want := rec("id", "7", "f", tt.want, "z", "last")
			if !reflect.DeepEqual(out, want) {
				t.Errorf("Mask = %#v, want %#v", out.Fields, want.Fields)
			}
			if tt.csv {
				for _, f := range out.Fields {
					if _, ok := f.Value.(string); !ok {
						t.Errorf("csv field %s is %T, not a string", f.Name, f.Value)
					}
				}
			}
		})
	}
}

func TestMaskSeveralRulesKeepsOrder(t *testing.T) {
	m := policy.Masker{Secret: secret}
	in := rec(
		"contactid", "c-1",
		"fullname", "Jane Doe",
		"email", "jane@example.com",
		"birthdate", "1980-01-02",
		"city", "Utrecht",
		"vip", true,
	)
	orig := deepCopy(t, in)
	rules := []sources.MaskRule{
		{Field: "birthdate", Strategy: sources.MaskYear},
		{Field: "email", Strategy: sources.MaskHMAC},
		{Field: "fullname", Strategy: sources.MaskRedact},
		{Field: "city", Strategy: sources.MaskNull},
		{Field: "phone", Strategy: sources.MaskNull},       // missing: not added
		{Field: "address.zip", Strategy: sources.MaskNull}, // missing parent: not added
	}
	out, err := m.Mask(in, rules, false)
	if err != nil {
		t.Fatal(err)
	}
	want := rec(
		"contactid", "c-1",
		"fullname", "[redacted]",
		"email", wantMAC(secret, "jane@example.com"),
		"birthdate", "1980",
		"city", nil,
		"vip", true,
	)
	if !reflect.DeepEqual(out, want) {
		t.Errorf("Mask =\n%#v\nwant\n%#v", out.Fields, want.Fields)
	}
	if !reflect.DeepEqual(in, orig) {
		t.Errorf("Mask changed its input: %#v", in.Fields)
	}
	// No rules: an equal copy.
	out, err = m.Mask(in, nil, false)
	if err != nil || !reflect.DeepEqual(out, in) {
		t.Errorf("Mask(no rules) = %#v, %v", out.Fields, err)
	}
	// An empty record stays empty.
	out, err = m.Mask(sources.Record{}, rules, false)
	if err != nil || len(out.Fields) != 0 {
		t.Errorf("Mask(empty record) = %#v, %v", out.Fields, err)
	}
}

func TestMaskNested(t *testing.T) {
	m := policy.Masker{Secret: secret}
	parse := func(s string) sources.Record {
		t.Helper()
		r, err := sources.ParseRecordJSON([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		name  string
		in    string
		rules []sources.MaskRule
		want  string
	}{
		{
			"one level",
			`{"id":1,"address":{"street":"Main St 1","city":"Utrecht","zip":"1234AB"},"email":"a@b.co"}`,
			[]sources.MaskRule{{Field: "address.street", Strategy: sources.MaskRedact}, {Field: "address.zip", Strategy: sources.MaskNull}},
			`{"id":1,"address":{"street":"[redacted]","city":"Utrecht","zip":null},"email":"a@b.co"}`,
		},
		{
			"deep",
			`{"profile":{"person":{"dob":"1970-05-06T00:00:00","name":"Jan"},"tags":["x"]}}`,
			[]sources.MaskRule{{Field: "profile.person.dob", Strategy: sources.MaskYear}},
			`{"profile":{"person":{"dob":"1970","name":"Jan"},"tags":["x"]}}`,
		},
		{
			"whole nested object",
			`{"a":{"b":{"c":1,"d":[1,2]}},"e":2}`,
			[]sources.MaskRule{{Field: "a.b", Strategy: sources.MaskNull}},
			`{"a":{"b":null},"e":2}`,
		},
		{
			"missing nested field is not added",
			`{"address":{"city":"Utrecht"}}`,
			[]sources.MaskRule{{Field: "address.street", Strategy: sources.MaskNull}, {Field: "address.geo.lat", Strategy: sources.MaskNull}},
			`{"address":{"city":"Utrecht"}}`,
		},
		{
			"path through a non-object is missing",
			`{"address":"Main St 1","list":[{"x":"1"}],"n":null}`,
			[]sources.MaskRule{{Field: "address.street", Strategy: sources.MaskNull}, {Field: "list.x", Strategy: sources.MaskNull}, {Field: "n.x", Strategy: sources.MaskNull}},
			`{"address":"Main St 1","list":[{"x":"1"}],"n":null}`,
		},
		{
			"literal dotted key wins",
			`{"a.b":"top","a":{"b":"nested"}}`,
			[]sources.MaskRule{{Field: "a.b", Strategy: sources.MaskRedact}},
			`{"a.b":"[redacted]","a":{"b":"nested"}}`,
		},
		{
			"dotted key inside an object",
			`{"a":{"b.c":"x","b":{"c":"y"}}}`,
			[]sources.MaskRule{{Field: "a.b.c", Strategy: sources.MaskRedact}},
			`{"a":{"b.c":"[redacted]","b":{"c":"y"}}}`,
		},
		{
			"falls back to a deeper split",
			`{"a":{"x":1},"a.b":{"c":"y"}}`,
			[]sources.MaskRule{{Field: "a.b.c", Strategy: sources.MaskRedact}},
			`{"a":{"x":1},"a.b":{"c":"[redacted]"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := parse(tt.in)
			orig := deepCopy(t, in)
			out, err := m.Mask(in, tt.rules, false)
			if err != nil {
				t.Fatal(err)
			}
			if want := parse(tt.want); !reflect.DeepEqual(out, want) {
				b, _ := json.Marshal(out)
				t.Errorf("Mask = %s, want %s", b, tt.want)
			}
			if !reflect.DeepEqual(in, orig) {
				b, _ := json.Marshal(in)
				t.Errorf("Mask changed its input to %s", b)
			}
		})
	}

	// The result shares no map or slice with the input: changing it leaves
	// the input alone.
	in := parse(`{"a":{"b":"x","c":{"d":"y"}},"l":[{"e":"z"}]}`)
	orig := deepCopy(t, in)
	out, err := m.Mask(in, []sources.MaskRule{{Field: "a.b", Strategy: sources.MaskNull}}, false)
	if err != nil {
		t.Fatal(err)
	}
	out.Fields[0].Value.(map[string]any)["c"].(map[string]any)["d"] = "changed"
	out.Fields[1].Value.([]any)[0].(map[string]any)["e"] = "changed"
	out.Fields[0].Name = "renamed"
	if !reflect.DeepEqual(in, orig) {
		b, _ := json.Marshal(in)
		t.Errorf("changing the result changed the input to %s", b)
	}
}

func TestMaskHMACPseudonyms(t *testing.T) {
	rules := []sources.MaskRule{{Field: "email", Strategy: sources.MaskHMAC}}
	mask := func(key []byte, v any, csv bool) string {
		t.Helper()
		out, err := policy.Masker{Secret: key}.Mask(rec("email", v), rules, csv)
		if err != nil {
			t.Fatal(err)
		}
		s, ok := out.Fields[0].Value.(string)
		if !ok {
			t.Fatalf("pseudonym is %T", out.Fields[0].Value)
		}
		return s
	}
	const email = "jane.doe@example.com"
	a := mask(secret, email, false)
	if !pseudo.MatchString(a) {
		t.Errorf("pseudonym %q does not match %s", a, pseudo)
	}
	if b := mask(secret, email, false); a != b {
		t.Errorf("same input, same secret: %q then %q", a, b)
	}
	if c := mask(secret, email, true); a != c {
		t.Errorf("CSV and JSON pseudonyms differ: %q, %q", c, a)
	}
	if d := mask(secret2, email, false); d == a || !pseudo.MatchString(d) {
		t.Errorf("a different secret gave %q (first %q)", d, a)
	}
	if e := mask(secret, "jane.doe@example.org", false); e == a {
		t.Errorf("different inputs gave the same pseudonym %q", e)
	}
	for _, part := range []string{email, "jane", "example"} {
		if strings.Contains(a, part) {
			t.Errorf("pseudonym %q contains %q", a, part)
		}
	}
	// A number in JSON and its text in CSV join.
	if n, s := mask(secret, json.Number("12345"), false), mask(secret, "12345", true); n != s {
		t.Errorf("json.Number pseudonym %q differs from the CSV string's %q", n, s)
	}
	// The secret is never part of the output.
	if strings.Contains(a, string(secret)) || strings.Contains(a, hex.EncodeToString(secret)) {
		t.Errorf("pseudonym %q contains the secret", a)
	}
}

func TestMaskYear(t *testing.T) {
	m := policy.Masker{}
	rules := []sources.MaskRule{{Field: "dob", Strategy: sources.MaskYear}}
	good := []struct{ in, want string }{
		{"2024-02-29", "2024"},
		{"1999-12-31T23:59:59Z", "1999"},
		{"2001-01-01T00:30:00+02:00", "2001"}, // the year as written, not in UTC
		{"2010-06-15T10:20:30.123456789-07:00", "2010"},
		{"2015-07-08T09:10:11", "2015"},
		{"2015-07-08T09:10:11.5", "2015"},
		{"2016-07-08 09:10:11", "2016"},
		{"07/04/1976", "1976"},
		{"7/4/1976", "1976"},
		{"0999-01-01", "0999"},
		{" 2020-01-01 ", "2020"},
	}
	for _, csv := range []bool{false, true} {
		for _, g := range good {
			out, err := m.Mask(rec("id", "1", "dob", g.in), rules, csv)
			if err != nil {
				t.Errorf("year(%q, csv=%v): %v", g.in, csv, err)
				continue
			}
			if want := rec("id", "1", "dob", g.want); !reflect.DeepEqual(out, want) {
				t.Errorf("year(%q, csv=%v) = %#v, want %q", g.in, csv, out.Fields[1].Value, g.want)
			}
		}
	}
	bad := []any{
		"someday soon", "jane@example.com", "1984", "31/12/1999", "1999-13-01", "1999-02-30",
		"12/31/99", "2024-01-01T10:00", "Mon Jan 2 15:04:05 2006", "SECRET-2024-01-01",
		json.Number("19840630"), true, map[string]any{"y": "2024-01-01"}, []any{"2024-01-01"},
	}
	for _, v := range bad {
		out, err := m.Mask(rec("id", "1", "dob", v), rules, false)
		if err == nil {
			t.Errorf("year(%#v) = %#v, want an error", v, out.Fields)
			continue
		}
		if !strings.Contains(err.Error(), `"dob"`) {
			t.Errorf("year(%#v): error %q does not name the field", v, err)
		}
		text := ""
		switch x := v.(type) {
		case string:
			text = x
		case json.Number:
			text = x.String()
		}
		if text != "" && strings.Contains(err.Error(), text) {
			t.Errorf("year error %q contains the value %q", err, text)
		}
		if strings.Contains(err.Error(), "2024") || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("year error %q contains part of the value", err)
		}
		if len(out.Fields) != 0 {
			t.Errorf("year(%#v) error came with a record %#v", v, out.Fields)
		}
	}
}

func TestMaskRefusesBadRules(t *testing.T) {
	in := rec("email", "a@b.co")
	tests := []struct {
		name   string
		secret []byte
		rules  []sources.MaskRule
		want   string
	}{
		{"hmac without secret", nil, []sources.MaskRule{{Field: "email", Strategy: sources.MaskHMAC}}, "secret"},
		{"hmac with 15-byte secret", []byte("0123456789abcde"), []sources.MaskRule{{Field: "email", Strategy: sources.MaskHMAC}}, "secret"},
		{"hmac on a missing field, short secret", []byte("short"), []sources.MaskRule{{Field: "email", Strategy: sources.MaskNull}, {Field: "phone", Strategy: sources.MaskHMAC}}, "secret"},
		{"unknown strategy", secret, []sources.MaskRule{{Field: "email", Strategy: "scramble"}}, "scramble"},
		{"empty strategy", secret, []sources.MaskRule{{Field: "email"}}, "strategy"},
		{"no field", secret, []sources.MaskRule{{Strategy: sources.MaskNull}}, "field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := policy.Masker{Secret: tt.secret}.Mask(in, tt.rules, false)
			if err == nil {
				t.Fatalf("Mask = %#v, want an error", out.Fields)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "a@b.co") || (len(tt.secret) > 0 && strings.Contains(err.Error(), string(tt.secret))) {
				t.Errorf("error %q contains a value or the secret", err)
			}
		})
	}
	// A 16-byte secret is enough, and other strategies need none.
	if _, err := (policy.Masker{Secret: []byte("0123456789abcdef")}).Mask(in, []sources.MaskRule{{Field: "email", Strategy: sources.MaskHMAC}}, false); err != nil {
		t.Errorf("16-byte secret: %v", err)
	}
	if _, err := (policy.Masker{}).Mask(in, []sources.MaskRule{{Field: "email", Strategy: sources.MaskRedact}}, false); err != nil {
		t.Errorf("redact without secret: %v", err)
	}
}

func TestKeyHash(t *testing.T) {
	h := policy.KeyHash(secret, "contacts", "c-1")
	if !regexp.MustCompile(`^k_[0-9a-f]{32}$`).MatchString(h) {
		t.Fatalf("KeyHash = %q", h)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("contacts\x00c-1"))
	if want := "k_" + hex.EncodeToString(mac.Sum(nil))[:32]; h != want {
		t.Errorf("KeyHash = %q, want %q", h, want)
	}
	tests := []struct {
		name         string
		secret       []byte
		dataset, key string
		same         bool
	}{
		{"stable", secret, "contacts", "c-1", true},
		{"other secret", secret2, "contacts", "c-1", false},
		{"other dataset", secret, "cases", "c-1", false},
		{"other key", secret, "contacts", "c-2", false},
		{"boundary moved", secret, "contactsc", "-1", false},
		{"boundary without separator", secret, "contacts\x00c", "-1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := policy.KeyHash(tt.secret, tt.dataset, tt.key)
			if (got == h) != tt.same {
				t.Errorf("KeyHash(%q, %q) = %q, first %q; want same=%v", tt.dataset, tt.key, got, h, tt.same)
			}
			if strings.Contains(got, tt.key) && len(tt.key) > 2 {
				t.Errorf("KeyHash %q contains the key", got)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	retain := &sources.Erasure{Action: sources.EraseRetain, Ground: "Art. 17(3)(b): tax records", LegalBasis: "Art. 6(1)(c) GDPR", RetainUntil: "2031-12-31"}
	mask := &sources.Erasure{Action: sources.EraseMask, Mask: []sources.MaskRule{{Field: "email", Strategy: sources.MaskHMAC}}}
	system := policy.Outcome{
		Action:     sources.EraseRetain,
		Ground:     "system-generated log: audit information is kept (Art. 17(3)(b), Art. 5(2) accountability)",
		LegalBasis: "Art. 6(1)(c) GDPR",
	}
	tests := []struct {
		name string
		d    *sources.Dataset
		want policy.Outcome
	}{
		{"nil dataset", nil, policy.Outcome{Action: sources.EraseDelete}},
		{"no policy deletes", &sources.Dataset{Name: "contacts"}, policy.Outcome{Action: sources.EraseDelete}},
		{"explicit delete", &sources.Dataset{Name: "contacts", Erasure: &sources.Erasure{Action: sources.EraseDelete}}, policy.Outcome{Action: sources.EraseDelete}},
		{"empty action deletes", &sources.Dataset{Name: "contacts", Erasure: &sources.Erasure{}}, policy.Outcome{Action: sources.EraseDelete}},
		{"mask", &sources.Dataset{Name: "surveys", Erasure: mask}, policy.Outcome{Action: sources.EraseMask}},
		{"retain", &sources.Dataset{Name: "invoices", Erasure: retain}, policy.Outcome{Action: sources.EraseRetain, Ground: retain.Ground, LegalBasis: retain.LegalBasis, RetainUntil: "2031-12-31"}},
		{"system log", &sources.Dataset{Name: "activity-log", SystemLog: true}, system},
		{"system log ignores a policy", &sources.Dataset{Name: "activity-log", SystemLog: true, Erasure: &sources.Erasure{Action: sources.EraseDelete}}, system},
		{"system log ignores a retain policy", &sources.Dataset{Name: "activity-log", SystemLog: true, Erasure: retain}, system},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := policy.Decide(tt.d); got != tt.want {
				t.Errorf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
	if system.Ground != policy.SystemLogGround || system.LegalBasis != policy.SystemLogLegalBasis {
		t.Error("SystemLogGround or SystemLogLegalBasis differ from the documented texts")
	}
}

func TestMaskMentions(t *testing.T) {
	ann := sources.Subject{Emails: []string{"ann@x.example"}, Phones: []string{"14255550100"}}
	rec := sources.Record{Fields: []sources.Field{
		{Name: "id", Value: "K4"},
		{Name: "description", Value: "Bob asked; cc Ann@X.example and joann@x.example, call 425-555-0100."},
		{Name: "notes", Value: map[string]any{"text": `pasted: {"to":"ann\u0040x.example"}`, "by": "bob@y.example"}},
		{Name: "title", Value: "ann@x.example"}, // not a free-text field: left alone
	}}
	got, changed := policy.MaskMentions(rec, []string{"description", "notes.text"}, ann, "US")
	if !changed {
		t.Fatal("nothing masked")
	}
	if want := "Bob asked; cc [redacted] and joann@x.example, call [redacted]."; got.Fields[1].Value != want {
		t.Errorf("description = %q, want %q", got.Fields[1].Value, want)
	}
	notes := got.Fields[2].Value.(map[string]any)
	if notes["text"] != policy.DefaultRedaction || notes["by"] != "bob@y.example" {
		t.Errorf("notes = %v: the encoded mention must be redacted whole, the rest kept", notes)
	}
	if got.Fields[3].Value != "ann@x.example" || got.Fields[0].Value != "K4" {
		t.Errorf("fields outside the free text changed: %v", got.Fields)
	}
	if rec.Fields[2].Value.(map[string]any)["text"] == policy.DefaultRedaction {
		t.Error("the input record was changed")
	}
	if _, changed := policy.MaskMentions(got, []string{"description", "notes.text"}, ann, "US"); changed {
		t.Error("masking again changed the record: not idempotent")
	}
}
