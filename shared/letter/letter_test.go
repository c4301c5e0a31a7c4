package letter

import (
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sources"
)

func render(t *testing.T, l Letter) string {
	t.Helper()
	var b strings.Builder
	if err := Render(&b, l); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A request's letter says per place what was done, from its reports; a
// failed place is said to be followed up; a rejection gives the reason and
// the notice; nothing in it is HTML the reports could inject.
func TestFromRequest(t *testing.T) {
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	cfg := &sources.Config{Datasets: []sources.Dataset{{Name: "contacts", Description: "Customer contacts"}, {Name: "log", Description: "Activity log"}}}
	req := &dsr.Request{ID: "r1", Type: dsr.TypeErasure, State: dsr.StateFailed, ReceivedAt: at, FailedSources: []string{"billing"},
		Discovery: &dsr.DiscoverySummary{Sources: []dsr.SourceSummary{{Source: "contacts", Records: 2}, {Source: "log", Records: 3}, {Source: "billing", Error: "system down"}}},
		Erasure: &dsr.ErasureReport{Sources: []dsr.ErasureResult{
			{Source: "contacts", Deleted: 1, Masked: 1},
			{Source: "log", Retained: 3, Ground: "<b>audit</b> duty", LegalBasis: "Art. 17(3)(b)", RetainUntil: "2032-12-31"},
			{Source: "billing", Error: "system down"},
		}},
		History: []dsr.HistoryEntry{{At: at.Add(48 * time.Hour)}},
	}
	page := render(t, FromRequest(req, cfg))
	for _, want := range []string{
		"Customer contacts", "We deleted 1 record.", "We removed what identifies you from 1 record that we keep.",
		"We kept 3 records because &lt;b&gt;audit&lt;/b&gt; duty (Art. 17(3)(b)), until 2032-12-31.",
		"We could not search or change this place: system down", "following this up", "answered 6 December 2026",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("letter lacks %q", want)
		}
	}
	if strings.Contains(page, "<b>audit") {
		t.Error("report text reached the page as HTML")
	}
	rejected := render(t, FromRequest(&dsr.Request{ID: "r2", Type: dsr.TypeAccess, State: dsr.StateRejected, ReceivedAt: at,
		Rejection: &dsr.Rejection{Reason: "the same request a week ago", Notice: dsr.RefusalNotice}}, cfg))
	for _, want := range []string{"We did not do what you asked.", "the same request a week ago", "supervisory authority"} {
		if !strings.Contains(rejected, want) {
			t.Errorf("rejection letter lacks %q", want)
		}
	}
	if !Answered(&dsr.Request{State: dsr.StateCompleted}) || Answered(&dsr.Request{State: dsr.StateAwaitingApproval}) {
		t.Error("Answered")
	}
}
