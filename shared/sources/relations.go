package sources

import (
	"context"
	"fmt"
	"slices"
)

// Matched is what relation-following discovery knows about one table: the
// keys of its matched records, which of them only mention the subject, and,
// per column that other tables reference, the values the subject's own
// records hold there.
type Matched struct {
	Keys map[string]struct{}
	// Mentions are the keys of records that only mention the subject in
	// free text (see Mentioned): their values are never in Refs.
	Mentions map[string]struct{}
	Refs     map[string]map[string]struct{}
}

// NewMatched returns an empty Matched.
func NewMatched() *Matched {
	return &Matched{Keys: map[string]struct{}{}, Mentions: map[string]struct{}{}, Refs: map[string]map[string]struct{}{}}
}

// Add records a matched record: its key and how it matched; for the
// subject's own records, refs gives the values of the referenced columns
// (ref(col) returns a column's value and whether it has one).
func (m *Matched) Add(key string, how Match, refCols []string, ref func(col string) (string, bool)) {
	m.Keys[key] = struct{}{}
	if how != Own {
		m.Mentions[key] = struct{}{}
		return
	}
	delete(m.Mentions, key)
	for _, col := range refCols {
		if v, ok := ref(col); ok {
			m.AddRef(col, v)
		}
	}
}

// AddRef records that a matched record holds value v in referenced column col.
func (m *Matched) AddRef(col, v string) {
	if m.Refs[col] == nil {
		m.Refs[col] = map[string]struct{}{}
	}
	m.Refs[col][v] = struct{}{}
}

// Edge is one relation, seen from the referenced side: some table
// references column ReferencesColumn of table References.
type Edge struct {
	References, ReferencesColumn string
}

// FollowRelations runs scan over every table, in order, until no table
// gains a record (the fixed point), and returns what each table matched.
// scan gets a table's index, the columns of it that other tables
// reference, and the state so far. seeds are values of referenced columns
// known before any scan (Config.SeedKeys: by table, then column): they
// stay in each table's Refs as if a matched record held them. Matching is monotone, so every pass but
// the last adds a record; a table losing a record it matched on an earlier
// pass changed during discovery, which fails with ErrChanged (system names
// the connector in that error; scan's errors are returned as they are).
func FollowRelations(ctx context.Context, system string, tables []string, edges []Edge, seeds map[string]map[string][]string,
	scan func(ctx context.Context, table int, refCols []string, state map[string]*Matched) (*Matched, error)) (map[string]*Matched, error) {
	seed := func(name string, m *Matched) {
		for col, vals := range seeds[name] {
			for _, v := range vals {
				m.AddRef(col, v)
			}
		}
	}
	referenced := map[string][]string{}
	for _, e := range edges {
		if !slices.Contains(referenced[e.References], e.ReferencesColumn) {
			referenced[e.References] = append(referenced[e.References], e.ReferencesColumn)
		}
	}
	state := make(map[string]*Matched, len(tables))
	for _, t := range tables {
		state[t] = NewMatched()
		seed(t, state[t])
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		changed := false
		for i, name := range tables {
			st, err := scan(ctx, i, referenced[name], state)
			if err != nil {
				return nil, err
			}
			seed(name, st)
			old := state[name]
			for k := range old.Keys {
				if _, ok := st.Keys[k]; !ok {
					return nil, fmt.Errorf("%s: dataset %s: %w (a record matched on an earlier pass no longer does)", system, name, ErrChanged)
				}
			}
			if len(st.Keys) != len(old.Keys) || len(st.Mentions) != len(old.Mentions) {
				changed = true
			}
			state[name] = st
		}
		if !changed {
			return state, nil
		}
	}
}
