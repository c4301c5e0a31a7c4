package blobdataset

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dsr-functions/dsr/shared/sources"
)

// IndexStats describes one index build.
type IndexStats struct {
	// ETag is the version of the blob indexed.
	ETag string
	// Records and Blocks count the blob's records and the index's blocks;
	// Entries the index's (token, block) entries.
	Records, Blocks, Entries int64
	// DataBytes is the blob's size, IndexBytes the index object's.
	DataBytes, IndexBytes int64
	// Fresh says the blob's index was already fresh: nothing was read or
	// written (the other fields are zero but ETag).
	Fresh bool
}

// BuildIndex builds the identifier index of one blob of dataset (which
// must have index: true) and stores it in the state container, unless the
// blob's index is fresh already (IndexStats.Fresh). It streams
// the blob once (one download, so one version; memory stays flat however
// large the blob), and stores the index only if that version is still
// the blob's current one (else sources.ErrChanged): an index is never
// written for data that is already gone. The write is conditional on the
// index object it replaces, so of two builds racing, an older one never
// overwrites an index of the current version. A blob that is missing or
// does not parse fails with a sources.DataError, as a scan does.
func (c *Connector) BuildIndex(ctx context.Context, dataset, blobName string) (IndexStats, error) {
	d, err := c.indexedDataset(dataset)
	if err != nil {
		return IndexStats{}, err
	}
	if !inDataset(d, blobName) {
		return IndexStats{}, fmt.Errorf("dataset %s: blob %s is not one of its blobs", d.Name, blobName)
	}
	ix := c.index
	name := ix.name(d, blobName)
	prev, have, err := ix.store.props(ctx, name)
	if errors.Is(err, errIndexGone) {
		prev = ""
	} else if err != nil {
		return IndexStats{}, fmt.Errorf("dataset %s: blob %s: %w", d.Name, blobName, err)
	}
	if v, ok := c.store.(versioner); ok && prev != "" {
		// Fresh already (another build, or our own rewrite, came first):
		// a HEAD saves reading the blob.
		if etag, _, err := v.stat(ctx, d.Container, blobName); err == nil && c.freshMeta(d, have, etag) {
			return IndexStats{ETag: etag, Fresh: true}, nil
		}
	}
	b, err := c.buildBlobIndex(ctx, d, blobName)
	if err != nil {
		return IndexStats{}, err
	}
	defer b.close()
	obj, size, err := b.object(c, d, blobName)
	if err != nil {
		return IndexStats{}, fmt.Errorf("dataset %s: blob %s: %w", d.Name, blobName, err)
	}
	meta := map[string]string{
		metaETag:    metaValue(b.etag),
		metaKey:     ix.key,
		metaRules:   rulesID(c.cfg, d),
		metaVersion: fmt.Sprint(indexVersion),
	}
	for attempt := 0; ; attempt++ {
		// The index is for b.etag: store it only while that is current.
		if err := c.stillCurrent(ctx, d, blobName, b.etag); err != nil {
			return IndexStats{}, err
		}
		err := ix.store.put(ctx, name, obj(), prev, meta)
		if err == nil {
			break
		}
		if !errors.Is(err, errIndexConflict) || attempt == 2 {
			return IndexStats{}, fmt.Errorf("dataset %s: blob %s: %w", d.Name, blobName, err)
		}
		// Another build stored an index meanwhile: keep it if it is of
		// this version, replace it (conditionally again) if not.
		cur, m, err := ix.store.props(ctx, name)
		if errors.Is(err, errIndexGone) {
			cur = ""
		} else if err != nil {
			return IndexStats{}, fmt.Errorf("dataset %s: blob %s: %w", d.Name, blobName, err)
		}
		if c.freshMeta(d, m, b.etag) {
			break
		}
		prev = cur
	}
	return IndexStats{ETag: b.etag, Records: b.records, Blocks: b.blocks, Entries: b.entries, DataBytes: b.size, IndexBytes: size}, nil
}

// stillCurrent checks that blob still has ETag etag.
func (c *Connector) stillCurrent(ctx context.Context, d *sources.Dataset, blob, etag string) error {
	v, ok := c.store.(versioner)
	if !ok {
		return errors.New("identifier index: the store cannot tell blob versions")
	}
	cur, _, err := v.stat(ctx, d.Container, blob)
	if errors.Is(err, errBlobNotFound) {
		return fmt.Errorf("dataset %s: blob %s: %w (deleted while indexed)", d.Name, blob, sources.ErrChanged)
	}
	if err != nil {
		return fmt.Errorf("dataset %s: blob %s: %w", d.Name, blob, err)
	}
	if cur != etag {
		return fmt.Errorf("dataset %s: blob %s: %w (changed while indexed)", d.Name, blob, sources.ErrChanged)
	}
	return nil
}

// buildBlobIndex streams one blob into an indexBuilder.
func (c *Connector) buildBlobIndex(ctx context.Context, d *sources.Dataset, blobName string) (*indexBuilder, error) {
	body, etag, err := c.store.open(ctx, d.Container, blobName)
	if errors.Is(err, errBlobNotFound) {
		return nil, &sources.DataError{Dataset: d.Name, Reason: fmt.Sprintf("blob %s/%s not found", d.Container, blobName)}
	}
	if err != nil {
		return nil, fmt.Errorf("dataset %s: read blob %s: %w", d.Name, blobName, err)
	}
	defer body.Close()
	b, err := newIndexBuilder(newIndexMAC(c.index.secret, d.Name, blobID(d.Name, blobName), etag), d.Format)
	if err != nil {
		return nil, err
	}
	b.etag = etag
	cr := &countingReader{r: transportReader{body}}
	err = tokenizeBlob(ctx, cr, d.Format, func() *tokenizer {
		return newTokenizer(c.index.secret, c.cfg, d, c.index.phoneMemo(c.cfg.DefaultPhoneRegion))
	}, b.add)
	if err == nil {
		b.size = cr.n
		err = b.finish()
	}
	if err != nil {
		b.close()
		var te *transportError
		if errors.As(err, &te) || ctx.Err() != nil || errors.Is(err, errIndexBuild) {
			return nil, fmt.Errorf("dataset %s: blob %s: %w", d.Name, blobName, err)
		}
		// The data itself: malformed, truncated, a record over the limit.
		return nil, &sources.DataError{Dataset: d.Name, Reason: "blob " + blobName + ": " + contentFree(err.Error())}
	}
	return b, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
