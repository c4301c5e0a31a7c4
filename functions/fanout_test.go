package functions_test

import (
	"context"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/sources/blobdataset"
)

// scanJobs counts the fanned-out scans planned in the state container.
func (h *harness) scanJobs() int {
	h.t.Helper()
	n := 0
	pager := h.app.Account.Service.NewContainerClient(h.state).NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr(blobdataset.ScanPrefix + "jobs/")})
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			h.t.Fatal(err)
		}
		for _, it := range page.Segment.BlobItems {
			if strings.Count(strings.TrimPrefix(*it.Name, blobdataset.ScanPrefix+"jobs/"), "/") == 0 {
				n++
			}
		}
	}
	return n
}

// With 1 MiB shards the sample's larger datasets fan out over dsr-scan
// (the local host runs the shards four at a time): the access request
// finds what the walkthrough says, and the erasure's verification scans
// again (a scan planned before the erasure is no answer after it) and
// finds nothing left.
func TestFannedOutDiscoveryWalkthrough(t *testing.T) {
	h := newHarness(t, harnessOptions{size: mustSize(t, "4000"), env: map[string]string{"DSR_SCAN_SHARD_MB": "1"}})
	doc := h.submit(`{"type":"access","subject":{"email":"avery.morgan@contoso.example"}}`)
	doc, exp := h.waitTerminal(doc.ID)
	if doc.State != dsr.StateCompleted {
		t.Fatalf("access: %s %+v\n%s", doc.State, doc.Error, h.logs.String())
	}
	jobs := h.scanJobs()
	if jobs == 0 {
		t.Fatal("no scan fanned out; the test's datasets are too small for its shards")
	}
	want := h.datasetCounts(sample.Demo(h.size).RecordsWithoutPhone)
	for _, s := range doc.Discovery.Sources {
		if int(s.Records) != want[s.Source] || s.Error != "" {
			t.Errorf("discovery %s: %d records (%q), want %d", s.Source, s.Records, s.Error, want[s.Source])
		}
	}
	if doc.Discovery.Progress != nil {
		t.Errorf("a finished discovery still shows progress: %+v", doc.Discovery.Progress)
	}
	if status, _, _ := download(t, exp.URL); status != 200 {
		t.Fatalf("download: %d", status)
	}

	er := h.submit(demoErasure)
	h.waitState(er.ID, dsr.StateAwaitingApproval)
	if resp, b := h.do("POST", "/api/requests/"+er.ID+"/approve", ""); resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, b)
	}
	done, _ := h.waitTerminal(er.ID)
	if done.State != dsr.StateCompleted || done.Verification == nil || done.Verification.Residual != 0 {
		t.Fatalf("erasure: %s %+v verification %+v\n%s", done.State, done.Error, done.Verification, h.logs.String())
	}
	if h.scanJobs() <= jobs {
		t.Error("the erasure's discovery and verification reused the access request's scans")
	}
	if logs := strings.ToLower(h.logs.String()); strings.Contains(logs, sample.DemoEmail) {
		t.Error("the logs hold the subject's address")
	}
}

// Step by step: the discovery that fans out leaves the request showing
// its progress; each shard's invocation moves it; the shard that
// completes a scan puts the request's discover message back, and that
// discovery takes the result (or fans out the next large dataset); the
// request then moves on to export.
func TestFannedOutDiscoveryShowsProgress(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true, size: mustSize(t, "4000"), env: map[string]string{"DSR_SCAN_SHARD_MB": "1"}})
	doc := h.submit(`{"type":"access","subject":{"email":"avery.morgan@contoso.example"}}`)
	h.deliver("discover")
	got, _ := h.get(doc.ID)
	if got.Stage != dsr.StageDiscovery || got.Discovery == nil || got.Discovery.Progress == nil {
		t.Fatalf("after the first discovery: %s, discovery %+v\n%s", got.Stage, got.Discovery, h.logs.String())
	}
	p := *got.Discovery.Progress
	if p.Shards < 2 || p.Done != 0 || p.Bytes <= 1<<20 {
		t.Fatalf("progress %+v, want at least 2 shards over more than 1 MiB, none done", p)
	}
	for round := 0; got.Stage == dsr.StageDiscovery; round++ {
		if round > 10 {
			t.Fatal("discovery does not end")
		}
		for n := len(h.broker.Peek("dsr-scan")); n > 0; n-- {
			h.deliver("scan")
		}
		// The request's scheduled look (DefaultPoll on) and the message
		// that wakes it now.
		if n := len(h.broker.Peek("dsr-discover")); n < 2 {
			t.Fatalf("round %d: %d discover messages after the scan completed, want the scheduled one and the one that wakes the request", round, n)
		}
		h.deliver("discover")
		got, _ = h.get(doc.ID)
	}
	if got.Stage != dsr.StageExport || got.Discovery == nil || got.Discovery.Progress != nil || got.Discovery.TotalRecords == 0 {
		t.Fatalf("after discovery: %s %+v", got.Stage, got.Discovery)
	}
}
