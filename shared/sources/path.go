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
// fields (see WalkPath), until yield returns false. A "[]" segment reaches
// every element of an array, also of a JSON array held as text (a CSV
// cell). Paths that lead nowhere yield nothing.
func PathValues(fields map[string]any, path string, yield func(any) bool) {
	stopped := false
	WalkPath(fields, path, func(v any, _ func(any)) {
		if !stopped && !yield(v) {
			stopped = true
		}
	})
}

// WalkPath is the one resolver of field paths: it calls visit for every
// place path reaches in obj, with the value there and a function that
// replaces it (nil where nothing can be written back: an element of a JSON
// array held as text). At each level the whole remaining path is first
// looked up as a key, so a CSV column or a JSON key that itself holds a dot
// matches literally; then each dotted prefix, shortest first, as a key
// whose value is an object (or, with "[]", an array), and the first prefix
// that reaches something is followed. It reports whether anything was
// reached. Reading (matching) and writing (masking) go through it.
func WalkPath(obj map[string]any, path string, visit func(v any, set func(any))) bool {
	if v, ok := obj[path]; ok {
		visit(v, func(nv any) { obj[path] = nv })
		return true
	}
	for j := 0; j < len(path); j++ {
		if path[j] == '.' && walkKey(obj, path[:j], path[j+1:], visit) {
			return true
		}
	}
	if strings.HasSuffix(path, "[]") {
		return walkKey(obj, path, "", visit)
	}
	return false
}

// walkKey follows one segment (a key, maybe with "[]" levels) and the rest
// of the path after it.
func walkKey(obj map[string]any, seg, rest string, visit func(any, func(any))) bool {
	name, levels := seg, 0
	for {
		n, ok := strings.CutSuffix(name, "[]")
		if !ok {
			break
		}
		name, levels = n, levels+1
	}
	if name == "" || strings.ContainsAny(name, "[]") {
		return false
	}
	v, ok := obj[name]
	if !ok {
		return false
	}
	return walkLevels(v, levels, rest, visit, func(nv any) { obj[name] = nv })
}

// walkLevels descends levels of arrays from v, then the rest of the path.
func walkLevels(v any, levels int, rest string, visit func(any, func(any)), set func(any)) bool {
	if levels == 0 {
		if rest == "" {
			visit(v, set)
			return true
		}
		m, ok := v.(map[string]any)
		return ok && WalkPath(m, rest, visit)
	}
	arr, inPlace := v.([]any)
	if !inPlace {
		arr = elements(v)
	}
	reached := false
	for i := range arr {
		var setI func(any)
		if inPlace {
			setI = func(nv any) { arr[i] = nv }
		}
		if walkLevels(arr[i], levels-1, rest, visit, setI) {
			reached = true
		}
	}
	return reached
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
