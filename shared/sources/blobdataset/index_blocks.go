package blobdataset

import (
	"bytes"
	"context"
	"io"
	"strings"

	"github.com/dsr-functions/dsr/shared/sources"
)

// iterateBlock calls fn for each record of one block of a blob, b being
// the block's bytes (sp.start to sp.end), with the ordinals, offsets and
// lengths a scan of the whole blob gives them: the block starts at a
// record, so each format's iteration can start there (a CSV block behind
// the blob's header row, a JSON-array block inside brackets of its own).
// A block that does not hold exactly the records the index says is
// corrupt.
func iterateBlock(ctx context.Context, format sources.Format, header, b []byte, sp blockSpan, fn func(*rawRecord) error) error {
	var n int64
	wrap := func(shift int64) func(*rawRecord) error {
		return func(r *rawRecord) error {
			if n >= sp.count {
				return bypass("corrupt (a block holds more records)")
			}
			r.ordinal = sp.ord + n
			r.offset += shift
			n++
			return fn(r)
		}
	}
	var err error
	switch format {
	case sources.FormatNDJSON:
		err = iterateNDJSON(ctx, bytes.NewReader(b), wrap(sp.start), nil, nil)
	case sources.FormatCSV:
		err = iterateCSV(ctx, io.MultiReader(bytes.NewReader(header), bytes.NewReader(b)), wrap(sp.start-int64(len(header))), nil)
	case sources.FormatJSONArray:
		// Elements are separated by commas: the one after the block's
		// last element goes.
		body := bytes.TrimRight(b, " \t\r\n")
		body = bytes.TrimSuffix(body, []byte(","))
		err = iterateJSONArray(ctx, io.MultiReader(strings.NewReader("["), bytes.NewReader(body), strings.NewReader("]")), wrap(sp.start-1), nil)
	default:
		return bypass("unsupported format")
	}
	if err != nil {
		return err
	}
	if n != sp.count {
		return bypass("corrupt (a block holds fewer records)")
	}
	return nil
}
