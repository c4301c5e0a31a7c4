package sources

import (
	"encoding/json"
	"errors"
	"strings"
)

// A field path names where a value sits in a record: a field name, dotted
// segments into nested objects ("customer.email"), and "[]" after a segment
// for every element of an array ("emails[]", "participants[].email"; "[][]"
// for arrays of arrays). A
// record field whose name is the whole path (a CSV column called
// "customer.email") is taken first, as it is.

type pathSeg struct {
	name string
	// each is how many "[]" follow the name: each one reaches every
	// element of one level of arrays.
	each int
}

// parsePath checks a field path and returns its segments. Errors say what
// is wrong without repeating the path.
func parsePath(p string) ([]pathSeg, error) {
	if p == "" {
		return nil, errors.New("empty path")
	}
	var segs []pathSeg
	for part := range strings.SplitSeq(p, ".") {
		seg := pathSeg{name: part}
		for {
			name, ok := strings.CutSuffix(seg.name, "[]")
			if !ok {
				break
			}
			seg.name, seg.each = name, seg.each+1
		}
		switch {
		case seg.name == "":
			return nil, errors.New("a path segment is empty (paths look like a, a.b, a[] or a[].b)")
		case strings.ContainsAny(seg.name, "[]"):
			return nil, errors.New("brackets only as [] at the end of a segment (a[] or a[].b)")
		}
		segs = append(segs, seg)
	}
	return segs, nil
}

// ValidPath reports why a field path is malformed (nil if it is fine).
func ValidPath(p string) error {
	_, err := parsePath(p)
	return err
}

// PathValues calls yield with every value path reaches in a record's
// fields, until yield returns false. A "[]" segment reaches every element
// of an array, also of a JSON array held as text (a CSV cell). Paths that
// lead nowhere yield nothing.
func PathValues(fields map[string]any, path string, yield func(any) bool) {
	if v, ok := fields[path]; ok {
		yield(v)
		return
	}
	segs, err := parsePath(path)
	if err != nil {
		return
	}
	walkPath(fields, segs, yield)
}

func walkPath(cur any, segs []pathSeg, yield func(any) bool) bool {
	if len(segs) == 0 {
		return yield(cur)
	}
	m, ok := cur.(map[string]any)
	if !ok {
		return true
	}
	v, ok := m[segs[0].name]
	if !ok {
		return true
	}
	return walkEach(v, segs[0].each, segs[1:], yield)
}

// walkEach walks the rest of a path from every element levels deep in v.
func walkEach(v any, levels int, rest []pathSeg, yield func(any) bool) bool {
	if levels == 0 {
		return walkPath(v, rest, yield)
	}
	for _, e := range elements(v) {
		if !walkEach(e, levels-1, rest, yield) {
			return false
		}
	}
	return true
}

// elements are the elements of an array value, or of a JSON array written
// as text; anything else is a one-element list of itself.
func elements(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case string:
		if t := strings.TrimSpace(x); strings.HasPrefix(t, "[") {
			var arr []any
			dec := json.NewDecoder(strings.NewReader(t))
			dec.UseNumber()
			if dec.Decode(&arr) == nil {
				return arr
			}
		}
	}
	return []any{v}
}

// PathStrings calls yield with every scalar a path reaches, as text
// (strings as they are, numbers as written, booleans as true/false);
// objects, arrays without "[]", nulls and empty strings are skipped.
func PathStrings(fields map[string]any, path string, yield func(string) bool) {
	PathValues(fields, path, func(v any) bool {
		if s, ok := Scalar(v); ok {
			return yield(s)
		}
		return true
	})
}

// Scalar renders a string, number or bool value as text; empty strings,
// null, objects and arrays are not scalars.
func Scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, x != ""
	case json.Number:
		return x.String(), true
	case float64:
		b, _ := json.Marshal(x)
		return string(b), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	}
	return "", false
}

// TextValues calls yield with every string inside a value (free text may be
// nested in objects and arrays), until yield returns false.
func TextValues(v any, yield func(string) bool) bool {
	switch x := v.(type) {
	case string:
		return yield(x)
	case []any:
		for _, e := range x {
			if !TextValues(e, yield) {
				return false
			}
		}
	case map[string]any:
		for _, e := range x {
			if !TextValues(e, yield) {
				return false
			}
		}
	}
	return true
}
