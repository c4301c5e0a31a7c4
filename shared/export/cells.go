package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
)

// cellEncoder turns field values into CSV cell text.
type cellEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// cell returns the CSV text of v: nil is empty, strings are guarded against
// formula injection, bools are "true"/"false", numbers are written as they
// are (floats without exponent) and objects and arrays are JSON-encoded.
func (c *cellEncoder) cell(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return guardFormula(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case json.Number:
		// A decoded json.Number is a valid JSON number literal: not a formula.
		return string(x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "", errNotFinite
		}
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	}
	if c.enc == nil {
		c.enc = json.NewEncoder(&c.buf)
		c.enc.SetEscapeHTML(false)
	}
	c.buf.Reset()
	if err := c.enc.Encode(v); err != nil {
		// The encoder's message may quote the value.
		return "", errors.New("value cannot be encoded as JSON")
	}
	return guardFormula(strings.TrimSuffix(c.buf.String(), "\n")), nil
}

// guardFormula prefixes s with an apostrophe if it starts with a character
// that makes spreadsheets read the cell as a formula ('=', '+', '-', '@') or
// that can smuggle one in (tab, carriage return).
func guardFormula(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}
