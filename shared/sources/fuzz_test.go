package sources

import (
	"encoding/json"
	"slices"
	"testing"
)

func FuzzParseRecordJSON(f *testing.F) {
	for _, s := range []string{
		`{"zeta":1,"alpha":"a","mid":null,"nested":{"b":1,"a":[1,"x"]}}`,
		`{"n":123456789012345678901234567890.5e-400}`,
		`{"a":1,"a":2}`,
		`{"a":1} {"b":2}`,
		`"{\"a\":1}"`,
		"{\"\xff\":\"\xfe\"}",
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := ParseRecordJSON(data)
		if err != nil {
			if len(rec.Fields) != 0 {
				t.Fatalf("error %v with fields %+v", err, rec.Fields)
			}
			return
		}
		out, err := json.Marshal(rec)
		if err != nil {
			t.Fatalf("MarshalJSON of a parsed record: %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("MarshalJSON wrote invalid JSON %q", out)
		}
		again, err := ParseRecordJSON(out)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		if got, want := fieldNames(again), fieldNames(rec); !slices.Equal(got, want) {
			t.Fatalf("field names after a round trip %q, want %q (JSON %q)", got, want, out)
		}
	})
}
