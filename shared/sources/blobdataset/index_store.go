package blobdataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// IndexOptions turn the identifier index on (see WithIndex).
type IndexOptions struct {
	// Container holds the index objects: the app's state container.
	Container *container.Client
	// Prefix starts the names of the index objects (default
	// DefaultIndexPrefix); each is <Prefix><dataset>/<hash of the blob name>.
	Prefix string
	// Secret keys the token hashes (at least 16 bytes). Changing it makes
	// every index stale.
	Secret []byte
	// Rebuild, if set, is called instead of rebuilding inline after one of
	// our rewrites (erasure, rectification, restriction) changed an
	// indexed blob: the app can put the rebuild on a queue (it then calls
	// BuildIndex) rather than make the rewrite read the blob once more. A
	// blob whose index is not rebuilt is scanned until it is.
	Rebuild func(ctx context.Context, dataset, blob string)
	// Stale, if set, is called when a discovery finds a blob's index
	// missing, stale or corrupt (and scans the blob), with the blob's
	// version (ETag) it scanned: the app asks for the build at once (on
	// demand) rather than wait for its timer. It is called at most once
	// per blob version per connector, and at most maxStaleAsks times per
	// dataset pass (the timer asks for the rest).
	Stale func(ctx context.Context, dataset, blob, etag string)
	// Logger, if set, hears why a blob's index was not used: dataset,
	// blob name and reason, never content; debug level for a missing or
	// stale index (routine until it is rebuilt), warning for a corrupt or
	// unreadable one.
	Logger *slog.Logger
}

// DefaultIndexPrefix is where index objects live in the state container.
const DefaultIndexPrefix = "blob-index/"

// minIndexSecret is the shortest secret WithIndex accepts.
const minIndexSecret = 16

// WithIndex turns the identifier index on for the datasets that opt in
// (sources.Dataset.Index): discovery uses a blob's index when it is fresh,
// BuildIndex builds one. Without this option the index is off and every
// blob is scanned. A secret shorter than 16 bytes or no container leaves
// the index off and makes BuildIndex fail.
func WithIndex(o IndexOptions) Option {
	return func(c *Connector) {
		if o.Container == nil || len(o.Secret) < minIndexSecret {
			c.indexErr = errors.New("identifier index: needs a container and a secret of at least 16 bytes")
			return
		}
		c.index = newIndexer(azureIndexStore{o.Container}, o.Prefix, o.Secret, o.Logger)
		c.index.rebuild = o.Rebuild
		c.index.stale = o.Stale
	}
}

// indexStore keeps index objects. The product keeps them in a Blob
// container (azureIndexStore); benchmarks keep them in memory.
type indexStore interface {
	// get returns count bytes of object name from off on (count 0: to the
	// end; a range past the end is cut), only if its ETag is still etag
	// (etag "": whatever version there is), with that version's ETag and
	// size. A missing object, or one whose ETag is no longer etag, fails
	// with an error wrapping errIndexGone.
	get(ctx context.Context, name, etag string, off, count int64) (data []byte, gotETag string, size int64, err error)
	// props returns the ETag and metadata of object name (errIndexGone if
	// there is none).
	props(ctx context.Context, name string) (etag string, meta map[string]string, err error)
	// list returns the ETags and metadata of the objects under prefix, by
	// name.
	list(ctx context.Context, prefix string) (map[string]indexObject, error)
	// put writes object name from r with metadata meta, only if its ETag
	// is still ifMatch (ifMatch "": only if there is none); otherwise it
	// fails with an error wrapping errIndexConflict.
	put(ctx context.Context, name string, r io.Reader, ifMatch string, meta map[string]string) error
	// del deletes object name if its ETag is still etag (a missing
	// object, or one replaced since, is no error).
	del(ctx context.Context, name, etag string) error
}

// indexObject is an index object as a listing shows it.
type indexObject struct {
	etag string
	meta map[string]string
}

var (
	errIndexGone     = errors.New("index object missing or replaced")
	errIndexConflict = errors.New("index object written by another build")
)

// azureIndexStore is an indexStore over a Blob container.
type azureIndexStore struct{ c *container.Client }

func (s azureIndexStore) get(ctx context.Context, name, etag string, off, count int64) ([]byte, string, int64, error) {
	opts := &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: off, Count: count}}
	if etag != "" {
		e := azcore.ETag(etag)
		opts.AccessConditions = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &e}}
	}
	resp, err := s.c.NewBlobClient(name).DownloadStream(ctx, opts)
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound, bloberror.ConditionNotMet, bloberror.InvalidRange) {
		return nil, "", 0, fmt.Errorf("%w (%s)", errIndexGone, storageCode(err))
	}
	if err != nil {
		return nil, "", 0, fmt.Errorf("read index object: %w", err)
	}
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: readRetries})
	defer body.Close()
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, "", 0, fmt.Errorf("read index object: %w", err)
	}
	size := int64(-1)
	if resp.ContentRange != nil {
		size, err = rangeSize(*resp.ContentRange, off)
	} else if off == 0 && resp.ContentLength != nil {
		size = *resp.ContentLength
	}
	if err != nil || size < 0 || resp.ETag == nil {
		return nil, "", 0, errors.New("read index object: no size or ETag in the response")
	}
	return data, string(*resp.ETag), size, nil
}

func (s azureIndexStore) props(ctx context.Context, name string) (string, map[string]string, error) {
	p, err := s.c.NewBlobClient(name).GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return "", nil, fmt.Errorf("%w (%s)", errIndexGone, storageCode(err))
	}
	if err != nil {
		return "", nil, fmt.Errorf("read index object properties: %w", err)
	}
	if p.ETag == nil {
		return "", nil, errors.New("read index object properties: no ETag")
	}
	return string(*p.ETag), plainMeta(p.Metadata), nil
}

func (s azureIndexStore) list(ctx context.Context, prefix string) (map[string]indexObject, error) {
	out := map[string]indexObject{}
	pager := s.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr(prefix), Include: container.ListBlobsInclude{Metadata: true}})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if bloberror.HasCode(err, bloberror.ContainerNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list index objects: %w", err)
		}
		for _, it := range page.Segment.BlobItems {
			if it.Name != nil && it.Properties != nil && it.Properties.ETag != nil {
				out[*it.Name] = indexObject{etag: quotedETag(string(*it.Properties.ETag)), meta: plainMeta(it.Metadata)}
			}
		}
	}
	return out, nil
}

func (s azureIndexStore) put(ctx context.Context, name string, r io.Reader, ifMatch string, meta map[string]string) error {
	cond := &blob.ModifiedAccessConditions{}
	if ifMatch != "" {
		e := azcore.ETag(ifMatch)
		cond.IfMatch = &e
	} else {
		cond.IfNoneMatch = to.Ptr(azcore.ETagAny)
	}
	m := make(map[string]*string, len(meta))
	for k, v := range meta {
		m[k] = to.Ptr(v)
	}
	_, err := s.c.NewBlockBlobClient(name).UploadStream(ctx, r, &blockblob.UploadStreamOptions{
		BlockSize:        4 << 20,
		Concurrency:      2,
		Metadata:         m,
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: cond},
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr("application/octet-stream")},
	})
	if bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobAlreadyExists, bloberror.InvalidBlockList) {
		return fmt.Errorf("%w (%s)", errIndexConflict, storageCode(err))
	}
	if err != nil {
		return fmt.Errorf("write index object: %w", err)
	}
	return nil
}

func (s azureIndexStore) del(ctx context.Context, name, etag string) error {
	e := azcore.ETag(etag)
	_, err := s.c.NewBlobClient(name).Delete(ctx, &blob.DeleteOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &e}},
	})
	if err == nil || bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound, bloberror.ConditionNotMet) {
		return nil
	}
	return fmt.Errorf("delete index object: %w", err)
}

// storageCode is the error code of a storage error, for messages (the
// error's own text is long).
func storageCode(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.ErrorCode != "" {
		return re.ErrorCode
	}
	return "storage error"
}

// plainMeta is blob metadata with lower-case keys (the service may change
// their case) and nil values dropped.
func plainMeta(m map[string]*string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if v != nil {
			out[strings.ToLower(k)] = *v
		}
	}
	return out
}
