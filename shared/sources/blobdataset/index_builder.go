package blobdataset

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	"github.com/dsr-functions/dsr/shared/sources"
)

// errIndexBuild marks a build failure that is not about the data (a
// temporary file, a limit of the format).
var errIndexBuild = errors.New("index build")

// indexBuilder turns the records of one blob, in order, into an index
// object: it cuts them into blocks, collects the hashes of each block's
// tokens (index_pipeline.go computes them), and sorts the (hash, block)
// pairs in bounded memory. The block table and the
// encoded buckets go to temporary files, so memory stays flat.
type indexBuilder struct {
	mac    *indexMAC
	format sources.Format
	etag   string
	size   int64
	// records counts the records, blocks the closed blocks, entries the
	// encoded (hash, block) entries.
	records, blocks, entries int64
	// The open block: the offset and ordinal of its first record (-1:
	// none open), and its tokens.
	blockStart, blockOrd int64
	cur                  []uint64
	// end is the end of the last record; tableEntries counts the block
	// table's entries.
	end, tableEntries int64
	pairs             *pairSorter
	// table holds the block table, buckets the encoded buckets.
	table, buckets *os.File
	tableW         *bufio.Writer
	// params and fanout, set by finish.
	hashBits, fanoutBits, riceBits, blockBits uint
	fanout                                    []byte
	bucketBytes                               int64
}

func newIndexBuilder(mac *indexMAC, format sources.Format) (*indexBuilder, error) {
	b := &indexBuilder{mac: mac, format: format, blockStart: -1, pairs: newPairSorter()}
	var err error
	if b.table, err = os.CreateTemp("", "dsr-index-*.blocks"); err != nil {
		return nil, fmt.Errorf("%w: temporary file: %v", errIndexBuild, err)
	}
	b.tableW = bufio.NewWriterSize(b.table, 64<<10)
	return b, nil
}

// add takes the next record of the blob, with its tokens' hashes.
func (b *indexBuilder) add(offset, length, ordinal int64, tokens []uint64) error {
	if b.blockStart < 0 {
		b.blockStart, b.blockOrd = offset, ordinal
		if err := b.entry(offset, ordinal); err != nil {
			return err
		}
	}
	b.cur = append(b.cur, tokens...)
	b.records++
	b.end = offset + length
	if b.end-b.blockStart >= indexBlockBytes {
		return b.closeBlock()
	}
	return nil
}

// entry writes one block table entry.
func (b *indexBuilder) entry(off, ord int64) error {
	var e [blockEntry]byte
	binary.BigEndian.PutUint64(e[:8], uint64(off))
	binary.BigEndian.PutUint64(e[8:], uint64(ord))
	binary.BigEndian.PutUint32(e[16:], b.mac.of(macBlock, uint64(b.tableEntries), 0, e[:16]))
	b.tableEntries++
	if _, err := b.tableW.Write(e[:]); err != nil {
		return fmt.Errorf("%w: write block table: %v", errIndexBuild, err)
	}
	return nil
}

// closeBlock hands the open block's tokens, each once, to the sorter.
func (b *indexBuilder) closeBlock() error {
	if b.blocks >= 1<<blockBitsMax {
		return fmt.Errorf("%w: more than %d blocks", errIndexBuild, 1<<blockBitsMax)
	}
	slices.Sort(b.cur)
	for _, h := range slices.Compact(b.cur) {
		if err := b.pairs.add(h<<blockBitsMax | uint64(b.blocks)); err != nil {
			return err
		}
	}
	b.cur = b.cur[:0]
	b.blocks++
	b.blockStart = -1
	return nil
}

// finish closes the last block, ends the block table and encodes the
// buckets.
func (b *indexBuilder) finish() error {
	if b.blockStart >= 0 {
		if err := b.closeBlock(); err != nil {
			return err
		}
	}
	if err := b.entry(b.end, b.records); err != nil {
		return err
	}
	if err := b.tableW.Flush(); err != nil {
		return fmt.Errorf("%w: write block table: %v", errIndexBuild, err)
	}
	if err := b.pairs.finish(); err != nil {
		return err
	}
	// A first pass counts the distinct hashes, which sizes the codes.
	var distinct int64
	last := uint64(math.MaxUint64)
	err := b.pairs.each(func(p uint64) error {
		if h := p >> blockBitsMax; h != last {
			distinct++
			last = h
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.hashBits, b.fanoutBits, b.riceBits, b.blockBits = codeParams(b.pairs.n, distinct, b.blocks)
	return b.encode()
}

// encode writes the buckets (see index_format.go) and the fanout table.
func (b *indexBuilder) encode() error {
	f, err := os.CreateTemp("", "dsr-index-*.buckets")
	if err != nil {
		return fmt.Errorf("%w: temporary file: %v", errIndexBuild, err)
	}
	b.buckets = f
	out := bufio.NewWriterSize(f, 256<<10)
	nb := int64(1) << b.fanoutBits
	b.fanout = make([]byte, 0, (nb+1)*fanoutEntry)
	shift := hashBitsMax - b.hashBits
	lowMask := uint64(1)<<(b.hashBits-b.fanoutBits) - 1
	var (
		w      bitWriter
		bucket = int64(-1)
		prev   uint64 // the low bits of the bucket's last hash
		h      = uint64(math.MaxUint64)
		blocks []uint64
	)
	// bucketN counts the entries of the bucket being written.
	var bucketN int64
	// endBucket writes the bucket being written (its bytes are all in
	// w.buf) and sets its MAC in the fanout table.
	endBucket := func() error {
		w.flush()
		if bucket >= 0 {
			binary.BigEndian.PutUint32(b.fanout[bucket*fanoutEntry+8:], b.mac.of(macBucket, uint64(bucket), uint64(bucketN), w.buf))
		}
		if _, err := out.Write(w.buf); err != nil {
			return fmt.Errorf("%w: write buckets: %v", errIndexBuild, err)
		}
		b.bucketBytes += int64(len(w.buf))
		w.buf = w.buf[:0]
		return nil
	}
	// nextBucket ends the bucket being written and starts the next.
	nextBucket := func() error {
		if err := endBucket(); err != nil {
			return err
		}
		bucket++
		b.fanout = fanoutAppend(b.fanout, b.bucketBytes, b.entries)
		bucketN, prev = 0, 0
		return nil
	}
	// emit writes hash h with its blocks (sorted and unique now: hashes
	// that differ in the bits cut off interleave their blocks).
	emit := func() error {
		if len(blocks) == 0 {
			return nil
		}
		slices.Sort(blocks)
		blocks = slices.Compact(blocks)
		q := int64(h >> (b.hashBits - b.fanoutBits))
		for bucket < q {
			if err := nextBucket(); err != nil {
				return err
			}
		}
		low := h & lowMask
		gap := low - prev
		if gap>>b.riceBits > maxQuotient {
			return fmt.Errorf("%w: hash gap beyond the code", errIndexBuild)
		}
		w.rice(gap, b.riceBits)
		w.write(blocks[0], b.blockBits)
		for i := 1; i < len(blocks); i++ {
			w.rice(0, b.riceBits)
			w.gamma(blocks[i] - blocks[i-1])
		}
		b.entries += int64(len(blocks))
		bucketN += int64(len(blocks))
		prev = low
		blocks = blocks[:0]
		return nil
	}
	err = b.pairs.each(func(p uint64) error {
		ph := p >> blockBitsMax >> shift
		if ph != h {
			if err := emit(); err != nil {
				return err
			}
			h = ph
		}
		blocks = append(blocks, p&(1<<blockBitsMax-1))
		return nil
	})
	if err == nil {
		err = emit()
	}
	if err != nil {
		return err
	}
	for bucket < nb-1 {
		if err := nextBucket(); err != nil {
			return err
		}
	}
	if err := endBucket(); err != nil {
		return err
	}
	// The sentinel entry ends the last bucket.
	b.fanout = fanoutAppend(b.fanout, b.bucketBytes, b.entries)
	if b.bucketBytes > math.MaxUint32 || b.entries > math.MaxUint32 {
		return fmt.Errorf("%w: index larger than the format holds", errIndexBuild)
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("%w: write buckets: %v", errIndexBuild, err)
	}
	return nil
}

// fanoutAppend appends a fanout entry, its MAC left zero (endBucket sets it).
func fanoutAppend(dst []byte, off, entries int64) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(off))
	dst = binary.BigEndian.AppendUint32(dst, uint32(entries))
	return binary.BigEndian.AppendUint32(dst, 0)
}

// object returns a function that opens the index object from its start
// (it can be read again, for a retried write), and the object's size.
func (b *indexBuilder) object(c *Connector, d *sources.Dataset, blobName string) (func() io.Reader, int64, error) {
	h := &indexHeader{
		Version: indexVersion, Key: c.index.key, Rules: rulesID(c.cfg, d), Dataset: d.Name, Blob: blobID(d.Name, blobName),
		ETag: b.etag, Size: b.size, Format: string(d.Format),
		Records: b.records, Blocks: b.blocks, Entries: b.entries,
		HashBits: b.hashBits, FanoutBits: b.fanoutBits, RiceBits: b.riceBits, BlockBits: b.blockBits,
	}
	tableBytes := (b.blocks + 1) * blockEntry
	hdr := layoutHeader(h, b.mac, int64(len(b.fanout)), tableBytes, b.bucketBytes)
	open := func() io.Reader {
		return io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(b.fanout),
			io.NewSectionReader(b.table, 0, tableBytes), io.NewSectionReader(b.buckets, 0, b.bucketBytes))
	}
	return open, h.End, nil
}

// close removes the temporary files.
func (b *indexBuilder) close() {
	b.pairs.close()
	for _, f := range []*os.File{b.table, b.buckets} {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}
}
