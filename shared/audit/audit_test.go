package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/appendblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/dsr-functions/dsr/shared/audit"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
)

func TestMain(m *testing.M) { os.Exit(azuritetest.Run(m)) }

func TestAppendAndRead(t *testing.T) {
	acct := azuritetest.Account(t)
	name := azuritetest.Container(t, acct, "audit")
	trail := audit.New(acct, name)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	entries := []audit.Entry{
		{ID: "r1:1", At: at, RequestID: "r1", Event: "state", Stage: "intake", State: "received", Actor: &audit.Actor{Kind: "key", ID: "key"}},
		{ID: "r1:2", At: at.Add(time.Second), RequestID: "r1", Event: "state", Stage: "discovery", State: "in_progress"},
	}
	if err := trail.Append(ctx, entries...); err != nil {
		t.Fatal(err)
	}
	// A redelivered stage appends the same event again: read once.
	if err := trail.Append(ctx, entries[1]); err != nil {
		t.Fatal(err)
	}
	if err := trail.Append(ctx, audit.Entry{ID: "r2:1", At: at, RequestID: "r2", Event: "state"}); err != nil {
		t.Fatal(err)
	}
	got, err := trail.ForRequest(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "r1:1" || got[1].State != "in_progress" || got[0].Actor.Kind != "key" {
		t.Fatalf("entries %+v", got)
	}
	if none, err := trail.ForRequest(ctx, "r9"); err != nil || len(none) != 0 {
		t.Fatalf("unknown request: %v %v", none, err)
	}
	// The hour's global blob holds every entry of every request.
	var hour bytes.Buffer
	resp, err := acct.Service.NewContainerClient(name).NewBlobClient("all/2026/03/01/10.ndjson").DownloadStream(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = hour.ReadFrom(resp.Body)
	resp.Body.Close()
	if n := bytes.Count(hour.Bytes(), []byte("\n")); n != 4 {
		t.Fatalf("global blob has %d lines, want 4", n)
	}
	if err := trail.Append(ctx, audit.Entry{RequestID: "r1", Event: "x"}); err == nil {
		t.Fatal("an entry without id was accepted")
	}
}

// AppendNew creates a request's blob before appending; given a request
// whose blob exists already it appends all the same and replaces nothing.
func TestAppendNewCreatesOrAppends(t *testing.T) {
	acct := azuritetest.Account(t)
	trail := audit.New(acct, azuritetest.Container(t, acct, "audit"))
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	if err := trail.AppendNew(ctx, audit.Entry{ID: "r1:1", At: at, RequestID: "r1", Event: "state"}); err != nil {
		t.Fatal(err)
	}
	if err := trail.AppendNew(ctx, audit.Entry{ID: "r1:2", At: at, RequestID: "r1", Event: "state"}); err != nil {
		t.Fatal(err)
	}
	if err := trail.Append(ctx, audit.Entry{ID: "r1:3", At: at, RequestID: "r1", Event: "state"}); err != nil {
		t.Fatal(err)
	}
	got, err := trail.ForRequest(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].ID != "r1:1" || got[2].ID != "r1:3" {
		t.Fatalf("entries %+v, want r1:1..3", got)
	}
}

// Prepare creates a request's blob ahead of its entries: the first append
// then goes straight in; preparing again (a blob with entries, through the
// create-only access) replaces nothing.
func TestPrepareThenAppend(t *testing.T) {
	acct := azuritetest.Account(t)
	trail := audit.New(acct, azuritetest.Container(t, acct, "audit"))
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	if err := trail.Prepare(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if got, err := trail.ForRequest(ctx, "r1"); err != nil || len(got) != 0 {
		t.Fatalf("a prepared trail: %+v, %v", got, err)
	}
	if err := trail.Append(ctx, audit.Entry{ID: "r1:1", At: at, RequestID: "r1", Event: "state"}); err != nil {
		t.Fatal(err)
	}
	if err := trail.Prepare(ctx, "r1"); err != nil {
		t.Fatalf("preparing a trail with entries: %v", err)
	}
	if err := trail.Append(ctx, audit.Entry{ID: "r1:2", At: at, RequestID: "r1", Event: "state"}); err != nil {
		t.Fatal(err)
	}
	got, err := trail.ForRequest(ctx, "r1")
	if err != nil || len(got) != 2 || got[0].ID != "r1:1" || got[1].ID != "r1:2" {
		t.Fatalf("entries %+v, %v; want r1:1 and r1:2", got, err)
	}
}

// The trail's own write access cannot rewrite or delete an entry: Storage
// refuses it, whatever the code tries.
func TestEntriesCannotBeRewrittenOrDeleted(t *testing.T) {
	acct := azuritetest.Account(t)
	name := azuritetest.Container(t, acct, "audit")
	ctx := context.Background()
	if err := audit.New(acct, name).Append(ctx, audit.Entry{ID: "r1:1", RequestID: "r1", Event: "state", State: "received"}); err != nil {
		t.Fatal(err)
	}
	// The client the trail writes with.
	c, err := audit.New(acct, name).WriteClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	blobName := audit.RequestBlob("r1")
	attempts := map[string]func(*container.Client) error{
		"overwrite with a block blob": func(c *container.Client) error {
			_, err := c.NewBlockBlobClient(blobName).UploadBuffer(ctx, []byte(`{"id":"r1:1","event":"forged"}`+"\n"), &blockblob.UploadBufferOptions{})
			return err
		},
		"recreate the append blob": func(c *container.Client) error {
			_, err := c.NewAppendBlobClient(blobName).Create(ctx, nil)
			return err
		},
		"delete": func(c *container.Client) error {
			_, err := c.NewBlobClient(blobName).Delete(ctx, nil)
			return err
		},
		"set metadata": func(c *container.Client) error {
			_, err := c.NewBlobClient(blobName).SetMetadata(ctx, map[string]*string{"x": to.Ptr("y")}, nil)
			return err
		},
	}
	for what, attempt := range attempts {
		if err := attempt(c); err == nil {
			t.Errorf("%s: allowed", what)
		}
	}
	got, err := audit.New(acct, name).ForRequest(ctx, "r1")
	if err != nil || len(got) != 1 || got[0].State != "received" {
		t.Fatalf("entries after the attempts: %+v %v", got, err)
	}
	// Appending still works.
	if _, err := c.NewAppendBlobClient(blobName).AppendBlock(ctx, nopCloser([]byte(`{"id":"r1:2","requestId":"r1","event":"state"}`+"\n")), &appendblob.AppendBlockOptions{}); err != nil {
		t.Fatalf("append refused: %v", err)
	}
}

type rsc struct{ *bytes.Reader }

func (rsc) Close() error { return nil }

func nopCloser(b []byte) rsc { return rsc{bytes.NewReader(b)} }

// Writers that start a new hour (or request) blob at the same moment all
// succeed: the create-only SAS refuses the losers' create with a permission
// error, not "already exists", and they must append all the same.
func TestConcurrentWritersCreatingTheSameBlob(t *testing.T) {
	acct := azuritetest.Account(t)
	name := azuritetest.Container(t, acct, "audit")
	ctx := context.Background()
	at := time.Date(2026, 11, 28, 13, 0, 0, 0, time.UTC)
	const writers = 8
	errs := make(chan error, writers)
	for i := 0; i < writers; i++ {
		go func(i int) {
			// Separate trails, as separate instances of the app would be.
			errs <- audit.New(acct, name).Append(ctx, audit.Entry{ID: fmt.Sprintf("r1:%d", i+1), At: at, RequestID: "r1", Event: "state", State: "received"})
		}(i)
	}
	for i := 0; i < writers; i++ {
		if err := <-errs; err != nil {
			t.Errorf("writer: %v", err)
		}
	}
	got, err := audit.New(acct, name).ForRequest(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != writers {
		t.Errorf("%d entries, want %d", len(got), writers)
	}
}

// Concurrent appends to the hour's blob share append blocks: every entry
// is there once, each request's own blob holds its entries in order, and
// the hour's blob has fewer blocks than there were appends.
func TestConcurrentAppendsShareBlocks(t *testing.T) {
	acct := azuritetest.Account(t)
	name := azuritetest.Container(t, acct, "audit")
	trail := audit.New(acct, name)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)
	const writers, each = 40, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("r%d", w)
				if err := trail.Append(ctx, audit.Entry{ID: fmt.Sprintf("%s:%d", id, i+1), At: at, RequestID: id, Event: "state", Attempt: i + 1}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := range writers {
		got, err := trail.ForRequest(ctx, fmt.Sprintf("r%d", w))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != each {
			t.Fatalf("r%d has %d entries, want %d", w, len(got), each)
		}
		for i, e := range got {
			if e.Attempt != i+1 {
				t.Fatalf("r%d entries out of order: %+v", w, got)
			}
		}
	}
	hour := acct.Service.NewContainerClient(name).NewBlobClient("all/2026/03/01/11.ndjson")
	resp, err := hour.DownloadStream(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	resp.Body.Close()
	if n := bytes.Count(b.Bytes(), []byte("\n")); n != writers*each {
		t.Fatalf("hour blob has %d lines, want %d", n, writers*each)
	}
	props, err := hour.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if props.BlobCommittedBlockCount == nil || *props.BlobCommittedBlockCount >= writers*each {
		t.Fatalf("hour blob has %v blocks for %d appends: nothing was shared", props.BlobCommittedBlockCount, writers*each)
	}
	t.Logf("%d appends in %d blocks", writers*each, *props.BlobCommittedBlockCount)
}
