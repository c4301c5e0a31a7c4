package dataverse

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/dsr-functions/dsr/shared/sources"
)

// Discover finds the subject's records in every table, following relations
// until no new record joins (the fixed point). Each pass queries every
// table again; matching is monotone, so every pass but the last adds a
// record, and a table losing a record it matched on an earlier pass changed
// during discovery: that fails with sources.ErrChanged.
func (c *Connector) Discover(ctx context.Context, subj sources.Subject) (*sources.Discovery, error) {
	names := make([]string, len(c.cfg.Tables))
	var edges []sources.Edge
	ids := map[string][]sources.Identifier{}
	for i, t := range c.cfg.Tables {
		names[i] = t.Name
		ids[t.Name] = t.Identifiers
		for _, r := range t.Relations {
			edges = append(edges, sources.Edge{References: r.References, ReferencesColumn: r.ReferencesField})
		}
	}
	seeds := sources.Seeds(subj, ids)
	for _, cols := range seeds {
		for col, vals := range cols {
			for i, v := range vals {
				vals[i] = normRef(v)
			}
			cols[col] = vals
		}
	}
	state, err := sources.FollowRelations(ctx, "dataverse", names, edges, seeds, func(ctx context.Context, i int, refCols []string, state map[string]*sources.Matched) (*sources.Matched, error) {
		return c.scan(ctx, &c.cfg.Tables[i], subj, state, refCols)
	})
	if err != nil {
		return nil, err
	}
	out := &sources.Discovery{}
	for _, t := range c.cfg.Tables {
		m := sources.DatasetMatches{Dataset: t.Name}
		keys := slices.Sorted(maps.Keys(state[t.Name].Keys))
		m.Records = int64(len(keys))
		if len(keys) > 0 {
			loc := sources.Location{Blob: t.EntitySet, Keys: keys}
			for i, k := range keys {
				if _, ok := state[t.Name].Mentions[k]; ok {
					loc.Mentions = append(loc.Mentions, int64(i))
				}
			}
			m.Locations = []sources.Location{loc}
		}
		out.Datasets = append(out.Datasets, m)
	}
	return out, nil
}

// phoneTails are the coarse server-side patterns of the subject's phones:
// the last four digits together and as two pairs split by a space, dot or
// hyphen. Every format of a number has its last digits in one of these
// forms unless it splits them otherwise; the exact check happens in Go.
func phoneTails(phones []string) []string {
	var out []string
	for _, p := range phones {
		if len(p) < 4 {
			continue
		}
		d := p[len(p)-4:]
		for _, v := range []string{d, d[:2] + " " + d[2:], d[:2] + "." + d[2:], d[:2] + "-" + d[2:]} {
			if !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	return out
}

// normRef puts a referenced value in the form it is compared in: GUIDs in
// lower case, anything else as it is.
func normRef(v string) string {
	if g, ok := parseGUID(v); ok {
		return g
	}
	return v
}

// scan runs the coarse queries of one table (OR-chains of at most
// maxTermsPerRequest terms) and applies the exact matching rules to the
// candidates in Go.
func (c *Connector) scan(ctx context.Context, t *Table, subj sources.Subject, state map[string]*sources.Matched, refCols []string) (*sources.Matched, error) {
	var terms []string
	seen := map[string]bool{}
	term := func(s string) {
		if !seen[s] {
			seen[s] = true
			terms = append(terms, s)
		}
	}
	// Columns fetched for the exact checks, the key first.
	cols := []string{t.Key}
	fetch := func(col string) {
		if !slices.Contains(cols, col) {
			cols = append(cols, col)
		}
	}
	tails := phoneTails(subj.Phones)
	for _, id := range t.Identifiers {
		switch id.Kind {
		case sources.KindEmail:
			for _, e := range subj.Emails {
				term(eqString(id.Field, e))
				fetch(id.Field)
			}
		case sources.KindPhone:
			for _, tail := range tails {
				term(contains(id.Field, tail))
				fetch(id.Field)
			}
		case sources.KindID:
			v, ok := subj.IDs[idName(id)]
			if !ok || strings.TrimSpace(v) == "" {
				continue
			}
			if t.isGUIDColumn(id.Field) {
				g, ok := parseGUID(v)
				if !ok {
					continue // not a GUID: it cannot match a GUID column
				}
				term(eqGUID(id.Field, g))
			} else {
				term(eqString(id.Field, strings.TrimSpace(v)))
			}
			fetch(id.Field)
		}
	}
	for _, r := range t.Relations {
		vals := slices.Sorted(maps.Keys(state[r.References].Refs[r.ReferencesField]))
		for _, v := range vals {
			if t.isGUIDColumn(r.Field) {
				if g, ok := parseGUID(v); ok {
					term(eqGUID(r.Field, g))
				}
			} else {
				term(eqString(r.Field, v))
			}
		}
		if len(vals) > 0 {
			fetch(r.Field)
		}
	}
	for _, f := range t.FreeText {
		for _, e := range subj.Emails {
			term(contains(f, e))
			fetch(f)
		}
		for _, tail := range tails {
			term(contains(f, tail))
			fetch(f)
		}
	}
	st := sources.NewMatched()
	if len(terms) == 0 {
		return st, nil
	}
	for _, rc := range refCols {
		fetch(rc)
	}
	rules := &sources.Rules{Identifiers: t.Identifiers, FreeText: t.FreeText, Subject: subj, Region: c.cfg.DefaultPhoneRegion,
		SameID: func(field, v, want string) bool {
			if t.isGUIDColumn(field) {
				g, ok1 := parseGUID(v)
				w, ok2 := parseGUID(want)
				return ok1 && ok2 && g == w
			}
			return strings.TrimSpace(v) == strings.TrimSpace(want)
		}}
	for _, r := range t.Relations {
		rules.RelationFields = append(rules.RelationFields, r.Field)
	}
	rules.Related = func(i int, v string) bool {
		r := t.Relations[i]
		_, hit := state[r.References].Refs[r.ReferencesField][normRef(v)]
		return hit
	}
	for chunk := range slices.Chunk(terms, maxTermsPerRequest) {
		err := c.query(ctx, "discover", t, cols, strings.Join(chunk, " or "), func(e *entity) error {
			if _, done := st.Keys[e.key]; done {
				if _, mention := st.Mentions[e.key]; !mention {
					return nil
				}
			}
			how := rules.Match(e)
			if how == sources.NoMatch {
				return nil
			}
			st.Add(e.key, how, refCols, func(col string) (string, bool) {
				v, ok := e.text(col)
				return normRef(v), ok
			})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return st, nil
}

func idName(id sources.Identifier) string {
	if id.IDName != "" {
		return id.IDName
	}
	return id.Field
}
