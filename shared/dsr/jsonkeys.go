package dsr

import (
	"bytes"
	"encoding/json"
)

// DuplicateKey reports the first object key that appears twice in the same
// JSON object of body, as a dotted path ("subject.email", "a[].b"). JSON
// leaves duplicates to the parser, and encoding/json keeps the last one,
// so {"type":"access","type":"erasure"} would silently be an erasure: every
// body we act on is checked and such a body refused. A key that does not
// look like a field name is reported as "(key)", never echoed. Malformed
// JSON reports nothing: the decoder's own error says more.
func DuplicateKey(body []byte) (string, bool) {
	type frame struct {
		object  bool
		keys    map[string]bool
		wantKey bool
		path    string
		current string
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var stack []*frame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		var top *frame
		if n := len(stack); n > 0 {
			top = stack[n-1]
		}
		if top != nil && top.object && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				valueDone()
				continue
			}
			k, _ := tok.(string)
			if top.keys[k] {
				return joinPath(top.path, k), true
			}
			top.keys[k], top.current, top.wantKey = true, k, false
			continue
		}
		d, ok := tok.(json.Delim)
		switch {
		case ok && (d == '{' || d == '['):
			path := ""
			if top != nil {
				if top.object {
					path = joinPath(top.path, top.current)
				} else {
					path = top.path + "[]"
				}
			}
			stack = append(stack, &frame{object: d == '{', keys: map[string]bool{}, wantKey: d == '{', path: path})
		case ok && d == ']':
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}

func joinPath(path, key string) string {
	if !safeFieldName.MatchString(key) {
		key = "(key)"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// duplicateKeyError is the input error of a body with a key given twice.
func duplicateKeyError(field string) *InputError {
	return inputErr(400, "duplicate-key", "Duplicate key", field, "given more than once; give each field once")
}
