package blobdataset

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/sources"
)

// fuzzMarker is personal data planted in fuzz inputs: no error may echo it.
const fuzzMarker = "SECRET@x.example"

// checkNoEcho fails if err's text repeats the marker of an input that holds
// it (short inputs are exempt: a one-character error snippet is not data).
func checkNoEcho(t *testing.T, what string, data []byte, err error) {
	t.Helper()
	if err == nil || len(data) <= 32 || !bytes.Contains(data, []byte(fuzzMarker)) {
		return
	}
	if strings.Contains(err.Error(), fuzzMarker) {
		t.Fatalf("%s error echoes the input: %v", what, err)
	}
}

// fuzzIterate runs iterate over data in format and checks the invariants
// every reader must keep for arbitrary bytes: no panic, ordinals 0,1,2,…,
// fields and ordered agree on the keys, no error echoes the data, and each
// readable record's position holds it (checkPositions).
func fuzzIterate(t *testing.T, format sources.Format, data []byte) {
	var next int64
	err := iterate(context.Background(), bytes.NewReader(data), format, func(r *rawRecord) error {
		if r.ordinal != next {
			t.Fatalf("ordinal %d, want %d", r.ordinal, next)
		}
		next++
		_ = r.candidate(func(b []byte) bool { return bytes.Contains(b, []byte("@")) })
		m, ferr := r.fields()
		checkNoEcho(t, "fields", data, ferr)
		rec, oerr := r.ordered()
		checkNoEcho(t, "ordered", data, oerr)
		if format == sources.FormatCSV && (ferr != nil || oerr != nil) {
			t.Fatalf("CSV record %d: fields error %v, ordered error %v", r.ordinal, ferr, oerr)
		}
		if (ferr == nil) != (oerr == nil) {
			// Discovery (fields) and export (ordered) must accept the same
			// records, or a match could be found that export cannot read.
			t.Fatalf("record %d: fields error %v, ordered error %v", r.ordinal, ferr, oerr)
		}
		if ferr != nil {
			return nil
		}
		var fromMap, fromOrdered []string
		for k := range m {
			fromMap = append(fromMap, k)
		}
		for _, f := range rec.Fields {
			fromOrdered = append(fromOrdered, f.Name)
		}
		slices.Sort(fromMap)
		slices.Sort(fromOrdered)
		fromOrdered = slices.Compact(fromOrdered) // duplicate names collapse in the map
		if !slices.Equal(fromMap, fromOrdered) {
			t.Fatalf("record %d: fields keys %q, ordered keys %q", r.ordinal, fromMap, fromOrdered)
		}
		return nil
	})
	checkNoEcho(t, "iterate", data, err)
	if errors.Is(err, errStop) {
		t.Fatalf("iterate leaked errStop")
	}
	// Every record export can read is found again at its position.
	checkPositions(t, format, data)
}

func FuzzIterateNDJSON(f *testing.F) {
	for _, s := range []string{
		`{"email":"ann@x.com","n":1}` + "\n" + `{"email":"bob@x.com"}` + "\n",
		"\n\n  \r\n{\"a\":1}\r\n\r\n{\"b\":2}",
		`{"a":1} {"b":2}` + "\n" + `[1,2]` + "\n" + `null`,
		`{"email":"` + fuzzMarker + `","x":` + "\n",
		"\ufeff{\"a\":1}\n",
		`{"a":1,"a":2,"":3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzIterate(t, sources.FormatNDJSON, data)
	})
}

func FuzzIterateCSV(f *testing.F) {
	for _, s := range []string{
		"email,name\nann@x.com,Ann\nbob@x.com,Bob\n",
		"\ufeffemail,name\r\nann@x.com,\"Ann, A\"\r\n",
		"email,name\n\"" + fuzzMarker + ",unterminated\n",
		"a,a,b\n1,2,3\n",
		"email\n" + fuzzMarker + ",extra\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzIterate(t, sources.FormatCSV, data)
	})
}

func FuzzIterateJSONArray(f *testing.F) {
	for _, s := range []string{
		`[{"email":"ann@x.com"},{"email":"bob@x.com","n":1e400}]`,
		`[]`,
		`{"not":"an array"}`,
		`[{"a":[[[{}]]]}, 1, "s", null, {"email":"` + fuzzMarker + `"}, {"x":}]`,
		"\ufeff[{\"a\":1}]",
		`[{"a":1},`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzIterate(t, sources.FormatJSONArray, data)
	})
}
