package webhooktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/dsr-functions/dsr/shared/sources/webhook"
)

type dataset struct {
	Dataset
	recs map[string]*record
}

// field is one member of a record, in order.
type field struct {
	name  string
	value json.RawMessage // compact
}

type record struct {
	fields     []field
	restricted bool
}

func newDataset(d Dataset) *dataset {
	if d.Key == "" {
		d.Key = webhook.DefaultKey
	}
	if d.Emails == nil {
		d.Emails = []string{"email"}
	}
	if d.Phones == nil {
		d.Phones = []string{"phone"}
	}
	if d.NameField == "" {
		d.NameField = "name"
	}
	if d.Erasure == "" {
		d.Erasure = EraseDelete
	}
	return &dataset{Dataset: d, recs: map[string]*record{}}
}

// parseObject decodes a JSON object keeping its members' order.
func parseObject(s []byte) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(s))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	var out []field
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if slices.ContainsFunc(out, func(f field) bool { return f.name == name }) {
			return nil, fmt.Errorf("field %q appears twice", name)
		}
		var b bytes.Buffer
		if err := json.Compact(&b, v); err != nil {
			return nil, err
		}
		out = append(out, field{name: name, value: b.Bytes()})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the object")
	}
	return out, nil
}

func (r *record) json() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range r.fields {
		if i > 0 {
			b.WriteByte(',')
		}
		n, _ := json.Marshal(f.name)
		b.Write(n)
		b.WriteByte(':')
		b.Write(f.value)
	}
	b.WriteByte('}')
	return b.String()
}

// str returns a field's value if it is a string.
func (r *record) str(name string) (string, bool) {
	for _, f := range r.fields {
		if f.name == name {
			var s string
			if json.Unmarshal(f.value, &s) == nil {
				return s, true
			}
			return "", false
		}
	}
	return "", false
}

// set replaces a field's value; it reports whether the value changed.
func (r *record) set(name string, v any) bool {
	b, _ := json.Marshal(v)
	for i, f := range r.fields {
		if f.name == name {
			if bytes.Equal(f.value, b) {
				return false
			}
			r.fields[i].value = b
			return true
		}
	}
	return false
}

// Put adds a record to a dataset, or replaces the one with the same key.
// obj is a JSON object; its members' order is kept in answers, and its
// key field must be a non-empty string.
func (s *System) Put(dataset, obj string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.datasets[dataset]
	if d == nil {
		s.t.Errorf("webhooktest: Put: no dataset %q in Options.Datasets", dataset)
		return
	}
	fields, err := parseObject([]byte(obj))
	if err != nil {
		s.t.Errorf("webhooktest: Put(%s): %v", dataset, err)
		return
	}
	rec := &record{fields: fields}
	key, ok := rec.str(d.Key)
	if !ok || key == "" {
		s.t.Errorf("webhooktest: Put(%s): key field %q is not a non-empty string", dataset, d.Key)
		return
	}
	d.recs[key] = rec
}

// Remove deletes a record (if present), as the system's users might.
func (s *System) Remove(dataset, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.datasets[dataset]; d != nil {
		delete(d.recs, key)
	}
}

// Record returns a record as compact JSON (members in order), and whether
// it exists.
func (s *System) Record(dataset, key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.datasets[dataset]
	if d == nil || d.recs[key] == nil {
		return "", false
	}
	return d.recs[key].json(), true
}

// Records returns a dataset's records as compact JSON, in key order.
func (s *System) Records(dataset string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.datasets[dataset]
	if d == nil {
		return nil
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(d.recs)) {
		out = append(out, d.recs[k].json())
	}
	return out
}

// Restricted reports whether a record is marked restricted.
func (s *System) Restricted(dataset, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.datasets[dataset]
	return d != nil && d.recs[key] != nil && d.recs[key].restricted
}

func normEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// normPhone reads a stored phone as +E.164, ignoring spaces, dots, hyphens
// and parentheses; "" if it is not one.
func normPhone(s string) string {
	p := strings.Map(func(r rune) rune {
		if strings.ContainsRune(" .-()", r) {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if !phoneRE.MatchString(p) {
		return ""
	}
	return p
}

// matcher tells whether a record belongs to a subject.
type matcher struct {
	hash   func(string) string
	emails map[string]bool
	phones map[string]bool
	ids    map[string]string
}

func (s *System) matcher(subj Subject) *matcher {
	m := &matcher{hash: func(v string) string { return v }, emails: map[string]bool{}, phones: map[string]bool{}, ids: subj.IDs}
	emails, phones := subj.Emails, subj.Phones
	if s.opts.Hashed {
		key := s.opts.HashKey
		m.hash = func(v string) string { return webhook.HashIdentifier(key, v) }
		emails, phones, m.ids = subj.EmailHashes, subj.PhoneHashes, subj.IDHashes
	}
	for _, e := range emails {
		m.emails[e] = true
	}
	for _, p := range phones {
		m.phones[p] = true
	}
	return m
}

func (m *matcher) email(v string) bool {
	v = normEmail(v)
	return v != "" && m.emails[m.hash(v)]
}

func (m *matcher) phone(v string) bool {
	v = normPhone(v)
	return v != "" && m.phones[m.hash(v)]
}

func (m *matcher) match(d *dataset, r *record) bool {
	for _, f := range d.Emails {
		if v, ok := r.str(f); ok && m.email(v) {
			return true
		}
	}
	for _, f := range d.Phones {
		if v, ok := r.str(f); ok && m.phone(v) {
			return true
		}
	}
	for name, want := range m.ids {
		f := name
		if d.IDs[name] != "" {
			f = d.IDs[name]
		}
		if v, ok := r.str(f); ok {
			if v = strings.TrimSpace(v); v != "" && m.hash(v) == want {
				return true
			}
		}
	}
	return false
}

// matching returns the keys of the subject's records in d, sorted; s.mu is held.
func (s *System) matching(d *dataset, subj Subject) []string {
	m := s.matcher(subj)
	var keys []string
	for k, r := range d.recs {
		if m.match(d, r) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// hit is one record of an access result.
type hit struct {
	dataset string
	json    string
}

// result returns the subject's records in datasets, in the datasets'
// order and key order; s.mu is held.
func (s *System) result(datasets []string, subj Subject) []hit {
	var out []hit
	for _, name := range datasets {
		d := s.datasets[name]
		if d == nil {
			continue
		}
		for _, k := range s.matching(d, subj) {
			out = append(out, hit{dataset: name, json: d.recs[k].json()})
		}
	}
	return out
}

// pageBody is a page of an answer: {"records":{…},"next":"…"}, with
// "cursor" first for a callback.
func pageBody(hits []hit, cursor *string, next string) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	if cursor != nil {
		c, _ := json.Marshal(*cursor)
		b.WriteString(`"cursor":` + string(c) + `,`)
	}
	b.WriteString(`"records":{`)
	var order []string
	by := map[string][]string{}
	for _, h := range hits {
		if by[h.dataset] == nil {
			order = append(order, h.dataset)
		}
		by[h.dataset] = append(by[h.dataset], h.json)
	}
	for i, ds := range order {
		if i > 0 {
			b.WriteByte(',')
		}
		n, _ := json.Marshal(ds)
		b.Write(n)
		b.WriteString(":[" + strings.Join(by[ds], ",") + "]")
	}
	n, _ := json.Marshal(next)
	b.WriteString(`},"next":` + string(n) + `}`)
	return b.Bytes()
}

// cursorState is what an access cursor the system handed out stands for.
type cursorState struct {
	requestID string
	datasets  string
	offset    int
}

// access answers an access: 202 and a delivery job, or 200 with a page.
func (s *System) access(w http.ResponseWriter, rec *Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	offset := 0
	if rec.Cursor != "" {
		cs, ok := s.cursors[rec.Cursor]
		if !ok || cs.requestID != rec.RequestID || cs.datasets != strings.Join(rec.Datasets, ",") {
			s.t.Errorf("webhooktest: access cursor %q was not handed out for this request and these datasets", rec.Cursor)
			writeJSON(w, http.StatusBadRequest, `{"code":"bad-cursor"}`)
			return
		}
		offset = cs.offset
	}
	if s.opts.Async && rec.Cursor == "" && rec.CallbackURL != "" {
		j := s.jobs[rec.RequestID]
		if j == nil {
			s.startJob(rec)
			writeJSON(w, http.StatusAccepted, `{"status":"queued"}`)
			return
		}
		if !j.done {
			writeJSON(w, http.StatusAccepted, `{"status":"running"}`)
			return
		}
	}
	hits := s.result(rec.Datasets, rec.Subject)
	if offset > len(hits) {
		offset = len(hits)
	}
	hits = hits[offset:]
	next := ""
	if s.opts.PageSize > 0 && len(hits) > s.opts.PageSize {
		hits = hits[:s.opts.PageSize]
		s.cursorSeq++
		// Opaque, and with characters that need care in URLs and blob names.
		next = fmt.Sprintf("page/%d?o=%d&r=%s", s.cursorSeq, offset+len(hits), rec.RequestID)
		s.cursors[next] = cursorState{requestID: rec.RequestID, datasets: strings.Join(rec.Datasets, ","), offset: offset + len(hits)}
	}
	writeJSON(w, http.StatusOK, string(pageBody(hits, nil, next)))
}

// apply applies a change once per Idempotency-Key; it returns the result,
// whether it was a repeat, and what is wrong with the request if anything.
func (s *System) apply(rec *Request) (Result, bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if res, ok := s.applied[rec.IdempotencyKey]; ok {
		return res, true, ""
	}
	d := s.datasets[rec.Datasets[0]]
	if d == nil {
		return Result{}, false, fmt.Sprintf("dataset %q is not one of the system's", rec.Datasets[0])
	}
	keys := s.matching(d, rec.Subject)
	var res Result
	switch rec.Action {
	case webhook.ActionErasure:
		for _, k := range keys {
			switch d.Erasure {
			case EraseMask:
				for i, f := range d.recs[k].fields {
					if f.name != d.Key {
						d.recs[k].fields[i].value = json.RawMessage("null")
					}
				}
				res.Masked++
			case EraseRetain:
				res.Retained++
			default:
				delete(d.recs, k)
				res.Deleted++
			}
		}
	case webhook.ActionRectification:
		m := s.matcher(rec.Subject)
		for _, k := range keys {
			r := d.recs[k]
			changed := false
			if v, ok := rec.Corrections["email"]; ok {
				for _, f := range d.Emails {
					if old, ok := r.str(f); ok && m.email(old) {
						changed = r.set(f, v) || changed
					}
				}
			}
			if v, ok := rec.Corrections["phone"]; ok {
				for _, f := range d.Phones {
					if old, ok := r.str(f); ok && m.phone(old) {
						changed = r.set(f, v) || changed
					}
				}
			}
			if v, ok := rec.Corrections["name"]; ok {
				changed = r.set(d.NameField, v) || changed
			}
			if changed {
				res.Changed++
			}
		}
	case webhook.ActionRestriction, webhook.ActionLiftRestriction:
		restrict := rec.Action == webhook.ActionRestriction
		for _, k := range keys {
			if d.recs[k].restricted != restrict {
				d.recs[k].restricted = restrict
				res.Changed++
			}
		}
	default:
		return Result{}, false, fmt.Sprintf("action %q is not a change", rec.Action)
	}
	s.applied[rec.IdempotencyKey] = res
	s.changes = append(s.changes, Change{Action: rec.Action, RequestID: rec.RequestID, Dataset: d.Name, Corrections: maps.Clone(rec.Corrections), Result: res})
	return res, false, ""
}
