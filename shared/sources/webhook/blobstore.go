package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// BlobStore is a ResultStore in a Blob Storage container. Under
// prefix + requestId + "/" it writes:
//
//	begun                              the Begin marker (empty)
//	pages/<h>/data/<dataset>.json      one blob per page and dataset: a JSON array of records
//	pages/<h>/page.json                the page's {"cursor","next","datasets"}, written last
//	complete                           the completion marker (empty)
//
// where <h> is the hex SHA-256 of the page's cursor. Page blobs are written
// create-only (If-None-Match: *), so a redelivered callback leaves the
// stored page as it was.
type BlobStore struct {
	c      *container.Client
	prefix string
}

var _ ResultStore = (*BlobStore)(nil)

// NewBlobStore returns a store in the container c under prefix (for
// example "webhook/crm/"; may be empty). The container must exist.
func NewBlobStore(c *container.Client, prefix string) *BlobStore {
	return &BlobStore{c: c, prefix: prefix}
}

func (s *BlobStore) dir(requestID string) string { return s.prefix + requestID + "/" }

func pageDir(cursor string) string {
	h := sha256.Sum256([]byte(cursor))
	return "pages/" + hex.EncodeToString(h[:]) + "/"
}

// pageMeta is the page.json blob.
type pageMeta struct {
	Cursor   string   `json:"cursor"`
	Next     string   `json:"next"`
	Datasets []string `json:"datasets"`
}

func (s *BlobStore) put(ctx context.Context, name string, data []byte, createOnly bool) error {
	opts := &blockblob.UploadBufferOptions{HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json")}}
	if createOnly {
		opts.AccessConditions = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}
	}
	_, err := s.c.NewBlockBlobClient(name).UploadBuffer(ctx, data, opts)
	if err != nil && createOnly && bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
		return nil
	}
	return err
}

func (s *BlobStore) exists(ctx context.Context, name string) (bool, error) {
	_, err := s.c.NewBlobClient(name).GetProperties(ctx, nil)
	if err == nil {
		return true, nil
	}
	var re *azcore.ResponseError
	if bloberror.HasCode(err, bloberror.BlobNotFound) || (errors.As(err, &re) && re.StatusCode == http.StatusNotFound) {
		return false, nil
	}
	return false, err
}

func (s *BlobStore) get(ctx context.Context, name string) (io.ReadCloser, error) {
	resp, err := s.c.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Begin implements ResultStore.
func (s *BlobStore) Begin(ctx context.Context, requestID string) error {
	if err := s.put(ctx, s.dir(requestID)+"begun", nil, false); err != nil {
		return fmt.Errorf("webhook store: begin: %w", err)
	}
	return nil
}

// Begun implements ResultStore.
func (s *BlobStore) Begun(ctx context.Context, requestID string) (bool, error) {
	ok, err := s.exists(ctx, s.dir(requestID)+"begun")
	if err != nil {
		return false, fmt.Errorf("webhook store: begun: %w", err)
	}
	return ok, nil
}

// PutPage implements ResultStore: the dataset blobs first, then page.json,
// all create-only.
func (s *BlobStore) PutPage(ctx context.Context, requestID string, p StoredPage) error {
	dir := s.dir(requestID) + pageDir(p.Cursor)
	meta := pageMeta{Cursor: p.Cursor, Next: p.Next, Datasets: []string{}}
	if ok, err := s.exists(ctx, dir+"page.json"); err != nil {
		return fmt.Errorf("webhook store: put page: %w", err)
	} else if ok {
		return nil
	}
	for ds, recs := range p.Records {
		var buf bytes.Buffer
		buf.WriteByte('[')
		for i, raw := range recs {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(raw)
		}
		buf.WriteByte(']')
		if err := s.put(ctx, dir+"data/"+ds+".json", buf.Bytes(), true); err != nil {
			return fmt.Errorf("webhook store: put page: dataset %s: %w", ds, err)
		}
		meta.Datasets = append(meta.Datasets, ds)
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("webhook store: put page: %w", err)
	}
	if err := s.put(ctx, dir+"page.json", b, true); err != nil {
		return fmt.Errorf("webhook store: put page: %w", err)
	}
	return nil
}

// Links implements ResultStore.
func (s *BlobStore) Links(ctx context.Context, requestID string) (map[string]string, error) {
	out := map[string]string{}
	prefix := s.dir(requestID) + "pages/"
	pager := s.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
	for pager.More() {
		resp, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("webhook store: list pages: %w", err)
		}
		for _, item := range resp.Segment.BlobItems {
			if item.Name == nil || !strings.HasSuffix(*item.Name, "/page.json") {
				continue
			}
			meta, err := s.meta(ctx, *item.Name)
			if err != nil {
				return nil, err
			}
			out[meta.Cursor] = meta.Next
		}
	}
	return out, nil
}

func (s *BlobStore) meta(ctx context.Context, name string) (*pageMeta, error) {
	body, err := s.get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("webhook store: read page: %w", err)
	}
	defer body.Close()
	var m pageMeta
	if err := json.NewDecoder(io.LimitReader(body, 1<<20)).Decode(&m); err != nil {
		return nil, fmt.Errorf("webhook store: read page: %w", err)
	}
	return &m, nil
}

// Records implements ResultStore, streaming the dataset's blob of the page.
func (s *BlobStore) Records(ctx context.Context, requestID, cursor, dataset string, fn func(json.RawMessage) error) error {
	dir := s.dir(requestID) + pageDir(cursor)
	meta, err := s.meta(ctx, dir+"page.json")
	if err != nil {
		if bloberror.HasCode(err, bloberror.BlobNotFound) {
			return nil
		}
		return err
	}
	found := false
	for _, ds := range meta.Datasets {
		found = found || ds == dataset
	}
	if !found {
		return nil
	}
	body, err := s.get(ctx, dir+"data/"+dataset+".json")
	if err != nil {
		return fmt.Errorf("webhook store: read dataset %s: %w", dataset, err)
	}
	defer body.Close()
	dec := json.NewDecoder(body)
	if err := expectDelim(dec, '['); err != nil {
		return fmt.Errorf("webhook store: read dataset %s: %w", dataset, err)
	}
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("webhook store: read dataset %s: %w", dataset, jsonErr(err, dec))
		}
		if err := fn(raw); err != nil {
			return err
		}
	}
	if err := expectDelim(dec, ']'); err != nil {
		return fmt.Errorf("webhook store: read dataset %s: %w", dataset, err)
	}
	return nil
}

// MarkComplete implements ResultStore.
func (s *BlobStore) MarkComplete(ctx context.Context, requestID string) error {
	if err := s.put(ctx, s.dir(requestID)+"complete", nil, true); err != nil {
		return fmt.Errorf("webhook store: mark complete: %w", err)
	}
	return nil
}

// Complete implements ResultStore.
func (s *BlobStore) Complete(ctx context.Context, requestID string) (bool, error) {
	ok, err := s.exists(ctx, s.dir(requestID)+"complete")
	if err != nil {
		return false, fmt.Errorf("webhook store: complete: %w", err)
	}
	return ok, nil
}

// Delete implements ResultStore: the Begin marker first (so callbacks are
// refused from then on), then every other blob under the request's prefix.
// A delete interrupted half-way is finished by calling Delete again.
func (s *BlobStore) Delete(ctx context.Context, requestID string) error {
	prefix := s.dir(requestID)
	if err := s.del(ctx, prefix+"begun"); err != nil {
		return err
	}
	pager := s.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
	for pager.More() {
		resp, err := pager.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("webhook store: delete: list: %w", err)
		}
		for _, item := range resp.Segment.BlobItems {
			if item.Name == nil {
				continue
			}
			if err := s.del(ctx, *item.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *BlobStore) del(ctx context.Context, name string) error {
	_, err := s.c.NewBlobClient(name).Delete(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return fmt.Errorf("webhook store: delete: %w", err)
	}
	return nil
}
