package blobdataset

import (
	"context"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/sources"
)

// A JSON-array blob that is cut off or padded fails; it never reads as a
// shorter dataset (which would silently miss the subject's records).
func TestJSONArrayMustBeComplete(t *testing.T) {
	for _, tc := range []struct {
		in     string
		ok     bool
		record int
	}{
		{`[{"a":1},{"a":2}]`, true, 2},
		{` [ ] `, true, 0},
		{``, true, 0},
		{`[{"a":1}`, false, 1},
		{`[{"a":1}}`, false, 1},
		{`[{"a":1}] trailing`, false, 1},
		{`[{"a":1}][]`, false, 1},
	} {
		n := 0
		err := iterate(context.Background(), strings.NewReader(tc.in), sources.FormatJSONArray, func(*rawRecord) error { n++; return nil })
		if (err == nil) != tc.ok || n != tc.record {
			t.Errorf("%q: %d records, err %v; want ok=%v with %d records", tc.in, n, err, tc.ok, tc.record)
		}
	}
}
