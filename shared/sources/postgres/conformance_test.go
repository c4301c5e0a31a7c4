package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/sourcestest"
	"github.com/dsr-functions/dsr/shared/testutil/pgtest"
)

// pgHarness loads the conformance scenario into three tables with text
// keys of a fresh database.
type pgHarness struct{}

func (pgHarness) Delegates() bool { return false }

func (pgHarness) Open(t *testing.T) sourcestest.Fixture {
	ctx := context.Background()
	dsn := pgtest.Database(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	cfg := &Config{DSN: dsn, DefaultPhoneRegion: "US"}
	for _, d := range sourcestest.Datasets() {
		var cols []string
		for _, r := range sourcestest.Scenario[d.Name] {
			for k := range r {
				if !slices.Contains(cols, k) {
					cols = append(cols, k)
				}
			}
		}
		slices.Sort(cols)
		var defs []string
		for _, c := range cols {
			def := pgx.Identifier{c}.Sanitize() + " text"
			if c == d.Key {
				def += " PRIMARY KEY"
			}
			defs = append(defs, def)
		}
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (%s)", pgx.Identifier{d.Name}.Sanitize(), strings.Join(defs, ", "))); err != nil {
			t.Fatal(err)
		}
		for _, r := range sourcestest.Scenario[d.Name] {
			var names, params []string
			var args []any
			for _, c := range cols {
				names = append(names, pgx.Identifier{c}.Sanitize())
				args = append(args, r[c])
				params = append(params, fmt.Sprintf("$%d", len(args)))
			}
			q := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", pgx.Identifier{d.Name}.Sanitize(), strings.Join(names, ", "), strings.Join(params, ", "))
			if _, err := conn.Exec(ctx, q, args...); err != nil {
				t.Fatal(err)
			}
		}
		tb := Table{Name: d.Name, Table: d.Name, Key: d.Key, Identifiers: d.Identifiers, FreeText: d.FreeText}
		for _, r := range d.Relations {
			tb.Relations = append(tb.Relations, r)
		}
		cfg.Tables = append(cfg.Tables, tb)
	}
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return sourcestest.Fixture{
		Connector: c,
		Remove: func(t *testing.T, ds, key string) {
			q := fmt.Sprintf("DELETE FROM %s WHERE %s = $1", pgx.Identifier{ds}.Sanitize(), pgx.Identifier{sourcestest.Keys[ds]}.Sanitize())
			if _, err := conn.Exec(ctx, q, key); err != nil {
				t.Fatal(err)
			}
		},
	}
}

var _ sources.Connector = (*Connector)(nil)

func TestConformance(t *testing.T) { sourcestest.Run(t, pgHarness{}) }
