package console

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dsr-functions/dsr/shared/audit"
	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/problem"
	"github.com/dsr-functions/dsr/shared/store"
)

// problemView is an API refusal as a page shows it.
type problemView struct {
	Title  string
	Detail string
	Fields map[string]string
}

func viewProblem(p *problem.Details) *problemView {
	if p == nil {
		return nil
	}
	v := &problemView{Title: p.Title, Detail: p.Detail, Fields: map[string]string{}}
	for _, e := range p.Errors {
		v.Fields[e.Field] = e.Detail
	}
	return v
}

// Field is the error of one form field ("" when none).
func (p *problemView) Field(name string) string {
	if p == nil {
		return ""
	}
	return p.Fields[name]
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"whenp": func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"day":   func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"label": func(s any) string { return strings.ReplaceAll(fmt.Sprint(s), "_", " ") },
	"days":  days,
	"join":  func(s []string) string { return strings.Join(s, ", ") },
	"bytes": func(n int64) string {
		switch {
		case n >= 1<<20:
			return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
		case n >= 1<<10:
			return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
		}
		return fmt.Sprintf("%d bytes", n)
	},
	"color": func(t dsr.Type) string { return typeColors[t] },
	"list":  func(s ...string) []string { return s },
}

// parsePages parses each page with the layout.
func parsePages() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range []string{"message", "queue", "charts", "request", "new", "restrictions"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// listAll reads every page of GET /api/requests with query q, up to max
// items; more reports whether there were more.
func (c *Console) listAll(cx context.Context, p *auth.Principal, q url.Values, max int) (items []store.Summary, more bool, a answer, err error) {
	q.Set("limit", "200")
	for {
		a, err = c.call(cx, p, http.MethodGet, "/api/requests", q, nil)
		if err != nil || !a.ok() {
			return nil, false, a, err
		}
		var pg struct {
			Items []store.Summary `json:"items"`
			Next  string          `json:"nextPageToken"`
		}
		if err := a.decode(&pg); err != nil {
			return nil, false, a, err
		}
		items = append(items, pg.Items...)
		if pg.Next == "" {
			return items, false, a, nil
		}
		if len(items) >= max {
			return items, true, a, nil
		}
		q.Set("pageToken", pg.Next)
	}
}

// queueRow is one open request in the work queue.
type queueRow struct {
	store.Summary
	Overdue, DueSoon bool
	Left             string
}

type queueData struct {
	State, Type    string
	States, Types  []string
	Rows           []queueRow
	Page, Pages    int
	PrevURL        string
	NextURL        string
	Total          int
	Truncated      bool
	Overdue, Soon  int
	AwaitingPeople int
}

// queuePageSize is how many requests one work-queue page shows.
const queuePageSize = 25

// maxList bounds how many requests a listing reads for the work queue and
// the charts.
const maxList = 5000

// queue is the work queue: open requests (or those of one state), soonest
// deadline first.
func (c *Console) queue(w http.ResponseWriter, r *http.Request, v *visitor) {
	q := r.URL.Query()
	d := queueData{State: q.Get("state"), Type: q.Get("type")}
	for _, s := range dsr.States {
		d.States = append(d.States, string(s))
	}
	for _, t := range dsr.Types {
		d.Types = append(d.Types, string(t))
	}
	states := []string{string(dsr.StateReceived), string(dsr.StateInProgress), string(dsr.StateAwaitingApproval)}
	if d.State != "" {
		states = []string{d.State}
	}
	var all []store.Summary
	for _, s := range states {
		lq := url.Values{"state": {s}}
		if d.Type != "" {
			lq.Set("type", d.Type)
		}
		items, more, a, err := c.listAll(ctx(r), v.principal, lq, maxList)
		if err != nil {
			c.fail(w, r, v, "list requests", err)
			return
		}
		if !a.ok() {
			c.render(w, r, a.status, "queue", &page{Title: "Work queue", Nav: "queue", Visitor: v, Problem: viewProblem(a.problem), Data: d})
			return
		}
		d.Truncated = d.Truncated || more
		all = append(all, items...)
	}
	slices.SortStableFunc(all, func(a, b store.Summary) int { return a.DueAt.Compare(b.DueAt) })
	now := c.now()
	for _, s := range all {
		row := queueRow{Summary: s}
		if !s.State.Terminal() {
			left := s.DueAt.Sub(now)
			row.Overdue = left < 0
			row.DueSoon = !row.Overdue && left <= dsr.DueSoonWindow
			if row.Overdue {
				row.Left = days(-left) + " late"
				d.Overdue++
			} else {
				row.Left = days(left) + " left"
			}
			if row.DueSoon {
				d.Soon++
			}
			if s.State == dsr.StateAwaitingApproval {
				d.AwaitingPeople++
			}
		}
		d.Rows = append(d.Rows, row)
	}
	d.Total = len(d.Rows)
	d.Pages = max(1, (d.Total+queuePageSize-1)/queuePageSize)
	d.Page, _ = strconv.Atoi(q.Get("page"))
	d.Page = min(max(d.Page, 1), d.Pages)
	from := (d.Page - 1) * queuePageSize
	d.Rows = d.Rows[from:min(from+queuePageSize, d.Total)]
	link := func(n int) string {
		lq := url.Values{}
		if d.State != "" {
			lq.Set("state", d.State)
		}
		if d.Type != "" {
			lq.Set("type", d.Type)
		}
		lq.Set("page", strconv.Itoa(n))
		return Prefix + "?" + lq.Encode()
	}
	if d.Page > 1 {
		d.PrevURL = link(d.Page - 1)
	}
	if d.Page < d.Pages {
		d.NextURL = link(d.Page + 1)
	}
	c.render(w, r, http.StatusOK, "queue", &page{Title: "Work queue", Nav: "queue", Visitor: v, Data: d})
}

type chartsData struct {
	Stats                 stats
	Opened, Closed        template.HTML
	Ages, Median          template.HTML
	Types                 []dsr.Type
	ReadRequests          int
	CompletedWithinPeriod int
}

// charts shows the workload: requests opened and closed per week by type,
// open requests by time left, the median time to complete.
func (c *Console) charts(w http.ResponseWriter, r *http.Request, v *visitor) {
	items, more, a, err := c.listAll(ctx(r), v.principal, url.Values{}, maxList)
	if err != nil {
		c.fail(w, r, v, "list requests", err)
		return
	}
	if !a.ok() {
		c.render(w, r, a.status, "charts", &page{Title: "Charts", Nav: "charts", Visitor: v, Problem: viewProblem(a.problem), Data: chartsData{}})
		return
	}
	s := computeStats(items, c.now())
	s.Truncated = more
	d := chartsData{Stats: s, Types: dsr.Types, ReadRequests: len(items),
		Opened: weeklyChart("Requests opened per week", s.Weeks, func(w weekRow) map[dsr.Type]int { return w.Opened }),
		Closed: weeklyChart("Requests closed per week", s.Weeks, func(w weekRow) map[dsr.Type]int { return w.Closed }),
		Ages:   ageChart(s.Ages), Median: medianChart(s.Median)}
	c.render(w, r, http.StatusOK, "charts", &page{Title: "Charts", Nav: "charts", Visitor: v, Data: d})
}

// planRow is one dataset of the discovery report with its planned action.
type planRow struct {
	dsr.SourceSummary
	Action plannedAction
}

type requestData struct {
	Doc          dsr.Request
	Plan         []planRow
	Audit        []audit.Entry
	AuditHidden  bool
	Notice       string
	CanApprove   bool
	CanRedrive   bool
	CanCancel    bool
	CanExtend    bool
	MonthsLeft   []int
	Done         string
	Decided      bool
	ExportAsked  bool
	ExportURL    string
	ExportExpiry time.Time
}

// request shows one request: its state and deadline, timeline, the
// discovery report with the planned action per dataset, the decisions the
// person may take, the export, and the audit trail.
func (c *Console) request(w http.ResponseWriter, r *http.Request, v *visitor) {
	c.showRequest(w, r, v, http.StatusOK, nil, nil)
}

// showRequest renders the request page, with a refused action's problem or
// a freshly minted export link.
func (c *Console) showRequest(w http.ResponseWriter, r *http.Request, v *visitor, status int, prob *problem.Details, link *exportLink) {
	id := r.PathValue("id")
	a, err := c.call(ctx(r), v.principal, http.MethodGet, "/api/requests/"+url.PathEscape(id), nil, nil)
	if err != nil {
		c.fail(w, r, v, "read the request", err)
		return
	}
	if !a.ok() {
		c.render(w, r, a.status, "message", &page{Title: "Request not shown", Visitor: v, Problem: viewProblem(a.problem)})
		return
	}
	var d requestData
	if err := a.decode(&d.Doc); err != nil {
		c.fail(w, r, v, "read the request", err)
		return
	}
	d.Notice = dsr.RefusalNotice
	d.Done = r.URL.Query().Get("done")
	open := !d.Doc.State.Terminal()
	d.CanApprove = d.Doc.State == dsr.StateAwaitingApproval
	d.CanCancel = open
	d.CanRedrive = d.Doc.State == dsr.StateFailed
	original := d.Doc.DueAt
	if d.Doc.OriginalDueAt != nil {
		original = *d.Doc.OriginalDueAt
	}
	used := 0
	if d.Doc.Extension != nil {
		used = d.Doc.Extension.Months
	}
	for m := 1; m <= dsr.MaxExtensionMonths-used; m++ {
		d.MonthsLeft = append(d.MonthsLeft, m)
	}
	d.CanExtend = open && c.now().Before(original) && len(d.MonthsLeft) > 0
	if d.Doc.Discovery != nil {
		lift := d.Doc.Restriction != nil && d.Doc.Restriction.Lifted
		for _, s := range d.Doc.Discovery.Sources {
			d.Plan = append(d.Plan, planRow{SourceSummary: s, Action: plan(d.Doc.Type, c.sources.Dataset(s.Source), lift)})
		}
	}
	if link != nil {
		d.ExportAsked, d.ExportURL, d.ExportExpiry = true, link.URL, link.ExpiresAt
	}
	// The audit trail needs DSR.Read; without it the section says so.
	au, err := c.call(ctx(r), v.principal, http.MethodGet, "/api/requests/"+url.PathEscape(id)+"/audit", nil, nil)
	if err != nil {
		c.fail(w, r, v, "read the audit trail", err)
		return
	}
	if au.ok() {
		var trail struct {
			Items []audit.Entry `json:"items"`
		}
		if err := au.decode(&trail); err != nil {
			c.fail(w, r, v, "read the audit trail", err)
			return
		}
		d.Audit = trail.Items
	} else {
		d.AuditHidden = true
	}
	c.render(w, r, status, "request", &page{Title: "Request " + d.Doc.ID, Nav: "queue", Visitor: v, Problem: viewProblem(prob), Data: d})
}

type exportLink struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// act carries out a decision through the API: approve, reject, extend,
// cancel, or mint the export link.
func (c *Console) act(w http.ResponseWriter, r *http.Request, v *visitor) {
	id, action := r.PathValue("id"), r.PathValue("action")
	var body any
	switch action {
	case "approve", "redrive":
	case "reject":
		body = map[string]string{"reason": r.PostFormValue("reason")}
	case "cancel":
		body = map[string]string{"reason": r.PostFormValue("reason")}
	case "extend":
		months, err := strconv.Atoi(r.PostFormValue("months"))
		if err != nil {
			c.showRequest(w, r, v, http.StatusUnprocessableEntity, &problem.Details{Title: "Invalid extension", Detail: "months: choose 1 or 2",
				Errors: []problem.FieldError{{Field: "months", Detail: "choose 1 or 2"}}}, nil)
			return
		}
		body = map[string]any{"months": months, "reason": r.PostFormValue("reason")}
	case "export-link":
	default:
		c.render(w, r, http.StatusNotFound, "message", &page{Title: "Not found", Message: "No such action.", Visitor: v})
		return
	}
	a, err := c.call(ctx(r), v.principal, http.MethodPost, "/api/requests/"+url.PathEscape(id)+"/"+action, nil, body)
	if err != nil {
		c.fail(w, r, v, action+" the request", err)
		return
	}
	if !a.ok() {
		c.showRequest(w, r, v, a.status, a.problem, nil)
		return
	}
	if action == "export-link" {
		var l exportLink
		if err := a.decode(&l); err != nil {
			c.fail(w, r, v, "mint the export link", err)
			return
		}
		c.showRequest(w, r, v, http.StatusOK, nil, &l)
		return
	}
	// Post/redirect/get: a reload does not decide twice.
	http.Redirect(w, r, Prefix+"requests/"+url.PathEscape(id)+"?done="+url.QueryEscape(action), http.StatusSeeOther)
}

// newData is the submission form, with what was entered when the API
// refused it.
type newData struct {
	Types  []string
	Values map[string]string
}

// V returns the value entered in a field.
func (d newData) V(name string) string { return d.Values[name] }

func (c *Console) newForm(w http.ResponseWriter, r *http.Request, v *visitor) {
	c.render(w, r, http.StatusOK, "new", &page{Title: "New request", Nav: "new", Visitor: v, Data: newForm(nil)})
}

func newForm(values map[string]string) newData {
	d := newData{Values: values}
	for _, t := range dsr.Types {
		d.Types = append(d.Types, string(t))
	}
	if d.Values == nil {
		d.Values = map[string]string{"type": string(dsr.TypeAccess)}
	}
	return d
}

// formFields are the submission form's fields.
var formFields = []string{"type", "email", "phone", "name", "idName", "idValue", "receivedAt", "note",
	"correctEmail", "correctPhone", "correctName", "lift"}

// submit sends the form to POST /api/requests; its field errors are shown
// beside the fields.
func (c *Console) submit(w http.ResponseWriter, r *http.Request, v *visitor) {
	values := map[string]string{}
	for _, f := range formFields {
		values[f] = strings.TrimSpace(r.PostFormValue(f))
	}
	sub := map[string]any{"type": values["type"]}
	subject := map[string]any{}
	for _, f := range []string{"email", "phone", "name"} {
		if values[f] != "" {
			subject[f] = values[f]
		}
	}
	if values["idName"] != "" || values["idValue"] != "" {
		subject["ids"] = map[string]string{values["idName"]: values["idValue"]}
	}
	sub["subject"] = subject
	if s := values["receivedAt"]; s != "" {
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			c.render(w, r, http.StatusUnprocessableEntity, "new", &page{Title: "New request", Nav: "new", Visitor: v, Data: newForm(values),
				Problem: &problemView{Title: "Invalid request", Detail: "receivedAt: must be a date", Fields: map[string]string{"receivedAt": "must be a date"}}})
			return
		}
		sub["receivedAt"] = t.Format(time.RFC3339)
	}
	if values["note"] != "" {
		sub["note"] = values["note"]
	}
	if values["type"] == string(dsr.TypeRectification) {
		corr := map[string]string{}
		for f, k := range map[string]string{"correctEmail": "email", "correctPhone": "phone", "correctName": "name"} {
			if values[f] != "" {
				corr[k] = values[f]
			}
		}
		sub["corrections"] = corr
	}
	if values["type"] == string(dsr.TypeRestriction) && values["lift"] == "on" {
		sub["lift"] = true
	}
	a, err := c.call(ctx(r), v.principal, http.MethodPost, "/api/requests", nil, sub)
	if err != nil {
		c.fail(w, r, v, "submit the request", err)
		return
	}
	if !a.ok() {
		c.render(w, r, a.status, "new", &page{Title: "New request", Nav: "new", Visitor: v, Data: newForm(values), Problem: viewProblem(a.problem)})
		return
	}
	var doc dsr.Request
	if err := a.decode(&doc); err != nil {
		c.fail(w, r, v, "submit the request", err)
		return
	}
	http.Redirect(w, r, Prefix+"requests/"+url.PathEscape(doc.ID)+"?done=submitted", http.StatusSeeOther)
}

type restrictionData struct {
	Kind, Value string
	Asked       bool
	Answer      struct {
		Restricted bool       `json:"restricted"`
		Since      *time.Time `json:"since"`
		Ground     string     `json:"ground"`
		RequestID  string     `json:"requestId"`
		LiftedAt   *time.Time `json:"liftedAt"`
		LiftedBy   string     `json:"liftedBy"`
	}
}

func (c *Console) restrictionForm(w http.ResponseWriter, r *http.Request, v *visitor) {
	c.render(w, r, http.StatusOK, "restrictions", &page{Title: "Restrictions", Nav: "restrictions", Visitor: v, Data: restrictionData{Kind: "email"}})
}

// restrictionLookup asks GET /api/restrictions in process: the identifier
// travels in the form body, never in a URL that logs could keep.
func (c *Console) restrictionLookup(w http.ResponseWriter, r *http.Request, v *visitor) {
	d := restrictionData{Kind: r.PostFormValue("kind"), Value: strings.TrimSpace(r.PostFormValue("value"))}
	switch d.Kind {
	case "email", "phone", "id":
	default:
		d.Kind = "email"
	}
	a, err := c.call(ctx(r), v.principal, http.MethodGet, "/api/restrictions", url.Values{d.Kind: {d.Value}}, nil)
	if err != nil {
		c.fail(w, r, v, "look up the restriction", err)
		return
	}
	if !a.ok() {
		c.render(w, r, a.status, "restrictions", &page{Title: "Restrictions", Nav: "restrictions", Visitor: v, Data: d, Problem: viewProblem(a.problem)})
		return
	}
	if err := a.decode(&d.Answer); err != nil {
		c.fail(w, r, v, "look up the restriction", err)
		return
	}
	d.Asked = true
	c.render(w, r, http.StatusOK, "restrictions", &page{Title: "Restrictions", Nav: "restrictions", Visitor: v, Data: d})
}
