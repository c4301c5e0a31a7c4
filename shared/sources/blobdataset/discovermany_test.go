package blobdataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/sources"
)

// checkManyEqualsOne runs DiscoverMany over subjects and checks that result
// i is exactly Discover(subjects[i]); it returns the results.
func checkManyEqualsOne(t *testing.T, c *Connector, subjects []sources.Subject) []*sources.Discovery {
	t.Helper()
	many, err := c.DiscoverMany(context.Background(), subjects)
	if err != nil {
		t.Fatalf("DiscoverMany: %v", err)
	}
	if len(many) != len(subjects) {
		t.Fatalf("DiscoverMany returned %d results for %d subjects", len(many), len(subjects))
	}
	for i, s := range subjects {
		one, err := c.Discover(context.Background(), s)
		if err != nil {
			t.Fatalf("Discover(subject %d): %v", i, err)
		}
		if !reflect.DeepEqual(many[i], one) {
			t.Errorf("subject %d: DiscoverMany gives\n%+v\nDiscover gives\n%+v", i, many[i].Datasets, one.Datasets)
		}
		for _, m := range many[i].Datasets {
			checkConsistent(t, m)
		}
	}
	return many
}

// TestDiscoverManyCRM discovers every subject of the CRM cases at once (and
// some twice, and in another order): each result is that subject's own
// Discover result and the expected records.
func TestDiscoverManyCRM(t *testing.T) {
	f := newFixture(t)
	f.putCRM()
	for name, c := range map[string]*Connector{
		"forward": f.connector(contactsDataset(), casesDataset(), notesDataset()),
		"reverse": f.connector(notesDataset(), casesDataset(), contactsDataset()),
	} {
		t.Run(name, func(t *testing.T) {
			var subjects []sources.Subject
			var want []map[string][]int64
			for _, tt := range crmCases {
				subjects = append(subjects, tt.subject)
				want = append(want, tt.want)
			}
			// Repeats, in reverse order.
			for i := len(crmCases) - 1; i >= 0; i -= 2 {
				subjects = append(subjects, crmCases[i].subject)
				want = append(want, crmCases[i].want)
			}
			got := checkManyEqualsOne(t, c, subjects)
			for i := range subjects {
				checkOrdinals(t, got[i], want[i])
			}
		})
	}
}

// The shared-records fixture: two people on the same case (one as the
// contact, one in copy), a case that mentions both, notes under shared and
// own cases, and decoys of both.
const sharedContacts = `{"contactid":"C1","email":"ann@x.example","phone":"+1 425 555 0100"}
{"contactid":"C2","email":"Bob@Y.example","phone":"+1 425 555 0101"}
{"contactid":"C3","email":"joann@x.example"}

{"contactid":"C4","email":"carol@z.example","notes":"cc bob@y.example"}
`

const sharedCases = "case_id,contact_id,cc_contact_id,description\n" +
	/* 0 */ "K1,C1,C2,Ann and Bob together\n" + // both
	/* 1 */ "K2,C2,,Bob alone\n" + // bob
	/* 2 */ "K3,C3,C1,\"joann's case, ann in copy\"\n" + // ann (cc)
	/* 3 */ "K4,C4,,\"Mentions ann@x.example and BOB@y.example.\"\n" + // carol; ann and bob by free text
	/* 4 */ "K5,C4,,call 425-555-0101\n" + // carol; bob by free-text phone
	/* 5 */ "K6,C3,,\"decoys: joann@x.example, bob@y.example.org, 425-555-01011\"\n" // nobody's but joann's

const sharedNotes = `[{"n":1,"case":"K1"},{"n":2,"case":"K2"},{"n":3,"case":"K6"},{"n":4,"case":"K4"},{"n":5,"case":"K3"},
{"n":6,"case":"K5","reply_to":null},{"n":7,"case":"K9","reply_to":1},{"n":8,"case":"K9","reply_to":7}]`

func sharedDatasets() []sources.Dataset {
	contacts := contactsDataset()
	contacts.Blob = "shared/contacts.ndjson"
	return []sources.Dataset{
		contacts,
		{
			Name: "cases", Blob: "shared/cases.csv", Format: sources.FormatCSV, Key: "case_id",
			FreeText: []string{"description"},
			Relations: []sources.Relation{
				{Field: "contact_id", References: "contacts", ReferencesField: "contactid"},
				{Field: "cc_contact_id", References: "contacts", ReferencesField: "contactid"},
			},
		},
		{
			Name: "notes", Blob: "shared/notes.json", Format: sources.FormatJSONArray,
			Relations: []sources.Relation{
				{Field: "case", References: "cases", ReferencesField: "case_id"},
				{Field: "reply_to", References: "notes", ReferencesField: "n"}, // a reply belongs to whoever the note does
			},
		},
	}
}

var (
	annShared   = sources.Subject{Emails: []string{"ann@x.example"}, Phones: []string{"14255550100"}}
	bobShared   = sources.Subject{Emails: []string{"bob@y.example"}, Phones: []string{"14255550101"}}
	carolShared = sources.Subject{Emails: []string{"carol@z.example"}}
)

// TestDiscoverManySharedRecords: people who share records each get them,
// through relations, free text and relation chains, in one pass per
// dataset and round.
func TestDiscoverManySharedRecords(t *testing.T) {
	f := newFixture(t)
	f.put("shared/contacts.ndjson", sharedContacts)
	f.put("shared/cases.csv", sharedCases)
	f.put("shared/notes.json", sharedNotes)
	c := f.connector(sharedDatasets()...)
	subjects := []sources.Subject{
		annShared, bobShared, carolShared,
		{IDs: map[string]string{"contactId": "C2"}}, // bob by his id only
		{Emails: []string{"nobody@x.example"}},
		{},
		bobShared,
	}
	// Carol's cases K4 and K5 mention Ann and Bob: theirs to see, but the
	// notes under those cases are Carol's alone (relations run only from a
	// person's own records).
	want := []map[string][]int64{
		{"contacts": {0}, "cases": {0, 2, 3}, "notes": {0, 4, 6, 7}},
		{"contacts": {1}, "cases": {0, 1, 3, 4}, "notes": {0, 1, 6, 7}},
		{"contacts": {3}, "cases": {3, 4}, "notes": {3, 5}},
		{"contacts": {1}, "cases": {0, 1}, "notes": {0, 1, 6, 7}},
		{"contacts": nil, "cases": nil, "notes": nil},
		{"contacts": nil, "cases": nil, "notes": nil},
		{"contacts": {1}, "cases": {0, 1, 3, 4}, "notes": {0, 1, 6, 7}},
	}
	got := checkManyEqualsOne(t, c, subjects)
	for i := range subjects {
		checkOrdinals(t, got[i], want[i])
	}
}

func TestDiscoverManyEmpty(t *testing.T) {
	opened := 0
	st := &memStore{blobs: map[string]string{"a.ndjson": `{"email":"ann@x.example"}`}, onOpen: func(_ context.Context, _ string, r io.ReadCloser) (io.ReadCloser, error) {
		opened++
		return r, nil
	}}
	c := localConnector(scanConfig(sources.Dataset{Name: "a", Blob: "a.ndjson", Format: sources.FormatNDJSON,
		Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}}}), st, 4)
	got, err := c.DiscoverMany(context.Background(), nil)
	if err != nil || len(got) != 0 || opened != 0 {
		t.Errorf("DiscoverMany(nil) = %v, %v after opening %d blobs; want no results, no reads", got, err, opened)
	}
}

// randomDatasets writes a random CRM-like store: people (NDJSON, several
// blobs under a prefix), tickets (CSV) relating to people and in copy,
// messages (JSON arrays) relating to tickets and replying to each other,
// with decoys of the subjects' identifiers everywhere.
func randomDatasets(rng *rand.Rand, people int) (*memStore, []sources.Dataset, []sources.Subject) {
	email := func(i int) string { return fmt.Sprintf("p%d@x.example", i) }
	phone := func(i int) string { return fmt.Sprintf("1425555%04d", i) }
	st := &memStore{blobs: map[string]string{}}
	mention := func(i int) string {
		switch rng.IntN(6) {
		case 0:
			return strings.ToUpper(email(i))
		case 1:
			return "x" + email(i) // decoy
		case 2:
			return email(i) + ".org" // decoy
		case 3:
			return fmt.Sprintf("(425) 555-%04d", i)
		case 4:
			return fmt.Sprintf("425 555 %04d1", i) // decoy
		}
		return email(i) + "."
	}
	ord := 0
	for b := range 1 + rng.IntN(5) {
		var sb strings.Builder
		for range rng.IntN(15) {
			i := rng.IntN(people)
			e := email(i)
			if rng.IntN(5) == 0 {
				e = mention(i)
			}
			fmt.Fprintf(&sb, `{"id":"P%d","email":%q,"phone":%q,"note":%q}`+"\n", ord, e, "+"+phone(rng.IntN(people)), mention(rng.IntN(people)))
			if rng.IntN(6) == 0 {
				sb.WriteString("\n")
			}
			ord++
		}
		st.blobs[fmt.Sprintf("people/%02d.ndjson", b)] = sb.String()
	}
	var tickets strings.Builder
	tickets.WriteString("tid,owner,cc,text\n")
	nt := rng.IntN(25)
	for k := range nt {
		fmt.Fprintf(&tickets, "T%d,P%d,P%d,\"%s\"\n", k, rng.IntN(ord+1), rng.IntN(ord+3), mention(rng.IntN(people)))
	}
	st.blobs["tickets.csv"] = tickets.String()
	for b := range 2 {
		var msgs []string
		for k := range rng.IntN(12) {
			msgs = append(msgs, fmt.Sprintf(`{"mid":%d,"ticket":"T%d","reply_to":%d}`, 100*b+k, rng.IntN(nt+2), 100*rng.IntN(2)+rng.IntN(12)))
		}
		st.blobs[fmt.Sprintf("msgs/%d.json", b)] = "[" + strings.Join(msgs, ",\n") + "]"
	}
	datasets := []sources.Dataset{
		{Name: "msgs", Prefix: "msgs/", Format: sources.FormatJSONArray, Relations: []sources.Relation{
			{Field: "ticket", References: "tickets", ReferencesField: "tid"},
			{Field: "reply_to", References: "msgs", ReferencesField: "mid"},
		}},
		{Name: "people", Prefix: "people/", Format: sources.FormatNDJSON,
			Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}, {Field: "phone", Kind: sources.KindPhone}, {Field: "id", Kind: sources.KindID, IDName: "personId"}},
			FreeText:    []string{"note"}},
		{Name: "tickets", Blob: "tickets.csv", Format: sources.FormatCSV, FreeText: []string{"text"}, Relations: []sources.Relation{
			{Field: "owner", References: "people", ReferencesField: "id"},
			{Field: "cc", References: "people", ReferencesField: "id"},
		}},
	}
	var subjects []sources.Subject
	for range 1 + rng.IntN(8) {
		i := rng.IntN(people)
		var s sources.Subject
		switch rng.IntN(4) {
		case 0:
			s.Emails = []string{email(i)}
		case 1:
			s.Phones = []string{phone(i)}
		case 2:
			s.IDs = map[string]string{"personId": fmt.Sprintf("P%d", rng.IntN(ord+1))}
		default:
			s.Emails, s.Phones = []string{email(i)}, []string{phone(i)}
		}
		subjects = append(subjects, s)
	}
	return st, datasets, subjects
}

// naiveDiscover is a reference discovery: every record of every blob is
// parsed and matched (no prefilter), datasets are rescanned until nothing
// changes.
func naiveDiscover(t *testing.T, cfg *sources.Config, st *memStore, subj sources.Subject) map[string][]int64 {
	t.Helper()
	keys := keySet{}
	for ds, fields := range cfg.SeedKeys(subj) {
		for f, vals := range fields {
			for _, v := range vals {
				keys.add(ds, f, v)
			}
		}
	}
	var out map[string][]int64
	for changed := true; changed; {
		changed = false
		out = map[string][]int64{}
		for i := range cfg.Datasets {
			d := &cfg.Datasets[i]
			m := rules(cfg, d, subj, keys)
			names, _ := st.list(context.Background(), "", d.Prefix)
			if d.Blob != "" {
				names = []string{d.Blob}
			}
			sort.Strings(names)
			var all []int64
			for _, name := range names {
				err := iterate(context.Background(), strings.NewReader(st.blobs[name]), d.Format, func(r *rawRecord) error {
					fields, err := r.fields()
					if err != nil {
						return err
					}
					if how := m.Match(sources.MapFields(fields)); how != sources.NoMatch {
						all = append(all, r.ordinal)
						if how != sources.Own {
							return nil
						}
						for _, o := range cfg.Datasets {
							for _, rel := range o.Relations {
								if rel.References != d.Name {
									continue
								}
								sources.PathStrings(fields, rel.ReferencesField, func(v string) bool {
									if v = strings.TrimSpace(v); v != "" && keys.add(d.Name, rel.ReferencesField, v) {
										changed = true
									}
									return true
								})
							}
						}
					}
					return nil
				})
				if err != nil {
					t.Fatalf("naive discovery: %v", err)
				}
			}
			out[d.Name] = all
		}
	}
	return out
}

// TestDiscoverManyRandom compares DiscoverMany with Discover, and both with
// the naive reference, on random stores full of decoys and relations
// (ordinals per dataset; blobs are listed in name order in both).
func TestDiscoverManyRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	multi := 0
	for iter := range 300 {
		st, datasets, subjects := randomDatasets(rng, 6)
		cfg := scanConfig(datasets[0])
		cfg.Datasets = datasets
		c := localConnector(cfg, st, 1+rng.IntN(4))
		many := checkManyEqualsOne(t, c, subjects)
		for i, s := range subjects {
			want := naiveDiscover(t, cfg, st, s)
			got := ordinals(many[i])
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("iter %d subject %+v: got %v, naive reference %v\nblobs %q", iter, s, got, want, st.blobs)
			}
			if many[i].Total() > 0 {
				multi++
			}
		}
	}
	if multi < 300 {
		t.Errorf("weak test: only %d subjects had records", multi)
	}
}

// TestDiscoverManyBenchData checks the combined prefilter on realistic
// data: 60 subjects (emails and phones) of a population of 300 over 512 KiB
// of the benchmark generator's activity log (decoys included), against the
// naive reference (every line parsed), and against Discover for a few.
func TestDiscoverManyBenchData(t *testing.T) {
	const people = 300
	path := filepath.Join(t.TempDir(), "activity.ndjson")
	if err := writePopulationData(path, 512<<10, people); err != nil {
		t.Fatal(err)
	}
	subjects := populationSubjects(60, true, people)
	// Two more: one by phone only, one by email only.
	subjects = append(subjects, sources.Subject{Phones: subjects[0].Phones}, sources.Subject{Emails: subjects[1].Emails})
	d := scanDataset(filepath.Base(path), "")
	cfg := scanConfig(d)
	c := localConnector(cfg, fileStore{dir: filepath.Dir(path)}, 4)
	many, err := c.DiscoverMany(context.Background(), subjects)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st := &memStore{blobs: map[string]string{d.Blob: string(data)}}
	total := int64(0)
	for i, s := range subjects {
		want := naiveDiscover(t, cfg, st, s)
		if got := ordinals(many[i]); !reflect.DeepEqual(got, want) {
			t.Fatalf("subject %d: got %v, naive reference %v", i, got, want)
		}
		total += many[i].Total()
	}
	if total < 200 {
		t.Errorf("weak test: %d records matched for %d subjects", total, len(subjects))
	}
	checkManyEqualsOne(t, c, subjects[:3])
}

func TestDependencyLevels(t *testing.T) {
	ds := func(name string, refs ...string) sources.Dataset {
		d := sources.Dataset{Name: name}
		for _, r := range refs {
			d.Relations = append(d.Relations, sources.Relation{Field: r + "id", References: r})
		}
		return d
	}
	cfg := &sources.Config{Datasets: []sources.Dataset{
		ds("surveys", "cases"), ds("contacts"), ds("cases", "contacts"), ds("agents"),
		ds("activity", "contacts"), ds("messages", "messages", "cases"), ds("x", "y"), ds("y", "x"),
	}}
	var got []string
	for _, level := range dependencyLevels(cfg.Order()) {
		var names []string
		for _, d := range level {
			names = append(names, d.Name)
		}
		got = append(got, strings.Join(names, " "))
	}
	// x and y reference each other: in order y comes first (visited from
	// x), so x follows y a level later and y takes x's keys on the next
	// pass, as when scanned one by one.
	want := []string{"contacts agents y", "cases activity x", "surveys messages"}
	if !slices.Equal(got, want) {
		t.Errorf("levels %q, want %q", got, want)
	}
}

// The datasets of one level are read together: a's blob is not answered
// until b's has been opened, which one-by-one scans would never do.
func TestDiscoverManyScansALevelTogether(t *testing.T) {
	bOpened := make(chan struct{})
	var once sync.Once
	st := &memStore{blobs: map[string]string{
		"a.ndjson": `{"email":"ann@x.example"}`,
		"b.ndjson": `{"email":"ann@x.example"}`,
	}, onOpen: func(ctx context.Context, name string, r io.ReadCloser) (io.ReadCloser, error) {
		switch name {
		case "b.ndjson":
			once.Do(func() { close(bOpened) })
		case "a.ndjson":
			select {
			case <-bOpened:
			case <-time.After(10 * time.Second):
				return nil, errors.New("b was not read while a was")
			}
		}
		return r, nil
	}}
	id := []sources.Identifier{{Field: "email", Kind: sources.KindEmail}}
	cfg := &sources.Config{Version: 1, Datasets: []sources.Dataset{
		{Name: "a", Blob: "a.ndjson", Format: sources.FormatNDJSON, Identifiers: id},
		{Name: "b", Blob: "b.ndjson", Format: sources.FormatNDJSON, Identifiers: id},
	}}
	got, err := localConnector(cfg, st, 4).DiscoverMany(context.Background(), []sources.Subject{{Emails: []string{"ann@x.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Total() != 2 {
		t.Errorf("found %d records, want one in each dataset", got[0].Total())
	}
}
