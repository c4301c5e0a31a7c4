package blobdataset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dsr-functions/dsr/shared/match"
	"github.com/dsr-functions/dsr/shared/sources"
)

// The identifier index (issue 15 item 2): per blob of a dataset that opts
// in, an object in the state container that maps keyed hashes of the
// blob's identifiers to blocks of its records, pinned to the blob's ETag.
// Discovery asks it which blocks may hold a subject's records and matches
// only those, exactly as a scan matches every record; a blob whose index
// is missing, stale (another ETag, secret, format version or matching
// config) or unreadable is scanned. BuildIndex builds one blob's index
// (the scan fan-out and timer drive it); StaleIndexes names the blobs that
// need one; a rewrite of an indexed blob rebuilds its index.

// indexer is a connector's index configuration.
type indexer struct {
	store  indexStore
	prefix string
	secret []byte
	key    string
	log    *slog.Logger
	// used and bypassed count the blob lookups answered by an index and
	// those that fell back to a scan (for tests and benchmarks).
	used, bypassed atomic.Int64
	// rebuild, if set, takes over the rebuilds after our rewrites
	// (IndexOptions.Rebuild).
	rebuild func(ctx context.Context, dataset, blob string)
	// stale, if set, hears of blobs whose index a discovery found missing,
	// stale or corrupt (IndexOptions.Stale); asked remembers the blob
	// versions already told, so each is told once.
	stale   func(ctx context.Context, dataset, blob, etag string)
	askedMu sync.Mutex
	asked   map[string]bool
	// phones is the phone memo every build of this process shares (a
	// number recurs across blobs and datasets), made on first use.
	phonesOnce sync.Once
	phones     *match.PhoneMemo
}

// phoneMemo returns the builds' shared phone memo for region (one
// connector has one region).
func (ix *indexer) phoneMemo(region string) *match.PhoneMemo {
	ix.phonesOnce.Do(func() { ix.phones = match.NewPhoneMemo(region, maxPhoneMemo) })
	return ix.phones
}

// maxAsked bounds the blob versions an indexer remembers having asked a
// build for; past it, it forgets them all (an ask too many is dropped by
// the queue's duplicate detection or finds the index fresh).
const maxAsked = 4096

// maxStaleAsks bounds the builds one dataset pass asks for: a dataset of
// thousands of changed blobs is left to the timer's refresh rather than
// delay the discovery by thousands of sends. A variable for tests.
var maxStaleAsks int64 = 32

// askBuild tells the app (IndexOptions.Stale) that the index of version
// etag of blob is missing, stale or corrupt, once per version, unless the
// pass has asked for maxStaleAsks builds already.
func (ix *indexer) askBuild(ctx context.Context, d *sources.Dataset, blob, etag string, pass *atomic.Int64) {
	if ix.stale == nil {
		return
	}
	key := d.Name + "\x00" + blob + "\x00" + etag
	ix.askedMu.Lock()
	// Only new asks count against the pass's bound, so that blobs asked
	// for earlier do not keep others waiting for the timer.
	if ix.asked[key] || pass.Load() >= maxStaleAsks {
		ix.askedMu.Unlock()
		return
	}
	pass.Add(1)
	if ix.asked == nil || len(ix.asked) >= maxAsked {
		ix.asked = map[string]bool{}
	}
	ix.asked[key] = true
	ix.askedMu.Unlock()
	ix.stale(ctx, d.Name, blob, etag)
}

func newIndexer(st indexStore, prefix string, secret []byte, log *slog.Logger) *indexer {
	if prefix == "" {
		prefix = DefaultIndexPrefix
	}
	return &indexer{store: st, prefix: prefix, secret: slices.Clone(secret), key: keyID(secret), log: log}
}

// name is the index object of blob in dataset d.
func (ix *indexer) name(d *sources.Dataset, blob string) string {
	return ix.prefix + d.Name + "/" + blobID(d.Name, blob)
}

// bypass logs why a blob is scanned rather than looked up (never
// content: the reasons are fixed words). A missing or stale index is
// routine until the fan-out rebuilds it (debug); a corrupt or unreadable
// one is not (warning).
func (ix *indexer) bypass(d *sources.Dataset, blob, reason string, warn bool) {
	if ix.log == nil {
		return
	}
	level := slog.LevelDebug
	if warn {
		level = slog.LevelWarn
	}
	ix.log.Log(context.Background(), level, "identifier index bypassed: scanning the blob", "dataset", d.Name, "blob", blob, "reason", reason)
}

// Metadata of an index object, so that StaleIndexes can tell fresh from
// stale by one listing.
const (
	metaETag    = "dsrindexetag"
	metaKey     = "dsrindexkey"
	metaRules   = "dsrindexrules"
	metaVersion = "dsrindexversion"
)

// indexable reports whether the format can be indexed.
func indexable(f sources.Format) bool {
	return f == sources.FormatNDJSON || f == sources.FormatCSV || f == sources.FormatJSONArray
}

// indexed reports whether discovery may use an index for dataset d.
func (c *Connector) indexed(d *sources.Dataset) bool {
	return c.index != nil && d.Index && indexable(d.Format) && c.reader != nil
}

// indexedDataset returns the dataset named dataset if it has an index.
func (c *Connector) indexedDataset(dataset string) (*sources.Dataset, error) {
	if c.indexErr != nil {
		return nil, c.indexErr
	}
	if c.index == nil {
		return nil, errors.New("identifier index: off (no WithIndex option)")
	}
	d := c.cfg.Dataset(dataset)
	if d == nil {
		return nil, fmt.Errorf("dataset %s: not configured", dataset)
	}
	if !d.Index || !indexable(d.Format) {
		return nil, fmt.Errorf("dataset %s: no identifier index (index: true on an ndjson, csv or json-array dataset)", d.Name)
	}
	return d, nil
}

// inDataset reports whether blob is one of d's blobs.
func inDataset(d *sources.Dataset, blob string) bool {
	if d.Blob != "" {
		return blob == d.Blob
	}
	return blob != "" && strings.HasPrefix(blob, d.Prefix)
}

// versioner tells the current ETags of blobs: Blob Storage's listing
// holds them, and one HEAD request gives a single blob's.
type versioner interface {
	listETags(ctx context.Context, container, prefix string) (map[string]string, error)
	stat(ctx context.Context, container, name string) (etag string, size int64, err error)
}

// blobVersions lists d's blobs in name order with their current ETags
// (one listing, or one HEAD for a single-blob dataset). A store that
// cannot tell ETags returns none: every blob is then scanned.
func (c *Connector) blobVersions(ctx context.Context, d *sources.Dataset) ([]string, map[string]string, error) {
	v, ok := c.store.(versioner)
	if !ok {
		names, err := c.blobs(ctx, d)
		return names, nil, err
	}
	if d.Blob != "" {
		etag, _, err := v.stat(ctx, d.Container, d.Blob)
		if err != nil {
			// The scan reports a missing blob as it always does.
			return []string{d.Blob}, nil, nil
		}
		return []string{d.Blob}, map[string]string{d.Blob: etag}, nil
	}
	etags, err := v.listETags(ctx, d.Container, d.Prefix)
	if err != nil {
		return nil, nil, fmt.Errorf("dataset %s: %w", d.Name, err)
	}
	names := make([]string, 0, len(etags))
	for n := range etags {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, etags, nil
}

// freshMeta reports whether an index object's metadata say it indexes
// the version etag of its blob under the current secret, format and
// config of d.
func (c *Connector) freshMeta(d *sources.Dataset, meta map[string]string, etag string) bool {
	return meta != nil && etag != "" && meta[metaETag] == metaValue(etag) && meta[metaKey] == c.index.key &&
		meta[metaRules] == rulesID(c.cfg, d) && meta[metaVersion] == fmt.Sprint(indexVersion)
}

// metaValue is an ETag as metadata holds it (without quotes).
func metaValue(etag string) string { return strings.Trim(etag, `"`) }

// StaleIndexes names the blobs of dataset, in name order, whose index is
// missing or stale (another ETag, secret, format version or matching
// config): the ones the fan-out must give to BuildIndex. It costs two
// listings (the dataset's blobs, with ETags, and the index objects, with
// metadata), or a HEAD and a listing for a single-blob dataset.
func (c *Connector) StaleIndexes(ctx context.Context, dataset string) ([]string, error) {
	out, _, err := c.staleIndexes(ctx, dataset)
	return out, err
}

// staleIndexes is StaleIndexes with the blobs' current ETags.
func (c *Connector) staleIndexes(ctx context.Context, dataset string) ([]string, map[string]string, error) {
	d, err := c.indexedDataset(dataset)
	if err != nil {
		return nil, nil, err
	}
	names, etags, err := c.blobVersions(ctx, d)
	if err != nil {
		return nil, nil, err
	}
	objs, err := c.index.store.list(ctx, c.index.prefix+d.Name+"/")
	if err != nil {
		return nil, nil, fmt.Errorf("dataset %s: %w", d.Name, err)
	}
	var out []string
	for _, n := range names {
		if !c.freshMeta(d, objs[c.index.name(d, n)].meta, etags[n]) {
			out = append(out, n)
		}
	}
	return out, etags, nil
}

// PruneIndexes deletes the index objects of dataset whose blob is gone
// (deleted, or no longer under the dataset's prefix or blob name) and
// returns how many it deleted. Each deletion is conditional on the
// object's ETag in the listing, so an index stored meanwhile stays. The
// timer can run it after StaleIndexes; an orphan is never read (index
// objects are found by their blob's name), it only takes room.
func (c *Connector) PruneIndexes(ctx context.Context, dataset string) (int, error) {
	d, err := c.indexedDataset(dataset)
	if err != nil {
		return 0, err
	}
	names, err := c.blobs(ctx, d)
	if err != nil {
		return 0, err
	}
	if d.Blob != "" {
		// A single-blob dataset lists nothing: ask whether it exists.
		if v, ok := c.store.(versioner); ok {
			if _, _, err := v.stat(ctx, d.Container, d.Blob); errors.Is(err, errBlobNotFound) {
				names = nil
			} else if err != nil {
				return 0, fmt.Errorf("dataset %s: %w", d.Name, err)
			}
		}
	}
	live := map[string]bool{}
	for _, n := range names {
		live[c.index.name(d, n)] = true
	}
	objs, err := c.index.store.list(ctx, c.index.prefix+d.Name+"/")
	if err != nil {
		return 0, fmt.Errorf("dataset %s: %w", d.Name, err)
	}
	pruned := 0
	for _, name := range slices.Sorted(maps.Keys(objs)) {
		if live[name] {
			continue
		}
		if err := c.index.store.del(ctx, name, objs[name].etag); err != nil {
			return pruned, fmt.Errorf("dataset %s: %w", d.Name, err)
		}
		pruned++
	}
	return pruned, nil
}

// refreshIndex rebuilds the index of a blob our own rewrite just changed
// (or has IndexOptions.Rebuild do it), so that discovery keeps using it.
// Best effort: on failure the index is stale, and discovery scans the
// blob until the fan-out rebuilds it; the rewrite has committed either
// way.
func (c *Connector) refreshIndex(ctx context.Context, d *sources.Dataset, blob string) {
	if c.index.rebuild != nil {
		c.index.rebuild(ctx, d.Name, blob)
		return
	}
	if _, err := c.BuildIndex(ctx, d.Name, blob); err != nil && c.index.log != nil {
		c.index.log.Warn("identifier index not refreshed after a rewrite: it is bypassed until rebuilt", "dataset", d.Name, "blob", blob)
	}
}
