package latencyproxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A request through the proxy takes at least one round trip (twice the
// one-way latency) more than without it, and bodies arrive whole in both
// directions.
func TestRoundTripCostsTwiceTheLatency(t *testing.T) {
	body := strings.Repeat("x", 300<<10) // more than one read
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, _ := io.ReadAll(r.Body)
		w.Write(append(in, body...))
	}))
	defer srv.Close()
	const oneWay = 20 * time.Millisecond
	addr := Start(t, strings.TrimPrefix(srv.URL, "http://"), oneWay)
	client := &http.Client{}
	for i := range 3 { // a new connection, then kept-alive ones
		start := time.Now()
		resp, err := client.Post("http://"+addr+"/", "text/plain", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if err != nil || string(got) != "hello"+body {
			t.Fatalf("request %d: %d bytes, %v", i, len(got), err)
		}
		if took < 2*oneWay {
			t.Errorf("request %d took %v, less than one round trip (%v)", i, took, 2*oneWay)
		}
	}
}
