package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/dsr-functions/dsr/shared/sources"
)

// ErrResponseTooLarge reports an access result larger than MaxResponseBytes.
var ErrResponseTooLarge = errors.New("webhook: response larger than MaxResponseBytes")

// capReader reads at most n bytes of r; reading beyond fails with
// ErrResponseTooLarge. It remembers whether r itself failed, so the caller
// can tell a transport failure (worth retrying) from bad content.
type capReader struct {
	r       io.Reader
	n       int64
	read    int64
	readErr error
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		var one [1]byte
		k, err := c.r.Read(one[:])
		if k > 0 {
			return 0, ErrResponseTooLarge
		}
		c.noteErr(err)
		return 0, err
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	k, err := c.r.Read(p)
	c.n -= int64(k)
	c.read += int64(k)
	c.noteErr(err)
	return k, err
}

func (c *capReader) noteErr(err error) {
	if err != nil && err != io.EOF && c.readErr == nil {
		c.readErr = err
	}
}

// page is one decoded access result (a 200 body or a callback body).
type page struct {
	// Cursor is the "cursor" member (callbacks: the cursor this page answers).
	Cursor string
	// Next is the "next" member: the cursor of the following page, or "".
	Next string
	// Records by dataset, in response order.
	Records map[string][]pageRecord
}

// pageRecord is one record of a page: its id, raw JSON and, when kept, its
// decoded fields.
type pageRecord struct {
	ID  string
	Raw json.RawMessage
	Rec sources.Record
}

// decodePage reads a page from r with a streaming decoder, one record at
// a time. keys maps every configured dataset to its key field; records of
// another dataset fail. keep says which records to return (with their raw
// JSON and fields); the others are validated and dropped, keeping only
// their id. Errors never quote the input.
func decodePage(r io.Reader, keys map[string]string, keep func(dataset, id string) bool) (*page, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	p := &page{Records: map[string][]pageRecord{}}
	if err := expectDelim(dec, '{'); err != nil {
		return nil, fmt.Errorf("response: %w", err)
	}
	seenMember := map[string]bool{}
	for dec.More() {
		name, err := stringToken(dec)
		if err != nil {
			return nil, fmt.Errorf("response: %w", err)
		}
		if seenMember[name] {
			return nil, fmt.Errorf("response: a top-level member appears twice")
		}
		seenMember[name] = true
		switch name {
		case "records":
			if err := decodeRecords(dec, p, keys, keep); err != nil {
				return nil, err
			}
		case "next", "cursor":
			s, err := optionalString(dec)
			if err != nil {
				return nil, fmt.Errorf("response: %q: %w", name, err)
			}
			if name == "next" {
				p.Next = s
			} else {
				p.Cursor = s
			}
		default:
			// Unknown members are skipped, for forward compatibility.
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, fmt.Errorf("response: %w", jsonErr(err, dec))
			}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, fmt.Errorf("response: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return nil, fmt.Errorf("response: data after the JSON object")
		}
		return nil, fmt.Errorf("response: %w", jsonErr(err, dec))
	}
	if !seenMember["records"] {
		return nil, fmt.Errorf("response: no \"records\" member")
	}
	return p, nil
}

func decodeRecords(dec *json.Decoder, p *page, keys map[string]string, keep func(dataset, id string) bool) error {
	if err := expectDelim(dec, '{'); err != nil {
		return fmt.Errorf("response: \"records\": %w", err)
	}
	for dec.More() {
		ds, err := stringToken(dec)
		if err != nil {
			return fmt.Errorf("response: \"records\": %w", err)
		}
		key, ok := keys[ds]
		if !ok {
			// The name came from the system: not quoted.
			return fmt.Errorf("response: records for a dataset that is not configured for this system")
		}
		if _, dup := p.Records[ds]; dup {
			return fmt.Errorf("response: dataset %s: listed twice", ds)
		}
		p.Records[ds] = []pageRecord{}
		if err := expectDelim(dec, '['); err != nil {
			return fmt.Errorf("response: dataset %s: %w", ds, err)
		}
		for i := 0; dec.More(); i++ {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return fmt.Errorf("response: dataset %s: record %d: %w", ds, i, jsonErr(err, dec))
			}
			rec, id, err := parseRecord(raw, key)
			if err != nil {
				return fmt.Errorf("response: dataset %s: record %d: %w", ds, i, err)
			}
			pr := pageRecord{ID: id}
			if keep != nil && keep(ds, id) {
				pr.Raw, pr.Rec = raw, rec
			}
			p.Records[ds] = append(p.Records[ds], pr)
		}
		if err := expectDelim(dec, ']'); err != nil {
			return fmt.Errorf("response: dataset %s: %w", ds, err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return fmt.Errorf("response: \"records\": %w", err)
	}
	return nil
}

// parseRecord decodes one record object, keeping its members in order, and
// returns the value of its key member, which must be a non-empty string.
func parseRecord(raw []byte, key string) (sources.Record, string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var rec sources.Record
	if err := expectDelim(dec, '{'); err != nil {
		return rec, "", fmt.Errorf("not a JSON object")
	}
	names := map[string]bool{}
	id, hasID := "", false
	for dec.More() {
		name, err := stringToken(dec)
		if err != nil {
			return rec, "", err
		}
		if names[name] {
			return rec, "", fmt.Errorf("a field appears twice")
		}
		names[name] = true
		var v any
		if err := dec.Decode(&v); err != nil {
			return rec, "", jsonErr(err, dec)
		}
		if name == key {
			s, ok := v.(string)
			if !ok || s == "" {
				return rec, "", fmt.Errorf("key field %q is not a non-empty string", key)
			}
			id, hasID = s, true
		}
		rec.Fields = append(rec.Fields, sources.Field{Name: name, Value: v})
	}
	if err := expectDelim(dec, '}'); err != nil {
		return rec, "", err
	}
	if !hasID {
		return rec, "", fmt.Errorf("no key field %q", key)
	}
	return rec, id, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonErr(err, dec)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("expected %q at byte %d", string(want), dec.InputOffset())
	}
	return nil
}

func stringToken(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", jsonErr(err, dec)
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("expected a member name at byte %d", dec.InputOffset())
	}
	return s, nil
}

// optionalString reads a string or null (as "").
func optionalString(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", jsonErr(err, dec)
	}
	switch v := tok.(type) {
	case string:
		return v, nil
	case nil:
		return "", nil
	default:
		return "", fmt.Errorf("expected a string at byte %d", dec.InputOffset())
	}
}

// jsonErr describes a decoding error without quoting the input (encoding/json
// messages can contain a character or a number of it). Reader errors, such
// as ErrResponseTooLarge or a timeout, are returned as they are.
func jsonErr(err error, dec *json.Decoder) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Errorf("unexpected JSON type at byte %d", typ.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("truncated JSON at byte %d", dec.InputOffset())
	default:
		return err
	}
}
