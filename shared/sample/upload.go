package sample

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

// Upload generates every dataset straight into Blob Storage, streaming. A
// blob already generated with the same size and seed (recorded in its
// metadata) is left alone, so seeding again is cheap. It returns how many
// blobs it wrote.
func Upload(ctx context.Context, svc *service.Client, size Size, seed uint64) (int, error) {
	if _, err := svc.CreateContainer(ctx, Container, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return 0, fmt.Errorf("create container %s: %w", Container, err)
	}
	stamp := fmt.Sprintf("%s/%d/%d", size.Name, size.Contacts, seed)
	written := 0
	for _, f := range Files() {
		bc := svc.NewContainerClient(f.Container).NewBlockBlobClient(f.Name)
		if props, err := bc.GetProperties(ctx, nil); err == nil {
			if v := props.Metadata["Sample"]; v != nil && *v == stamp {
				continue
			}
			if v := props.Metadata["sample"]; v != nil && *v == stamp {
				continue
			}
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(Generate(pw, f, size, seed)) }()
		_, err := bc.UploadStream(ctx, pr, &blockblob.UploadStreamOptions{
			BlockSize:   4 << 20,
			Concurrency: 2,
			HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr(contentType(f.Name))},
			Metadata:    map[string]*string{"sample": to.Ptr(stamp), "seed": to.Ptr(strconv.FormatUint(seed, 10))},
		})
		pr.CloseWithError(err)
		if err != nil {
			return written, fmt.Errorf("upload %s/%s: %w", f.Container, f.Name, err)
		}
		written++
	}
	return written, nil
}

func contentType(name string) string {
	switch {
	case len(name) > 4 && name[len(name)-4:] == ".csv":
		return "text/csv"
	case len(name) > 7 && name[len(name)-7:] == ".ndjson":
		return "application/x-ndjson"
	default:
		return "application/json"
	}
}
