package blobdataset

import (
	"sync"
	"time"

	"github.com/dsr-functions/dsr/shared/sources"
)

// recentRecords keeps, for a short while, the records a scan matched,
// parsed, keyed by the blob version and byte position discovery recorded
// for them. The export that follows a discovery in the same process (the
// usual case under a burst, where one shared pass serves many requests)
// then takes them from memory: one conditional request confirms that the
// version is still the blob's (Read's contract is unchanged: a replaced or
// deleted blob fails with sources.ErrChanged), instead of a ranged
// download per group of records plus, for CSV, the header's. A blob
// version's bytes never change, so an entry is exactly what a download of
// those positions would give. Our own rewrites of a blob forget its
// entries at once.
//
// The records are personal data in memory only: never logged, bounded by
// recentBytes, dropped after recentTTL.
type recentRecords struct {
	mu      sync.Mutex
	entries map[recentKey]recentEntry
	// order is the insertion order, for eviction (oldest first); a place
	// whose entry was forgotten (or forgotten and kept anew, with a later
	// seq) is skipped.
	order []recentPlace
	seq   uint64
	bytes int
	now   func() time.Time
}

type recentPlace struct {
	key recentKey
	seq uint64
}

type recentKey struct {
	container, blob, etag string
	offset, length        int64
}

type recentEntry struct {
	rec  sources.Record
	at   time.Time
	size int
	seq  uint64
}

// recentTTL and recentBytes bound how long and how much the cache keeps:
// long enough for the exports behind a shared pass under a burst, a few
// MiB (the matched records of a few thousand people). Variables for tests.
var (
	recentTTL   = 30 * time.Second
	recentBytes = 16 << 20
)

func newRecentRecords() *recentRecords {
	return &recentRecords{entries: map[recentKey]recentEntry{}, now: time.Now}
}

// recordSize is about what a parsed record of length bytes in its blob
// holds in memory: its strings, its fields' headers and the maps of nested
// values cost about as much again as the bytes.
func recordSize(length int64) int {
	return 2*int(min(length, maxLine)) + 64
}

// matchedRecord is one record a scan matched, with its position.
type matchedRecord struct {
	offset, length int64
	rec            sources.Record
}

// put keeps the matched records of one scanned blob version.
func (r *recentRecords) put(container, blob, etag string, recs []matchedRecord) {
	if r == nil || len(recs) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	r.expire(now)
	for _, m := range recs {
		k := recentKey{container, blob, etag, m.offset, m.length}
		if _, ok := r.entries[k]; ok {
			continue
		}
		size := recordSize(m.length)
		if size > recentBytes {
			continue
		}
		for r.bytes+size > recentBytes && len(r.order) > 0 {
			r.evictOldest()
		}
		r.seq++
		r.entries[k] = recentEntry{rec: m.rec, at: now, size: size, seq: r.seq}
		r.order = append(r.order, recentPlace{k, r.seq})
		r.bytes += size
	}
}

// get returns the records of loc when every one of them is kept and
// fresh, in loc's order; ok is false otherwise (the caller downloads).
func (r *recentRecords) get(container string, loc sources.Location) ([]sources.Record, bool) {
	if r == nil || len(loc.Offsets) == 0 || len(loc.Offsets) != len(loc.Lengths) {
		return nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	out := make([]sources.Record, 0, len(loc.Offsets))
	for i, off := range loc.Offsets {
		e, ok := r.entries[recentKey{container, loc.Blob, loc.ETag, off, loc.Lengths[i]}]
		if !ok || now.Sub(e.at) > recentTTL {
			return nil, false
		}
		out = append(out, e.rec)
	}
	return out, true
}

// forget drops every kept record of a blob (all versions): called when we
// change the blob ourselves.
func (r *recentRecords) forget(container, blob string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, e := range r.entries {
		if k.container == container && k.blob == blob {
			delete(r.entries, k)
			r.bytes -= e.size
		}
	}
}

// expire drops entries older than recentTTL. Entries are in insertion
// order, so it stops at the first fresh one.
func (r *recentRecords) expire(now time.Time) {
	for len(r.order) > 0 {
		p := r.order[0]
		if e, ok := r.entries[p.key]; ok && e.seq == p.seq && now.Sub(e.at) <= recentTTL {
			break
		}
		r.evictOldest()
	}
}

// evictOldest drops the oldest place of order and its entry, if the
// entry is still the one kept there.
func (r *recentRecords) evictOldest() {
	p := r.order[0]
	r.order = r.order[1:]
	if e, ok := r.entries[p.key]; ok && e.seq == p.seq {
		delete(r.entries, p.key)
		r.bytes -= e.size
	}
}
