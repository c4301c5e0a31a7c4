package blobdataset

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"

	"github.com/dsr-functions/dsr/shared/sources"
)

// Parsing every record and normalising its identifiers is what an index
// build spends its time on (a scan parses only the few records its
// prefilter lets through), so a build spreads it over the cores: one
// goroutine reads the blob and cuts it into chunks of records, workers
// parse and tokenise the chunks, and the chunks' tokens reach the
// indexBuilder in blob order. Chunks in flight are bounded, so memory stays
// flat.

// pipelineChunk is how many records one chunk holds.
const pipelineChunk = 256

// chunk is a run of consecutive records: copies of their bytes (NDJSON
// and JSON arrays) or cells (CSV), then their tokens' hashes.
type chunk struct {
	seq    int64
	header []string
	recs   []chunkRecord
	// arena holds the records' bytes (raw points into it), one
	// allocation for the chunk rather than one per record.
	arena []byte
	// tokens of record i are toks[ends[i-1]:ends[i]].
	toks []uint64
	ends []int
	err  error
}

type chunkRecord struct {
	ordinal, offset, length int64
	raw                     []byte
	row                     []string
}

// tokenizeBlob reads the records of rd in format, tokenises them with
// tokenizers made by newTok (one per worker), and hands each record's
// position and tokens to add in blob order. A record that does not parse
// fails the build with the scan's reason.
func tokenizeBlob(ctx context.Context, rd io.Reader, format sources.Format, newTok func() *tokenizer, add func(offset, length, ordinal int64, tokens []uint64) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	workers := max(1, min(runtime.GOMAXPROCS(0), 4))
	work := make(chan *chunk, workers)
	done := make(chan *chunk, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			tok := newTok()
			for c := range work {
				c.tokenize(tok, format)
				select {
				case done <- c:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	// Fed chunks are used again: the records' bytes are most of what a
	// build would allocate, and so of what its garbage collection costs.
	free := make(chan *chunk, 2*workers+2)
	// The consumer puts chunks back in order and feeds add.
	consumed := make(chan error, 1)
	go func() {
		pending := map[int64]*chunk{}
		var next int64
		var err error
		for c := range done {
			pending[c.seq] = c
			for c := pending[next]; c != nil && err == nil; c = pending[next] {
				delete(pending, next)
				next++
				if err = c.feed(add); err == nil {
					c.reset()
					select {
					case free <- c:
					default:
					}
				}
			}
			if err != nil {
				cancel(err)
				break
			}
		}
		consumed <- err
	}()
	var seq int64
	cur := &chunk{}
	send := func() error {
		c := cur
		// The raw slices point into the arena: set them once it is
		// final (appending may have moved it).
		off := 0
		for i := range c.recs {
			if c.recs[i].raw != nil {
				n := len(c.recs[i].raw)
				c.recs[i].raw = c.arena[off : off+n : off+n]
				off += n
			}
		}
		select {
		case work <- c:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		seq++
		select {
		case cur = <-free:
		default:
			cur = &chunk{arena: make([]byte, 0, cap(c.arena))}
		}
		cur.seq = seq
		return nil
	}
	err := iterate(ctx, rd, format, func(r *rawRecord) error {
		// The next record slot, keeping the row it held before.
		cur.recs = slices.Grow(cur.recs, 1)[:len(cur.recs)+1]
		cr := &cur.recs[len(cur.recs)-1]
		cr.ordinal, cr.offset, cr.length = r.ordinal, r.offset, r.length
		if r.raw != nil {
			// Only the length for now: send points it into the arena.
			cur.arena = append(cur.arena, r.raw...)
			cr.raw = r.raw[:len(r.raw):len(r.raw)]
		} else {
			cur.header = r.header
			cr.raw = nil
			cr.row = append(cr.row[:0], r.row...)
		}
		if len(cur.recs) == pipelineChunk {
			return send()
		}
		return nil
	})
	if err == nil && len(cur.recs) > 0 {
		err = send()
	}
	close(work)
	go func() {
		wg.Wait()
		close(done)
	}()
	cerr := <-consumed
	// The consumer's error (a record that does not parse, a failed
	// write) comes first: the reader only stopped because of it.
	if cerr != nil {
		return cerr
	}
	return err
}

// reset empties a fed chunk for the next records, keeping its memory.
func (c *chunk) reset() {
	c.header, c.err = nil, nil
	c.recs, c.arena, c.toks, c.ends = c.recs[:0], c.arena[:0], c.toks[:0], c.ends[:0]
}

// tokenize parses the chunk's records and hashes their tokens.
func (c *chunk) tokenize(tok *tokenizer, format sources.Format) {
	c.ends = c.ends[:0]
	for _, cr := range c.recs {
		r := rawRecord{raw: cr.raw, header: c.header, row: cr.row}
		fields, err := recordFields(&r, tok.slots)
		if err != nil {
			c.err = fmt.Errorf("record %d is not a valid %s record", cr.ordinal, format)
			return
		}
		tok.record(fields, func(h uint64) { c.toks = append(c.toks, h) })
		c.ends = append(c.ends, len(c.toks))
	}
}

// feed hands the chunk's records to add, or its error.
func (c *chunk) feed(add func(offset, length, ordinal int64, tokens []uint64) error) error {
	if c.err != nil {
		return c.err
	}
	start := 0
	for i, cr := range c.recs {
		if err := add(cr.offset, cr.length, cr.ordinal, c.toks[start:c.ends[i]]); err != nil {
			return err
		}
		start = c.ends[i]
	}
	return nil
}
