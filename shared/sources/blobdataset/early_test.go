package blobdataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// gatedStore is the Azure store whose opens of one blob wait until some
// other blobs have been opened (or give up after a while), and which
// counts every open by blob name.
type gatedStore struct {
	azureStore
	gate    string          // the blob whose opens wait
	waitFor map[string]bool // for opens of these
	mu      sync.Mutex
	opened  map[string]int
	ready   chan struct{} // closed when every waitFor blob was opened
}

func newGatedStore(s azureStore, gate string, waitFor ...string) *gatedStore {
	g := &gatedStore{azureStore: s, gate: gate, waitFor: map[string]bool{}, opened: map[string]int{}, ready: make(chan struct{})}
	for _, n := range waitFor {
		g.waitFor[n] = true
	}
	if len(waitFor) == 0 {
		close(g.ready)
	}
	return g
}

func (g *gatedStore) note(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.opened[name]++
	if g.waitFor[name] {
		delete(g.waitFor, name)
		if len(g.waitFor) == 0 {
			close(g.ready)
		}
	}
}

func (g *gatedStore) wait(ctx context.Context, name string) error {
	if name != g.gate {
		return nil
	}
	select {
	case <-g.ready:
		return nil
	case <-time.After(3 * time.Second):
		return errors.New("the later levels' blobs were not opened while the first level was read")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gatedStore) count(name string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.opened[name]
}

func (g *gatedStore) open(ctx context.Context, cont, name string) (io.ReadCloser, string, error) {
	body, p, err := g.openSized(ctx, cont, name)
	return body, p.etag, err
}

func (g *gatedStore) openSized(ctx context.Context, cont, name string) (io.ReadCloser, blobProps, error) {
	g.note(name)
	if err := g.wait(ctx, name); err != nil {
		return nil, blobProps{}, err
	}
	return g.azureStore.openSized(ctx, cont, name)
}

// A discovery downloads the small single blobs of its later dependency
// levels while the first level is read (cases and notes before contacts'
// download is even answered here), finds the same records as level by
// level, and opens each blob once. A later-level blob too large to hold
// is scanned all the same, streamed, and not opened early again.
func TestEarlyOpensOfLaterLevels(t *testing.T) {
	f := newFixture(t)
	f.putCRM()
	c := f.connector(contactsDataset(), casesDataset(), notesDataset())
	g := newGatedStore(c.store.(azureStore), "crm/contacts.ndjson", "crm/cases.csv", "crm/notes.json")
	c.store = g
	want := crmCases[0].want
	d, err := c.Discover(f.ctx, ann)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	if got := ordinals(d); !reflect.DeepEqual(got, want) {
		t.Fatalf("records %v, want %v", got, want)
	}
	for _, n := range []string{"crm/contacts.ndjson", "crm/cases.csv", "crm/notes.json"} {
		if k := g.count(n); k != 1 {
			t.Errorf("%s opened %d times, want once", n, k)
		}
	}

	// Notes over the limit: the early download is dropped unread, the
	// level's scan streams the blob, and the next discovery does not open
	// it early.
	big := strings.TrimSuffix(notesJSON, "]")
	var b strings.Builder
	b.WriteString(big)
	for i := 0; b.Len() <= earlyOpenMaxBytes; i++ {
		fmt.Fprintf(&b, `,{"note_id": %d, "case": "K99", "text": "%s"}`, 1000+i, strings.Repeat("x", 200))
	}
	b.WriteString("]")
	f.put("crm/notes.json", b.String())
	c = f.connector(contactsDataset(), casesDataset(), notesDataset())
	g = newGatedStore(c.store.(azureStore), "")
	c.store = g
	for round := 1; round <= 2; round++ {
		d, err := c.Discover(f.ctx, ann)
		if err != nil {
			t.Fatalf("discovery %d: %v", round, err)
		}
		if got := ordinals(d); !reflect.DeepEqual(got, want) {
			t.Fatalf("discovery %d: records %v, want %v", round, got, want)
		}
	}
	// Round 1: early (dropped) and scanned; round 2: scanned only.
	if k := g.count("crm/notes.json"); k != 3 {
		t.Errorf("large notes blob opened %d times over two discoveries, want 3", k)
	}
	if k := g.count("crm/cases.csv"); k != 2 {
		t.Errorf("cases opened %d times over two discoveries, want 2", k)
	}
}
