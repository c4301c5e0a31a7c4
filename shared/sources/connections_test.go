package sources

import (
	"strings"
	"testing"
)

// connectedConfig is validConfig plus one dataset per connection kind.
func connectedConfig() *Config {
	c := validConfig()
	facts := c.Datasets[0].Facts
	c.Connections = map[string]Connection{
		"crm-db":  {Kind: ConnPostgres, DSNSetting: "DSR_PG_CRM", EntraAuth: true},
		"d365":    {Kind: ConnDataverse, URL: "https://contoso.crm.dynamics.com"},
		"billing": {Kind: ConnWebhook, URL: "https://billing.example/dsr", SecretSetting: "DSR_WEBHOOK_BILLING_SECRET", Identifiers: "hashed", HashKeySetting: "DSR_WEBHOOK_BILLING_HASHKEY", Timeout: "20s"},
	}
	c.Datasets = append(c.Datasets,
		Dataset{Name: "pg-contacts", Connection: "crm-db", Table: "contacts", Key: "id", Identifiers: []Identifier{{Field: "email", Kind: KindEmail}}, Facts: facts},
		Dataset{Name: "pg-cases", Connection: "crm-db", Schema: "crm", Table: "Cases", Key: "id", Relations: []Relation{{Field: "contact_id", References: "pg-contacts", ReferencesField: "id"}}, Facts: facts,
			Erasure: &Erasure{Action: EraseMask, Mask: []MaskRule{{Field: "description", Strategy: MaskRedact}}}},
		Dataset{Name: "d365-contacts", Connection: "d365", EntitySet: "contacts", Key: "contactid", Select: []string{"fullname", "emailaddress1"}, Identifiers: []Identifier{{Field: "emailaddress1", Kind: KindEmail}}, Facts: facts, Rectifiable: true},
		Dataset{Name: "d365-cases", Connection: "d365", EntitySet: "incidents", Key: "incidentid", Relations: []Relation{{Field: "_customerid_value", References: "d365-contacts", ReferencesField: "contactid"}}, Facts: facts},
		Dataset{Name: "billing", Connection: "billing", Facts: facts, Rectifiable: true},
	)
	return c
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
	wh := c.Connections["billing"]
	wh.URL, wh.URLSetting = "", "DSR_WEBHOOK_BILLING_URL"
	c.Connections["billing"] = wh
	if err := c.Validate(); err != nil {
		t.Fatalf("urlSetting: %v", err)
	}
}

func TestValidateRejectsConnections(t *testing.T) {
	idx := func(c *Config, name string) int {
		for i := range c.Datasets {
			if c.Datasets[i].Name == name {
				return i
			}
		}
		panic(name)
	}
	conn := func(c *Config, name string, f func(*Connection)) {
		x := c.Connections[name]
		f(&x)
		c.Connections[name] = x
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string
	}{
		{"unknown connection", func(c *Config) { c.Datasets[idx(c, "pg-cases")].Connection = "crm" }, []string{"connection", `"crm"`}},
		{"unknown kind", func(c *Config) { conn(c, "crm-db", func(x *Connection) { x.Kind = "mysql" }) }, []string{"connections.crm-db.kind", `"mysql"`}},
		{"postgres without dsnSetting", func(c *Config) { conn(c, "crm-db", func(x *Connection) { x.DSNSetting = "" }) }, []string{"connections.crm-db.dsnSetting"}},
		{"dsn instead of a setting name", func(c *Config) {
			conn(c, "crm-db", func(x *Connection) { x.DSNSetting = "host=db password=hunter2" })
		}, []string{"dsnSetting", "not a setting name"}},
		{"postgres with a url", func(c *Config) { conn(c, "crm-db", func(x *Connection) { x.URL = "https://x" }) }, []string{"connections.crm-db", "dsnSetting and entraAuth only"}},
		{"postgres dataset without table", func(c *Config) { c.Datasets[idx(c, "pg-contacts")].Table = "" }, []string{"table and key"}},
		{"postgres dataset without key", func(c *Config) { c.Datasets[idx(c, "pg-contacts")].Key = "" }, []string{"table and key"}},
		{"postgres dataset with a container", func(c *Config) { c.Datasets[idx(c, "pg-contacts")].Container = "crm" }, []string{"postgres dataset", "not container"}},
		{"dataverse over http", func(c *Config) { conn(c, "d365", func(x *Connection) { x.URL = "http://contoso.crm.dynamics.com" }) }, []string{"connections.d365.url", "https"}},
		{"dataverse url with a path", func(c *Config) {
			conn(c, "d365", func(x *Connection) { x.URL = "https://contoso.crm.dynamics.com/api/data/v9.2" })
		}, []string{"connections.d365.url"}},
		{"dataverse without entity set", func(c *Config) { c.Datasets[idx(c, "d365-contacts")].EntitySet = "" }, []string{"entitySet and key"}},
		{"dataverse entity set that injects", func(c *Config) { c.Datasets[idx(c, "d365-contacts")].EntitySet = "contacts?$filter=true" }, []string{"entitySet and key"}},
		{"dataverse column that injects", func(c *Config) {
			c.Datasets[idx(c, "d365-contacts")].Identifiers[0].Field = "emailaddress1 eq 'x' or true"
		}, []string{"dataverse column", "plain name"}},
		{"dataverse select that injects", func(c *Config) { c.Datasets[idx(c, "d365-contacts")].Select = []string{"fullname&$top=1"} }, []string{"dataverse column"}},
		{"webhook without secret", func(c *Config) { conn(c, "billing", func(x *Connection) { x.SecretSetting = "" }) }, []string{"connections.billing.secretSetting"}},
		{"webhook with url and urlSetting", func(c *Config) { conn(c, "billing", func(x *Connection) { x.URLSetting = "X" }) }, []string{"url and urlSetting"}},
		{"webhook over http", func(c *Config) { conn(c, "billing", func(x *Connection) { x.URL = "http://billing.example/dsr" }) }, []string{"connections.billing.url", "https"}},
		{"webhook hashed without key", func(c *Config) { conn(c, "billing", func(x *Connection) { x.HashKeySetting = "" }) }, []string{"hashKeySetting"}},
		{"webhook raw with a hash key", func(c *Config) { conn(c, "billing", func(x *Connection) { x.Identifiers = "raw" }) }, []string{"hashKeySetting", "hashed"}},
		{"webhook unknown identifiers", func(c *Config) { conn(c, "billing", func(x *Connection) { x.Identifiers = "plain" }) }, []string{"identifiers", `"plain"`}},
		{"webhook bad timeout", func(c *Config) { conn(c, "billing", func(x *Connection) { x.Timeout = "forever" }) }, []string{"timeout"}},
		{"webhook too many attempts", func(c *Config) { conn(c, "billing", func(x *Connection) { x.MaxAttempts = 99 }) }, []string{"maxAttempts"}},
		{"webhook dataset with identifiers", func(c *Config) {
			c.Datasets[idx(c, "billing")].Identifiers = []Identifier{{Field: "email", Kind: KindEmail}}
		}, []string{"webhook system finds", "remove identifiers"}},
		{"webhook dataset with erasure", func(c *Config) { c.Datasets[idx(c, "billing")].Erasure = &Erasure{Action: EraseDelete} }, []string{"applies erasure"}},
		{"webhook dataset with a table", func(c *Config) { c.Datasets[idx(c, "billing")].Table = "x" }, []string{"webhook dataset takes only"}},
		{"relation across sources", func(c *Config) {
			c.Datasets[idx(c, "pg-cases")].Relations[0].References = "contacts"
		}, []string{"relations[0].references", "another source"}},
		{"blob dataset with a table", func(c *Config) { c.Datasets[0].Table = "contacts" }, []string{"datasets[0]", "belong to datasets with a connection"}},
		{"unused connection", func(c *Config) { c.Connections["spare"] = Connection{Kind: ConnPostgres, DSNSetting: "X"} }, []string{"connections.spare", "no dataset"}},
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

// The all-kinds example the README points to is a valid config.
func TestAllKindsExampleParses(t *testing.T) {
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
}
