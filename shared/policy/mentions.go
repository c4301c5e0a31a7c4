package policy

import (
	"strings"

	"github.com/dsr-functions/dsr/shared/match"
	"github.com/dsr-functions/dsr/shared/sources"
)

// MaskMentions masks the mentions of a subject in a record that only
// mentions her in free text (another customer's case that names her
// address): the record is not hers to delete, but her identifiers must go.
// In each free-text field, every plain occurrence of her emails and phone
// numbers becomes DefaultRedaction; a text that still mentions her after
// that (an encoded or wrapped shape) is redacted whole. It returns a copy
// and whether anything changed; the input is never changed.
func MaskMentions(rec sources.Record, freeText []string, s sources.Subject, region string) (sources.Record, bool) {
	out := sources.Record{Fields: make([]sources.Field, len(rec.Fields))}
	copy(out.Fields, rec.Fields)
	changed := false
	for _, path := range freeText {
		for i, f := range out.Fields {
			if f.Name != path && f.Name != topSegment(path) {
				continue
			}
			if v, ok := redactValue(f.Value, s, region); ok {
				out.Fields[i].Value = v
				changed = true
			}
		}
	}
	return out, changed
}

// topSegment is the record field a path starts in ("a" of "a[].b.c").
func topSegment(path string) string {
	if i := strings.IndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return path
}

// redactValue redacts the subject's mentions in every string inside v,
// returning a new value when one changed.
func redactValue(v any, s sources.Subject, region string) (any, bool) {
	switch x := v.(type) {
	case string:
		return redactText(x, s, region)
	case []any:
		var out []any
		for i, e := range x {
			if nv, ok := redactValue(e, s, region); ok {
				if out == nil {
					out = deepCopy(x).([]any)
				}
				out[i] = nv
			}
		}
		if out != nil {
			return out, true
		}
	case map[string]any:
		var out map[string]any
		for k, e := range x {
			if nv, ok := redactValue(e, s, region); ok {
				if out == nil {
					out = deepCopy(x).(map[string]any)
				}
				out[k] = nv
			}
		}
		if out != nil {
			return out, true
		}
	}
	return v, false
}

func redactText(text string, s sources.Subject, region string) (string, bool) {
	if !sources.Mentions(text, s, region) {
		return text, false
	}
	out := text
	for _, e := range s.Emails {
		out, _ = match.ReplaceEmailTokens(out, e, DefaultRedaction)
	}
	for _, p := range s.Phones {
		out, _ = match.ReplacePhones(out, p, region, DefaultRedaction)
	}
	if sources.Mentions(out, s, region) {
		return DefaultRedaction, true
	}
	return out, true
}
