// Package policy decides what an erasure request (GDPR Art. 17) does to a
// dataset's records, and masks records whose policy keeps them.
//
// A dataset's erasure policy (sources.Erasure) is one of:
//
//   - delete (the default): the subject's records are removed.
//   - mask: the records stay, but the listed fields are masked.
//   - retain: the records stay unchanged under an Art. 17(3) ground, with a
//     legal basis and optionally a date until which they are kept.
//
// System-generated log datasets (sources.Dataset.SystemLog) are never erased:
// they are always retained, as audit information (Art. 17(3)(b), Art. 5(2)).
//
// The masking strategies are:
//
//   - null: the value becomes JSON null; in a CSV dataset, the empty string.
//   - redact: the value becomes the rule's text, or "[redacted]".
//   - hmac: the value becomes a keyed pseudonym, "pseu_" and the first 32 hex
//     characters of HMAC-SHA256(secret, value). The same value always gives
//     the same pseudonym (so masked records can still be joined), but without
//     the secret the pseudonym cannot be reversed or recomputed from a guess.
//     Strings and numbers are hashed as written; other values as their
//     canonical JSON. The secret comes from settings, is at least 16 bytes and
//     is never logged.
//   - year: a date or timestamp becomes its four-digit year ("2024"), for
//     generalising dates of birth and the like. A value that is not a date is
//     an error, which names the field but never the value.
//
// A null value or an empty string stays as it is under hmac and year: there
// is nothing to pseudonymise or generalise.
//
// A rule's field names a top-level field, or with a dotted path
// ("address.city") a field of a nested object. Fields that are missing are
// left absent, never added, and paths do not reach into arrays. Masking works
// on a deep copy: the input record is never changed.
package policy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dsr-functions/dsr/shared/sources"
)

// MinSecret is the shortest HMAC secret Mask accepts for hmac rules.
const MinSecret = 16

// DefaultRedaction is the text of a redact rule without a text of its own.
const DefaultRedaction = "[redacted]"

// System log retention: the ground and legal basis Decide gives every
// SystemLog dataset.
const (
	SystemLogGround     = "system-generated log: audit information is kept (Art. 17(3)(b), Art. 5(2) accountability)"
	SystemLogLegalBasis = "Art. 6(1)(c) GDPR"
)

// Masker applies mask rules; Secret keys the HMAC pseudonyms (from settings,
// never logged).
type Masker struct{ Secret []byte }

// Mask returns a copy of rec with the rules applied, field order preserved.
// Missing fields are left absent (not added). Dotted paths reach into nested
// objects (map[string]any); the nested value is masked in a deep copy, and
// the input is never changed. csv=true means values must stay strings (null
// becomes "", year "2024", hmac a "pseu_" hex string).
//
// A field path is resolved at each level by first looking for a key equal to
// the whole remaining path (so a CSV column or JSON key that itself contains
// a dot matches literally), then for a key equal to a dotted prefix whose
// value is an object. Every top-level field with the name is masked.
//
// Mask fails if an hmac rule is present and Secret is shorter than
// MinSecret bytes, if a rule has no field or an unknown strategy, and if a
// year rule meets a value that is not a date; errors name the field, never a
// value.
func (m Masker) Mask(rec sources.Record, rules []sources.MaskRule, csv bool) (sources.Record, error) {
	for i, r := range rules {
		if r.Field == "" {
			return sources.Record{}, fmt.Errorf("mask rule %d: no field", i)
		}
		switch r.Strategy {
		case sources.MaskNull, sources.MaskRedact, sources.MaskYear:
		case sources.MaskHMAC:
			if len(m.Secret) < MinSecret {
				return sources.Record{}, fmt.Errorf("mask %q: hmac needs a secret of at least %d bytes", r.Field, MinSecret)
			}
		default:
			return sources.Record{}, fmt.Errorf("mask %q: unknown strategy %q", r.Field, r.Strategy)
		}
	}
	out := sources.Record{Fields: make([]sources.Field, len(rec.Fields))}
	for i, f := range rec.Fields {
		out.Fields[i] = sources.Field{Name: f.Name, Value: deepCopy(f.Value)}
	}
	for _, r := range rules {
		apply := func(v any) (any, error) { return m.maskValue(v, r, csv) }
		if err := maskFields(out.Fields, r.Field, apply); err != nil {
			return sources.Record{}, err
		}
	}
	return out, nil
}

// maskFields applies fn to the value at path in fields (already a deep
// copy): every top-level field named by the whole path, else the place the
// path reaches inside a top-level object (sources.WalkPath, the resolver
// matching uses too).
func maskFields(fields []sources.Field, path string, fn func(any) (any, error)) error {
	found := false
	for i := range fields {
		if fields[i].Name == path {
			v, err := fn(fields[i].Value)
			if err != nil {
				return err
			}
			fields[i].Value = v
			found = true
		}
	}
	if found {
		return nil
	}
	var ferr error
	apply := func(v any, set func(any)) {
		if ferr != nil || set == nil {
			return
		}
		nv, err := fn(v)
		if err != nil {
			ferr = err
			return
		}
		set(nv)
	}
	for j := strings.IndexByte(path, '.'); j >= 0; j = nextDot(path, j) {
		head, rest := path[:j], path[j+1:]
		for i := range fields {
			sub, isObj := fields[i].Value.(map[string]any)
			if isObj && fields[i].Name == head && sources.WalkPath(sub, rest, apply) {
				found = true
			}
		}
		if found || ferr != nil {
			return ferr
		}
	}
	return nil
}

// nextDot returns the index of the next '.' in path after index j, or -1.
func nextDot(path string, j int) int {
	k := strings.IndexByte(path[j+1:], '.')
	if k < 0 {
		return -1
	}
	return j + 1 + k
}

// deepCopy copies v so that no map or slice is shared with the original.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(x))
		for k, e := range x {
			c[k] = deepCopy(e)
		}
		return c
	case []any:
		c := make([]any, len(x))
		for i, e := range x {
			c[i] = deepCopy(e)
		}
		return c
	default:
		return v
	}
}

// empty reports whether v holds no value: null or the empty string.
func empty(v any) bool {
	return v == nil || v == ""
}

// maskValue masks one value under rule r.
func (m Masker) maskValue(v any, r sources.MaskRule, csv bool) (any, error) {
	switch r.Strategy {
	case sources.MaskNull:
		if csv {
			return "", nil
		}
		return nil, nil
	case sources.MaskRedact:
		if r.Text != "" {
			return r.Text, nil
		}
		return DefaultRedaction, nil
	case sources.MaskHMAC:
		if empty(v) {
			return v, nil
		}
		s, err := valueString(v)
		if err != nil {
			return nil, fmt.Errorf("mask %q: hmac: value cannot be encoded", r.Field)
		}
		return "pseu_" + mac(m.Secret, s), nil
	case sources.MaskYear:
		if empty(v) {
			return v, nil
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("mask %q: year: value is not a date string", r.Field)
		}
		y, ok := year(s)
		if !ok {
			return nil, fmt.Errorf("mask %q: year: value is not a date or timestamp", r.Field)
		}
		return y, nil
	}
	return nil, fmt.Errorf("mask %q: unknown strategy %q", r.Field, r.Strategy)
}

// valueString is the text hashed for v: strings and numbers as written,
// anything else as its JSON (maps with sorted keys, so it is canonical).
func valueString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", errors.New("unencodable value")
	}
	return string(b), nil
}

// dateLayouts are the forms year accepts. Parsing a layout with seconds also
// accepts a fractional second.
var dateLayouts = []string{
	time.RFC3339,
	"2006-01-02",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
	"1/2/2006", // MM/DD/YYYY; one-digit month and day too
}

// year returns the four-digit year of a date or timestamp in s.
func year(s string) (string, bool) {
	s = strings.TrimSpace(s)
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return fmt.Sprintf("%04d", t.Year()), true
		}
	}
	return "", false
}

// mac is the first 32 hex characters of HMAC-SHA256(secret, msg).
func mac(secret []byte, msg string) string {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(msg))
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// KeyHash is the keyed hash the audit trail records instead of a record key:
// "k_" + 32 hex chars of HMAC-SHA256(secret, dataset + "\x00" + key).
func KeyHash(secret []byte, dataset, key string) string {
	return "k_" + mac(secret, dataset+"\x00"+key)
}

// Outcome is what erasure does to one record under a policy.
type Outcome struct {
	Action                          sources.ErasureAction
	Ground, LegalBasis, RetainUntil string
}

// Decide returns the outcome for a dataset: its Erasure policy, delete by
// default (also for a nil dataset). SystemLog datasets are always retained,
// with ground SystemLogGround and legal basis SystemLogLegalBasis, whatever
// their policy says.
func Decide(d *sources.Dataset) Outcome {
	switch {
	case d == nil:
		return Outcome{Action: sources.EraseDelete}
	case d.SystemLog:
		return Outcome{Action: sources.EraseRetain, Ground: SystemLogGround, LegalBasis: SystemLogLegalBasis}
	case d.Erasure == nil || d.Erasure.Action == "":
		return Outcome{Action: sources.EraseDelete}
	case d.Erasure.Action == sources.EraseRetain:
		e := d.Erasure
		return Outcome{Action: e.Action, Ground: e.Ground, LegalBasis: e.LegalBasis, RetainUntil: e.RetainUntil}
	default:
		return Outcome{Action: d.Erasure.Action}
	}
}
