package blobdataset

import (
	"reflect"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/sources"
)

// TestReadTakesRecentRecords (Azurite): a Read soon after the discovery
// that matched the records takes them from the connector's memory, with
// one conditional GET of a byte per blob instead of the ranged downloads
// (and a CSV blob's header), and emits exactly what the downloads give. A
// replaced or deleted blob still fails with sources.ErrChanged; our own
// rewrite of a blob forgets its records (and only its); records older than
// recentTTL, or beyond recentBytes, are downloaded again.
func TestReadTakesRecentRecords(t *testing.T) {
	datasets := []sources.Dataset{contactsDataset(), casesDataset(), notesDataset()}
	names := []string{"contacts", "cases", "notes"}
	setup := func(t *testing.T) (*fixture, *Connector, *getLog, *sources.Discovery) {
		f := newFixture(t)
		f.putCRM()
		c, log := f.loggedConnector(datasets...)
		return f, c, log, f.discover(c, ann)
	}

	t.Run("taken from memory, the same records", func(t *testing.T) {
		f, c, log, disc := setup(t)
		plain := f.connectorWith([]Option{WithoutRecentRecords()}, datasets...)
		for _, name := range names {
			dm := locationsOf(t, disc, name, true)
			want := mustRead(t, plain, dm)
			if len(want) == 0 {
				t.Fatalf("%s: no records", name)
			}
			log.take()
			got := mustRead(t, c, dm)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s from memory:\n%q\ndownloaded:\n%q", name, got, want)
			}
			gets := log.take()
			checkRanged(t, gets)
			if len(gets) != len(dm.Locations) || gets[0].bytes != 1 {
				t.Errorf("%s: downloads %+v, want one GET of 1 byte per blob (%d)", name, gets, len(dm.Locations))
			}
		}
	})

	t.Run("a replaced blob is refused", func(t *testing.T) {
		f, c, _, disc := setup(t)
		f.put("crm/cases.csv", casesCSV) // the same bytes, a new version
		wantChanged(t, c, locationsOf(t, disc, "cases", true))
		f.del("crm/contacts.ndjson")
		wantChanged(t, c, locationsOf(t, disc, "contacts", true))
	})

	t.Run("our rewrite forgets the blob", func(t *testing.T) {
		f, c, _, disc := setup(t)
		dm := locationsOf(t, disc, "contacts", true)
		if _, ok := c.recent.get(f.c, dm.Locations[0]); !ok {
			t.Fatal("the discovery kept no records")
		}
		keep := func(_ int64, r sources.Record) (*sources.Record, error) { return &r, nil }
		if _, err := c.Rewrite(f.ctx, "contacts", dm.Locations[0], keep); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.recent.get(f.c, dm.Locations[0]); ok {
			t.Error("records of the rewritten blob still kept")
		}
		other := locationsOf(t, disc, "cases", true)
		if _, ok := c.recent.get(f.c, other.Locations[0]); !ok {
			t.Error("the rewrite of contacts dropped the records of cases")
		}
	})

	t.Run("too old or too many are downloaded", func(t *testing.T) {
		f, c, log, disc := setup(t)
		dm := locationsOf(t, disc, "notes", true)
		now := time.Now()
		c.recent.now = func() time.Time { return now.Add(recentTTL + time.Second) }
		log.take()
		mustRead(t, c, dm)
		if gets := log.take(); len(gets) == 0 || gets[0].bytes <= 1 {
			t.Errorf("records older than recentTTL: downloads %+v, want the records' ranges", gets)
		}

		old := recentBytes
		recentBytes = 600
		t.Cleanup(func() { recentBytes = old })
		c2, log2 := f.loggedConnector(datasets...)
		disc = f.discover(c2, ann)
		if c2.recent.bytes > recentBytes || c2.recent.bytes == 0 {
			t.Errorf("kept %d bytes, bound %d", c2.recent.bytes, recentBytes)
		}
		var downloaded bool
		for _, name := range names {
			log2.take()
			mustRead(t, c2, locationsOf(t, disc, name, true))
			for _, g := range log2.take() {
				downloaded = downloaded || g.bytes > 1
			}
		}
		if !downloaded {
			t.Error("every dataset read from memory although the bound keeps only a few records")
		}
	})
}

// The cache's bookkeeping: a record forgotten and kept again is evicted
// by its new place in the order, not its old one, and the bytes it counts
// stay exact.
func TestRecentRecordsForgetAndKeepAgain(t *testing.T) {
	r := newRecentRecords()
	rec := func(v string) []matchedRecord {
		return []matchedRecord{{offset: 0, length: 10, rec: sources.Record{Fields: []sources.Field{{Name: "v", Value: v}}}}}
	}
	loc := sources.Location{Blob: "b", ETag: "e", Ordinals: []int64{0}, Offsets: []int64{0}, Lengths: []int64{10}}
	r.put("c", "other", "e", rec("x"))
	r.put("c", "b", "e", rec("old"))
	r.forget("c", "b")
	r.put("c", "b", "e", rec("new"))
	if r.bytes != 2*recordSize(10) {
		t.Fatalf("bytes %d, want %d", r.bytes, 2*recordSize(10))
	}
	r.evictOldest() // other's
	r.evictOldest() // the forgotten place of b: the kept-again entry stays
	got, ok := r.get("c", loc)
	if !ok || got[0].Fields[0].Value != "new" {
		t.Fatalf("after evicting the old place: %v %v, want the new record", got, ok)
	}
	r.evictOldest()
	if _, ok := r.get("c", loc); ok || r.bytes != 0 || len(r.order) != 0 {
		t.Fatalf("after evicting its own place: still kept %v, bytes %d, order %d", ok, r.bytes, len(r.order))
	}
}
