package sample

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

// Sink receives the files of a sample written in some format: a folder
// (FolderSink) or Blob Storage (BlobSink). fill streams one file's bytes.
type Sink interface {
	Write(ctx context.Context, container, name string, fill func(io.Writer) error) error
}

// FormatWriter writes the whole sample (every dataset of Files, same
// records, same demo subject) in one storage format to sink, streaming:
// its memory must not grow with size.
type FormatWriter func(ctx context.Context, sink Sink, size Size, seed uint64) error

// formats are the registered formats by name (RegisterFormat); "native"
// is the one sample/sources.json describes (NDJSON, CSV, JSON array).
var formats = map[string]FormatWriter{"native": writeNative}

// RegisterFormat adds a format `dsr sample -format` offers. Formats
// register from init functions of this package, one file each.
func RegisterFormat(name string, w FormatWriter) {
	if _, dup := formats[name]; dup {
		panic("sample: format registered twice: " + name)
	}
	formats[name] = w
}

// Formats lists the registered format names, sorted.
func Formats() []string {
	names := make([]string, 0, len(formats))
	for n := range formats {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// WriteFormat writes the sample in the named format ("" is "native").
func WriteFormat(ctx context.Context, format string, sink Sink, size Size, seed uint64) error {
	if format == "" {
		format = "native"
	}
	w, ok := formats[format]
	if !ok {
		return fmt.Errorf("sample: -format %q is not one of %s", format, strings.Join(Formats(), ", "))
	}
	if err := size.Validate(); err != nil {
		return err
	}
	return w(ctx, sink, size, seed)
}

// writeNative writes Files as Generate makes them.
func writeNative(ctx context.Context, sink Sink, size Size, seed uint64) error {
	for _, f := range Files() {
		if err := sink.Write(ctx, f.Container, f.Name, func(w io.Writer) error { return Generate(w, f, size, seed) }); err != nil {
			return err
		}
	}
	return nil
}

// FolderSink writes each file to Dir/<container>/<name>; Written lists
// the paths in order.
type FolderSink struct {
	Dir     string
	Written []string
}

// Write implements Sink.
func (s *FolderSink) Write(_ context.Context, container, name string, fill func(io.Writer) error) error {
	path := filepath.Join(s.Dir, container, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fill(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	s.Written = append(s.Written, path)
	return nil
}

// BlobSink uploads each file as a block blob, streaming, creating its
// container if needed. Stamp, when set, is recorded in each blob's
// metadata ("sample") so that callers can tell what generated it.
type BlobSink struct {
	Service *service.Client
	Stamp   string
	Written int
	made    []string
}

// Write implements Sink.
func (s *BlobSink) Write(ctx context.Context, container, name string, fill func(io.Writer) error) error {
	if !slices.Contains(s.made, container) {
		if _, err := s.Service.CreateContainer(ctx, container, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
			return fmt.Errorf("create container %s: %w", container, err)
		}
		s.made = append(s.made, container)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(fill(pw)) }()
	opts := &blockblob.UploadStreamOptions{BlockSize: 4 << 20, Concurrency: 2,
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr(contentType(name))}}
	if s.Stamp != "" {
		opts.Metadata = map[string]*string{"sample": to.Ptr(s.Stamp)}
	}
	_, err := s.Service.NewContainerClient(container).NewBlockBlobClient(name).UploadStream(ctx, pr, opts)
	pr.CloseWithError(err)
	if err != nil {
		return fmt.Errorf("upload %s/%s: %w", container, name, err)
	}
	s.Written++
	return nil
}
