package functions_test

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sample"
)

// datasetOf names the dataset that reads a sample blob.
func (h *harness) datasetOf(blob string) string {
	h.t.Helper()
	for _, d := range h.app.Service.Sources.Datasets {
		if d.Blob == blob {
			return d.Name
		}
	}
	h.t.Fatalf("no dataset reads %s", blob)
	return ""
}

func (h *harness) readBlob(name string) []byte {
	h.t.Helper()
	resp, err := h.app.Account.Service.NewContainerClient(h.datasets).NewBlobClient(name).DownloadStream(context.Background(), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

func (h *harness) writeBlob(name string, b []byte) {
	h.t.Helper()
	if _, err := h.app.Account.Service.NewContainerClient(h.datasets).NewBlockBlobClient(name).UploadBuffer(context.Background(), b, &blockblob.UploadBufferOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

// One broken dataset fails only its part, on the first delivery: a
// malformed record that may be hers fails that dataset for her (access
// completes naming it, in the request and the export; erasure changes the
// others, leaves that blob alone and ends source-failed), while someone
// not in that record is served in full; a deleted dataset blob fails that
// dataset for everyone and nothing else. Reasons give the position, never
// the record.
func TestBrokenDatasetFailsOnlyItsPart(t *testing.T) {
	// The same person asks several times here: no repeat flags.
	h := newHarness(t, harnessOptions{manual: true, env: map[string]string{"DSR_REPEAT_WINDOW": "0"}})
	surveys := h.datasetOf(sample.SurveysBlob)
	broken := append(h.readBlob(sample.SurveysBlob), []byte(`{"respondent":"`+sample.DemoEmail+`","answer":"secret-answer" broken`+"\n")...)
	h.writeBlob(sample.SurveysBlob, broken)

	doc := h.submit(demoAccess)
	h.deliver("discover") // the first delivery goes on: nothing to retry
	h.deliver("export")
	final, exp := h.waitTerminal(doc.ID)
	if final.State != dsr.StateCompleted || !slices.Equal(final.FailedSources, []string{surveys}) {
		t.Fatalf("access with a broken dataset: %s, failed sources %v", final.State, final.FailedSources)
	}
	var reason string
	for _, s := range final.Discovery.Sources {
		if s.Source == surveys {
			reason = s.Error
		}
	}
	if !strings.Contains(reason, "record") || strings.Contains(reason, "secret") || strings.Contains(reason, "avery") {
		t.Errorf("the reason %q does not locate the record, or shows it", reason)
	}
	_, body, _ := download(t, exp.URL)
	summary := string(readZip(t, body)["summary.txt"])
	if !strings.Contains(summary, surveys) || strings.Contains(summary, "secret-answer") {
		t.Errorf("the export's summary does not name the broken dataset, or shows its content:\n%s", summary)
	}

	// Someone whose records the broken line is not: served in full.
	other := h.submit(`{"type":"access","subject":{"email":"someone.else@example.org"}}`)
	h.deliver("discover")
	h.deliver("export")
	if got, _ := h.waitTerminal(other.ID); got.State != dsr.StateCompleted || len(got.FailedSources) != 0 {
		t.Fatalf("another person's access: %s, failed sources %v", got.State, got.FailedSources)
	}

	// Erasure: the other datasets change, the broken blob does not.
	erasure := h.submit(demoErasure)
	h.deliver("discover")
	if resp, b := h.do("POST", "/api/requests/"+erasure.ID+"/approve", ""); resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, b)
	}
	contactsBefore := h.readBlob(sample.ContactsBlob)
	h.deliver("erase")
	h.deliver("verify")
	got, _ := h.waitTerminal(erasure.ID)
	if got.State != dsr.StateFailed || got.Error == nil || got.Error.Code != "source-failed" || !strings.Contains(got.Error.Message, surveys) {
		t.Fatalf("erasure with a broken dataset: %s %+v", got.State, got.Error)
	}
	if !bytes.Equal(h.readBlob(sample.SurveysBlob), broken) {
		t.Error("the broken blob was rewritten")
	}
	if bytes.Equal(h.readBlob(sample.ContactsBlob), contactsBefore) {
		t.Error("the other datasets were not erased")
	}

	// A deleted dataset blob fails that dataset for everyone, at once.
	activity := h.datasetOf(sample.ActivityBlob)
	if _, err := h.app.Account.Service.NewContainerClient(h.datasets).NewBlobClient(sample.ActivityBlob).Delete(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	third := h.submit(`{"type":"access","subject":{"email":"someone.else@example.org"}}`)
	h.deliver("discover")
	h.deliver("export")
	if got, _ := h.waitTerminal(third.ID); got.State != dsr.StateCompleted || !slices.Equal(got.FailedSources, []string{activity}) {
		t.Fatalf("access with a deleted dataset blob: %s, failed sources %v", got.State, got.FailedSources)
	}
}
