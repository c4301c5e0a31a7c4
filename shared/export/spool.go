package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"

	"github.com/dsr-functions/dsr/shared/sources"
)

// spool is the temporary NDJSON file that holds every dataset's records
// between reading them and writing the archive. Datasets are appended one
// after the other; each one's part is a byte range of the file.
type spool struct {
	f   *os.File
	bw  *bufio.Writer
	off int64 // bytes appended so far

	line bytes.Buffer  // the record being encoded
	enc  *json.Encoder // writes into line
}

// spooled is one dataset's part of the spool.
type spooled struct {
	start, size int64
	records     int64
	// columns is the union of field names in order of first appearance.
	columns []string
	// types, for a dataset with Schema, are its fields' JSON types.
	types *columnTypes
}

const spoolBufSize = 64 << 10

var errEmitAfterReturn = errors.New("emit called after Read returned")

func newSpool() (*spool, error) {
	f, err := os.CreateTemp("", "dsr-export-*.ndjson")
	if err != nil {
		return nil, fmt.Errorf("create spool file: %w", err)
	}
	s := &spool{f: f, bw: bufio.NewWriterSize(f, spoolBufSize)}
	s.enc = json.NewEncoder(&s.line)
	s.enc.SetEscapeHTML(false)
	return s, nil
}

// remove closes and deletes the spool file.
func (s *spool) remove() error {
	cerr := s.f.Close()
	if err := os.Remove(s.f.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove spool file: %w", err)
	}
	if cerr != nil && !errors.Is(cerr, os.ErrClosed) {
		return fmt.Errorf("close spool file: %w", cerr)
	}
	return nil
}

// flush writes buffered records to the file; call it before reading back.
func (s *spool) flush() error {
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("write spool file: %w", err)
	}
	return nil
}

// add calls d.Read once and appends its records to the spool.
func (s *spool) add(ctx context.Context, d Dataset) (spooled, error) {
	p := spooled{start: s.off}
	if d.Schema {
		p.types = newColumnTypes()
	}
	seen := map[string]struct{}{}
	var (
		emitErr  error
		returned bool
	)
	emit := func(r sources.Record) error {
		if emitErr != nil {
			return emitErr
		}
		if returned {
			emitErr = errEmitAfterReturn
			return emitErr
		}
		if err := ctx.Err(); err != nil {
			emitErr = err
			return err
		}
		n := p.records + 1
		if err := s.encodeRecord(r, p.types); err != nil {
			emitErr = fmt.Errorf("record %d: %w", n, err)
			return emitErr
		}
		if _, err := s.bw.Write(s.line.Bytes()); err != nil {
			emitErr = fmt.Errorf("write spool file: %w", err)
			return emitErr
		}
		s.off += int64(s.line.Len())
		p.records = n
		for _, f := range r.Fields {
			if _, ok := seen[f.Name]; !ok {
				seen[f.Name] = struct{}{}
				p.columns = append(p.columns, f.Name)
			}
		}
		return nil
	}
	err := d.Read(ctx, emit)
	returned = true
	if err != nil {
		return spooled{}, fmt.Errorf("read: %w", err)
	}
	if emitErr != nil {
		return spooled{}, emitErr
	}
	if err := ctx.Err(); err != nil {
		return spooled{}, err
	}
	p.size = s.off - p.start
	return p, nil
}

// encodeRecord encodes r into s.line as one compact JSON object with its
// fields in source order, followed by a newline. JSON never holds a raw
// newline outside strings' escapes, so each record is exactly one line.
func (s *spool) encodeRecord(r sources.Record, types *columnTypes) error {
	s.line.Reset()
	s.line.WriteByte('{')
	for i, f := range r.Fields {
		if types != nil && !slices.ContainsFunc(r.Fields[:i], func(g sources.Field) bool { return g.Name == f.Name }) {
			types.count[f.Name]++
		}
		if i > 0 {
			s.line.WriteByte(',')
		}
		if err := s.encodeValue(f.Name); err != nil {
			return fmt.Errorf("field %d: name cannot be encoded as JSON", i+1)
		}
		s.line.WriteByte(':')
		start := s.line.Len()
		if err := s.encodeValue(f.Value); err != nil {
			// The encoder's message may quote the value; report its type only.
			return fmt.Errorf("field %q: %T value cannot be encoded as JSON", f.Name, f.Value)
		}
		if types != nil {
			types.add(f.Name, s.line.Bytes()[start:])
		}
	}
	s.line.WriteString("}\n")
	return nil
}

var errNotFinite = errors.New("number is not finite")

// encodeValue appends v as JSON to s.line. Top-level floats are written
// without exponent so that integral values such as 1e21 keep all digits.
func (s *spool) encodeValue(v any) error {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return errNotFinite
		}
		s.line.Write(strconv.AppendFloat(s.line.AvailableBuffer(), x, 'f', -1, 64))
		return nil
	case float32:
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return errNotFinite
		}
		s.line.Write(strconv.AppendFloat(s.line.AvailableBuffer(), f, 'f', -1, 32))
		return nil
	}
	// Encode marshals into its own buffer and writes only on success.
	if err := s.enc.Encode(v); err != nil {
		return err
	}
	s.line.Truncate(s.line.Len() - 1) // the newline Encode appends
	return nil
}

// lines calls fn with each line of p's part of the spool, without the
// newline. The line is only valid during the call.
func (s *spool) lines(ctx context.Context, p spooled, fn func(line []byte) error) error {
	br := bufio.NewReaderSize(io.NewSectionReader(s.f, p.start, p.size), spoolBufSize)
	var (
		buf []byte
		n   int64
	)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, err := readLine(br, buf[:0])
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read spool file: %w", err)
		}
		n++
		if err := fn(line); err != nil {
			return err
		}
		buf = line[:0]
	}
	if n != p.records {
		return fmt.Errorf("spool file holds %d records, want %d", n, p.records)
	}
	return nil
}

// readLine appends the next line of br to buf and returns it without the
// newline. It returns io.EOF at the end of input, and io.ErrUnexpectedEOF if
// the last line has no newline.
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(buf) == 0 {
				return nil, io.EOF
			}
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// decodeRecord decodes one JSON object into fields appended to dst, keeping
// the order of the object's members. Numbers decode as json.Number, nested
// objects as map[string]any and arrays as []any.
func decodeRecord(line []byte, dst []sources.Field) ([]sources.Field, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return dst, jsonError(err)
	}
	if tok != json.Delim('{') {
		return dst, errors.New("record is not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return dst, jsonError(err)
		}
		name, ok := tok.(string)
		if !ok {
			return dst, errors.New("malformed JSON object")
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return dst, jsonError(err)
		}
		dst = append(dst, sources.Field{Name: name, Value: v})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return dst, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return dst, errors.New("trailing data after JSON object")
	}
	return dst, nil
}

// jsonError reports a decoding error without the decoder's message, which
// may quote the data.
func jsonError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("malformed JSON at byte %d", se.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("truncated JSON object")
	}
	return errors.New("malformed JSON")
}
