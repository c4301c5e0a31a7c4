// Package postgres is the connector for PostgreSQL tables. Discovery finds
// the subject's rows by identifier columns (emails compared
// case-insensitively, phones normalised in Go after a coarse SQL prefilter on
// their digits, ids exactly), by free-text columns (a coarse SQL
// ILIKE/position prefilter, then the shared match functions), and by
// relations followed to a fixed point (contact → cases → notes). Read
// streams the discovered rows back in key order; Rewrite deletes or updates
// them in one transaction per table.
//
// Every query is parameterised ($1…) and every identifier from the config is
// quoted with pgx.Identifier.Sanitize, so neither config nor subject values
// can inject SQL.
//
// Each table needs a single-column key (its primary key, or any unique
// column) of any type: integer keys travel as a Location's Ordinals, others
// (uuid, text, …) as its Keys. ETag is empty: PostgreSQL rows carry no
// version the connector pins (Read and Rewrite fail with
// sources.ErrChanged when a discovered row no longer exists).
package postgres

import (
	"context"
	"database/sql/driver"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dsr-functions/dsr/shared/sources"
)

// Config describes the PostgreSQL tables that hold personal data.
type Config struct {
	// DSN is the pgx connection string (key=value or URL form).
	DSN string `json:"dsn"`
	// DefaultPhoneRegion reads phone numbers written without a country
	// code (ISO 3166 alpha-2, e.g. "US"); empty means they never match.
	DefaultPhoneRegion string `json:"defaultPhoneRegion,omitempty"`
	// Tables lists the tables.
	Tables []Table `json:"tables"`
	// Credential, when set, signs in with a Microsoft Entra access token
	// for EntraScope as the password of every new connection (Azure
	// Database for PostgreSQL with Entra authentication); the DSN then
	// names the Entra principal as its user and holds no password.
	Credential azcore.TokenCredential `json:"-"`
}

// EntraScope is the token scope of Azure Database for PostgreSQL.
const EntraScope = "https://ossrdbms-aad.database.windows.net/.default"

// Table is one table holding personal data.
type Table struct {
	// Name is the dataset name (unique in the config).
	Name string `json:"name"`
	// Schema defaults to "public".
	Schema string `json:"schema,omitempty"`
	// Table is the SQL table name, quoted as given.
	Table string `json:"table"`
	// Key is the key column: the primary key or another unique column,
	// of any type.
	Key string `json:"key"`
	// Identifiers are columns that identify a person (kind email, phone or id).
	Identifiers []sources.Identifier `json:"identifiers,omitempty"`
	// FreeText columns are searched for the subject's emails (as whole
	// tokens) and phones.
	FreeText []string `json:"freeText,omitempty"`
	// Relations make rows that reference a matched row of another table
	// belong to the subject too.
	Relations []Relation `json:"relations,omitempty"`
}

// Relation is the sources config's relation: a row whose column Field
// equals column ReferencesField of a matched row of table References (a
// Table.Name of this config) belongs to the subject.
type Relation = sources.Relation

// Validate checks the config's structure.
func (c *Config) Validate() error {
	names := map[string]bool{}
	for _, t := range c.Tables {
		if t.Name == "" || t.Table == "" || t.Key == "" {
			return fmt.Errorf("postgres: every table needs name, table and key")
		}
		if names[t.Name] {
			return fmt.Errorf("postgres: table name %q is used twice", t.Name)
		}
		names[t.Name] = true
		for _, id := range t.Identifiers {
			if id.Field == "" {
				return fmt.Errorf("postgres: table %s: identifier without a column", t.Name)
			}
			switch id.Kind {
			case sources.KindEmail, sources.KindPhone, sources.KindID, sources.KindName:
			default:
				return fmt.Errorf("postgres: table %s: identifier %s: unknown kind %q", t.Name, id.Field, id.Kind)
			}
		}
	}
	for _, t := range c.Tables {
		for _, r := range t.Relations {
			if !names[r.References] {
				return fmt.Errorf("postgres: table %s: relation references unknown table %q", t.Name, r.References)
			}
			if r.Field == "" || r.ReferencesField == "" {
				return fmt.Errorf("postgres: table %s: relation needs column and referencesColumn", t.Name)
			}
		}
	}
	return nil
}

// Connector reads and rewrites the tables of a Config.
type Connector struct {
	cfg  *Config
	pool *pgxpool.Pool

	mu       sync.Mutex
	keyTypes map[string]keyType // by table name
}

var (
	_ sources.Connector = (*Connector)(nil)
	_ sources.Rewriter  = (*Connector)(nil)
)

// New validates cfg and opens a connection pool to cfg.DSN.
func New(ctx context.Context, cfg *Config) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// pgx's parse errors can quote the DSN, password included.
		return nil, errors.New("postgres: the connection string does not parse")
	}
	if cred := cfg.Credential; cred != nil {
		pc.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
			tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{EntraScope}})
			if err != nil {
				return fmt.Errorf("postgres: Entra token: %w", err)
			}
			cc.Password = tok.Token
			return nil
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", safe(err))
	}
	return &Connector{cfg: cfg, pool: pool, keyTypes: map[string]keyType{}}, nil
}

// Close closes the connection pool.
func (c *Connector) Close() { c.pool.Close() }

func (c *Connector) table(name string) (*Table, error) {
	for i := range c.cfg.Tables {
		if c.cfg.Tables[i].Name == name {
			return &c.cfg.Tables[i], nil
		}
	}
	return nil, fmt.Errorf("postgres: unknown dataset %q", name)
}

func (t *Table) qualified() string {
	schema := t.Schema
	if schema == "" {
		schema = "public"
	}
	return pgx.Identifier{schema, t.Table}.Sanitize()
}

func quote(col string) string { return pgx.Identifier{col}.Sanitize() }

// Discover finds the subject's rows in every table, following relations
// until no new row joins (sources.FollowRelations: a table losing a row it
// matched on an earlier pass changed during discovery, sources.ErrChanged).
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
	state, err := sources.FollowRelations(ctx, "postgres", names, edges, sources.Seeds(subj, ids), func(ctx context.Context, i int, refCols []string, state map[string]*sources.Matched) (*sources.Matched, error) {
		return c.scan(ctx, &c.cfg.Tables[i], subj, state, refCols)
	})
	if err != nil {
		return nil, err
	}
	out := &sources.Discovery{}
	for i := range c.cfg.Tables {
		t := &c.cfg.Tables[i]
		m := sources.DatasetMatches{Dataset: t.Name}
		keys := slices.Collect(maps.Keys(state[t.Name].Keys))
		m.Records = int64(len(keys))
		if len(keys) > 0 {
			kt, err := c.keyType(ctx, t)
			if err != nil {
				return nil, err
			}
			m.Locations = []sources.Location{location(t, kt, keys, state[t.Name].Mentions)}
		}
		out.Datasets = append(out.Datasets, m)
	}
	return out, nil
}

// location names discovered rows: integer keys as Ordinals in numeric
// order, any other key type as Keys in byte order; mentions (keys of rows
// that only mention the subject) become the location's Mentions.
func location(t *Table, kt keyType, keys []string, mentions map[string]struct{}) sources.Location {
	loc := sources.Location{Blob: t.Table}
	if kt.integer {
		for _, k := range keys {
			n, err := strconv.ParseInt(k, 10, 64)
			if err != nil {
				// An integer column always formats as an integer.
				panic(fmt.Sprintf("postgres: integer key %q does not parse", k))
			}
			loc.Ordinals = append(loc.Ordinals, n)
			if _, ok := mentions[k]; ok {
				loc.Mentions = append(loc.Mentions, n)
			}
		}
		slices.Sort(loc.Ordinals)
		slices.Sort(loc.Mentions)
		return loc
	}
	loc.Keys = keys
	slices.Sort(loc.Keys)
	for i, k := range loc.Keys {
		if _, ok := mentions[k]; ok {
			loc.Mentions = append(loc.Mentions, int64(i))
		}
	}
	return loc
}

// keyType is what the connector knows about a table's key column.
type keyType struct {
	// sql is the column's type as PostgreSQL formats it ("uuid", "bigint",
	// "character varying(40)"): it comes from the catalog, not the config.
	sql     string
	integer bool
}

// keyType looks up (once per table) the type of the key column.
func (c *Connector) keyType(ctx context.Context, t *Table) (keyType, error) {
	c.mu.Lock()
	kt, ok := c.keyTypes[t.Name]
	c.mu.Unlock()
	if ok {
		return kt, nil
	}
	const q = `SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped`
	if err := c.pool.QueryRow(ctx, q, t.qualified(), t.Key).Scan(&kt.sql); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return kt, fmt.Errorf("postgres: table %s: key column %s not found", t.Name, t.Key)
		}
		return kt, fmt.Errorf("postgres: table %s: key type: %w", t.Name, safe(err))
	}
	kt.integer = kt.sql == "smallint" || kt.sql == "integer" || kt.sql == "bigint"
	c.mu.Lock()
	c.keyTypes[t.Name] = kt
	c.mu.Unlock()
	return kt, nil
}

// locationKeys returns a location's keys as text, in location order, and
// refuses a location that names both or duplicates.
func locationKeys(t *Table, loc sources.Location) ([]string, error) {
	if loc.Blob != t.Table {
		return nil, fmt.Errorf("postgres: dataset %s: location names table %q, want %q", t.Name, loc.Blob, t.Table)
	}
	if len(loc.Ordinals) > 0 && len(loc.Keys) > 0 {
		return nil, fmt.Errorf("postgres: dataset %s: location has both ordinals and keys", t.Name)
	}
	keys := slices.Clone(loc.Keys)
	for _, o := range loc.Ordinals {
		keys = append(keys, strconv.FormatInt(o, 10))
	}
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if seen[k] {
			return nil, fmt.Errorf("postgres: dataset %s: location names a row twice", t.Name)
		}
		seen[k] = true
	}
	return keys, nil
}

// keyColumn is the extra column every row query selects: the key as text.
const keyColumn = "__dsr_key"

// readChunk bounds the rows one query fetches (and Read holds to put them
// in location order).
const readChunk = 500

// likeEscape escapes LIKE metacharacters with backslash (the default escape).
func likeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// scan runs one coarse, parameterised query over a table and applies the
// exact matching rules to the candidate rows in Go.
func (c *Connector) scan(ctx context.Context, t *Table, subj sources.Subject, state map[string]*sources.Matched, refCols []string) (*sources.Matched, error) {
	var conds []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	// Columns fetched as text for the exact checks, in a fixed order.
	var cols []string
	colIdx := map[string]int{}
	fetch := func(col string) {
		if _, ok := colIdx[col]; !ok {
			colIdx[col] = len(cols)
			cols = append(cols, col)
		}
	}
	var tails []string
	for _, p := range subj.Phones {
		if len(p) > 7 {
			p = p[len(p)-7:]
		}
		tails = append(tails, "%"+p+"%")
	}
	var emailLikes []string
	for _, e := range subj.Emails {
		emailLikes = append(emailLikes, "%"+likeEscape(e)+"%")
	}
	for _, id := range t.Identifiers {
		col := quote(id.Field) + "::text"
		switch id.Kind {
		case sources.KindEmail:
			if len(subj.Emails) > 0 {
				// Contains rather than equals: the column may hold a
				// display name around the address ("Ann <ann@x.example>").
				conds = append(conds, col+" ILIKE ANY("+arg(emailLikes)+"::text[])")
				fetch(id.Field)
			}
		case sources.KindPhone:
			if len(tails) > 0 {
				conds = append(conds, "regexp_replace("+col+", '[^0-9]', '', 'g') LIKE ANY("+arg(tails)+"::text[])")
				fetch(id.Field)
			}
		case sources.KindID:
			name := id.IDName
			if name == "" {
				name = id.Field
			}
			if v, ok := subj.IDs[name]; ok {
				conds = append(conds, "btrim("+col+") = "+arg(v)+"::text")
				fetch(id.Field)
			}
		}
	}
	for _, r := range t.Relations {
		vals := make([]string, 0, len(state[r.References].Refs[r.ReferencesField]))
		for v := range state[r.References].Refs[r.ReferencesField] {
			vals = append(vals, v)
		}
		if len(vals) > 0 {
			slices.Sort(vals)
			conds = append(conds, quote(r.Field)+"::text = ANY("+arg(vals)+"::text[])")
			fetch(r.Field)
		}
	}
	for _, f := range t.FreeText {
		col := quote(f) + "::text"
		if len(emailLikes) > 0 {
			conds = append(conds, col+" ILIKE ANY("+arg(emailLikes)+"::text[])")
			fetch(f)
		}
		if len(tails) > 0 {
			conds = append(conds, "regexp_replace("+col+", '[^0-9]', '', 'g') LIKE ANY("+arg(tails)+"::text[])")
			fetch(f)
		}
	}
	st := sources.NewMatched()
	if len(conds) == 0 {
		return st, nil
	}
	rules := &sources.Rules{Identifiers: t.Identifiers, FreeText: t.FreeText, Subject: subj, Region: c.cfg.DefaultPhoneRegion}
	for _, r := range t.Relations {
		rules.RelationFields = append(rules.RelationFields, r.Field)
	}
	rules.Related = func(i int, v string) bool {
		r := t.Relations[i]
		_, hit := state[r.References].Refs[r.ReferencesField][v]
		return hit
	}
	for _, rc := range refCols {
		fetch(rc)
	}
	sel := []string{quote(t.Key) + "::text"}
	for _, col := range cols {
		sel = append(sel, quote(col)+"::text")
	}
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + t.qualified() + " WHERE " + strings.Join(conds, " OR ")
	rows, err := c.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: table %s: discover: %w", t.Name, safe(err))
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		vals := make([]*string, len(cols))
		dest := []any{&key}
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("postgres: table %s: discover: %w", t.Name, safe(err))
		}
		get := func(col string) (string, bool) {
			i, ok := colIdx[col]
			if !ok || vals[i] == nil {
				return "", false
			}
			return *vals[i], true
		}
		how := rules.Match(columns(get))
		if how == sources.NoMatch {
			continue
		}
		st.Add(key, how, refCols, get)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: table %s: discover: %w", t.Name, safe(err))
	}
	return st, nil
}

// columns is a row's text values as the matching rules read them: one
// value per column name.
type columns func(col string) (string, bool)

// Strings implements sources.FieldReader.
func (get columns) Strings(col string, yield func(string) bool) {
	if v, ok := get(col); ok {
		yield(v)
	}
}

// Text implements sources.FieldReader.
func (get columns) Text(col string, yield func(string) bool) { get.Strings(col, yield) }

// Read streams the discovered rows of one table in location order, each
// as a record with the columns in table order. It fails with
// sources.ErrChanged if a discovered row no longer exists.
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
		kt, err := c.keyType(ctx, t)
		if err != nil {
			return err
		}
		for start := 0; start < len(keys); start += readChunk {
			chunk := keys[start:min(start+readChunk, len(keys))]
			got := make(map[string]sources.Record, len(chunk))
			q := "SELECT *, " + quote(t.Key) + "::text AS " + quote(keyColumn) + " FROM " + t.qualified() +
				" WHERE " + quote(t.Key) + " = ANY($1::text[]::" + kt.sql + "[])"
			rows, err := c.pool.Query(ctx, q, chunk)
			if err != nil {
				return fmt.Errorf("postgres: dataset %s: read: %w", t.Name, safe(err))
			}
			for rows.Next() {
				rec, key, err := record(rows)
				if err != nil {
					rows.Close()
					return fmt.Errorf("postgres: dataset %s: read: %w", t.Name, err)
				}
				got[key] = rec
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("postgres: dataset %s: read: %w", t.Name, safe(err))
			}
			for _, k := range chunk {
				rec, ok := got[k]
				if !ok {
					return fmt.Errorf("postgres: dataset %s: %w (a discovered row is gone)", t.Name, sources.ErrChanged)
				}
				if err := emit(rec); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Rewrite applies edit to the discovered rows of one table in one
// transaction: the rows are locked (SELECT … FOR UPDATE) in key order, a
// missing row rolls back with sources.ErrChanged, edit(nil) deletes a row
// and edit(&rec) updates only its changed columns. Edit receives, as its
// ordinal, the integer key (Ordinals) or the index into Keys.
func (c *Connector) Rewrite(ctx context.Context, dataset string, loc sources.Location, edit sources.Edit) (sources.RewriteResult, error) {
	return c.RewritePlanned(ctx, dataset, loc, edit, sources.CommitPlan{})
}

// RewritePlanned is Rewrite with a CommitPlan: when the transaction
// changed something, plan.BeforeCommit runs just before COMMIT with the
// transaction's id as the result's Commit ("pg-xact:<id>"), which
// Committed later asks PostgreSQL about (txid_status). A row cannot carry
// the plan's id, but the server remembers each transaction's fate: a
// process that dies between the plan and the commit's answer leaves a
// plan whose transaction either committed or did not, and a retry learns
// which.
func (c *Connector) RewritePlanned(ctx context.Context, dataset string, loc sources.Location, edit sources.Edit, plan sources.CommitPlan) (res sources.RewriteResult, err error) {
	t, err := c.table(dataset)
	if err != nil {
		return res, err
	}
	keys, err := locationKeys(t, loc)
	if err != nil {
		return res, err
	}
	kt, err := c.keyType(ctx, t)
	if err != nil {
		return res, err
	}
	ordinal := func(i int) int64 {
		if len(loc.Keys) > 0 {
			return int64(i)
		}
		return loc.Ordinals[i]
	}
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("postgres: dataset %s: rewrite: %w", t.Name, safe(err))
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	q := "SELECT *, " + quote(t.Key) + "::text AS " + quote(keyColumn) + " FROM " + t.qualified() +
		" WHERE " + quote(t.Key) + " = ANY($1::text[]::" + kt.sql + "[]) ORDER BY " + quote(t.Key) + " FOR UPDATE"
	rows, err := tx.Query(ctx, q, keys)
	if err != nil {
		return res, fmt.Errorf("postgres: dataset %s: rewrite: %w", t.Name, safe(err))
	}
	got := make(map[string]sources.Record, len(keys))
	for rows.Next() {
		rec, key, err := record(rows)
		if err != nil {
			rows.Close()
			return res, fmt.Errorf("postgres: dataset %s: rewrite: %w", t.Name, err)
		}
		got[key] = rec
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("postgres: dataset %s: rewrite: %w", t.Name, safe(err))
	}
	if len(got) != len(keys) {
		return res, fmt.Errorf("postgres: dataset %s: %w (%d of %d rows remain)", t.Name, sources.ErrChanged, len(got), len(keys))
	}
	where := " WHERE " + quote(t.Key) + " = $%d::text::" + kt.sql
	for i, key := range keys {
		rec := got[key]
		// The old values are taken before edit runs: an edit may change the
		// record it is given in place.
		// Values are compared as JSON, so nested values (jsonb) changed in
		// place are seen too.
		old := make(map[string]string, len(rec.Fields))
		for _, f := range rec.Fields {
			old[f.Name] = jsonText(f.Value)
		}
		newRec, err := edit(ordinal(i), rec)
		if err != nil {
			return sources.RewriteResult{}, err
		}
		if newRec == nil {
			if _, err := tx.Exec(ctx, "DELETE FROM "+t.qualified()+fmt.Sprintf(where, 1), key); err != nil {
				return sources.RewriteResult{}, fmt.Errorf("postgres: dataset %s: delete: %w", t.Name, safe(err))
			}
			res.Deleted++
			continue
		}
		var sets []string
		var args []any
		for _, f := range newRec.Fields {
			ov, ok := old[f.Name]
			if !ok {
				return sources.RewriteResult{}, fmt.Errorf("postgres: dataset %s: edit sets unknown column %q", t.Name, f.Name)
			}
			if ov == jsonText(f.Value) {
				continue
			}
			if f.Name == t.Key {
				return sources.RewriteResult{}, fmt.Errorf("postgres: dataset %s: edit changes the key column", t.Name)
			}
			args = append(args, f.Value)
			sets = append(sets, quote(f.Name)+" = $"+strconv.Itoa(len(args)))
		}
		if len(sets) == 0 {
			continue
		}
		args = append(args, key)
		q := "UPDATE " + t.qualified() + " SET " + strings.Join(sets, ", ") + fmt.Sprintf(where, len(args))
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return sources.RewriteResult{}, fmt.Errorf("postgres: dataset %s: update: %w", t.Name, safe(err))
		}
		res.Replaced++
	}
	if plan.BeforeCommit != nil && res.Deleted+res.Replaced > 0 {
		var xid int64
		if err := tx.QueryRow(ctx, "SELECT txid_current()").Scan(&xid); err != nil {
			return sources.RewriteResult{}, fmt.Errorf("postgres: dataset %s: transaction id: %w", t.Name, safe(err))
		}
		planned := res
		planned.Commit = xactPrefix + strconv.FormatInt(xid, 10)
		if err := plan.BeforeCommit(planned); err != nil {
			return sources.RewriteResult{}, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return sources.RewriteResult{}, fmt.Errorf("postgres: dataset %s: commit: %w", t.Name, safe(err))
	}
	return res, nil
}

// xactPrefix starts the Commit of a planned rewrite: a transaction id.
const xactPrefix = "pg-xact:"

// errInProgress is a planned transaction that has neither committed nor
// aborted yet: its connection is still open somewhere.
var errInProgress = errors.New("the planned transaction is still in progress")

// Committed reports whether the planned rewrite's transaction committed,
// asking the server (txid_status: committed, aborted, in progress, or
// unknown once the id is older than the server keeps). In progress and
// unknown are errors: the caller must not guess either way.
func (c *Connector) Committed(ctx context.Context, dataset, _ string, plan sources.PlanRef) (bool, string, error) {
	t, err := c.table(dataset)
	if err != nil {
		return false, "", err
	}
	id, ok := strings.CutPrefix(plan.Commit, xactPrefix)
	xid, perr := strconv.ParseInt(id, 10, 64)
	if !ok || perr != nil {
		return false, "", fmt.Errorf("postgres: dataset %s: plan %s names no transaction", t.Name, plan.ID)
	}
	var status *string
	if err := c.pool.QueryRow(ctx, "SELECT txid_status($1)", xid).Scan(&status); err != nil {
		return false, "", fmt.Errorf("postgres: dataset %s: transaction status: %w", t.Name, safe(err))
	}
	switch {
	case status == nil:
		return false, "", fmt.Errorf("postgres: dataset %s: the server no longer knows whether transaction %d committed", t.Name, xid)
	case *status == "committed":
		return true, "", nil
	case *status == "aborted":
		return false, "", nil
	default:
		return false, "", fmt.Errorf("postgres: dataset %s: transaction %d: %w", t.Name, xid, errInProgress)
	}
}

var _ sources.PlannedRewriter = (*Connector)(nil)

// record turns the current row (selected with the keyColumn last) into a
// record with the columns in table order, and returns its key as text.
func record(rows pgx.Rows) (sources.Record, string, error) {
	vals, err := rows.Values()
	if err != nil {
		return sources.Record{}, "", err
	}
	var rec sources.Record
	key, found := "", false
	for i, fd := range rows.FieldDescriptions() {
		if fd.Name == keyColumn && i == len(vals)-1 {
			key, found = vals[i].(string)
			continue
		}
		rec.Fields = append(rec.Fields, sources.Field{Name: fd.Name, Value: jsonValue(vals[i])})
	}
	if !found {
		return rec, "", errors.New("the key column is missing or null")
	}
	return rec, key, nil
}

// jsonValue converts a pgx value to a JSON-compatible one: strings,
// numbers, bools, nil, timestamps as RFC 3339 strings, bytes as base64.
func jsonValue(v any) any {
	switch x := v.(type) {
	case nil, string, bool, int64, int32, int16, int8, int, float64, float32:
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case [16]byte: // uuid
		return fmt.Sprintf("%x-%x-%x-%x-%x", x[0:4], x[4:6], x[6:8], x[8:10], x[10:16])
	case pgtype.Numeric:
		if !x.Valid {
			return nil
		}
		if x.NaN || x.InfinityModifier != pgtype.Finite {
			b, _ := x.MarshalJSON()
			return strings.Trim(string(b), `"`)
		}
		b, err := x.MarshalJSON()
		if err != nil {
			return nil
		}
		return jsonNumber(string(b))
	case map[string]any, []any:
		return x
	case driver.Valuer:
		dv, err := x.Value()
		if err != nil {
			return fmt.Sprint(v)
		}
		return jsonValue(dv)
	case fmt.Stringer:
		return x.String()
	default:
		return fmt.Sprint(v)
	}
}

// jsonNumber keeps a numeric's exact decimal text as a JSON number.
func jsonNumber(s string) any {
	if _, ok := new(big.Float).SetString(s); !ok {
		return s
	}
	return json.Number(s)
}

// safe returns err without the server's message text, which can quote the
// values of a row ("invalid input syntax for type bigint: \"…\"", a
// duplicate key's value): a PostgreSQL error keeps its SQLSTATE code and
// the names of the table, column and constraint involved.
func safe(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	s := "SQLSTATE " + pe.Code
	for _, part := range []struct{ k, v string }{{"table", pe.TableName}, {"column", pe.ColumnName}, {"constraint", pe.ConstraintName}} {
		if part.v != "" {
			s += " " + part.k + " " + part.v
		}
	}
	return &safeError{msg: s, code: pe.Code}
}

// safeError is a PostgreSQL error reduced to what may be logged.
type safeError struct{ msg, code string }

func (e *safeError) Error() string { return e.msg }

// Code is the SQLSTATE code.
func (e *safeError) Code() string { return e.code }

// jsonText is a value's JSON encoding, for comparing values.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%T %v", v, v)
	}
	return string(b)
}
