package dsr

import (
	"testing"
	"time"
)

func TestAddMonthsClampsToMonthEnds(t *testing.T) {
	d := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	for _, tc := range []struct {
		from   string
		months int
		want   string
	}{
		{"2026-01-31T09:00:00Z", 1, "2026-02-28T09:00:00Z"},
		{"2026-01-31T09:00:00Z", 2, "2026-03-31T09:00:00Z"},
		{"2026-01-31T09:00:00Z", 3, "2026-04-30T09:00:00Z"},
		{"2027-12-31T23:59:59Z", 2, "2028-02-29T23:59:59Z"},
		{"2026-11-30T00:00:00Z", 3, "2027-02-28T00:00:00Z"},
		{"2026-05-15T12:00:00+02:00", 1, "2026-06-15T10:00:00Z"},
	} {
		if got := AddMonths(d(tc.from), tc.months); !got.Equal(d(tc.want)) {
			t.Errorf("%s + %d months = %s, want %s", tc.from, tc.months, got.Format(time.RFC3339), tc.want)
		}
	}
}

func newOpen(received time.Time) *Request {
	r := &Request{ID: "r1", Type: TypeAccess, ReceivedAt: received, DueAt: DueAt(received)}
	if _, err := r.Advance(StageIntake, StateReceived, received, 1, ""); err != nil {
		panic(err)
	}
	return r
}

func TestExtendFollowsArticle12(t *testing.T) {
	received := time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC)
	before := received.Add(10 * 24 * time.Hour)

	r := newOpen(received)
	if err := r.Extend(1, "many records", before); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 3, 31, 9, 0, 0, 0, time.UTC); !r.DueAt.Equal(want) || !r.OriginalDueAt.Equal(time.Date(2026, 2, 28, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("due %s original %s", r.DueAt, r.OriginalDueAt)
	}
	if err := r.Extend(1, "still complex", before.Add(time.Hour)); err != nil {
		t.Fatalf("second month refused: %v", err)
	}
	if r.Extension.Months != 2 || !r.DueAt.Equal(time.Date(2026, 4, 30, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("after two: %+v due %s", r.Extension, r.DueAt)
	}
	if err := r.Extend(1, "more", before.Add(2*time.Hour)); err == nil {
		t.Fatal("a third month was allowed")
	}

	for _, tc := range []struct {
		name   string
		months int
		at     time.Time
		state  State
	}{
		{"three months at once", 3, before, StateReceived},
		{"zero months", 0, before, StateReceived},
		{"on the original deadline", 1, time.Date(2026, 2, 28, 9, 0, 0, 0, time.UTC), StateReceived},
		{"after the original deadline", 1, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), StateReceived},
		{"an ended request", 1, before, StateCompleted},
	} {
		r := newOpen(received)
		r.State = tc.state
		due := r.DueAt
		if err := r.Extend(tc.months, "x", tc.at); err == nil {
			t.Errorf("%s: allowed", tc.name)
		}
		if !r.DueAt.Equal(due) || r.Extension != nil {
			t.Errorf("%s: a refused extension changed the request", tc.name)
		}
	}
}

func TestCancelAndOverdue(t *testing.T) {
	received := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	r := newOpen(received)
	if r.Overdue(received.Add(24*time.Hour)) || !r.Overdue(time.Date(2026, 2, 10, 0, 0, 1, 0, time.UTC)) {
		t.Fatal("overdue boundary wrong")
	}
	by := &Actor{Kind: "user", ID: "u1"}
	if err := r.Cancel("duplicate of another request", received.Add(time.Hour), by); err != nil {
		t.Fatal(err)
	}
	last := r.History[len(r.History)-1]
	if r.State != StateCancelled || !r.State.Terminal() || last.State != StateCancelled || last.By != by {
		t.Fatalf("after cancel: %s %+v", r.State, last)
	}
	if r.Overdue(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatal("a cancelled request is overdue")
	}
	if err := r.Cancel("again", received.Add(2*time.Hour), by); err == nil || len(r.History) != 2 {
		t.Fatal("an ended request was cancelled again")
	}
}
