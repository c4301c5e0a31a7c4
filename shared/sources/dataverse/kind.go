package dataverse

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/dsr-functions/dsr/shared/sources"
)

// The dataverse kind of connection: its fields in the sources config.
func init() {
	sources.RegisterKind(sources.ConnDataverse, sources.Kind{
		NewConnection: func() sources.ConnectionOptions { return &ConnectionOptions{} },
		NewDataset:    func() sources.DatasetOptions { return &EntityOptions{} },
	})
}

// ConnectionOptions are the fields of a dataverse connection.
type ConnectionOptions struct {
	// URL is the environment, like https://contoso.crm.dynamics.com.
	URL string `json:"url"`
	// MaxAttempts of one Web API call before it fails (default 5).
	MaxAttempts int `json:"maxAttempts,omitempty"`
}

// Check validates the connection's fields.
func (o *ConnectionOptions) Check() error {
	u, err := url.Parse(o.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return errors.New("url: must be the environment's https URL, like https://contoso.crm.dynamics.com")
	}
	if o.MaxAttempts < 0 || o.MaxAttempts > 20 {
		return errors.New("maxAttempts: must be between 1 and 20 (0 means the default, 5)")
	}
	return nil
}

// EntityOptions are the fields of a dataverse dataset: the entity set.
type EntityOptions struct {
	// EntitySet is the Web API entity set, e.g. "contacts".
	EntitySet string `json:"entitySet"`
	// Select lists the columns read for export (default: all).
	Select []string `json:"select,omitempty"`
}

// Check validates the entity set, and that every column the dataset
// names is a plain name: they go into OData queries.
func (o *EntityOptions) Check(d *sources.Dataset) error {
	if !sources.PlainName.MatchString(o.EntitySet) {
		return errors.New("entitySet: required, a plain name ([A-Za-z_][A-Za-z0-9_]*) like contacts")
	}
	if !sources.PlainName.MatchString(d.Key) {
		return errors.New("key: required, the entity's id column, a plain name ([A-Za-z_][A-Za-z0-9_]*)")
	}
	type column struct{ field, name string }
	var cols []column
	for i, c := range o.Select {
		cols = append(cols, column{fmt.Sprintf("select[%d]", i), c})
	}
	for i, id := range d.Identifiers {
		cols = append(cols, column{fmt.Sprintf("identifiers[%d].field", i), id.Field})
	}
	for i, f := range d.FreeText {
		cols = append(cols, column{fmt.Sprintf("freeText[%d]", i), f})
	}
	for i, r := range d.Relations {
		cols = append(cols, column{fmt.Sprintf("relations[%d].field", i), r.Field}, column{fmt.Sprintf("relations[%d].referencesField", i), r.ReferencesField})
	}
	for _, c := range cols {
		if !sources.PlainName.MatchString(c.name) {
			// Columns go into OData queries: a name that is not plain
			// could change the query.
			return fmt.Errorf("%s: dataverse column %q is not a plain name ([A-Za-z_][A-Za-z0-9_]*)", c.field, c.name)
		}
	}
	return nil
}
