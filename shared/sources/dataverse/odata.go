package dataverse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/dsr-functions/dsr/shared/sources"
)

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// parseGUID validates a GUID (optionally in braces, any case) and returns
// it in Dataverse's form: lower case, hyphenated, no braces.
func parseGUID(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	if !guidRE.MatchString(s) {
		return "", false
	}
	return strings.ToLower(s), true
}

// stringLiteral is an OData string literal: single quotes around, single
// quotes inside doubled.
func stringLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// eqString, eqGUID and contains build the only filter terms the connector
// sends. col is always a validated identifier; GUID literals are unquoted.
func eqString(col, v string) string  { return col + " eq " + stringLiteral(v) }
func eqGUID(col, guid string) string { return col + " eq " + guid }
func contains(col, v string) string {
	return "contains(" + col + "," + stringLiteral(v) + ")"
}

// queryEscape percent-encodes a query value, spaces as %20 (OData does not
// read '+' as a space). url.QueryEscape encodes a literal '+' as %2B, so
// every '+' it leaves stands for a space.
func queryEscape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

// queryString builds "$select=…&$filter=…", either part omitted when empty.
func queryString(sel []string, filter string) string {
	var parts []string
	if len(sel) > 0 {
		parts = append(parts, "$select="+queryEscape(strings.Join(sel, ",")))
	}
	if filter != "" {
		parts = append(parts, "$filter="+queryEscape(filter))
	}
	return strings.Join(parts, "&")
}

// collectionURL is the URL of a query on an entity set.
func (c *Connector) collectionURL(set, query string) string {
	u := c.root.String() + c.api + set
	if query != "" {
		u += "?" + query
	}
	return u
}

// recordURL is the URL of one record, key a validated GUID.
func (c *Connector) recordURL(set, key string, sel []string) string {
	u := c.root.String() + c.api + set + "(" + key + ")"
	if q := queryString(sel, ""); q != "" {
		u += "?" + q
	}
	return u
}

// entity is one record of a response.
type entity struct {
	key    string // lower-case GUID
	etag   string
	fields []sources.Field // payload order, annotations dropped
	values map[string]any
}

// parseEntity decodes one record of a response, keeping its field order
// and numbers exact, and drops every annotation (@odata.etag,
// …@OData.Community.Display.V1.FormattedValue, …) from its fields.
func parseEntity(raw []byte, keyCol string) (*entity, error) {
	rec, err := sources.ParseRecordJSON(raw)
	if err != nil {
		return nil, err
	}
	e := &entity{values: map[string]any{}}
	for _, f := range rec.Fields {
		if f.Name == "@odata.etag" {
			e.etag, _ = f.Value.(string)
			continue
		}
		if strings.Contains(f.Name, "@") {
			continue
		}
		e.fields = append(e.fields, f)
		e.values[f.Name] = f.Value
	}
	k, _ := e.values[keyCol].(string)
	if e.key, _ = parseGUID(k); e.key == "" {
		return nil, fmt.Errorf("record without a GUID in key column %s", keyCol)
	}
	return e, nil
}

// record is the entity as a sources.Record: the columns of the table's
// select list in that order (null when absent), or every field in payload
// order when the table selects all columns.
func (e *entity) record(t *Table) sources.Record {
	sel := t.selectList()
	if sel == nil {
		return sources.Record{Fields: e.fields}
	}
	fields := make([]sources.Field, 0, len(sel))
	for _, col := range sel {
		fields = append(fields, sources.Field{Name: col, Value: e.values[col]})
	}
	return sources.Record{Fields: fields}
}

// text returns a column's value as text for the exact checks: strings as
// they are, numbers and booleans as written; null and structures are absent.
func (e *entity) text(col string) (string, bool) {
	switch v := e.values[col].(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// query runs a GET on an entity set and calls fn for every record of every
// page, following @odata.nextLink until it is absent. A nextLink must stay
// on the environment's Web API, so the bearer token goes nowhere else.
func (c *Connector) query(ctx context.Context, stage string, t *Table, sel []string, filter string, fn func(*entity) error) error {
	next := c.collectionURL(t.EntitySet, queryString(sel, filter))
	for next != "" {
		resp, err := c.send(ctx, &request{dataset: t.Name, stage: stage, method: "GET", what: t.EntitySet, url: next, paged: true})
		if err != nil {
			return err
		}
		if resp.status != 200 {
			return &requestError{dataset: t.Name, stage: stage, op: "GET " + t.EntitySet, status: resp.status, code: errorCode(resp.body), attempts: 1}
		}
		var page struct {
			Value    *[]json.RawMessage `json:"value"`
			NextLink string             `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(resp.body, &page); err != nil {
			return fmt.Errorf("dataverse: dataset %s: %s: GET %s: decode response: %w", t.Name, stage, t.EntitySet, err)
		}
		if page.Value == nil {
			return fmt.Errorf("dataverse: dataset %s: %s: GET %s: response has no value array", t.Name, stage, t.EntitySet)
		}
		for _, raw := range *page.Value {
			e, err := parseEntity(raw, t.Key)
			if err != nil {
				return fmt.Errorf("dataverse: dataset %s: %s: GET %s: %w", t.Name, stage, t.EntitySet, err)
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if page.NextLink != "" {
			if err := c.checkNextLink(t.EntitySet, page.NextLink); err != nil {
				return fmt.Errorf("dataverse: dataset %s: %s: GET %s: %w", t.Name, stage, t.EntitySet, err)
			}
			if page.NextLink == next {
				return fmt.Errorf("dataverse: dataset %s: %s: GET %s: @odata.nextLink repeats the page just read", t.Name, stage, t.EntitySet)
			}
		}
		next = page.NextLink
	}
	return nil
}

var errForeignNextLink = errors.New("@odata.nextLink leaves the entity set's Web API URL")

// checkNextLink accepts a nextLink only on the same scheme, host and
// entity set path as the query it continues.
func (c *Connector) checkNextLink(set, link string) error {
	u, err := url.Parse(link)
	if err != nil {
		return errors.New("malformed @odata.nextLink")
	}
	if u.Scheme != c.root.Scheme || u.Host != c.root.Host || u.User != nil || u.Path != c.api+set {
		return errForeignNextLink
	}
	return nil
}

// Strings implements sources.FieldReader: a column's value as text.
func (e *entity) Strings(col string, yield func(string) bool) {
	if v, ok := e.text(col); ok {
		yield(v)
	}
}

// Text implements sources.FieldReader.
func (e *entity) Text(col string, yield func(string) bool) { e.Strings(col, yield) }
