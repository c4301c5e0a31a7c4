// Package ncrontab parses the NCRONTAB expressions of Azure Functions timer
// triggers: six fields, "second minute hour day month day-of-week", each a
// "*", a number, a range "a-b", a list "a,b" of those, optionally stepped
// ("*/n", "a-b/n", "a/n" meaning a up to the field's maximum). Months and
// days of the week may also be named (Jan…Dec, Sun…Sat); day-of-week 0 is
// Sunday. As in NCrontab, a time matches only when it matches every field,
// day and day-of-week included.
package ncrontab

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed expression.
type Schedule struct {
	expr                                        string
	seconds, minutes, hours, days, months, dows uint64 // bit i set: value i matches
}

type field struct {
	name     string
	min, max int
	names    []string // names[i] is value min+i
}

var fields = [6]field{
	{name: "second", min: 0, max: 59},
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{name: "day-of-week", min: 0, max: 6, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// Parse reads a six-field NCRONTAB expression.
func Parse(expr string) (*Schedule, error) {
	parts := strings.Fields(expr)
	if len(parts) != 6 {
		return nil, fmt.Errorf("ncrontab %q: want 6 fields (second minute hour day month day-of-week), got %d", expr, len(parts))
	}
	var sets [6]uint64
	for i, p := range parts {
		set, err := fields[i].parse(p)
		if err != nil {
			return nil, fmt.Errorf("ncrontab %q: %s field: %w", expr, fields[i].name, err)
		}
		sets[i] = set
	}
	return &Schedule{expr: expr, seconds: sets[0], minutes: sets[1], hours: sets[2], days: sets[3], months: sets[4], dows: sets[5]}, nil
}

// MustParse is Parse that panics on an invalid expression (for constants).
func MustParse(expr string) *Schedule {
	s, err := Parse(expr)
	if err != nil {
		panic(err)
	}
	return s
}

// String returns the expression as written.
func (s *Schedule) String() string { return s.expr }

func (f field) parse(s string) (uint64, error) {
	var set uint64
	for _, item := range strings.Split(s, ",") {
		if item == "" {
			return 0, fmt.Errorf("empty list item in %q", s)
		}
		rng, stepText, stepped := strings.Cut(item, "/")
		step := 1
		if stepped {
			n, err := strconv.Atoi(stepText)
			if err != nil || n <= 0 || n > f.max-f.min+1 {
				return 0, fmt.Errorf("invalid step %q", stepText)
			}
			step = n
		}
		lo, hi := f.min, f.max
		switch {
		case rng == "*":
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if lo, err = f.value(a); err != nil {
				return 0, err
			}
			if hi, err = f.value(b); err != nil {
				return 0, err
			}
			if lo > hi {
				return 0, fmt.Errorf("range %q runs backwards", rng)
			}
		default:
			v, err := f.value(rng)
			if err != nil {
				return 0, err
			}
			lo = v
			if !stepped {
				hi = v
			}
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << uint(v)
		}
	}
	return set, nil
}

func (f field) value(s string) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return f.min + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil || strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("%q is not a %s", s, f.name)
	}
	if v < f.min || v > f.max {
		return 0, fmt.Errorf("%d is outside %d-%d", v, f.min, f.max)
	}
	return v, nil
}

func has(set uint64, v int) bool { return set&(1<<uint(v)) != 0 }

// horizon bounds the search: an expression that matches nothing within it
// (the 30th of February) never fires.
const horizon = 8 * 366 * 24 * time.Hour

// Next returns the first time strictly after after (at whole seconds, in
// after's location) that the schedule matches, or the zero time if it
// matches none within eight years.
func (s *Schedule) Next(after time.Time) time.Time {
	loc := after.Location()
	t := after.Truncate(time.Second).Add(time.Second)
	limit := after.Add(horizon)
	for !t.After(limit) {
		y, mo, d := t.Date()
		h, mi, sec := t.Clock()
		var next time.Time
		switch {
		case !has(s.months, int(mo)):
			next = time.Date(y, mo+1, 1, 0, 0, 0, 0, loc)
		case !has(s.days, d) || !has(s.dows, int(t.Weekday())):
			next = time.Date(y, mo, d+1, 0, 0, 0, 0, loc)
		case !has(s.hours, h):
			next = time.Date(y, mo, d, h+1, 0, 0, 0, loc)
		case !has(s.minutes, mi):
			next = time.Date(y, mo, d, h, mi+1, 0, 0, loc)
		case !has(s.seconds, sec):
			next = t.Add(time.Second)
		default:
			return t
		}
		if !next.After(t) {
			// A daylight-saving fold maps the wall clock back: step on in
			// absolute time instead.
			next = t.Add(time.Second)
		}
		t = next
	}
	return time.Time{}
}
