// Package testutil holds what the real-service test helpers (azuritetest,
// pgtest) share.
package testutil

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// RunWith runs a test binary against a service: the one named by envVar if
// it is set, otherwise one that start launches (its address is exported in
// envVar for the tests) and stops after the tests. Use it from TestMain.
func RunWith(m *testing.M, name, envVar string, start func() (stop func(), address string, err error)) int {
	if os.Getenv(envVar) != "" {
		return m.Run()
	}
	stop, addr, err := start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	os.Setenv(envVar, addr)
	code := m.Run()
	stop()
	return code
}

// WaitFor polls cond every millisecond until it holds, and fails the test
// (naming what it waited for) if it does not within the given time: for
// tests that wait on goroutines, a queue or a host they cannot join.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
	}
}
