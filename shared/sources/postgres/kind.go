package postgres

import (
	"errors"

	"github.com/dsr-functions/dsr/shared/sources"
)

// The postgres kind of connection: its fields in the sources config.
func init() {
	sources.RegisterKind(sources.ConnPostgres, sources.Kind{
		NewConnection: func() sources.ConnectionOptions { return &ConnectionOptions{} },
		NewDataset:    func() sources.DatasetOptions { return &TableOptions{} },
	})
}

// ConnectionOptions are the fields of a postgres connection.
type ConnectionOptions struct {
	// DSNSetting names the setting that holds the pgx connection string
	// (key=value or URL form).
	DSNSetting string `json:"dsnSetting"`
	// EntraAuth signs in with a Microsoft Entra token of the app's
	// identity as the password (Azure Database for PostgreSQL).
	EntraAuth bool `json:"entraAuth,omitempty"`
}

// Check validates the connection's fields.
func (o *ConnectionOptions) Check() error {
	return sources.CheckSetting("dsnSetting", o.DSNSetting, true)
}

// TableOptions are the fields of a postgres dataset: the table.
type TableOptions struct {
	// Schema defaults to "public".
	Schema string `json:"schema,omitempty"`
	Table  string `json:"table"`
}

// Check validates the table with the dataset's key.
func (o *TableOptions) Check(d *sources.Dataset) error {
	if o.Table == "" {
		return errors.New("table: required: the table that holds the dataset's records")
	}
	if d.Key == "" {
		return errors.New("key: required: a postgres dataset needs a single-column primary or unique key")
	}
	return nil
}
