package blobdataset

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/dsr-functions/dsr/shared/sources"
)

// An index build parses every record, and decoding a whole JSON record
// into a map is most of that cost (5.9 µs for a sample contact). When
// every field the tokens come from is a top-level name (no dots, no
// arrays), a JSON record is checked as rawRecord.fields checks it (in one
// pass with finding its members: objectMembers) and only those fields
// are decoded, each exactly as encoding/json decodes it into a map
// (strings without escapes as they are, anything else by encoding/json
// itself; the last of repeated keys wins), into slots rather than a map
// (fieldSlots; CSV rows too). Read through recordView, they give the same
// strings as the whole decoded record, so the tokens are the same.

// topLevelFields returns the top-level field names the tokens of dataset
// d come from, or nil if one of its paths reaches deeper (or could: a
// name with a dot is looked up dotted too).
func topLevelFields(d *sources.Dataset) map[string]bool {
	out := map[string]bool{}
	add := func(p string) bool {
		if strings.ContainsAny(p, ".[]") {
			return false
		}
		out[p] = true
		return true
	}
	for _, id := range d.Identifiers {
		if id.Kind != sources.KindName && !add(id.Field) {
			return nil
		}
	}
	for _, f := range d.FreeText {
		if !add(f) {
			return nil
		}
	}
	for _, r := range d.Relations {
		if !add(r.Field) {
			return nil
		}
	}
	return out
}

// recordFields reads record r for a tokenizer. With slots (names from
// topLevelFields) a record yields only those fields, into slots (one per
// tokenizer, emptied first); otherwise it is rawRecord.fields. It checks
// a JSON record and finds its members in one pass (objectMembers), where
// json.Valid and a second walk took two.
func recordFields(r *rawRecord, slots *fieldSlots) (recordView, error) {
	if slots == nil {
		fields, err := r.fields()
		return recordView{m: fields}, err
	}
	if r.raw == nil {
		// A CSV row: rawRecord.fields maps each column to its cell,
		// the last of repeated columns winning.
		slots.reset()
		for i, h := range r.header {
			if j, ok := slots.idx[h]; ok && i < len(r.row) {
				slots.slots[j] = fieldSlot{set: true, plain: true, str: r.row[i]}
			}
		}
		return recordView{slots: slots}, nil
	}
	// JSON's white space around the object, as the decoder of
	// rawRecord.fields skips it (no other: bytes.TrimSpace would also
	// trim what the decoder refuses).
	start, end := skipSpace(r.raw, 0), len(r.raw)
	for end > start && isJSONSpace(r.raw[end-1]) {
		end--
	}
	raw := r.raw[start:end]
	slots.reset()
	var err error
	// As fields: one JSON object and nothing else.
	valid := objectMembers(raw, func(ks, ke, vs, ve int, kf, vf strFlags) {
		if err != nil {
			return
		}
		var (
			i  int
			ok bool
		)
		if body := raw[ks+1 : ke-1]; kf.plain(body) {
			i, ok = slots.idx[string(body)] // no copy to look it up
		} else {
			var k string
			if k, err = unquote(raw[ks:ke]); err != nil {
				return
			}
			i, ok = slots.idx[k]
		}
		if !ok {
			return
		}
		slot := &slots.slots[i]
		slot.set = true
		if val := raw[vs:ve]; val[0] == '"' && vf.plain(val[1:len(val)-1]) {
			slot.plain = true
			slot.str = string(val[1 : len(val)-1])
			return
		}
		slot.plain = false
		slot.val, err = jsonValue(raw[vs:ve])
	})
	if !valid {
		return recordView{}, errors.New("not one JSON object")
	}
	return recordView{slots: slots}, err
}

// recordView is a record as a tokenizer reads it: its slots or, when a
// field path reaches deeper than the top level, the whole decoded
// record. It is a concrete type rather than a sources.FieldReader so
// that the functions the tokenizer hands it for each field stay on the
// stack (through an interface, each would be allocated).
type recordView struct {
	slots *fieldSlots
	m     sources.MapFields
}

// Strings is sources.FieldReader's.
func (v recordView) Strings(path string, yield func(string) bool) {
	if v.slots != nil {
		v.slots.Strings(path, yield)
		return
	}
	v.m.Strings(path, yield)
}

// Text is sources.FieldReader's.
func (v recordView) Text(path string, yield func(string) bool) {
	if v.slots != nil {
		v.slots.Text(path, yield)
		return
	}
	v.m.Text(path, yield)
}

// fieldSlots holds the named top-level fields of one JSON record as
// recordFields found them, and reads them as sources.MapFields reads the
// record decoded whole: for a name without dots or brackets,
// sources.WalkPath looks the name up as a key and tries nothing else.
// Plain strings are kept as strings, not in an interface, which would
// allocate for each.
type fieldSlots struct {
	idx   map[string]int
	slots []fieldSlot
}

type fieldSlot struct {
	set, plain bool
	str        string
	val        any
}

// newFieldSlots returns the slots of names (nil: none).
func newFieldSlots(names map[string]bool) *fieldSlots {
	if names == nil {
		return nil
	}
	f := &fieldSlots{idx: map[string]int{}}
	for n := range names {
		f.idx[n] = len(f.slots)
		f.slots = append(f.slots, fieldSlot{})
	}
	return f
}

func (f *fieldSlots) reset() { clear(f.slots) }

func (f *fieldSlots) slot(name string) *fieldSlot {
	if i, ok := f.idx[name]; ok && f.slots[i].set {
		return &f.slots[i]
	}
	return nil
}

// Strings implements sources.FieldReader: the field's value if it is a
// scalar (sources.Scalar: a non-empty string, a number, a bool).
func (f *fieldSlots) Strings(name string, yield func(string) bool) {
	switch s := f.slot(name); {
	case s == nil:
	case s.plain:
		if s.str != "" {
			yield(s.str)
		}
	default:
		if v, ok := sources.Scalar(s.val); ok {
			yield(v)
		}
	}
}

// Text implements sources.FieldReader: every string in the field's value
// (sources.TextValues).
func (f *fieldSlots) Text(name string, yield func(string) bool) {
	switch s := f.slot(name); {
	case s == nil:
	case s.plain:
		yield(s.str)
	default:
		sources.TextValues(s.val, yield)
	}
}

// unquote decodes a JSON string token as encoding/json does (apart, so
// that only this rare path pays for the value encoding/json takes).
func unquote(tok []byte) (string, error) {
	var s string
	err := json.Unmarshal(tok, &s)
	return s, err
}

// strFlags describe a valid JSON string token, as scanString found it.
type strFlags uint8

const (
	strEscaped strFlags = 1 << iota // holds a backslash escape
	strHigh                         // holds bytes past ASCII
)

// plain reports whether the string whose body (between the quotes) is
// body holds no escape and is valid UTF-8: encoding/json replaces only
// escapes and invalid UTF-8, so its value is the body as it is.
func (f strFlags) plain(body []byte) bool {
	return f&strEscaped == 0 && (f&strHigh == 0 || utf8.Valid(body))
}

// objectMembers reports whether b is exactly one JSON object as json.Valid
// reads JSON (RFC 8259; strings may hold invalid UTF-8; at most
// maxJSONDepth levels of nesting), and if it is, it has called fn with the
// bounds in b of the key token (quotes included) and of the value of each
// member, in order, with the flags of the key and, if the value is a
// string, of the value (zero otherwise). On invalid input fn may have been
// called for the members before the fault.
func objectMembers(b []byte, fn func(keyStart, keyEnd, valStart, valEnd int, key, val strFlags)) bool {
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	i := skipSpace(b, 1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		ke, kf, ok := scanString(b, i)
		if !ok {
			return false
		}
		j := skipSpace(b, ke)
		if j >= len(b) || b[j] != ':' {
			return false
		}
		vs := skipSpace(b, j+1)
		var (
			ve int
			vf strFlags
		)
		if vs < len(b) && b[vs] == '"' {
			ve, vf, ok = scanString(b, vs)
		} else {
			ve, ok = scanValue(b, vs, 1)
		}
		if !ok {
			return false
		}
		fn(i, ke, vs, ve, kf, vf)
		i = skipSpace(b, ve)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
}

// maxJSONDepth is encoding/json's limit on nesting: json.Valid refuses
// deeper values.
const maxJSONDepth = 10000

// scanValue returns the end of the JSON value starting at b[i] (depth is
// the nesting of the object or array holding it), or false if there is no
// valid value there.
func scanValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		end, _, ok := scanString(b, i)
		return end, ok
	case c == '{' || c == '[':
		if depth >= maxJSONDepth {
			return 0, false
		}
		return scanContainer(b, i, depth+1)
	case c == '-' || isDigitByte(c):
		return scanNumber(b, i)
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	}
	return 0, false
}

// scanContainer returns the end of the object or array starting at b[i].
func scanContainer(b []byte, i, depth int) (int, bool) {
	obj := b[i] == '{'
	closer := byte(']')
	if obj {
		closer = '}'
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closer {
		return i + 1, true
	}
	for {
		var ok bool
		if obj {
			if i >= len(b) || b[i] != '"' {
				return 0, false
			}
			if i, _, ok = scanString(b, i); !ok {
				return 0, false
			}
			if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
				return 0, false
			}
			i = skipSpace(b, i+1)
		}
		if i, ok = scanValue(b, i, depth); !ok {
			return 0, false
		}
		if i = skipSpace(b, i); i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case closer:
			return i + 1, true
		default:
			return 0, false
		}
	}
}

// scanString returns the end of the string token starting at b[i] (the
// opening quote) and what it holds: control characters must be escaped,
// escapes must be JSON's; other bytes pass as they are. Most bytes of a
// record are plain ASCII in strings, so one table lookup passes them.
func scanString(b []byte, i int) (int, strFlags, bool) {
	var f strFlags
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		if jsonStrPlain[c] {
			continue
		}
		switch {
		case c == '"':
			return j + 1, f, true
		case c == '\\':
			f |= strEscaped
			j++
			if j >= len(b) {
				return 0, 0, false
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) {
					return 0, 0, false
				}
				for _, h := range b[j+1 : j+5] {
					if !isHexByte(h) {
						return 0, 0, false
					}
				}
				j += 4
			default:
				return 0, 0, false
			}
		case c < 0x20:
			return 0, 0, false
		default:
			f |= strHigh
		}
	}
	return 0, 0, false
}

// jsonStrPlain marks the bytes a JSON string holds as they are and that
// tell nothing: ASCII from space on, except the quote and the backslash.
var jsonStrPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanNumber returns the end of the number starting at b[i]:
// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && isDigitByte(b[i]) {
			i++
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigitByte(b[i]) {
			return 0, false
		}
		for i < len(b) && isDigitByte(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigitByte(b[i]) {
			return 0, false
		}
		for i < len(b) && isDigitByte(b[i]) {
			i++
		}
	}
	return i, true
}

func scanLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

func isDigitByte(c byte) bool { return '0' <= c && c <= '9' }

func isHexByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// jsonValue decodes one valid JSON value as encoding/json decodes it into
// an interface{} with UseNumber.
func jsonValue(val []byte) (any, error) {
	switch val[0] {
	case '"':
		return unquote(val) // plain strings went to the slots as they are
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case 'n':
		return nil, nil
	case '{', '[':
		dec := json.NewDecoder(bytes.NewReader(val))
		dec.UseNumber()
		var v any
		err := dec.Decode(&v)
		return v, err
	}
	return json.Number(val), nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isJSONSpace(b[i]) {
		i++
	}
	return i
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
