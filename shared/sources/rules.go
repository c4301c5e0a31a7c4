package sources

import (
	"slices"
	"strings"

	"github.com/dsr-functions/dsr/shared/match"
)

// Match says how a record belongs to a subject.
type Match uint8

const (
	// NoMatch: the record is not the subject's.
	NoMatch Match = iota
	// Mentioned: only a free-text field names the subject. The record holds
	// her data, so it is disclosed (and the mention masked on erasure), but
	// it is not hers: relations are never followed from it, or another
	// customer's case that mentions her would bring that customer's
	// surveys along.
	Mentioned
	// Own: an identifier field holds one of her identifiers, an id field
	// the id she gave, or a relation field one of her own records' keys.
	Own
)

// FieldReader gives the matching rules a record's values by field path.
type FieldReader interface {
	// Strings yields the scalar values at path, as text.
	Strings(path string, yield func(string) bool)
	// Text yields every string inside the value at path (free text may be
	// nested in objects and arrays).
	Text(path string, yield func(string) bool)
}

// MapFields is a FieldReader over a parsed JSON object or CSV row, with
// the path syntax of PathValues.
type MapFields map[string]any

// Strings implements FieldReader.
func (m MapFields) Strings(path string, yield func(string) bool) { PathStrings(m, path, yield) }

// Text implements FieldReader.
func (m MapFields) Text(path string, yield func(string) bool) {
	PathValues(m, path, func(v any) bool { return TextValues(v, yield) })
}

// Rules are the exact matching rules of one dataset for one subject, the
// same for every kind of source: connectors find candidates their own way
// (a byte prefilter, a SQL or OData query) and let Rules decide.
type Rules struct {
	Identifiers []Identifier
	FreeText    []string
	// RelationFields are the fields that reference other datasets, and
	// Related reports whether value v of RelationFields[i] is the key of
	// one of the subject's own records there.
	RelationFields []string
	Related        func(i int, v string) bool
	Subject        Subject
	// Region reads phone numbers written without a country code.
	Region string
	// SameID compares the value of id field field with the id the subject
	// gave (default: equal after trimming spaces on both sides).
	SameID func(field, value, want string) bool
}

// Match applies the rules to one record.
func (r *Rules) Match(rec FieldReader) Match {
	if r.own(rec) {
		return Own
	}
	if r.mentioned(rec) {
		return Mentioned
	}
	return NoMatch
}

func (r *Rules) own(rec FieldReader) bool {
	found := false
	for _, id := range r.Identifiers {
		check := r.identifierCheck(id)
		if check == nil {
			continue
		}
		rec.Strings(id.Field, func(v string) bool {
			found = check(v)
			return !found
		})
		if found {
			return true
		}
	}
	for i, f := range r.RelationFields {
		rec.Strings(f, func(v string) bool {
			v = strings.TrimSpace(v)
			found = v != "" && r.Related(i, v)
			return !found
		})
		if found {
			return true
		}
	}
	return false
}

// identifierCheck returns the test of one identifier field's values, or
// nil when the subject has no identifier of its kind.
func (r *Rules) identifierCheck(id Identifier) func(string) bool {
	s := r.Subject
	switch id.Kind {
	case KindEmail:
		if len(s.Emails) == 0 {
			return nil
		}
		return func(v string) bool {
			e, err := match.NormalizeEmailField(v)
			return err == nil && slices.Contains(s.Emails, e)
		}
	case KindPhone:
		if len(s.Phones) == 0 {
			return nil
		}
		return func(v string) bool {
			p, err := match.NormalizePhoneField(v, r.Region)
			return err == nil && slices.Contains(s.Phones, p)
		}
	case KindID:
		want, ok := s.IDs[id.IDNameOrField()]
		if !ok || strings.TrimSpace(want) == "" {
			return nil
		}
		same := r.SameID
		if same == nil {
			same = func(_, v, want string) bool { return strings.TrimSpace(v) == strings.TrimSpace(want) }
		}
		return func(v string) bool { return same(id.Field, v, want) }
	}
	return nil
}

func (r *Rules) mentioned(rec FieldReader) bool {
	s := r.Subject
	if len(s.Emails) == 0 && len(s.Phones) == 0 {
		return false
	}
	found := false
	for _, f := range r.FreeText {
		rec.Text(f, func(text string) bool {
			found = Mentions(text, s, r.Region)
			return !found
		})
		if found {
			return true
		}
	}
	return false
}

// Mentions reports whether free text names one of the subject's emails or
// phone numbers, in any shape text holds them (match.MentionsEmail,
// match.MentionsPhone).
func Mentions(text string, s Subject, region string) bool {
	for _, e := range s.Emails {
		if match.MentionsEmail(text, e) {
			return true
		}
	}
	for _, p := range s.Phones {
		if match.MentionsPhone(text, p, region) {
			return true
		}
	}
	return false
}

// IDNameOrField is the name under which a request's subject.ids carries
// the value of an id identifier: IDName, or the field name.
func (id Identifier) IDNameOrField() string {
	if id.IDName != "" {
		return id.IDName
	}
	return id.Field
}
