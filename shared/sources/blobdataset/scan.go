package blobdataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/dsr-functions/dsr/shared/match"
	"github.com/dsr-functions/dsr/shared/sources"
)

// scanResult is what one scan of a dataset found for one subject: its
// matches, and the values of the referenced fields of the matched records
// (to be added to the subject's keys once the scan is over).
type scanResult struct {
	matches sources.DatasetMatches
	keys    []keyValue
}

type keyValue struct{ field, value string }

// blobResult is what the scan of one blob found, for every subject.
type blobResult struct {
	etag string
	// hits are the matched records in blob order; a record matched for
	// several subjects appears once per subject, in subject order.
	hits []hit
	keys []subjectKey
	// keep asks matchRecord to collect the matched records themselves
	// (records, up to recentBytes) for the connector's recentRecords.
	keep      bool
	records   []matchedRecord
	keptBytes int
}

type hit struct {
	subject int
	ordinal int64
	// mention: the record only mentions the subject in free text.
	mention bool
	// offset and length place the record's bytes in the blob (see
	// rawRecord.offset).
	offset, length int64
}

type subjectKey struct {
	subject int
	keyValue
}

// scan finds the records of dataset d that belong to each of the due
// subjects, given the keys found so far (read, not changed: the keys of
// the matches come back in the results). The dataset's blobs are read once
// for all subjects, up to c.parallelism at a time, and the results are
// assembled in blob name order, so they do not depend on the parallelism.
//
// early holds the blobs this discovery opened early (nil: none): a dataset
// whose blob is there is scanned from it.
func (c *Connector) scan(ctx context.Context, d *sources.Dataset, due []*subjectState, early *earlyOpens) ([]scanResult, error) {
	if d.Format == sources.FormatSynapse {
		return c.scanSynapse(ctx, d, due)
	}
	refs := c.cfg.ReferencedFields(d.Name)
	if d.Format == sources.FormatDelta {
		return c.scanDelta(ctx, d, newDatasetMatcher(c.cfg, d, due), refs, len(due))
	}
	_, versioned := c.store.(versioner)
	indexed := versioned && c.indexed(d)
	if body, p, ok := early.take(ctx, d.Name); ok {
		return c.scanOpenedBody(ctx, d, due, body, p, refs)
	}
	if so, ok := c.store.(sizedOpener); ok && d.Blob != "" && !indexed && c.fanout != nil && fanoutFormat(d.Format) && d.Format != sources.FormatParquet {
		return c.scanOpened(ctx, d, due, so, refs)
	}
	// The listing's ETags say which blobs' indexes are fresh; its sizes
	// whether to fan out.
	l, err := c.listBlobs(ctx, d, indexed, c.fanout != nil && fanoutFormat(d.Format))
	if err != nil {
		return nil, err
	}
	names, etags := l.names, l.etags
	// The matcher is built only for what runs here (a fanned-out scan
	// builds its own).
	var m *datasetMatcher
	blobs := make([]blobResult, len(names))
	// Blobs with a fresh index are looked up; the rest are scanned, in
	// process or, when they are many bytes, fanned out.
	answered := make([]bool, len(names))
	if etags != nil {
		m = newDatasetMatcher(c.cfg, d, due)
		query := c.newIndexQuery(d, due)
		err = forEachN(ctx, len(names), max(c.parallelism, indexLookupParallelism), func(ctx context.Context, i int) error {
			etag := etags[names[i]]
			if etag == "" {
				return nil
			}
			res, ok, err := c.lookupBlobIndexed(ctx, d, names[i], etag, m, refs, query)
			blobs[i], answered[i] = res, ok
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	var rest []int
	for i := range names {
		if !answered[i] {
			rest = append(rest, i)
		}
	}
	if c.fanout != nil && fanoutFormat(d.Format) && len(rest) > 0 {
		var sized []jobBlob
		if l.props != nil {
			sized = make([]jobBlob, len(rest))
			for k, i := range rest {
				p := l.props[names[i]]
				sized[k] = jobBlob{Name: names[i], Size: p.size, ETag: p.etag}
			}
		}
		if sized != nil && len(planShards(sized, c.fanout.ShardBytes, c.fanout.MaxShards, d.Format == sources.FormatNDJSON)) > 1 {
			fanned, err := c.scanFanout(ctx, d, due, sized)
			if err != nil || len(rest) == len(names) {
				return fanned, err
			}
			var looked []string
			var lookedBlobs []blobResult
			for i := range names {
				if answered[i] {
					looked = append(looked, names[i])
					lookedBlobs = append(lookedBlobs, blobs[i])
				}
			}
			return mergeResults(assemble(d, len(due), looked, lookedBlobs), fanned), nil
		}
	}
	if m == nil {
		m = newDatasetMatcher(c.cfg, d, due)
	}
	err = c.forEachBlob(ctx, len(rest), func(ctx context.Context, k int) error {
		var err error
		i := rest[k]
		blobs[i], err = c.scanBlob(ctx, d, names[i], m, refs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return assemble(d, len(due), names, blobs), nil
}

// scanOpened is scan of a single-blob dataset that may be fanned out: the
// download the scan reads tells the blob's size, so the blob is opened
// first and fanned out only if it is large (the download then closed
// unread), instead of asking its size with a HEAD before every scan.
func (c *Connector) scanOpened(ctx context.Context, d *sources.Dataset, due []*subjectState, so sizedOpener, refs []string) ([]scanResult, error) {
	body, p, err := so.openSized(ctx, d.Container, d.Blob)
	if err != nil {
		return nil, openError(d, d.Blob, err)
	}
	return c.scanOpenedBody(ctx, d, due, body, p, refs)
}

// scanOpenedBody is scanOpened once the blob is open (body, props p): it
// closes body.
func (c *Connector) scanOpenedBody(ctx context.Context, d *sources.Dataset, due []*subjectState, body io.ReadCloser, p blobProps, refs []string) ([]scanResult, error) {
	sized := []jobBlob{{Name: d.Blob, Size: p.size, ETag: p.etag}}
	if c.fanout != nil && fanoutFormat(d.Format) && len(planShards(sized, c.fanout.ShardBytes, c.fanout.MaxShards, d.Format == sources.FormatNDJSON)) > 1 {
		body.Close()
		return c.scanFanout(ctx, d, due, sized)
	}
	res, err := c.scanBody(ctx, d, d.Blob, body, p.etag, newDatasetMatcher(c.cfg, d, due), refs)
	if err != nil {
		return nil, err
	}
	return assemble(d, len(due), []string{d.Blob}, []blobResult{res}), nil
}

// mergeResults joins, subject by subject, the results of two scans of
// disjoint sets of a dataset's blobs (the blobs looked up in their index
// and those fanned out): Locations in blob name order, as one scan of all
// of them gives.
func mergeResults(a, b []scanResult) []scanResult {
	out := make([]scanResult, len(a))
	for k := range a {
		out[k] = a[k]
		dm := &out[k].matches
		dm.Locations = append(slices.Clone(a[k].matches.Locations), b[k].matches.Locations...)
		slices.SortStableFunc(dm.Locations, func(x, y sources.Location) int { return strings.Compare(x.Blob, y.Blob) })
		dm.Records += b[k].matches.Records
		out[k].keys = append(slices.Clone(a[k].keys), b[k].keys...)
	}
	return out
}

// assemble turns the blobs' results (blobs[i] is names[i]'s) into each of
// subjects subjects' matches and keys, in blob order.
func assemble(d *sources.Dataset, subjects int, names []string, blobs []blobResult) []scanResult {
	out := make([]scanResult, subjects)
	for k := range out {
		out[k].matches.Dataset = d.Name
	}
	for i, b := range blobs {
		for _, h := range b.hits {
			dm := &out[h.subject].matches
			if n := len(dm.Locations); n == 0 || dm.Locations[n-1].Blob != names[i] {
				dm.Locations = append(dm.Locations, sources.Location{Blob: names[i], ETag: b.etag})
			}
			loc := &dm.Locations[len(dm.Locations)-1]
			loc.Ordinals = append(loc.Ordinals, h.ordinal)
			if h.mention {
				loc.Mentions = append(loc.Mentions, h.ordinal)
			}
			loc.Offsets = append(loc.Offsets, h.offset)
			loc.Lengths = append(loc.Lengths, h.length)
			dm.Records++
		}
		for _, k := range b.keys {
			out[k.subject].keys = append(out[k.subject].keys, k.keyValue)
		}
	}
	return out
}

// listing is what one call to the store tells of a dataset's blobs.
type listing struct {
	// names are the blobs in name order.
	names []string
	// etags and props are the blobs' ETags and sizes, when asked for and
	// the store can tell them (nil otherwise).
	etags map[string]string
	props map[string]blobProps
}

// listBlobs tells d's blobs, with their ETags (wantETags: the identifier
// index's freshness check) and sizes (wantSizes: fan-out planning) when
// asked, in one call to the store: one listing of a prefix dataset (names,
// ETags and sizes come together), one HEAD of a single-blob dataset when
// its version or size is needed and none otherwise (scan asks a
// single-blob dataset's size from its download instead, scanOpened, when
// the store can tell it and no index needs the version first). A pass used to list a
// prefix for the names and again for the sizes or ETags. A single blob that
// does not exist is returned without properties: its scan reports it as
// the dataset's failure, as for a dataset that is not indexed.
func (c *Connector) listBlobs(ctx context.Context, d *sources.Dataset, wantETags, wantSizes bool) (listing, error) {
	s, ok := c.store.(blobSizer)
	switch {
	case ok && (wantETags || wantSizes):
		props, err := s.sizes(ctx, d.Container, d.Prefix, d.Blob)
		if errors.Is(err, errBlobNotFound) && d.Blob != "" {
			return listing{names: []string{d.Blob}}, nil
		}
		if err != nil {
			return listing{}, fmt.Errorf("dataset %s: %w", d.Name, err)
		}
		l := listing{names: make([]string, 0, len(props))}
		if wantSizes {
			l.props = props
		}
		if wantETags {
			l.etags = make(map[string]string, len(props))
		}
		for n, p := range props {
			l.names = append(l.names, n)
			if l.etags != nil {
				l.etags[n] = p.etag
			}
		}
		slices.Sort(l.names)
		return l, nil
	case wantETags:
		names, etags, err := c.blobVersions(ctx, d)
		return listing{names: names, etags: etags}, err
	default:
		names, err := c.blobs(ctx, d)
		return listing{names: names}, err
	}
}

// blobs lists the dataset's blobs in name order.
func (c *Connector) blobs(ctx context.Context, d *sources.Dataset) ([]string, error) {
	if d.Blob != "" {
		return []string{d.Blob}, nil
	}
	names, err := c.store.list(ctx, d.Container, d.Prefix)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", d.Name, err)
	}
	sort.Strings(names)
	return names, nil
}

// forEachBlob calls fn for blobs 0..n-1, handing them out in order to at
// most c.parallelism goroutines, and waits for all of them. The first
// failure cancels the context the others run under, so they stop early;
// the error returned is ctx's if it ended, otherwise the failure of the
// first blob (in order) that failed for a reason of its own rather than
// because another one did.
func (c *Connector) forEachBlob(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	return forEachN(ctx, n, c.parallelism, fn)
}

// indexLookupParallelism is how many blobs' indexes one pass looks up at
// once. A lookup is a few small ranged reads, one stage after another, so
// it waits on round trips rather than on bandwidth or CPU: a dataset of
// thousands of indexed blobs is answered in thousands of round trips, and
// 4 at a time (the scans' parallelism) would make them minutes. A
// variable for the benchmark that compares.
var indexLookupParallelism = 32

// forEachN is forEachBlob with workers goroutines.
func forEachN(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(max(1, workers), n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || inner.Err() != nil {
					return
				}
				if err := fn(inner, i); err != nil {
					errs[i] = err
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// scanBlob streams one blob and matches its records for every subject of m.
func (c *Connector) scanBlob(ctx context.Context, d *sources.Dataset, name string, m *datasetMatcher, refs []string) (blobResult, error) {
	return c.scanBlobWith(ctx, d, name, func() *datasetMatcher { return m }, refs)
}

// scanBlobWith is scanBlob with the matcher asked for once the download is
// open, so that it may still be building while the first byte is on its
// way (a shard's first of a job: scanShard).
func (c *Connector) scanBlobWith(ctx context.Context, d *sources.Dataset, name string, matcher func() *datasetMatcher, refs []string) (blobResult, error) {
	if d.Format == sources.FormatParquet {
		return c.scanParquet(ctx, d, name, matcher(), refs)
	}
	body, etag, err := c.store.open(ctx, d.Container, name)
	if err != nil {
		return blobResult{}, openError(d, name, err)
	}
	return c.scanBody(ctx, d, name, body, etag, matcher(), refs)
}

// openError is the error of a blob that could not be opened for a scan.
func openError(d *sources.Dataset, name string, err error) error {
	if errors.Is(err, errBlobNotFound) {
		// Configured but absent, or listed and then deleted: no retry
		// brings it back.
		return &sources.DataError{Dataset: d.Name, Reason: fmt.Sprintf("blob %s/%s not found", d.Container, name)}
	}
	return fmt.Errorf("dataset %s: read blob %s: %w", d.Name, name, err)
}

// scanBody is scanBlob of a blob already opened (version etag); it closes
// body.
func (c *Connector) scanBody(ctx context.Context, d *sources.Dataset, name string, body io.ReadCloser, etag string, m *datasetMatcher, refs []string) (blobResult, error) {
	defer body.Close()
	res := blobResult{etag: etag, keep: c.recent != nil && rangeReadable(d.Format)}
	var sc scratch
	err := iterateSkipping(ctx, transportReader{body}, d.Format, m.skipper(), func(r *rawRecord) error {
		return m.matchRecord(r, &sc, refs, d.Format, &res)
	})
	if err != nil {
		var te *transportError
		if errors.As(err, &te) || ctx.Err() != nil {
			return blobResult{}, fmt.Errorf("dataset %s: blob %s: %w", d.Name, name, err)
		}
		// What is left is the data itself: malformed, truncated, a record
		// over the limit. Reading it again gives the same.
		return blobResult{}, &sources.DataError{Dataset: d.Name, Reason: "blob " + name + ": " + contentFree(err.Error())}
	}
	c.recent.put(d.Container, name, etag, res.records)
	res.records = nil
	return res, nil
}

// rangeReadable reports whether Read fetches records of format by their
// byte positions (readRanges), where recentRecords can stand in for it.
func rangeReadable(f sources.Format) bool {
	return f == sources.FormatNDJSON || f == sources.FormatCSV || f == sources.FormatJSONArray
}

// matchRecord matches one record for every subject of m: the prefilter
// on its raw bytes, then, for the subjects it may belong to, the exact
// rules on its parsed fields. Hits and the referenced keys of the
// subjects' own records are added to res.
func (m *datasetMatcher) matchRecord(r *rawRecord, sc *scratch, refs []string, format sources.Format, res *blobResult) error {
	owners := m.owners(r, sc)
	if len(owners) == 0 {
		return nil
	}
	fields, err := r.fields()
	if err != nil {
		return fmt.Errorf("record %d is not a valid %s record", r.ordinal, format)
	}
	rec := sources.MapFields(fields)
	var rel []keyValue
	relDone := false
	hits := len(res.hits)
	for _, k := range owners {
		how := m.rules[k].Match(rec)
		if how == sources.NoMatch {
			continue
		}
		res.hits = append(res.hits, hit{subject: k, ordinal: r.ordinal, offset: r.offset, length: r.length, mention: how == sources.Mentioned})
		if how != sources.Own {
			// Relations run only from the subject's own records.
			continue
		}
		if !relDone {
			for _, f := range refs {
				sources.PathStrings(fields, f, func(v string) bool {
					if v = strings.TrimSpace(v); v != "" {
						rel = append(rel, keyValue{f, v})
					}
					return true
				})
			}
			relDone = true
		}
		for _, kv := range rel {
			res.keys = append(res.keys, subjectKey{k, kv})
		}
	}
	if res.keep && len(res.hits) > hits && res.keptBytes < recentBytes {
		if o, err := r.ordered(); err == nil {
			res.records = append(res.records, matchedRecord{offset: r.offset, length: r.length, rec: o})
			res.keptBytes += recordSize(r.length)
		}
	}
	return nil
}

// transportReader marks the errors of reading a blob's body (a connection
// dropped mid-stream), which a retry may cure, apart from the parsers' own
// errors about the data.
type transportReader struct{ r io.Reader }

func (t transportReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		err = &transportError{err}
	}
	return n, err
}

type transportError struct{ err error }

func (e *transportError) Error() string { return "read: " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// quoted is a character a parser's message quotes from the data.
var quoted = regexp.MustCompile(`'(?:[^'\\]|\\.){1,8}'`)

// contentFree drops the bits of data a parser quotes in its message
// ("invalid character 'x' ..."): reasons say where, never what.
func contentFree(reason string) string {
	return quoted.ReplaceAllString(reason, "…")
}

// datasetMatcher decides, for the records of one dataset, which of several
// subjects they may belong to (the prefilter, on raw bytes) and which they
// do belong to (the exact rules, on parsed fields). It is only read while
// blobs are scanned, so the scans share it.
//
// A subject's record is a candidate when its raw bytes hold one of the
// subject's emails, ids or relation keys (ASCII case-insensitively), or when
// their digits hold the last 7 digits of one of its phones; for CSV each
// cell is looked at on its own. The combined prefilters give the same
// candidates per subject as a prefilter of that subject alone, so a record
// matches for a subject exactly when it would in a scan for that subject.
type datasetMatcher struct {
	// text searches every subject's emails, ids and relation keys;
	// textOwner[i] is the subject of its pattern i.
	text      *match.Prefilter
	textOwner []int
	// phones searches the digits of a record for phone tails (nil if no
	// subject has a phone); phoneOwner[i] is the subject of tail i.
	phones     *match.Prefilter
	phoneOwner []int
	// always are the subjects every record is a candidate for (one of
	// their phones is empty, and the empty tail is in every line).
	always []int
	// rules[k] are subject k's exact rules.
	rules []*sources.Rules
}

// phoneTailLen is how many trailing digits of a phone the prefilter
// searches for (as ContainsPhone's fast reject does).
const phoneTailLen = 7

func newDatasetMatcher(cfg *sources.Config, d *sources.Dataset, due []*subjectState) *datasetMatcher {
	m := &datasetMatcher{rules: make([]*sources.Rules, len(due))}
	var pats, tails []string
	for k, st := range due {
		m.rules[k] = rules(cfg, d, st.subj, st.keys)
		add := func(p string) {
			pats = append(pats, p)
			m.textOwner = append(m.textOwner, k)
		}
		for _, e := range st.subj.Emails {
			add(e)
		}
		for _, v := range st.subj.IDs {
			add(v)
		}
		for _, r := range d.Relations {
			for v := range st.keys[r.References][r.ReferencesField] {
				add(v)
			}
		}
		always := false
		for _, p := range st.subj.Phones {
			tail := p[max(0, len(p)-phoneTailLen):]
			if tail == "" {
				always = true
			}
			if tail == "" || strings.ContainsFunc(tail, func(r rune) bool { return r < '0' || r > '9' }) {
				// A tail with a non-digit is never in a line's digits.
				continue
			}
			tails = append(tails, tail)
			m.phoneOwner = append(m.phoneOwner, k)
		}
		if always {
			m.always = append(m.always, k)
		}
	}
	m.text = match.NewPrefilter(pats)
	if len(tails) > 0 {
		m.phones = match.NewDigitsPrefilter(tails)
	}
	return m
}

// scratch is one scan's reusable memory for datasetMatcher.owners.
type scratch struct {
	idx, owners []int
	// canon holds the decoded form of a line or cell (see candidateBytes).
	canon []byte
}

// owners returns the subjects, in increasing order, that record r is a
// candidate for (nil if none). The slice is reused by the next call.
//
// Bytes that hold no pattern get a second look when they hold an encoding
// mark (a JSON or HTML escape, a percent escape, a line break inside a CSV
// cell): the prefilter then runs over their decoded, unwrapped form, so an
// address written quinn.obrien\u0040fabrikam.example, &#64;, %40 or wrapped
// across lines is a candidate too. Plain data pays one byte search per mark
// byte, shared by the lines of a buffer (match.MarkFinder).
func (m *datasetMatcher) owners(r *rawRecord, sc *scratch) []int {
	sc.owners = sc.owners[:0]
	if r.raw != nil {
		b := r.raw
		if !m.hitsAny(b) {
			// The raw JSON may hide an identifier behind an escape (see
			// match.HasEscapeMark); NDJSON lines ask their buffer's
			// MarkFinder, whose fast path is one comparison.
			escaped := false
			if r.marks != nil {
				escaped = r.marks.Has(r.markStart, r.markEnd)
			} else {
				escaped = match.HasEscapeMark(b)
			}
			b = nil
			if escaped {
				b = m.decoded(r.raw, sc)
			}
		}
		if b == nil && len(m.always) == 0 {
			return nil
		}
		if b != nil {
			if len(m.rules) == 1 {
				return append(sc.owners, 0)
			}
			sc.owners = m.appendOwners(sc.owners, b, sc)
		}
	} else {
		for _, cell := range r.row {
			b := unsafe.Slice(unsafe.StringData(cell), len(cell)) // only read
			if !m.hitsAny(b) {
				if !match.HasEncodingMark(b) {
					continue
				}
				if b = m.decoded(b, sc); b == nil {
					continue
				}
			}
			if len(m.rules) == 1 {
				return append(sc.owners[:0], 0)
			}
			sc.owners = m.appendOwners(sc.owners, b, sc)
		}
		if len(sc.owners) == 0 && len(m.always) == 0 {
			return nil
		}
		if len(m.rules) == 1 {
			return append(sc.owners[:0], 0)
		}
	}
	sc.owners = append(sc.owners, m.always...)
	slices.Sort(sc.owners)
	return slices.Compact(sc.owners)
}

// skipper returns a lineSkipper for one scan of an NDJSON blob, or nil if
// the scan must look at every line: when a subject has phones (their
// digits are searched line by line) or an empty one (every line is its
// candidate), or the text patterns are too many for a match.LineScanner.
// The lines it steps over are records that owners would turn down, so
// skipping them changes nothing but the time.
func (m *datasetMatcher) skipper() lineSkipper {
	if m.phones != nil || len(m.always) > 0 {
		return nil
	}
	s := m.text.LineScanner()
	if s == nil {
		return nil
	}
	return textSkipper{s}
}

// textSkipper is datasetMatcher.skipper's lineSkipper.
type textSkipper struct{ s *match.LineScanner }

func (t textSkipper) reset(buf []byte)         { t.s.Reset(buf) }
func (t textSkipper) next(from int) (int, int) { return t.s.Next(from) }

// decoded is the second look at bytes that hold no pattern but an encoding
// mark: their decoded, unwrapped form if it holds a pattern, else nil.
func (m *datasetMatcher) decoded(b []byte, sc *scratch) []byte {
	sc.canon = match.AppendCanonical(sc.canon[:0], b, true)
	if m.hitsAny(sc.canon) {
		return sc.canon
	}
	return nil
}

// hitsAny reports whether b holds a pattern or a phone tail of any subject.
func (m *datasetMatcher) hitsAny(b []byte) bool {
	return m.text.Match(b) || (m.phones != nil && m.phones.Match(b))
}

// appendOwners appends the subjects whose patterns or phone tails b holds.
func (m *datasetMatcher) appendOwners(dst []int, b []byte, sc *scratch) []int {
	sc.idx = m.text.AppendMatches(sc.idx[:0], b)
	for _, i := range sc.idx {
		dst = append(dst, m.textOwner[i])
	}
	if m.phones != nil {
		sc.idx = m.phones.AppendMatches(sc.idx[:0], b)
		for _, i := range sc.idx {
			dst = append(dst, m.phoneOwner[i])
		}
	}
	return dst
}
