package blobdataset

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dsr-functions/dsr/shared/sources"
)

// indexProbe is how many bytes of an index object the first read fetches:
// the header, and for a small blob's index (a blob of up to about 1 MB)
// all of it. Larger indexes are read in ranges anyway, and a dataset of
// thousands of blobs reads this much per blob and pass, so it stays small.
var indexProbe int64 = 16 << 10

// indexReadGap is the largest gap between two parts of an index object
// that one read still spans.
const indexReadGap = 16 << 10

// indexLookup reads one index object, every read pinned to the version
// its first read saw.
type indexLookup struct {
	store indexStore
	name  string
	// blob is the data blob the index is of.
	blob  string
	etag  string
	h     *indexHeader
	mac   *indexMAC
	probe []byte
}

// bypassError is why an index is not used: a fixed word, never content.
// corruptETag is set when the index object (of that ETag) is corrupt.
type bypassError struct{ reason, corruptETag string }

func (e *bypassError) Error() string { return e.reason }

func bypass(reason string) error { return &bypassError{reason: reason} }

// needsBuild reports whether a bypass's reason says the blob's index must
// be built again: it is missing, stale, or corrupt (deleted; an index of
// another format version reads as corrupt). A query the index cannot
// answer, an index replaced while read (just rebuilt) or an unreadable one
// (a failed read) need no build.
func needsBuild(reason string) bool {
	for _, p := range []string{"missing", "stale", "corrupt"} {
		if strings.HasPrefix(reason, p) {
			return true
		}
	}
	return false
}

// corrupt is bypass for an index object found corrupt, of ETag etag.
func corrupt(reason, etag string) error { return &bypassError{reason: reason, corruptETag: etag} }

// openIndex reads the index of blob of dataset d and checks that it
// indexes version etag under the current secret and config.
func (c *Connector) openIndex(ctx context.Context, d *sources.Dataset, blob, etag string) (*indexLookup, error) {
	ix := c.index
	name := ix.name(d, blob)
	data, oetag, size, err := ix.store.get(ctx, name, "", 0, indexProbe)
	if errors.Is(err, errIndexGone) {
		return nil, bypass("missing")
	}
	if err != nil {
		return nil, err
	}
	if need := headerNeed(data); need > int64(len(data)) && need <= min(size, int64(maxHeader+headerFixed)) {
		// A header longer than the probe: read it whole.
		if data, _, _, err = ix.store.get(ctx, name, oetag, 0, need); errors.Is(err, errIndexGone) {
			return nil, bypass("replaced while read")
		} else if err != nil {
			return nil, err
		}
	}
	h, err := decodeHeader(data, nil)
	switch {
	case errors.Is(err, errOtherFormat):
		return nil, bypass("stale (another index format)")
	case err != nil:
		return nil, corrupt("corrupt", oetag)
	case h.End != size:
		return nil, corrupt("corrupt (size)", oetag)
	case h.Key != ix.key:
		return nil, bypass("stale (another secret)")
	case h.Rules != rulesID(c.cfg, d):
		return nil, bypass("stale (the dataset's matching config changed)")
	case h.Dataset != d.Name || h.Blob != blobID(d.Name, blob) || h.Format != string(d.Format):
		return nil, corrupt("corrupt (another blob's index)", oetag)
	case h.ETag != etag:
		return nil, bypass("stale (the blob changed)")
	}
	mac := newIndexMAC(ix.secret, d.Name, blobID(d.Name, blob), etag)
	if _, err := decodeHeader(data, mac); err != nil {
		return nil, corrupt("corrupt (header MAC)", oetag)
	}
	return &indexLookup{store: ix.store, name: name, blob: blob, etag: oetag, h: h, mac: mac, probe: data}, nil
}

// byteRanges are parts of an object read into memory.
type byteRanges struct {
	offs  []int64
	parts [][]byte
}

// at returns the n bytes at off, which a read fetched.
func (r *byteRanges) at(off, n int64) []byte {
	i := sort.Search(len(r.offs), func(i int) bool { return r.offs[i] > off }) - 1
	if i < 0 || off+n > r.offs[i]+int64(len(r.parts[i])) {
		return nil
	}
	return r.parts[i][off-r.offs[i] : off-r.offs[i]+n]
}

// fetch reads the ranges [off, end) of want (close ones in one read) from
// the index object, or from the probe when it holds them.
func (l *indexLookup) fetch(ctx context.Context, want [][2]int64) (*byteRanges, error) {
	slices.SortFunc(want, func(a, b [2]int64) int { return int(a[0] - b[0]) })
	out := &byteRanges{}
	var toRead []int // parts to read, and their lengths
	var lens []int64
	for i := 0; i < len(want); {
		start, end := want[i][0], want[i][1]
		for i++; i < len(want) && want[i][0]-end <= indexReadGap; i++ {
			end = max(end, want[i][1])
		}
		if start < 0 || end > l.h.End || start > end {
			return nil, bypass("corrupt (a position outside the index)")
		}
		out.offs = append(out.offs, start)
		if end <= int64(len(l.probe)) {
			out.parts = append(out.parts, l.probe[start:end])
		} else {
			out.parts = append(out.parts, nil)
			lens = append(lens, end-start)
			toRead = append(toRead, len(out.parts)-1)
		}
	}
	// The reads go out at once: a lookup's cost is round trips.
	err := inParallel(ctx, len(toRead), func(i int) error {
		k, n := toRead[i], lens[i]
		data, _, _, err := l.store.get(ctx, l.name, l.etag, out.offs[k], n)
		if errors.Is(err, errIndexGone) {
			return bypass("replaced while read")
		}
		if err != nil {
			return err
		}
		if int64(len(data)) != n {
			return bypass("corrupt (short)")
		}
		out.parts[k] = data
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// maxParallelReads bounds the reads one blob's lookup has in flight.
const maxParallelReads = 8

// inParallel calls fn(0..n-1), up to maxParallelReads at a time, and
// returns the first error (by index) once all have returned.
func inParallel(ctx context.Context, n int, fn func(i int) error) error {
	if n == 0 {
		return nil
	}
	if n == 1 {
		return fn(0)
	}
	errs := make([]error, n)
	sem := make(chan struct{}, maxParallelReads)
	var wg sync.WaitGroup
	for i := range n {
		if ctx.Err() != nil {
			errs[i] = ctx.Err()
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(i)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// blocks returns the blocks, in increasing order, that hold a token with
// one of the hashes (keyed 40-bit hashes, as tokenizer.hash).
func (l *indexLookup) blocks(ctx context.Context, hashes []uint64) ([]int64, error) {
	h := l.h
	shift := hashBitsMax - h.HashBits
	bucketShift := h.HashBits - h.FanoutBits
	var want [][2]int64
	for _, x := range hashes {
		q := int64(x >> shift >> bucketShift)
		off := h.FanoutOff + q*fanoutEntry
		want = append(want, [2]int64{off, off + 2*fanoutEntry})
	}
	fan, err := l.fetch(ctx, want)
	if err != nil {
		return nil, err
	}
	type bucket struct {
		start, end, entries, num int64
		mac                      uint32
	}
	buckets := make([]bucket, len(hashes))
	want = want[:0]
	for i, x := range hashes {
		q := int64(x >> shift >> bucketShift)
		e := fan.at(h.FanoutOff+q*fanoutEntry, 2*fanoutEntry)
		if e == nil {
			return nil, bypass("corrupt (fanout)")
		}
		o0, n0 := int64(binary.BigEndian.Uint32(e)), int64(binary.BigEndian.Uint32(e[4:]))
		sum := binary.BigEndian.Uint32(e[8:])
		o1, n1 := int64(binary.BigEndian.Uint32(e[12:])), int64(binary.BigEndian.Uint32(e[16:]))
		if o0 > o1 || n0 > n1 || h.BucketsOff+o1 > h.End || n1 > h.Entries {
			return nil, bypass("corrupt (fanout)")
		}
		buckets[i] = bucket{h.BucketsOff + o0, h.BucketsOff + o1, n1 - n0, q, sum}
		if o1 > o0 {
			want = append(want, [2]int64{h.BucketsOff + o0, h.BucketsOff + o1})
		}
	}
	data, err := l.fetch(ctx, want)
	if err != nil {
		return nil, err
	}
	var out []int64
	lowMask := uint64(1)<<bucketShift - 1
	for i, x := range hashes {
		b := buckets[i]
		var buf []byte
		if b.end > b.start {
			if buf = data.at(b.start, b.end-b.start); buf == nil {
				return nil, bypass("corrupt (bucket)")
			}
		}
		// Even an empty bucket is checked: a count set to 0 would hide
		// its tokens.
		if l.mac.of(macBucket, uint64(b.num), uint64(b.entries), buf) != b.mac {
			return nil, bypass("corrupt (bucket MAC)")
		}
		if b.entries == 0 {
			continue
		}
		found, err := searchBucket(buf, b.entries, x>>shift&lowMask, h)
		if err != nil {
			return nil, bypass("corrupt (bucket)")
		}
		out = append(out, found...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// searchBucket decodes a bucket of n entries and returns the blocks of the
// hash whose bits below the bucket's are low.
func searchBucket(buf []byte, n int64, low uint64, h *indexHeader) ([]int64, error) {
	r := bitReader{buf: buf}
	var cur, blk uint64
	var out []int64
	for i := int64(0); i < n; i++ {
		gap := r.rice(h.RiceBits)
		if i > 0 && gap == 0 {
			blk += r.gamma()
		} else {
			if cur > low {
				break
			}
			cur += gap
			blk = r.read(h.BlockBits)
		}
		if r.err != nil || blk >= uint64(h.Blocks) {
			return nil, errCorrupt
		}
		if cur == low {
			out = append(out, int64(blk))
		}
	}
	return out, nil
}

// blockSpan is where a block's records lie in the blob.
type blockSpan struct {
	start, end int64 // bytes
	ord, count int64 // records
}

// spans reads the block table entries of blocks (and of block 0, whose
// offset ends a CSV blob's header) and returns where each block lies,
// and where the first record of the blob starts.
func (l *indexLookup) spans(ctx context.Context, blocks []int64) ([]blockSpan, int64, error) {
	h := l.h
	entry := func(k int64) [2]int64 {
		off := h.BlocksOff + k*blockEntry
		return [2]int64{off, off + 2*blockEntry}
	}
	want := [][2]int64{entry(0)}
	for _, k := range blocks {
		want = append(want, entry(k))
	}
	tab, err := l.fetch(ctx, want)
	if err != nil {
		return nil, 0, err
	}
	read := func(k int64) (blockSpan, bool) {
		e := tab.at(h.BlocksOff+k*blockEntry, 2*blockEntry)
		if e == nil || l.mac.of(macBlock, uint64(k), 0, e[:16]) != binary.BigEndian.Uint32(e[16:]) ||
			l.mac.of(macBlock, uint64(k+1), 0, e[blockEntry:blockEntry+16]) != binary.BigEndian.Uint32(e[blockEntry+16:]) {
			return blockSpan{}, false
		}
		s := blockSpan{
			start: int64(binary.BigEndian.Uint64(e)), ord: int64(binary.BigEndian.Uint64(e[8:])),
			end: int64(binary.BigEndian.Uint64(e[blockEntry:])), count: int64(binary.BigEndian.Uint64(e[blockEntry+8:])),
		}
		s.count -= s.ord
		ok := s.start >= 0 && s.start < s.end && s.end <= h.Size && s.ord >= 0 && s.count > 0 && s.ord+s.count <= h.Records
		return s, ok
	}
	first, ok := read(0)
	if h.Blocks == 0 || !ok {
		return nil, 0, bypass("corrupt (block table)")
	}
	out := make([]blockSpan, len(blocks))
	for i, k := range blocks {
		if out[i], ok = read(k); !ok || (i > 0 && out[i].start < out[i-1].end) {
			return nil, 0, bypass("corrupt (block table)")
		}
	}
	return out, first.start, nil
}

// candidateShare: when the candidate blocks are more than this share of a
// blob's blocks (and more than minCandidates), streaming the blob costs
// less than reading them one by one, and the blob is scanned. Variables
// so that tests can use the index on small blobs.
var (
	candidateShare = 0.25
	minCandidates  = 16
)

// indexQuery is what one pass over an indexed dataset looks up, for all
// its blobs: the due subjects' hashes, or answerable false when the index
// cannot answer for one of them.
type indexQuery struct {
	hashes     []uint64
	answerable bool
	// asks counts the builds this pass asked for (indexer.askBuild).
	asks atomic.Int64
}

// newIndexQuery computes the lookups of the due subjects in dataset d.
func (c *Connector) newIndexQuery(d *sources.Dataset, due []*subjectState) *indexQuery {
	hashes, ok := newTokenizer(c.index.secret, c.cfg, d, nil).lookups(due)
	return &indexQuery{hashes: hashes, answerable: ok}
}

// lookupBlobIndexed finds the records of one blob through its index, for
// the due subjects, when the index of version etag is fresh. ok false says
// the blob must be scanned instead (why is logged); the error is only a
// cancelled ctx.
func (c *Connector) lookupBlobIndexed(ctx context.Context, d *sources.Dataset, name, etag string, m *datasetMatcher, refs []string, q *indexQuery) (res blobResult, ok bool, err error) {
	if !q.answerable {
		c.index.bypass(d, name, "a subject's identifiers cannot be looked up", false)
		return blobResult{}, false, nil
	}
	res, err = c.readIndexed(ctx, d, name, etag, m, refs, q.hashes)
	if err != nil {
		if ctx.Err() != nil {
			return blobResult{}, false, ctx.Err()
		}
		reason := "unreadable"
		var be *bypassError
		if errors.As(err, &be) {
			reason = be.reason
			if be.corruptETag != "" {
				// A corrupt index would never be rebuilt (its metadata
				// say it is fresh): delete it, so that StaleIndexes
				// names the blob again. Best effort.
				_ = c.index.store.del(ctx, c.index.name(d, name), be.corruptETag)
			}
		} else if errors.Is(err, sources.ErrChanged) {
			reason = "stale (the blob changed)"
		}
		c.index.bypass(d, name, reason, strings.HasPrefix(reason, "corrupt") || reason == "unreadable")
		c.index.bypassed.Add(1)
		if needsBuild(reason) {
			c.index.askBuild(ctx, d, name, etag, &q.asks)
		}
		return blobResult{}, false, nil
	}
	c.index.used.Add(1)
	return res, true, nil
}

// readIndexed looks the hashes up in the blob's index and matches the
// records of the candidate blocks, read pinned to etag, exactly as a scan
// matches every record (m.matchRecord: prefilter, then exact rules).
func (c *Connector) readIndexed(ctx context.Context, d *sources.Dataset, name, etag string, m *datasetMatcher, refs []string, hashes []uint64) (blobResult, error) {
	res := blobResult{etag: etag}
	if len(hashes) == 0 {
		// The subjects hold nothing the rules could find here.
		return res, nil
	}
	l, err := c.openIndex(ctx, d, name, etag)
	if err != nil {
		return blobResult{}, err
	}
	res, err = l.match(ctx, c, d, m, refs, hashes, res)
	var be *bypassError
	if errors.As(err, &be) && strings.HasPrefix(be.reason, "corrupt") {
		be.corruptETag = l.etag
	}
	return res, err
}

// match looks the hashes up and matches the candidate blocks' records.
func (l *indexLookup) match(ctx context.Context, c *Connector, d *sources.Dataset, m *datasetMatcher, refs []string, hashes []uint64, res blobResult) (blobResult, error) {
	name, etag := l.blob, res.etag
	if len(hashes) == 0 || l.h.Blocks == 0 {
		return res, nil
	}
	blocks, err := l.blocks(ctx, hashes)
	if err != nil || len(blocks) == 0 {
		return res, err
	}
	if len(blocks) > minCandidates && float64(len(blocks)) > candidateShare*float64(l.h.Blocks) {
		return blobResult{}, bypass("too many candidate blocks")
	}
	spans, headerEnd, err := l.spans(ctx, blocks)
	if err != nil {
		return blobResult{}, err
	}
	// The reads: the CSV header (groups[0]) and groups of blocks close
	// together (as in Read), all at once.
	type group struct {
		start, end int64
		spans      []blockSpan
		data       []byte
	}
	var groups []group
	if d.Format == sources.FormatCSV {
		if headerEnd <= 0 {
			return blobResult{}, bypass("corrupt (no CSV header)")
		}
		groups = append(groups, group{start: 0, end: headerEnd})
	}
	for i := 0; i < len(spans); {
		start, end := spans[i].start, spans[i].end
		k := i + 1
		for ; k < len(spans) && spans[k].start-end < readGap && spans[k].end-start <= readChunk; k++ {
			end = spans[k].end
		}
		groups = append(groups, group{start: start, end: end, spans: spans[i:k]})
		i = k
	}
	err = inParallel(ctx, len(groups), func(i int) error {
		var err error
		groups[i].data, err = c.fetchBlob(ctx, d, name, etag, l.h.Size, groups[i].start, groups[i].end, nil)
		return err
	})
	if err != nil {
		return blobResult{}, err
	}
	var header []byte
	if d.Format == sources.FormatCSV {
		header, groups = groups[0].data, groups[1:]
	}
	var sc scratch
	for _, g := range groups {
		for _, sp := range g.spans {
			err := iterateBlock(ctx, d.Format, header, g.data[sp.start-g.start:sp.end-g.start], sp, func(r *rawRecord) error {
				return m.matchRecord(r, &sc, refs, d.Format, &res)
			})
			if err != nil {
				return blobResult{}, err
			}
		}
	}
	return res, nil
}

// fetchBlob reads bytes [start, end) of the blob, only if it is still
// version etag of the size the index recorded.
func (c *Connector) fetchBlob(ctx context.Context, d *sources.Dataset, name, etag string, size, start, end int64, buf []byte) ([]byte, error) {
	loc := sources.Location{Blob: name, ETag: etag}
	b, got, err := c.fetch(ctx, d, loc, start, end, &buf)
	if err != nil {
		return nil, err
	}
	if got != size {
		return nil, fmt.Errorf("%w (size)", sources.ErrChanged)
	}
	return b, nil
}
