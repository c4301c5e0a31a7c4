package functions_test

import (
	"context"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/blobdataset"
)

// indexObjects counts the index objects in the state container.
func (h *harness) indexObjects() int {
	h.t.Helper()
	n := 0
	pager := h.app.Account.Service.NewContainerClient(h.state).NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr(blobdataset.DefaultIndexPrefix)})
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			h.t.Fatal(err)
		}
		n += len(page.Segment.BlobItems)
	}
	return n
}

// runScans delivers every message waiting on dsr-scan.
func (h *harness) runScans() int {
	n := 0
	for len(h.broker.Peek("dsr-scan")) > 0 {
		h.deliver("scan")
		n++
	}
	return n
}

// The identifier index as the app runs it: the sweeper asks for the
// builds of the indexed datasets' blobs (dsr-scan), the scan function
// builds them, the walkthrough's access request finds her records through
// them with the walkthrough's counts, an erasure asks for the rebuild of
// the blobs it rewrote, and the next sweep asks for nothing new.
func TestIndexBuiltByTheSweeperAndUsed(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true, editSources: func(c *sources.Config) {
		for i := range c.Datasets {
			c.Datasets[i].Index = true
		}
	}})
	h.sweep()
	if n := h.runScans(); n != len(h.sources.Datasets) {
		t.Fatalf("the sweep asked for %d index builds, want one per blob (%d)", n, len(h.sources.Datasets))
	}
	if n := h.indexObjects(); n != len(h.sources.Datasets) {
		t.Fatalf("%d index objects, want %d", n, len(h.sources.Datasets))
	}
	h.sweep()
	if n := h.runScans(); n != 0 {
		t.Fatalf("a sweep with every index fresh asked for %d builds", n)
	}

	doc := h.submit(`{"type":"access","subject":{"email":"avery.morgan@contoso.example"}}`)
	h.deliver("discover")
	h.deliver("export")
	got, _ := h.waitTerminal(doc.ID)
	want := h.datasetCounts(sample.Demo(h.size).RecordsWithoutPhone)
	for _, s := range got.Discovery.Sources {
		if int(s.Records) != want[s.Source] || s.Error != "" {
			t.Errorf("discovery %s: %d records (%q), want %d", s.Source, s.Records, s.Error, want[s.Source])
		}
	}

	er := h.submit(demoErasure)
	h.deliver("discover")
	if resp, b := h.do("POST", "/api/requests/"+er.ID+"/approve", ""); resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, b)
	}
	h.deliver("erase")
	if n := h.runScans(); n == 0 {
		t.Fatal("the erasure asked for no index rebuild")
	}
	h.deliver("verify")
	h.deliver("erase") // notification
	done, _ := h.waitTerminal(er.ID)
	if done.State != dsr.StateCompleted || done.Verification == nil || done.Verification.Residual != 0 {
		t.Fatalf("erasure: %s %+v %+v\n%s", done.State, done.Error, done.Verification, h.logs.String())
	}
	h.sweep()
	if n := h.runScans(); n != 0 {
		t.Errorf("after the rebuilds a sweep asked for %d builds", n)
	}
	if logs := strings.ToLower(h.logs.String()); strings.Contains(logs, sample.DemoEmail) {
		t.Error("the logs hold the subject's address")
	}
}

// On demand: with no sweep, the first access request's discovery scans
// the indexed datasets and asks for their indexes' builds on dsr-scan;
// once built, the next request is answered through them. Asks name the
// blob version, so changes within the queue's duplicate detection window
// are each built.
func TestIndexBuiltOnDemand(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true, env: noRepeatFlagging, editSources: func(c *sources.Config) {
		for i := range c.Datasets {
			c.Datasets[i].Index = true
		}
	}})
	want := h.datasetCounts(sample.Demo(h.size).RecordsWithoutPhone)
	access := func() {
		t.Helper()
		doc := h.submit(`{"type":"access","subject":{"email":"avery.morgan@contoso.example"}}`)
		h.deliver("discover")
		h.deliver("export")
		got, _ := h.waitTerminal(doc.ID)
		for _, s := range got.Discovery.Sources {
			if int(s.Records) != want[s.Source] || s.Error != "" {
				t.Errorf("discovery %s: %d records (%q), want %d", s.Source, s.Records, s.Error, want[s.Source])
			}
		}
	}
	access()
	if n := h.runScans(); n != len(h.sources.Datasets) {
		t.Fatalf("the first discovery asked for %d index builds, want one per blob (%d)", n, len(h.sources.Datasets))
	}
	if n := h.indexObjects(); n != len(h.sources.Datasets) {
		t.Fatalf("%d index objects, want %d", n, len(h.sources.Datasets))
	}
	bypassed := strings.Count(h.logs.String(), "identifier index bypassed")
	access()
	if n := h.runScans(); n != 0 {
		t.Errorf("with every index fresh, a discovery asked for %d builds", n)
	}
	if strings.Count(h.logs.String(), "identifier index bypassed") != bypassed {
		t.Errorf("the second discovery bypassed an index:\n%s", h.logs.String())
	}

	// A blob changed twice within the queue's duplicate detection window:
	// the timer asks for the first version's build; the discovery that
	// finds the second version unindexed asks again, under that version's
	// message id, so its ask is not dropped as a duplicate of the timer's.
	blob := h.sources.Datasets[0].Blob
	data := h.readBlob(blob)
	h.writeBlob(blob, append(data, '\n'))
	h.sweep()
	if n := h.runScans(); n != 1 {
		t.Fatalf("after a change the sweep asked for %d builds, want 1", n)
	}
	h.writeBlob(blob, append(data, '\n', '\n'))
	access()
	if n := h.runScans(); n != 1 {
		t.Fatalf("after a second change the discovery asked for %d builds, want 1 (not dropped as a duplicate)", n)
	}
	bypassed = strings.Count(h.logs.String(), "identifier index bypassed")
	access()
	if strings.Count(h.logs.String(), "identifier index bypassed") != bypassed {
		t.Errorf("after the on-demand build a discovery bypassed an index:\n%s", h.logs.String())
	}
	// The timer's asks name the version too: a third change within the
	// window is asked for by the next sweep, and a sweep with nothing
	// changed asks for nothing.
	h.writeBlob(blob, append(data, '\n', '\n', '\n'))
	h.sweep()
	if n := h.runScans(); n != 1 {
		t.Fatalf("after a third change the sweep asked for %d builds, want 1", n)
	}
	h.sweep()
	if n := h.runScans(); n != 0 {
		t.Fatalf("with nothing changed the sweep asked for %d builds", n)
	}
}
