// Package pgtest gives tests a real PostgreSQL server. With DSR_TEST_POSTGRES
// set (a DSN) tests use that server; otherwise Run initialises a throwaway
// cluster from the server binaries under /usr/lib/postgresql/*/bin in a
// temporary directory, starts it on a free loopback port and removes it
// after the tests. Tests never skip for want of PostgreSQL: they fail,
// saying how to get it (install the postgresql package; .ci/run does).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/testutil"
	"github.com/jackc/pgx/v5"
)

// EnvVar names the DSN of an already running PostgreSQL.
const EnvVar = "DSR_TEST_POSTGRES"

// EntraRole is a role that the test server authenticates by password (all
// others are trusted), for tests of token-as-password sign-in.
const EntraRole = "dsr_entra"

// Run starts PostgreSQL if needed, runs the tests and stops it. Use it from
// TestMain: os.Exit(pgtest.Run(m)).
func Run(m *testing.M) int { return testutil.RunWith(m, "pgtest", EnvVar, Start) }

// binDir finds the newest PostgreSQL server binaries.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
				return d, nil
			}
		}
	}
	return "", fmt.Errorf("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: install postgresql (apt-get install postgresql; .ci/run does) or set %s to a DSN", EnvVar)
}

// Start initialises and starts a throwaway cluster and returns a stop
// function and its DSN.
func Start() (func(), string, error) {
	bin, err := binDir()
	if err != nil {
		return nil, "", err
	}
	// initdb refuses to run as root: run the server as the postgres OS user.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, "", fmt.Errorf("running as root needs the postgres OS user (created by the postgresql package): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, "", err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, "", err
		}
	}
	data := filepath.Join(dir, "data")
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	defer logFile.Close()
	if cred != nil {
		_ = logFile.Chown(int(cred.Uid), int(cred.Gid))
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--locale=C")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("initdb: %v: %s", err, out)
	}
	// Role EntraRole signs in with a password over TCP (scram-sha-256), the
	// way Azure Database for PostgreSQL checks an Entra token; every other
	// role is trusted. pg_hba.conf's first matching line wins.
	hba := filepath.Join(data, "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	line := "host all " + EntraRole + " 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(hba, append([]byte(line), old...), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	if cred != nil {
		_ = os.Chown(hba, int(cred.Uid), int(cred.Gid))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	cmd.Dir = dir
	// The server's output goes to a file: a child holding the test's stderr
	// open would keep `go test` waiting if the test binary died.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The server dies with the test binary, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		os.RemoveAll(dir)
	}
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := pgx.Connect(ctx, dsn)
		if err == nil {
			err = c.Ping(ctx)
			c.Close(ctx)
		}
		cancel()
		if err == nil {
			break
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(logPath)
			os.RemoveAll(dir)
			return nil, "", fmt.Errorf("postgres exited before accepting connections: %v: %s", werr, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			stop()
			return nil, "", fmt.Errorf("postgres did not accept connections on port %d within 60s: %v: %s", port, err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return stop, dsn, nil
}

// DSN is the DSN of the test server's maintenance database.
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvVar)
	if dsn == "" {
		t.Fatalf("%s is not set: call pgtest.Run from TestMain", EnvVar)
	}
	return dsn
}

// Database creates a uniquely named database for one test and returns its
// DSN; it is dropped when the test ends.
func Database(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	admin := DSN(t)
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer c.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "test_" + hex.EncodeToString(b[:])
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	return withDatabase(admin, cfg.Database, name)
}

// withDatabase returns dsn pointing at database name instead of old.
func withDatabase(dsn, old, name string) string {
	if strings.Contains(dsn, "://") {
		// URL form: replace the path.
		if i := strings.Index(dsn, "://"); i >= 0 {
			rest := dsn[i+3:]
			q := ""
			if j := strings.IndexByte(rest, '?'); j >= 0 {
				rest, q = rest[:j], rest[j:]
			}
			if j := strings.IndexByte(rest, '/'); j >= 0 {
				rest = rest[:j]
			}
			return dsn[:i+3] + rest + "/" + name + q
		}
	}
	_ = old
	return dsn + " dbname=" + name
}
