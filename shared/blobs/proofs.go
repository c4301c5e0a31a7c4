package blobs

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// ErrProofNotFound is a proof that is not (or no longer) stored.
var ErrProofNotFound = fmt.Errorf("proof not found")

// Proofs keeps agents' proofs of authority in one private container, one
// blob per request, named after it ("<id>/proof"): the name says nothing
// about the person, and no link to it is ever signed (staff read it
// through the app, which audits every view).
type Proofs struct {
	Account   *Account
	Container string
}

func proofBlob(id string) string { return id + "/proof" }

func (p *Proofs) client() *container.Client { return p.Account.Service.NewContainerClient(p.Container) }

// Put stores a request's proof with its (sniffed) content type.
func (p *Proofs) Put(ctx context.Context, id, contentType string, data []byte) error {
	_, err := p.client().NewBlockBlobClient(proofBlob(id)).UploadBuffer(ctx, data, &blockblob.UploadBufferOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr(contentType)},
	})
	if err != nil {
		return fmt.Errorf("upload proof: %w", err)
	}
	return nil
}

// Open reads a request's proof; ErrProofNotFound when there is none.
func (p *Proofs) Open(ctx context.Context, id string) (io.ReadCloser, error) {
	resp, err := p.client().NewBlobClient(proofBlob(id)).DownloadStream(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return nil, ErrProofNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read proof: %w", err)
	}
	return resp.Body, nil
}

// Delete removes a request's proof; one already gone is no error.
func (p *Proofs) Delete(ctx context.Context, id string) error {
	_, err := p.client().NewBlobClient(proofBlob(id)).Delete(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return fmt.Errorf("delete proof: %w", err)
	}
	return nil
}

// List calls fn with the request id and creation time of every stored
// proof. Blobs that are not proofs are skipped.
func (p *Proofs) List(ctx context.Context, fn func(id string, created time.Time) error) error {
	pager := p.client().NewListBlobsFlatPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if bloberror.HasCode(err, bloberror.ContainerNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list proofs: %w", err)
		}
		for _, it := range page.Segment.BlobItems {
			id, ok := strings.CutSuffix(*it.Name, "/proof")
			if !ok || strings.Contains(id, "/") {
				continue
			}
			var created time.Time
			if it.Properties != nil && it.Properties.CreationTime != nil {
				created = *it.Properties.CreationTime
			} else if it.Properties != nil && it.Properties.LastModified != nil {
				created = *it.Properties.LastModified
			}
			if err := fn(id, created); err != nil {
				return err
			}
		}
	}
	return nil
}
