package sources

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Kinds of system register themselves, the way the Go CDK's drivers
// register URL schemes: a connection in the sources config says its kind
// and that kind's own fields, which the kind's package decodes and checks;
// a dataset of that connection holds the common fields (name, key,
// identifiers, relations, facts, erasure, flags) and the kind's dataset
// fields, which the kind decodes and checks too. Adding a kind is a
// package that calls RegisterKind in its init; the common code never lists
// another kind's fields. Blob datasets (no connection) are built in.

// ConnectionOptions are a kind's own fields of a connection.
type ConnectionOptions interface {
	// Check validates them; an error starts with the field's name.
	Check() error
}

// DatasetOptions are a kind's own fields of a dataset.
type DatasetOptions interface {
	// Check validates them with the rest of the dataset (its key,
	// identifiers, relations) for context; an error starts with the
	// field's name, or speaks of the dataset as a whole.
	Check(d *Dataset) error
}

// Kind is what a kind of system registers.
type Kind struct {
	// NewConnection and NewDataset return empty options to decode into
	// (pointers to the kind's structs).
	NewConnection func() ConnectionOptions
	NewDataset    func() DatasetOptions
}

var (
	kindsMu sync.RWMutex
	kinds   = map[ConnectionKind]Kind{}
)

// RegisterKind makes a kind of system known to the sources config. It
// panics when the name is taken or the kind incomplete (a programming
// error, at init).
func RegisterKind(name ConnectionKind, k Kind) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if name == "" || k.NewConnection == nil || k.NewDataset == nil {
		panic("sources: RegisterKind: name, NewConnection and NewDataset are required")
	}
	if _, dup := kinds[name]; dup {
		panic(fmt.Sprintf("sources: kind %q registered twice", name))
	}
	kinds[name] = k
}

// Kinds are the registered kinds, sorted.
func Kinds() []ConnectionKind {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	return slices.Sorted(maps.Keys(kinds))
}

func kindOf(name ConnectionKind) (Kind, error) {
	kindsMu.RLock()
	k, ok := kinds[name]
	kindsMu.RUnlock()
	if !ok {
		var names []string
		for _, n := range Kinds() {
			names = append(names, string(n))
		}
		return Kind{}, fmt.Errorf("kind: %q is not one of %s (a kind's package registers it)", name, strings.Join(names, ", "))
	}
	return k, nil
}

// decodeStrict decodes a JSON object into v, refusing unknown fields; an
// unknown field is reported by name, as not a field of what.
func decodeStrict(raw []byte, v any, what string) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return fmt.Errorf("%s: not a field of %s", strings.Trim(name, `"`), what)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("%s: must be a JSON %s", te.Field, jsonType(te.Type))
		}
		return fmt.Errorf("decode: %v", err)
	}
	return nil
}

// jsonType names the JSON type a Go type decodes from.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	default:
		return "object"
	}
}

// UnmarshalJSON decodes a connection: its kind, then the kind's fields.
func (c *Connection) UnmarshalJSON(b []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return errors.New("must be a JSON object")
	}
	var kind ConnectionKind
	if raw, ok := fields["kind"]; ok {
		if err := json.Unmarshal(raw, &kind); err != nil {
			return errors.New("kind: must be a string")
		}
	}
	k, err := kindOf(kind)
	if err != nil {
		return err
	}
	delete(fields, "kind")
	rest, _ := json.Marshal(fields)
	opts := k.NewConnection()
	if err := decodeStrict(rest, opts, "a "+string(kind)+" connection"); err != nil {
		return err
	}
	c.Kind, c.Options = kind, opts
	return nil
}

// MarshalJSON writes a connection as the config holds it: kind and the
// kind's fields in one object.
func (c Connection) MarshalJSON() ([]byte, error) {
	return mergeJSON(map[string]any{"kind": c.Kind}, c.Options)
}

// mergeJSON writes fields and the fields of v (a struct) as one object.
func mergeJSON(fields map[string]any, v any) ([]byte, error) {
	out := map[string]json.RawMessage{}
	if v != nil && !(reflect.ValueOf(v).Kind() == reflect.Pointer && reflect.ValueOf(v).IsNil()) {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, err
		}
	}
	for k, x := range fields {
		b, err := json.Marshal(x)
		if err != nil {
			return nil, err
		}
		out[k] = b
	}
	return json.Marshal(out)
}

// datasetFields are the JSON names of the common dataset fields.
var datasetFields = sync.OnceValue(func() map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeFor[datasetJSON]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
})

// datasetJSON is Dataset without its methods, for plain JSON decoding.
type datasetJSON Dataset

// decodeDataset decodes one dataset of the config: the common fields, and
// the fields of its connection's kind (a Blob dataset has none).
func decodeDataset(raw []byte, conns map[string]Connection) (Dataset, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return Dataset{}, errors.New("must be a JSON object")
	}
	common, own := map[string]json.RawMessage{}, map[string]json.RawMessage{}
	for k, v := range fields {
		if datasetFields()[k] {
			common[k] = v
		} else {
			own[k] = v
		}
	}
	b, _ := json.Marshal(common)
	var d datasetJSON
	if err := decodeStrict(b, &d, "a dataset"); err != nil {
		return Dataset{}, err
	}
	ds := Dataset(d)
	if ds.Connection == "" {
		for _, k := range slices.Sorted(maps.Keys(own)) {
			return Dataset{}, fmt.Errorf("%s: not a field of a Blob dataset (a dataset with a connection takes its kind's fields)", k)
		}
		return ds, nil
	}
	conn, ok := conns[ds.Connection]
	if !ok {
		return Dataset{}, fmt.Errorf("connection: unknown connection %q", ds.Connection)
	}
	k, err := kindOf(conn.Kind)
	if err != nil {
		return Dataset{}, err
	}
	b, _ = json.Marshal(own)
	opts := k.NewDataset()
	if err := decodeStrict(b, opts, "a "+string(conn.Kind)+" dataset"); err != nil {
		return Dataset{}, err
	}
	ds.Options = opts
	return ds, nil
}

// MarshalJSON writes a dataset as the config holds it: the common fields
// and its kind's fields in one object.
func (d Dataset) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(datasetJSON(d))
	if err != nil {
		return nil, err
	}
	var common map[string]any
	if err := json.Unmarshal(b, &common); err != nil {
		return nil, err
	}
	return mergeJSON(common, d.Options)
}

// settingName is the form of an app setting's name.
var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// CheckSetting checks the value of a field that names an app setting
// (where a secret lives, never the secret itself): a setting name, or
// empty when not required. The value is never echoed: a misplaced secret
// may be in it.
func CheckSetting(field, v string, required bool) error {
	if v == "" && !required {
		return nil
	}
	if !settingName.MatchString(v) {
		return fmt.Errorf("%s: not a setting name ([A-Za-z_][A-Za-z0-9_]*); it names the app setting that holds the value, never the value itself", field)
	}
	return nil
}

// fieldPrefix matches an error that starts with the field it is about.
var fieldPrefix = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.\[\]]*: `)

// fieldError places err under where: "where.field: ..." when err names
// its field, "where: ..." otherwise.
func fieldError(where string, err error) error {
	if fieldPrefix.MatchString(err.Error()) {
		return fmt.Errorf("%s.%w", where, err)
	}
	return fmt.Errorf("%s: %w", where, err)
}

// PlainName is the form of a column or entity name some systems need
// ([A-Za-z_][A-Za-z0-9_]*, at most 128 characters).
var PlainName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
