package sources

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseSampleConfig(t *testing.T) {
	b, err := os.ReadFile("../../sample/sources.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(sample/sources.json): %v", err)
	}
	var names []string
	for _, d := range cfg.Datasets {
		names = append(names, d.Name)
	}
	want := []string{"contacts", "cases", "agents", "surveys", "activity-log"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("datasets %v, want %v", names, want)
	}
	if cfg.DefaultPhoneRegion != "US" {
		t.Errorf("defaultPhoneRegion %q, want US", cfg.DefaultPhoneRegion)
	}
	c := cfg.Dataset("contacts")
	if c == nil || c.Format != FormatNDJSON || c.Blob != "crm/contacts.ndjson" || len(c.Identifiers) != 4 {
		t.Fatalf("contacts dataset decoded wrongly: %+v", c)
	}
	if id := c.Identifiers[2]; id != (Identifier{Field: "contactid", Kind: KindID, IDName: "contactId"}) {
		t.Errorf("contacts identifier 2 = %+v", id)
	}
	cs := cfg.Dataset("cases")
	if cs == nil || cs.Format != FormatCSV || len(cs.Relations) != 1 ||
		cs.Relations[0] != (Relation{Field: "customerid", References: "contacts", ReferencesField: "contactid"}) {
		t.Errorf("cases dataset decoded wrongly: %+v", cs)
	}
	if cfg.Dataset("nope") != nil {
		t.Error("Dataset(nope) is not nil")
	}

	// LoadFile reads the same file, and names the file in its errors.
	if _, err := LoadFile("../../sample/sources.json"); err != nil {
		t.Errorf("LoadFile: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"version": 2, "datasets": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "version") {
		t.Errorf("LoadFile(bad) = %v, want an error naming the file and the version", err)
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("LoadFile(missing) succeeded")
	}
}

// validConfig is a small config that passes Validate; each case of
// TestValidateRejects breaks one thing in a fresh copy.
func validConfig() *Config {
	facts := Facts{Categories: []string{"contact details"}, Purposes: []string{"support"}, Retention: "1 year", Source: "the subject"}
	return &Config{
		Version:            1,
		DefaultPhoneRegion: "US",
		Datasets: []Dataset{
			{
				Name: "contacts", Container: "ds", Blob: "contacts.ndjson", Format: FormatNDJSON,
				Identifiers: []Identifier{{Field: "email", Kind: KindEmail}, {Field: "id", Kind: KindID, IDName: "contactId"}},
				Facts:       facts,
			},
			{
				Name: "cases", Container: "ds", Prefix: "cases/", Format: FormatCSV,
				FreeText:  []string{"description"},
				Relations: []Relation{{Field: "contact_id", References: "contacts", ReferencesField: "id"}},
				Facts:     facts,
			},
			{
				Name: "notes-2", Container: "ds", Blob: "notes.json", Format: FormatJSONArray,
				Relations: []Relation{{Field: "case", References: "cases", ReferencesField: "case_id"}},
				Facts:     facts,
			},
		},
	}
}

func TestValidateAcceptsValidConfig(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	// A dataset that only relates to others, and one that only has free
	// text, are fine; so is a relation to the dataset itself.
	c := validConfig()
	c.Datasets[0].Relations = []Relation{{Field: "merged_into", References: "contacts", ReferencesField: "id"}}
	if err := c.Validate(); err != nil {
		t.Fatalf("self-relation: %v", err)
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		// want are substrings of the error: the place, and what is wrong.
		want []string
	}{
		{"version 0", func(c *Config) { c.Version = 0 }, []string{"version", "0"}},
		{"version 2", func(c *Config) { c.Version = 2 }, []string{"version", "2"}},
		{"no datasets", func(c *Config) { c.Datasets = nil }, []string{"datasets", "at least one"}},
		{"empty name", func(c *Config) { c.Datasets[1].Name = "" }, []string{"datasets[1].name"}},
		{"upper-case name", func(c *Config) { c.Datasets[1].Name = "Cases" }, []string{"datasets[1].name", `"Cases"`}},
		{"name with space", func(c *Config) { c.Datasets[2].Name = "my notes" }, []string{"datasets[2].name"}},
		{"name with slash", func(c *Config) { c.Datasets[2].Name = "crm/notes" }, []string{"datasets[2].name"}},
		{"name starting with hyphen", func(c *Config) { c.Datasets[0].Name = "-contacts" }, []string{"datasets[0].name"}},
		{"name too long", func(c *Config) { c.Datasets[0].Name = strings.Repeat("a", 64) }, []string{"datasets[0].name"}},
		{"duplicate name", func(c *Config) { c.Datasets[2].Name = "contacts" }, []string{"datasets[2].name", "duplicate", `"contacts"`}},
		{"missing container", func(c *Config) { c.Datasets[1].Container = "" }, []string{"datasets[1].container", "required"}},
		{"both blob and prefix", func(c *Config) { c.Datasets[0].Prefix = "contacts/" }, []string{"datasets[0]", "blob and prefix"}},
		{"neither blob nor prefix", func(c *Config) { c.Datasets[1].Prefix = "" }, []string{"datasets[1]", "blob and prefix"}},
		{"unknown format", func(c *Config) { c.Datasets[2].Format = "xml" }, []string{"datasets[2].format", `"xml"`}},
		{"empty format", func(c *Config) { c.Datasets[0].Format = "" }, []string{"datasets[0].format"}},
		{"format in upper case", func(c *Config) { c.Datasets[0].Format = "NDJSON" }, []string{"datasets[0].format"}},
		{"unknown identifier kind", func(c *Config) { c.Datasets[0].Identifiers[1].Kind = "passport" }, []string{"datasets[0].identifiers[1].kind", `"passport"`}},
		{"identifier without field", func(c *Config) { c.Datasets[0].Identifiers[0].Field = "" }, []string{"datasets[0].identifiers[0].field", "required"}},
		{"relation to unknown dataset", func(c *Config) { c.Datasets[2].Relations[0].References = "case" }, []string{"datasets[2].relations[0].references", `"case"`}},
		{"relation without references", func(c *Config) { c.Datasets[2].Relations[0].References = "" }, []string{"datasets[2].relations[0].references"}},
		{"relation without field", func(c *Config) { c.Datasets[1].Relations[0].Field = "" }, []string{"datasets[1].relations[0]", "field"}},
		{"relation without referencesField", func(c *Config) { c.Datasets[2].Relations[0].ReferencesField = "" }, []string{"datasets[2].relations[0]", "referencesField"}},
		{"missing categories", func(c *Config) { c.Datasets[1].Facts.Categories = nil }, []string{"datasets[1].facts", "Art. 15"}},
		{"missing purposes", func(c *Config) { c.Datasets[1].Facts.Purposes = []string{} }, []string{"datasets[1].facts"}},
		{"missing retention", func(c *Config) { c.Datasets[0].Facts.Retention = "" }, []string{"datasets[0].facts"}},
		{"missing source", func(c *Config) { c.Datasets[2].Facts.Source = "" }, []string{"datasets[2].facts"}},
		{"dataset that can never match", func(c *Config) {
			c.Datasets[0].Identifiers, c.Datasets[0].FreeText, c.Datasets[0].Relations = nil, nil, nil
		}, []string{"datasets[0]", "never match"}},
		{"dataset with only name identifiers", func(c *Config) {
			c.Datasets[0].Identifiers = []Identifier{{Field: "fullname", Kind: KindName}}
		}, []string{"datasets[0]", "never match"}},
		{"unknown phone region", func(c *Config) { c.DefaultPhoneRegion = "UK" }, []string{"defaultPhoneRegion", `"UK"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
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
			// Parse must reject the same config, through its JSON form.
			b, jerr := json.Marshal(c)
			if jerr != nil {
				t.Fatal(jerr)
			}
			if _, perr := Parse(b); perr == nil {
				t.Error("Parse accepted the config")
			}
		})
	}
}

func TestValidatePhoneRegion(t *testing.T) {
	for _, r := range []string{"", "US", "GB", "de", " NL "} {
		c := validConfig()
		c.DefaultPhoneRegion = r
		if err := c.Validate(); err != nil {
			t.Errorf("defaultPhoneRegion %q: %v", r, err)
		}
	}
}

func TestParseRejects(t *testing.T) {
	valid, err := json.Marshal(validConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range []string{string(valid), string(valid) + "\n", " \r\n" + string(valid) + " \n\n"} {
		if _, err := Parse([]byte(doc)); err != nil {
			t.Fatalf("Parse(valid with white space %q...): %v", doc[:3], err)
		}
	}
	s := string(valid)
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"top-level typo", strings.Replace(s, `"defaultPhoneRegion"`, `"defaultPhoneRegoin"`, 1), []string{"defaultPhoneRegoin"}},
		{"dataset field typo", strings.Replace(s, `"identifiers"`, `"identifer"`, 1), []string{"identifer"}},
		{"identifier field typo", strings.Replace(s, `"idName"`, `"idNmae"`, 1), []string{"idNmae"}},
		{"relation field typo", strings.Replace(s, `"referencesField"`, `"referenceField"`, 1), []string{"referenceField"}},
		{"facts field typo", strings.Replace(s, `"retention"`, `"retension"`, 1), []string{"retension"}},
		{"wrong type", strings.Replace(s, `"version":1`, `"version":"1"`, 1), []string{"version"}},
		{"not JSON", "version: 1", nil},
		{"empty", "", nil},
		{"trailing data", s + ` {"version": 1}`, []string{"after"}},
		{"trailing garbage", s + `x`, nil},
		{"invalid after decoding", `{"version": 1, "datasets": []}`, []string{"datasets"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.doc == s {
				t.Fatal("the test case did not change the document")
			}
			_, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatal("Parse accepted the document")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
