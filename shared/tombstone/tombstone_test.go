package tombstone_test

import (
	"context"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
	"github.com/dsr-functions/dsr/shared/tombstone"
)

func TestMain(m *testing.M) { os.Exit(azuritetest.Run(m)) }

func newStore(t *testing.T, secret string) (*tombstone.Store, func() map[string]string) {
	s, _, dump := newStoreClient(t, secret)
	return s, dump
}

func newStoreClient(t *testing.T, secret string) (*tombstone.Store, *container.Client, func() map[string]string) {
	acct := azuritetest.Account(t)
	name := azuritetest.Container(t, acct, "state")
	cc := acct.Service.NewContainerClient(name)
	dump := func() map[string]string {
		out := map[string]string{}
		pager := cc.NewListBlobsFlatPager(nil)
		for pager.More() {
			page, err := pager.NextPage(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page.Segment.BlobItems {
				resp, err := cc.NewBlobClient(*it.Name).DownloadStream(context.Background(), nil)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				out[*it.Name] = string(b)
			}
		}
		return out
	}
	return tombstone.New(cc, []byte(secret)), cc, dump
}

func TestPutFindList(t *testing.T) {
	s, dump := newStore(t, "tombstone-test-secret-0123456789")
	ctx := context.Background()
	ann := &tombstone.Tombstone{RequestID: "r019a00000000a000000000000001", ErasedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Emails: []string{"ann@x.example"}, Phones: []string{"14255550100"}, IDs: map[string]string{"contactId": "C-ann-0001"},
		Kept: []tombstone.Kept{{Dataset: "activity-log", Action: "retained", Ground: "log"}}}
	ann.AddKey("contacts", "contactid", "C-ann-0001")
	ann.AddKey("contacts", "contactid", "C-ann-0001") // once
	bob := &tombstone.Tombstone{RequestID: "r019a00000000b000000000000002", ErasedAt: ann.ErasedAt.Add(time.Hour), Emails: []string{"bob@y.example"}}
	for _, tb := range []*tombstone.Tombstone{ann, bob, ann} { // a redelivery files ann again
		if err := s.Put(ctx, tb); err != nil {
			t.Fatal(err)
		}
	}
	// Found by any identifier the erasure knew, and only by those.
	for _, id := range []tombstone.Identifier{{Kind: "email", Value: "ann@x.example"}, {Kind: "phone", Value: "14255550100"}, {Kind: "id:contactId", Value: "C-ann-0001"}, tombstone.KeyIdentifier("contacts", "contactid", "C-ann-0001")} {
		got, err := s.Find(ctx, []tombstone.Identifier{id})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].RequestID != ann.RequestID || !slices.Equal(got[0].Keys["contacts"]["contactid"], []string{"C-ann-0001"}) || got[0].Kept[0].Ground != "log" {
			t.Fatalf("Find(%v) = %+v", id, got)
		}
	}
	for _, id := range []tombstone.Identifier{{Kind: "email", Value: "joann@x.example"}, {Kind: "id:contactId", Value: "C-ann-0010"}, {Kind: "id:other", Value: "C-ann-0001"}} {
		if got, _ := s.Find(ctx, []tombstone.Identifier{id}); len(got) != 0 {
			t.Fatalf("Find(%v) found %+v", id, got)
		}
	}
	// Merged into a later request's subject: its identifiers and keys.
	subj := tombstone.Merge(sources.Subject{Emails: []string{"ann@x.example"}}, []*tombstone.Tombstone{ann})
	if !slices.Equal(subj.Phones, []string{"14255550100"}) || subj.IDs["contactId"] != "C-ann-0001" || !slices.Equal(subj.Keys["contacts"]["contactid"], []string{"C-ann-0001"}) {
		t.Fatalf("Merge: %+v", subj)
	}
	// Listed for replay in the order they were made, page by page.
	page, next, err := s.List(ctx, "", 1)
	if err != nil || len(page) != 1 || page[0].RequestID != ann.RequestID || next != ann.RequestID {
		t.Fatalf("List page 1: %+v next %q %v", page, next, err)
	}
	page, next, err = s.List(ctx, next, 1)
	if err != nil || len(page) != 1 || page[0].RequestID != bob.RequestID || next != "" {
		t.Fatalf("List page 2: %+v next %q %v", page, next, err)
	}
	// Nothing in the container names or shows an identifier or a key.
	for name, body := range dump() {
		for _, raw := range []string{"ann@x.example", "14255550100", "C-ann-0001", "contactId", "bob@y.example", "activity-log"} {
			if strings.Contains(name, raw) || strings.Contains(body, raw) {
				t.Errorf("blob %s holds %q in the clear", name, raw)
			}
		}
	}

	// Another secret finds nothing and cannot open what is there.
	other := tombstone.New(nil, nil)
	if got, err := other.Find(ctx, tombstone.SubjectIdentifiers(subj)); err != nil || got != nil {
		t.Fatalf("without a secret: %+v %v", got, err)
	}
}

func TestRotatedSecretIsAnError(t *testing.T) {
	s, cc, _ := newStoreClient(t, "tombstone-test-secret-0123456789")
	ctx := context.Background()
	if err := s.Put(ctx, &tombstone.Tombstone{RequestID: "r019a00000000a000000000000001", Emails: []string{"ann@x.example"}}); err != nil {
		t.Fatal(err)
	}
	rotated := tombstone.New(cc, []byte("another-secret-after-rotation-0123"))
	// Filed under another keyed hash: a lookup finds nothing.
	if got, err := rotated.Find(ctx, []tombstone.Identifier{{Kind: "email", Value: "ann@x.example"}}); err != nil || len(got) != 0 {
		t.Fatalf("Find with a rotated secret: %+v %v", got, err)
	}
	// The replay copy is listed but does not open: an error that says so,
	// never a silent empty replay.
	if _, _, err := rotated.List(ctx, "", 10); err == nil || !strings.Contains(err.Error(), "rotated") {
		t.Fatalf("List with a rotated secret: %v", err)
	}
}
