package functions_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// storageTrace is an HTTP proxy between the app and Azurite that records
// every storage operation (method, blob, operation, condition) with when
// it started and ended: BenchmarkAccessFixedCost writes one request's
// timeline from it (DSR_BENCH_TRACE=<file>), which shows what runs in sequence
// and what overlaps. Test-only: blob names hold request ids, not people.
type storageTrace struct {
	mu  sync.Mutex
	ops []traceOp
}

type traceOp struct {
	start, end time.Time
	what       string
}

// startStorageTrace serves the proxy in front of target (host:port) and
// returns its address.
func startStorageTrace(t testing.TB, target string) (*storageTrace, string) {
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatal(err)
	}
	st := &storageTrace{}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rp.ServeHTTP(w, r)
		// Path: /account/container/blob; the account is left out.
		p := r.URL.Path
		if i := strings.Index(p[1:], "/"); i >= 0 {
			p = p[i+1:]
		}
		q := r.URL.Query()
		what := strings.TrimSpace(fmt.Sprintf("%s %s %s%s", r.Method, p, q.Get("comp"), q.Get("restype")))
		if c := r.Header.Get("If-Match"); c != "" {
			what += " if-match"
		}
		if c := r.Header.Get("If-None-Match"); c != "" {
			what += " if-none-match"
		}
		if rg := r.Header.Get("x-ms-range"); rg != "" {
			what += " " + rg
		}
		st.mu.Lock()
		st.ops = append(st.ops, traceOp{start, time.Now(), what})
		st.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return st, strings.TrimPrefix(srv.URL, "http://")
}

// print writes the operations that started between from and to, with the
// marks (the request's history stamps, the client's events), in time
// order, in milliseconds from from.
func (st *storageTrace) print(w io.Writer, from, to time.Time, marks map[string]time.Time) {
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	ms := func(t time.Time) float64 { return float64(t.Sub(from).Microseconds()) / 1000 }
	st.mu.Lock()
	for _, op := range st.ops {
		if !op.start.Before(from) && !op.start.After(to) {
			lines = append(lines, line{op.start, fmt.Sprintf("%6.1f–%6.1f ms  %s", ms(op.start), ms(op.end), op.what)})
		}
	}
	st.mu.Unlock()
	for name, at := range marks {
		lines = append(lines, line{at, fmt.Sprintf("%6.1f          == %s", ms(at), name)})
	}
	slices.SortStableFunc(lines, func(a, b line) int { return a.at.Compare(b.at) })
	for _, l := range lines {
		fmt.Fprintln(w, l.text)
	}
}
