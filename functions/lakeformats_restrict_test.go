package functions_test

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/duckdbtest"
	"github.com/dsr-functions/dsr/shared/sample"
)

// restrictAndLift restricts the demo subject by email, checks the
// registry, lifts it by phone, and returns after each step.
func restrictAndLift(t *testing.T, h *harness, afterRestrict, afterLift func()) {
	t.Helper()
	doc := h.submit(`{"type":"restriction","subject":{"email":"avery.morgan@contoso.example"}}`)
	done, _ := h.waitTerminal(doc.ID)
	if done.State != dsr.StateCompleted || done.Restriction == nil || done.Restriction.Lifted {
		t.Fatalf("restriction: %s %+v %+v\n%s", done.State, done.Error, done.Restriction, h.logs.String())
	}
	if a := h.restricted("email=avery.morgan@contoso.example"); !a.Restricted || a.RequestID != doc.ID {
		t.Fatalf("registry after restriction: %+v", a)
	}
	afterRestrict()
	lift := h.submit(`{"type":"restriction","lift":true,"subject":{"phone":"+1 425 555 0199"}}`)
	lifted, _ := h.waitTerminal(lift.ID)
	if lifted.State != dsr.StateCompleted || lifted.Restriction == nil || !lifted.Restriction.Lifted {
		t.Fatalf("lift: %s %+v %+v", lifted.State, lifted.Error, lifted.Restriction)
	}
	afterLift()
}

// Restriction sets the flag column of her contact row in a Parquet file
// (read back with DuckDB: the other rows and every column type as they
// were), and lifting clears it.
func TestParquetRestrictionAndLift(t *testing.T) {
	duckdbtest.Require(t)
	h := parquetHarness(t)
	dir := t.TempDir()
	before := duckRows(t, h.parquetFiles(dir)[sample.ContactsBlob])
	check := func(step string, want any) {
		d := filepath.Join(dir, step)
		os.MkdirAll(d, 0o755)
		now := duckRows(t, h.parquetFiles(d)[sample.ContactsBlob])
		sameTypes(t, "contacts", before, now)
		if len(now.Rows) != len(before.Rows) {
			t.Fatalf("%s: %d contact rows became %d", step, len(before.Rows), len(now.Rows))
		}
		hers := 0
		for i, r := range now.Rows {
			o := before.Rows[i]
			if r["contactid"] == sample.DemoContactID {
				hers++
				if r["dsr_restricted"] != want {
					t.Errorf("%s: her dsr_restricted is %v, want %v", step, r["dsr_restricted"], want)
				}
				r, o = maps.Clone(r), maps.Clone(o)
				delete(r, "dsr_restricted")
				delete(o, "dsr_restricted")
			}
			if !reflect.DeepEqual(r, o) {
				t.Errorf("%s: contact row %d changed: %v -> %v", step, i, o, r)
			}
		}
		if hers != 1 {
			t.Errorf("%s: %d contact rows of hers", step, hers)
		}
	}
	restrictAndLift(t, h, func() { check("restricted", true) }, func() { check("lifted", false) })
}

// In a Delta table, restriction and lifting each commit a new version in
// which only her contact row differs, by the flag.
func TestDeltaRestrictionAndLift(t *testing.T) {
	h := newHarness(t, harnessOptions{format: "delta"})
	before := h.deltaTable("contacts")
	check := func(step string, want any, versions int) {
		now := h.deltaTable("contacts")
		if len(now.commits) != versions {
			t.Errorf("%s: %d versions, want %d", step, len(now.commits), versions)
		}
		if len(now.rows) != len(before.rows) {
			t.Fatalf("%s: %d rows became %d", step, len(before.rows), len(now.rows))
		}
		var changed []map[string]any
		for _, r := range now.rows {
			if slices.Contains(before.rows, r) {
				continue
			}
			var m map[string]any
			json.Unmarshal([]byte(r), &m)
			changed = append(changed, m)
		}
		if len(changed) != 1 || changed[0]["contactid"] != sample.DemoContactID || changed[0]["dsr_restricted"] != want {
			t.Errorf("%s: changed rows %v, want hers with dsr_restricted %v", step, changed, want)
		}
	}
	n := len(before.commits)
	restrictAndLift(t, h, func() { check("restricted", true, n+1) }, func() { check("lifted", false, n+2) })
}
