// Package sourcestest is the conformance suite every connector runs, in the
// style of the Go CDK's drivertest: one scenario (people, their notes, the
// replies to the notes), loaded by each connector's own harness into its
// own kind of system, and one set of contract tests over it: discovery by
// each identifier kind and nothing of the decoys, relations to a fixed
// point from the subject's own records only, mentions, reads in location
// order, rewrites refused on a concurrent change, waiting systems and
// cancellation.
//
// A new kind of source passes this suite before it is wired into the app:
//
//	func TestConformance(t *testing.T) { sourcestest.Run(t, myHarness{}) }
package sourcestest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/sources"
)

// Record is one record of the scenario, as field → value (strings).
type Record map[string]string

// Scenario is what every harness loads: three datasets, "people" (key
// "pid": email, phone, name), "notes" (key "nid": pid → people.pid, free
// text "text") and "replies" (key "rid": nid → notes.nid, text "text").
// Ann (P1) has two notes and their replies; Bob's note N2 mentions Ann's
// address, and its reply R2 is Bob's alone; Joann and an ".au" address
// are near misses.
var Scenario = map[string][]Record{
	"people": {
		{"pid": "P1", "email": "ann@x.example", "phone": "+1 425 555 0100", "name": "Ann"},
		{"pid": "P2", "email": "bob@y.example", "phone": "+1 425 555 0101", "name": "Bob"},
		{"pid": "P3", "email": "joann@x.example", "phone": "+1 425 555 0109", "name": "Joann"},
		{"pid": "P4", "email": "ann@x.example.au", "phone": "+61 2 9999 0100", "name": "Ann"},
	},
	"notes": {
		{"nid": "N1", "pid": "P1", "text": "called back"},
		{"nid": "N2", "pid": "P2", "text": "Bob forwarded a mail from ann@x.example"},
		{"nid": "N3", "pid": "P1", "text": "refund sent"},
		{"nid": "N4", "pid": "P3", "text": "joann@x.example asked twice"},
	},
	"replies": {
		{"rid": "R1", "nid": "N1", "text": "ok"},
		{"rid": "R2", "nid": "N2", "text": "thanks"},
		{"rid": "R3", "nid": "N3", "text": "done"},
		{"rid": "R4", "nid": "N4", "text": "no"},
	},
}

// Keys are the key fields of the scenario's datasets.
var Keys = map[string]string{"people": "pid", "notes": "nid", "replies": "rid"}

// Datasets is the scenario's sources config, without the parts that say
// where each dataset lives (a harness adds them: container and blob,
// table, entity set, connection).
func Datasets() []sources.Dataset {
	facts := sources.Facts{Categories: []string{"test data"}, Purposes: []string{"conformance"}, Retention: "none", Source: "the suite"}
	return []sources.Dataset{
		{Name: "people", Key: "pid", Facts: facts, Identifiers: []sources.Identifier{
			{Field: "email", Kind: sources.KindEmail}, {Field: "phone", Kind: sources.KindPhone},
			{Field: "pid", Kind: sources.KindID, IDName: "personId"}, {Field: "name", Kind: sources.KindName}}},
		{Name: "notes", Key: "nid", Facts: facts, FreeText: []string{"text"},
			Relations: []sources.Relation{{Field: "pid", References: "people", ReferencesField: "pid"}}},
		{Name: "replies", Key: "rid", Facts: facts,
			Relations: []sources.Relation{{Field: "nid", References: "notes", ReferencesField: "nid"}}},
	}
}

// Fixture is one harness's system, loaded with Scenario.
type Fixture struct {
	// Connector reaches it.
	Connector sources.Connector
	// Remove deletes one record behind the connector's back (another
	// writer), by dataset and key.
	Remove func(t *testing.T, dataset, key string)
	// Pending, when set, makes the system answer the next discovery later
	// (a system that supports it: sources.ErrPending).
	Pending func(t *testing.T)
}

// Harness opens fixtures of one kind of source.
type Harness interface {
	// Open loads Scenario into a fresh system and returns the fixture.
	Open(t *testing.T) Fixture
	// Delegates reports whether the system finds and changes the records
	// itself (a webhook): the suite then checks what the system answers,
	// not how the connector matches.
	Delegates() bool
}

var (
	ann      = sources.Subject{Emails: []string{"ann@x.example"}}
	annPhone = sources.Subject{Phones: []string{"14255550100"}}
	annID    = sources.Subject{IDs: map[string]string{"personId": "P1"}}
	bob      = sources.Subject{Emails: []string{"bob@y.example"}}
	nobody   = sources.Subject{Emails: []string{"nobody@x.example", "ann@x.exampl"}, Phones: []string{"14255550199"}, IDs: map[string]string{"personId": "P9"}}
)

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Run("DiscoverByEachIdentifierKind", func(t *testing.T) { testDiscover(t, h) })
	t.Run("ReadInLocationOrder", func(t *testing.T) { testReadOrder(t, h) })
	t.Run("ChangedDataIsRefused", func(t *testing.T) { testChanged(t, h) })
	t.Run("RewriteChangesOnlyTheEditedRecords", func(t *testing.T) { testRewrite(t, h) })
	t.Run("WaitingSystem", func(t *testing.T) { testPending(t, h) })
	t.Run("Cancellation", func(t *testing.T) { testCancel(t, h) })
}

// found reads a discovery back: the keys of every dataset's records, and
// which of them only mention the subject.
func found(t *testing.T, c sources.Connector, s sources.Subject, d *sources.Discovery) (keys map[string][]string, mentions map[string][]string) {
	t.Helper()
	keys, mentions = map[string][]string{}, map[string][]string{}
	for _, dm := range d.Datasets {
		if dm.Error != "" {
			t.Fatalf("dataset %s could not be searched: %s", dm.Dataset, dm.Error)
		}
		var n int64
		for _, loc := range dm.Locations {
			one := sources.DatasetMatches{Dataset: dm.Dataset, Records: int64(max(len(loc.Ordinals), len(loc.Keys))), Locations: []sources.Location{loc}}
			i := 0
			err := c.Read(reqCtx(s), one, func(rec sources.Record) error {
				k := keyOf(rec, Keys[dm.Dataset])
				keys[dm.Dataset] = append(keys[dm.Dataset], k)
				ordinal := int64(i)
				if len(loc.Keys) == 0 && i < len(loc.Ordinals) {
					ordinal = loc.Ordinals[i]
				}
				if loc.Mentioned(ordinal) {
					mentions[dm.Dataset] = append(mentions[dm.Dataset], k)
				}
				i++
				n++
				return nil
			})
			if err != nil {
				t.Fatalf("Read %s: %v", dm.Dataset, err)
			}
		}
		if n != dm.Records {
			t.Errorf("dataset %s: Records %d, but Read emitted %d", dm.Dataset, dm.Records, n)
		}
	}
	for _, m := range []map[string][]string{keys, mentions} {
		for ds := range m {
			slices.Sort(m[ds])
		}
	}
	return keys, mentions
}

func keyOf(rec sources.Record, key string) string {
	for _, f := range rec.Fields {
		if strings.EqualFold(f.Name, key) {
			return fmt.Sprint(f.Value)
		}
	}
	return "?"
}

// reqCtx carries the request a Discover or Read serves, as the pipeline
// passes it (a connector that asks its system again needs the subject).
func reqCtx(s sources.Subject) context.Context {
	return sources.WithRequest(context.Background(), "r019a00000000000000000000000a", s)
}

func discover(t *testing.T, c sources.Connector, s sources.Subject) *sources.Discovery {
	t.Helper()
	d, err := c.Discover(reqCtx(s), s)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	return d
}

func testDiscover(t *testing.T, h Harness) {
	f := h.Open(t)
	own := map[string][]string{"people": {"P1"}, "notes": {"N1", "N3"}, "replies": {"R1", "R3"}}
	withMention := map[string][]string{"people": {"P1"}, "notes": {"N1", "N2", "N3"}, "replies": {"R1", "R3"}}
	for _, tc := range []struct {
		name     string
		subject  sources.Subject
		want     map[string][]string
		mentions map[string][]string
	}{
		{"email", ann, withMention, map[string][]string{"notes": {"N2"}}},
		{"phone", annPhone, own, map[string][]string{}},
		{"id", annID, own, map[string][]string{}},
		{"bob", bob, map[string][]string{"people": {"P2"}, "notes": {"N2"}, "replies": {"R2"}}, map[string][]string{}},
		{"nobody", nobody, map[string][]string{}, map[string][]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if h.Delegates() && tc.name == "id" {
				t.Skip("a delegating system matches ids by its own fields")
			}
			keys, mentions := found(t, f.Connector, tc.subject, discover(t, f.Connector, tc.subject))
			want := tc.want
			if h.Delegates() {
				// The system answers what it finds by its own identifier
				// fields (people's); it follows none of our relations.
				want = map[string][]string{"people": tc.want["people"]}
			}
			if !equal(keys, want) {
				t.Errorf("discovered %v, want %v", keys, want)
			}
			if !h.Delegates() && !equal(mentions, tc.mentions) {
				t.Errorf("mention-only records %v, want %v (relations never run from them: R2 is Bob's)", mentions, tc.mentions)
			}
		})
	}
	// The same data gives the same result.
	a, b := discover(t, f.Connector, ann), discover(t, f.Connector, ann)
	ka, _ := found(t, f.Connector, ann, a)
	kb, _ := found(t, f.Connector, ann, b)
	if !equal(ka, kb) {
		t.Errorf("two discoveries of the same data differ: %v and %v", ka, kb)
	}
}

func equal(a, b map[string][]string) bool {
	clean := func(m map[string][]string) map[string][]string {
		out := map[string][]string{}
		for k, v := range m {
			if len(v) > 0 {
				out[k] = v
			}
		}
		return out
	}
	a, b = clean(a), clean(b)
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func testReadOrder(t *testing.T, h Harness) {
	f := h.Open(t)
	d := discover(t, f.Connector, ann)
	for _, dm := range d.Datasets {
		if dm.Records == 0 {
			continue
		}
		var got []string
		if err := f.Connector.Read(reqCtx(ann), dm, func(rec sources.Record) error {
			got = append(got, keyOf(rec, Keys[dm.Dataset]))
			return nil
		}); err != nil {
			t.Fatalf("Read %s: %v", dm.Dataset, err)
		}
		if int64(len(got)) != dm.Records {
			t.Errorf("%s: Read emitted %d records for %d", dm.Dataset, len(got), dm.Records)
		}
		// Location order: by ordinal or key as the locations list them;
		// the scenario's keys sort the way its records are stored.
		if !slices.IsSorted(got) {
			t.Errorf("%s: Read emitted %v, not in location order", dm.Dataset, got)
		}
		// A Read that stops early returns the callback's error.
		stop := errors.New("stop")
		if err := f.Connector.Read(reqCtx(ann), dm, func(sources.Record) error { return stop }); !errors.Is(err, stop) {
			t.Errorf("%s: Read returned %v, want the callback's error", dm.Dataset, err)
		}
	}
}

func testChanged(t *testing.T, h Harness) {
	if h.Delegates() {
		t.Skip("a delegating system keeps no positions")
	}
	f := h.Open(t)
	d := discover(t, f.Connector, ann)
	notes := datasetOf(t, d, "notes")
	f.Remove(t, "notes", "N1")
	if err := f.Connector.Read(reqCtx(ann), notes, func(sources.Record) error { return nil }); !errors.Is(err, sources.ErrChanged) {
		t.Errorf("Read after a record it names was removed: %v, want sources.ErrChanged", err)
	}
	rw, ok := f.Connector.(sources.Rewriter)
	if !ok {
		return
	}
	// A rewrite from the stale positions either refuses (ErrChanged) and
	// changes nothing, or, for a system that changes record by record and
	// must let a retry skip what an earlier attempt deleted (Dataverse),
	// edits the records that are still there and never brings back the
	// one that is gone.
	var passed []string
	_, err := rw.Rewrite(context.Background(), "notes", notes.Locations[0], func(_ int64, rec sources.Record) (*sources.Record, error) {
		passed = append(passed, keyOf(rec, "nid"))
		out := sources.Record{Fields: slices.Clone(rec.Fields)}
		for i := range out.Fields {
			if strings.EqualFold(out.Fields[i].Name, "text") {
				out.Fields[i].Value = "edited"
			}
		}
		return &out, nil
	})
	keys, _ := found(t, f.Connector, ann, discover(t, f.Connector, ann))
	if slices.Contains(keys["notes"], "N1") || slices.Contains(passed, "N1") {
		t.Errorf("the removed record came back or was edited: notes %v, edited %v", keys["notes"], passed)
	}
	n3 := textOf(t, f.Connector, annID, discover(t, f.Connector, annID), "notes", "N3")
	switch {
	case errors.Is(err, sources.ErrChanged):
		if n3 != "refund sent" {
			t.Errorf("a refused rewrite changed N3 to %q", n3)
		}
	case err == nil:
		if n3 != "edited" {
			t.Errorf("a rewrite that went ahead left N3 as %q", n3)
		}
	default:
		t.Errorf("Rewrite after a record it names was removed: %v, want sources.ErrChanged or a rewrite of what remains", err)
	}
}

// textOf is the text field of one discovered record.
func textOf(t *testing.T, c sources.Connector, s sources.Subject, d *sources.Discovery, dataset, key string) string {
	t.Helper()
	text := ""
	err := c.Read(reqCtx(s), datasetOf(t, d, dataset), func(rec sources.Record) error {
		if keyOf(rec, Keys[dataset]) == key {
			for _, f := range rec.Fields {
				if strings.EqualFold(f.Name, "text") {
					text = fmt.Sprint(f.Value)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return text
}

func testRewrite(t *testing.T, h Harness) {
	f := h.Open(t)
	rw, ok := f.Connector.(sources.Rewriter)
	if !ok || h.Delegates() {
		t.Skip("the connector does not rewrite records")
	}
	d := discover(t, f.Connector, ann)
	notes := datasetOf(t, d, "notes")
	var seen []string
	for _, loc := range notes.Locations {
		_, err := rw.Rewrite(context.Background(), "notes", loc, func(ordinal int64, rec sources.Record) (*sources.Record, error) {
			k := keyOf(rec, "nid")
			seen = append(seen, k)
			switch {
			case loc.Mentioned(ordinal):
				if k != "N2" {
					t.Errorf("record %s passed as a mention", k)
				}
				return &rec, nil
			case k == "N1":
				return nil, nil
			}
			out := sources.Record{Fields: slices.Clone(rec.Fields)}
			for i := range out.Fields {
				if strings.EqualFold(out.Fields[i].Name, "text") {
					out.Fields[i].Value = "[redacted]"
				}
			}
			return &out, nil
		})
		if err != nil {
			t.Fatalf("Rewrite: %v", err)
		}
	}
	slices.Sort(seen)
	if !slices.Equal(seen, []string{"N1", "N2", "N3"}) {
		t.Errorf("Rewrite passed %v to edit, want the discovered N1 N2 N3", seen)
	}
	// N1 is gone, N3 redacted, N2 and everyone else's records as they were;
	// a second identical rewrite (a retry) does not fail on what is done.
	bobNotes, _ := found(t, f.Connector, bob, discover(t, f.Connector, bob))
	if !slices.Equal(bobNotes["notes"], []string{"N2"}) || !slices.Equal(bobNotes["replies"], []string{"R2"}) {
		t.Errorf("Bob's records after rewriting Ann's: %v", bobNotes)
	}
	after := discover(t, f.Connector, annID)
	keys, _ := found(t, f.Connector, annID, after)
	if !slices.Equal(keys["notes"], []string{"N3"}) || slices.Contains(keys["replies"], "R1") {
		t.Errorf("after the rewrite Ann's notes are %v, replies %v; want N3 only (N1 and its reply unlinked)", keys["notes"], keys["replies"])
	}
	err := f.Connector.Read(reqCtx(annID), datasetOf(t, after, "notes"), func(rec sources.Record) error {
		for _, fl := range rec.Fields {
			if strings.EqualFold(fl.Name, "text") && fl.Value != "[redacted]" {
				t.Errorf("N3's text is %v after the rewrite", fl.Value)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func datasetOf(t *testing.T, d *sources.Discovery, name string) sources.DatasetMatches {
	t.Helper()
	for _, dm := range d.Datasets {
		if dm.Dataset == name {
			if dm.Records == 0 || len(dm.Locations) == 0 {
				t.Fatalf("dataset %s: nothing discovered", name)
			}
			return dm
		}
	}
	t.Fatalf("no dataset %s in the discovery", name)
	return sources.DatasetMatches{}
}

func testPending(t *testing.T, h Harness) {
	f := h.Open(t)
	if f.Pending == nil {
		t.Skip("the system always answers at once")
	}
	f.Pending(t)
	_, err := f.Connector.Discover(sources.WithRequest(context.Background(), "r019a00000000000000000000000b", ann), ann)
	if !errors.Is(err, sources.ErrPending) {
		t.Fatalf("Discover of a system that answers later: %v, want sources.ErrPending", err)
	}
}

func testCancel(t *testing.T, h Harness) {
	f := h.Open(t)
	ctx, cancel := context.WithCancel(sources.WithRequest(context.Background(), "r019a00000000000000000000000c", ann))
	cancel()
	if _, err := f.Connector.Discover(ctx, ann); !errors.Is(err, context.Canceled) {
		t.Errorf("Discover with a cancelled context: %v, want context.Canceled", err)
	}
}
