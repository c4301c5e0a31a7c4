package ncrontab

import (
	"strings"
	"testing"
	"time"
)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestNext(t *testing.T) {
	tests := []struct {
		expr, after, want string
	}{
		{"* * * * * *", "2026-03-01T10:00:00Z", "2026-03-01T10:00:01Z"},
		{"* * * * * *", "2026-03-01T10:00:00.5Z", "2026-03-01T10:00:01Z"},
		{"0 */5 * * * *", "2026-03-01T10:00:00Z", "2026-03-01T10:05:00Z"},
		{"0 */5 * * * *", "2026-03-01T10:03:17Z", "2026-03-01T10:05:00Z"},
		{"0 */5 * * * *", "2026-03-01T23:59:59Z", "2026-03-02T00:00:00Z"},
		{"30 15 9 * * *", "2026-03-01T09:15:30Z", "2026-03-02T09:15:30Z"},
		{"30 15 9 * * *", "2026-03-01T09:15:29Z", "2026-03-01T09:15:30Z"},
		{"0 0 9-17 * * *", "2026-03-01T17:00:00Z", "2026-03-02T09:00:00Z"},
		{"0 0 9-17/4 * * *", "2026-03-01T09:00:00Z", "2026-03-01T13:00:00Z"},
		{"0 0,30 * * * *", "2026-03-01T10:00:00Z", "2026-03-01T10:30:00Z"},
		{"5,10-12 * * * * *", "2026-03-01T10:00:10Z", "2026-03-01T10:00:11Z"},
		{"5,10-12 * * * * *", "2026-03-01T10:00:12Z", "2026-03-01T10:01:05Z"},
		{"0 0 0 1 * *", "2026-01-31T12:00:00Z", "2026-02-01T00:00:00Z"},
		{"0 0 0 31 * *", "2026-02-01T00:00:00Z", "2026-03-31T00:00:00Z"},
		{"0 0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"0 0 0 1 jan *", "2026-03-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"0 0 12 * * 1-5", "2026-03-06T12:00:00Z", "2026-03-09T12:00:00Z"}, // Friday → Monday
		{"0 0 12 * * Sun", "2026-03-01T12:00:00Z", "2026-03-08T12:00:00Z"}, // 1 March 2026 is a Sunday
		{"0 0 0 13 * 5", "2026-01-01T00:00:00Z", "2026-02-13T00:00:00Z"},   // day AND weekday: Friday the 13th
		{"0 30 9 * * *", "2026-12-31T23:00:00Z", "2027-01-01T09:30:00Z"},
		{"*/15 * * * * *", "2026-03-01T10:00:44Z", "2026-03-01T10:00:45Z"},
		{"10/20 * * * * *", "2026-03-01T10:00:31Z", "2026-03-01T10:00:50Z"},
	}
	for _, tc := range tests {
		s, err := Parse(tc.expr)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.expr, err)
			continue
		}
		if got := s.Next(ts(tc.after)); !got.Equal(ts(tc.want)) {
			t.Errorf("%q.Next(%s) = %s, want %s", tc.expr, tc.after, got.Format(time.RFC3339), tc.want)
		}
	}
}

func TestNextNever(t *testing.T) {
	if got := MustParse("0 0 0 30 2 *").Next(ts("2026-01-01T00:00:00Z")); !got.IsZero() {
		t.Fatalf("30 February fired at %s", got)
	}
}

func TestNextKeepsLocationAcrossDST(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tz database:", err)
	}
	s := MustParse("0 30 * * * *")
	// Clocks go back at 03:00 CEST on 25 October 2026: 02:30 happens twice.
	at := time.Date(2026, 10, 25, 2, 30, 0, 0, loc) // the first 02:30 (CEST)
	next := s.Next(at)
	if !next.After(at) || next.Sub(at) > time.Hour {
		t.Fatalf("Next(%s) = %s", at, next)
	}
	if next.Location() != loc {
		t.Fatalf("location %s", next.Location())
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{"* * * * *", "6 fields"},
		{"* * * * * * *", "6 fields"},
		{"60 * * * * *", "second"},
		{"* 60 * * * *", "minute"},
		{"* * 24 * * *", "hour"},
		{"* * * 0 * *", "day"},
		{"* * * 32 * *", "day"},
		{"* * * * 13 *", "month"},
		{"* * * * * 7", "day-of-week"},
		{"*/0 * * * * *", "step"},
		{"*/x * * * * *", "step"},
		{"5-1 * * * * *", "backwards"},
		{"1,,2 * * * * *", "empty"},
		{"a * * * * *", "second"},
		{"-1 * * * * *", "second"},
		{"* * * * foo *", "month"},
	} {
		_, err := Parse(tc.expr)
		if err == nil {
			t.Errorf("Parse(%q) accepted it", tc.expr)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want it to mention %q", tc.expr, err, tc.want)
		}
	}
}

func TestParseValues(t *testing.T) {
	s := MustParse("0 */5 * * * *")
	for m := 0; m < 60; m++ {
		if got, want := has(s.minutes, m), m%5 == 0; got != want {
			t.Errorf("minute %d: %v, want %v", m, got, want)
		}
	}
	if s.String() != "0 */5 * * * *" {
		t.Errorf("String() = %q", s.String())
	}
}
