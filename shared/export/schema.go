package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// SchemaDraft is the JSON Schema dialect of the schema files.
const SchemaDraft = "https://json-schema.org/draft/2020-12/schema"

func schemaName(dataset string) string { return "schemas/" + dataset + ".schema.json" }

// columnTypes is what a dataset's records held in each field: the JSON
// types seen and in how many records the field was present, gathered
// while spooling from the encoded bytes (no second pass, no decoding).
type columnTypes struct {
	types map[string][]string
	count map[string]int64
}

func newColumnTypes() *columnTypes {
	return &columnTypes{types: map[string][]string{}, count: map[string]int64{}}
}

// jsonType names the JSON type of an encoded value.
func jsonType(enc []byte) string {
	switch enc[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	if bytes.ContainsAny(enc, ".eE") {
		return "number"
	}
	return "integer"
}

func (c *columnTypes) add(field string, enc []byte) {
	t := jsonType(enc)
	if !slices.Contains(c.types[field], t) {
		c.types[field] = append(c.types[field], t)
	}
}

// schema is the JSON Schema (draft 2020-12) of data/<name>.json: an array
// of objects with the fields seen, their types as seen, and as required
// the fields every record had. It describes the file it comes with, so
// the receiving controller can map the data without asking us.
func (c *columnTypes) schema(d Dataset, columns []string, records int64) ([]byte, error) {
	type prop struct {
		Type any `json:"type"`
	}
	props := make(map[string]prop, len(columns))
	required := []string{}
	for _, col := range columns {
		ts := c.types[col]
		if slices.Contains(ts, "integer") && slices.Contains(ts, "number") {
			ts = slices.DeleteFunc(slices.Clone(ts), func(t string) bool { return t == "integer" })
		}
		slices.Sort(ts)
		var t any = ts
		if len(ts) == 1 {
			t = ts[0]
		}
		props[col] = prop{Type: t}
		if c.count[col] == records {
			required = append(required, col)
		}
	}
	s := map[string]any{
		"$schema":     SchemaDraft,
		"title":       d.Name,
		"description": d.Description,
		"type":        "array",
		"items": map[string]any{
			"type":                 "object",
			"properties":           props,
			"required":             required,
			"additionalProperties": false,
		},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("encode schema: %w", err)
	}
	return buf.Bytes(), nil
}
