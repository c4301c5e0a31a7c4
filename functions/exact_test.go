package functions_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/sources"
)

// commitCrash stands for a process that dies right after one dataset's
// commit: the rewrite committed, but nothing after it ran (the answer is
// lost and asking the blob whether the plan committed fails too), so the
// stage fails with the plan left pending on the request.
type commitCrash struct {
	sources.Connector
	dataset string
	crashed bool
}

// Rewrite is a rewrite that cannot plan (Dataverse's): the process dies
// right after it too.
func (c *commitCrash) Rewrite(ctx context.Context, dataset string, loc sources.Location, edit sources.Edit) (sources.RewriteResult, error) {
	res, err := c.Connector.(sources.Rewriter).Rewrite(ctx, dataset, loc, edit)
	if err == nil && dataset == c.dataset && !c.crashed {
		c.crashed = true
		return sources.RewriteResult{}, errors.New("injected crash right after the changes")
	}
	return res, err
}

func (c *commitCrash) RewritePlanned(ctx context.Context, dataset string, loc sources.Location, edit sources.Edit, plan sources.CommitPlan) (sources.RewriteResult, error) {
	res, err := c.Connector.(sources.PlannedRewriter).RewritePlanned(ctx, dataset, loc, edit, plan)
	if err == nil && dataset == c.dataset && !c.crashed {
		c.crashed = true
		return sources.RewriteResult{}, errors.New("injected crash right after the commit")
	}
	return res, err
}

func (c *commitCrash) Committed(ctx context.Context, dataset, blob string, plan sources.PlanRef) (bool, string, error) {
	if c.crashed && dataset == c.dataset && c.Connector != nil {
		if once := c.dataset; once != "" {
			c.dataset = "" // answers from the next attempt on
			return false, "", errors.New("injected crash: the process is gone")
		}
	}
	return c.Connector.(sources.PlannedRewriter).Committed(ctx, dataset, blob, plan)
}

// Killed right after the last blob's commit (contacts: parents go last),
// the retried erasure reports and audits what the first attempt did there:
// the same report as an erasure that never crashed, one audit entry per
// record.
func TestErasureReportExactAfterACrashAfterTheLastCommit(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	crash := &commitCrash{Connector: h.app.Service.Connector, dataset: "contacts"}
	h.app.Service.Connector = crash
	doc := h.submit(demoErasure)
	h.deliver("discover")
	if resp, b := h.do("POST", "/api/requests/"+doc.ID+"/approve", ""); resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, b)
	}
	for attempt := 1; ; attempt++ {
		if attempt > 5 {
			t.Fatalf("erasure did not finish:\n%s", h.logs.String())
		}
		h.deliver("erase")
		if got, _ := h.get(doc.ID); got.Stage != dsr.StageErasure {
			break
		}
	}
	if !crash.crashed {
		t.Fatal("the crash was never injected")
	}
	h.deliver("verify")
	h.deliver("erase") // notification
	got, _ := h.get(doc.ID)
	if got.State != dsr.StateCompleted {
		t.Fatalf("state %s %+v", got.State, got.Error)
	}
	results := map[string]dsr.ErasureResult{}
	for _, r := range got.Erasure.Sources {
		results[r.Source] = r
	}
	want := h.datasetCounts(sample.Demo(h.size).RecordsWithoutPhone)
	if r := results["contacts"]; r.Deleted != int64(want["contacts"]) || r.Deleted == 0 {
		t.Errorf("contacts: %+v, want %d deleted\n%s", r, want["contacts"], h.logs.String())
	}
	if r := results["surveys"]; r.Deleted != int64(want["surveys"]) {
		t.Errorf("surveys: %+v, want %d deleted", r, want["surveys"])
	}
	if r := results["cases"]; r.Masked != int64(want["cases"]) {
		t.Errorf("cases: %+v, want %d masked", r, want["cases"])
	}
	if r := results["activity-log"]; r.Retained != int64(want["activity-log"]) {
		t.Errorf("activity-log: %+v, want %d retained", r, want["activity-log"])
	}
	// The audit trail: one entry per record, with what the report says.
	_, b := h.do("GET", "/api/requests/"+doc.ID+"/audit", "")
	var trail struct {
		Items []struct {
			ID, Event, Dataset, Action string
		} `json:"items"`
	}
	if err := json.Unmarshal(b, &trail); err != nil {
		t.Fatal(err)
	}
	byAction := map[string]map[string]int64{}
	seen := map[string]bool{}
	for _, e := range trail.Items {
		if e.Event != "record" || seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		if byAction[e.Dataset] == nil {
			byAction[e.Dataset] = map[string]int64{}
		}
		byAction[e.Dataset][e.Action]++
	}
	for name, r := range results {
		a := byAction[name]
		if a["deleted"] != r.Deleted || a["masked"]+a["mention masked"] != r.Masked || a["retained"] != r.Retained {
			t.Errorf("%s: report %+v, audit %v", name, r, a)
		}
	}
	if len(seen) != int(got.Discovery.TotalRecords) {
		t.Errorf("%d record entries for %d records", len(seen), got.Discovery.TotalRecords)
	}
}

// Cancel ends a request awaiting approval; once it is approved the cancel
// is refused (409 changes-started) and the erasure completes.
func TestCancelStopsBeforeChangesOnly(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	before := h.snapshot()
	early := h.submit(demoErasure)
	h.deliver("discover")
	if resp, b := h.do("POST", "/api/requests/"+early.ID+"/cancel", `{"reason":"withdrawn"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("cancel awaiting approval: %d %s", resp.StatusCode, b)
	}
	if got, _ := h.get(early.ID); got.State != dsr.StateCancelled {
		t.Fatalf("state %s", got.State)
	}
	if !equalSnapshots(before, h.snapshot()) {
		t.Fatal("a cancelled erasure changed data")
	}
	doc := h.submit(demoErasure)
	h.deliver("discover")
	if resp, b := h.do("POST", "/api/requests/"+doc.ID+"/approve", ""); resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, b)
	}
	resp, b := h.do("POST", "/api/requests/"+doc.ID+"/cancel", "")
	var p struct{ Code string }
	_ = json.Unmarshal(b, &p)
	if resp.StatusCode != http.StatusConflict || p.Code != "changes-started" || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("cancel after approval: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	h.deliver("erase")
	h.deliver("verify")
	h.deliver("erase") // notification
	got, _ := h.get(doc.ID)
	if got.State != dsr.StateCompleted || got.Erasure == nil || got.Cancellation != nil {
		t.Fatalf("state %s erasure %+v cancellation %+v", got.State, got.Erasure, got.Cancellation)
	}
}

// delegatingCrash is commitCrash over a connector whose webhook systems
// apply their own changes.
type delegatingCrash struct{ *commitCrash }

func (c delegatingCrash) Delegates(dataset string) bool {
	return c.Connector.(sources.Delegator).Delegates(dataset)
}

func (c delegatingCrash) Apply(ctx context.Context, dataset string, ch sources.Change) (sources.ChangeResult, error) {
	return c.Connector.(sources.Delegator).Apply(ctx, dataset, ch)
}

// A PostgreSQL table's rewrite is planned too: killed right after the
// commit of her orders, the retried erasure asks the server whether the
// planned transaction committed (its id is in the plan) and reports the
// two orders the first attempt deleted, not 0 and not a changed-data
// failure.
func TestErasureReportExactAfterACrashAfterAPostgreSQLCommit(t *testing.T) {
	f := newFourSources(t, 0, nil)
	crash := &commitCrash{Connector: f.app.Service.Connector, dataset: "pg-orders"}
	f.app.Service.Connector = delegatingCrash{crash}
	doc := f.submit(`{"type":"erasure","subject":{"email":"` + avery + `"}}`)
	doc, _ = f.waitTerminal(doc.ID)
	if !crash.crashed {
		t.Fatal("the crash was never injected")
	}
	if doc.State != dsr.StateCompleted || len(doc.FailedSources) != 0 {
		t.Fatalf("erasure: state %s, failed %v, error %+v\n%s", doc.State, doc.FailedSources, doc.Error, f.logs.String())
	}
	results := map[string]dsr.ErasureResult{}
	for _, r := range doc.Erasure.Sources {
		results[r.Source] = r
	}
	for ds, n := range map[string]int64{"pg-contacts": 1, "pg-orders": 2} {
		if results[ds].Deleted != n || results[ds].Error != "" {
			t.Errorf("erasure of %s: %+v, want %d deleted", ds, results[ds], n)
		}
	}
	if got := f.pgIDs("orders"); len(got) != 1 || got[0] != 12 {
		t.Errorf("PostgreSQL orders left: %v, want [12]", got)
	}
	if !strings.Contains(f.logs.String(), "a planned rewrite had committed") {
		t.Errorf("the retry did not settle the plan from the server:\n%s", f.logs.String())
	}
}

// Dataverse changes record by record and cannot plan; killed right after
// it deleted her contact and case, the retry finds them gone, counts them
// as deleted (a record already gone is what an interrupted attempt leaves)
// and audits them, so the report is what the first attempt did.
func TestErasureReportExactAfterACrashAfterDataverseChanges(t *testing.T) {
	for _, ds := range []string{"d365-cases", "d365-contacts"} {
		t.Run(ds, func(t *testing.T) {
			f := newFourSources(t, 0, nil)
			crash := &commitCrash{Connector: f.app.Service.Connector, dataset: ds}
			f.app.Service.Connector = delegatingCrash{crash}
			doc := f.submit(`{"type":"erasure","subject":{"email":"` + avery + `"}}`)
			doc, _ = f.waitTerminal(doc.ID)
			if !crash.crashed {
				t.Fatal("the crash was never injected")
			}
			if doc.State != dsr.StateCompleted || len(doc.FailedSources) != 0 {
				t.Fatalf("erasure: state %s, failed %v, error %+v\n%s", doc.State, doc.FailedSources, doc.Error, f.logs.String())
			}
			results := map[string]dsr.ErasureResult{}
			for _, r := range doc.Erasure.Sources {
				results[r.Source] = r
			}
			for name, n := range map[string]int64{"d365-contacts": 1, "d365-cases": 1, "pg-contacts": 1, "pg-orders": 2} {
				if results[name].Deleted != n || results[name].Error != "" {
					t.Errorf("erasure of %s: %+v, want %d deleted", name, results[name], n)
				}
			}
			if f.dv.Row("contacts", dvAvery) != nil || f.dv.Row("incidents", dvAveryCase) != nil {
				t.Error("Dataverse still holds her contact or case")
			}
			_, b := f.do("GET", "/api/requests/"+doc.ID+"/audit", "")
			var trail struct {
				Items []struct{ ID, Event, Dataset, Action string } `json:"items"`
			}
			if err := json.Unmarshal(b, &trail); err != nil {
				t.Fatal(err)
			}
			seen := map[string]string{}
			for _, e := range trail.Items {
				if e.Event == "record" && e.Dataset == ds {
					seen[e.ID] = e.Action
				}
			}
			if len(seen) != 1 {
				t.Errorf("%s: audit record entries %v, want one", ds, seen)
			}
		})
	}
}
