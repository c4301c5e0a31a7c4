package packaging

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeFiles lays out files (slash paths → contents) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readZip returns the entries of a zip by name, with their contents and modes.
func readZip(t *testing.T, b []byte) (names []string, content map[string]string, modes map[string]fs.FileMode) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	content, modes = map[string]string{}, map[string]fs.FileMode{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		names = append(names, f.Name)
		content[f.Name] = string(data)
		modes[f.Name] = f.Mode()
	}
	return names, content, modes
}

const fixtureHost = `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"dsr-handler","arguments":["serve"]}}}`

// fixture builds a small app: a repo dir, a handler and a sources file.
func fixture(t *testing.T) (repo, handler, sources string) {
	t.Helper()
	root := t.TempDir()
	repo = filepath.Join(root, "repo")
	writeFiles(t, repo, map[string]string{
		"host.json":                        fixtureHost,
		"functions/a/function.json":        `{"bindings":[{"type":"httpTrigger","name":"req"}]}`,
		"functions/a/handler.go":           "package a",
		"functions/b/function.json":        `{"bindings":[{"type":"serviceBusTrigger","name":"msg"}]}`,
		"functions/no-binding/README":      "not a function",
		"functions/app.go":                 "package functions",
		"functions/a/nested/function.json": `{"not":"a function folder"}`,
		"README.md":                        "ignored",
	})
	handler = filepath.Join(root, "handler.bin")
	if err := os.WriteFile(handler, []byte("\x7fELF fake handler"), 0o644); err != nil {
		t.Fatal(err)
	}
	sources = filepath.Join(root, "my-sources.json")
	if err := os.WriteFile(sources, []byte(`{"sources":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return repo, handler, sources
}

func TestWriteFixture(t *testing.T) {
	repo, handler, sources := fixture(t)
	var buf bytes.Buffer
	returned, err := Write(&buf, Inputs{Repo: os.DirFS(repo), HandlerPath: handler, SourcesPath: sources})
	if err != nil {
		t.Fatal(err)
	}
	names, content, modes := readZip(t, buf.Bytes())
	want := []string{"host.json", "dsr-handler", "a/function.json", "b/function.json", "sources.json"}
	if !slices.Equal(names, want) {
		t.Errorf("zip entries %v, want %v", names, want)
	}
	if !slices.Equal(returned, names) {
		t.Errorf("Write returned %v, the zip holds %v", returned, names)
	}
	if content["host.json"] != fixtureHost {
		t.Errorf("host.json = %q", content["host.json"])
	}
	if content["dsr-handler"] != "\x7fELF fake handler" {
		t.Errorf("handler = %q", content["dsr-handler"])
	}
	if m := modes["dsr-handler"]; m.Perm() != 0o755 || !m.IsRegular() {
		t.Errorf("handler mode %v, want -rwxr-xr-x", m)
	}
	for _, n := range []string{"host.json", "a/function.json", "b/function.json", "sources.json"} {
		if m := modes[n]; m.Perm()&0o111 != 0 || !m.IsRegular() {
			t.Errorf("%s mode %v, want a non-executable regular file", n, m)
		}
	}
	if !strings.Contains(content["a/function.json"], "httpTrigger") || !strings.Contains(content["b/function.json"], "serviceBusTrigger") {
		t.Errorf("function.json contents mixed up: %q / %q", content["a/function.json"], content["b/function.json"])
	}
	if content["sources.json"] != `{"sources":[]}` {
		t.Errorf("sources.json = %q", content["sources.json"])
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, repo string, in *Inputs)
	}{
		{"missing host.json", func(t *testing.T, repo string, in *Inputs) {
			if err := os.Remove(filepath.Join(repo, "host.json")); err != nil {
				t.Fatal(err)
			}
		}},
		{"host.json not JSON", func(t *testing.T, repo string, in *Inputs) {
			writeFiles(t, repo, map[string]string{"host.json": "{version: 2"})
		}},
		{"no defaultExecutablePath", func(t *testing.T, repo string, in *Inputs) {
			writeFiles(t, repo, map[string]string{"host.json": `{"version":"2.0","customHandler":{"description":{}}}`})
		}},
		{"defaultExecutablePath in a folder", func(t *testing.T, repo string, in *Inputs) {
			writeFiles(t, repo, map[string]string{"host.json": `{"customHandler":{"description":{"defaultExecutablePath":"bin/handler"}}}`})
		}},
		{"defaultExecutablePath escaping the root", func(t *testing.T, repo string, in *Inputs) {
			writeFiles(t, repo, map[string]string{"host.json": `{"customHandler":{"description":{"defaultExecutablePath":"../handler"}}}`})
		}},
		{"missing handler", func(t *testing.T, repo string, in *Inputs) {
			in.HandlerPath = filepath.Join(repo, "no-such-handler")
		}},
		{"missing sources config", func(t *testing.T, repo string, in *Inputs) {
			in.SourcesPath = filepath.Join(repo, "no-such-sources.json")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo, handler, sources := fixture(t)
			in := Inputs{Repo: os.DirFS(repo), HandlerPath: handler, SourcesPath: sources}
			tc.mutate(t, repo, &in)
			if names, err := Write(io.Discard, in); err == nil {
				t.Errorf("Write succeeded with entries %v", names)
			}
		})
	}
}

// TestWriteRealRepository packages the repository itself, as `make package`
// does, with a dummy handler.
func TestWriteRealRepository(t *testing.T) {
	repoRoot := filepath.Join("..", "..")
	repo := os.DirFS(repoRoot)
	dir := t.TempDir()
	handler := filepath.Join(dir, "handler")
	if err := os.WriteFile(handler, []byte("dummy"), 0o644); err != nil {
		t.Fatal(err)
	}
	sources := filepath.Join(dir, "sources.json")
	if err := os.WriteFile(sources, []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := Write(&buf, Inputs{Repo: repo, HandlerPath: handler, SourcesPath: sources}); err != nil {
		t.Fatal(err)
	}
	names, content, modes := readZip(t, buf.Bytes())

	hostJSON, err := fs.ReadFile(repo, "host.json")
	if err != nil {
		t.Fatal(err)
	}
	var host struct {
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
			} `json:"description"`
		} `json:"customHandler"`
	}
	if err := json.Unmarshal(hostJSON, &host); err != nil {
		t.Fatal(err)
	}
	if exe := host.CustomHandler.Description.DefaultExecutablePath; exe != "handler" {
		t.Errorf("host.json defaultExecutablePath = %q, want handler", exe)
	}
	if content["host.json"] != string(hostJSON) {
		t.Error("host.json in the package differs from the repository's")
	}
	if modes["handler"].Perm() != 0o755 || content["handler"] != "dummy" {
		t.Errorf("handler entry: mode %v content %q", modes["handler"], content["handler"])
	}

	entries, err := fs.ReadDir(repo, "functions")
	if err != nil {
		t.Fatal(err)
	}
	var wantFns []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		fj, err := fs.ReadFile(repo, "functions/"+e.Name()+"/function.json")
		if err != nil {
			continue
		}
		wantFns = append(wantFns, e.Name())
		entry := e.Name() + "/function.json"
		if got, ok := content[entry]; !ok {
			t.Errorf("function %s is missing from the package", e.Name())
		} else if got != string(fj) {
			t.Errorf("%s differs from the repository's", entry)
		}
		var doc struct {
			Bindings []json.RawMessage `json:"bindings"`
		}
		if err := json.Unmarshal(fj, &doc); err != nil || len(doc.Bindings) == 0 {
			t.Errorf("functions/%s/function.json has no bindings (err %v)", e.Name(), err)
		}
	}
	if len(wantFns) == 0 {
		t.Fatal("no function folders found in the repository")
	}
	// Nothing else: host.json, handler, one function.json per function, sources.json.
	if len(names) != len(wantFns)+3 {
		t.Errorf("package has %d entries %v, want %d", len(names), names, len(wantFns)+3)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "functions/") || strings.HasSuffix(n, ".go") || strings.HasPrefix(n, "/") || strings.Contains(n, "..") {
			t.Errorf("unexpected entry %q", n)
		}
	}
	if _, ok := content["sources.json"]; !ok {
		t.Error("sources.json missing")
	}
}
