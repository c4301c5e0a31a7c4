package functions_test

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sample"
)

// BenchmarkAccessFixedCost measures what one access request costs that
// does not depend on the data: over the tiny sample (a few KB), one request
// at a time, through the app as `dsr local` runs it. It reports the median
// of each phase, from the client's clock and the request's history:
// submit-ms, the POST from sending to its answer (validation, the request
// document, the subject registry, the audit trail, the first message);
// to-discovery-ms, from the request's creation to its discovery starting
// (the queue hop); discovery-ms, discovery with any batching window, until
// the request enters export; export-ms, from entering export to done (the
// hop, the package, the state); observed-ms, from done to the client
// seeing it (polling every 2 ms); total-ms, from sending the POST to seeing
// the request completed; done-ms, from sending the POST to the completion
// the request's history records (stamped just before the final write, so
// without that write's round trip, and without the client's polling).
// Each poll is a read of Azurite, which serves one operation at a time:
// polls every 2 ms delay the app's own operations on loopback.
// DSR_BENCH_POLL (a Go duration) polls less often, to show the fixed cost
// without that. DSR_BENCH_TRACE (a file name) gets the last request's
// storage operations in time order (storageTrace): what waits for what.
// Run it with:
//
//	go test ./functions/ -run '^$' -bench BenchmarkAccessFixedCost -benchtime 20x -timeout 10m
//
// Azurite on loopback answers in well under a millisecond of network time;
// DSR_BENCH_STORAGE_RTT (a Go duration, e.g. 10ms) puts that round trip
// between the app and Azurite, as between a Function and Blob Storage, to
// show what waits on round trips and what overlaps them.
func BenchmarkAccessFixedCost(b *testing.B) {
	size, err := sample.ParseSize("tiny")
	if err != nil {
		b.Fatal(err)
	}
	var rtt time.Duration
	if v := os.Getenv("DSR_BENCH_STORAGE_RTT"); v != "" {
		if rtt, err = time.ParseDuration(v); err != nil || rtt < 0 {
			b.Fatalf("DSR_BENCH_STORAGE_RTT=%q: want a duration such as 10ms", v)
		}
	}
	poll := 2 * time.Millisecond
	if v := os.Getenv("DSR_BENCH_POLL"); v != "" {
		if poll, err = time.ParseDuration(v); err != nil || poll <= 0 {
			b.Fatalf("DSR_BENCH_POLL=%q: want a duration such as 25ms", v)
		}
	}
	e := newE2EBench(b, size, e2eOptions{storageRTT: rtt, traceStorage: os.Getenv("DSR_BENCH_TRACE") != ""})
	var submit, toDiscovery, discovery, export, observed, total, untilDone []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		doc := e.submit(`{"type":"access","subject":` + e2eBenchSubject + `}`)
		answered := time.Now()
		for !doc.State.Terminal() {
			if time.Since(start) > time.Minute {
				b.Fatalf("request %s still %s/%s after a minute\n%s", doc.ID, doc.Stage, doc.State, e.logs.String())
			}
			time.Sleep(poll)
			doc, _ = e.get(doc.ID)
		}
		seen := time.Now()
		if doc.State != dsr.StateCompleted {
			b.Fatalf("request %s ended %s: %+v", doc.ID, doc.State, doc.Error)
		}
		at := func(stage dsr.Stage) time.Time {
			for _, h := range doc.History {
				if h.Stage == stage {
					return h.At
				}
			}
			b.Fatalf("request %s never entered %s", doc.ID, stage)
			return time.Time{}
		}
		created, disc, exp, done := doc.History[0].At, at(dsr.StageDiscovery), at(dsr.StageExport), at(dsr.StageDone)
		submit = append(submit, answered.Sub(start))
		toDiscovery = append(toDiscovery, disc.Sub(created))
		discovery = append(discovery, exp.Sub(disc))
		export = append(export, done.Sub(exp))
		observed = append(observed, seen.Sub(done))
		total = append(total, seen.Sub(start))
		untilDone = append(untilDone, done.Sub(start))
		if e.trace != nil && i == b.N-1 {
			// The last request's storage operations, for where the time goes.
			var tl strings.Builder
			e.trace.print(&tl, start, seen, map[string]time.Time{"POST answered": answered, "created": created,
				"discovery": disc, "export": exp, "done": done, "seen by the client": seen})
			if err := os.WriteFile(os.Getenv("DSR_BENCH_TRACE"), []byte(tl.String()), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	median := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	b.ReportMetric(median(submit), "submit-ms")
	b.ReportMetric(median(toDiscovery), "to-discovery-ms")
	b.ReportMetric(median(discovery), "discovery-ms")
	b.ReportMetric(median(export), "export-ms")
	b.ReportMetric(median(observed), "observed-ms")
	b.ReportMetric(median(total), "total-ms")
	b.ReportMetric(median(untilDone), "done-ms")
}
