package blobdataset

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
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

func (s azureStore) open(ctx context.Context, cont, name string) (io.ReadCloser, string, error) {
	resp, err := s.svc.NewContainerClient(cont).NewBlobClient(name).DownloadStream(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return nil, "", fmt.Errorf("%w (%w)", errBlobNotFound, err)
	}
	if err != nil {
		return nil, "", err
	}
	if resp.ETag == nil {
		resp.Body.Close()
		return nil, "", errors.New("download without an ETag")
	}
	return resp.Body, string(*resp.ETag), nil
}
