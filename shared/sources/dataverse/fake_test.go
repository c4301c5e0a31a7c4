package dataverse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeDV is a local stand-in for the Dataverse Web API: the documented
// contract the connector is written against. It serves entity sets from
// memory with realistic payloads (@odata.context, @odata.etag, lower-case
// GUIDs, lookup _x_value columns with their annotations, formatted values),
// implements exactly the $filter forms the connector may send — parsed
// strictly, anything else is a 400 and a test failure — pages with
// @odata.nextLink and a $skiptoken paging cookie honouring Prefer:
// odata.maxpagesize, and checks If-Match on DELETE and PATCH. Every request
// is asserted (token, OData headers, encoding of the query) and logged.
type fakeDV struct {
	t        *testing.T
	srv      *httptest.Server
	token    string
	pageSize int

	mu        sync.Mutex
	sets      map[string]*fakeSet
	version   int64
	faults    []*fault
	log       []seenReq
	nextLinks map[string]bool
	// nextLinkBase, if set, replaces scheme and host of every nextLink.
	nextLinkBase string
	// badTokenExpected turns a wrong token from a test failure into the
	// 401 the test wants to see.
	badTokenExpected bool
	// onRequest is called, without the lock, before a request is served.
	onRequest func(r seenReq)
}

type fakeSet struct {
	name    string // entity set, e.g. "contacts"
	logical string // logical name, e.g. "contact"
	key     string
	columns []string // schema order, the order of every payload
	rows    map[string]*fakeRow
}

type fakeRow struct {
	version int64
	vals    map[string]any
}

// seenReq is one logged request.
type seenReq struct {
	method    string
	set       string
	key       string // GUID of a record request
	rawQuery  string
	filter    string
	hasFilter bool
	sel       string
	skiptoken string
	terms     int
	prefer    string
	ifMatch   string
	body      string
	returned  []string // keys of the records a collection GET returned
}

// fault is a scripted response to requests matching method and set.
type fault struct {
	method string // "" = any
	set    string // "" = any
	record bool   // only record requests (set(key))
	status int    // -1 drops the connection
	header map[string]string
	body   string
	times  int // remaining; < 0 forever
}

func newFake(t *testing.T, pageSize int) *fakeDV {
	f := &fakeDV{t: t, token: "test-token-1", pageSize: pageSize, sets: map[string]*fakeSet{}, nextLinks: map[string]bool{}}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeDV) addSet(name, logical, key string, columns ...string) *fakeSet {
	s := &fakeSet{name: name, logical: logical, key: key, columns: append([]string{key}, columns...), rows: map[string]*fakeRow{}}
	f.sets[name] = s
	return s
}

// put adds or replaces a row; vals are column → value (unset columns are null).
func (f *fakeDV) put(set string, vals map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sets[set]
	f.version++
	s.rows[vals[s.key].(string)] = &fakeRow{version: f.version, vals: vals}
}

// touch simulates another user's update: the row gets a new version.
func (f *fakeDV) touch(set, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.version++
	f.sets[set].rows[key].version = f.version
}

func (f *fakeDV) remove(set, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.sets[set].rows, key)
}

func (f *fakeDV) row(set, key string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.sets[set].rows[key]
	if r == nil {
		return nil
	}
	return r.vals
}

func (f *fakeDV) etag(set, key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return etagOf(f.sets[set].rows[key].version)
}

func etagOf(v int64) string { return `W/"` + strconv.FormatInt(v, 10) + `"` }

func (f *fakeDV) addFault(ft *fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, ft)
}

func (f *fakeDV) setToken(token string, expectBad bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.token, f.badTokenExpected = token, expectBad
}

func (f *fakeDV) setHook(h func(seenReq)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onRequest = h
}

func (f *fakeDV) requests() []seenReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

func (f *fakeDV) resetLog() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = nil
}

// dvError writes a Dataverse error body. Like the real service, the
// message may echo values of the request.
func dvError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": msg}})
	w.Write(b)
}

var (
	recordPathRE = regexp.MustCompile(`^/api/data/v9\.2/([A-Za-z_][A-Za-z0-9_]*)\(([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\)$`)
	setPathRE    = regexp.MustCompile(`^/api/data/v9\.2/([A-Za-z_][A-Za-z0-9_]*)$`)
	rawQueryRE   = regexp.MustCompile(`^[A-Za-z0-9\-._~%&=$]*$`)
)

func (f *fakeDV) serve(w http.ResponseWriter, r *http.Request) {
	t := f.t
	body, _ := io.ReadAll(r.Body)
	seen := seenReq{method: r.Method, rawQuery: r.URL.RawQuery, prefer: r.Header.Get("Prefer"), ifMatch: r.Header.Get("If-Match"), body: string(body)}
	if m := recordPathRE.FindStringSubmatch(r.URL.Path); m != nil {
		seen.set, seen.key = m[1], m[2]
	} else if m := setPathRE.FindStringSubmatch(r.URL.Path); m != nil {
		seen.set = m[1]
	}
	queryErr := parseQuery(r.URL.RawQuery, &seen)
	f.mu.Lock()
	f.log = append(f.log, seen)
	idx := len(f.log) - 1
	hook, token, badTokenExpected := f.onRequest, f.token, f.badTokenExpected
	f.mu.Unlock()
	// Every request: the token and the OData headers.
	if got := r.Header.Get("Authorization"); got != "Bearer "+token {
		if !badTokenExpected {
			t.Errorf("fake dataverse: Authorization = %q, want the bearer token", got)
		}
		dvError(w, 401, "0x80072560", "The user is not a member of the organization.")
		return
	}
	fail := func(format string, args ...any) {
		t.Errorf("fake dataverse: %s %s: "+format, append([]any{r.Method, r.URL.Path}, args...)...)
		dvError(w, 400, "0x80048d19", "test server rejected the request")
	}
	for h, want := range map[string]string{"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"} {
		if got := r.Header.Get(h); got != want {
			fail("header %s = %q, want %q", h, got, want)
			return
		}
	}
	if seen.set == "" {
		fail("path is not an entity set or a record of one")
		return
	}
	if queryErr != "" {
		fail("%s", queryErr)
		return
	}
	if hook != nil {
		hook(seen)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ft := range f.faults {
		if ft.times == 0 || (ft.method != "" && ft.method != r.Method) || (ft.set != "" && ft.set != seen.set) || (ft.record && seen.key == "") {
			continue
		}
		if ft.times > 0 {
			ft.times--
		}
		if ft.status < 0 {
			hj, ok := w.(http.Hijacker)
			if !ok {
				t.Fatal("cannot hijack")
			}
			conn, _, _ := hj.Hijack()
			conn.Close()
			return
		}
		for k, v := range ft.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(ft.status)
		io.WriteString(w, ft.body)
		return
	}
	s := f.sets[seen.set]
	if s == nil {
		dvError(w, 404, "0x8006088a", "Resource not found for the segment '"+seen.set+"'.")
		return
	}
	var sel []string
	if seen.sel != "" {
		sel = strings.Split(seen.sel, ",")
		for _, col := range sel {
			if !slices.Contains(s.columns, col) {
				fail("$select names unknown column %q", col)
				return
			}
		}
	}
	switch {
	case r.Method == "GET" && seen.key == "":
		f.serveQuery(w, r, s, sel, &seen, fail)
		f.log[idx] = seen
	case r.Method == "GET":
		if seen.hasFilter || seen.skiptoken != "" {
			fail("a record GET takes no $filter or $skiptoken")
			return
		}
		row := s.rows[seen.key]
		if row == nil {
			dvError(w, 404, "0x80040217", s.logical+" With Id = "+seen.key+" Does Not Exist")
			return
		}
		ctx := f.srv.URL + "/api/data/v9.2/$metadata#" + s.name
		if len(sel) > 0 {
			ctx += "(" + strings.Join(sel, ",") + ")"
		}
		b := []byte(`{"@odata.context":` + jsonString(ctx+"/$entity") + ",")
		b = append(b, s.entityJSON(row, sel)[1:]...)
		w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
		w.Header().Set("ETag", etagOf(row.version))
		w.Write(b)
	case r.Method == "DELETE" || r.Method == "PATCH":
		if r.URL.RawQuery != "" || seen.key == "" {
			fail("%s takes a record path and no query", r.Method)
			return
		}
		if seen.ifMatch == "" {
			fail("%s without If-Match", r.Method)
			return
		}
		row := s.rows[seen.key]
		if row == nil {
			dvError(w, 404, "0x80040217", s.logical+" With Id = "+seen.key+" Does Not Exist")
			return
		}
		if seen.ifMatch != etagOf(row.version) {
			dvError(w, 412, "0x80060882", "The version of the existing record doesn't match the RowVersion property provided.")
			return
		}
		if r.Method == "DELETE" {
			if len(body) > 0 {
				fail("DELETE with a body")
				return
			}
			delete(s.rows, seen.key)
			w.WriteHeader(204)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			fail("PATCH Content-Type = %q", ct)
			return
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var patch map[string]any
		if err := dec.Decode(&patch); err != nil || len(patch) == 0 {
			fail("PATCH body is not a non-empty JSON object: %v", err)
			return
		}
		for col := range patch {
			if !slices.Contains(s.columns, col) || col == s.key || isLookup(col) {
				fail("PATCH sets column %q, which cannot be written", col)
				return
			}
		}
		vals := map[string]any{}
		for k, v := range row.vals {
			vals[k] = v
		}
		for k, v := range patch {
			vals[k] = v
		}
		f.version++
		s.rows[seen.key] = &fakeRow{version: f.version, vals: vals}
		w.WriteHeader(204)
	default:
		fail("unexpected method")
	}
}

// parseQuery checks a raw query — only $select, $filter and $skiptoken,
// each once, fully percent-encoded (no raw space, quote, plus, comma or
// parenthesis) — and decodes it into seen.
func parseQuery(raw string, seen *seenReq) string {
	if !rawQueryRE.MatchString(raw) {
		return fmt.Sprintf("raw query %q has characters that are not percent-encoded", raw)
	}
	if raw == "" {
		return ""
	}
	keys := map[string]bool{}
	for part := range strings.SplitSeq(raw, "&") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || keys[k] || (k != "$select" && k != "$filter" && k != "$skiptoken") {
			return fmt.Sprintf("bad query part %q", part)
		}
		keys[k] = true
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return fmt.Sprintf("query part %s: %v", k, err)
		}
		switch k {
		case "$select":
			seen.sel = dv
		case "$filter":
			seen.filter, seen.hasFilter = dv, true
		case "$skiptoken":
			seen.skiptoken = dv
		}
	}
	return ""
}

// serveQuery answers a GET on an entity set: strict $filter, rows in key
// order, pages of odata.maxpagesize with a paging cookie in $skiptoken.
func (f *fakeDV) serveQuery(w http.ResponseWriter, r *http.Request, s *fakeSet, sel []string, seen *seenReq, fail func(string, ...any)) {
	if seen.prefer != "odata.maxpagesize="+strconv.Itoa(f.pageSize) {
		fail("Prefer = %q, want odata.maxpagesize=%d", seen.prefer, f.pageSize)
		return
	}
	if !seen.hasFilter {
		fail("a query without $filter reads the whole table")
		return
	}
	terms, err := parseFilter(seen.filter)
	if err != nil {
		fail("$filter %q: %v", seen.filter, err)
		return
	}
	seen.terms = len(terms)
	// The connector promises at most 25 terms per request.
	if len(terms) > 25 {
		fail("$filter has %d terms, more than 25", len(terms))
		return
	}
	for _, tm := range terms {
		if !slices.Contains(s.columns, tm.col) {
			fail("$filter names unknown column %q", tm.col)
			return
		}
		guidCol := tm.col == s.key || isLookup(tm.col)
		if guidCol != tm.isGUID {
			// Dataverse: "A binary operator with incompatible types was detected."
			fail("$filter compares column %q with a literal of the wrong type", tm.col)
			return
		}
	}
	if seen.skiptoken != "" {
		link := "https://" + r.Host + r.URL.Path + "?" + r.URL.RawQuery
		if !f.nextLinks[link] {
			fail("$skiptoken request is not a nextLink this server sent")
			return
		}
	}
	var keys []string
	for k, row := range s.rows {
		if slices.ContainsFunc(terms, func(tm filterTerm) bool { return tm.eval(row.vals) }) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	page := 1
	if seen.skiptoken != "" {
		m := cookieRE.FindStringSubmatch(seen.skiptoken)
		if m == nil {
			fail("unreadable paging cookie")
			return
		}
		page, _ = strconv.Atoi(m[1])
		last := strings.ToLower(m[2])
		i, _ := slices.BinarySearch(keys, last)
		for i < len(keys) && keys[i] <= last {
			i++
		}
		keys = keys[i:]
	}
	var next string
	if len(keys) > f.pageSize {
		keys = keys[:f.pageSize]
		first, last := strings.ToUpper(keys[0]), strings.ToUpper(keys[len(keys)-1])
		inner := url.QueryEscape(url.QueryEscape(fmt.Sprintf(`<cookie page="%d"><%s last="{%s}" first="{%s}" /></cookie>`, page, s.key, last, first)))
		cookie := fmt.Sprintf(`<cookie pagenumber="%d" pagingcookie="%s" istracking="False" />`, page+1, inner)
		q := r.URL.RawQuery
		if i := strings.Index(q, "&$skiptoken="); i >= 0 {
			q = q[:i]
		}
		base := "https://" + r.Host
		if f.nextLinkBase != "" {
			base = f.nextLinkBase
		}
		next = base + r.URL.Path + "?" + q + "&$skiptoken=" + queryEscape(cookie)
		f.nextLinks[next] = true
	}
	ctx := f.srv.URL + "/api/data/v9.2/$metadata#" + s.name
	if len(sel) > 0 {
		ctx += "(" + strings.Join(sel, ",") + ")"
	}
	var b bytes.Buffer
	b.WriteString(`{"@odata.context":` + jsonString(ctx) + `,"value":[`)
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(s.entityJSON(s.rows[k], sel))
	}
	b.WriteString("]")
	if next != "" {
		b.WriteString(`,"@odata.nextLink":` + jsonString(next))
	}
	b.WriteString("}")
	seen.returned = keys
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	if next != "" {
		w.Header().Set("Preference-Applied", "odata.maxpagesize="+strconv.Itoa(f.pageSize))
	}
	w.Write(b.Bytes())
}

var cookieRE = regexp.MustCompile(`(?i)^<cookie pagenumber="(\d+)" pagingcookie="[^"]*last%253d%2522%257b([0-9A-F-]{36})%257d[^"]*" istracking="False" />$`)

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// entityJSON is a row as Dataverse writes it: @odata.etag first, then the
// selected columns (the key always) in schema order, lookups preceded by
// their annotations, state codes followed by a formatted value.
func (s *fakeSet) entityJSON(row *fakeRow, sel []string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"@odata.etag":` + jsonString(etagOf(row.version)))
	for _, col := range s.columns {
		if len(sel) > 0 && col != s.key && !slices.Contains(sel, col) {
			continue
		}
		v := row.vals[col]
		if isLookup(col) && v != nil {
			nav := strings.TrimSuffix(strings.TrimPrefix(col, "_"), "_value")
			b.WriteString(`,` + jsonString(col+"@OData.Community.Display.V1.FormattedValue") + `:"Display name"`)
			b.WriteString(`,` + jsonString(col+"@Microsoft.Dynamics.CRM.associatednavigationproperty") + `:` + jsonString(nav))
			b.WriteString(`,` + jsonString(col+"@Microsoft.Dynamics.CRM.lookuplogicalname") + `:"contact"`)
		}
		enc, _ := json.Marshal(v)
		b.WriteString(`,` + jsonString(col) + `:` + string(enc))
		if col == "statecode" {
			b.WriteString(`,"statecode@OData.Community.Display.V1.FormattedValue":"Active"`)
		}
	}
	b.WriteString("}")
	return b.Bytes()
}

// filterTerm is one term of the $filter grammar the connector may send:
//
//	filter := term (" or " term)*
//	term   := col " eq " (string | guid) | "contains(" col "," string ")"
type filterTerm struct {
	contains bool
	col      string
	lit      string
	isGUID   bool
}

var (
	identPrefixRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`)
	guidPrefixRE  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
)

func parseFilter(s string) ([]filterTerm, error) {
	var out []filterTerm
	p := s
	ident := func() (string, error) {
		id := identPrefixRE.FindString(p)
		if id == "" {
			return "", fmt.Errorf("identifier expected at %q", p)
		}
		p = p[len(id):]
		return id, nil
	}
	expect := func(tok string) error {
		if !strings.HasPrefix(p, tok) {
			return fmt.Errorf("%q expected at %q", tok, p)
		}
		p = p[len(tok):]
		return nil
	}
	str := func() (string, error) {
		if err := expect("'"); err != nil {
			return "", err
		}
		var b strings.Builder
		for {
			i := strings.IndexByte(p, '\'')
			if i < 0 {
				return "", fmt.Errorf("unterminated string")
			}
			b.WriteString(p[:i])
			p = p[i+1:]
			if strings.HasPrefix(p, "'") {
				b.WriteByte('\'')
				p = p[1:]
				continue
			}
			return b.String(), nil
		}
	}
	for {
		var tm filterTerm
		var err error
		if strings.HasPrefix(p, "contains(") {
			p = p[len("contains("):]
			tm.contains = true
			if tm.col, err = ident(); err != nil {
				return nil, err
			}
			if err = expect(","); err != nil {
				return nil, err
			}
			if tm.lit, err = str(); err != nil {
				return nil, err
			}
			if err = expect(")"); err != nil {
				return nil, err
			}
		} else {
			if tm.col, err = ident(); err != nil {
				return nil, err
			}
			if err = expect(" eq "); err != nil {
				return nil, err
			}
			if strings.HasPrefix(p, "'") {
				if tm.lit, err = str(); err != nil {
					return nil, err
				}
			} else if g := guidPrefixRE.FindString(p); g != "" {
				tm.lit, tm.isGUID = g, true
				p = p[len(g):]
			} else {
				return nil, fmt.Errorf("literal expected at %q", p)
			}
		}
		out = append(out, tm)
		if p == "" {
			return out, nil
		}
		if err := expect(" or "); err != nil {
			return nil, err
		}
	}
}

// eval applies a term as Dataverse would: eq case-insensitively (SQL
// collation), contains as LIKE '%lit%' (where '_' and '%' are wildcards),
// null never matching.
func (tm filterTerm) eval(vals map[string]any) bool {
	v, ok := vals[tm.col].(string)
	if !ok {
		return false
	}
	if !tm.contains {
		return strings.EqualFold(v, tm.lit)
	}
	var re strings.Builder
	re.WriteString("(?is)")
	for _, r := range tm.lit {
		switch r {
		case '%':
			re.WriteString(".*")
		case '_':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return regexp.MustCompile(re.String()).MatchString(v)
}
