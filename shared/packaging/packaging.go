// Package packaging assembles the deployable Functions app as a zip: host.json
// at the root, the handler executable beside it, one folder per function
// holding its function.json, and the sources config — the layout the Azure
// Functions host expects of a custom handler app.
package packaging

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
)

// Inputs are the files that go into the package.
type Inputs struct {
	// Repo is the repository root (host.json, functions/).
	Repo fs.FS
	// HandlerPath is the linux/amd64 handler binary built from cmd/dsr.
	HandlerPath string
	// SourcesPath is the sources config shipped as sources.json.
	SourcesPath string
}

// Write streams the package zip to w and returns the entry names.
func Write(w io.Writer, in Inputs) ([]string, error) {
	zw := zip.NewWriter(w)
	var names []string
	add := func(name string, mode fs.FileMode, r io.Reader) error {
		h := &zip.FileHeader{Name: name, Method: zip.Deflate}
		h.SetMode(mode)
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return fmt.Errorf("package %s: %w", name, err)
		}
		if _, err := io.Copy(fw, r); err != nil {
			return fmt.Errorf("package %s: %w", name, err)
		}
		names = append(names, name)
		return nil
	}
	hostJSON, err := fs.ReadFile(in.Repo, "host.json")
	if err != nil {
		return nil, fmt.Errorf("package: %w", err)
	}
	var host struct {
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
			} `json:"description"`
		} `json:"customHandler"`
	}
	if err := json.Unmarshal(hostJSON, &host); err != nil {
		return nil, fmt.Errorf("package: host.json: %w", err)
	}
	exe := host.CustomHandler.Description.DefaultExecutablePath
	if exe == "" || path.Base(exe) != exe {
		return nil, fmt.Errorf("package: host.json customHandler.description.defaultExecutablePath must name a file at the app root")
	}
	if err := add("host.json", 0o644, bytes.NewReader(hostJSON)); err != nil {
		return nil, err
	}
	handler, err := os.Open(in.HandlerPath)
	if err != nil {
		return nil, fmt.Errorf("package: handler: %w", err)
	}
	defer handler.Close()
	if err := add(exe, 0o755, handler); err != nil {
		return nil, err
	}
	fns, err := fs.Glob(in.Repo, "functions/*/function.json")
	if err != nil {
		return nil, err
	}
	sort.Strings(fns)
	for _, f := range fns {
		b, err := fs.ReadFile(in.Repo, f)
		if err != nil {
			return nil, err
		}
		name := path.Base(path.Dir(f))
		if err := add(name+"/function.json", 0o644, bytes.NewReader(b)); err != nil {
			return nil, err
		}
	}
	src, err := os.Open(in.SourcesPath)
	if err != nil {
		return nil, fmt.Errorf("package: sources config: %w", err)
	}
	defer src.Close()
	if err := add("sources.json", 0o644, src); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("package: %w", err)
	}
	return names, nil
}
