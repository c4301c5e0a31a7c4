// Package open builds the connector of a sources config: one connector per
// connection (PostgreSQL, Dataverse, webhook) plus the Blob connector for
// the app's own datasets, combined by package multi. Secrets come from the
// settings the config names, read through Deps.Getenv.
package open

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/dsr-functions/dsr/shared/config"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/batch"
	"github.com/dsr-functions/dsr/shared/sources/blobdataset"
	"github.com/dsr-functions/dsr/shared/sources/dataverse"
	"github.com/dsr-functions/dsr/shared/sources/multi"
	"github.com/dsr-functions/dsr/shared/sources/postgres"
	"github.com/dsr-functions/dsr/shared/sources/webhook"
)

// Deps are what the connectors need from the app.
type Deps struct {
	// Blob is the storage account of the Blob datasets.
	Blob *service.Client
	// Getenv reads a setting named in the config (os.Getenv in the app).
	Getenv func(string) string
	// Credential returns the app's Microsoft Entra credential; it is
	// called only when a connection signs in with Entra.
	Credential func() (azcore.TokenCredential, error)
	// BlobBatch tunes how concurrent discoveries share one pass over the
	// Blob datasets (zero: batch.DefaultWindow and DefaultMaxBatch).
	BlobBatch batch.Options
	// HTTPClient calls Dataverse and webhook systems (default: a client
	// with a 2-minute timeout; each connector adds its own limits).
	HTTPClient *http.Client
	// PublicURL is the app's base URL; asynchronous webhook systems post
	// their answers to PublicURL/api/webhooks/<connection>/<requestId>.
	PublicURL string
	// WebhookStore returns where an asynchronous webhook system's answers
	// are kept (one store per connection).
	WebhookStore func(connection string) webhook.ResultStore
	// BlobOptions configure the Blob datasets' connector (fan-out).
	BlobOptions []blobdataset.Option
}

// CallbackPath is the route under which asynchronous webhook systems
// deliver their answers: CallbackPath + "/<connection>/<requestId>".
const CallbackPath = "/api/webhooks"

// Sources is the combined connector and what must be closed with it.
type Sources struct {
	*multi.Connector
	// Webhooks are the webhook connections' connectors, by connection name
	// (their callback endpoints serve asynchronous answers).
	Webhooks map[string]*webhook.Connector
	// Blob is the Blob datasets' connector (nil without Blob datasets):
	// the scan function runs its fanned-out shards.
	Blob    *blobdataset.Connector
	closers []func()
	stores  []webhook.ResultStore
	// kvErr collects settings left holding a Key Vault reference.
	kvErr error
}

// Cleanup removes what webhook systems' stores keep for a request.
func (s *Sources) Cleanup(ctx context.Context, requestID string) error {
	var errs []error
	for _, st := range s.stores {
		if err := st.Delete(ctx, requestID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close releases the connections' resources (database pools).
func (s *Sources) Close() {
	for _, c := range s.closers {
		c()
	}
}

// Connectors builds the combined connector of cfg. A setting the config
// names that holds an unresolved Key Vault reference is refused, naming the
// setting.
func Connectors(ctx context.Context, cfg *sources.Config, deps Deps) (*Sources, error) {
	out := &Sources{Webhooks: map[string]*webhook.Connector{}}
	if deps.Getenv != nil {
		getenv := deps.Getenv
		deps.Getenv = func(name string) string {
			v := getenv(name)
			if config.UnresolvedKeyVaultReference(v) {
				out.kvErr = errors.Join(out.kvErr, config.KeyVaultError(name))
				return ""
			}
			return v
		}
	}
	if deps.HTTPClient == nil {
		deps.HTTPClient = &http.Client{Timeout: 2 * time.Minute}
	}
	var order []string
	var parts []multi.Part
	blobCfg := *cfg
	blobCfg.Connections = nil
	blobCfg.Datasets = nil
	byConn := map[string][]*sources.Dataset{}
	for i := range cfg.Datasets {
		d := &cfg.Datasets[i]
		order = append(order, d.Name)
		if d.Connection == "" {
			blobCfg.Datasets = append(blobCfg.Datasets, *d)
			continue
		}
		byConn[d.Connection] = append(byConn[d.Connection], d)
	}
	if len(blobCfg.Datasets) > 0 {
		bc := blobdataset.New(&blobCfg, deps.Blob, deps.BlobOptions...)
		out.Blob = bc
		// Requests discovering at the same time share one pass over the
		// datasets: 1,000 pending requests do not cost 1,000 scans.
		c := batch.Wrap(bc, deps.BlobBatch)
		parts = append(parts, multi.Part{Name: "blob", Datasets: names(blobCfg.Datasets), Connector: c, Required: true})
	}
	for _, name := range sortedKeys(byConn) {
		conn := cfg.Connections[name]
		ds := byConn[name]
		var c sources.Connector
		var err error
		switch conn.Kind {
		case sources.ConnPostgres:
			c, err = openPostgres(ctx, cfg, name, conn, ds, deps, out)
		case sources.ConnDataverse:
			c, err = openDataverse(cfg, conn, ds, deps)
		case sources.ConnWebhook:
			var wh *webhook.Connector
			wh, err = openWebhook(name, conn, ds, deps, out)
			if err == nil {
				out.Webhooks[name] = wh
				c = wh
			}
		default:
			err = fmt.Errorf("connection kind %s is not supported yet", conn.Kind)
		}
		if out.kvErr != nil {
			err = out.kvErr
		}
		if err != nil {
			out.Close()
			return nil, fmt.Errorf("sources: connection %s: %w", name, err)
		}
		dn := make([]string, len(ds))
		for i, d := range ds {
			dn[i] = d.Name
		}
		parts = append(parts, multi.Part{Name: name, Datasets: dn, Connector: c})
	}
	m, err := multi.New(order, parts...)
	if err != nil {
		out.Close()
		return nil, err
	}
	out.Connector = m
	return out, nil
}

func openPostgres(ctx context.Context, cfg *sources.Config, name string, c sources.Connection, ds []*sources.Dataset, deps Deps, out *Sources) (sources.Connector, error) {
	conn, ok := c.Options.(*postgres.ConnectionOptions)
	if !ok {
		return nil, fmt.Errorf("connection options are %T, not postgres", c.Options)
	}
	dsn := deps.Getenv(conn.DSNSetting)
	if dsn == "" {
		return nil, fmt.Errorf("setting %s (dsnSetting) is empty", conn.DSNSetting)
	}
	pc := &postgres.Config{DSN: dsn, DefaultPhoneRegion: cfg.DefaultPhoneRegion}
	if conn.EntraAuth {
		if deps.Credential == nil {
			return nil, fmt.Errorf("entraAuth needs the app's credential")
		}
		cred, err := deps.Credential()
		if err != nil {
			return nil, fmt.Errorf("entraAuth: %w", err)
		}
		pc.Credential = cred
	}
	for _, d := range ds {
		to, ok := d.Options.(*postgres.TableOptions)
		if !ok {
			return nil, fmt.Errorf("dataset %s: options are %T, not postgres", d.Name, d.Options)
		}
		t := postgres.Table{Name: d.Name, Schema: to.Schema, Table: to.Table, Key: d.Key, Identifiers: d.Identifiers, FreeText: d.FreeText, Relations: d.Relations}
		pc.Tables = append(pc.Tables, t)
	}
	pg, err := postgres.New(ctx, pc)
	if err != nil {
		return nil, err
	}
	out.closers = append(out.closers, pg.Close)
	return pg, nil
}

func openDataverse(cfg *sources.Config, c sources.Connection, ds []*sources.Dataset, deps Deps) (sources.Connector, error) {
	conn, ok := c.Options.(*dataverse.ConnectionOptions)
	if !ok {
		return nil, fmt.Errorf("connection options are %T, not dataverse", c.Options)
	}
	if deps.Credential == nil {
		return nil, errors.New("dataverse needs the app's credential")
	}
	cred, err := deps.Credential()
	if err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	dc := &dataverse.Config{URL: conn.URL, DefaultPhoneRegion: cfg.DefaultPhoneRegion, MaxAttempts: conn.MaxAttempts}
	for _, d := range ds {
		eo, ok := d.Options.(*dataverse.EntityOptions)
		if !ok {
			return nil, fmt.Errorf("dataset %s: options are %T, not dataverse", d.Name, d.Options)
		}
		t := dataverse.Table{Name: d.Name, EntitySet: eo.EntitySet, Key: d.Key, Select: eo.Select, Identifiers: d.Identifiers, FreeText: d.FreeText, Relations: d.Relations}
		dc.Tables = append(dc.Tables, t)
	}
	return dataverse.New(dc, deps.HTTPClient, cred)
}

func openWebhook(name string, c sources.Connection, ds []*sources.Dataset, deps Deps, out *Sources) (*webhook.Connector, error) {
	conn, ok := c.Options.(*webhook.ConnectionOptions)
	if !ok {
		return nil, fmt.Errorf("connection options are %T, not webhook", c.Options)
	}
	url := conn.URL
	if conn.URLSetting != "" {
		if url = deps.Getenv(conn.URLSetting); url == "" {
			return nil, fmt.Errorf("setting %s (urlSetting) is empty", conn.URLSetting)
		}
	}
	secret := deps.Getenv(conn.SecretSetting)
	if secret == "" {
		return nil, fmt.Errorf("setting %s (secretSetting) is empty", conn.SecretSetting)
	}
	wc := &webhook.Config{Name: name, URL: url, Secret: []byte(secret), Identifiers: conn.Identifiers, MaxAttempts: conn.MaxAttempts}
	if conn.HashKeySetting != "" {
		key := deps.Getenv(conn.HashKeySetting)
		if key == "" {
			return nil, fmt.Errorf("setting %s (hashKeySetting) is empty", conn.HashKeySetting)
		}
		wc.HashKey = []byte(key)
	}
	if conn.Timeout != "" {
		d, err := time.ParseDuration(conn.Timeout)
		if err != nil {
			return nil, fmt.Errorf("timeout: %w", err)
		}
		wc.Timeout = d
	}
	for _, d := range ds {
		wc.Datasets = append(wc.Datasets, webhook.Dataset{Name: d.Name, Key: d.Key})
	}
	var store webhook.ResultStore
	if conn.Async {
		if deps.PublicURL == "" {
			return nil, errors.New("async needs the app's public URL (WEBSITE_HOSTNAME, set by the platform; `dsr local` sets it)")
		}
		if deps.WebhookStore == nil {
			return nil, errors.New("async needs a result store")
		}
		wc.CallbackBase = strings.TrimRight(deps.PublicURL, "/") + CallbackPath + "/" + name
		store = deps.WebhookStore(name)
		out.stores = append(out.stores, store)
	}
	return webhook.New(wc, deps.HTTPClient, store)
}

func names(ds []sources.Dataset) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Name
	}
	return out
}

func sortedKeys(m map[string][]*sources.Dataset) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
