// Package sources describes where personal data lives (the sources config) and
// defines the Connector interface that finds, reads and (later) changes a data
// subject's records in one kind of store.
package sources

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Format is the encoding of a Blob dataset.
type Format string

// Supported dataset formats.
const (
	FormatNDJSON    Format = "ndjson"     // one JSON object per line
	FormatCSV       Format = "csv"        // RFC 4180 with a header row
	FormatJSONArray Format = "json-array" // one top-level JSON array of objects
	// FormatParquet is Apache Parquet: rows are records (nested groups as
	// objects, lists as arrays), found and read by row ordinal with ranged
	// reads of the columns needed.
	FormatParquet Format = "parquet"
	// FormatSynapse is an Azure Synapse Link for Dataverse (CSV) export:
	// Prefix is the folder holding model.json (the container root is ""),
	// Entity the table; its rows are headerless CSV whose columns
	// model.json lists (see synapse.go).
	FormatSynapse Format = "synapse"
	// FormatDelta is a Delta Lake table: the dataset's prefix is the table
	// root (the folder holding _delta_log/); its live Parquet files are
	// found from the log (see blobdataset/delta.go).
	FormatDelta Format = "delta"
)

// IdentifierKind says what a field identifies a person as.
type IdentifierKind string

// Identifier kinds. A name alone never identifies a person: name fields are
// reported but a record must match an email, phone, id or relation.
const (
	KindEmail IdentifierKind = "email"
	KindPhone IdentifierKind = "phone"
	KindID    IdentifierKind = "id"
	KindName  IdentifierKind = "name"
)

// Config is the sources config file: every place personal data lives.
type Config struct {
	// Version of the schema; must be 1.
	Version int `json:"version"`
	// DefaultPhoneRegion is the ISO 3166 region used to read phone numbers
	// written without a country code (for example "US"). Empty means such
	// numbers cannot be normalised and never match.
	DefaultPhoneRegion string `json:"defaultPhoneRegion,omitempty"`
	// Connections name the systems, other than this app's Blob Storage,
	// that hold datasets: PostgreSQL databases, Dataverse environments and
	// webhook systems. Datasets refer to them by name.
	Connections map[string]Connection `json:"connections,omitempty"`
	// Datasets lists every dataset: Blob datasets (no connection) and the
	// tables, entity sets or webhook datasets of the connections.
	Datasets []Dataset `json:"datasets"`
	// Recipients are those to whom datasets are disclosed; they are told
	// of erasures, rectifications and restrictions (Art. 19).
	Recipients []Recipient `json:"recipients,omitempty"`
}

// ConnectionKind is the kind of system a connection reaches.
type ConnectionKind string

// Connection kinds.
const (
	ConnPostgres  ConnectionKind = "postgres"  // PostgreSQL (Azure Database for PostgreSQL)
	ConnDataverse ConnectionKind = "dataverse" // Dataverse Web API (Dynamics 365)
	ConnWebhook   ConnectionKind = "webhook"   // any system behind signed HTTP POSTs
)

// Connection is one system that holds datasets: its kind, and the kind's
// own fields (Options, decoded and checked by the kind's package; see
// RegisterKind). Secrets never sit in the config file: settings (app
// settings, Key Vault references) hold them and the options name those
// settings.
type Connection struct {
	Kind    ConnectionKind
	Options ConnectionOptions
}

// Dataset is one logical table stored as one or more blobs of one format.
type Dataset struct {
	// Name is unique, [a-z0-9-]; it names the dataset in reports and exports.
	Name string `json:"name"`
	// Description is a human-readable line for the export summary.
	Description string `json:"description,omitempty"`
	// Connection names the connection that holds the dataset; empty means
	// a Blob dataset in this app's storage account.
	Connection string `json:"connection,omitempty"`
	// Options are the fields of the connection's kind (a PostgreSQL
	// table's schema and name, a Dataverse entity set), decoded and
	// checked by the kind's package; nil for a Blob dataset.
	Options DatasetOptions `json:"-"`
	// Container holds the blobs (Blob datasets).
	Container string `json:"container,omitempty"`
	// Blob is one blob name, or Prefix selects every blob under it; exactly one is set.
	Blob   string `json:"blob,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	// Format of every blob (Blob datasets).
	Format Format `json:"format,omitempty"`
	// Entity is the table of a "synapse" dataset: its name in model.json
	// and its folder under Prefix.
	Entity string `json:"entity,omitempty"`
	// Key is the field that identifies a record inside the dataset
	// (optional for Blob datasets; the primary key column of a table, the
	// entity's id column, or the webhook record id field, default "id").
	Key string `json:"key,omitempty"`
	// Identifiers are fields that identify a person, and as what.
	Identifiers []Identifier `json:"identifiers,omitempty"`
	// FreeText fields are searched for the subject's emails (as whole tokens) and phones.
	FreeText []string `json:"freeText,omitempty"`
	// Relations make records that reference a matched record of another
	// dataset belong to the subject too.
	Relations []Relation `json:"relations,omitempty"`
	// Facts are the Art. 15 facts reported for this dataset.
	Facts Facts `json:"facts"`
	// Erasure says what an erasure request does to the subject's records
	// here (default: delete them).
	Erasure *Erasure `json:"erasure,omitempty"`
	// SystemLog marks a system-generated log or audit dataset: never erased
	// ("except audit log information") and never rectified.
	SystemLog bool `json:"systemLog,omitempty"`
	// Rectifiable datasets get a rectification request's corrections in their
	// email, phone and name identifier fields.
	Rectifiable bool `json:"rectifiable,omitempty"`
	// RestrictionField, when set, is a boolean field that restriction sets on
	// the subject's records (and lifting clears); downstream systems skip
	// flagged records.
	RestrictionField string `json:"restrictionField,omitempty"`
	// Provided marks data the subject provided herself (Art. 20): a
	// portability request exports only datasets that have it, and of
	// their records only its fields.
	Provided *Provided `json:"provided,omitempty"`
	// Index opts a Blob dataset (ndjson, csv or json-array) into the
	// identifier index: per blob, keyed hashes of its normalised
	// identifiers mapped to record positions, kept in the state container
	// and pinned to the blob's ETag. Discovery then reads only the
	// records the index names in blobs whose index is fresh, and scans
	// the others, so a stale or missing index never hides a record. Off by
	// default: building it reads every blob once more.
	Index bool `json:"index,omitempty"`
}

// Provided says which of a dataset's fields the subject provided: Fields
// are top-level field names; empty means every field of the record.
type Provided struct {
	Fields []string `json:"fields,omitempty"`
}

// Project keeps the provided fields of a record, in the record's order.
func (p *Provided) Project(r Record) Record {
	if p == nil || len(p.Fields) == 0 {
		return r
	}
	out := Record{Fields: make([]Field, 0, len(p.Fields))}
	for _, f := range r.Fields {
		if slices.Contains(p.Fields, f.Name) {
			out.Fields = append(out.Fields, f)
		}
	}
	return out
}

// ErasureAction is what erasure does to a record.
type ErasureAction string

// Erasure actions.
const (
	EraseDelete ErasureAction = "delete" // remove the record
	EraseMask   ErasureAction = "mask"   // keep the record, mask fields
	EraseRetain ErasureAction = "retain" // keep it under an Art. 17(3) ground
)

// Erasure is a dataset's erasure policy.
type Erasure struct {
	Action ErasureAction `json:"action"`
	// Mask lists the fields to mask and how (action mask).
	Mask []MaskRule `json:"mask,omitempty"`
	// Ground, LegalBasis and RetainUntil justify keeping records (action
	// retain): the Art. 17(3) exception, its legal basis, and until when.
	Ground      string `json:"ground,omitempty"`
	LegalBasis  string `json:"legalBasis,omitempty"`
	RetainUntil string `json:"retainUntil,omitempty"`
}

// MaskStrategy is how one field is masked.
type MaskStrategy string

// Masking strategies.
const (
	MaskNull   MaskStrategy = "null"   // the value becomes null (CSV: empty)
	MaskRedact MaskStrategy = "redact" // a fixed text replaces it (Text, default "[redacted]")
	MaskHMAC   MaskStrategy = "hmac"   // keyed HMAC-SHA256 pseudonym (secret from settings)
	MaskYear   MaskStrategy = "year"   // a date or timestamp generalised to its year
)

// MaskRule masks one field (dotted paths reach into nested objects).
type MaskRule struct {
	Field    string       `json:"field"`
	Strategy MaskStrategy `json:"strategy"`
	Text     string       `json:"text,omitempty"`
}

// Identifier maps a field to an identifier kind. For KindID, IDName is the
// name under which a request's subject.ids carries the value (for example
// "contactId"); it defaults to the field name.
type Identifier struct {
	Field  string         `json:"field"`
	Kind   IdentifierKind `json:"kind"`
	IDName string         `json:"idName,omitempty"`
}

// Relation says: a record whose Field equals the ReferencesField of a
// matched record in dataset References belongs to the same subject.
type Relation struct {
	Field           string `json:"field"`
	References      string `json:"references"`
	ReferencesField string `json:"referencesField"`
}

// Facts are what Art. 15(1) obliges the controller to tell about the data.
type Facts struct {
	Categories []string `json:"categories"`
	Purposes   []string `json:"purposes"`
	Recipients []string `json:"recipients,omitempty"`
	Retention  string   `json:"retention"`
	Source     string   `json:"source"`
	LegalBasis string   `json:"legalBasis,omitempty"`
}

// LoadFile reads and validates a sources config file.
func LoadFile(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read sources config: %w", err)
	}
	cfg, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("sources config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes and validates a sources config. Unknown fields and data
// after the config object are errors; a connection's and a dataset's own
// fields are decoded by their kind (RegisterKind). Errors name the field.
func Parse(b []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("decode: %w", err)
		}
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("decode: unexpected data after the config object")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// UnmarshalJSON decodes a config as the file holds it, refusing unknown
// fields: the common fields here, each connection's and dataset's own
// fields by their kind. It does not validate (Parse does).
func (c *Config) UnmarshalJSON(b []byte) error {
	var raw struct {
		Version            int                        `json:"version"`
		DefaultPhoneRegion string                     `json:"defaultPhoneRegion,omitempty"`
		Connections        map[string]json.RawMessage `json:"connections,omitempty"`
		Datasets           []json.RawMessage          `json:"datasets"`
		Recipients         []Recipient                `json:"recipients,omitempty"`
	}
	if err := decodeStrict(b, &raw, "the sources config"); err != nil {
		return err
	}
	cfg := Config{Version: raw.Version, DefaultPhoneRegion: raw.DefaultPhoneRegion, Recipients: raw.Recipients}
	if len(raw.Connections) > 0 {
		cfg.Connections = map[string]Connection{}
	}
	for _, name := range slices.Sorted(maps.Keys(raw.Connections)) {
		var conn Connection
		if err := conn.UnmarshalJSON(raw.Connections[name]); err != nil {
			return fieldError("connections."+name, err)
		}
		cfg.Connections[name] = conn
	}
	for i, r := range raw.Datasets {
		d, err := decodeDataset(r, cfg.Connections)
		if err != nil {
			return fieldError(fmt.Sprintf("datasets[%d]", i), err)
		}
		cfg.Datasets = append(cfg.Datasets, d)
	}
	*c = cfg
	return nil
}

var datasetName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Validate checks the config for mistakes that would make discovery wrong.
func (c *Config) Validate() error {
	if c.Version != 1 {
		return fmt.Errorf("version: must be 1, got %d", c.Version)
	}
	if r := strings.ToUpper(strings.TrimSpace(c.DefaultPhoneRegion)); r != "" && !phonenumbers.GetSupportedRegions()[r] {
		return fmt.Errorf("defaultPhoneRegion: %q is not an ISO 3166 region with phone numbers", c.DefaultPhoneRegion)
	}
	if len(c.Datasets) == 0 {
		return fmt.Errorf("datasets: at least one dataset is required")
	}
	// retainDate matches YYYY-MM-DD or an RFC 3339 timestamp; the ranges of
	// the parts are checked by validDate.
	retainDate := regexp.MustCompile(`^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?(?:[Zz]|[+-]([0-9]{2}):([0-9]{2})))?$`)
	validDate := func(s string) bool {
		m := retainDate.FindStringSubmatch(s)
		if m == nil {
			return false
		}
		n := make([]int, len(m))
		for k, part := range m[1:] {
			for _, r := range part {
				n[k+1] = n[k+1]*10 + int(r-'0')
			}
		}
		year, month, day := n[1], n[2], n[3]
		days := [13]int{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			days[2] = 29
		}
		if month < 1 || month > 12 || day < 1 || day > days[month] {
			return false
		}
		// Absent time parts are zero, which is in range.
		return n[4] < 24 && n[5] < 60 && n[6] < 60 && n[7] < 24 && n[8] < 60
	}
	// validErasure checks a dataset's erasure policy; where names the dataset.
	validErasure := func(d *Dataset, where string) error {
		e := d.Erasure
		if e == nil {
			return nil
		}
		where += ".erasure"
		if d.SystemLog {
			return fmt.Errorf("%s: systemLog datasets are never erased; remove erasure", where)
		}
		switch e.Action {
		case EraseDelete, EraseMask, EraseRetain:
		default:
			return fmt.Errorf("%s.action: %q is not one of delete, mask, retain", where, e.Action)
		}
		if e.Action != EraseMask && len(e.Mask) > 0 {
			return fmt.Errorf("%s.mask: only action mask takes mask rules, not %s", where, e.Action)
		}
		if e.Action != EraseRetain && (e.Ground != "" || e.LegalBasis != "" || e.RetainUntil != "") {
			return fmt.Errorf("%s: ground, legalBasis and retainUntil apply only to action retain, not %s", where, e.Action)
		}
		switch e.Action {
		case EraseMask:
			if len(e.Mask) == 0 {
				return fmt.Errorf("%s.mask: action mask needs at least one rule", where)
			}
			seen := map[string]bool{}
			for j, r := range e.Mask {
				at := fmt.Sprintf("%s.mask[%d]", where, j)
				if r.Field == "" {
					return fmt.Errorf("%s.field: required", at)
				}
				for _, seg := range strings.Split(r.Field, ".") {
					if seg == "" {
						return fmt.Errorf("%s.field: %q has an empty path segment", at, r.Field)
					}
				}
				if strings.ContainsAny(r.Field, "[]") {
					return fmt.Errorf("%s.field: %q: mask rules do not reach into arrays; mask the array's field as a whole", at, r.Field)
				}
				if seen[r.Field] {
					return fmt.Errorf("%s.field: duplicate rule for %q", at, r.Field)
				}
				seen[r.Field] = true
				switch r.Strategy {
				case MaskNull, MaskRedact, MaskHMAC, MaskYear:
				default:
					return fmt.Errorf("%s.strategy: %q is not one of null, redact, hmac, year", at, r.Strategy)
				}
				if r.Text != "" && r.Strategy != MaskRedact {
					return fmt.Errorf("%s.text: only strategy redact takes a text, not %s", at, r.Strategy)
				}
			}
		case EraseRetain:
			if strings.TrimSpace(e.Ground) == "" {
				return fmt.Errorf("%s.ground: required for action retain (the Art. 17(3) exception)", where)
			}
			if strings.TrimSpace(e.LegalBasis) == "" {
				return fmt.Errorf("%s.legalBasis: required for action retain", where)
			}
			if e.RetainUntil != "" && !validDate(e.RetainUntil) {
				return fmt.Errorf("%s.retainUntil: %q is not a date (YYYY-MM-DD) or an RFC 3339 timestamp", where, e.RetainUntil)
			}
		}
		return nil
	}
	byName := map[string]*Dataset{}
	for i := range c.Datasets {
		d := &c.Datasets[i]
		where := fmt.Sprintf("datasets[%d]", i)
		if !datasetName.MatchString(d.Name) {
			return fmt.Errorf("%s.name: %q must match %s", where, d.Name, datasetName)
		}
		if byName[d.Name] != nil {
			return fmt.Errorf("%s.name: duplicate dataset %q", where, d.Name)
		}
		byName[d.Name] = d
		kind, err := c.datasetKind(d, where)
		if err != nil {
			return err
		}
		if err := validLocation(d, kind, where); err != nil {
			return err
		}
		if err := validIndex(d, kind, where); err != nil {
			return err
		}
		identifying := 0 // identifiers other than names, which never identify a person
		for _, id := range d.Identifiers {
			if id.Kind != KindName {
				identifying++
			}
		}
		if ds, ok := d.Options.(interface{ FindsRecordsItself() bool }); ok && ds.FindsRecordsItself() {
			// A delegating system (a webhook): its kind checked that the
			// dataset holds no matching rules.
		} else if identifying == 0 && len(d.FreeText) == 0 && len(d.Relations) == 0 {
			return fmt.Errorf("%s: needs identifiers (other than names), freeText or relations, or it can never match", where)
		}
		if err := validPaths(d, kind, where); err != nil {
			return err
		}
		for j, id := range d.Identifiers {
			if id.Field == "" {
				return fmt.Errorf("%s.identifiers[%d].field: required", where, j)
			}
			switch id.Kind {
			case KindEmail, KindPhone, KindID, KindName:
			default:
				return fmt.Errorf("%s.identifiers[%d].kind: %q is not one of email, phone, id, name", where, j, id.Kind)
			}
		}
		if len(d.Facts.Categories) == 0 || len(d.Facts.Purposes) == 0 || d.Facts.Retention == "" || d.Facts.Source == "" {
			return fmt.Errorf("%s.facts: categories, purposes, retention and source are required (Art. 15)", where)
		}
		if err := validErasure(d, where); err != nil {
			return err
		}
		if p := d.Provided; p != nil {
			if d.SystemLog {
				return fmt.Errorf("%s.provided: a systemLog dataset is generated by the system, not provided by the subject", where)
			}
			seen := map[string]bool{}
			for j, f := range p.Fields {
				switch {
				case strings.TrimSpace(f) == "":
					return fmt.Errorf("%s.provided.fields[%d]: must be a field name", where, j)
				case seen[f]:
					return fmt.Errorf("%s.provided.fields[%d]: %q is listed twice", where, j, f)
				}
				seen[f] = true
			}
		}
	}
	for i, d := range c.Datasets {
		for j, r := range d.Relations {
			if r.Field == "" || r.ReferencesField == "" {
				return fmt.Errorf("datasets[%d].relations[%d]: field and referencesField are required", i, j)
			}
			if byName[r.References] == nil {
				return fmt.Errorf("datasets[%d].relations[%d].references: unknown dataset %q", i, j, r.References)
			}
			if byName[r.References].Connection != d.Connection {
				return fmt.Errorf("datasets[%d].relations[%d].references: dataset %q is in another source; relations link datasets of one connection (or Blob datasets to Blob datasets)", i, j, r.References)
			}
		}
	}
	used := map[string]bool{}
	for _, d := range c.Datasets {
		used[d.Connection] = true
	}
	for _, name := range sortedNames(c.Connections) {
		if !used[name] {
			return fmt.Errorf("connections.%s: no dataset uses it", name)
		}
	}
	return c.validateRecipients()
}

func sortedNames(m map[string]Connection) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// datasetKind checks the dataset's connection and returns its kind ("" for
// a Blob dataset).
func (c *Config) datasetKind(d *Dataset, where string) (ConnectionKind, error) {
	if d.Connection == "" {
		return "", nil
	}
	conn, ok := c.Connections[d.Connection]
	if !ok {
		return "", fmt.Errorf("%s.connection: unknown connection %q", where, d.Connection)
	}
	if _, err := kindOf(conn.Kind); err != nil {
		return "", fieldError("connections."+d.Connection, err)
	}
	if conn.Options == nil {
		return "", fmt.Errorf("connections.%s: no options for kind %s", d.Connection, conn.Kind)
	}
	if err := conn.Options.Check(); err != nil {
		return "", fieldError("connections."+d.Connection, err)
	}
	return conn.Kind, nil
}

// validPaths checks the field paths of identifiers, free text and
// relations: Blob datasets take the path syntax of PathValues (a.b, a[],
// a[].b), the tables of other systems plain column names.
func validPaths(d *Dataset, kind ConnectionKind, where string) error {
	check := func(at, p string) error {
		if p == "" {
			return nil // "required" is reported where the field is checked
		}
		if kind != "" && strings.ContainsAny(p, "[]") {
			return fmt.Errorf("%s: %q: array paths ([]) are for Blob datasets; this system's datasets name columns", at, p)
		}
		if err := ValidPath(p); err != nil {
			return fmt.Errorf("%s: %q: %v", at, p, err)
		}
		return nil
	}
	for j, id := range d.Identifiers {
		if err := check(fmt.Sprintf("%s.identifiers[%d].field", where, j), id.Field); err != nil {
			return err
		}
	}
	for j, f := range d.FreeText {
		if err := check(fmt.Sprintf("%s.freeText[%d]", where, j), f); err != nil {
			return err
		}
	}
	for j, r := range d.Relations {
		if err := check(fmt.Sprintf("%s.relations[%d].field", where, j), r.Field); err != nil {
			return err
		}
		if err := check(fmt.Sprintf("%s.relations[%d].referencesField", where, j), r.ReferencesField); err != nil {
			return err
		}
	}
	return nil
}

// validLocation checks the fields that say where a dataset's records are:
// the built-in Blob fields, or the kind's own.
func validLocation(d *Dataset, kind ConnectionKind, where string) error {
	if kind != "" {
		if d.Container != "" || d.Blob != "" || d.Prefix != "" || d.Format != "" || d.Entity != "" {
			return fmt.Errorf("%s: container, blob, prefix and format belong to Blob datasets, not to a %s dataset", where, kind)
		}
		if d.Options == nil {
			return fmt.Errorf("%s: no options for a %s dataset", where, kind)
		}
		if err := d.Options.Check(d); err != nil {
			return fieldError(where, err)
		}
		return nil
	}
	if d.Options != nil {
		return fmt.Errorf("%s: a Blob dataset (no connection) takes no options of another kind", where)
	}
	if d.Container == "" {
		return fmt.Errorf("%s.container: required", where)
	}
	if d.Format == FormatSynapse || d.Entity != "" {
		return validSynapse(d, where)
	}
	if (d.Blob == "") == (d.Prefix == "") {
		return fmt.Errorf("%s: exactly one of blob and prefix is required", where)
	}
	switch d.Format {
	case FormatNDJSON, FormatCSV, FormatJSONArray, FormatParquet:
	case FormatDelta:
		if d.Prefix == "" || !strings.HasSuffix(d.Prefix, "/") {
			return fmt.Errorf("%s.prefix: a delta dataset needs the table root as a prefix ending in /", where)
		}
	default:
		return fmt.Errorf("%s.format: %q is not one of ndjson, csv, json-array, parquet, delta, synapse", where, d.Format)
	}
	return nil
}

// validIndex checks the index field: the identifier index exists for the
// line- and element-based Blob formats only, whose records it can place
// by byte offset.
func validIndex(d *Dataset, kind ConnectionKind, where string) error {
	if !d.Index {
		return nil
	}
	if kind != "" {
		return fmt.Errorf("%s.index: the identifier index is for Blob datasets, not a %s dataset", where, kind)
	}
	switch d.Format {
	case FormatNDJSON, FormatCSV, FormatJSONArray:
		return nil
	}
	return fmt.Errorf("%s.index: the identifier index is for ndjson, csv and json-array datasets, not %s", where, d.Format)
}

// Kind returns the kind of the dataset's connection, "" for a Blob dataset.
func (c *Config) Kind(d *Dataset) ConnectionKind {
	if d.Connection == "" {
		return ""
	}
	return c.Connections[d.Connection].Kind
}

// Dataset returns the dataset with the given name, or nil.
func (c *Config) Dataset(name string) *Dataset {
	for i := range c.Datasets {
		if c.Datasets[i].Name == name {
			return &c.Datasets[i]
		}
	}
	return nil
}

// ReferencedFields are the fields of dataset name that other datasets'
// relations reference, each once, in config order.
func (c *Config) ReferencedFields(name string) []string {
	var out []string
	for _, d := range c.Datasets {
		for _, r := range d.Relations {
			if r.References == name && !slices.Contains(out, r.ReferencesField) {
				out = append(out, r.ReferencesField)
			}
		}
	}
	return out
}

// Order is the datasets with every dataset after the datasets it
// references (contacts, then cases, then surveys), in config order
// otherwise; relations in a cycle keep config order. Discovery scans in
// this order, so a relation's keys are known before it is followed;
// changes run in reverse (DependentsFirst).
func (c *Config) Order() []*Dataset {
	var out []*Dataset
	state := map[string]int{}
	var visit func(d *Dataset)
	visit = func(d *Dataset) {
		if d == nil || state[d.Name] != 0 {
			return
		}
		state[d.Name] = 1
		for _, r := range d.Relations {
			visit(c.Dataset(r.References))
		}
		state[d.Name] = 2
		out = append(out, d)
	}
	for i := range c.Datasets {
		visit(&c.Datasets[i])
	}
	return out
}

// DependentsFirst is Order reversed: every dataset before the datasets it
// references (surveys, then cases, then contacts). Changes run in this
// order, so that every relation holds until its parent's turn and a
// retry after a crash still finds every remaining record through them.
func (c *Config) DependentsFirst() []*Dataset {
	out := c.Order()
	slices.Reverse(out)
	return out
}
