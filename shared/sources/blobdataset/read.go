package blobdataset

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/dsr-functions/dsr/shared/sources"
)

// Ranged reads for export. Discovery records, besides each matched
// record's ordinal, its byte offset and length in the blob (Location.Offsets
// and Lengths, see rawRecord.offset for what they span per format). Read
// fetches those bytes with ranged downloads instead of streaming the blob
// from its start, so the cost of an export follows the number of records
// it holds, not the size of the data.
var (
	// readGap is the largest gap between two pieces that one request
	// still spans: the bytes between them are downloaded and dropped,
	// which is cheaper than another round trip. A variable so that tests
	// can change it.
	readGap int64 = 256 << 10
	// readChunk bounds the bytes one request fetches (a single record
	// longer than that is fetched alone), so Read's memory stays flat
	// however many records lie close together. A variable so that tests
	// can change it.
	readChunk int64 = 8 << 20
	// csvHeaderProbe is how many bytes from the start of a CSV blob Read
	// first fetches for the header; it doubles while the header does not
	// fit. A variable so that tests can change it.
	csvHeaderProbe int64 = 4 << 10
)

// Read emits the records discovery found in one dataset, in blob order,
// reading each blob conditionally on the ETag discovery saw: a blob that
// changed or is gone fails with sources.ErrChanged.
//
// A Location with byte positions (Offsets and Lengths, one per ordinal,
// increasing and not overlapping) is read with ranged downloads: records
// less than readGap apart share one request, and no request fetches more
// than readChunk bytes unless a single record is longer. For CSV the header
// is fetched too: it is the first row of the blob, so it lies before the
// first record's offset. Each record's bytes are checked to be a whole
// record of the blob (the byte before it ends a line, or for JSON arrays
// opens the array or separates elements; they parse as exactly one record:
// one NDJSON line holding one JSON object, one CSV row with as many fields
// as the header, one JSON object) and otherwise Read fails with
// sources.ErrChanged. The records emitted are the same as a streaming read
// gives.
//
// A Location without byte positions (a discovery stored before they
// existed), or with positions that do not fit its ordinals, is read by
// streaming the blob from its start up to the last ordinal.
func (c *Connector) Read(ctx context.Context, dm sources.DatasetMatches, emit func(sources.Record) error) error {
	d := c.cfg.Dataset(dm.Dataset)
	if d == nil {
		return fmt.Errorf("dataset %s: %w (no longer configured)", dm.Dataset, sources.ErrChanged)
	}
	if c.reader == nil {
		return fmt.Errorf("dataset %s: this connector only discovers", d.Name)
	}
	if d.Format == sources.FormatDelta {
		return c.readDelta(ctx, d, dm, emit)
	}
	var buf []byte
	schemas := map[string]*synapseSchema{}
	for _, loc := range dm.Locations {
		var err error
		if d.Format == sources.FormatSynapse {
			err = c.readSynapse(ctx, d, loc, schemas, &buf, emit)
		} else if d.Format == sources.FormatParquet {
			err = c.readParquet(ctx, d, loc, emit)
		} else if positioned(loc, d.Format) {
			err = c.readRanges(ctx, d, loc, &buf, emit)
		} else {
			err = c.readStream(ctx, d, loc, emit)
		}
		if err != nil {
			return fmt.Errorf("dataset %s: blob %s: %w", d.Name, loc.Blob, err)
		}
	}
	return nil
}

// positioned reports whether loc has byte positions that Read can use: an
// offset and a length per ordinal, ordinals and records increasing without
// overlap, no record longer than maxLine and, for CSV, room for the header
// before the first record.
func positioned(loc sources.Location, format sources.Format) bool {
	n := len(loc.Ordinals)
	if n == 0 || len(loc.Offsets) != n || len(loc.Lengths) != n {
		return false
	}
	var end int64
	for i := range n {
		off, l := loc.Offsets[i], loc.Lengths[i]
		if off < end || l <= 0 || l > maxLine || off > math.MaxInt64-l || (i > 0 && loc.Ordinals[i] <= loc.Ordinals[i-1]) {
			return false
		}
		end = off + l
	}
	return format != sources.FormatCSV || loc.Offsets[0] > 0
}

// readStream reads loc by streaming its blob from the start, counting
// records up to the last ordinal.
func (c *Connector) readStream(ctx context.Context, d *sources.Dataset, loc sources.Location, emit func(sources.Record) error) error {
	body, _, err := c.reader.read(ctx, d.Container, loc.Blob, loc.ETag, 0, 0)
	if err != nil {
		return readErr(err)
	}
	defer body.Close()
	next := 0
	err = iterate(ctx, body, d.Format, func(r *rawRecord) error {
		if next == len(loc.Ordinals) {
			return errStop
		}
		if r.ordinal != loc.Ordinals[next] {
			return nil
		}
		next++
		rec, err := r.ordered()
		if err != nil {
			return fmt.Errorf("record %d is not a valid %s record", r.ordinal, d.Format)
		}
		return emit(rec)
	})
	if err != nil {
		return err
	}
	if next != len(loc.Ordinals) {
		return fmt.Errorf("%w (records missing)", sources.ErrChanged)
	}
	return nil
}

// readErr names a failed download as such, unless it means the blob changed.
func readErr(err error) error {
	if errors.Is(err, sources.ErrChanged) {
		return err
	}
	return fmt.Errorf("read: %w", err)
}

// piece is a byte range [start, end) of a blob that a ranged read needs:
// record rec (an index into the location's ordinals) with the byte before
// it, or (rec -1) the start of a CSV blob, where the header is.
type piece struct {
	start, end int64
	rec        int
}

// readRanges reads the records of loc with ranged downloads (see Read).
// buf is reused from one request to the next.
func (c *Connector) readRanges(ctx context.Context, d *sources.Dataset, loc sources.Location, buf *[]byte, emit func(sources.Record) error) error {
	if recs, ok := c.recent.get(d.Container, loc); ok {
		// The records of this version are known; that it is still the
		// blob's version is not: one conditional read of a byte confirms
		// it (else sources.ErrChanged, as a download of the records).
		body, _, err := c.reader.read(ctx, d.Container, loc.Blob, loc.ETag, loc.Offsets[0], 1)
		if err != nil {
			return readErr(err)
		}
		body.Close()
		for _, rec := range recs {
			if err := emit(rec); err != nil {
				return err
			}
		}
		return nil
	}
	pieces := make([]piece, 0, len(loc.Ordinals)+1)
	if d.Format == sources.FormatCSV {
		pieces = append(pieces, piece{0, min(csvHeaderProbe, loc.Offsets[0]), -1})
	}
	for i, off := range loc.Offsets {
		pieces = append(pieces, piece{max(0, off-1), off + loc.Lengths[i], i})
	}
	var header []string
	for len(pieces) > 0 {
		// Pieces start in increasing order (each record's piece overlaps
		// the previous one by at most the byte before the record).
		start, end := pieces[0].start, pieces[0].end
		k := 1
		for ; k < len(pieces); k++ {
			p := pieces[k]
			if p.start-end >= readGap || max(end, p.end)-start > readChunk {
				break
			}
			end = max(end, p.end)
		}
		group := pieces[:k]
		pieces = pieces[k:]
		if err := ctx.Err(); err != nil {
			return err
		}
		b, size, err := c.fetch(ctx, d, loc, start, end, buf)
		if err != nil {
			return err
		}
		for _, p := range group {
			if p.rec < 0 {
				if header, err = c.csvHeader(ctx, d, loc, b[p.start-start:p.end-start]); err != nil {
					return err
				}
				continue
			}
			off, l := loc.Offsets[p.rec], loc.Lengths[p.rec]
			prev := -1
			if off > 0 {
				prev = int(b[off-1-start])
			}
			rec, err := parseAt(d.Format, header, b[off-start:off+l-start], prev, off+l == size)
			if err != nil {
				// The reason stays out: it may quote the record.
				return fmt.Errorf("%w (record %d is not at the position discovery recorded)", sources.ErrChanged, loc.Ordinals[p.rec])
			}
			if err := emit(rec); err != nil {
				return err
			}
		}
	}
	return nil
}

// fetch downloads bytes [start, end) of loc's blob (conditionally on its
// ETag) into *buf, growing it if needed, and returns them with the blob's
// size. A blob shorter than end fails with sources.ErrChanged.
func (c *Connector) fetch(ctx context.Context, d *sources.Dataset, loc sources.Location, start, end int64, buf *[]byte) ([]byte, int64, error) {
	body, size, err := c.reader.read(ctx, d.Container, loc.Blob, loc.ETag, start, end-start)
	if err != nil {
		return nil, 0, readErr(err)
	}
	defer body.Close()
	if size < end {
		return nil, 0, fmt.Errorf("%w (positions beyond the end of the blob)", sources.ErrChanged)
	}
	n := int(end - start)
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := io.ReadFull(body, b); err != nil {
		return nil, 0, readErr(err)
	}
	return b, size, nil
}

// csvHeader parses the header of loc's CSV blob from b, its first bytes,
// downloading more (doubling, up to the first record's offset) while the
// header does not fit.
func (c *Connector) csvHeader(ctx context.Context, d *sources.Dataset, loc sources.Location, b []byte) ([]string, error) {
	limit := loc.Offsets[0]
	for {
		h, ok := parseCSVHeader(b)
		if ok {
			return h, nil
		}
		if int64(len(b)) >= limit {
			return nil, fmt.Errorf("%w (no CSV header before the first record)", sources.ErrChanged)
		}
		n := min(2*int64(len(b)), limit)
		if n > maxLine {
			return nil, fmt.Errorf("read csv header: longer than %d bytes", maxLine)
		}
		var more []byte // b may be the caller's buffer
		var err error
		if b, _, err = c.fetch(ctx, d, loc, 0, n, &more); err != nil {
			return nil, err
		}
	}
}

// parseCSVHeader parses the header row at the start of b, a CSV blob's
// first bytes, as iterateCSV does. ok is false when b does not hold the
// whole row: a header is followed by records, so its line ending is in b.
func parseCSVHeader(b []byte) (header []string, ok bool) {
	cr := csv.NewReader(bytes.NewReader(b))
	h, err := cr.Read()
	if err != nil {
		return nil, false
	}
	if end := cr.InputOffset(); end == 0 || b[end-1] != '\n' {
		return nil, false
	}
	if len(h) > 0 {
		h[0] = string(bytes.TrimPrefix([]byte(h[0]), []byte("\ufeff")))
	}
	return h, true
}

// parseAt parses one record from b, the bytes at the position discovery
// recorded, after checking that they are a whole record: prev is the byte
// before them (-1 at the start of the blob) and atEnd says whether they end
// the blob. header is the CSV header. The record is what a streaming read
// emits for the same bytes.
func parseAt(format sources.Format, header []string, b []byte, prev int, atEnd bool) (sources.Record, error) {
	if len(b) == 0 {
		return sources.Record{}, errors.New("no bytes")
	}
	endsLine := b[len(b)-1] == '\n' || atEnd
	switch format {
	case sources.FormatNDJSON:
		// One whole line: it starts the blob or follows a line ending,
		// and its only line ending is its last byte (or the blob ends).
		if prev >= 0 && prev != '\n' {
			return sources.Record{}, errors.New("not at the start of a line")
		}
		if i := bytes.IndexByte(b, '\n'); !endsLine || (i >= 0 && i != len(b)-1) {
			return sources.Record{}, errors.New("not one whole line")
		}
		raw := bytes.TrimSpace(b)
		if len(raw) == 0 {
			return sources.Record{}, errors.New("a blank line")
		}
		return sources.ParseRecordJSON(raw)
	case sources.FormatCSV:
		// One whole row after the end of the previous one (or of the
		// header), with as many fields as the header.
		if header == nil || prev != '\n' || !endsLine {
			return sources.Record{}, errors.New("not one whole row")
		}
		cr := csv.NewReader(bytes.NewReader(b))
		cr.FieldsPerRecord = len(header)
		row, err := cr.Read()
		if err != nil {
			return sources.Record{}, err
		}
		if _, err := cr.Read(); err != io.EOF {
			return sources.Record{}, errors.New("more than one row")
		}
		return (&rawRecord{header: header, row: row}).ordered()
	case sources.FormatJSONArray:
		// One object, right after the array's opening bracket, a comma
		// or whitespace.
		switch prev {
		case '[', ',', ' ', '\t', '\r', '\n':
		default:
			return sources.Record{}, errors.New("not after an array delimiter")
		}
		if b[0] != '{' || b[len(b)-1] != '}' {
			return sources.Record{}, errors.New("not one object")
		}
		return sources.ParseRecordJSON(b)
	}
	return sources.Record{}, fmt.Errorf("unsupported format %q", format)
}
