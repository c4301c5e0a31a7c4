package blobdataset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/dsr-functions/dsr/shared/sources"
)

// dirIndexStore is an indexStore over the files of a directory (each
// object a file, its ETag and metadata in a sidecar file), for benchmarks
// that keep the index out of the heap they measure. Writes are
// conditional as in Blob Storage, under one lock.
type dirIndexStore struct {
	dir string
	mu  sync.Mutex
}

type dirIndexMeta struct {
	ETag string
	Meta map[string]string
}

func (s *dirIndexStore) path(name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(s.dir, hex.EncodeToString(sum[:12]))
}

func (s *dirIndexStore) meta(name string) (dirIndexMeta, error) {
	var m dirIndexMeta
	b, err := os.ReadFile(s.path(name) + ".meta")
	if os.IsNotExist(err) {
		return m, errIndexGone
	}
	if err != nil {
		return m, err
	}
	err = json.Unmarshal(b, &m)
	return m, err
}

func (s *dirIndexStore) get(_ context.Context, name, etag string, off, count int64) ([]byte, string, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.meta(name)
	if err != nil {
		return nil, "", 0, err
	}
	if etag != "" && m.ETag != etag {
		return nil, "", 0, errIndexGone
	}
	f, err := os.Open(s.path(name))
	if err != nil {
		return nil, "", 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, "", 0, err
	}
	size := fi.Size()
	end := size
	if count > 0 {
		end = min(off+count, size)
	}
	if off > size {
		return nil, "", 0, errIndexGone
	}
	buf := make([]byte, end-off)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return nil, "", 0, err
	}
	return buf, m.ETag, size, nil
}

func (s *dirIndexStore) props(_ context.Context, name string) (string, map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.meta(name)
	return m.ETag, m.Meta, err
}

func (s *dirIndexStore) list(_ context.Context, prefix string) (map[string]indexObject, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]indexObject{}
	b, err := os.ReadFile(filepath.Join(s.dir, "names"))
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	for name := range strings.SplitSeq(string(b), "\n") {
		if name == "" || !strings.HasPrefix(name, prefix) {
			continue
		}
		if m, err := s.meta(name); err == nil {
			out[name] = indexObject{etag: m.ETag, meta: m.Meta}
		}
	}
	return out, nil
}

func (s *dirIndexStore) put(_ context.Context, name string, r io.Reader, ifMatch string, meta map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.meta(name)
	if err != nil && !errors.Is(err, errIndexGone) {
		return err
	}
	if m.ETag != ifMatch {
		return errIndexConflict
	}
	f, err := os.Create(s.path(name))
	if err != nil {
		return err
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s %d %s", name, n, m.ETag))
	b, _ := json.Marshal(dirIndexMeta{ETag: `"` + hex.EncodeToString(sum[:8]) + `"`, Meta: meta})
	if err := os.WriteFile(s.path(name)+".meta", b, 0o644); err != nil {
		return err
	}
	if m.ETag == "" {
		nf, err := os.OpenFile(filepath.Join(s.dir, "names"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer nf.Close()
		_, err = nf.WriteString(name + "\n")
		return err
	}
	return nil
}

// versionedFileStore is fileStore that also serves ranged reads pinned to
// an ETag and tells blobs' ETags, as Blob Storage does, so that the index
// can be built and used over local files.
type versionedFileStore struct{ fileStore }

func (s versionedFileStore) stat(_ context.Context, _, name string) (string, int64, error) {
	fi, err := os.Stat(filepath.Join(s.dir, filepath.FromSlash(name)))
	if os.IsNotExist(err) {
		return "", 0, errBlobNotFound
	}
	if err != nil {
		return "", 0, err
	}
	return fmt.Sprintf("\"%d-%d\"", fi.Size(), fi.ModTime().UnixNano()), fi.Size(), nil
}

func (s versionedFileStore) listETags(ctx context.Context, cont, prefix string) (map[string]string, error) {
	names, err := s.list(ctx, cont, prefix)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range names {
		etag, _, err := s.stat(ctx, cont, n)
		if err != nil {
			return nil, err
		}
		out[n] = etag
	}
	return out, nil
}

func (s versionedFileStore) read(ctx context.Context, cont, name, etag string, off, count int64) (io.ReadCloser, int64, error) {
	cur, size, err := s.stat(ctx, cont, name)
	if err != nil || cur != etag {
		return nil, 0, fmt.Errorf("%w (test: not found or other ETag)", sources.ErrChanged)
	}
	f, err := os.Open(filepath.Join(s.dir, filepath.FromSlash(name)))
	if err != nil {
		return nil, 0, err
	}
	end := size
	if count > 0 {
		end = min(off+count, size)
	}
	return readCloser{io.NewSectionReader(f, off, end-off), f}, size, nil
}

func (s *dirIndexStore) del(_ context.Context, name, etag string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.meta(name)
	if err != nil || m.ETag != etag {
		return nil
	}
	os.Remove(s.path(name) + ".meta")
	return os.Remove(s.path(name))
}
