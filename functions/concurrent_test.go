package functions_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/queue/embedded"
	"github.com/dsr-functions/dsr/shared/sources"
)

// concurrentErasures is how many people's erasures of one blob run at
// once in TestConcurrentErasuresOfOneBlobAllLand.
const concurrentErasures = 200

// Many erasures of different people in one blob at once all land: each
// conditional rewrite that loses the race to another is discovered again
// and retried in place, without failing an invocation (no delivery used
// up), and every other record stays byte for byte as it was.
func TestConcurrentErasuresOfOneBlobAllLand(t *testing.T) {
	const blobName = "people/people.ndjson"
	h := newHarness(t, harnessOptions{
		concurrency: 16, // as host.json's maxConcurrentCalls
		env:         map[string]string{"DSR_APPROVAL_TYPES": "none", "DSR_REPEAT_WINDOW": "0"},
		editSources: func(c *sources.Config) {
			facts := c.Datasets[0].Facts
			c.Datasets = []sources.Dataset{{
				Name: "people", Description: "people", Container: c.Datasets[0].Container, Blob: blobName, Format: sources.FormatNDJSON,
				Key: "id", Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}}, Facts: facts,
			}}
			c.Recipients = nil
		},
	})
	var before, want bytes.Buffer
	for i := range 2 * concurrentErasures {
		line := fmt.Sprintf(`{"id":"p%04d","email":"person%04d@example.test","name":"Person %d","note":"kept as it is, %d"}`+"\n", i, i, i, i)
		before.WriteString(line)
		if i%2 == 1 {
			want.WriteString(line)
		}
	}
	blob := h.app.Account.Service.NewContainerClient(h.datasets).NewBlockBlobClient(blobName)
	if _, err := blob.UploadBuffer(context.Background(), before.Bytes(), nil); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	ids := make([]string, 0, concurrentErasures)
	for i := 0; i < 2*concurrentErasures; i += 2 {
		doc := h.submit(fmt.Sprintf(`{"type":"erasure","subject":{"email":"person%04d@example.test"}}`, i))
		ids = append(ids, doc.ID)
	}
	deadline := start.Add(3 * time.Minute)
	for _, id := range ids {
		for {
			doc, _ := h.get(id)
			if doc.State.Terminal() {
				if doc.State != dsr.StateCompleted {
					t.Fatalf("request %s ended %s: %+v", id, doc.State, doc.Error)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("request %s still %s/%s after %s; history %+v\n%s", id, doc.Stage, doc.State, time.Since(start), doc.History, h.logsOf(id, 40))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("%d erasures of one blob in %s", concurrentErasures, time.Since(start).Round(time.Millisecond))

	resp, err := blob.DownloadStream(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(after, want.Bytes()) {
		t.Fatalf("the blob is not the others' records byte for byte: %d bytes, want %d", len(after), want.Len())
	}
	logs := h.logs.String()
	rediscovered := strings.Count(logs, "data changed since discovery; discovering again")
	if rediscovered == 0 {
		t.Error("no erasure ever found the blob changed since its discovery: the test did not run them concurrently")
	}
	if strings.Contains(logs, "message abandoned") || len(h.broker.Peek("dsr-erase"+embedded.DeadLetterSuffix)) != 0 {
		t.Error("a lost race used up a delivery")
	}
	t.Logf("discovered again: %d; lost races: %d; scheduled stage retries: %d", rediscovered,
		strings.Count(logs, "lost a race for changed data"), strings.Count(logs, "retry scheduled"))
}
