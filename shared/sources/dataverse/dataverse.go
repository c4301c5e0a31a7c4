// Package dataverse is the connector for the Dataverse Web API (the store of
// Dynamics 365 Customer Service and other Power Platform apps).
//
// Discovery finds the subject's records by identifier columns (emails with
// an OData eq, phones with a coarse contains on their last four digits, ids
// with eq), by free-text columns (a coarse contains, then the shared match
// functions) and by relations followed to a fixed point (contact → cases →
// notes and activities). The server-side $filter is only a prefilter: every
// candidate is checked again in Go with match.NormalizeEmail,
// match.NormalizePhone, match.ContainsEmailToken and match.ContainsPhone, so
// Dataverse's case-insensitive comparisons and LIKE wildcards (contains
// becomes LIKE '%…%', where '_' and '%' match more) can only widen the
// candidates, never the result.
//
// Locations carry the matched records' GUIDs as Keys (sorted), with Blob the
// entity set name; Ordinals and ETag are empty. Read fetches the records
// back in Keys order; Rewrite deletes or patches each record conditionally
// on the @odata.etag it has just read (If-Match), so a concurrent change
// fails with sources.ErrChanged.
//
// Requests carry a bearer token for <URL>/.default from an
// azcore.TokenCredential. Throttling (429 with Retry-After) and server
// errors (5xx, network failures) are retried up to Config.MaxAttempts times.
// Retrying a DELETE or PATCH whose response was lost is safe because of
// If-Match: a repeated DELETE finds the record gone, which Rewrite accepts;
// a repeated PATCH fails with sources.ErrChanged, and the rediscovery that
// follows finds the change already made.
// Errors name the dataset, the method, the entity set and the status, never
// a URL query, a record GUID or a subject value, so they may be logged.
//
// Every entity set and column name in the config must be a simple
// identifier ([A-Za-z_][A-Za-z0-9_]*), and every value is sent as an OData
// literal (strings quoted with single quotes doubled, GUIDs validated) in a
// percent-encoded query, so neither config nor subject values can change the
// shape of a request.
//
// Limitations: a Rewrite is not atomic across records (each record is
// deleted or patched on its own, conditionally on its ETag; a failure part
// way leaves the earlier records changed, and a retry after rediscovery
// finishes the work). Only the table's key and lookup columns (_x_value) are
// treated as GUID columns; any other id or relation column is compared as a
// string. The phone prefilter needs the last four digits of a stored number
// written together or as two pairs split by one space, dot or hyphen
// ("0142", "01 42", "01.42", "01-42"); other splits are not found.
package dataverse

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/dsr-functions/dsr/shared/httpretry"
	"github.com/dsr-functions/dsr/shared/sources"
)

// Defaults and limits of a Config.
const (
	// DefaultAPIVersion is the Web API version used when Config.APIVersion is empty.
	DefaultAPIVersion = "9.2"
	// DefaultPageSize is the page size asked for when Config.PageSize is 0.
	DefaultPageSize = 500
	// MaxPageSize is the largest page Dataverse returns (and the largest
	// Config.PageSize accepted).
	MaxPageSize = 5000
	// DefaultMaxAttempts is the number of attempts per request when
	// Config.MaxAttempts is 0.
	DefaultMaxAttempts = 5
	// maxAttemptsLimit bounds Config.MaxAttempts.
	maxAttemptsLimit = 20
	// maxTermsPerRequest is the most OR-ed terms sent in one $filter, which
	// keeps request URLs far below Dataverse's length limit.
	maxTermsPerRequest = 25
)

// Config describes a Dataverse environment and the tables that hold
// personal data.
type Config struct {
	// URL is the environment's root, e.g. "https://org.crm.dynamics.com"
	// (https, no path, query or fragment).
	URL string `json:"url"`
	// APIVersion is the Web API version, default "9.2".
	APIVersion string `json:"apiVersion,omitempty"`
	// DefaultPhoneRegion reads phone numbers written without a country
	// code (ISO 3166 alpha-2, e.g. "US"); empty means they never match.
	DefaultPhoneRegion string `json:"defaultPhoneRegion,omitempty"`
	// PageSize is the page size asked for with Prefer: odata.maxpagesize,
	// default 500, at most 5000.
	PageSize int `json:"pageSize,omitempty"`
	// MaxAttempts bounds the attempts of one request when Dataverse
	// throttles (429) or fails (5xx, network), default 5.
	MaxAttempts int `json:"maxAttempts,omitempty"`
	// Tables lists the tables.
	Tables []Table `json:"tables"`
}

// Table is one Dataverse table (entity set) holding personal data.
type Table struct {
	// Name is the dataset name (unique in the config).
	Name string `json:"name"`
	// EntitySet is the Web API entity set name, e.g. "contacts".
	EntitySet string `json:"entitySet"`
	// Key is the primary id column (a GUID), e.g. "contactid".
	Key string `json:"key"`
	// Select lists the columns read for export and rewrite, in the order
	// records carry them (the key is added first if missing); empty means
	// every column, in the order Dataverse returns them. Set it for tables
	// with file or image columns (annotations.documentbody holds whole
	// attachments), which would otherwise be read too.
	Select []string `json:"select,omitempty"`
	// Identifiers are columns that identify a person (kind email, phone or
	// id; name is accepted and ignored, as a name alone identifies nobody).
	Identifiers []sources.Identifier `json:"identifiers,omitempty"`
	// FreeText columns are searched for the subject's emails (as whole
	// tokens) and phones.
	FreeText []string `json:"freeText,omitempty"`
	// Relations make records that reference a matched record of another
	// table belong to the subject too.
	Relations []Relation `json:"relations,omitempty"`
}

// Relation is the sources config's relation: a record whose column Field
// equals column ReferencesField of a matched record of table References (a
// Table.Name of this config) belongs to the subject. Field is typically a
// lookup, e.g. "_customerid_value" referencing "contactid" of contacts.
type Relation = sources.Relation

var (
	identRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	apiVersionRE = regexp.MustCompile(`^[0-9]{1,2}\.[0-9]{1,2}$`)
	regionRE     = regexp.MustCompile(`^[A-Za-z]{2}$`)
)

// validIdent reports whether s is a simple identifier that can be put in a
// URL path or an OData expression as it is.
func validIdent(s string) bool { return len(s) <= 128 && identRE.MatchString(s) }

// Validate checks the config's structure. Zero APIVersion, PageSize and
// MaxAttempts stand for their defaults.
func (c *Config) Validate() error {
	if c == nil {
		return errors.New("dataverse: no config")
	}
	if _, err := parseRoot(c.URL); err != nil {
		return err
	}
	if c.APIVersion != "" && !apiVersionRE.MatchString(c.APIVersion) {
		return fmt.Errorf("dataverse: apiVersion %q is not of the form 9.2", c.APIVersion)
	}
	if c.DefaultPhoneRegion != "" && !regionRE.MatchString(c.DefaultPhoneRegion) {
		return fmt.Errorf("dataverse: defaultPhoneRegion %q is not an ISO 3166 alpha-2 code", c.DefaultPhoneRegion)
	}
	if c.PageSize < 0 || c.PageSize > MaxPageSize {
		return fmt.Errorf("dataverse: pageSize %d is not between 1 and %d (0 for the default)", c.PageSize, MaxPageSize)
	}
	if c.MaxAttempts < 0 || c.MaxAttempts > maxAttemptsLimit {
		return fmt.Errorf("dataverse: maxAttempts %d is not between 1 and %d (0 for the default)", c.MaxAttempts, maxAttemptsLimit)
	}
	ident := func(table, what, v string) error {
		if !validIdent(v) {
			return fmt.Errorf("dataverse: table %s: %s %q is not a simple identifier ([A-Za-z_][A-Za-z0-9_]*)", table, what, v)
		}
		return nil
	}
	names := map[string]bool{}
	for i, t := range c.Tables {
		if t.Name == "" {
			return fmt.Errorf("dataverse: tables[%d]: name is required", i)
		}
		if names[t.Name] {
			return fmt.Errorf("dataverse: table name %q is used twice", t.Name)
		}
		names[t.Name] = true
		if err := ident(t.Name, "entitySet", t.EntitySet); err != nil {
			return err
		}
		if err := ident(t.Name, "key", t.Key); err != nil {
			return err
		}
		for _, col := range t.Select {
			if err := ident(t.Name, "select column", col); err != nil {
				return err
			}
		}
		for _, id := range t.Identifiers {
			if err := ident(t.Name, "identifier column", id.Field); err != nil {
				return err
			}
			switch id.Kind {
			case sources.KindEmail, sources.KindPhone, sources.KindID, sources.KindName:
			default:
				return fmt.Errorf("dataverse: table %s: identifier %s: unknown kind %q", t.Name, id.Field, id.Kind)
			}
		}
		for _, col := range t.FreeText {
			if err := ident(t.Name, "freeText column", col); err != nil {
				return err
			}
		}
	}
	for _, t := range c.Tables {
		for _, r := range t.Relations {
			if !names[r.References] {
				return fmt.Errorf("dataverse: table %s: relation references unknown table %q", t.Name, r.References)
			}
			if err := ident(t.Name, "relation column", r.Field); err != nil {
				return err
			}
			if err := ident(t.Name, "relation referencesColumn", r.ReferencesField); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseRoot checks the environment URL and returns it without a trailing slash.
func parseRoot(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("dataverse: url is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("dataverse: url: %w", err)
	}
	if u.Scheme != "https" {
		return nil, errors.New("dataverse: url must use https")
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, errors.New("dataverse: url must be the environment root, e.g. https://org.crm.dynamics.com")
	}
	u.Path = ""
	u.RawPath = ""
	return u, nil
}

// Connector reads and rewrites the tables of a Config through the Web API.
// It is safe for concurrent use.
type Connector struct {
	cfg    Config
	root   *url.URL // scheme and host of the environment
	api    string   // "/api/data/v9.2/"
	client *http.Client
	cred   azcore.TokenCredential
	scope  string

	mu    sync.Mutex
	token azcore.AccessToken

	// Injectable for tests.
	sleep  func(ctx context.Context, d time.Duration) error
	now    func() time.Time
	jitter func() float64
}

var (
	_ sources.Connector = (*Connector)(nil)
	_ sources.Rewriter  = (*Connector)(nil)
)

// New validates cfg and returns a connector that sends its requests with
// client (nil: a client with a two-minute timeout) and authenticates with a
// token for scope "<URL>/.default" from cred, cached until five minutes
// before it expires. Redirects are not followed, so the bearer token only
// ever goes to cfg.URL.
func New(cfg *Config, client *http.Client, cred azcore.TokenCredential) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cred == nil {
		return nil, errors.New("dataverse: a token credential is required")
	}
	root, _ := parseRoot(cfg.URL)
	c := &Connector{cfg: *cfg, root: root, cred: cred}
	c.cfg.Tables = slices.Clone(cfg.Tables)
	if c.cfg.APIVersion == "" {
		c.cfg.APIVersion = DefaultAPIVersion
	}
	if c.cfg.PageSize == 0 {
		c.cfg.PageSize = DefaultPageSize
	}
	if c.cfg.MaxAttempts == 0 {
		c.cfg.MaxAttempts = DefaultMaxAttempts
	}
	c.api = "/api/data/v" + c.cfg.APIVersion + "/"
	c.scope = root.String() + "/.default"
	var hc http.Client
	if client != nil {
		hc = *client
	} else {
		hc.Timeout = 2 * time.Minute
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.client = &hc
	c.sleep = httpretry.Sleep
	c.now = time.Now
	c.jitter = rand.Float64
	return c, nil
}

func (c *Connector) table(name string) (*Table, error) {
	for i := range c.cfg.Tables {
		if c.cfg.Tables[i].Name == name {
			return &c.cfg.Tables[i], nil
		}
	}
	return nil, fmt.Errorf("dataverse: unknown dataset %q", name)
}

// selectList is the $select of Read and Rewrite: the key first unless
// Select names it, then Select without repeats; nil when Select is empty.
func (t *Table) selectList() []string {
	if len(t.Select) == 0 {
		return nil
	}
	var out []string
	if !slices.Contains(t.Select, t.Key) {
		out = append(out, t.Key)
	}
	for _, col := range t.Select {
		if !slices.Contains(out, col) {
			out = append(out, col)
		}
	}
	return out
}

// isLookup reports whether col is a lookup property (_x_value), which holds
// a GUID and cannot be written directly.
func isLookup(col string) bool {
	return len(col) > len("__value") && strings.HasPrefix(col, "_") && strings.HasSuffix(col, "_value")
}

// isGUIDColumn reports whether col of t holds GUIDs: the key or a lookup.
func (t *Table) isGUIDColumn(col string) bool { return col == t.Key || isLookup(col) }
