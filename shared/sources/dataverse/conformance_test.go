package dataverse

import (
	"fmt"
	"slices"
	"testing"

	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/dataverse/dataversetest"
	"github.com/dsr-functions/dsr/shared/sources/sourcestest"
)

// dvHarness loads the conformance scenario into the checking test server:
// each dataset an entity set keyed by GUID (Dataverse keys are GUIDs),
// with the scenario's own keys (pid, nid, rid) as plain columns the
// relations use, as alternate keys would be.
type dvHarness struct{}

func (dvHarness) Delegates() bool { return false }

var dvEntity = map[string]string{"people": "new_person", "notes": "new_note", "replies": "new_reply"}

// dvGUID is the GUID of the i-th record of a dataset, in key order.
func dvGUID(set, key string) string {
	i := slices.IndexFunc(sourcestest.Scenario[set], func(r sourcestest.Record) bool { return r[sourcestest.Keys[set]] == key })
	return fmt.Sprintf("%08x-7c1e-4f5a-9b3d-%012x", len(set), i+1)
}

func (dvHarness) Open(t *testing.T) sourcestest.Fixture {
	f := dataversetest.New(t, 2) // small pages: paging is exercised too
	cfg := &Config{URL: f.URL(), DefaultPhoneRegion: "US", PageSize: 2, MaxAttempts: 3}
	for _, d := range sourcestest.Datasets() {
		set := d.Name
		guid := dvEntity[set] + "id"
		var cols []string
		for _, r := range sourcestest.Scenario[set] {
			for k := range r {
				if !slices.Contains(cols, k) {
					cols = append(cols, k)
				}
			}
		}
		slices.Sort(cols)
		f.AddEntitySet(set, dvEntity[set], guid, cols...)
		for _, r := range sourcestest.Scenario[set] {
			v := map[string]any{guid: dvGUID(set, r[sourcestest.Keys[set]])}
			for k, x := range r {
				v[k] = x
			}
			f.Put(set, v)
		}
		tb := Table{Name: set, EntitySet: set, Key: guid, Identifiers: d.Identifiers, FreeText: d.FreeText}
		for _, r := range d.Relations {
			tb.Relations = append(tb.Relations, r)
		}
		cfg.Tables = append(cfg.Tables, tb)
	}
	c, err := New(cfg, f.Client(), f.Credential())
	if err != nil {
		t.Fatal(err)
	}
	return sourcestest.Fixture{
		Connector: c,
		Remove:    func(t *testing.T, ds, key string) { f.Remove(ds, dvGUID(ds, key)) },
	}
}

var _ sources.Rewriter = (*Connector)(nil)

func TestConformance(t *testing.T) { sourcestest.Run(t, dvHarness{}) }
