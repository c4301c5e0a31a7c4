package blobdataset

import (
	"context"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/sources"
)

// candidate is a record owners let through, as scanBlob sees it.
type candidate struct {
	ordinal, offset, length int64
	owners                  []int
}

// candidatesOf runs owners over the NDJSON data as scanBlob does, stepping
// over lines with m's skipper when skip is set, and returns the
// candidates. The data is read in random chunks, or, with rng nil, as
// much as fits in the buffer at a time.
func candidatesOf(t *testing.T, m *datasetMatcher, data string, skip bool, rng *rand.Rand) []candidate {
	t.Helper()
	var s lineSkipper
	if skip {
		if s = m.skipper(); s == nil {
			t.Fatal("no skipper")
		}
	}
	var out []candidate
	var sc scratch
	var rd io.Reader = strings.NewReader(data) // fills the buffer
	if rng != nil {
		rd = &chunkReader{data: []byte(data), rng: rng}
	}
	err := iterateSkipping(context.Background(), rd, sources.FormatNDJSON, s, func(r *rawRecord) error {
		if owners := m.owners(r, &sc); len(owners) > 0 {
			out = append(out, candidate{r.ordinal, r.offset, r.length, append([]int(nil), owners...)})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func textMatcher(subjects ...sources.Subject) *datasetMatcher {
	d := scanDataset("b.ndjson", "")
	due := make([]*subjectState, len(subjects))
	for i, s := range subjects {
		due[i] = &subjectState{subj: s, keys: keySet{}}
	}
	return newDatasetMatcher(scanConfig(d), &d, due)
}

func requireSkipper(t *testing.T, m *datasetMatcher) {
	t.Helper()
	if m.skipper() == nil {
		t.Skip("no whole-buffer search on this machine (no SIMD kernels): every line is looked at")
	}
}

// TestSkippingFindsTheSameCandidates: stepping over lines in whole
// stretches hands owners the same candidates, with the same ordinals and
// places, as looking at every line, on random mixes of matching lines,
// near misses, escaped addresses, blank and whitespace-only lines, CRLF
// endings, long lines and a last line without ending, read in random
// chunks through small buffers (so that lines and matches straddle buffer
// boundaries and lines outgrow the buffer).
func TestSkippingFindsTheSameCandidates(t *testing.T) {
	defer func(n, off int) { ndjsonBufSize, skipGateOff = n, off }(ndjsonBufSize, skipGateOff)
	matchers := []*datasetMatcher{
		textMatcher(sources.Subject{Emails: []string{"ann@x.example"}}),
		textMatcher(sources.Subject{Emails: []string{"ann@x.example"}, IDs: map[string]string{"customerId": "CU0042"}}, sources.Subject{Emails: []string{"bo.li@y.example"}}),
	}
	requireSkipper(t, matchers[0])
	parts := []string{
		`{"email":"ann@x.example"}`, `{"email":"ANN@X.Example","id":"CU0042"}`, `{"note":"cc Bo.Li@Y.example"}`,
		`{"email":"xann@x.example.org"}`, `{"email":"an@x.example"}`, `{"email":"ann\u0040x.example"}`,
		`{"note":"mailto:ann%40x.example"}`, `{"note":"ann&#64;x.example"}`, `{"note":"50% & \"quoted\""}`,
		`{"a":1}`, "", " ", "\t", "\r", "\u00a0", "\u2028", "\u0085", ` {"b":2} `, "x",
		`{"note":"` + strings.Repeat("y", 70) + ` ann@x.example"}`, `{"note":"ann@x.example ` + strings.Repeat("z", 90) + `"}`,
	}
	rng := rand.New(rand.NewPCG(21, 22))
	for iter := range 3000 {
		var sb strings.Builder
		for range rng.IntN(14) {
			sb.WriteString(parts[rng.IntN(len(parts))])
			if rng.IntN(10) > 0 {
				sb.WriteString([]string{"\n", "\r\n"}[rng.IntN(2)])
			}
		}
		data := sb.String()
		ndjsonBufSize = 1 + rng.IntN(80)
		m := matchers[iter%len(matchers)]
		chunks := rng
		if iter%2 == 0 {
			chunks = nil
		}
		want := candidatesOf(t, m, data, false, chunks)
		// Skipping throughout, and turned off where lines of interest
		// are dense (as scans do).
		for _, off := range []int{0, 2} {
			skipGateOff = off
			if got := candidatesOf(t, m, data, true, chunks); !reflect.DeepEqual(got, want) {
				t.Fatalf("iter %d, buffer %d, gate %d, data %q:\n skipping %v\nevery line %v", iter, ndjsonBufSize, off, data, got, want)
			}
		}
	}
}

// TestSkippingAcrossBufferBoundaries: a match that straddles the end of a
// read buffer, and one in a line longer than the buffer, are found, with
// the ordinals of the records before them counted in skipped stretches.
func TestSkippingAcrossBufferBoundaries(t *testing.T) {
	defer func(n, off int) { ndjsonBufSize, skipGateOff = n, off }(ndjsonBufSize, skipGateOff)
	skipGateOff = 0
	m := textMatcher(sources.Subject{Emails: []string{"ann@x.example"}})
	requireSkipper(t, m)
	plain := `{"email":"bo@y.example","note":"nothing to see here"}` + "\n" // 55 bytes
	ndjsonBufSize = 256
	for _, tc := range []struct {
		name string
		data string
		want []int64 // ordinals
	}{
		// The address starts 8 bytes before the first buffer's end.
		{"straddles the buffer end", strings.Repeat(plain, 4) + `{"e":"` + strings.Repeat("y", 256-4*55-6-8) + `ann@x.example"}` + "\n" + plain, []int64{4}},
		{"line longer than the buffer", plain + `{"n":"` + strings.Repeat("y", 1000) + ` ANN@x.EXAMPLE ` + strings.Repeat("z", 700) + `"}` + "\n" + strings.Repeat(plain, 9) + `{"email":"ann@x.example"}`, []int64{1, 11}},
		{"blank lines are no records", plain + "\n \n\r\n" + plain + "\u00a0\n" + `{"email":"ann@x.example"}` + "\n", []int64{2}},
		{"escaped address", strings.Repeat(plain, 30) + `{"email":"ann\u0040x.example"}` + "\n" + plain, []int64{30}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, skip := range []bool{false, true} {
				var got []int64
				for _, c := range candidatesOf(t, m, tc.data, skip, nil) {
					got = append(got, c.ordinal)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("skip=%v: candidates at ordinals %v, want %v", skip, got, tc.want)
				}
			}
		})
	}
}

// TestSkipperOnlyForText: subjects with phones (searched in a line's
// digits) or with an empty phone, and more subjects than the
// pattern-by-pattern search takes, look at every line.
func TestSkipperOnlyForText(t *testing.T) {
	if textMatcher(sources.Subject{Emails: []string{"a@x.example"}, Phones: []string{"14255550100"}}).skipper() != nil {
		t.Error("a subject with a phone: skipper")
	}
	if textMatcher(sources.Subject{Emails: []string{"a@x.example"}, Phones: []string{""}}).skipper() != nil {
		t.Error("a subject with an empty phone: skipper")
	}
	if textMatcher(benchSubjects(20, false)...).skipper() != nil {
		t.Error("20 subjects (automaton): skipper")
	}
}

// FuzzSkipping: for any data and a subject's email, stepping over lines
// finds the candidates looking at every line finds.
func FuzzSkipping(f *testing.F) {
	f.Add([]byte(`{"email":"ANN@x.example"}`+"\n\n \r\n"+`{"n":"ann\u0040x.example"}`), "ann@x.example")
	f.Add([]byte("a@b\n\u00a0\n%40\r\nA@B"), "a@b")
	f.Fuzz(func(t *testing.T, data []byte, email string) {
		m := textMatcher(sources.Subject{Emails: []string{email}})
		if m.skipper() == nil {
			return
		}
		defer func(n, off int) { ndjsonBufSize, skipGateOff = n, off }(ndjsonBufSize, skipGateOff)
		ndjsonBufSize, skipGateOff = 64, 0
		rng := rand.New(rand.NewPCG(uint64(len(data)), 1))
		want := candidatesOf(t, m, string(data), false, rng)
		if got := candidatesOf(t, m, string(data), true, rng); !reflect.DeepEqual(got, want) {
			t.Fatalf("data %q, email %q:\n skipping %v\nevery line %v", data, email, got, want)
		}
	})
}
