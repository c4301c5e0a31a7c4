package console

import (
	"fmt"
	"html"
	"html/template"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/store"
)

// The charts are server-rendered SVG: no script, nothing fetched, and each
// comes with the same numbers as a table for screen readers and for
// copying. SVG presentation attributes (fill, stroke) set the colours, so
// the strict Content-Security-Policy needs no inline styles.

// typeColors tell request types apart (each has at least 3:1 contrast
// against the white background, as WCAG asks of graphical objects).
var typeColors = map[dsr.Type]string{
	dsr.TypeAccess:        "#1f5f99",
	dsr.TypeDiscovery:     "#6b4fa0",
	dsr.TypeErasure:       "#b3261e",
	dsr.TypeRectification: "#8a5a00",
	dsr.TypeRestriction:   "#2e7031",
	dsr.TypePortability:   "#00676b",
}

// weeks is how many weeks the weekly charts show.
const weeks = 12

// stats are the numbers behind the charts.
type stats struct {
	Weeks  []weekRow
	Ages   []ageRow
	Median []medianRow
	Open   int
	// Truncated is set when more requests exist than the charts read.
	Truncated bool
}

type weekRow struct {
	Start  time.Time
	Opened map[dsr.Type]int
	Closed map[dsr.Type]int
}

type ageRow struct {
	Label string
	Count int
	Late  bool
}

type medianRow struct {
	Type   dsr.Type
	Done   int
	Median time.Duration
}

// weekStart is the Monday 00:00 UTC of t's ISO week.
func weekStart(t time.Time) time.Time {
	t = t.UTC()
	d := (int(t.Weekday()) + 6) % 7
	return time.Date(t.Year(), t.Month(), t.Day()-d, 0, 0, 0, 0, time.UTC)
}

// computeStats counts items as of now. A request counts as opened in the
// week it was received and, once ended, as closed in the week of its last
// update (a request's last change is its ending).
func computeStats(items []store.Summary, now time.Time) stats {
	var s stats
	first := weekStart(now).AddDate(0, 0, -7*(weeks-1))
	for i := 0; i < weeks; i++ {
		s.Weeks = append(s.Weeks, weekRow{Start: first.AddDate(0, 0, 7*i), Opened: map[dsr.Type]int{}, Closed: map[dsr.Type]int{}})
	}
	week := func(t time.Time) int {
		if t.Before(first) {
			return -1
		}
		i := int(t.Sub(first) / (7 * 24 * time.Hour))
		if i >= weeks {
			return -1
		}
		return i
	}
	buckets := []struct {
		label string
		upTo  time.Duration // time left until due, at most
		late  bool
	}{
		{"overdue", 0, true},
		{"due in 0–7 days", 7 * 24 * time.Hour, false},
		{"8–14 days", 14 * 24 * time.Hour, false},
		{"15–21 days", 21 * 24 * time.Hour, false},
		{"22 days or more", 1 << 62, false},
	}
	for _, b := range buckets {
		s.Ages = append(s.Ages, ageRow{Label: b.label, Late: b.late})
	}
	durations := map[dsr.Type][]time.Duration{}
	for _, it := range items {
		if i := week(it.ReceivedAt); i >= 0 {
			s.Weeks[i].Opened[it.Type]++
		}
		if it.State.Terminal() {
			if i := week(it.UpdatedAt); i >= 0 {
				s.Weeks[i].Closed[it.Type]++
			}
			if it.State == dsr.StateCompleted {
				durations[it.Type] = append(durations[it.Type], it.UpdatedAt.Sub(it.ReceivedAt))
			}
			continue
		}
		s.Open++
		left := it.DueAt.Sub(now)
		for j, b := range buckets {
			if (b.late && left < 0) || (!b.late && left >= 0 && left <= b.upTo) {
				s.Ages[j].Count++
				break
			}
		}
	}
	for _, t := range dsr.Types {
		d := durations[t]
		if len(d) == 0 {
			continue
		}
		slices.Sort(d)
		m := d[len(d)/2]
		if len(d)%2 == 0 {
			m = (d[len(d)/2-1] + d[len(d)/2]) / 2
		}
		s.Median = append(s.Median, medianRow{Type: t, Done: len(d), Median: m})
	}
	return s
}

// svgBuilder writes one chart.
type svgBuilder struct{ b strings.Builder }

func (s *svgBuilder) f(format string, args ...any) { fmt.Fprintf(&s.b, format, args...) }

// esc escapes text for SVG.
func esc(s string) string { return html.EscapeString(s) }

// weeklyChart draws stacked bars per week by type; pick selects opened or
// closed counts.
func weeklyChart(title string, rows []weekRow, pick func(weekRow) map[dsr.Type]int) template.HTML {
	const w, h, left, bottom, top = 640, 240, 36, 40, 12
	max := 1
	for _, r := range rows {
		n := 0
		for _, v := range pick(r) {
			n += v
		}
		if n > max {
			max = n
		}
	}
	var s svgBuilder
	s.f(`<svg class="chart" viewBox="0 0 %d %d" role="img" aria-labelledby="%s-t" xmlns="http://www.w3.org/2000/svg">`, w, h, slug(title))
	s.f(`<title id="%s-t">%s</title>`, slug(title), esc(title))
	plotH := float64(h - bottom - top)
	slot := float64(w-left) / float64(len(rows))
	// Axis and a scale line at the maximum.
	s.f(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#595959" stroke-width="1"/>`, left, h-bottom, w, h-bottom)
	s.f(`<text x="%d" y="%d" font-size="11" fill="#333" text-anchor="end">%d</text>`, left-4, top+4, max)
	s.f(`<text x="%d" y="%d" font-size="11" fill="#333" text-anchor="end">0</text>`, left-4, h-bottom)
	for i, r := range rows {
		x := float64(left) + float64(i)*slot + slot*0.15
		bw := slot * 0.7
		y := float64(h - bottom)
		counts := pick(r)
		for _, t := range dsr.Types {
			n := counts[t]
			if n == 0 {
				continue
			}
			bh := plotH * float64(n) / float64(max)
			y -= bh
			s.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %d %s</title></rect>`,
				x, y, bw, bh, typeColors[t], r.Start.Format("2 Jan"), n, t)
		}
		if i%2 == 0 || len(rows) <= 6 {
			s.f(`<text x="%.1f" y="%d" font-size="11" fill="#333" text-anchor="middle">%s</text>`, x+bw/2, h-bottom+16, r.Start.Format("2 Jan"))
		}
	}
	// Legend.
	lx := left
	for _, t := range dsr.Types {
		s.f(`<rect x="%d" y="%d" width="10" height="10" fill="%s"/>`, lx, h-14, typeColors[t])
		s.f(`<text x="%d" y="%d" font-size="11" fill="#333">%s</text>`, lx+14, h-5, t)
		lx += 24 + 7*len(t)
	}
	s.f(`</svg>`)
	return template.HTML(s.b.String())
}

// ageChart draws the open requests by time left until their deadline.
func ageChart(rows []ageRow) template.HTML {
	const w, rowH, labelW = 640, 28, 150
	max := 1
	for _, r := range rows {
		if r.Count > max {
			max = r.Count
		}
	}
	var s svgBuilder
	h := rowH*len(rows) + 8
	s.f(`<svg class="chart" viewBox="0 0 %d %d" role="img" aria-labelledby="age-t" xmlns="http://www.w3.org/2000/svg">`, w, h)
	s.f(`<title id="age-t">Open requests by time left until their deadline</title>`)
	for i, r := range rows {
		y := i*rowH + 4
		color := "#1f5f99"
		if r.Late {
			color = "#b3261e"
		}
		bw := float64(w-labelW-50) * float64(r.Count) / float64(max)
		s.f(`<text x="%d" y="%d" font-size="12" fill="#222" text-anchor="end">%s</text>`, labelW-8, y+16, esc(r.Label))
		s.f(`<rect x="%d" y="%d" width="%.1f" height="18" fill="%s"/>`, labelW, y+2, bw, color)
		s.f(`<text x="%.1f" y="%d" font-size="12" fill="#222">%d</text>`, float64(labelW)+bw+6, y+16, r.Count)
	}
	s.f(`</svg>`)
	return template.HTML(s.b.String())
}

// medianChart draws the median time to complete by type, in days.
func medianChart(rows []medianRow) template.HTML {
	const w, rowH, labelW = 640, 28, 150
	if len(rows) == 0 {
		return ""
	}
	sorted := slices.Clone(rows)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Median > sorted[j].Median })
	max := sorted[0].Median
	if max <= 0 {
		max = 1
	}
	var s svgBuilder
	h := rowH*len(rows) + 8
	s.f(`<svg class="chart" viewBox="0 0 %d %d" role="img" aria-labelledby="median-t" xmlns="http://www.w3.org/2000/svg">`, w, h)
	s.f(`<title id="median-t">Median time to complete, by request type</title>`)
	for i, r := range rows {
		y := i*rowH + 4
		bw := float64(w-labelW-90) * float64(r.Median) / float64(max)
		s.f(`<text x="%d" y="%d" font-size="12" fill="#222" text-anchor="end">%s</text>`, labelW-8, y+16, r.Type)
		s.f(`<rect x="%d" y="%d" width="%.1f" height="18" fill="%s"/>`, labelW, y+2, bw, typeColors[r.Type])
		s.f(`<text x="%.1f" y="%d" font-size="12" fill="#222">%s</text>`, float64(labelW)+bw+6, y+16, esc(days(r.Median)))
	}
	s.f(`</svg>`)
	return template.HTML(s.b.String())
}

// days writes a duration in days (hours when under a day).
func days(d time.Duration) string {
	if d < 24*time.Hour {
		return fmt.Sprintf("%.1f h", d.Hours())
	}
	return fmt.Sprintf("%.1f days", d.Hours()/24)
}

func slug(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 32
		}
		return '-'
	}, s)
}
