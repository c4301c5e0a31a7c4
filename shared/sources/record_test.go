package sources

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func fieldNames(r Record) []string {
	var out []string
	for _, f := range r.Fields {
		out = append(out, f.Name)
	}
	return out
}

func TestParseRecordJSONKeepsOrder(t *testing.T) {
	// Keys deliberately out of alphabetical order.
	rec, err := ParseRecordJSON([]byte(` { "zeta": 1, "alpha": "a", "mid": null, "Beta": true, "": "empty key", "nested": {"b": 1, "a": [1, "x"]} } `))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fieldNames(rec), []string{"zeta", "alpha", "mid", "Beta", "", "nested"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("field order %q, want %q", got, want)
	}
	want := []any{
		json.Number("1"), "a", nil, true, "empty key",
		map[string]any{"b": json.Number("1"), "a": []any{json.Number("1"), "x"}},
	}
	for i, f := range rec.Fields {
		if !reflect.DeepEqual(f.Value, want[i]) {
			t.Errorf("field %q = %#v, want %#v", f.Name, f.Value, want[i])
		}
	}
}

func TestParseRecordJSONNumbersExact(t *testing.T) {
	for _, n := range []string{"12345678901234567890", "-0", "1.50", "1e400", "0.1000000000000000055511151231257827", "9007199254740993"} {
		rec, err := ParseRecordJSON([]byte(`{"n":` + n + `}`))
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		v, ok := rec.Fields[0].Value.(json.Number)
		if !ok || string(v) != n {
			t.Errorf("%s parsed as %#v, want json.Number(%q)", n, rec.Fields[0].Value, n)
		}
		out, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != `{"n":`+n+`}` {
			t.Errorf("%s round-trips as %s", n, out)
		}
	}
}

func TestParseRecordJSONRejects(t *testing.T) {
	for _, in := range []string{
		``, `   `, `[]`, `[{"a":1}]`, `"a"`, `1`, `null`, `true`,
		`{`, `{"a"`, `{"a":}`, `{"a":1,}`, `{"a":1`, `{a:1}`, `{"a":1]`,
		`{"a":1}{"b":2}`, `{"a":1} {"b":2}`, `{"a":1} x`, `{"a":1} 1`, `{"a":1}]`, `{"a":1}}`,
	} {
		if rec, err := ParseRecordJSON([]byte(in)); err == nil {
			t.Errorf("ParseRecordJSON(%q) = %+v, want an error", in, rec)
		}
	}
	// White space around the object is fine.
	if _, err := ParseRecordJSON([]byte("\r\n\t{\"a\":1}\r\n ")); err != nil {
		t.Errorf("white space around the object: %v", err)
	}
}

func TestParseRecordJSONErrorHasNoContent(t *testing.T) {
	for _, in := range []string{`{"email":"ann@x.example",}`, `{"email":"ann@x.example"} {"x":1}`, `["ann@x.example"]`} {
		_, err := ParseRecordJSON([]byte(in))
		if err == nil {
			t.Fatalf("%s accepted", in)
		}
		if strings.Contains(err.Error(), "ann") {
			t.Errorf("error %q shows record content", err)
		}
	}
}

func TestRecordMarshalJSONRoundTrip(t *testing.T) {
	for _, in := range []string{
		`{}`,
		`{"z":1,"a":2}`,
		`{"id":"C1","email":"Ann@X.example","phone":"+1 425 555 0100","n":12345678901234567890,"ok":false,"none":null}`,
		`{"b":[3,2,1],"a":{"k":"v"},"":""}`,
		`{"quote":"say \"hi\"\n","unicode":"Zoë ☃"}`,
	} {
		rec, err := ParseRecordJSON([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		out, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != in {
			t.Errorf("round trip of\n  %s\ngave\n  %s", in, out)
		}
		// And once more: parse the output, same fields.
		again, err := ParseRecordJSON(out)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(again, rec) {
			t.Errorf("second round trip differs: %+v vs %+v", again, rec)
		}
	}
}

func TestRecordMarshalJSON(t *testing.T) {
	// A Record built by hand (as CSV records are): order as given, values
	// escaped, and a Record works as a value inside other JSON.
	rec := Record{Fields: []Field{{"name", `Ann "A" <b>`}, {"age", 7}, {"zip", "01234"}, {"tags", []any{"x"}}}}
	out, err := json.Marshal([]any{rec, Record{}})
	if err != nil {
		t.Fatal(err)
	}
	var back []map[string]any
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatalf("output %s is not JSON: %v", out, err)
	}
	if back[0]["name"] != `Ann "A" <b>` || back[0]["zip"] != "01234" || len(back[1]) != 0 {
		t.Errorf("decoded %v", back)
	}
	if i, j := bytes.Index(out, []byte(`"name"`)), bytes.Index(out, []byte(`"age"`)); i < 0 || j < i {
		t.Errorf("field order lost: %s", out)
	}
	if _, err := json.Marshal(Record{Fields: []Field{{"bad", make(chan int)}}}); err == nil {
		t.Error("marshalling an unsupported value succeeded")
	}
}

func TestDiscoveryTotal(t *testing.T) {
	d := &Discovery{Datasets: []DatasetMatches{{Dataset: "a", Records: 3}, {Dataset: "b"}, {Dataset: "c", Records: 4}}}
	if d.Total() != 7 {
		t.Errorf("Total = %d, want 7", d.Total())
	}
	if (&Discovery{}).Total() != 0 {
		t.Error("empty Total != 0")
	}
}

func TestPathValues(t *testing.T) {
	rec, err := ParseRecordJSON([]byte(`{"emails":["a@x.example","B@x.example"],"participants":[{"email":"c@x.example"},{"name":"no email"},{"email":["d@x.example"]}],
		"customer":{"email":"e@x.example"},"customer.email":"literal@x.example","cc":"[\"f@x.example\"]","n":5,"nested":{"deep":[[{"v":"g"}]]}}`))
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]any{}
	for _, f := range rec.Fields {
		fields[f.Name] = f.Value
	}
	get := func(path string) []string {
		var out []string
		PathStrings(fields, path, func(s string) bool { out = append(out, s); return true })
		return out
	}
	for path, want := range map[string][]string{
		"emails[]":             {"a@x.example", "B@x.example"},
		"participants[].email": {"c@x.example"},       // an array without [] is not a scalar
		"customer.email":       {"literal@x.example"}, // a field named by the whole path comes first
		"cc[]":                 {"f@x.example"},       // a JSON array held as text (a CSV cell)
		"n":                    {"5"},
		"nested.deep[][].v":    {"g"}, // one [] per level of arrays
		"nested.deep[].v":      nil,   // deep[] yields arrays, which have no field v
		"emails":               nil,   // the array itself is no scalar
		"missing[].x":          nil,
	} {
		if got := get(path); !slices.Equal(got, want) {
			t.Errorf("PathStrings(%q) = %q, want %q", path, got, want)
		}
	}
}
