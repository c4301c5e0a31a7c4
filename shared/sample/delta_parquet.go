package sample

// Streaming conversion of the native sample files (NDJSON, CSV, JSON
// array) into rows of a Go struct, written as Parquet: the native file is
// generated into a pipe and parsed record by record, so memory stays
// bounded by one Parquet row group, whatever the size.

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// pqRowGroup is how many rows a sample Parquet file holds per row group.
const pqRowGroup = 50_000

// eachNative generates file f and calls fn with each of its records
// decoded into a T (JSON field names; CSV cells as strings).
func eachNative[T any](ctx context.Context, f File, size Size, seed uint64, fn func(*T) error) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(Generate(pw, f, size, seed)) }()
	defer pr.Close()
	var row T
	decode := func(b []byte) error {
		row = *new(T)
		if err := json.Unmarshal(b, &row); err != nil {
			return fmt.Errorf("sample: %s: %w", f.Name, err)
		}
		return fn(&row)
	}
	switch {
	case strings.HasSuffix(f.Name, ".ndjson"):
		br := bufio.NewReaderSize(pr, 64<<10)
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			line, err := br.ReadBytes('\n')
			if len(strings.TrimSpace(string(line))) > 0 {
				if derr := decode(line); derr != nil {
					return derr
				}
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	case strings.HasSuffix(f.Name, ".csv"):
		cr := csv.NewReader(bufio.NewReaderSize(pr, 64<<10))
		header, err := cr.Read()
		if err != nil {
			return fmt.Errorf("sample: %s: header: %w", f.Name, err)
		}
		cells := make(map[string]string, len(header))
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			rec, err := cr.Read()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("sample: %s: %w", f.Name, err)
			}
			for i, h := range header {
				cells[h] = rec[i]
			}
			b, _ := json.Marshal(cells)
			if err := decode(b); err != nil {
				return err
			}
		}
	case strings.HasSuffix(f.Name, ".json"):
		dec := json.NewDecoder(bufio.NewReaderSize(pr, 64<<10))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
			return fmt.Errorf("sample: %s: not a JSON array", f.Name)
		}
		for dec.More() {
			if err := ctx.Err(); err != nil {
				return err
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return fmt.Errorf("sample: %s: %w", f.Name, err)
			}
			if err := decode(raw); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("sample: %s: unknown native format", f.Name)
}

// pqWriter writes rows of T as one Parquet file (Snappy, row groups of
// pqRowGroup rows), counting rows and bytes.
type pqWriter[T any] struct {
	cw   *counter
	w    *parquet.GenericWriter[T]
	buf  []T
	rows int64
}

type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func newPQWriter[T any](w io.Writer) *pqWriter[T] {
	cw := &counter{w: w}
	return &pqWriter[T]{cw: cw, w: parquet.NewGenericWriter[T](cw, parquet.Compression(&parquet.Snappy), parquet.MaxRowsPerRowGroup(pqRowGroup))}
}

func (p *pqWriter[T]) write(row T) error {
	p.buf = append(p.buf, row)
	p.rows++
	if len(p.buf) == 1024 {
		return p.flush()
	}
	return nil
}

func (p *pqWriter[T]) flush() error {
	if len(p.buf) == 0 {
		return nil
	}
	_, err := p.w.Write(p.buf)
	p.buf = p.buf[:0]
	return err
}

func (p *pqWriter[T]) close() error {
	if err := p.flush(); err != nil {
		return err
	}
	return p.w.Close()
}

// deltaColumn is a column of a Delta schema.
type deltaColumn struct {
	name, typ string
}

// deltaColumns are T's columns for the Delta schema, in struct order: the
// parquet-tagged fields, and the fields tagged parquet:"-" (partition
// columns, which are not in the data files) under their JSON name. Types:
// *string string, *int64 long, *bool boolean, string string.
func deltaColumns[T any]() ([]deltaColumn, error) {
	t := reflect.TypeFor[T]()
	var out []deltaColumn
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("parquet"), ",")
		if name == "-" || name == "" {
			name, _, _ = strings.Cut(sf.Tag.Get("json"), ",")
		}
		ft := sf.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		var typ string
		switch ft.Kind() {
		case reflect.String:
			typ = "string"
		case reflect.Int64:
			typ = "long"
		case reflect.Bool:
			typ = "boolean"
		default:
			return nil, errors.New("sample: no Delta type for " + sf.Name)
		}
		out = append(out, deltaColumn{name, typ})
	}
	return out, nil
}

// deltaSchemaString is the Delta schema (JSON) of cols, every column
// nullable.
func deltaSchemaString(cols []deltaColumn) string {
	type field struct {
		Name     string         `json:"name"`
		Type     string         `json:"type"`
		Nullable bool           `json:"nullable"`
		Metadata map[string]any `json:"metadata"`
	}
	s := struct {
		Type   string  `json:"type"`
		Fields []field `json:"fields"`
	}{Type: "struct", Fields: []field{}}
	for _, c := range cols {
		s.Fields = append(s.Fields, field{c.name, c.typ, true, map[string]any{}})
	}
	b, _ := json.Marshal(s)
	return string(b)
}
