// Package latencyproxy is a TCP proxy for benchmarks that puts a network's
// latency between a client and a local server: every byte is delivered a
// fixed time after it was sent, in each direction, so a request and its
// answer cost one round trip of twice that, as between an Azure Function
// and Blob Storage, while bandwidth stays the local one. Azurite answers
// in a fraction of a millisecond on loopback; with the proxy in front of it
// a benchmark shows what waits on round trips and what overlaps them.
package latencyproxy

import (
	"net"
	"sync"
	"testing"
	"time"
)

// Start listens on a loopback port, forwards every connection to target
// with oneWay latency in each direction, and returns the listening
// address. The proxy stops when the test ends.
func Start(t testing.TB, target string, oneWay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			mu.Lock()
			open = append(open, client, server)
			mu.Unlock()
			wg.Go(func() { pipe(server, client, oneWay) })
			wg.Go(func() { pipe(client, server, oneWay) })
		}
	})
	return ln.Addr().String()
}

// chunk is bytes read from one side and when they may reach the other.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, each read delivered oneWay after it was read.
// Reads go on while earlier ones wait, so the delay adds latency, not a
// bandwidth limit. When src ends, dst's writing side is closed after the
// last delivery, so the other direction can still finish.
func pipe(dst, src net.Conn, oneWay time.Duration) {
	queue := make(chan chunk, 1024)
	go func() {
		defer close(queue)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				queue <- chunk{buf[:n], time.Now().Add(oneWay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range queue {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.data); err != nil {
			src.Close()
			for range queue { // let the reader end
			}
			return
		}
	}
	_ = closeWriter(dst)
}

// closeWriter closes the writing side of c if it can, else all of it.
func closeWriter(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}
