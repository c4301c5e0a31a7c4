package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/dsr-functions/dsr/shared/notify"
	"github.com/dsr-functions/dsr/shared/notify/outbox"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
)

func TestMain(m *testing.M) { os.Exit(azuritetest.Run(m)) }

const avery = "avery.morgan@contoso.example"

func newOutbox(t *testing.T) (*outbox.Outbox, *container.Client, *time.Time) {
	t.Helper()
	acct := azuritetest.Account(t)
	name := azuritetest.Container(t, acct, "outbox")
	cc := acct.Service.NewContainerClient(name)
	o, err := outbox.Open(context.Background(), cc) // the container exists: fine
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 3, 1, 9, 0, 0, 123456789, time.FixedZone("CET", 3600))
	o.SetClock(func() time.Time { return clock })
	return o, cc, &clock
}

func blobNames(t *testing.T, cc *container.Client) []string {
	t.Helper()
	var names []string
	pager := cc.NewListBlobsFlatPager(nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Segment.BlobItems {
			names = append(names, *it.Name)
		}
	}
	return names
}

func rawBlob(t *testing.T, cc *container.Client, name string) map[string]any {
	t.Helper()
	resp, err := cc.NewBlobClient(name).DownloadStream(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := *resp.ContentType; !strings.HasPrefix(ct, "application/json") {
		t.Errorf("content type %q", ct)
	}
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSendWritesOneBlobPerKey(t *testing.T) {
	o, cc, clock := newOutbox(t)
	ctx := context.Background()
	m := notify.Message{To: avery, Subject: "Your code", Text: "Code: 111111", HTML: "<p>Code: <b>111111</b></p>", Key: "r1:verify:1"}
	if err := o.Send(ctx, m); err != nil {
		t.Fatal(err)
	}
	names := blobNames(t, cc)
	if want := []string{notify.KeyHash(m.Key) + ".json"}; !slices.Equal(names, want) || outbox.BlobName(m.Key) != want[0] {
		t.Fatalf("blobs = %v, want %v", names, want)
	}
	raw := rawBlob(t, cc, names[0])
	wantFields := []string{"html", "key", "sentAt", "subject", "text", "to"}
	var got []string
	for k := range raw {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, wantFields) {
		t.Errorf("JSON fields = %v, want %v", got, wantFields)
	}
	if raw["to"] != avery || raw["html"] != m.HTML || raw["key"] != m.Key {
		t.Errorf("stored %v", raw)
	}
	sentAt, err := time.Parse(time.RFC3339, raw["sentAt"].(string))
	if err != nil || !sentAt.Equal(*clock) || sentAt.Location() != time.UTC {
		t.Errorf("sentAt %v (%v), want %v in UTC, RFC 3339", raw["sentAt"], err, *clock)
	}

	// A retry of the same Key, later: still one blob, now the later one.
	*clock = clock.Add(time.Hour)
	m.Text = "Code: 111111 (again)"
	if err := o.Send(ctx, m); err != nil {
		t.Fatal(err)
	}
	list, err := o.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Text != m.Text || !list[0].SentAt.Equal(*clock) || list[0].Blob != names[0] || list[0].Message() != m {
		t.Fatalf("after a retry: %+v", list)
	}
}

func TestListAndFind(t *testing.T) {
	o, _, clock := newOutbox(t)
	ctx := context.Background()
	start := *clock
	send := func(at time.Duration, to, key string) {
		t.Helper()
		*clock = start.Add(at)
		if err := o.Send(ctx, notify.Message{To: to, Subject: "s " + key, Text: "t", Key: key}); err != nil {
			t.Fatal(err)
		}
	}
	// Written out of order; keys whose hashes sort differently from time.
	send(3*time.Second, "bob@fabrikam.example", "r2:verify:1")
	send(1*time.Second, avery, "r1:verify:1")
	send(2*time.Second, "Avery.Morgan@Contoso.Example", "r1:export:1")
	send(2*time.Second, avery, "r1:a-tie")
	send(5*time.Millisecond, "lavery.morgan@contoso.example", "r3:verify:1")

	list, err := o.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, s := range list {
		keys = append(keys, s.Key)
	}
	if want := []string{"r3:verify:1", "r1:verify:1", "r1:a-tie", "r1:export:1", "r2:verify:1"}; !slices.Equal(keys, want) {
		t.Fatalf("List order = %v, want %v (by sentAt, then key)", keys, want)
	}

	found, err := o.Find(ctx, avery)
	if err != nil {
		t.Fatal(err)
	}
	keys = keys[:0]
	for _, s := range found {
		keys = append(keys, s.Key)
	}
	if want := []string{"r1:verify:1", "r1:a-tie", "r1:export:1"}; !slices.Equal(keys, want) {
		t.Fatalf("Find(avery) = %v, want %v (case-insensitive, no near misses)", keys, want)
	}
	if none, err := o.Find(ctx, "nobody@contoso.example"); err != nil || len(none) != 0 {
		t.Fatalf("Find(nobody) = %v, %v", none, err)
	}
}

func TestSendRefusesInvalidMessages(t *testing.T) {
	o, cc, _ := newOutbox(t)
	for _, m := range []notify.Message{
		{To: avery + "\r\nBcc: eve@evil.example", Subject: "s", Text: "t", Key: "k1"},
		{To: "Avery <" + avery + ">", Subject: "s", Text: "t", Key: "k2"},
		{To: avery, Subject: "Hi\nBcc: eve@evil.example", Text: "t", Key: "k3"},
		{To: avery, Subject: "s", Key: "k4"},
		{To: avery, Subject: "s", Text: "t"},
	} {
		err := o.Send(context.Background(), m)
		if !errors.Is(err, notify.ErrInvalid) {
			t.Errorf("Send(%q) = %v, want ErrInvalid", m.Key, err)
		}
		if err != nil && strings.Contains(err.Error(), avery) {
			t.Errorf("error %q names the recipient", err)
		}
	}
	if names := blobNames(t, cc); len(names) != 0 {
		t.Errorf("invalid messages were written: %v", names)
	}
}

func TestStorageErrorsHoldNoPersonalData(t *testing.T) {
	o, cc, _ := newOutbox(t)
	if _, err := cc.Delete(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	m := notify.Message{To: avery, Subject: "Your export is ready", Text: "https://example/link", Key: "r9:export:1"}
	err := o.Send(context.Background(), m)
	var ne *notify.Error
	if !errors.As(err, &ne) || ne.Ref != notify.KeyRef(m.Key) || ne.Status != 404 || ne.Code != "ContainerNotFound" {
		t.Fatalf("Send into a deleted container = %v", err)
	}
	for _, v := range []string{m.To, m.Subject, m.Text} {
		if strings.Contains(err.Error(), v) {
			t.Errorf("error %q contains %q", err, v)
		}
	}
	if !strings.Contains(err.Error(), "notify: send "+notify.KeyRef(m.Key)+": outbox: write") {
		t.Errorf("error %q does not say what failed", err)
	}
}

func TestOpenAccountCreatesTheContainer(t *testing.T) {
	acct := azuritetest.Account(t)
	ctx := context.Background()
	t.Cleanup(func() { _, _ = acct.Service.DeleteContainer(context.Background(), outbox.DefaultContainer, nil) })
	for range 2 { // the second time it exists already
		o, err := outbox.OpenAccount(ctx, acct, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Send(ctx, notify.Message{To: avery, Subject: "s", Text: "t", Key: "open-account"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := acct.Service.NewContainerClient(outbox.DefaultContainer).GetProperties(ctx, nil); err != nil {
		t.Fatalf("container %q: %v", outbox.DefaultContainer, err)
	}
	o, _ := outbox.OpenAccount(ctx, acct, "")
	if got, err := o.Find(ctx, avery); err != nil || len(got) != 1 {
		t.Fatalf("Find = %+v, %v", got, err)
	}
}
