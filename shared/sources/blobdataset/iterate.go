package blobdataset

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/dsr-functions/dsr/shared/sources"
)

// maxLine is the longest NDJSON line or JSON element accepted (16 MiB).
const maxLine = 16 << 20

// rawRecord is one record of a blob before (or without) parsing.
type rawRecord struct {
	ordinal int64
	// raw is the NDJSON line or JSON array element; nil for CSV.
	raw []byte
	// header and row are the CSV header and this record's cells.
	header, row []string
}

// candidate reports whether the record may match: the prefilter looks at the
// raw bytes, never parsing. hit is called on the raw line or on each cell.
func (r *rawRecord) candidate(hit func([]byte) bool) bool {
	if r.raw != nil {
		return hit(r.raw)
	}
	for _, c := range r.row {
		if hit([]byte(c)) {
			return true
		}
	}
	return false
}

// fields parses the record into a field map (JSON values, or CSV strings).
func (r *rawRecord) fields() (map[string]any, error) {
	if r.raw == nil {
		m := make(map[string]any, len(r.header))
		for i, h := range r.header {
			if i < len(r.row) {
				m[h] = r.row[i]
			}
		}
		return m, nil
	}
	dec := json.NewDecoder(bytes.NewReader(r.raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	// Like ParseRecordJSON (which Read uses): one object and nothing else,
	// so discovery never matches a record that the export cannot read.
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the object")
	}
	return m, nil
}

// ordered parses the record keeping field order, for export.
func (r *rawRecord) ordered() (sources.Record, error) {
	if r.raw == nil {
		rec := sources.Record{Fields: make([]sources.Field, 0, len(r.header))}
		for i, h := range r.header {
			if i < len(r.row) {
				rec.Fields = append(rec.Fields, sources.Field{Name: h, Value: r.row[i]})
			}
		}
		return rec, nil
	}
	return sources.ParseRecordJSON(r.raw)
}

// errStop ends an iteration early without error.
var errStop = errors.New("stop")

// iterate calls fn for each record of a blob in order. Ordinals count
// records (blank NDJSON lines are not records), from 0. fn may return
// errStop to end early.
func iterate(ctx context.Context, rd io.Reader, format sources.Format, fn func(*rawRecord) error) error {
	var err error
	switch format {
	case sources.FormatNDJSON:
		err = iterateNDJSON(ctx, rd, fn)
	case sources.FormatCSV:
		err = iterateCSV(ctx, rd, fn)
	case sources.FormatJSONArray:
		err = iterateJSONArray(ctx, rd, fn)
	default:
		err = fmt.Errorf("unsupported format %q", format)
	}
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

func iterateNDJSON(ctx context.Context, rd io.Reader, fn func(*rawRecord) error) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 1<<20), maxLine)
	rec := &rawRecord{}
	var n int64
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		rec.ordinal, rec.raw = n, line
		n++
		if err := fn(rec); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read ndjson: %w", err)
	}
	return nil
}

func iterateCSV(ctx context.Context, rd io.Reader, fn func(*rawRecord) error) error {
	cr := csv.NewReader(bufio.NewReaderSize(rd, 1<<20))
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read csv header: %w", err)
	}
	header = append([]string(nil), header...)
	if len(header) > 0 {
		header[0] = string(bytes.TrimPrefix([]byte(header[0]), []byte("\ufeff")))
	}
	rec := &rawRecord{header: header}
	var n int64
	for {
		row, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return fmt.Errorf("csv record at line %d: %v", pe.StartLine, pe.Err)
			}
			return fmt.Errorf("read csv: %w", err)
		}
		if n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		rec.ordinal, rec.row = n, row
		n++
		if err := fn(rec); err != nil {
			return err
		}
	}
}

func iterateJSONArray(ctx context.Context, rd io.Reader, fn func(*rawRecord) error) error {
	dec := json.NewDecoder(bufio.NewReaderSize(rd, 1<<20))
	tok, err := dec.Token()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read json array: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return errors.New("read json array: the blob is not a JSON array")
	}
	rec := &rawRecord{}
	var n int64
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("json array element %d: %w", n, err)
		}
		if len(raw) > maxLine {
			return fmt.Errorf("json array element %d: larger than %d bytes", n, maxLine)
		}
		if n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		rec.ordinal, rec.raw = n, raw
		n++
		if err := fn(rec); err != nil {
			return err
		}
	}
	// A cut-off or padded blob is an error, never a shorter dataset.
	if tok, err := dec.Token(); err != nil || tok != json.Delim(']') {
		return errors.New("read json array: the array is not closed (truncated blob?)")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("read json array: unexpected data after the array")
	}
	return nil
}
