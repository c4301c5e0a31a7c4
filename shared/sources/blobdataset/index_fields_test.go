package blobdataset

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dsr-functions/dsr/shared/sources"
)

// TestRecordFieldsAsDecoded checks recordFields against rawRecord.fields
// on random JSON records (escaped and repeated keys, escapes, non-ASCII
// and invalid UTF-8, numbers in every form, nested values holding quotes
// and brackets, whitespace) and cut-off ones: the same records fail, and
// the named fields read the same (Strings and Text).
func TestRecordFieldsAsDecoded(t *testing.T) {
	names := map[string]bool{"email": true, "phone": true, "id": true, "notes": true, "é": true}
	keys := []string{`"email"`, `"phone"`, `"id"`, `"notes"`, `"other"`, `"em\u0061il"`, `"\u00e9"`, `"é"`, `"ph\"one"`, `"id "`, `"notes\n"`}
	values := []string{
		`"ann@x.example"`, `"ANN\u0040X.example"`, `"a\"b\\c"`, `"line\nbreak"`, `"\ud83d\ude00"`, `"\ud800 lone"`, `"café"`,
		"\"bad \xff utf8\"", `""`, `"{[\"]}"`, `0`, `-0`, `1.50`, `1e5`, `-12.5E-3`, `12345678901234567890`, `true`, `false`, `null`,
		`[]`, `{}`, `["a", {"b": "c]}"}, 3]`, `{"x": ["y", "z\"}"], "n": 1}`, `[[["deep"]]]`,
	}
	ws := []string{"", " ", "\t", "\r\n "}
	// Around the record, also what bytes.TrimSpace trims and JSON does
	// not allow: the record's place in its text moves.
	edges := append([]string{"\v", "\u00a0", "\u2003 "}, ws...)
	rng := rand.New(rand.NewPCG(21, 22))
	slots := newFieldSlots(names)
	for n := range 20000 {
		var b strings.Builder
		b.WriteString(edges[rng.IntN(len(edges))] + "{")
		for k := range rng.IntN(7) {
			if k > 0 {
				b.WriteString(ws[rng.IntN(len(ws))] + ",")
			}
			b.WriteString(ws[rng.IntN(len(ws))] + keys[rng.IntN(len(keys))] + ws[rng.IntN(len(ws))] + ":" + ws[rng.IntN(len(ws))] + values[rng.IntN(len(values))])
		}
		b.WriteString(ws[rng.IntN(len(ws))] + "}" + edges[rng.IntN(len(edges))])
		raw := []byte(b.String())
		if n%5 == 0 {
			raw = raw[:rng.IntN(len(raw)+1)] // often not JSON any more
		}
		if n%17 == 0 {
			raw = append(raw, `{}`...)
		}
		full, err1 := (&rawRecord{raw: raw}).fields()
		fast, err2 := recordFields(&rawRecord{raw: raw}, slots)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("%q: fields error %v, recordFields error %v", raw, err1, err2)
		}
		if err1 != nil {
			continue
		}
		// Read as the tokenizer reads them: the slots answer as the
		// path walk over the whole decoded record does.
		for name := range names {
			for _, asText := range []bool{false, true} {
				var walked, read []string
				collect := func(out *[]string) func(string) bool {
					return func(s string) bool { *out = append(*out, s); return true }
				}
				if asText {
					sources.MapFields(full).Text(name, collect(&walked))
					fast.Text(name, collect(&read))
				} else {
					sources.MapFields(full).Strings(name, collect(&walked))
					fast.Strings(name, collect(&read))
				}
				slices.Sort(walked)
				slices.Sort(read)
				if !slices.Equal(walked, read) {
					t.Fatalf("%q: field %q (text %v): decoded whole %q, recordFields %q", raw, name, asText, walked, read)
				}
			}
		}
	}
}

// TestRecordFieldsCSV checks the slots of CSV rows against the rows'
// maps (rawRecord.fields): repeated columns, short and long rows, empty
// cells.
func TestRecordFieldsCSV(t *testing.T) {
	names := map[string]bool{"email": true, "notes": true, "id": true}
	columns := []string{"email", "notes", "id", "other", "Email", "email "}
	cells := []string{"", "ann@x.example", " id-1 ", "call 425-555-0100", "x"}
	rng := rand.New(rand.NewPCG(5, 6))
	slots := newFieldSlots(names)
	for range 5000 {
		var header, row []string
		for range rng.IntN(6) {
			header = append(header, columns[rng.IntN(len(columns))])
		}
		for range rng.IntN(7) {
			row = append(row, cells[rng.IntN(len(cells))])
		}
		r := &rawRecord{header: header, row: row}
		full, err := r.fields()
		if err != nil {
			t.Fatal(err)
		}
		fast, err := recordFields(r, slots)
		if err != nil {
			t.Fatal(err)
		}
		for name := range names {
			var walked, read []string
			collect := func(out *[]string) func(string) bool {
				return func(s string) bool { *out = append(*out, s); return true }
			}
			sources.MapFields(full).Strings(name, collect(&walked))
			fast.Strings(name, collect(&read))
			sources.MapFields(full).Text(name, collect(&walked))
			fast.Text(name, collect(&read))
			if !slices.Equal(walked, read) {
				t.Fatalf("header %q row %q: field %q read %q from the map, %q from the slots", header, row, name, walked, read)
			}
		}
	}
}

// jsonPieces are fragments from which TestObjectMembersIsValid builds
// texts: valid tokens, near misses of each token rule, and the bytes that
// sit at its edges (controls, invalid UTF-8, lone escapes).
var jsonPieces = []string{
	"{", "}", "[", "]", ":", ",", " ", "\t", "\n", "\r", "\v", "\u00a0",
	`"a"`, `"é"`, "\"\xff\"", `"\u00e9"`, `"\uD800"`, `"\uZZZZ"`, `"\u12"`, `"\x"`, `"\/"`, `"\b\f\n\r\t"`, "\"\x01\"", "\"\x7f\"", `"`, `\`,
	"0", "-0", "01", "-", "1.", "1.5", ".5", "1e", "1e+", "1E-7", "-12.5e3", "+1", "0x1", "1.2.3",
	"true", "tru", "false", "null", "nul", "NaN",
	// Longer strings, with what ends or breaks them at other places.
	`"a longer string of plain text, past a word or two"`, `"long text with an \" escape in the middle"`,
	"\"long text with a \x1f control near its end\"", "\"ends in a backslash \\\"", `"text ending in é and more text"`,
}

// checkObjectMembers checks objectMembers on b against json.Valid (with
// the leading '{' rule): it must accept exactly what that accepts, and say
// of every key and string value it reports what a plain reading of its
// body says.
func checkObjectMembers(t *testing.T, b []byte) {
	t.Helper()
	want := len(b) > 0 && b[0] == '{' && json.Valid(b)
	got := objectMembers(b, func(ks, ke, vs, ve int, kf, vf strFlags) {
		t.Helper()
		if body := b[ks+1 : ke-1]; kf.plain(body) != plainJSONString(body) {
			t.Fatalf("objectMembers(%q): key %q plain %v, want %v", b, body, kf.plain(body), plainJSONString(body))
		}
		if b[vs] != '"' {
			if vf != 0 {
				t.Fatalf("objectMembers(%q): value %q not a string has flags %b", b, b[vs:ve], vf)
			}
			return
		}
		if body := b[vs+1 : ve-1]; vf.plain(body) != plainJSONString(body) {
			t.Fatalf("objectMembers(%q): value %q plain %v, want %v", b, body, vf.plain(body), plainJSONString(body))
		}
	})
	if got != want {
		t.Fatalf("objectMembers(%q) = %v, json.Valid %v", b, got, want)
	}
}

// plainJSONString is what strFlags.plain must say, read the slow way: the
// body holds no backslash and is valid UTF-8.
func plainJSONString(body []byte) bool {
	return bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body)
}

// TestObjectMembersIsValid runs checkObjectMembers on random texts built
// from jsonPieces, on well-formed records with one byte changed, and at
// the nesting limit.
func TestObjectMembersIsValid(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	check := func(b []byte) {
		t.Helper()
		checkObjectMembers(t, b)
	}
	record := []byte(`{"id":"a-1","n":-12.5e3,"ok":true,"x":null,"tags":["a",{"b":[1,2,{}]},[]],"s":"q\"\\\/\u00e9 é"}`)
	for range 200000 {
		var b []byte
		switch rng.IntN(3) {
		case 0:
			b = append(b, '{')
			for range rng.IntN(12) {
				b = append(b, jsonPieces[rng.IntN(len(jsonPieces))]...)
			}
		case 1:
			b = append(b, record...)
			b[rng.IntN(len(b))] = byte(rng.IntN(256))
		default:
			b = append(b, record...)
			p := rng.IntN(len(b) + 1)
			piece := jsonPieces[rng.IntN(len(jsonPieces))]
			b = append(b[:p], append([]byte(piece), b[p:]...)...)
		}
		check(b)
	}
	for _, depth := range []int{maxJSONDepth - 1, maxJSONDepth, maxJSONDepth + 1} {
		// depth levels in all: the record and depth-1 arrays in it.
		b := []byte(`{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + "}")
		check(b)
	}
}

// FuzzObjectMembers is TestObjectMembersIsValid's check on fuzzed input.
func FuzzObjectMembers(f *testing.F) {
	for _, p := range jsonPieces {
		f.Add([]byte("{" + p))
	}
	f.Add([]byte(`{"a":[1,{"b":"c"}],"d":"\u00e9"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkObjectMembers(t, b)
	})
}
