package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/jackc/pgx/v5"

	"github.com/dsr-functions/dsr/shared/match"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/testutil/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

const schema = `
CREATE TABLE contacts (id bigint PRIMARY KEY, email text, phone text, full_name text, created_at timestamptz, active boolean);
CREATE TABLE cases (id bigint PRIMARY KEY, contact_id bigint REFERENCES contacts(id), description text);
CREATE TABLE "Case Notes" (id bigint PRIMARY KEY, case_id bigint REFERENCES cases(id), body text);
INSERT INTO contacts VALUES
 (1, 'ann@x.example', '+1 425 555 0100', 'Ann', '2024-03-01 10:00:00+00', true),
 (2, 'joann@x.example', '+1 425 555 0101', 'Joann', NULL, true),
 (3, 'ann@x.example.au', '+61 2 9999 0000', 'Ann Au', NULL, false),
 (4, 'O''Brien@X.example', NULL, 'O''Brien', NULL, NULL),
 (5, ' ANN@X.EXAMPLE ', NULL, 'Ann again', NULL, NULL),
 (6, 'other@x.example', '(425) 555-0100', 'Ann by phone', NULL, NULL),
 (7, 'bob@x.example', '+1 425 555 0109', 'Bob', NULL, NULL);
INSERT INTO cases VALUES
 (10, 1, 'Billing question'),
 (11, 2, 'Joann''s case, nothing about the subject'),
 (12, 6, 'Phone contact'),
 (13, 3, 'forwarded: please contact ann@x.example today'),
 (14, 2, 'joann@x.example wrote in; also ann@x.example.au'),
 (15, 7, 'call back on 425-555-0100');
INSERT INTO "Case Notes" VALUES
 (100, 10, 'note on billing'),
 (101, 11, 'note on another person''s case'),
 (102, 12, 'note on phone case'),
 (103, 11, 'call 425 555 0101'),
 (104, 13, 'note on forwarded case'),
 (105, 14, 'unrelated');
`

func setup(t *testing.T) (*Connector, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.Database(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	if _, err := conn.Exec(ctx, schema); err != nil {
		t.Fatal(err)
	}
	cfg := &Config{
		DSN:                dsn,
		DefaultPhoneRegion: "US",
		Tables: []Table{
			{Name: "contacts", Table: "contacts", Key: "id", Identifiers: []sources.Identifier{
				{Field: "email", Kind: sources.KindEmail}, {Field: "phone", Kind: sources.KindPhone}, {Field: "id", Kind: sources.KindID, IDName: "contactId"},
			}},
			{Name: "cases", Schema: "public", Table: "cases", Key: "id", FreeText: []string{"description"},
				Relations: []Relation{{Field: "contact_id", References: "contacts", ReferencesField: "id"}}},
			{Name: "case-notes", Table: "Case Notes", Key: "id", FreeText: []string{"body"},
				Relations: []Relation{{Field: "case_id", References: "cases", ReferencesField: "id"}}},
		},
	}
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, conn
}

func keysOf(t *testing.T, d *sources.Discovery) map[string][]int64 {
	t.Helper()
	out := map[string][]int64{}
	for _, m := range d.Datasets {
		var ks []int64
		for _, l := range m.Locations {
			ks = append(ks, l.Ordinals...)
		}
		if int64(len(ks)) != m.Records {
			t.Fatalf("%s: %d records but %d ordinals", m.Dataset, m.Records, len(ks))
		}
		out[m.Dataset] = ks
	}
	return out
}

func TestDiscoverRecallPrecision(t *testing.T) {
	c, _ := setup(t)
	ctx := context.Background()
	d, err := c.Discover(ctx, sources.Subject{Emails: []string{"ann@x.example"}, Phones: []string{"14255550100"}})
	if err != nil {
		t.Fatal(err)
	}
	got := keysOf(t, d)
	want := map[string][]int64{
		// 1 by email, 5 by email case-insensitively, 6 by phone in another format;
		// 2 (joann, phone one digit off), 3 (.au), 7 are decoys.
		"contacts": {1, 5, 6},
		// 10, 12 by relation, 13 by free-text email, 15 by free-text phone;
		// 11, 14 are another person's cases (14 mentions near misses only).
		"cases": {10, 12, 13, 15},
		// two hops: notes of the subject's own cases; 101, 103 (phone one digit off), 105 are decoys,
		// and 104 hangs off case 13, which only mentions her: not hers.
		"case-notes": {100, 102},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("discovered %v, want %v", got, want)
	}
	if m := d.Datasets[1].Locations[0].Mentions; !reflect.DeepEqual(m, []int64{13, 15}) {
		t.Fatalf("cases that only mention her: %v, want [13 15]", m)
	}
	if d.Datasets[2].Locations[0].Blob != "Case Notes" {
		t.Fatalf("location blob %q", d.Datasets[2].Locations[0].Blob)
	}
}

func TestDiscoverByID(t *testing.T) {
	c, _ := setup(t)
	d, err := c.Discover(context.Background(), sources.Subject{IDs: map[string]string{"contactId": "7"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int64{"contacts": {7}, "cases": {15}, "case-notes": nil}
	if got := keysOf(t, d); !reflect.DeepEqual(got, want) {
		t.Fatalf("discovered %v, want %v", got, want)
	}
}

func TestDiscoverQuotesAndInjection(t *testing.T) {
	c, _ := setup(t)
	ctx := context.Background()
	e, err := match.NormalizeEmail("O'Brien@X.example")
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Discover(ctx, sources.Subject{Emails: []string{e}})
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(t, d); !reflect.DeepEqual(got["contacts"], []int64{4}) || len(got["cases"]) != 0 {
		t.Fatalf("o'brien: discovered %v", got)
	}
	evil := "x' OR '1'='1@x.example"
	if _, err := match.NormalizeEmail(evil); err == nil {
		t.Fatal("normalisation accepted an email with spaces")
	}
	// Even unnormalised, the value is only ever a parameter.
	for _, s := range []sources.Subject{
		{Emails: []string{evil}},
		{Emails: []string{"%@x.example"}},
		{Emails: []string{"_nn@x.example"}},
		{IDs: map[string]string{"contactId": "1 OR 1=1"}},
	} {
		d, err := c.Discover(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if d.Total() != 0 {
			t.Fatalf("subject %v matched %v", s, keysOf(t, d))
		}
	}
	var n int
	if err := c.pool.QueryRow(ctx, `SELECT count(*) FROM contacts`).Scan(&n); err != nil || n != 7 {
		t.Fatalf("contacts = %d, %v", n, err)
	}
}

func TestRead(t *testing.T) {
	c, _ := setup(t)
	ctx := context.Background()
	d, err := c.Discover(ctx, sources.Subject{Emails: []string{"ann@x.example"}, Phones: []string{"14255550100"}})
	if err != nil {
		t.Fatal(err)
	}
	var recs []string
	if err := c.Read(ctx, d.Datasets[0], func(r sources.Record) error {
		b, err := json.Marshal(r)
		recs = append(recs, string(b))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"id":1,"email":"ann@x.example","phone":"+1 425 555 0100","full_name":"Ann","created_at":"2024-03-01T10:00:00Z","active":true}`,
		`{"id":5,"email":" ANN@X.EXAMPLE ","phone":null,"full_name":"Ann again","created_at":null,"active":null}`,
		`{"id":6,"email":"other@x.example","phone":"(425) 555-0100","full_name":"Ann by phone","created_at":null,"active":null}`,
	}
	if !reflect.DeepEqual(recs, want) {
		t.Fatalf("read\n%v\nwant\n%v", recs, want)
	}
	// A row deleted since discovery: ErrChanged.
	if _, err := c.pool.Exec(ctx, `DELETE FROM "Case Notes" WHERE id = 100`); err != nil {
		t.Fatal(err)
	}
	err = c.Read(ctx, d.Datasets[2], func(sources.Record) error { return nil })
	if !errors.Is(err, sources.ErrChanged) {
		t.Fatalf("read after delete: %v", err)
	}
}

func snapshot(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT row_to_json(c)::text FROM contacts c ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRewrite(t *testing.T) {
	c, conn := setup(t)
	ctx := context.Background()
	d, err := c.Discover(ctx, sources.Subject{Emails: []string{"ann@x.example"}, Phones: []string{"14255550100"}})
	if err != nil {
		t.Fatal(err)
	}
	loc := d.Datasets[0].Locations[0]
	before := snapshot(t, conn)

	// An edit that fails part-way changes nothing.
	_, err = c.Rewrite(ctx, "contacts", loc, func(k int64, r sources.Record) (*sources.Record, error) {
		if k == 6 {
			return nil, errors.New("boom")
		}
		return nil, nil
	})
	if err == nil || !reflect.DeepEqual(snapshot(t, conn), before) {
		t.Fatalf("failed edit: err %v, data changed", err)
	}

	res, err := c.Rewrite(ctx, "contacts", loc, func(k int64, r sources.Record) (*sources.Record, error) {
		switch k {
		case 5:
			return nil, nil
		case 1:
			out := sources.Record{Fields: append([]sources.Field(nil), r.Fields...)}
			for i := range out.Fields {
				switch out.Fields[i].Name {
				case "email":
					out.Fields[i].Value = nil
				case "full_name":
					out.Fields[i].Value = "[redacted]"
				}
			}
			return &out, nil
		}
		return &r, nil // unchanged
	})
	if err != nil {
		t.Fatal(err)
	}
	if res != (sources.RewriteResult{Deleted: 1, Replaced: 1}) {
		t.Fatalf("result %+v", res)
	}
	after := snapshot(t, conn)
	want := []string{
		`{"id":1,"email":null,"phone":"+1 425 555 0100","full_name":"[redacted]","created_at":"2024-03-01T10:00:00+00:00","active":true}`,
	}
	want = append(want, before[1:4]...)
	want = append(want, before[5:]...)
	if !reflect.DeepEqual(after, want) {
		t.Fatalf("after rewrite\n%v\nwant\n%v", after, want)
	}

	// Row 5 is gone: rewriting the old location fails and changes nothing.
	_, err = c.Rewrite(ctx, "contacts", loc, func(int64, sources.Record) (*sources.Record, error) { return nil, nil })
	if !errors.Is(err, sources.ErrChanged) {
		t.Fatalf("rewrite of a deleted row: %v", err)
	}
	if !reflect.DeepEqual(snapshot(t, conn), after) {
		t.Fatal("ErrChanged rewrite changed data")
	}
}

// fakeToken is an Entra credential that hands out a fixed token and
// records the scopes it was asked for.
type fakeToken struct {
	token  string
	scopes [][]string
}

func (f *fakeToken) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.scopes = append(f.scopes, o.Scopes)
	return azcore.AccessToken{Token: f.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestEntraTokenIsThePassword(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Database(t)
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	const token = "eyJ0eXAi.fake-entra-token.sig"
	role := pgx.Identifier{pgtest.EntraRole}.Sanitize()
	if _, err := admin.Exec(ctx, "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '"+pgtest.EntraRole+"') THEN CREATE ROLE "+role+" LOGIN; END IF; END $$"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "ALTER ROLE "+role+" PASSWORD '"+token+"'"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, schema+"; GRANT SELECT ON ALL TABLES IN SCHEMA public TO "+role); err != nil {
		t.Fatal(err)
	}
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	entraDSN := fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=disable", cc.Host, cc.Port, cc.Database, pgtest.EntraRole)
	cfg := func(tok *fakeToken) *Config {
		return &Config{DSN: entraDSN, Credential: tok, Tables: []Table{{Name: "contacts", Table: "contacts", Key: "id",
			Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}}}}}
	}
	good := &fakeToken{token: token}
	c, err := New(ctx, cfg(good))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d, err := c.Discover(ctx, sources.Subject{Emails: []string{"ann@x.example"}})
	if err != nil {
		t.Fatalf("discover with the right token: %v", err)
	}
	if d.Total() != 2 {
		t.Errorf("found %d rows, want 2", d.Total())
	}
	if len(good.scopes) == 0 || !reflect.DeepEqual(good.scopes[0], []string{EntraScope}) {
		t.Errorf("token scopes %v, want [%s]", good.scopes, EntraScope)
	}
	// A wrong token is refused by the server: the password really is checked.
	bad := &fakeToken{token: "not-the-token"}
	c2, err := New(ctx, cfg(bad))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_, err = c2.Discover(ctx, sources.Subject{Emails: []string{"ann@x.example"}})
	if err == nil {
		t.Fatal("discover with a wrong token succeeded")
	}
	if strings.Contains(err.Error(), "not-the-token") || strings.Contains(err.Error(), "ann@x.example") {
		t.Errorf("error %q leaks the token or the subject", err)
	}
}

func TestErrorsDoNotQuoteValues(t *testing.T) {
	c, _ := setup(t)
	ctx := context.Background()
	d, err := c.Discover(ctx, sources.Subject{Emails: []string{"ann@x.example"}})
	if err != nil {
		t.Fatal(err)
	}
	// Writing an email into a boolean column fails, and PostgreSQL's
	// message quotes the offending value.
	_, err = c.Rewrite(ctx, "contacts", d.Datasets[0].Locations[0], func(_ int64, rec sources.Record) (*sources.Record, error) {
		for i := range rec.Fields {
			if rec.Fields[i].Name == "active" {
				rec.Fields[i].Value = "ann@x.example"
			}
		}
		return &rec, nil
	})
	if err == nil {
		t.Fatal("writing text into a boolean column succeeded")
	}
	if strings.Contains(err.Error(), "ann@x.example") {
		t.Errorf("error %q quotes a value", err)
	}
	if !strings.Contains(err.Error(), "SQLSTATE 22P02") || !strings.Contains(err.Error(), "contacts") {
		t.Errorf("error %q lacks the SQLSTATE and the dataset", err)
	}
	if _, err := New(ctx, &Config{DSN: "host=db password=hunter2 port=notaport"}); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("New with a bad DSN = %v; want an error without the password", err)
	}
}

// Keys of other types than integers (uuid, text with a collation that
// sorts differently from bytes) travel as Keys: discovery, read in
// location order, and rewrite all work, and a gone row is ErrChanged.
func TestNonIntegerKeys(t *testing.T) {
	c, conn := setup(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `
CREATE TABLE members (id uuid PRIMARY KEY, email text, nick text);
CREATE TABLE visits (code text PRIMARY KEY, member_id uuid REFERENCES members(id), place text);
INSERT INTO members VALUES
 ('00000000-0000-4000-8000-000000000002', 'ann@x.example', 'a2'),
 ('00000000-0000-4000-8000-000000000001', 'ANN@x.example', 'a1'),
 ('00000000-0000-4000-8000-000000000003', 'joann@x.example', 'j');
INSERT INTO visits VALUES
 ('b-visit', '00000000-0000-4000-8000-000000000001', 'Berlin'),
 ('A-visit', '00000000-0000-4000-8000-000000000002', 'Athens'),
 ('a-visit', '00000000-0000-4000-8000-000000000002', 'Aachen'),
 ('c-visit', '00000000-0000-4000-8000-000000000003', 'Cork');`); err != nil {
		t.Fatal(err)
	}
	c.cfg.Tables = []Table{
		{Name: "members", Table: "members", Key: "id", Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}}},
		{Name: "visits", Table: "visits", Key: "code", Relations: []Relation{{Field: "member_id", References: "members", ReferencesField: "id"}}},
	}
	d, err := c.Discover(ctx, sources.Subject{Emails: []string{"ann@x.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Datasets[0].Locations[0].Keys; !reflect.DeepEqual(got, []string{"00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"}) {
		t.Errorf("member keys %v", got)
	}
	vloc := d.Datasets[1].Locations[0]
	if !reflect.DeepEqual(vloc.Keys, []string{"A-visit", "a-visit", "b-visit"}) || len(vloc.Ordinals) != 0 {
		t.Fatalf("visit location %+v", vloc)
	}
	var places []any
	if err := c.Read(ctx, d.Datasets[1], func(r sources.Record) error {
		for _, f := range r.Fields {
			if f.Name == keyColumn {
				t.Errorf("the internal key column leaked into a record")
			}
			if f.Name == "place" {
				places = append(places, f.Value)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(places, []any{"Athens", "Aachen", "Berlin"}) {
		t.Errorf("read order %v, want location order Athens, Aachen, Berlin", places)
	}
	var ordinals []int64
	res, err := c.Rewrite(ctx, "visits", vloc, func(o int64, rec sources.Record) (*sources.Record, error) {
		ordinals = append(ordinals, o)
		if o == 1 {
			for i := range rec.Fields {
				if rec.Fields[i].Name == "place" {
					rec.Fields[i].Value = "[redacted]"
				}
			}
			return &rec, nil
		}
		return nil, nil
	})
	if err != nil || res.Deleted != 2 || res.Replaced != 1 || !reflect.DeepEqual(ordinals, []int64{0, 1, 2}) {
		t.Fatalf("rewrite = %+v, %v, ordinals %v", res, err, ordinals)
	}
	var left []string
	rows, _ := conn.Query(ctx, `SELECT code || ':' || place FROM visits ORDER BY code COLLATE "C"`)
	left, _ = pgx.CollectRows(rows, pgx.RowTo[string])
	if !reflect.DeepEqual(left, []string{"a-visit:[redacted]", "c-visit:Cork"}) {
		t.Errorf("visits left %v", left)
	}
	// The deleted rows are gone: reading the old location is ErrChanged.
	if err := c.Read(ctx, d.Datasets[1], func(sources.Record) error { return nil }); !errors.Is(err, sources.ErrChanged) {
		t.Errorf("read after delete = %v, want ErrChanged", err)
	}
}

// A planned rewrite names its transaction to BeforeCommit, and Committed
// tells its fate from the server: in progress while the plan is being
// written, aborted when BeforeCommit refused (nothing changed), committed
// after the commit, whichever process asks.
func TestRewritePlannedCommitted(t *testing.T) {
	c, conn := setup(t)
	ctx := context.Background()
	d, err := c.Discover(ctx, sources.Subject{Emails: []string{"ann@x.example"}, Phones: []string{"14255550100"}})
	if err != nil {
		t.Fatal(err)
	}
	loc := d.Datasets[0].Locations[0]
	before := snapshot(t, conn)
	maskAll := func(_ int64, r sources.Record) (*sources.Record, error) { // masks: cases reference the contacts
		out := sources.Record{Fields: slices.Clone(r.Fields)}
		for i := range out.Fields {
			if out.Fields[i].Name == "full_name" {
				out.Fields[i].Value = "[redacted]"
			}
		}
		return &out, nil
	}

	var refused sources.RewriteResult
	_, err = c.RewritePlanned(ctx, "contacts", loc, maskAll, sources.CommitPlan{ID: "p1", BeforeCommit: func(planned sources.RewriteResult) error {
		refused = planned
		return errors.New("the request was cancelled")
	}})
	if err == nil || !reflect.DeepEqual(snapshot(t, conn), before) {
		t.Fatalf("refused plan: err %v, or data changed", err)
	}
	if ok, _, err := c.Committed(ctx, "contacts", loc.Blob, sources.PlanRef{ID: "p1", Commit: refused.Commit}); ok || err != nil {
		t.Fatalf("Committed(refused plan %q) = %v, %v; want false, nil", refused.Commit, ok, err)
	}

	other, err := New(ctx, c.cfg) // another process asking
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var planned sources.RewriteResult
	var whilePlanning error
	res, err := c.RewritePlanned(ctx, "contacts", loc, maskAll, sources.CommitPlan{ID: "p2", BeforeCommit: func(p sources.RewriteResult) error {
		planned = p
		_, _, whilePlanning = other.Committed(ctx, "contacts", loc.Blob, sources.PlanRef{ID: "p2", Commit: p.Commit})
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(planned.Commit, "pg-xact:") || planned.Commit == refused.Commit || planned.Replaced != res.Replaced || res.Replaced != len(loc.Ordinals) {
		t.Fatalf("planned %+v, result %+v, %d rows at the location", planned, res, len(loc.Ordinals))
	}
	if !errors.Is(whilePlanning, errInProgress) {
		t.Fatalf("Committed while the transaction is open: %v, want in progress", whilePlanning)
	}
	if ok, etag, err := other.Committed(ctx, "contacts", loc.Blob, sources.PlanRef{ID: "p2", Commit: planned.Commit}); !ok || etag != "" || err != nil {
		t.Fatalf("Committed(p2) = %v %q %v, want true", ok, etag, err)
	}
	if _, _, err := other.Committed(ctx, "contacts", loc.Blob, sources.PlanRef{ID: "p3"}); err == nil {
		t.Fatal("Committed of a plan without a transaction answered")
	}
}
