package sources

import (
	"encoding/json"
	"fmt"
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
	// The identifier index, on every format it supports.
	c = validConfig()
	for i := range c.Datasets {
		c.Datasets[i].Index = true
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("index: %v", err)
	}
	// Paths through arrays.
	c = validConfig()
	c.Datasets[0].Identifiers = append(c.Datasets[0].Identifiers, Identifier{Field: "emails[]", Kind: KindEmail},
		Identifier{Field: "participants[].email", Kind: KindEmail}, Identifier{Field: "customer.phones[]", Kind: KindPhone})
	c.Datasets[1].FreeText = append(c.Datasets[1].FreeText, "messages[].body")
	if err := c.Validate(); err != nil {
		t.Fatalf("array paths: %v", err)
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
		{"index on parquet", func(c *Config) {
			c.Datasets[1].Format, c.Datasets[1].Index = FormatParquet, true
		}, []string{"datasets[1].index", "parquet"}},
		{"index on delta", func(c *Config) {
			c.Datasets[1].Format, c.Datasets[1].Index = FormatDelta, true
		}, []string{"datasets[1].index", "delta"}},
		{"index on synapse", func(c *Config) {
			c.Datasets[1].Format, c.Datasets[1].Entity, c.Datasets[1].Prefix, c.Datasets[1].Index = FormatSynapse, "contact", "export/", true
		}, []string{"datasets[1].index", "synapse"}},
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
		{"provided field empty", func(c *Config) { c.Datasets[0].Provided = &Provided{Fields: []string{"email", " "}} }, []string{"datasets[0].provided.fields[1]"}},
		{"provided field twice", func(c *Config) { c.Datasets[1].Provided = &Provided{Fields: []string{"a", "a"}} }, []string{"datasets[1].provided.fields[1]", "twice"}},
		{"dataset that can never match", func(c *Config) {
			c.Datasets[0].Identifiers, c.Datasets[0].FreeText, c.Datasets[0].Relations = nil, nil, nil
		}, []string{"datasets[0]", "never match"}},
		{"dataset with only name identifiers", func(c *Config) {
			c.Datasets[0].Identifiers = []Identifier{{Field: "fullname", Kind: KindName}}
		}, []string{"datasets[0]", "never match"}},
		{"unknown phone region", func(c *Config) { c.DefaultPhoneRegion = "UK" }, []string{"defaultPhoneRegion", `"UK"`}},

		// Field paths: a.b, a[], a[].b; anything else is refused at load.
		{"identifier path with brackets inside", func(c *Config) { c.Datasets[0].Identifiers[0].Field = "emails[0]" }, []string{"datasets[0].identifiers[0].field", "[]"}},
		{"identifier path with empty segment", func(c *Config) { c.Datasets[0].Identifiers[0].Field = "participants[]..email" }, []string{"datasets[0].identifiers[0].field", "empty"}},
		{"free text path with stray bracket", func(c *Config) { c.Datasets[1].FreeText = []string{"notes[.text"} }, []string{"datasets[1].freeText[0]", "[]"}},
		{"relation path with leading bracket", func(c *Config) { c.Datasets[1].Relations[0].Field = "[]contact" }, []string{"datasets[1].relations[0].field"}},
		{"mask path into an array", func(c *Config) {
			c.Datasets[0].Erasure = &Erasure{Action: EraseMask, Mask: []MaskRule{{Field: "emails[]", Strategy: MaskNull}}}
		}, []string{"datasets[0].erasure.mask[0].field", "arrays"}},

		// Erasure policies.
		{"unknown erasure action", func(c *Config) { c.Datasets[1].Erasure = &Erasure{Action: "anonymise"} }, []string{"datasets[1].erasure.action", `"anonymise"`}},
		{"empty erasure action", func(c *Config) { c.Datasets[0].Erasure = &Erasure{} }, []string{"datasets[0].erasure.action"}},
		{"erasure action in upper case", func(c *Config) { c.Datasets[0].Erasure = &Erasure{Action: "DELETE"} }, []string{"datasets[0].erasure.action", `"DELETE"`}},
		{"mask without rules", func(c *Config) { c.Datasets[2].Erasure = &Erasure{Action: EraseMask} }, []string{"datasets[2].erasure.mask", "at least one"}},
		{"mask rule without field", func(c *Config) {
			c.Datasets[2].Erasure = &Erasure{Action: EraseMask, Mask: []MaskRule{{Field: "a", Strategy: MaskNull}, {Strategy: MaskNull}}}
		}, []string{"datasets[2].erasure.mask[1].field", "required"}},
		{"mask rule with empty path segment", func(c *Config) {
			c.Datasets[0].Erasure = &Erasure{Action: EraseMask, Mask: []MaskRule{{Field: "address..city", Strategy: MaskNull}}}
		}, []string{"datasets[0].erasure.mask[0].field", "empty path segment"}},
		{"mask rule with trailing dot", func(c *Config) {
			c.Datasets[0].Erasure = &Erasure{Action: EraseMask, Mask: []MaskRule{{Field: "address.", Strategy: MaskNull}}}
		}, []string{"datasets[0].erasure.mask[0].field"}},
		{"duplicate mask field", func(c *Config) {
			c.Datasets[0].Erasure = &Erasure{Action: EraseMask, Mask: []MaskRule{
				{Field: "email", Strategy: MaskHMAC}, {Field: "phone", Strategy: MaskNull}, {Field: "email", Strategy: MaskRedact},
			}}
		}, []string{"datasets[0].erasure.mask[2].field", "duplicate", `"email"`}},
		{"unknown mask strategy", func(c *Config) {
			c.Datasets[2].Erasure = &Erasure{Action: EraseMask, Mask: []MaskRule{{Field: "email", Strategy: "scramble"}}}
		}, []string{"datasets[2].erasure.mask[0].strategy", `"scramble"`}},
		{"empty mask strategy", func(c *Config) {
			c.Datasets[2].Erasure = &Erasure{Action: EraseMask, Mask: []MaskRule{{Field: "email"}}}
		}, []string{"datasets[2].erasure.mask[0].strategy"}},
		{"text with strategy null", func(c *Config) {
			c.Datasets[1].Erasure = &Erasure{Action: EraseMask, Mask: []MaskRule{{Field: "description", Strategy: MaskNull, Text: "gone"}}}
		}, []string{"datasets[1].erasure.mask[0].text", "redact"}},
		{"text with strategy hmac", func(c *Config) {
			c.Datasets[1].Erasure = &Erasure{Action: EraseMask, Mask: []MaskRule{{Field: "email", Strategy: MaskHMAC, Text: "x"}}}
		}, []string{"datasets[1].erasure.mask[0].text"}},
		{"delete with mask rules", func(c *Config) {
			c.Datasets[0].Erasure = &Erasure{Action: EraseDelete, Mask: []MaskRule{{Field: "email", Strategy: MaskNull}}}
		}, []string{"datasets[0].erasure.mask", "delete"}},
		{"retain with mask rules", func(c *Config) {
			c.Datasets[0].Erasure = &Erasure{Action: EraseRetain, Ground: "legal claims", LegalBasis: "Art. 17(3)(e)", Mask: []MaskRule{{Field: "email", Strategy: MaskNull}}}
		}, []string{"datasets[0].erasure.mask", "retain"}},
		{"delete with a ground", func(c *Config) {
			c.Datasets[0].Erasure = &Erasure{Action: EraseDelete, Ground: "legal claims"}
		}, []string{"datasets[0].erasure", "retain"}},
		{"mask with retainUntil", func(c *Config) {
			c.Datasets[0].Erasure = &Erasure{Action: EraseMask, Mask: []MaskRule{{Field: "email", Strategy: MaskNull}}, RetainUntil: "2030-01-01"}
		}, []string{"datasets[0].erasure", "retain"}},
		{"retain without ground", func(c *Config) {
			c.Datasets[1].Erasure = &Erasure{Action: EraseRetain, LegalBasis: "Art. 6(1)(c) GDPR"}
		}, []string{"datasets[1].erasure.ground", "required"}},
		{"retain with blank ground", func(c *Config) {
			c.Datasets[1].Erasure = &Erasure{Action: EraseRetain, Ground: "  ", LegalBasis: "Art. 6(1)(c) GDPR"}
		}, []string{"datasets[1].erasure.ground"}},
		{"retain without legalBasis", func(c *Config) {
			c.Datasets[1].Erasure = &Erasure{Action: EraseRetain, Ground: "tax law"}
		}, []string{"datasets[1].erasure.legalBasis", "required"}},
		{"systemLog with retain policy", func(c *Config) {
			c.Datasets[2].SystemLog = true
			c.Datasets[2].Erasure = &Erasure{Action: EraseRetain, Ground: "audit", LegalBasis: "Art. 6(1)(c) GDPR"}
		}, []string{"datasets[2].erasure", "systemLog datasets are never erased; remove erasure"}},
		{"systemLog with delete policy", func(c *Config) {
			c.Datasets[0].SystemLog = true
			c.Datasets[0].Erasure = &Erasure{Action: EraseDelete}
		}, []string{"datasets[0].erasure", "never erased"}},
	}
	for _, bad := range []string{
		"2030-13-01", "2030-00-10", "2030-02-29", "2030-04-31", "2030-12-00", "2030-1-1", "30-12-31", "31/12/2030", "12/31/2030",
		"2030-12-31T10:00:00", "2030-12-31T24:00:00Z", "2030-12-31T10:60:00Z", "2030-12-31T10:00:60Z",
		"2030-12-31T10:00:00+25:00", "2030-12-31 10:00:00Z", "2030-12-31Z", " 2030-12-31", "soon", "2030",
	} {
		tests = append(tests, struct {
			name   string
			mutate func(c *Config)
			want   []string
		}{"retainUntil " + bad, func(c *Config) {
			c.Datasets[1].Erasure = &Erasure{Action: EraseRetain, Ground: "tax law", LegalBasis: "Art. 6(1)(c) GDPR", RetainUntil: bad}
		}, []string{"datasets[1].erasure.retainUntil", fmt.Sprintf("%q", bad)}})
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

func TestValidateAcceptsErasure(t *testing.T) {
	retain := func(until string) *Erasure {
		return &Erasure{Action: EraseRetain, Ground: "Art. 17(3)(b): statutory retention of invoices", LegalBasis: "Art. 6(1)(c) GDPR", RetainUntil: until}
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
	}{
		{"delete", func(c *Config) { c.Datasets[0].Erasure = &Erasure{Action: EraseDelete} }},
		{"mask with every strategy", func(c *Config) {
			c.Datasets[0].Erasure = &Erasure{Action: EraseMask, Mask: []MaskRule{
				{Field: "email", Strategy: MaskHMAC},
				{Field: "phone", Strategy: MaskNull},
				{Field: "notes", Strategy: MaskRedact, Text: "[removed on request]"},
				{Field: "address.city", Strategy: MaskRedact},
				{Field: "birthdate", Strategy: MaskYear},
			}}
		}},
		{"mask on a csv dataset", func(c *Config) {
			c.Datasets[1].Erasure = &Erasure{Action: EraseMask, Mask: []MaskRule{{Field: "description", Strategy: MaskRedact}}}
		}},
		{"retain without retainUntil", func(c *Config) { c.Datasets[2].Erasure = retain("") }},
		{"retain until a date", func(c *Config) { c.Datasets[2].Erasure = retain("2030-12-31") }},
		{"retain until a leap day", func(c *Config) { c.Datasets[2].Erasure = retain("2028-02-29") }},
		{"retain until a UTC timestamp", func(c *Config) { c.Datasets[2].Erasure = retain("2030-12-31T23:59:59Z") }},
		{"retain until a timestamp with offset", func(c *Config) { c.Datasets[2].Erasure = retain("2030-12-31T23:59:59.123+01:00") }},
		{"systemLog without erasure", func(c *Config) { c.Datasets[2].SystemLog = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			// The policy survives its JSON form.
			b, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Parse(b)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(p.Datasets, c.Datasets) {
				t.Errorf("datasets after a JSON round trip:\n%+v\nwant\n%+v", p.Datasets, c.Datasets)
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

// Provided keeps the listed fields in the record's order, or all of them.
func TestProvidedProject(t *testing.T) {
	r := Record{Fields: []Field{{Name: "id", Value: "1"}, {Name: "email", Value: "a@x.example"}, {Name: "note", Value: "n"}, {Name: "name", Value: "A"}}}
	got := (&Provided{Fields: []string{"name", "email"}}).Project(r)
	if len(got.Fields) != 2 || got.Fields[0].Name != "email" || got.Fields[1].Name != "name" {
		t.Fatalf("projected %+v", got.Fields)
	}
	if all := (&Provided{}).Project(r); len(all.Fields) != 4 {
		t.Fatalf("empty fields keep %d of 4", len(all.Fields))
	}
}

// TestParseIndexField reads the index field from a config file and
// refuses it, naming it, on a format it does not support.
func TestParseIndexField(t *testing.T) {
	ds := `{"name":"contacts","container":"ds","blob":"c.%s","format":"%s","index":true,
	 "identifiers":[{"field":"email","kind":"email"}],
	 "facts":{"categories":["c"],"purposes":["p"],"retention":"r","source":"s"}}`
	cfg, err := Parse([]byte(`{"version":1,"datasets":[` + fmt.Sprintf(ds, "ndjson", "ndjson") + `]}`))
	if err != nil || !cfg.Datasets[0].Index {
		t.Fatalf("Parse = %+v, %v; want index on", cfg, err)
	}
	_, err = Parse([]byte(`{"version":1,"datasets":[` + fmt.Sprintf(ds, "parquet", "parquet") + `]}`))
	if err == nil || !strings.Contains(err.Error(), "datasets[0].index") {
		t.Fatalf("Parse(index on parquet) = %v; want an error naming datasets[0].index", err)
	}
}
