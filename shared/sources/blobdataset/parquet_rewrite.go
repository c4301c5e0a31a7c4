package blobdataset

// Reading matched Parquet rows for export, and rewriting a Parquet blob for
// erasure, rectification and restriction.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sort"

	"github.com/parquet-go/parquet-go"

	"github.com/dsr-functions/dsr/shared/sources"
)

// openPinned opens loc's Parquet blob at the version loc.ETag names (a
// blob that changed fails with sources.ErrChanged) through r.
func openPinned(ctx context.Context, r blobReader, cont string, loc sources.Location) (*blobReaderAt, *parquet.File, *pqSchema, error) {
	// The first bytes tell the blob's size (and that it is still the
	// version discovery saw).
	body, size, err := r.read(ctx, cont, loc.Blob, loc.ETag, 0, 4)
	if err != nil {
		return nil, nil, nil, readErr(err)
	}
	body.Close()
	ra := &blobReaderAt{ctx: ctx, r: r, cont: cont, name: loc.Blob, etag: loc.ETag, size: size}
	f, err := openParquet(ra)
	if err != nil {
		return nil, nil, nil, err
	}
	s, err := newPQSchema(f.Root())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("the schema: %w", err)
	}
	return ra, f, s, nil
}

// pqErr is err from reading Parquet data through ra: the failed download
// (a change of version, a transport error) if one did, else what.
func pqErr(ra *blobReaderAt, what string, err error) error {
	if ferr := ra.failure(); ferr != nil {
		return readErr(ferr)
	}
	if errors.Is(err, sources.ErrChanged) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%s cannot be decoded", what)
}

// readParquet emits the rows of loc at loc.Ordinals (row indexes in the
// file), seeking to each within its row group.
func (c *Connector) readParquet(ctx context.Context, d *sources.Dataset, loc sources.Location, emit func(sources.Record) error) error {
	if len(loc.Ordinals) == 0 {
		return nil
	}
	for i, o := range loc.Ordinals {
		if o < 0 || (i > 0 && o <= loc.Ordinals[i-1]) {
			return errors.New("ordinals must be non-negative and strictly increasing")
		}
	}
	ra, f, s, err := openPinned(ctx, c.reader, d.Container, loc)
	if err != nil {
		return err
	}
	if last := loc.Ordinals[len(loc.Ordinals)-1]; last >= f.NumRows() {
		return fmt.Errorf("%w (records missing)", sources.ErrChanged)
	}
	var (
		asm  assembler
		cols [][]parquet.Value
		buf  = make([]parquet.Row, 1)
		base int64
		next int
	)
	for g, rg := range f.RowGroups() {
		n := rg.NumRows()
		if next == len(loc.Ordinals) {
			break
		}
		if loc.Ordinals[next] >= base+n {
			base += n
			continue
		}
		err := func() error {
			rows := rg.Rows()
			defer rows.Close()
			for next < len(loc.Ordinals) && loc.Ordinals[next] < base+n {
				o := loc.Ordinals[next]
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := rows.SeekToRow(o - base); err != nil {
					return pqErr(ra, fmt.Sprintf("row group %d", g), err)
				}
				k, err := rows.ReadRows(buf)
				if k != 1 {
					if err == nil {
						err = io.ErrUnexpectedEOF
					}
					return pqErr(ra, fmt.Sprintf("row %d", o), err)
				}
				cols = byColumn(buf[0], s.columns, cols)
				rec, err := asm.recordOf(s.fields, cols)
				if err != nil {
					return fmt.Errorf("row %d cannot be decoded", o)
				}
				if err := emit(rec); err != nil {
					return err
				}
				next++
			}
			return nil
		}()
		if err != nil {
			return err
		}
		base += n
	}
	return nil
}

// rewriteParquet writes to w the Parquet file behind ra with edit applied
// to the rows at ordinals (strictly increasing). It reads and writes one
// row group at a time: every source row group becomes one row group of the
// output (without its deleted rows), so memory stays bounded by a row
// group, not the file. Rows edit keeps unchanged are copied value for
// value; in a replaced row, the top-level fields whose JSON value the
// replacement leaves unchanged are copied value for value too, and only
// the others are encoded from the replacement (see leafValue). The output
// has the same schema, per-column compression and encoding, and key-value
// metadata. It fails with errMissing when the file has fewer rows than
// the last ordinal needs.
func rewriteParquet(ctx context.Context, ra *blobReaderAt, w io.Writer, ordinals []int64, edit Edit) (deleted, replaced int, err error) {
	f, err := openParquet(ra)
	if err != nil {
		return 0, 0, err
	}
	s, err := newPQSchema(f.Root())
	if err != nil {
		return 0, 0, fmt.Errorf("the schema: %w", err)
	}
	if len(ordinals) > 0 && ordinals[len(ordinals)-1] >= f.NumRows() {
		return 0, 0, errMissing
	}
	maxRows := int64(1)
	for _, rg := range f.RowGroups() {
		maxRows = max(maxRows, rg.NumRows())
	}
	opts := []parquet.WriterOption{f.Schema(), parquet.MaxRowsPerRowGroup(maxRows)}
	for _, kv := range f.Metadata().KeyValueMetadata {
		opts = append(opts, parquet.KeyValueMetadata(kv.Key, kv.Value))
	}
	pw := parquet.NewWriter(w, opts...)
	var (
		asm  assembler
		cols [][]parquet.Value
		buf  = make([]parquet.Row, 64)
		out  []parquet.Row
		base int64
		next int
	)
	for g, rg := range f.RowGroups() {
		err := func() error {
			rows := rg.Rows()
			defer rows.Close()
			for done := int64(0); done < rg.NumRows(); {
				if err := ctx.Err(); err != nil {
					return err
				}
				k, err := rows.ReadRows(buf)
				if k == 0 {
					if err == nil || err == io.EOF {
						err = io.ErrUnexpectedEOF
					}
					return pqErr(ra, fmt.Sprintf("row group %d", g), err)
				}
				out = out[:0]
				for _, row := range buf[:k] {
					o := base + done
					done++
					if next == len(ordinals) || o != ordinals[next] {
						out = append(out, row)
						continue
					}
					next++
					cols = byColumn(row, s.columns, cols)
					rec, err := asm.recordOf(s.fields, cols)
					if err != nil {
						return fmt.Errorf("row %d cannot be decoded", o)
					}
					repl, err := edit(o, rec)
					if err != nil {
						return fmt.Errorf("edit record %d: %w", o, err)
					}
					if repl == nil {
						deleted++
						continue
					}
					nr, err := s.rowOf(repl, rec, cols)
					if err != nil {
						return fmt.Errorf("record %d: replacement: %w", o, err)
					}
					replaced++
					out = append(out, nr)
				}
				if _, err := pw.WriteRows(out); err != nil {
					return fmt.Errorf("write rows: %w", err)
				}
				if err != nil && err != io.EOF {
					return pqErr(ra, fmt.Sprintf("row group %d", g), err)
				}
			}
			return nil
		}()
		if err != nil {
			return 0, 0, err
		}
		if err := pw.Flush(); err != nil {
			return 0, 0, fmt.Errorf("write row group %d: %w", g, err)
		}
		base += rg.NumRows()
	}
	if next != len(ordinals) {
		return 0, 0, errMissing
	}
	if err := pw.Close(); err != nil {
		return 0, 0, fmt.Errorf("write footer: %w", err)
	}
	return deleted, replaced, nil
}

// rowOf encodes repl, the replacement of record orig (whose values by leaf
// column are cols), as a row. Top-level fields whose value is unchanged
// keep their values; a field repl lacks is null (an error for a required
// field); a field that is not in the schema is an error.
func (s *pqSchema) rowOf(repl *sources.Record, orig sources.Record, cols [][]parquet.Value) (parquet.Row, error) {
	vals := make(map[string]any, len(repl.Fields))
	for _, f := range repl.Fields {
		if _, dup := vals[f.Name]; dup {
			return nil, fmt.Errorf("field %q repeats", f.Name)
		}
		if !slices.ContainsFunc(s.fields, func(p *pqField) bool { return p.name == f.Name }) {
			return nil, fmt.Errorf("field %q is not a column of the Parquet schema", f.Name)
		}
		vals[f.Name] = f.Value
	}
	sh := shredder{out: make([][]parquet.Value, s.columns)}
	for i, f := range s.fields {
		x := vals[f.name]
		if reflect.DeepEqual(x, orig.Fields[i].Value) {
			for c := f.first; c < f.first+f.n; c++ {
				sh.out[c] = cols[c]
			}
			continue
		}
		if err := sh.field(f, x, 0); err != nil {
			return nil, fmt.Errorf("field %q: %w", f.name, err)
		}
	}
	var row parquet.Row
	for _, vs := range sh.out {
		row = append(row, vs...)
	}
	return row, nil
}

// shredder encodes JSON values as the leaf values of a row, with their
// repetition and definition levels (the inverse of assembler).
type shredder struct{ out [][]parquet.Value }

// nulls writes the one value each leaf of f has where f is null, empty or
// absent: def is the definition level reached above f.
func (s *shredder) nulls(f *pqField, r, def int) {
	for c := f.first; c < f.first+f.n; c++ {
		s.out[c] = append(s.out[c], parquet.NullValue().Level(r, def, c))
	}
}

// field writes field f holding x, its first values at repetition level r.
func (s *shredder) field(f *pqField, x any, r int) error {
	if f.repeated {
		items, ok := x.([]any)
		if x != nil && !ok {
			return errors.New("a repeated field needs an array")
		}
		if len(items) == 0 {
			s.nulls(f, r, f.def-1)
			return nil
		}
		for i, it := range items {
			rr := r
			if i > 0 {
				rr = f.rep
			}
			if err := s.instance(f, it, rr); err != nil {
				return err
			}
		}
		return nil
	}
	if x == nil {
		if !f.optional {
			return errors.New("a required field cannot be null")
		}
		s.nulls(f, r, f.def-1)
		return nil
	}
	return s.instance(f, x, r)
}

// instance writes one present instance of f.
func (s *shredder) instance(f *pqField, x any, r int) error {
	if f.col.Leaf() {
		if x == nil {
			return errors.New("a required field cannot be null")
		}
		v, err := leafValue(x, f.col.Type())
		if err != nil {
			return err
		}
		s.out[f.first] = append(s.out[f.first], v.Level(r, f.def, f.first))
		return nil
	}
	if f.list || f.mapping {
		rep := f.children[0]
		var entries []any
		switch y := x.(type) {
		case []any:
			entries = y
		case map[string]any:
			if !f.mapping {
				return errors.New("a list needs an array")
			}
			keys := make([]string, 0, len(y))
			for k := range y {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				entries = append(entries, map[string]any{"key": k, "value": y[k]})
			}
		default:
			return errors.New("a list or map needs an array or object")
		}
		if f.list && !rep.col.Leaf() && len(rep.children) == 1 {
			wrapped := make([]any, len(entries))
			for i, e := range entries {
				wrapped[i] = map[string]any{rep.children[0].name: e}
			}
			entries = wrapped
		}
		return s.field(rep, entries, r)
	}
	obj, ok := x.(map[string]any)
	if !ok {
		return errors.New("a group needs an object")
	}
	for k := range obj {
		if !slices.ContainsFunc(f.children, func(c *pqField) bool { return c.name == k }) {
			return fmt.Errorf("%q is not a field of the group", k)
		}
	}
	for _, ch := range f.children {
		if err := s.field(ch, obj[ch.name], r); err != nil {
			return fmt.Errorf("%s: %w", ch.name, err)
		}
	}
	return nil
}
