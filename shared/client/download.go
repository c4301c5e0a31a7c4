package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
)

// Downloaded is a package saved and checked.
type Downloaded struct {
	Path   string `json:"file"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// ChecksumError says that the bytes downloaded are not the package the API
// described: another size or another SHA-256. Nothing was saved.
type ChecksumError struct {
	WantBytes, GotBytes   int64
	WantSHA256, GotSHA256 string
}

func (e *ChecksumError) Error() string {
	if e.GotBytes != e.WantBytes {
		return fmt.Sprintf("download does not match the export: %d bytes received, the package has %d; nothing saved", e.GotBytes, e.WantBytes)
	}
	return fmt.Sprintf("download does not match the export: sha256 %s, the package has %s; nothing saved", e.GotSHA256, e.WantSHA256)
}

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// DownloadExport mints a link to request id's package and saves the package
// to path, checked against the size and SHA-256 the API gives with it.
func (cl *Client) DownloadExport(ctx context.Context, id, path string) (*Downloaded, error) {
	link, err := cl.ExportLink(ctx, id)
	if err != nil {
		return nil, err
	}
	return cl.Download(ctx, link, path)
}

// Download fetches the package behind link into path. It streams to a
// temporary file beside path (mode 0600: the package is personal data)
// while hashing, and renames it to path only when the size and SHA-256
// equal the link's; on any failure, a mismatch included, the temporary
// file is removed and path is left as it was. The link is fetched without
// our credentials (it carries its own signature) and never appears in
// errors.
func (cl *Client) Download(ctx context.Context, link *Link, path string) (*Downloaded, error) {
	if !hexSHA256.MatchString(link.SHA256) || link.Bytes < 0 {
		return nil, errors.New("download: the API gave no usable sha256 and size for the package; refusing to save an unchecked download")
	}
	u, err := url.Parse(link.URL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && IsLoopback(u))) {
		return nil, errors.New("download: the export link is not an https URL (plain http only to this machine, as Azurite locally)")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	req.Header.Set("User-Agent", cl.ua)
	resp, err := cl.download.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download: %w", unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		hint := ""
		if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound {
			hint = " (the link expired, or the package was deleted; ask for a new link)"
		}
		return nil, fmt.Errorf("download: storage answered %d %s%s", resp.StatusCode, http.StatusText(resp.StatusCode), hint)
	}

	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*.part")
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	saved := false
	defer func() {
		if !saved {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	// One byte more than the package has is enough to know it is not the
	// package: a wrong link cannot fill the disk.
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, link.Bytes+1))
	if err != nil {
		return nil, fmt.Errorf("download: after %d bytes: %w", n, unwrapURLError(err))
	}
	got := hex.EncodeToString(h.Sum(nil))
	if n != link.Bytes || got != link.SHA256 {
		return nil, &ChecksumError{WantBytes: link.Bytes, GotBytes: n, WantSHA256: link.SHA256, GotSHA256: got}
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	saved = true
	return &Downloaded{Path: path, Bytes: n, SHA256: got}, nil
}
