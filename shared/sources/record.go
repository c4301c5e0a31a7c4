package sources

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ParseRecordJSON decodes one JSON object into a Record, keeping the order of
// its top-level fields; numbers stay json.Number so they round-trip exactly.
func ParseRecordJSON(b []byte) (Record, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return Record{}, fmt.Errorf("record: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return Record{}, errors.New("record: not a JSON object")
	}
	var rec Record
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return Record{}, fmt.Errorf("record: %w", err)
		}
		key, _ := kt.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return Record{}, fmt.Errorf("record: field value: %w", err)
		}
		rec.Fields = append(rec.Fields, Field{Name: key, Value: v})
	}
	if _, err := dec.Token(); err != nil {
		return Record{}, fmt.Errorf("record: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Record{}, errors.New("record: unexpected data after the object")
	}
	return rec, nil
}
