package sources_test

import (
	"encoding/json"
	"strings"
	"testing"

	. "github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/dataverse"
	"github.com/dsr-functions/dsr/shared/sources/postgres"
	"github.com/dsr-functions/dsr/shared/sources/webhook"
)

// connectedConfig is a Blob dataset plus datasets of every registered
// kind of connection.
func connectedConfig() *Config {
	facts := Facts{Categories: []string{"contact details"}, Purposes: []string{"support"}, Retention: "1 year", Source: "the subject"}
	return &Config{
		Version:            1,
		DefaultPhoneRegion: "US",
		Connections: map[string]Connection{
			"crm-db": {Kind: ConnPostgres, Options: &postgres.ConnectionOptions{DSNSetting: "DSR_PG_CRM", EntraAuth: true}},
			"d365":   {Kind: ConnDataverse, Options: &dataverse.ConnectionOptions{URL: "https://contoso.crm.dynamics.com"}},
			"billing": {Kind: ConnWebhook, Options: &webhook.ConnectionOptions{URL: "https://billing.example/dsr", SecretSetting: "DSR_WEBHOOK_BILLING_SECRET",
				Identifiers: "hashed", HashKeySetting: "DSR_WEBHOOK_BILLING_HASHKEY", Timeout: "20s"}},
		},
		Datasets: []Dataset{
			{Name: "contacts", Container: "ds", Blob: "contacts.ndjson", Format: FormatNDJSON,
				Identifiers: []Identifier{{Field: "email", Kind: KindEmail}}, Facts: facts},
			{Name: "pg-contacts", Connection: "crm-db", Options: &postgres.TableOptions{Table: "contacts"}, Key: "id",
				Identifiers: []Identifier{{Field: "email", Kind: KindEmail}}, Facts: facts},
			{Name: "pg-cases", Connection: "crm-db", Options: &postgres.TableOptions{Schema: "crm", Table: "Cases"}, Key: "id",
				Relations: []Relation{{Field: "contact_id", References: "pg-contacts", ReferencesField: "id"}}, Facts: facts,
				Erasure: &Erasure{Action: EraseMask, Mask: []MaskRule{{Field: "description", Strategy: MaskRedact}}}},
			{Name: "d365-contacts", Connection: "d365", Options: &dataverse.EntityOptions{EntitySet: "contacts", Select: []string{"fullname", "emailaddress1"}},
				Key: "contactid", Identifiers: []Identifier{{Field: "emailaddress1", Kind: KindEmail}}, Facts: facts, Rectifiable: true},
			{Name: "d365-cases", Connection: "d365", Options: &dataverse.EntityOptions{EntitySet: "incidents"}, Key: "incidentid",
				Relations: []Relation{{Field: "_customerid_value", References: "d365-contacts", ReferencesField: "contactid"}}, Facts: facts},
			{Name: "billing", Connection: "billing", Options: &webhook.DatasetOptions{}, Facts: facts, Rectifiable: true},
		},
	}
}

func TestKindsRegistered(t *testing.T) {
	got := Kinds()
	want := []ConnectionKind{ConnDataverse, ConnPostgres, ConnWebhook}
	if len(got) != len(want) {
		t.Fatalf("Kinds() = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Kinds() = %v, want %v", got, want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a kind twice did not panic")
		}
	}()
	RegisterKind(ConnPostgres, Kind{NewConnection: func() ConnectionOptions { return &postgres.ConnectionOptions{} }, NewDataset: func() DatasetOptions { return &postgres.TableOptions{} }})
}

func TestValidateAcceptsConnections(t *testing.T) {
	c := connectedConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]ConnectionKind{"contacts": "", "pg-cases": ConnPostgres, "d365-cases": ConnDataverse, "billing": ConnWebhook} {
		if got := c.Kind(c.Dataset(name)); got != want {
			t.Errorf("Kind(%s) = %q, want %q", name, got, want)
		}
	}
	// A webhook URL may come from a setting instead.
	wh := c.Connections["billing"].Options.(*webhook.ConnectionOptions)
	wh.URL, wh.URLSetting = "", "DSR_WEBHOOK_BILLING_URL"
	if err := c.Validate(); err != nil {
		t.Fatalf("urlSetting: %v", err)
	}
}

// The config written out and read back is the same config: kind options
// sit beside the common fields, as in the file.
func TestConnectionsRoundTrip(t *testing.T) {
	b, err := json.Marshal(connectedConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"dsnSetting":"DSR_PG_CRM"`, `"entitySet":"incidents"`, `"schema":"crm"`, `"kind":"webhook"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("marshalled config lacks %s: %s", want, b)
		}
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	again, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(b) {
		t.Errorf("round trip changed the config:\n%s\n%s", b, again)
	}
	if o := got.Dataset("pg-cases").Options.(*postgres.TableOptions); o.Schema != "crm" || o.Table != "Cases" {
		t.Errorf("pg-cases options %+v", o)
	}
}

func TestValidateRejectsConnections(t *testing.T) {
	ds := func(c *Config, name string) *Dataset { return c.Dataset(name) }
	pg := func(c *Config) *postgres.ConnectionOptions {
		return c.Connections["crm-db"].Options.(*postgres.ConnectionOptions)
	}
	dv := func(c *Config) *dataverse.ConnectionOptions {
		return c.Connections["d365"].Options.(*dataverse.ConnectionOptions)
	}
	wh := func(c *Config) *webhook.ConnectionOptions {
		return c.Connections["billing"].Options.(*webhook.ConnectionOptions)
	}
	table := func(c *Config, name string) *postgres.TableOptions {
		return ds(c, name).Options.(*postgres.TableOptions)
	}
	entity := func(c *Config, name string) *dataverse.EntityOptions {
		return ds(c, name).Options.(*dataverse.EntityOptions)
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string
	}{
		{"unknown connection", func(c *Config) { ds(c, "pg-cases").Connection = "crm" }, []string{"connection", `"crm"`}},
		{"unknown kind", func(c *Config) { c.Connections["crm-db"] = Connection{Kind: "mysql", Options: pg(c)} }, []string{"connections.crm-db.kind", `"mysql"`, "postgres"}},
		{"postgres without dsnSetting", func(c *Config) { pg(c).DSNSetting = "" }, []string{"connections.crm-db.dsnSetting"}},
		{"dsn instead of a setting name", func(c *Config) { pg(c).DSNSetting = "host=db password=hunter2" }, []string{"connections.crm-db.dsnSetting", "not a setting name"}},
		{"postgres dataset without table", func(c *Config) { table(c, "pg-contacts").Table = "" }, []string{"datasets[1].table", "required"}},
		{"postgres dataset without key", func(c *Config) { ds(c, "pg-contacts").Key = "" }, []string{"datasets[1].key", "required"}},
		{"postgres dataset with a container", func(c *Config) { ds(c, "pg-contacts").Container = "crm" }, []string{"datasets[1]", "belong to Blob datasets", "postgres dataset"}},
		{"dataset without its kind's options", func(c *Config) { ds(c, "pg-contacts").Options = nil }, []string{"datasets[1]", "no options"}},
		{"dataverse over http", func(c *Config) { dv(c).URL = "http://contoso.crm.dynamics.com" }, []string{"connections.d365.url", "https"}},
		{"dataverse url with a path", func(c *Config) { dv(c).URL = "https://contoso.crm.dynamics.com/api/data/v9.2" }, []string{"connections.d365.url"}},
		{"dataverse too many attempts", func(c *Config) { dv(c).MaxAttempts = 21 }, []string{"connections.d365.maxAttempts"}},
		{"dataverse without entity set", func(c *Config) { entity(c, "d365-contacts").EntitySet = "" }, []string{"datasets[3].entitySet", "required"}},
		{"dataverse entity set that injects", func(c *Config) { entity(c, "d365-contacts").EntitySet = "contacts?$filter=true" }, []string{"datasets[3].entitySet", "plain name"}},
		{"dataverse key that injects", func(c *Config) { ds(c, "d365-contacts").Key = "contactid,fullname" }, []string{"datasets[3].key", "plain name"}},
		{"dataverse column that injects", func(c *Config) {
			ds(c, "d365-contacts").Identifiers[0].Field = "emailaddress1 eq 'x' or true"
		}, []string{"datasets[3].identifiers[0].field", "dataverse column", "plain name"}},
		{"dataverse select that injects", func(c *Config) { entity(c, "d365-contacts").Select = []string{"fullname&$top=1"} }, []string{"datasets[3].select[0]", "dataverse column"}},
		{"webhook without secret", func(c *Config) { wh(c).SecretSetting = "" }, []string{"connections.billing.secretSetting"}},
		{"webhook with url and urlSetting", func(c *Config) { wh(c).URLSetting = "X" }, []string{"url and urlSetting"}},
		{"webhook over http", func(c *Config) { wh(c).URL = "http://billing.example/dsr" }, []string{"connections.billing.url", "https"}},
		{"webhook hashed without key", func(c *Config) { wh(c).HashKeySetting = "" }, []string{"hashKeySetting"}},
		{"webhook raw with a hash key", func(c *Config) { wh(c).Identifiers = "raw" }, []string{"hashKeySetting", "hashed"}},
		{"webhook unknown identifiers", func(c *Config) { wh(c).Identifiers = "plain" }, []string{"identifiers", `"plain"`}},
		{"webhook bad timeout", func(c *Config) { wh(c).Timeout = "forever" }, []string{"timeout"}},
		{"webhook too many attempts", func(c *Config) { wh(c).MaxAttempts = 99 }, []string{"maxAttempts"}},
		{"webhook dataset with identifiers", func(c *Config) {
			ds(c, "billing").Identifiers = []Identifier{{Field: "email", Kind: KindEmail}}
		}, []string{"webhook system finds", "remove identifiers"}},
		{"webhook dataset with erasure", func(c *Config) { ds(c, "billing").Erasure = &Erasure{Action: EraseDelete} }, []string{"applies erasure"}},
		{"relation across sources", func(c *Config) {
			ds(c, "pg-cases").Relations[0].References = "contacts"
		}, []string{"relations[0].references", "another source"}},
		{"blob dataset with a kind's options", func(c *Config) { c.Datasets[0].Options = &postgres.TableOptions{Table: "x"} }, []string{"datasets[0]", "Blob dataset"}},
		{"postgres dataset with an index", func(c *Config) { ds(c, "pg-contacts").Index = true }, []string{"datasets[1].index", "Blob datasets", "postgres"}},
		{"unused connection", func(c *Config) {
			c.Connections["spare"] = Connection{Kind: ConnPostgres, Options: &postgres.ConnectionOptions{DSNSetting: "X"}}
		}, []string{"connections.spare", "no dataset"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := connectedConfig()
			tt.mutate(c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted the config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q repeats a secret", err)
			}
		})
	}
}

// A config file with a field its kind does not take is refused, naming
// the field and where it is; its secrets are never echoed.
func TestParseRejectsForeignFields(t *testing.T) {
	base, err := json.Marshal(connectedConfig())
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(base, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	conn := func(m map[string]any, name string) map[string]any {
		return m["connections"].(map[string]any)[name].(map[string]any)
	}
	dataset := func(m map[string]any, i int) map[string]any { return m["datasets"].([]any)[i].(map[string]any) }
	tests := []struct {
		name string
		edit func(m map[string]any)
		want []string
	}{
		{"postgres with a url", func(m map[string]any) { conn(m, "crm-db")["url"] = "https://x" }, []string{"connections.crm-db.url", "not a field of a postgres connection"}},
		{"dataverse with a dsnSetting", func(m map[string]any) { conn(m, "d365")["dsnSetting"] = "X" }, []string{"connections.d365.dsnSetting", "dataverse connection"}},
		{"webhook with entraAuth", func(m map[string]any) { conn(m, "billing")["entraAuth"] = true }, []string{"connections.billing.entraAuth", "webhook connection"}},
		{"no kind", func(m map[string]any) { delete(conn(m, "crm-db"), "kind") }, []string{"connections.crm-db.kind", `""`}},
		{"kind not a string", func(m map[string]any) { conn(m, "crm-db")["kind"] = 3 }, []string{"connections.crm-db.kind", "string"}},
		{"wrong type of a kind's field", func(m map[string]any) { conn(m, "d365")["maxAttempts"] = "five" }, []string{"connections.d365.maxAttempts", "number"}},
		{"dsn in a field that names a setting", func(m map[string]any) { conn(m, "crm-db")["dsnSetting"] = "host=db password=hunter2" }, []string{"connections.crm-db.dsnSetting"}},
		{"blob dataset with a table", func(m map[string]any) { dataset(m, 0)["table"] = "contacts" }, []string{"datasets[0].table", "not a field of a Blob dataset"}},
		{"webhook dataset with a table", func(m map[string]any) { dataset(m, 5)["table"] = "x" }, []string{"datasets[5].table", "not a field of a webhook dataset"}},
		{"postgres dataset with select", func(m map[string]any) { dataset(m, 1)["select"] = []string{"a"} }, []string{"datasets[1].select", "postgres dataset"}},
		{"dataset of an unknown connection", func(m map[string]any) { dataset(m, 1)["connection"] = "nope" }, []string{"datasets[1].connection", `"nope"`}},
		{"misspelt common field", func(m map[string]any) { dataset(m, 1)["identifers"] = []any{} }, []string{"datasets[1].identifers", "postgres dataset"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(edit(tt.edit))
			if err == nil {
				t.Fatal("Parse accepted the config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q repeats a secret", err)
			}
		})
	}
}

// The shipped configs keep working.
func TestShippedConfigsParse(t *testing.T) {
	cfg, err := LoadFile("../../sample/sources.all-kinds.json")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[ConnectionKind]int{}
	for i := range cfg.Datasets {
		kinds[cfg.Kind(&cfg.Datasets[i])]++
	}
	if kinds[""] != 1 || kinds[ConnPostgres] != 2 || kinds[ConnDataverse] != 3 || kinds[ConnWebhook] != 1 {
		t.Errorf("datasets by kind %v", kinds)
	}
	for i := range cfg.Datasets {
		if d := &cfg.Datasets[i]; cfg.Kind(d) == ConnDataverse && d.Options.(*dataverse.EntityOptions).EntitySet == "" {
			t.Errorf("%s: entitySet not decoded", d.Name)
		}
	}
	if _, err := LoadFile("../../sample/sources.json"); err != nil {
		t.Fatal(err)
	}
}
