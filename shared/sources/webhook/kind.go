package webhook

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/dsr-functions/dsr/shared/sources"
)

// The webhook kind of connection: its fields in the sources config.
func init() {
	sources.RegisterKind(sources.ConnWebhook, sources.Kind{
		NewConnection: func() sources.ConnectionOptions { return &ConnectionOptions{} },
		NewDataset:    func() sources.DatasetOptions { return &DatasetOptions{} },
	})
}

// ConnectionOptions are the fields of a webhook connection.
type ConnectionOptions struct {
	// URL is the endpoint; URLSetting names a setting holding it instead.
	URL        string `json:"url,omitempty"`
	URLSetting string `json:"urlSetting,omitempty"`
	// SecretSetting names the setting holding the HMAC signing secret (at
	// least 32 bytes).
	SecretSetting string `json:"secretSetting"`
	// Identifiers is "raw" (default) or "hashed": whether the subject's
	// identifiers are sent as they are or as keyed hashes.
	Identifiers string `json:"identifiers,omitempty"`
	// HashKeySetting (identifiers "hashed") names the setting holding the
	// key of the identifier hashes.
	HashKeySetting string `json:"hashKeySetting,omitempty"`
	// Async lets the system answer access requests later through the
	// callback endpoint.
	Async bool `json:"async,omitempty"`
	// Timeout (Go duration, default 30s) of one attempt.
	Timeout string `json:"timeout,omitempty"`
	// MaxAttempts before a call fails (default 5).
	MaxAttempts int `json:"maxAttempts,omitempty"`
}

// Check validates the connection's fields.
func (o *ConnectionOptions) Check() error {
	if (o.URL == "") == (o.URLSetting == "") {
		return errors.New("url: exactly one of url and urlSetting is required")
	}
	if o.URL != "" {
		if u, err := url.Parse(o.URL); err != nil || u.Scheme != "https" || u.Host == "" {
			return errors.New("url: must be an https URL")
		}
	}
	if err := sources.CheckSetting("urlSetting", o.URLSetting, false); err != nil {
		return err
	}
	if err := sources.CheckSetting("secretSetting", o.SecretSetting, true); err != nil {
		return err
	}
	switch o.Identifiers {
	case "", "raw":
		if o.HashKeySetting != "" {
			return errors.New(`hashKeySetting: only identifiers "hashed" takes a hash key`)
		}
	case "hashed":
		if err := sources.CheckSetting("hashKeySetting", o.HashKeySetting, true); err != nil {
			return err
		}
	default:
		return fmt.Errorf("identifiers: %q is not one of raw, hashed", o.Identifiers)
	}
	if o.Timeout != "" {
		if d, err := time.ParseDuration(o.Timeout); err != nil || d <= 0 || d > 10*time.Minute {
			return fmt.Errorf("timeout: %q is not a Go duration between 0 and 10m", o.Timeout)
		}
	}
	if o.MaxAttempts < 0 || o.MaxAttempts > 20 {
		return errors.New("maxAttempts: must be between 1 and 20 (0 means the default, 5)")
	}
	return nil
}

// DatasetOptions are the fields of a webhook dataset: none beyond the
// common ones (name, key, facts, rectifiable, systemLog).
type DatasetOptions struct{}

// Check refuses the matching and erasure rules of the common fields: the
// system behind the webhook finds the subject's records and applies
// erasure and restriction itself.
func (*DatasetOptions) Check(d *sources.Dataset) error {
	if len(d.Identifiers) > 0 || len(d.FreeText) > 0 || len(d.Relations) > 0 {
		return errors.New("identifiers: a webhook system finds the subject's records itself; remove identifiers, freeText and relations")
	}
	if d.Erasure != nil || d.RestrictionField != "" {
		return errors.New("erasure: a webhook system applies erasure and restriction itself; remove erasure and restrictionField")
	}
	return nil
}

// FindsRecordsItself tells the sources config that a webhook dataset
// needs no identifiers to match.
func (*DatasetOptions) FindsRecordsItself() bool { return true }
