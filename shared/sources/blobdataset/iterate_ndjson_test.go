package blobdataset

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// referenceNDJSON is the bufio.Scanner line splitter iterateNDJSON
// replaced; the tests below check that both see the same records, gaps and
// errors.
func referenceNDJSON(ctx context.Context, rd io.Reader, fn func(*rawRecord) error, gap func([]byte) error) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 1<<20), maxLine)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if atEOF && len(data) == 0 {
			return 0, nil, nil
		}
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			return i + 1, data[:i+1], nil
		}
		if atEOF {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	rec := &rawRecord{}
	var n int64
	for sc.Scan() {
		full := sc.Bytes()
		line := bytes.TrimSpace(full)
		if len(line) == 0 {
			if gap != nil {
				if err := gap(full); err != nil {
					return err
				}
			}
			continue
		}
		if n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		rec.ordinal, rec.raw, rec.span = n, line, full
		n++
		if err := fn(rec); err != nil {
			return err
		}
	}
	return sc.Err()
}

// ndjsonEvents runs an NDJSON splitter and lists what it reported.
func ndjsonEvents(split func(context.Context, io.Reader, func(*rawRecord) error, func([]byte) error) error, rd io.Reader) ([]string, bool) {
	var ev []string
	err := split(context.Background(), rd, func(r *rawRecord) error {
		ev = append(ev, fmt.Sprintf("record %d raw=%q span=%q", r.ordinal, r.raw, r.span))
		return nil
	}, func(b []byte) error {
		ev = append(ev, fmt.Sprintf("gap %q", b))
		return nil
	})
	return ev, err == nil
}

// chunkReader returns its data in chunks of random sizes, sometimes empty,
// sometimes with io.EOF on the last data.
type chunkReader struct {
	data []byte
	rng  *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), len(c.data), c.rng.IntN(12))
	n := copy(p, c.data[:k])
	c.data = c.data[n:]
	if len(c.data) == 0 && c.rng.IntN(2) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// TestNDJSONSplitterMatchesScanner compares the splitter with the reference
// on random line mixes (blank, whitespace-only, Unicode spaces, CRLF, no
// final newline), read in random chunks through a small buffer so that
// lines cross buffer boundaries and make it grow.
func TestNDJSONSplitterMatchesScanner(t *testing.T) {
	defer func(n int) { ndjsonBufSize = n }(ndjsonBufSize)
	rng := rand.New(rand.NewPCG(11, 12))
	parts := []string{`{"a":1}`, `{"email":"ann@x.example"}`, "", " ", "\t", "\r", "\u00a0", "\u2028", "\u0085", " {\"b\":2} ", "x", strings.Repeat("y", 40)}
	for iter := range 3000 {
		var sb strings.Builder
		for range rng.IntN(12) {
			sb.WriteString(parts[rng.IntN(len(parts))])
			if rng.IntN(8) > 0 {
				sb.WriteString([]string{"\n", "\r\n"}[rng.IntN(2)])
			}
		}
		data := sb.String()
		ndjsonBufSize = 1 + rng.IntN(16)
		want, wantOK := ndjsonEvents(referenceNDJSON, strings.NewReader(data))
		got, gotOK := ndjsonEvents(splitNDJSON, &chunkReader{data: []byte(data), rng: rng})
		if !reflect.DeepEqual(got, want) || gotOK != wantOK {
			t.Fatalf("iter %d, buffer %d, data %q:\n got %q (ok %v)\nwant %q (ok %v)", iter, ndjsonBufSize, data, got, gotOK, want, wantOK)
		}
	}
}

// TestNDJSONLineLimit: a line is accepted up to maxLine bytes with its
// ending; beyond that, or a final line without ending that fills maxLine,
// fails, as it did with bufio.Scanner.
func TestNDJSONLineLimit(t *testing.T) {
	long := func(n int) string { return `{"a":"` + strings.Repeat("x", n-8) + `"}` }
	for _, tc := range []struct {
		name string
		data string
		ok   bool
	}{
		{"maxLine with newline", long(maxLine-1) + "\n{}\n", true},
		{"maxLine with CRLF", long(maxLine-2) + "\r\n{}", true},
		{"one byte too long", long(maxLine) + "\n{}\n", false},
		{"final line below maxLine", "{}\n" + long(maxLine-1), true},
		{"final line of maxLine", "{}\n" + long(maxLine), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, split := range map[string]func(context.Context, io.Reader, func(*rawRecord) error, func([]byte) error) error{"iterateNDJSON": splitNDJSON, "reference": referenceNDJSON} {
				records := 0
				err := split(context.Background(), strings.NewReader(tc.data), func(*rawRecord) error { records++; return nil }, nil)
				if (err == nil) != tc.ok {
					t.Errorf("%s: %d records, error %v; want ok=%v", name, records, err, tc.ok)
				}
				if err != nil && strings.Contains(err.Error(), "xxxx") {
					t.Errorf("%s: error shows data: %.80s", name, err)
				}
			}
		})
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestNDJSONReadErrors: a failing or stuck reader fails the iteration.
func TestNDJSONReadErrors(t *testing.T) {
	boom := errors.New("boom")
	err := iterateNDJSON(context.Background(), io.MultiReader(strings.NewReader("{}\n{}"), errReader{boom}), func(*rawRecord) error { return nil }, nil, nil)
	if !errors.Is(err, boom) {
		t.Errorf("failing reader: %v", err)
	}
	err = iterateNDJSON(context.Background(), errReader{nil}, func(*rawRecord) error { return nil }, nil, nil)
	if !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("stuck reader: %v", err)
	}
}

func TestTrimLineIsTrimSpace(t *testing.T) {
	for _, l := range []string{"{}\n", "{}\r\n", "{\"a\":1}\n", " {}\n", "{} \n", "{}\t\r\n", "{\n", "}\n", "\n", "", "{}", "{}\r", "x\n", "{}\n\n"} {
		if got, want := trimLine([]byte(l)), bytes.TrimSpace([]byte(l)); !bytes.Equal(got, want) {
			t.Errorf("trimLine(%q) = %q, want %q", l, got, want)
		}
	}
}

// splitNDJSON is iterateNDJSON looking at every line.
func splitNDJSON(ctx context.Context, rd io.Reader, fn func(*rawRecord) error, gap func([]byte) error) error {
	return iterateNDJSON(ctx, rd, fn, gap, nil)
}
