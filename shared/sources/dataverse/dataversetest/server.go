// Package dataversetest is a local stand-in for the Dataverse Web API, for
// tests of the dataverse connector and of anything built on it.
//
// A Server serves entity sets from memory over httptest TLS with realistic
// payloads (@odata.context, @odata.etag, lower-case GUIDs, lookup _x_value
// columns with their annotations, formatted values). It implements exactly
// the $filter forms the connector may send — parsed strictly — pages with
// @odata.nextLink and a $skiptoken paging cookie honouring Prefer:
// odata.maxpagesize, and checks If-Match on DELETE and PATCH. Every request
// is asserted (bearer token, OData headers, percent-encoding of the query,
// known columns): anything unexpected fails the test (t.Errorf) and is
// answered 400. Every request is logged for assertions (Requests).
//
// Usage:
//
//	srv := dataversetest.New(t, 50) // the connector's Config.PageSize must be 50
//	srv.AddEntitySet("contacts", "contact", "contactid", "fullname", "emailaddress1")
//	srv.Put("contacts", map[string]any{"contactid": "c0000001-7c1e-4f5a-9b3d-000000001eef",
//		"fullname": "Ann Example", "emailaddress1": "ann@example.com"})
//	conn, err := dataverse.New(&dataverse.Config{URL: srv.URL(), PageSize: 50, Tables: tables},
//		srv.Client(), srv.Credential())
//	// … run the code under test …
//	if srv.Row("contacts", "c0000001-7c1e-4f5a-9b3d-000000001eef") != nil { t.Error("not erased") }
//
// The package does not import the connector, so the connector's own
// (internal) tests can use it.
package dataversetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
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

// DefaultToken is the bearer token a new Server expects.
const DefaultToken = "test-token-1"

// Server is a fake Dataverse environment. Its methods are safe for
// concurrent use, also from a request hook (SetHook).
type Server struct {
	t        testing.TB
	srv      *httptest.Server
	pageSize int

	mu        sync.Mutex
	token     string
	sets      map[string]*entitySet
	version   int64
	faults    []*Fault
	log       []Request
	nextLinks map[string]bool
	// nextLinkBase, if set, replaces scheme and host of every nextLink.
	nextLinkBase string
	// badTokenExpected turns a wrong token from a test failure into the
	// 401 the test wants to see.
	badTokenExpected bool
	// onRequest is called, without the lock, before a request is served.
	onRequest func(r Request)
}

type entitySet struct {
	name    string // entity set, e.g. "contacts"
	logical string // logical name, e.g. "contact"
	key     string
	columns []string // schema order, the order of every payload
	rows    map[string]*row
}

type row struct {
	version int64
	vals    map[string]any
}

// Request is one logged request, decoded.
type Request struct {
	// Method is the HTTP method.
	Method string
	// Set is the entity set of the path ("" if the path is not one).
	Set string
	// Key is the GUID of a record request (set(key)), "" for a collection.
	Key string
	// RawQuery is the query exactly as sent.
	RawQuery string
	// Filter is the decoded $filter; HasFilter tells whether one was sent.
	Filter    string
	HasFilter bool
	// Select is the decoded $select.
	Select string
	// SkipToken is the decoded $skiptoken (a paging cookie).
	SkipToken string
	// Terms is the number of OR-ed terms of the $filter of a collection GET.
	Terms int
	// Prefer and IfMatch are the request headers.
	Prefer  string
	IfMatch string
	// Body is the request body.
	Body string
	// Returned lists the keys of the records a collection GET returned.
	Returned []string
}

// Fault is a scripted answer to the requests it matches, given after the
// request passed the checks (token, headers, query) and instead of serving
// it.
type Fault struct {
	// Method matches the HTTP method; "" matches any.
	Method string
	// Set matches the entity set; "" matches any.
	Set string
	// Record restricts the fault to record requests (set(key)).
	Record bool
	// Status is the answer's status; -1 drops the connection instead.
	Status int
	// Header holds the answer's headers.
	Header map[string]string
	// Body is the answer's body.
	Body string
	// Times is how many requests the fault answers; < 0 means forever.
	Times int
}

// New starts a Server (closed when the test ends) that expects
// Prefer: odata.maxpagesize=pageSize on every query and pages by it.
func New(t testing.TB, pageSize int) *Server {
	t.Helper()
	s := &Server{t: t, token: DefaultToken, pageSize: pageSize, sets: map[string]*entitySet{}, nextLinks: map[string]bool{}}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the environment's root, e.g. "https://127.0.0.1:43127": the
// connector's Config.URL. The Web API is under /api/data/v9.2/.
func (s *Server) URL() string { return s.srv.URL }

// Client returns an HTTP client that trusts the server's certificate.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Token returns the bearer token the server currently expects.
func (s *Server) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// SetToken changes the bearer token the server expects. With expectBad, a
// request carrying another token is answered 401 without failing the test;
// otherwise it fails the test (and is answered 401 too).
func (s *Server) SetToken(token string, expectBad bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token, s.badTokenExpected = token, expectBad
}

// AddEntitySet declares an entity set: its name (e.g. "contacts"), logical
// name ("contact"), key column (a GUID, "contactid") and other columns in
// schema order, which is the order of every payload. Columns named
// _x_value are lookups (GUIDs, annotated, not writable by PATCH); the
// key and lookups compare with GUID literals, every other column with
// string literals.
func (s *Server) AddEntitySet(name, logical, key string, columns ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sets[name] = &entitySet{name: name, logical: logical, key: key, columns: append([]string{key}, columns...), rows: map[string]*row{}}
}

// set returns the entity set or fails the test; s.mu must be held.
func (s *Server) set(name string) *entitySet {
	es := s.sets[name]
	if es == nil {
		s.t.Errorf("dataversetest: no entity set %q (AddEntitySet first)", name)
	}
	return es
}

// Put adds or replaces a row with a new version (ETag). vals maps columns
// to values (JSON-encodable; unset columns are null) and must hold the key,
// a lower-case GUID string.
func (s *Server) Put(set string, vals map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	es := s.set(set)
	if es == nil {
		return
	}
	key, ok := vals[es.key].(string)
	if !ok || !guidRE.MatchString(key) {
		s.t.Errorf("dataversetest: Put(%s): key %s = %v is not a lower-case GUID", set, es.key, vals[es.key])
		return
	}
	for col := range vals {
		if !slices.Contains(es.columns, col) {
			s.t.Errorf("dataversetest: Put(%s): unknown column %q", set, col)
			return
		}
	}
	s.version++
	es.rows[key] = &row{version: s.version, vals: maps.Clone(vals)}
}

// Touch simulates another user's update: the row gets a new version, so an
// If-Match with its former ETag fails with 412.
func (s *Server) Touch(set, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if es := s.set(set); es != nil {
		if r := es.rows[key]; r != nil {
			s.version++
			r.version = s.version
		} else {
			s.t.Errorf("dataversetest: Touch(%s, %s): no such row", set, key)
		}
	}
}

// Remove deletes a row (if present), as another user would.
func (s *Server) Remove(set, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if es := s.set(set); es != nil {
		delete(es.rows, key)
	}
}

// Row returns a copy of a row's values, nil if the row does not exist.
func (s *Server) Row(set, key string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	es := s.set(set)
	if es == nil || es.rows[key] == nil {
		return nil
	}
	return maps.Clone(es.rows[key].vals)
}

// Keys returns the keys of a set's rows, sorted.
func (s *Server) Keys(set string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	es := s.set(set)
	if es == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(es.rows))
}

// ETag returns a row's current ETag (W/"n"), "" if the row does not exist.
func (s *Server) ETag(set, key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	es := s.set(set)
	if es == nil || es.rows[key] == nil {
		return ""
	}
	return etagOf(es.rows[key].version)
}

func etagOf(v int64) string { return `W/"` + strconv.FormatInt(v, 10) + `"` }

// AddFault scripts answers to matching requests; faults are tried in the
// order added, the first matching one with Times left answers.
func (s *Server) AddFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// SetHook sets a function called for every request that passed the
// checks, before it is served (and before faults apply), without the
// server's lock: it may call the server's methods, e.g. to change a row
// while the connector works. nil removes it.
func (s *Server) SetHook(h func(Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRequest = h
}

// SetNextLinkBase makes every @odata.nextLink point at base (scheme and
// host, e.g. "https://attacker.example") instead of the server; "" restores
// it.
func (s *Server) SetNextLinkBase(base string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextLinkBase = base
}

// Requests returns the requests received so far (since ResetLog), in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// ResetLog forgets the requests received so far.
func (s *Server) ResetLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
}

// dvError writes a Dataverse error body. Like the real service, the
// message may echo values of the request.
func dvError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": msg}})
	w.Write(b)
}

const guidPattern = `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`

var (
	recordPathRE = regexp.MustCompile(`^/api/data/v9\.2/([A-Za-z_][A-Za-z0-9_]*)\((` + guidPattern + `)\)$`)
	setPathRE    = regexp.MustCompile(`^/api/data/v9\.2/([A-Za-z_][A-Za-z0-9_]*)$`)
	rawQueryRE   = regexp.MustCompile(`^[A-Za-z0-9\-._~%&=$]*$`)
	guidRE       = regexp.MustCompile(`^` + guidPattern + `$`)
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	t := s.t
	body, _ := io.ReadAll(r.Body)
	seen := Request{Method: r.Method, RawQuery: r.URL.RawQuery, Prefer: r.Header.Get("Prefer"), IfMatch: r.Header.Get("If-Match"), Body: string(body)}
	if m := recordPathRE.FindStringSubmatch(r.URL.Path); m != nil {
		seen.Set, seen.Key = m[1], m[2]
	} else if m := setPathRE.FindStringSubmatch(r.URL.Path); m != nil {
		seen.Set = m[1]
	}
	queryErr := parseQuery(r.URL.RawQuery, &seen)
	s.mu.Lock()
	s.log = append(s.log, seen)
	idx := len(s.log) - 1
	hook, token, badTokenExpected := s.onRequest, s.token, s.badTokenExpected
	s.mu.Unlock()
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
	for _, h := range []struct{ name, want string }{{"Accept", "application/json"}, {"OData-MaxVersion", "4.0"}, {"OData-Version", "4.0"}} {
		if got := r.Header.Get(h.name); got != h.want {
			fail("header %s = %q, want %q", h.name, got, h.want)
			return
		}
	}
	if seen.Set == "" {
		fail("path is not an entity set or a record of one")
		return
	}
	if queryErr != nil {
		fail("%v", queryErr)
		return
	}
	if hook != nil {
		hook(seen)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ft := range s.faults {
		if ft.Times == 0 || (ft.Method != "" && ft.Method != r.Method) || (ft.Set != "" && ft.Set != seen.Set) || (ft.Record && seen.Key == "") {
			continue
		}
		if ft.Times > 0 {
			ft.Times--
		}
		if ft.Status < 0 {
			hj, ok := w.(http.Hijacker)
			if !ok {
				t.Errorf("fake dataverse: cannot hijack the connection")
				return
			}
			conn, _, _ := hj.Hijack()
			conn.Close()
			return
		}
		for k, v := range ft.Header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(ft.Status)
		io.WriteString(w, ft.Body)
		return
	}
	es := s.sets[seen.Set]
	if es == nil {
		dvError(w, 404, "0x8006088a", "Resource not found for the segment '"+seen.Set+"'.")
		return
	}
	var sel []string
	if seen.Select != "" {
		sel = strings.Split(seen.Select, ",")
		for _, col := range sel {
			if !slices.Contains(es.columns, col) {
				fail("$select names unknown column %q", col)
				return
			}
		}
	}
	switch {
	case r.Method == "GET" && seen.Key == "":
		s.serveQuery(w, r, es, sel, &seen, fail)
		s.log[idx] = seen
	case r.Method == "GET":
		if seen.HasFilter || seen.SkipToken != "" {
			fail("a record GET takes no $filter or $skiptoken")
			return
		}
		rw := es.rows[seen.Key]
		if rw == nil {
			dvError(w, 404, "0x80040217", es.logical+" With Id = "+seen.Key+" Does Not Exist")
			return
		}
		ctx := s.srv.URL + "/api/data/v9.2/$metadata#" + es.name
		if len(sel) > 0 {
			ctx += "(" + strings.Join(sel, ",") + ")"
		}
		b := []byte(`{"@odata.context":` + jsonString(ctx+"/$entity") + ",")
		b = append(b, es.entityJSON(rw, sel)[1:]...)
		w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
		w.Header().Set("ETag", etagOf(rw.version))
		w.Write(b)
	case r.Method == "DELETE" || r.Method == "PATCH":
		if r.URL.RawQuery != "" || seen.Key == "" {
			fail("%s takes a record path and no query", r.Method)
			return
		}
		if seen.IfMatch == "" {
			fail("%s without If-Match", r.Method)
			return
		}
		rw := es.rows[seen.Key]
		if rw == nil {
			dvError(w, 404, "0x80040217", es.logical+" With Id = "+seen.Key+" Does Not Exist")
			return
		}
		if seen.IfMatch != etagOf(rw.version) {
			dvError(w, 412, "0x80060882", "The version of the existing record doesn't match the RowVersion property provided.")
			return
		}
		if r.Method == "DELETE" {
			if len(body) > 0 {
				fail("DELETE with a body")
				return
			}
			delete(es.rows, seen.Key)
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
			if !slices.Contains(es.columns, col) || col == es.key || isLookup(col) {
				fail("PATCH sets column %q, which cannot be written", col)
				return
			}
		}
		vals := maps.Clone(rw.vals)
		maps.Copy(vals, patch)
		s.version++
		es.rows[seen.Key] = &row{version: s.version, vals: vals}
		w.WriteHeader(204)
	default:
		fail("unexpected method")
	}
}

// ParseQuery checks a raw query as the server does — only $select,
// $filter and $skiptoken, each at most once, fully percent-encoded (no raw
// space, quote, plus, comma or parenthesis) — and returns it decoded into
// a Request's Select, Filter, HasFilter and SkipToken.
func ParseQuery(raw string) (Request, error) {
	var r Request
	err := parseQuery(raw, &r)
	return r, err
}

func parseQuery(raw string, seen *Request) error {
	if !rawQueryRE.MatchString(raw) {
		return fmt.Errorf("raw query %q has characters that are not percent-encoded", raw)
	}
	if raw == "" {
		return nil
	}
	keys := map[string]bool{}
	for part := range strings.SplitSeq(raw, "&") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || keys[k] || (k != "$select" && k != "$filter" && k != "$skiptoken") {
			return fmt.Errorf("bad query part %q", part)
		}
		keys[k] = true
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return fmt.Errorf("query part %s: %v", k, err)
		}
		switch k {
		case "$select":
			seen.Select = dv
		case "$filter":
			seen.Filter, seen.HasFilter = dv, true
		case "$skiptoken":
			seen.SkipToken = dv
		}
	}
	return nil
}

// serveQuery answers a GET on an entity set: strict $filter, rows in key
// order, pages of odata.maxpagesize with a paging cookie in $skiptoken.
// s.mu is held.
func (s *Server) serveQuery(w http.ResponseWriter, r *http.Request, es *entitySet, sel []string, seen *Request, fail func(string, ...any)) {
	if seen.Prefer != "odata.maxpagesize="+strconv.Itoa(s.pageSize) {
		fail("Prefer = %q, want odata.maxpagesize=%d", seen.Prefer, s.pageSize)
		return
	}
	if !seen.HasFilter {
		fail("a query without $filter reads the whole table")
		return
	}
	terms, err := ParseFilter(seen.Filter)
	if err != nil {
		fail("$filter %q: %v", seen.Filter, err)
		return
	}
	seen.Terms = len(terms)
	// The connector promises at most 25 terms per request.
	if len(terms) > 25 {
		fail("$filter has %d terms, more than 25", len(terms))
		return
	}
	for _, tm := range terms {
		if !slices.Contains(es.columns, tm.Column) {
			fail("$filter names unknown column %q", tm.Column)
			return
		}
		guidCol := tm.Column == es.key || isLookup(tm.Column)
		if guidCol != tm.GUID {
			// Dataverse: "A binary operator with incompatible types was detected."
			fail("$filter compares column %q with a literal of the wrong type", tm.Column)
			return
		}
	}
	if seen.SkipToken != "" {
		link := "https://" + r.Host + r.URL.Path + "?" + r.URL.RawQuery
		if !s.nextLinks[link] {
			fail("$skiptoken request is not a nextLink this server sent")
			return
		}
	}
	var keys []string
	for k, rw := range es.rows {
		if slices.ContainsFunc(terms, func(tm FilterTerm) bool { return tm.Eval(rw.vals) }) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	page := 1
	if seen.SkipToken != "" {
		m := cookieRE.FindStringSubmatch(seen.SkipToken)
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
	if len(keys) > s.pageSize {
		keys = keys[:s.pageSize]
		first, last := strings.ToUpper(keys[0]), strings.ToUpper(keys[len(keys)-1])
		inner := url.QueryEscape(url.QueryEscape(fmt.Sprintf(`<cookie page="%d"><%s last="{%s}" first="{%s}" /></cookie>`, page, es.key, last, first)))
		cookie := fmt.Sprintf(`<cookie pagenumber="%d" pagingcookie="%s" istracking="False" />`, page+1, inner)
		q := r.URL.RawQuery
		if i := strings.Index(q, "&$skiptoken="); i >= 0 {
			q = q[:i]
		}
		base := "https://" + r.Host
		if s.nextLinkBase != "" {
			base = s.nextLinkBase
		}
		next = base + r.URL.Path + "?" + q + "&$skiptoken=" + queryEscape(cookie)
		s.nextLinks[next] = true
	}
	ctx := s.srv.URL + "/api/data/v9.2/$metadata#" + es.name
	if len(sel) > 0 {
		ctx += "(" + strings.Join(sel, ",") + ")"
	}
	var b bytes.Buffer
	b.WriteString(`{"@odata.context":` + jsonString(ctx) + `,"value":[`)
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(es.entityJSON(es.rows[k], sel))
	}
	b.WriteString("]")
	if next != "" {
		b.WriteString(`,"@odata.nextLink":` + jsonString(next))
	}
	b.WriteString("}")
	seen.Returned = keys
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	if next != "" {
		w.Header().Set("Preference-Applied", "odata.maxpagesize="+strconv.Itoa(s.pageSize))
	}
	w.Write(b.Bytes())
}

var cookieRE = regexp.MustCompile(`(?i)^<cookie pagenumber="(\d+)" pagingcookie="[^"]*last%253d%2522%257b([0-9A-F-]{36})%257d[^"]*" istracking="False" />$`)

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// queryEscape percent-encodes s for a query, spaces as %20.
func queryEscape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

// isLookup reports whether col is a lookup column (_x_value).
func isLookup(col string) bool {
	return len(col) > len("__value") && strings.HasPrefix(col, "_") && strings.HasSuffix(col, "_value")
}

// entityJSON is a row as Dataverse writes it: @odata.etag first, then the
// selected columns (the key always) in schema order, lookups preceded by
// their annotations, state codes followed by a formatted value.
func (es *entitySet) entityJSON(rw *row, sel []string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"@odata.etag":` + jsonString(etagOf(rw.version)))
	for _, col := range es.columns {
		if len(sel) > 0 && col != es.key && !slices.Contains(sel, col) {
			continue
		}
		v := rw.vals[col]
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
