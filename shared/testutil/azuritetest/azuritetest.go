// Package azuritetest gives tests a real Blob Storage: the Azurite emulator.
// With DSR_TEST_STORAGE set (a connection string, as `make test` does) tests
// use that instance; otherwise Run starts Azurite from the repository's
// node_modules (`npm ci`) on a free port, in memory, and stops it afterwards.
// Tests never skip for want of Azurite: they fail, saying how to get it.
package azuritetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/blobs"
	"github.com/dsr-functions/dsr/shared/testutil"
)

// EnvVar names the connection string of an already running Azurite.
const EnvVar = "DSR_TEST_STORAGE"

// Run starts Azurite if needed, runs the tests and stops it. Use it from
// TestMain: os.Exit(azuritetest.Run(m)).
func Run(m *testing.M) int { return testutil.RunWith(m, "azuritetest", EnvVar, Start) }

// Start launches Azurite's Blob service on a free loopback port and returns
// a stop function and its connection string.
func Start() (func(), string, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, "", err
	}
	bin := filepath.Join(root, "node_modules", ".bin", "azurite-blob")
	if _, err := os.Stat(bin); err != nil {
		return nil, "", fmt.Errorf("%s not found: run `npm ci` in the repository (or `make test`, which does)", bin)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir, err := os.MkdirTemp("", "azurite-")
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port),
		"--skipApiVersionCheck", "--disableTelemetry", "--silent", "--loose")
	// AZURITE_IN_MEMORY keeps Azurite's data in memory instead of files
	// under dir (to measure what its disk persistence costs).
	if os.Getenv("AZURITE_IN_MEMORY") != "" {
		cmd.Args = append(cmd.Args, "--inMemoryPersistence")
	} else {
		cmd.Args = append(cmd.Args, "--location", dir)
	}
	// AZURITE_DEBUG_LOG names a file for Azurite's request log: which
	// storage operations a test or benchmark makes, and how many.
	if d := os.Getenv("AZURITE_DEBUG_LOG"); d != "" {
		cmd.Args = append(cmd.Args, "--debug", d)
	}
	// Azurite's output goes to a file: a child holding the test's stderr
	// open would keep `go test` waiting if the test binary died.
	logFile, err := os.Create(filepath.Join(dir, "azurite.log"))
	if err != nil {
		return nil, "", err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Azurite dies with the test binary, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start azurite: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
		os.RemoveAll(dir)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			os.RemoveAll(dir)
			return nil, "", fmt.Errorf("azurite exited before listening: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, "", fmt.Errorf("azurite did not listen on %s within 30s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cs := fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=%s;BlobEndpoint=http://%s/devstoreaccount1;", blobs.DevelopmentAccountKey, addr)
	return stop, cs, nil
}

// ConnectionString is the Azurite connection string for this test run.
func ConnectionString(t testing.TB) string {
	t.Helper()
	cs := os.Getenv(EnvVar)
	if cs == "" {
		t.Fatalf("%s is not set: call azuritetest.Run from TestMain", EnvVar)
	}
	return cs
}

// Account opens the test storage account.
func Account(t testing.TB) *blobs.Account {
	t.Helper()
	a, err := blobs.OpenConnectionString(ConnectionString(t))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Container creates a uniquely named container for one test and returns
// its name; it is deleted when the test ends.
func Container(t testing.TB, a *blobs.Account, prefix string) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.ToLower(prefix) + "-" + hex.EncodeToString(b[:])
	if err := a.EnsureContainers(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = a.Service.DeleteContainer(context.Background(), name, nil) })
	return name
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above the working directory")
		}
		dir = parent
	}
}
