package blobdataset

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dsr-functions/dsr/shared/sources"
)

// scanRange scans the records of an NDJSON blob that start in [start,
// end): a part of a blob split over shards. The blob is read from byte
// start-1 on, pinned to the ETag the job was planned with (a changed blob
// fails with sources.ErrChanged, for the shard to be delivered again and
// the job eventually planned anew); the partial line before the first
// record is stepped over and the read ends with the line that crosses end,
// so every record belongs to exactly one part. Hits have offsets in the
// blob and ordinals counted from the part's first record; n is how many
// records the part holds.
func (c *Connector) scanRange(ctx context.Context, d *sources.Dataset, b jobBlob, start, end int64, matcher func() *datasetMatcher, refs []string) (blobResult, int64, error) {
	if c.reader == nil {
		return blobResult{}, 0, errors.New("this connector cannot read parts of blobs")
	}
	off := max(start-1, 0)
	body, _, err := c.reader.read(ctx, d.Container, b.Name, b.ETag, off, b.Size-off)
	if err != nil {
		return blobResult{}, 0, fmt.Errorf("dataset %s: read part of blob %s: %w", d.Name, b.Name, err)
	}
	defer body.Close()
	br := bufio.NewReaderSize(transportReader{body}, 64<<10)
	base := off
	if start > 0 {
		// The record under way at start belongs to the part before.
		skipped, err := br.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			base += int64(len(skipped))
			skipped, err = br.ReadSlice('\n')
		}
		base += int64(len(skipped))
		if errors.Is(err, io.EOF) {
			return blobResult{etag: b.ETag}, 0, nil
		}
		if err != nil {
			return blobResult{}, 0, fmt.Errorf("dataset %s: blob %s: %w", d.Name, b.Name, err)
		}
	}
	res := blobResult{etag: b.ETag}
	var n int64
	if base >= end {
		return res, 0, nil
	}
	var sc scratch
	m := matcher()
	rd := &partReader{r: br, left: end - base}
	err = iterateNDJSONCounting(ctx, rd, func(r *rawRecord) error {
		r.offset += base
		return m.matchRecord(r, &sc, refs, d.Format, &res)
	}, nil, m.skipper(), &n)
	if err != nil {
		var te *transportError
		if errors.As(err, &te) || ctx.Err() != nil {
			return blobResult{}, 0, fmt.Errorf("dataset %s: blob %s: %w", d.Name, b.Name, err)
		}
		return blobResult{}, 0, &sources.DataError{Dataset: d.Name, Reason: "blob " + b.Name + ": " + contentFree(err.Error())}
	}
	return res, n, nil
}

// partReader reads left bytes, then on to the end of the line they end in
// (its '\n' included), then reports io.EOF.
type partReader struct {
	r    *bufio.Reader
	left int64
	done bool
}

func (p *partReader) Read(b []byte) (int, error) {
	if p.done {
		return 0, io.EOF
	}
	if p.left > 0 {
		if int64(len(b)) > p.left {
			b = b[:p.left]
		}
		k, err := p.r.Read(b)
		p.left -= int64(k)
		if p.left == 0 && k > 0 && b[k-1] == '\n' {
			p.done = true
		}
		return k, err
	}
	// Past the end: finish the line under way.
	k := 0
	for k < len(b) {
		c, err := p.r.ReadByte()
		if err != nil {
			p.done = true
			return k, err
		}
		b[k] = c
		k++
		if c == '\n' {
			p.done = true
			break
		}
	}
	return k, nil
}
