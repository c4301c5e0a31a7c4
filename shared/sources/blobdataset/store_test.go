package blobdataset

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/dsr-functions/dsr/shared/sources"
)

// memStore is a blobStore and blobReader over blobs held in memory
// (container ignored), for tests that need to control reading: open may be
// intercepted, and reads are logged.
type memStore struct {
	blobs map[string]string
	// onOpen, if set, may replace a blob's reader (or fail the open).
	onOpen func(ctx context.Context, name string, r io.ReadCloser) (io.ReadCloser, error)

	mu sync.Mutex
	// reads logs the reads for export, in order.
	reads []memRead
}

// memRead is one read for export: count 0 reads the whole blob.
type memRead struct {
	name       string
	off, count int64
	// sent is how many bytes the read returned.
	sent int64
}

func (s *memStore) list(_ context.Context, _, prefix string) ([]string, error) {
	var names []string
	for n := range s.blobs {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	return names, nil
}

func (s *memStore) open(ctx context.Context, _, name string) (io.ReadCloser, string, error) {
	data, ok := s.blobs[name]
	if !ok {
		return nil, "", errBlobNotFound
	}
	var r io.ReadCloser = io.NopCloser(strings.NewReader(data))
	if s.onOpen != nil {
		var err error
		if r, err = s.onOpen(ctx, name, r); err != nil {
			return nil, "", err
		}
	}
	return r, memETag(data), nil
}

// memETag is the ETag of a memStore blob: it changes with the content.
func memETag(data string) string { return fmt.Sprintf("\"%d-%x\"", len(data), fnv(data)) }

// read serves a read for export like Blob Storage: conditional on the
// ETag, cut at the end of the blob, refused (416) from past the end.
func (s *memStore) read(_ context.Context, _, name, etag string, off, count int64) (io.ReadCloser, int64, error) {
	data, ok := s.blobs[name]
	if !ok || memETag(data) != etag {
		return nil, 0, fmt.Errorf("%w (test: not found or other ETag)", sources.ErrChanged)
	}
	size := int64(len(data))
	end := size
	if count > 0 {
		end = min(off+count, size)
	}
	if off < 0 || (off >= size && (off > 0 || count > 0)) {
		return nil, 0, fmt.Errorf("%w (test: invalid range)", sources.ErrChanged)
	}
	s.mu.Lock()
	s.reads = append(s.reads, memRead{name: name, off: off, count: count, sent: end - off})
	s.mu.Unlock()
	return io.NopCloser(strings.NewReader(data[off:end])), size, nil
}

// takeReads returns the reads logged since the last call.
func (s *memStore) takeReads() []memRead {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reads
	s.reads = nil
	return r
}

func fnv(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

// fileStore is a blobStore over the regular files of a directory; a blob
// named "a/b" is the file dir/a/b. Benchmarks read local files with it.
type fileStore struct{ dir string }

func (s fileStore) list(_ context.Context, _, prefix string) ([]string, error) {
	var names []string
	err := filepath.WalkDir(s.dir, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(s.dir, path)
		if err != nil {
			return err
		}
		if n := filepath.ToSlash(rel); strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
		return nil
	})
	return names, err
}

func (s fileStore) open(_ context.Context, _, name string) (io.ReadCloser, string, error) {
	f, err := os.Open(filepath.Join(s.dir, filepath.FromSlash(name)))
	if os.IsNotExist(err) {
		return nil, "", errBlobNotFound
	}
	if err != nil {
		return nil, "", err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, "", err
	}
	return f, fmt.Sprintf("\"%d-%d\"", fi.Size(), fi.ModTime().UnixNano()), nil
}

// shardStore shows one local file as n blobs "<prefix>part-NN", cut at line
// boundaries, so that the parallel scan of a many-blob dataset can be
// measured on the same bytes as a single-blob one.
type shardStore struct {
	path   string
	prefix string
	// cuts[i] is the offset where part i starts; cuts[n] is the size.
	cuts []int64
}

func newShardStore(path, prefix string, n int) (*shardStore, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	s := &shardStore{path: path, prefix: prefix, cuts: []int64{0}}
	buf := make([]byte, 64<<10)
	for i := 1; i < n; i++ {
		off := fi.Size() * int64(i) / int64(n)
		k, err := f.ReadAt(buf, off)
		if j := bytes.IndexByte(buf[:k], '\n'); j >= 0 {
			s.cuts = append(s.cuts, off+int64(j)+1)
		} else if err != nil && err != io.EOF {
			return nil, err
		}
	}
	s.cuts = append(s.cuts, fi.Size())
	return s, nil
}

func (s *shardStore) name(i int) string { return fmt.Sprintf("%spart-%02d", s.prefix, i) }

func (s *shardStore) list(_ context.Context, _, prefix string) ([]string, error) {
	var names []string
	for i := 0; i+1 < len(s.cuts); i++ {
		if n := s.name(i); strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	return names, nil
}

func (s *shardStore) open(_ context.Context, _, name string) (io.ReadCloser, string, error) {
	for i := 0; i+1 < len(s.cuts); i++ {
		if s.name(i) != name {
			continue
		}
		f, err := os.Open(s.path)
		if err != nil {
			return nil, "", err
		}
		sr := io.NewSectionReader(f, s.cuts[i], s.cuts[i+1]-s.cuts[i])
		return readCloser{sr, f}, fmt.Sprintf("\"part-%d\"", i), nil
	}
	return nil, "", errBlobNotFound
}

type readCloser struct {
	io.Reader
	io.Closer
}

// localConnector is a connector over a blobStore instead of Blob Storage.
// Read is available when the store is also a blobReader (memStore);
// Rewrite is not.
func localConnector(cfg *sources.Config, store blobStore, parallelism int) *Connector {
	r, _ := store.(blobReader)
	return &Connector{cfg: cfg, store: store, reader: r, parallelism: parallelism}
}

// openCounter counts the blob readers that are open, for tests that check
// every reader is closed.
type openCounter struct {
	mu   sync.Mutex
	open int
	max  int
}

func (c *openCounter) wrap(r io.ReadCloser) io.ReadCloser {
	c.mu.Lock()
	c.open++
	c.max = max(c.max, c.open)
	c.mu.Unlock()
	return &countedReader{ReadCloser: r, c: c}
}

func (c *openCounter) counts() (open, maxOpen int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open, c.max
}

type countedReader struct {
	io.ReadCloser
	c    *openCounter
	once sync.Once
}

func (r *countedReader) Close() error {
	r.once.Do(func() {
		r.c.mu.Lock()
		r.c.open--
		r.c.mu.Unlock()
	})
	return r.ReadCloser.Close()
}
