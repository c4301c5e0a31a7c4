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
	"sync"

	"github.com/dsr-functions/dsr/shared/match"
	"github.com/dsr-functions/dsr/shared/sources"
)

// maxLine is the longest NDJSON line or JSON element accepted (16 MiB).
const maxLine = 16 << 20

// rawRecord is one record of a blob before (or without) parsing.
type rawRecord struct {
	ordinal int64
	// raw is the NDJSON line or JSON array element; nil for CSV.
	raw []byte
	// span is the record's exact bytes in the blob: the NDJSON line with its
	// surrounding blanks and line ending, the CSV row with its quoting and
	// line ending, or the JSON array element. It is set for NDJSON always
	// and for the other formats when iterating with iterateSpans.
	span []byte
	// header and row are the CSV header and this record's cells.
	header, row []string
	// offset and length place the record's bytes in the blob, for every
	// format and iteration (with or without spans); discovery records them
	// so that Read can fetch the record alone. For NDJSON and JSON arrays
	// they are span's position. For CSV they run from the end of the
	// previous row (or of the header) to the end of this row's line
	// ending: the row with the empty lines that csv.Reader skipped before
	// it, which parse to nothing.
	offset, length int64
	// marks, when set, answers whether raw holds an encoding mark for the
	// lines of one NDJSON buffer; markStart and markEnd are the line's
	// bounds in that buffer.
	marks              *match.MarkFinder
	markStart, markEnd int
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
	return iterateSpans(ctx, rd, format, fn, nil)
}

// iterateSpans is iterate that, when gap is not nil, also hands back every
// byte of the blob: each record's exact bytes as rawRecord.span, and the
// bytes that belong to no record (blank NDJSON lines, the CSV header row and
// the empty lines CSV skips, the JSON array's brackets, separators and
// whitespace) to gap, in blob order: the bytes before a record go to gap
// before fn sees the record, and the bytes after the last record go to gap
// before iterateSpans returns nil. So when it returns nil, the gaps and
// spans joined in call order are the blob. Slices passed to fn and gap may
// be reused once they return. Records and ordinals are the same as iterate's.
func iterateSpans(ctx context.Context, rd io.Reader, format sources.Format, fn func(*rawRecord) error, gap func([]byte) error) error {
	var err error
	switch format {
	case sources.FormatNDJSON:
		err = iterateNDJSON(ctx, rd, fn, gap, nil)
	case sources.FormatCSV:
		err = iterateCSV(ctx, rd, fn, gap)
	case sources.FormatJSONArray:
		err = iterateJSONArray(ctx, rd, fn, gap)
	default:
		err = fmt.Errorf("unsupported format %q", format)
	}
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// tracker remembers the bytes read through it from a mark on, so that the
// exact bytes of what a reading-ahead parser (csv.Reader, json.Decoder)
// parsed can be cut out by the parser's input offset.
type tracker struct {
	r io.Reader
	// buf holds the bytes read from stream offset base (the mark) on.
	buf  []byte
	base int64
}

func (t *tracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.buf = append(t.buf, p[:n]...)
	return n, err
}

// take returns the bytes from the mark up to stream offset end and moves
// the mark to end. Bytes are never overwritten in place, so the slice stays
// valid; buf only keeps what lies after the mark.
func (t *tracker) take(end int64) ([]byte, error) {
	k := end - t.base
	if k < 0 || k > int64(len(t.buf)) {
		return nil, errors.New("internal error: parser offset outside the bytes read")
	}
	b := t.buf[:k:k]
	t.buf = t.buf[k:]
	t.base = end
	return b, nil
}

// rest returns every byte read after the mark (at the end of the stream:
// the bytes after the last record).
func (t *tracker) rest() []byte {
	b, _ := t.take(t.base + int64(len(t.buf)))
	return b
}

// ndjsonBufSize is the first size of the buffer NDJSON blobs are read
// through; it doubles, up to maxLine, only for longer lines. A variable so
// that tests can cross buffer boundaries with little data.
var ndjsonBufSize = 1 << 20

// ndjsonBufs keeps the read buffers of finished NDJSON iterations (those
// that did not grow), so that datasets of many small blobs do not allocate
// a buffer per blob.
var ndjsonBufs = sync.Pool{New: func() any { return new([]byte) }}

// readers keeps the 1 MiB buffered readers of finished CSV and JSON-array
// iterations.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 1<<20) }}

// pooledReader returns a buffered reader over rd and a function that gives
// it back to the pool.
func pooledReader(rd io.Reader) (*bufio.Reader, func()) {
	br := readers.Get().(*bufio.Reader)
	br.Reset(rd)
	return br, func() {
		br.Reset(nil)
		readers.Put(br)
	}
}

// maxEmptyReads is how many reads in a row may return no data and no error
// before a reader counts as broken (as in bufio).
const maxEmptyReads = 100

// trimLine is bytes.TrimSpace for an NDJSON line, with a fast path for
// the usual line: an object right up to its "\n" or "\r\n" ending.
func trimLine(full []byte) []byte {
	n := len(full)
	if n >= 2 && full[0] == '{' && full[n-1] == '\n' {
		if full[n-2] == '}' {
			return full[:n-1]
		}
		if n >= 3 && full[n-2] == '\r' && full[n-3] == '}' {
			return full[:n-2]
		}
	}
	return bytes.TrimSpace(full)
}

// lineSkipper points a scan at the NDJSON lines of a read buffer it must
// look at, so that it can step over the others in whole stretches instead
// of line by line (see iterateSkipping).
type lineSkipper interface {
	// reset starts answering for buf, the bytes read so far.
	reset(buf []byte)
	// next returns a position at or after from (a line start, never less
	// than in the call before since reset) such that the lines lying
	// wholly inside buf[from:next] are records (not blank) that fn need
	// not see, len(buf) when that holds for every line after from; and
	// how many '\n' lie in buf[from:next].
	next(from int) (int, int)
}

// iterateSkipping is iterate for a scan that looks only at some records:
// for NDJSON, the complete lines skip steps over are counted (so that
// ordinals stay those of iterate) but not handed to fn, and the records fn
// sees carry no MarkFinder (their escape marks are looked for line by
// line: they are few). Other formats, or a nil skip, iterate every record.
func iterateSkipping(ctx context.Context, rd io.Reader, format sources.Format, skip lineSkipper, fn func(*rawRecord) error) error {
	if format != sources.FormatNDJSON || skip == nil {
		return iterate(ctx, rd, format, fn)
	}
	err := iterateNDJSON(ctx, rd, fn, nil, skip)
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// skipLines returns where the stretch of complete lines of buf that skip
// says need not be looked at ends (a line start at or after start), and
// how many lines it holds.
func skipLines(skip lineSkipper, buf []byte, start int) (int, int64) {
	q, lines := skip.next(start)
	if lines == 0 {
		return start, 0
	}
	// The line that holds q starts after the last '\n' before q.
	return start + bytes.LastIndexByte(buf[start:q], '\n') + 1, int64(lines)
}

// skipGate turns line skipping off for a while where it does not pay: in
// data where lines of interest are common (every line holding an escape
// mark, say), stepping from one to the next costs more than looking at
// every line with the buffer's MarkFinder.
type skipGate struct {
	// on: the current buffer is being skipped through.
	on bool
	// seen and skipped count the lines looked at and stepped over in it.
	seen, skipped int64
	// off is how many more buffers are looked at line by line.
	off int
}

// skipGateDense is the share of lines of interest above which skipping is
// turned off, for skipGateOff buffers (reads).
const skipGateDense = 1.0 / 16

// skipGateOff is a variable so that tests can keep skipping on (0).
var skipGateOff = 16

// next is called for each new buffer: it reports whether to skip
// through it.
func (g *skipGate) next() bool {
	if g.on && float64(g.seen) > skipGateDense*float64(g.seen+g.skipped) {
		g.off = skipGateOff
	}
	g.seen, g.skipped = 0, 0
	g.on = g.off == 0
	if g.off > 0 {
		g.off--
	}
	return g.on
}

// iterateNDJSON splits the stream into lines in its own buffer: this is the
// hot loop of discovery. A line (with its ending) longer than maxLine
// fails, as does a final line without ending that fills maxLine. With
// skip set (and gap nil), it steps over the lines skip points away from.
func iterateNDJSON(ctx context.Context, rd io.Reader, fn func(*rawRecord) error, gap func([]byte) error, skip lineSkipper) error {
	return iterateNDJSONCounting(ctx, rd, fn, gap, skip, nil)
}

// iterateNDJSONCounting is iterateNDJSON that also sets *records to the
// number of records it went through (skipped ones too), when records is
// not nil: a scan of part of a blob needs it to number the next part's.
func iterateNDJSONCounting(ctx context.Context, rd io.Reader, fn func(*rawRecord) error, gap func([]byte) error, skip lineSkipper, records *int64) error {
	pooled := ndjsonBufs.Get().(*[]byte)
	buf := *pooled
	if len(buf) != ndjsonBufSize {
		buf = make([]byte, ndjsonBufSize)
	}
	defer func() {
		if len(buf) == ndjsonBufSize {
			*pooled = buf
			ndjsonBufs.Put(pooled)
		}
	}()
	start, end := 0, 0 // buf[start:end] is read but not yet split
	var base int64     // the stream offset of buf[0]
	eof := false
	marks := &match.MarkFinder{}
	rec := &rawRecord{marks: marks}
	var gate skipGate
	var n int64
	if records != nil {
		defer func() { *records = n }()
	}
	line := func(full []byte, off int64) error {
		// Lines keep their ending (a line and its ending fit in the
		// buffer either way); trimming yields what bufio.ScanLines would.
		trimmed := trimLine(full)
		if len(trimmed) == 0 {
			if gap != nil {
				return gap(full)
			}
			return nil
		}
		if n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		rec.ordinal, rec.raw, rec.span = n, trimmed, full
		rec.offset, rec.length = off, int64(len(full))
		rec.markStart = int(off - base)
		rec.markEnd = rec.markStart + len(full)
		n++
		return fn(rec)
	}
	for empty := 0; ; {
		for {
			if gate.on && start < end {
				var skipped int64
				start, skipped = skipLines(skip, buf[:end], start)
				n += skipped
				gate.skipped += skipped
			}
			i := bytes.IndexByte(buf[start:end], '\n')
			if i < 0 {
				break
			}
			gate.seen++
			full := buf[start : start+i+1]
			off := base + int64(start)
			start += i + 1
			if err := line(full, off); err != nil {
				return err
			}
		}
		if eof {
			if start < end {
				full := buf[start:end]
				off := base + int64(start)
				start = end
				return line(full, off)
			}
			return nil
		}
		if start > 0 {
			end = copy(buf, buf[start:end])
			base += int64(start)
			start = 0
		}
		if end == len(buf) {
			if len(buf) >= maxLine {
				return fmt.Errorf("read ndjson: a line is longer than %d bytes", maxLine)
			}
			buf = append(buf, make([]byte, min(2*len(buf), maxLine)-len(buf))...)
		}
		k, err := rd.Read(buf[end:])
		end += k
		marks.Reset(buf[:end])
		rec.marks = marks
		if skip != nil && gate.next() {
			// Skipped lines never reach line's periodic check.
			if err := ctx.Err(); err != nil {
				return err
			}
			skip.reset(buf[:end])
			// The few lines looked at look for escape marks on their own
			// (MarkFinder's first answer costs a search of the buffer).
			rec.marks = nil
		}
		switch {
		case err == io.EOF:
			eof = true
		case err != nil:
			return fmt.Errorf("read ndjson: %w", err)
		case k == 0:
			if empty++; empty >= maxEmptyReads {
				return fmt.Errorf("read ndjson: %w", io.ErrNoProgress)
			}
		default:
			empty = 0
		}
	}
}

func iterateCSV(ctx context.Context, rd io.Reader, fn func(*rawRecord) error, gap func([]byte) error) error {
	var t *tracker
	if gap != nil {
		t = &tracker{r: rd}
		rd = t
	}
	br, release := pooledReader(rd)
	defer release()
	cr := csv.NewReader(br)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		if t != nil {
			return gap(t.rest())
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read csv header: %w", err)
	}
	if t != nil {
		b, err := t.take(cr.InputOffset())
		if err != nil {
			return err
		}
		if err := gap(b); err != nil {
			return err
		}
	}
	header = append([]string(nil), header...)
	if len(header) > 0 {
		header[0] = string(bytes.TrimPrefix([]byte(header[0]), []byte("\ufeff")))
	}
	rec := &rawRecord{header: header}
	var n int64
	prevEnd := cr.InputOffset()
	for {
		row, err := cr.Read()
		if err == io.EOF {
			if t != nil {
				return gap(t.rest())
			}
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
		rowEnd := cr.InputOffset()
		rec.offset, rec.length = prevEnd, rowEnd-prevEnd
		prevEnd = rowEnd
		if t != nil {
			b, err := t.take(cr.InputOffset())
			if err != nil {
				return err
			}
			// The bytes since the last row start with the empty lines
			// csv.Reader skipped: they belong to no record.
			lead := 0
			for {
				if bytes.HasPrefix(b[lead:], []byte("\n")) {
					lead++
				} else if bytes.HasPrefix(b[lead:], []byte("\r\n")) {
					lead += 2
				} else {
					break
				}
			}
			if lead > 0 {
				if err := gap(b[:lead]); err != nil {
					return err
				}
			}
			rec.span = b[lead:]
		}
		n++
		if err := fn(rec); err != nil {
			return err
		}
	}
}

func iterateJSONArray(ctx context.Context, rd io.Reader, fn func(*rawRecord) error, gap func([]byte) error) error {
	var t *tracker
	if gap != nil {
		t = &tracker{r: rd}
		rd = t
	}
	br, release := pooledReader(rd)
	defer release()
	dec := json.NewDecoder(br)
	tok, err := dec.Token()
	if err == io.EOF {
		if t != nil {
			return gap(t.rest())
		}
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
		rec.ordinal, rec.raw, rec.span = n, raw, raw
		rec.offset, rec.length = dec.InputOffset()-int64(len(raw)), int64(len(raw))
		if t != nil {
			// The decoder stops right after the element, so the bytes
			// since the last one end with it; before it lie the
			// separator and whitespace (or the opening bracket).
			b, err := t.take(dec.InputOffset())
			if err != nil {
				return err
			}
			if !bytes.HasSuffix(b, raw) {
				return fmt.Errorf("internal error: json array element %d is not where the decoder ended", n)
			}
			if err := gap(b[:len(b)-len(raw)]); err != nil {
				return err
			}
		}
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
	if t != nil {
		return gap(t.rest())
	}
	return nil
}
