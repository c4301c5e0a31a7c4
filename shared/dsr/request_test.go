package dsr

import (
	"sort"
	"strings"
	"testing"
	"time"
)

func TestDueAt(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	nyc := time.FixedZone("EST", -5*3600)
	tests := []struct {
		name     string
		received time.Time
		want     time.Time
	}{
		{"31 Jan to last day of Feb", time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC)},
		{"31 Jan in a leap year", time.Date(2028, 1, 31, 0, 0, 0, 0, time.UTC), time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"30 Jan in a leap year", time.Date(2028, 1, 30, 0, 0, 0, 0, time.UTC), time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"29 Jan in a leap year", time.Date(2028, 1, 29, 0, 0, 0, 0, time.UTC), time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"28 Jan keeps its day", time.Date(2026, 1, 28, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC)},
		{"31 Mar to 30 Apr", time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 30, 0, 0, 0, 0, time.UTC)},
		{"31 Aug to 30 Sep", time.Date(2026, 8, 31, 0, 0, 0, 0, time.UTC), time.Date(2026, 9, 30, 0, 0, 0, 0, time.UTC)},
		{"30 Apr to 30 May", time.Date(2026, 4, 30, 0, 0, 0, 0, time.UTC), time.Date(2026, 5, 30, 0, 0, 0, 0, time.UTC)},
		{"mid-December crosses the year", time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC)},
		{"31 Dec to 31 Jan", time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)},
		{"time of day preserved", time.Date(2026, 5, 10, 17, 45, 30, 123456789, time.UTC), time.Date(2026, 6, 10, 17, 45, 30, 123456789, time.UTC)},
		{"time of day preserved when clamped", time.Date(2026, 1, 31, 23, 59, 59, 0, time.UTC), time.Date(2026, 2, 28, 23, 59, 59, 0, time.UTC)},
		// 00:30 CET on 1 March is 23:30 UTC on 28 February: the UTC date counts.
		{"non-UTC converted first (east)", time.Date(2026, 3, 1, 0, 30, 0, 0, cet), time.Date(2026, 3, 28, 23, 30, 0, 0, time.UTC)},
		// 21:00 EST on 31 January is 02:00 UTC on 1 February.
		{"non-UTC converted first (west)", time.Date(2026, 1, 31, 21, 0, 0, 0, nyc), time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := DueAt(tc.received)
			if !got.Equal(tc.want) {
				t.Errorf("DueAt(%s) = %s, want %s", tc.received, got, tc.want)
			}
			if got.Location() != time.UTC {
				t.Errorf("DueAt(%s) is in %s, want UTC", tc.received, got.Location())
			}
		})
	}
}

func TestNewIDSortsByCreationTime(t *testing.T) {
	base := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	offsets := []time.Duration{0, time.Millisecond, 2 * time.Millisecond, time.Second, time.Hour, 24 * time.Hour, 365 * 24 * time.Hour, 40 * 365 * 24 * time.Hour}
	var ids []string
	for _, off := range offsets {
		// Several ids per instant: random suffixes must not break the order
		// across instants.
		for range 5 {
			ids = append(ids, NewID(base.Add(off)))
		}
	}
	for i, id := range ids {
		if !ValidID(id) {
			t.Fatalf("NewID returned %q, which ValidID refuses", id)
		}
		if i >= 5 && id[:13] <= ids[i-5][:13] {
			t.Errorf("id %q (created later) does not sort after %q", id, ids[i-5])
		}
	}
	sorted := append([]string(nil), ids...)
	sort.Sort(sort.Reverse(sort.StringSlice(sorted)))
	sort.Strings(sorted)
	for i := range ids {
		if sorted[i][:13] != ids[i][:13] {
			t.Fatalf("sorting the ids changes the creation order at %d: %q vs %q", i, sorted[i], ids[i])
		}
	}
	for i := 0; i+5 < len(ids); i += 5 {
		// Every id of instant k sorts before every id of instant k+1.
		for _, a := range ids[i : i+5] {
			for _, b := range ids[i+5:] {
				if a >= b {
					t.Fatalf("%q (earlier) sorts after %q (later)", a, b)
				}
			}
		}
	}
	if got := NewID(base); got[:13] != "r019cd79e4600" {
		t.Errorf("NewID(%s) time prefix = %q, want r019cd79e4600 (milliseconds since the epoch, 12 hex digits)", base, got[:13])
	}
}

func TestNewIDUnique(t *testing.T) {
	now := time.Now()
	seen := map[string]bool{}
	for range 10000 {
		id := NewID(now)
		if seen[id] {
			t.Fatalf("NewID repeated %q for the same instant", id)
		}
		seen[id] = true
	}
}

func TestValidID(t *testing.T) {
	good := NewID(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	tests := []struct {
		id   string
		want bool
	}{
		{good, true},
		{"r0000000000000000000000000000", true},
		{"", false},
		{"../x", false},
		{"../" + good, false},
		{good + "/..", false},
		{"requests/" + good, false},
		{good + ".json", false},
		{strings.ToUpper(good), false},
		{"R" + good[1:], false},
		{good[:len(good)-1] + "A", false},
		{good + "0", false},         // too long
		{good[:len(good)-1], false}, // too short
		{"x" + good[1:], false},     // wrong prefix
		{good[1:] + "0", false},     // no prefix
		{good + "\n", false},        // trailing newline
		{" " + good, false},         // leading space
		{good[:20] + "g" + good[21:], false},
		{strings.Repeat("r", 1000), false},
	}
	for _, tc := range tests {
		if got := ValidID(tc.id); got != tc.want {
			t.Errorf("ValidID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestAdvanceIsIdempotent(t *testing.T) {
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	r := Request{Type: TypeAccess}
	if ok, err := r.Advance(StageIntake, StateReceived, t0, 1, ""); !ok || err != nil {
		t.Fatalf("first Advance returned %v, %v", ok, err)
	}
	if ok, err := r.Advance(StageIntake, StateReceived, t0.Add(time.Minute), 2, "redelivered"); ok || err != nil {
		t.Errorf("Advance to the same stage and state returned %v, %v", ok, err)
	}
	if len(r.History) != 1 {
		t.Fatalf("history has %d entries after a repeated Advance, want 1: %+v", len(r.History), r.History)
	}
	if !r.UpdatedAt.Equal(t0) {
		t.Errorf("a no-op Advance changed UpdatedAt to %s", r.UpdatedAt)
	}

	steps := []struct {
		stage Stage
		state State
	}{
		{StageDiscovery, StateInProgress},
		{StageDiscovery, StateInProgress}, // redelivery: no entry
		{StageExport, StateInProgress},    // same state, new stage: entry
		{StageExport, StateInProgress},
		{StageDone, StateCompleted},
		{StageDone, StateCompleted},
	}
	at := t0
	for _, s := range steps {
		at = at.Add(time.Minute)
		if _, err := r.Advance(s.stage, s.state, at, 1, ""); err != nil {
			t.Fatal(err)
		}
	}
	want := []struct {
		stage Stage
		state State
	}{{StageIntake, StateReceived}, {StageDiscovery, StateInProgress}, {StageExport, StateInProgress}, {StageDone, StateCompleted}}
	if len(r.History) != len(want) {
		t.Fatalf("history = %+v, want %d entries", r.History, len(want))
	}
	for i, w := range want {
		if r.History[i].Stage != w.stage || r.History[i].State != w.state {
			t.Errorf("history[%d] = %s/%s, want %s/%s", i, r.History[i].Stage, r.History[i].State, w.stage, w.state)
		}
	}
	if r.Stage != StageDone || r.State != StateCompleted || !r.State.Terminal() {
		t.Errorf("request at %s/%s, want done/completed", r.Stage, r.State)
	}
}

func TestFailIsIdempotent(t *testing.T) {
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	r := Request{Type: TypeAccess}
	for _, step := range []Step{stepIntake, stepDiscover} {
		if _, err := r.Advance(step.Stage, step.State, t0, 1, ""); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := r.Fail("source-unavailable", "a source could not be read", t0.Add(time.Minute), 10); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.History) != 3 {
		t.Fatalf("history = %+v, want 2 entries", r.History)
	}
	last := r.History[2]
	if last.Stage != StageDiscovery || last.State != StateFailed || last.Detail != "source-unavailable" || last.Attempt != 10 {
		t.Errorf("failure entry = %+v", last)
	}
	if r.Error == nil || r.Error.Code != "source-unavailable" {
		t.Errorf("Error = %+v", r.Error)
	}
}

func TestNewStored(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	received := time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC)
	sub := &Submission{Type: TypeAccess, Subject: &Subject{Email: "ann@example.com"}, ReceivedAt: &received, Note: "n"}
	st := NewStored(sub, "r0000000000000000000000000000", "api", now)
	if st.State != StateReceived || st.Stage != StageIntake || len(st.History) != 1 {
		t.Errorf("new request at %s/%s with history %+v", st.Stage, st.State, st.History)
	}
	if !st.ReceivedAt.Equal(received) || !st.DueAt.Equal(time.Date(2026, 2, 28, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("ReceivedAt %s DueAt %s", st.ReceivedAt, st.DueAt)
	}
	if st.CreatedAt.Location() != time.UTC || !st.CreatedAt.Equal(now) {
		t.Errorf("CreatedAt = %s", st.CreatedAt)
	}
	st2 := NewStored(&Submission{Type: TypeDiscovery, Subject: &Subject{Phone: "+14155552671"}}, "r0000000000000000000000000001", "api", now)
	if !st2.ReceivedAt.Equal(now) || !st2.DueAt.Equal(time.Date(2026, 4, 10, 11, 0, 0, 0, time.UTC)) {
		t.Errorf("without receivedAt: ReceivedAt %s DueAt %s", st2.ReceivedAt, st2.DueAt)
	}
}
