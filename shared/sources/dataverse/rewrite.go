package dataverse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/dsr-functions/dsr/shared/sources"
)

// locationKeys checks a location against its table and returns its keys
// as validated, lower-case GUIDs in the location's order.
func locationKeys(t *Table, loc sources.Location) ([]string, error) {
	if loc.Blob != t.EntitySet {
		return nil, fmt.Errorf("dataverse: dataset %s: location names entity set %q, want %q", t.Name, loc.Blob, t.EntitySet)
	}
	if len(loc.Ordinals) > 0 {
		return nil, fmt.Errorf("dataverse: dataset %s: location has ordinals; Dataverse records are named by keys", t.Name)
	}
	keys := make([]string, len(loc.Keys))
	seen := make(map[string]bool, len(loc.Keys))
	for i, k := range loc.Keys {
		g, ok := parseGUID(k)
		if !ok {
			return nil, fmt.Errorf("dataverse: dataset %s: location key %d is not a GUID", t.Name, i)
		}
		if seen[g] {
			return nil, fmt.Errorf("dataverse: dataset %s: location lists key %d twice", t.Name, i)
		}
		seen[g] = true
		keys[i] = g
	}
	return keys, nil
}

// Read streams the discovered records of one dataset in the order of each
// location's Keys, fetched in chunks of OR-ed key comparisons. Each record
// holds the table's select list in order (or, selecting all, every column
// in the order Dataverse returns them), without annotations. It fails with
// sources.ErrChanged if a discovered record no longer exists.
func (c *Connector) Read(ctx context.Context, m sources.DatasetMatches, emit func(sources.Record) error) error {
	t, err := c.table(m.Dataset)
	if err != nil {
		return err
	}
	for _, loc := range m.Locations {
		keys, err := locationKeys(t, loc)
		if err != nil {
			return err
		}
		for chunk := range slices.Chunk(keys, maxTermsPerRequest) {
			terms := make([]string, len(chunk))
			for i, k := range chunk {
				terms[i] = eqGUID(t.Key, k)
			}
			got := make(map[string]*entity, len(chunk))
			err := c.query(ctx, "read", t, t.selectList(), strings.Join(terms, " or "), func(e *entity) error {
				got[e.key] = e
				return nil
			})
			if err != nil {
				return err
			}
			missing := 0
			for _, k := range chunk {
				if got[k] == nil {
					missing++
				}
			}
			if missing > 0 {
				return fmt.Errorf("dataverse: dataset %s: read: %w (%d of %d records gone)", t.Name, sources.ErrChanged, missing, len(chunk))
			}
			for _, k := range chunk {
				if err := emit(got[k].record(t)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// change is the planned change of one record.
type change struct {
	key    string
	etag   string
	delete bool
	patch  []byte // JSON object of the changed columns
	gone   bool   // the record no longer existed when read
}

// Rewrite applies edit to the records of one location, in two phases.
// First every record is read (GET, capturing its @odata.etag) and edit is
// called with the record's index in loc.Keys as its ordinal; an edit error
// aborts before anything is changed. Then each record edit returned nil for
// is deleted, and each changed record is patched with only its changed
// columns, both conditionally on the ETag read (If-Match): a record changed
// in between fails with sources.ErrChanged. Edits that change the key or a
// lookup column (_x_value, which Dataverse writes through @odata.bind) are
// refused.
//
// A record already gone (404 on the GET or the DELETE) is not an error: it
// is what an earlier, interrupted attempt, or a cascading delete of its
// parent, leaves behind. It is counted in Deleted, and edit is not called
// for it, so a retry after a crash reports the same Deleted as the attempt
// that did the work. Deleted thus counts the located records that no longer
// exist after the call. A record that goes away before its PATCH fails with
// sources.ErrChanged.
//
// The changes are not atomic across records; see the package comment.
func (c *Connector) Rewrite(ctx context.Context, dataset string, loc sources.Location, edit sources.Edit) (sources.RewriteResult, error) {
	t, err := c.table(dataset)
	if err != nil {
		return sources.RewriteResult{}, err
	}
	keys, err := locationKeys(t, loc)
	if err != nil {
		return sources.RewriteResult{}, err
	}
	sel := t.selectList()
	plan := make([]change, 0, len(keys))
	for i, key := range keys {
		e, err := c.get(ctx, t, key, sel)
		if err != nil {
			return sources.RewriteResult{}, err
		}
		if e == nil {
			plan = append(plan, change{key: key, gone: true})
			continue
		}
		if e.etag == "" {
			return sources.RewriteResult{}, fmt.Errorf("dataverse: dataset %s: rewrite: GET %s(id): record has no @odata.etag", t.Name, t.EntitySet)
		}
		old := e.record(t)
		// edit gets its own copy: an edit that changes the record in place
		// must still be seen as a change.
		next, err := edit(int64(i), sources.Record{Fields: slices.Clone(old.Fields)})
		if err != nil {
			return sources.RewriteResult{}, err
		}
		if next == nil {
			plan = append(plan, change{key: key, etag: e.etag, delete: true})
			continue
		}
		patch, err := diff(t, old, *next)
		if err != nil {
			return sources.RewriteResult{}, err
		}
		if patch != nil {
			plan = append(plan, change{key: key, etag: e.etag, patch: patch})
		}
	}
	var res sources.RewriteResult
	for _, ch := range plan {
		switch {
		case ch.gone:
			res.Deleted++
		case ch.delete:
			resp, err := c.send(ctx, &request{dataset: t.Name, stage: "rewrite", method: http.MethodDelete, what: t.EntitySet + "(id)",
				url: c.recordURL(t.EntitySet, ch.key, nil), ifMatch: ch.etag})
			if err != nil {
				return sources.RewriteResult{}, err
			}
			if err := expect(t, "DELETE", resp, http.StatusNoContent, http.StatusOK, http.StatusNotFound); err != nil {
				return sources.RewriteResult{}, err
			}
			res.Deleted++
		default:
			resp, err := c.send(ctx, &request{dataset: t.Name, stage: "rewrite", method: http.MethodPatch, what: t.EntitySet + "(id)",
				url: c.recordURL(t.EntitySet, ch.key, nil), body: ch.patch, ifMatch: ch.etag})
			if err != nil {
				return sources.RewriteResult{}, err
			}
			if resp.status == http.StatusNotFound {
				return sources.RewriteResult{}, fmt.Errorf("dataverse: dataset %s: rewrite: PATCH %s(id): %w (record gone)", t.Name, t.EntitySet, sources.ErrChanged)
			}
			if err := expect(t, "PATCH", resp, http.StatusNoContent, http.StatusOK); err != nil {
				return sources.RewriteResult{}, err
			}
			res.Replaced++
		}
	}
	return res, nil
}

// expect turns a 412 into sources.ErrChanged and any status not in ok into
// an error.
func expect(t *Table, method string, resp *response, ok ...int) error {
	if slices.Contains(ok, resp.status) {
		return nil
	}
	op := method + " " + t.EntitySet + "(id)"
	if resp.status == http.StatusPreconditionFailed {
		return fmt.Errorf("dataverse: dataset %s: rewrite: %s: %w (record changed since it was read)", t.Name, op, sources.ErrChanged)
	}
	return &requestError{dataset: t.Name, stage: "rewrite", op: op, status: resp.status, code: errorCode(resp.body), attempts: 1}
}

// get reads one record; nil means it does not exist (404).
func (c *Connector) get(ctx context.Context, t *Table, key string, sel []string) (*entity, error) {
	resp, err := c.send(ctx, &request{dataset: t.Name, stage: "rewrite", method: http.MethodGet, what: t.EntitySet + "(id)", url: c.recordURL(t.EntitySet, key, sel)})
	if err != nil {
		return nil, err
	}
	if resp.status == http.StatusNotFound {
		return nil, nil
	}
	if resp.status != http.StatusOK {
		return nil, expect(t, "GET", resp, http.StatusOK)
	}
	e, err := parseEntity(resp.body, t.Key)
	if err != nil {
		return nil, fmt.Errorf("dataverse: dataset %s: rewrite: GET %s(id): %w", t.Name, t.EntitySet, err)
	}
	if e.key != key {
		return nil, fmt.Errorf("dataverse: dataset %s: rewrite: GET %s(id): the response is another record", t.Name, t.EntitySet)
	}
	return e, nil
}

// diff returns the JSON object of the columns next changes from old, in
// next's order, or nil if nothing changed. It refuses unknown columns,
// annotations, the key and lookup columns.
func diff(t *Table, old, next sources.Record) ([]byte, error) {
	prev := make(map[string]any, len(old.Fields))
	for _, f := range old.Fields {
		prev[f.Name] = f.Value
	}
	var changed []sources.Field
	seen := map[string]bool{}
	for _, f := range next.Fields {
		if seen[f.Name] {
			return nil, fmt.Errorf("dataverse: dataset %s: rewrite: edit sets column %q twice", t.Name, f.Name)
		}
		seen[f.Name] = true
		ov, ok := prev[f.Name]
		if !ok {
			return nil, fmt.Errorf("dataverse: dataset %s: rewrite: edit sets unknown column %q", t.Name, f.Name)
		}
		same, err := sameJSON(ov, f.Value)
		if err != nil {
			return nil, fmt.Errorf("dataverse: dataset %s: rewrite: column %q: %w", t.Name, f.Name, err)
		}
		if same {
			continue
		}
		if f.Name == t.Key {
			return nil, fmt.Errorf("dataverse: dataset %s: rewrite: edit changes the key column %s", t.Name, f.Name)
		}
		if isLookup(f.Name) {
			return nil, fmt.Errorf("dataverse: dataset %s: rewrite: edit changes lookup column %s, which the Web API cannot PATCH (lookups are set through @odata.bind)", t.Name, f.Name)
		}
		changed = append(changed, f)
	}
	if len(changed) == 0 {
		return nil, nil
	}
	b, err := sources.Record{Fields: changed}.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("dataverse: dataset %s: rewrite: encode the change: %w", t.Name, err)
	}
	return b, nil
}

// sameJSON compares two values by their JSON encoding.
func sameJSON(a, b any) (bool, error) {
	x, err := json.Marshal(a)
	if err != nil {
		return false, errors.New("value is not JSON")
	}
	y, err := json.Marshal(b)
	if err != nil {
		return false, errors.New("value is not JSON")
	}
	return bytes.Equal(x, y), nil
}
