package blobdataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/dsr-functions/dsr/shared/sources"
)

// blobStore lists and streams the blobs that discovery scans. The product
// reads Blob Storage (azureStore); tests and benchmarks put local data
// behind the same interface. Implementations must be safe for concurrent
// use: discovery opens several blobs at once.
type blobStore interface {
	// list returns the names of the blobs under prefix in container, in
	// any order.
	list(ctx context.Context, container, prefix string) ([]string, error)
	// open starts streaming one blob and returns its ETag. A blob or
	// container that does not exist fails with an error wrapping
	// errBlobNotFound.
	open(ctx context.Context, container, name string) (io.ReadCloser, string, error)
}

// blobReader reads blobs for export, each read conditional on the version
// that discovery saw. The product reads Blob Storage (azureStore); tests
// put data in memory behind the same interface. Implementations must be
// safe for concurrent use.
type blobReader interface {
	// read streams count bytes of one blob from byte off on (off 0 and
	// count 0: the whole blob), only if the blob's ETag is still etag, and
	// returns the blob's size with the bytes. A blob that changed, no
	// longer exists, or has no byte at off fails with an error wrapping
	// sources.ErrChanged. A range past the end of the blob is cut at the
	// end.
	read(ctx context.Context, container, name, etag string, off, count int64) (io.ReadCloser, int64, error)
}

// blobSizer is a blobStore that can tell blob sizes and ETags (fan-out
// plans shards by them): those of the blobs under prefix, or of the one
// blob named.
type blobSizer interface {
	sizes(ctx context.Context, container, prefix, blob string) (map[string]blobProps, error)
}

// sizedOpener is a blobStore whose open also tells the blob's size, as
// a download's headers do: a single-blob dataset then needs no HEAD before
// discovery decides whether to fan it out (scanOpened).
type sizedOpener interface {
	openSized(ctx context.Context, container, name string) (io.ReadCloser, blobProps, error)
}

type blobProps struct {
	size int64
	etag string
}

func (s azureStore) sizes(ctx context.Context, cont, prefix, name string) (map[string]blobProps, error) {
	if name != "" {
		etag, size, err := s.stat(ctx, cont, name)
		if err != nil {
			return nil, err
		}
		return map[string]blobProps{name: {size, etag}}, nil
	}
	out := map[string]blobProps{}
	pager := s.svc.NewContainerClient(cont).NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr(prefix)})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list blobs: %w", err)
		}
		for _, it := range page.Segment.BlobItems {
			if p := it.Properties; p != nil && p.ContentLength != nil && p.ETag != nil {
				// Listings give ETags unquoted, headers quoted: keep the
				// headers' form, which locations record.
				etag := string(*p.ETag)
				if !strings.HasPrefix(etag, `"`) && !strings.HasPrefix(etag, "W/") {
					etag = `"` + etag + `"`
				}
				out[*it.Name] = blobProps{*p.ContentLength, etag}
			}
		}
	}
	return out, nil
}

// errBlobNotFound reports a missing blob or container.
var errBlobNotFound = errors.New("blob not found")

// azureStore is the blobStore of a Blob Storage account.
type azureStore struct{ svc *service.Client }

func (s azureStore) list(ctx context.Context, cont, prefix string) ([]string, error) {
	var names []string
	pager := s.svc.NewContainerClient(cont).NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr(prefix)})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list blobs: %w", err)
		}
		for _, it := range page.Segment.BlobItems {
			names = append(names, *it.Name)
		}
	}
	return names, nil
}

// listETags is list with each blob's current ETag (the listing holds
// them), for the identifier index's freshness check.
func (s azureStore) listETags(ctx context.Context, cont, prefix string) (map[string]string, error) {
	out := map[string]string{}
	pager := s.svc.NewContainerClient(cont).NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr(prefix)})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list blobs: %w", err)
		}
		for _, it := range page.Segment.BlobItems {
			etag := ""
			if it.Properties != nil && it.Properties.ETag != nil {
				etag = string(*it.Properties.ETag)
			}
			out[*it.Name] = quotedETag(etag)
		}
	}
	return out, nil
}

// quotedETag is an ETag as response headers carry it, in quotes: the
// listing gives it without, and discovery compares and records the header
// form (a download's).
func quotedETag(etag string) string {
	if etag == "" || strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, "W/") {
		return etag
	}
	return `"` + etag + `"`
}

func (s azureStore) open(ctx context.Context, cont, name string) (io.ReadCloser, string, error) {
	body, p, err := s.openSized(ctx, cont, name)
	return body, p.etag, err
}

func (s azureStore) openSized(ctx context.Context, cont, name string) (io.ReadCloser, blobProps, error) {
	resp, err := s.svc.NewContainerClient(cont).NewBlobClient(name).DownloadStream(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return nil, blobProps{}, fmt.Errorf("%w (%w)", errBlobNotFound, err)
	}
	if err != nil {
		return nil, blobProps{}, err
	}
	if resp.ETag == nil || resp.ContentLength == nil {
		resp.Body.Close()
		return nil, blobProps{}, errors.New("download without an ETag or a size")
	}
	return resp.Body, blobProps{size: *resp.ContentLength, etag: string(*resp.ETag)}, nil
}

func (s azureStore) stat(ctx context.Context, cont, name string) (string, int64, error) {
	props, err := s.svc.NewContainerClient(cont).NewBlobClient(name).GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return "", 0, fmt.Errorf("%w (%w)", errBlobNotFound, err)
	}
	if err != nil {
		return "", 0, fmt.Errorf("read blob properties: %w", err)
	}
	if props.ETag == nil || props.ContentLength == nil {
		return "", 0, errors.New("blob properties without an ETag or a size")
	}
	return string(*props.ETag), *props.ContentLength, nil
}

// readRetries is how often a read of a blob for export resumes after a
// broken connection; each retry is conditional on the same ETag.
const readRetries = 3

func (s azureStore) read(ctx context.Context, cont, name, etag string, off, count int64) (io.ReadCloser, int64, error) {
	e := azcore.ETag(etag)
	resp, err := s.svc.NewContainerClient(cont).NewBlobClient(name).DownloadStream(ctx, &blob.DownloadStreamOptions{
		Range:            blob.HTTPRange{Offset: off, Count: count},
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &e}},
	})
	for _, code := range []bloberror.Code{bloberror.ConditionNotMet, bloberror.BlobNotFound, bloberror.ContainerNotFound, bloberror.InvalidRange} {
		if bloberror.HasCode(err, code) {
			// The storage error's text is long; its code says enough.
			return nil, 0, fmt.Errorf("%w (%s)", sources.ErrChanged, code)
		}
	}
	if err != nil {
		return nil, 0, err
	}
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: readRetries})
	size := int64(-1)
	if resp.ContentRange != nil {
		size, err = rangeSize(*resp.ContentRange, off)
	} else if off == 0 && resp.ContentLength != nil {
		size = *resp.ContentLength
	}
	if err == nil && size < 0 {
		err = errors.New("download without the blob's size")
	}
	if err != nil {
		body.Close()
		return nil, 0, err
	}
	return body, size, nil
}

// rangeSize returns the blob size that a Content-Range header ("bytes
// first-last/size") names, checking that the range starts at off.
func rangeSize(cr string, off int64) (int64, error) {
	bad := fmt.Errorf("unexpected Content-Range %q", cr)
	r, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, bad
	}
	rng, total, ok := strings.Cut(r, "/")
	if !ok {
		return 0, bad
	}
	first, _, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, bad
	}
	f, err1 := strconv.ParseInt(first, 10, 64)
	n, err2 := strconv.ParseInt(total, 10, 64)
	if err1 != nil || err2 != nil || f != off || n < 0 {
		return 0, bad
	}
	return n, nil
}
