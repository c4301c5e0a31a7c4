package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dsr-functions/dsr/shared/audit"
	"github.com/dsr-functions/dsr/shared/dsr"
)

// failingPuts fails the first n package writes, then writes as usual.
type failingPuts struct {
	*memPackages
	n atomic.Int32
}

func (f *failingPuts) Put(ctx context.Context, name, contentType string, r io.Reader, md map[string]string) error {
	if f.n.Add(-1) >= 0 {
		io.Copy(io.Discard, r)
		return errors.New("storage unavailable")
	}
	return f.memPackages.Put(ctx, name, contentType, r, md)
}

// A discovery that found few records runs the export itself: no export
// message, one package, the request completed with the export stage in
// its history and each history entry once in the trail, and a redelivered
// discover message changes nothing. Over the limit, or when the chained
// export fails, the export goes through its queue as before and the
// request completes all the same.
func TestChainedExport(t *testing.T) {
	trailOnce := func(t *testing.T, w *world, id string) {
		t.Helper()
		st := w.get(id)
		n := map[string]int{}
		for _, e := range w.audit.entries {
			if e.RequestID == id {
				n[e.ID]++
			}
		}
		for i := range st.History {
			if got := n[fmt.Sprintf("%s:%d", id, i+1)]; got != 1 {
				t.Fatalf("history entry %d (%s/%s) is in the trail %d times", i+1, st.History[i].Stage, st.History[i].State, got)
			}
		}
	}
	completed := func(t *testing.T, w *world, id string) *dsr.Stored {
		t.Helper()
		st := w.get(id)
		if st.State != dsr.StateCompleted || st.ExportBlob == "" || st.Export == nil {
			t.Fatalf("%s/%s, export %q", st.Stage, st.State, st.ExportBlob)
		}
		if !slices.ContainsFunc(st.History, func(h dsr.HistoryEntry) bool { return h.Stage == dsr.StageExport }) {
			t.Fatal("no export stage in the history")
		}
		return st
	}

	t.Run("chained", func(t *testing.T) {
		w := newWorld(t)
		w.svc.ChainExportRecords = 10
		id := w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
		if got := w.drain(2); !slices.Equal(got, []dsr.Stage{dsr.StageDiscovery}) {
			t.Fatalf("stage messages %v, want discovery's only", got)
		}
		st := completed(t, w, id)
		if st.Discovery.TotalRecords == 0 || st.Discovery.TotalRecords > 10 {
			t.Fatalf("%d records: the fixture no longer fits the test", st.Discovery.TotalRecords)
		}
		if w.pkgs.puts != 1 {
			t.Errorf("%d package writes, want 1", w.pkgs.puts)
		}
		trailOnce(t, w, id)
	})

	t.Run("over the limit", func(t *testing.T) {
		w := newWorld(t)
		w.svc.ChainExportRecords = 1
		id := w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
		if got := w.drain(1); !slices.Equal(got, []dsr.Stage{dsr.StageDiscovery, dsr.StageExport}) {
			t.Fatalf("stage messages %v, want discovery's and export's", got)
		}
		completed(t, w, id)
		trailOnce(t, w, id)
	})

	t.Run("chained export fails", func(t *testing.T) {
		w := newWorld(t)
		w.svc.ChainExportRecords = 10
		fp := &failingPuts{memPackages: w.pkgs}
		fp.n.Store(1)
		w.svc.Packages = fp
		id := w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
		if got := w.drain(1); !slices.Equal(got, []dsr.Stage{dsr.StageDiscovery, dsr.StageExport}) {
			t.Fatalf("stage messages %v, want the export handed over after its chained run failed", got)
		}
		completed(t, w, id)
		trailOnce(t, w, id)
		if !strings.Contains(w.logs.String(), "chained stage failed") {
			t.Error("the failed chained export was not logged")
		}
	})

	t.Run("the hand-over's trail append fails", func(t *testing.T) {
		// The chained export's entries then bring the discovery's along:
		// every history entry in the trail, first seen in order.
		w := newWorld(t)
		w.svc.ChainExportRecords = 10
		id := w.submit(`{"type":"access","subject":{"email":"ann@x.example"}}`)
		fa := &failNextAppend{memAudit: w.audit}
		fa.fail.Store(true)
		w.svc.Audit = fa
		if got := w.drain(1); !slices.Equal(got, []dsr.Stage{dsr.StageDiscovery}) {
			t.Fatalf("stage messages %v, want discovery's only", got)
		}
		st := completed(t, w, id)
		if fa.fail.Load() {
			t.Fatal("no append failed: the test did not test anything")
		}
		next := 1
		for _, e := range w.audit.entries {
			if e.RequestID != id || e.Event != "state" {
				continue
			}
			var n int
			fmt.Sscanf(strings.TrimPrefix(e.ID, id+":"), "%d", &n)
			if n > next {
				t.Fatalf("trail entry %d before entry %d", n, next)
			}
			if n == next {
				next++
			}
		}
		if next != len(st.History)+1 {
			t.Fatalf("the trail holds history entries 1 to %d of %d", next-1, len(st.History))
		}
	})

	t.Run("other routes are not chained", func(t *testing.T) {
		w := newWorld(t)
		w.svc.ChainExportRecords = 10
		id := w.submit(`{"type":"erasure","subject":{"email":"ann@x.example"}}`)
		w.drain(1)
		if st := w.get(id); st.Stage != dsr.StageApproval {
			t.Fatalf("erasure at %s/%s after discovery, want waiting for approval", st.Stage, st.State)
		}
	})
}

// failNextAppend fails one append to the trail when armed.
type failNextAppend struct {
	*memAudit
	fail atomic.Bool
}

func (f *failNextAppend) Append(ctx context.Context, entries ...audit.Entry) error {
	if f.fail.CompareAndSwap(true, false) {
		return errors.New("trail unavailable")
	}
	return f.memAudit.Append(ctx, entries...)
}
