package webhook

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Defaults applied by New to a Config's zero values.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultMaxAttempts      = 5
	DefaultMaxResponseBytes = 64 << 20
	DefaultKey              = "id"
	// MinSecretBytes is the shortest signing secret or hash key accepted.
	MinSecretBytes = 32
	// MaxTimeout and MaxMaxAttempts bound the retry budget of one call.
	MaxTimeout     = 10 * time.Minute
	MaxMaxAttempts = 20
)

// Identifier modes: how the subject is sent to the system.
const (
	IdentifiersRaw    = "raw"
	IdentifiersHashed = "hashed"
)

// Config describes one remote system reached by signed HTTP POSTs.
type Config struct {
	// Name names the system in errors and blob prefixes ([a-z0-9-]);
	// empty means the URL's host.
	Name string `json:"name,omitempty"`
	// URL receives every POST. It must be https, except for a loopback
	// host (tests, local development). It must not carry user info.
	URL string `json:"url"`
	// Secret signs every request to the system and verifies its callbacks.
	// It comes from an app setting, never from the config file; at least
	// MinSecretBytes bytes.
	Secret []byte `json:"-"`
	// HashKey keys the identifier hashes in hashed mode (HMAC-SHA256). It
	// comes from an app setting; at least MinSecretBytes bytes and
	// different from Secret. Unused in raw mode.
	HashKey []byte `json:"-"`
	// Identifiers is "raw" (default: emails, phones and ids are sent as
	// they are) or "hashed" (only their keyed hashes are sent).
	Identifiers string `json:"identifiers,omitempty"`
	// Datasets are the datasets this system holds.
	Datasets []Dataset `json:"datasets"`
	// Timeout bounds one attempt, reading the response included (default 30s).
	Timeout time.Duration `json:"timeout,omitempty"`
	// MaxAttempts is how often one call is tried (default 5).
	MaxAttempts int `json:"maxAttempts,omitempty"`
	// MaxResponseBytes caps the bytes of an access result: all pages of one
	// access together, and each callback POST (default 64 MiB).
	MaxResponseBytes int64 `json:"maxResponseBytes,omitempty"`
	// CallbackBase is the public URL under which the system may POST
	// asynchronous access results, as CallbackBase + "/" + requestId.
	// Empty disables asynchronous access.
	CallbackBase string `json:"callbackBase,omitempty"`
}

// Dataset is one dataset the system holds.
type Dataset struct {
	// Name is the dataset's name ([a-z0-9-], unique in the config); the
	// system uses it as the key of the "records" object.
	Name string `json:"name"`
	// Key is the record field that holds the record's string id (default "id").
	Key string `json:"key,omitempty"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Validate checks the config. Zero values that New defaults are accepted.
func (c *Config) Validate() error {
	if c.Name != "" && !nameRE.MatchString(c.Name) {
		return fmt.Errorf("webhook: name %q: must be [a-z0-9-], 1 to 63 characters", c.Name)
	}
	sys := c.systemName()
	if err := checkURL(c.URL); err != nil {
		return fmt.Errorf("webhook %s: url: %w", sys, err)
	}
	if len(c.Secret) < MinSecretBytes {
		return fmt.Errorf("webhook %s: secret: must be at least %d bytes, got %d", sys, MinSecretBytes, len(c.Secret))
	}
	switch c.Identifiers {
	case "", IdentifiersRaw:
	case IdentifiersHashed:
		if len(c.HashKey) < MinSecretBytes {
			return fmt.Errorf("webhook %s: hashKey: hashed identifiers need a hash key of at least %d bytes, got %d", sys, MinSecretBytes, len(c.HashKey))
		}
		if bytes.Equal(c.HashKey, c.Secret) {
			return fmt.Errorf("webhook %s: hashKey: must differ from the signing secret", sys)
		}
	default:
		return fmt.Errorf("webhook %s: identifiers: must be %q or %q, got %q", sys, IdentifiersRaw, IdentifiersHashed, c.Identifiers)
	}
	if len(c.Datasets) == 0 {
		return fmt.Errorf("webhook %s: datasets: at least one dataset is required", sys)
	}
	seen := map[string]bool{}
	for i, d := range c.Datasets {
		if !nameRE.MatchString(d.Name) {
			return fmt.Errorf("webhook %s: datasets[%d]: name %q must be [a-z0-9-], 1 to 63 characters", sys, i, d.Name)
		}
		if seen[d.Name] {
			return fmt.Errorf("webhook %s: dataset %s is listed twice", sys, d.Name)
		}
		seen[d.Name] = true
		if d.Key != "" && strings.TrimSpace(d.Key) != d.Key {
			return fmt.Errorf("webhook %s: dataset %s: key %q has surrounding spaces", sys, d.Name, d.Key)
		}
	}
	if c.Timeout < 0 || c.Timeout > MaxTimeout {
		return fmt.Errorf("webhook %s: timeout: must be between 0 (default %s) and %s, got %s", sys, DefaultTimeout, MaxTimeout, c.Timeout)
	}
	if c.MaxAttempts < 0 || c.MaxAttempts > MaxMaxAttempts {
		return fmt.Errorf("webhook %s: maxAttempts: must be between 0 (default %d) and %d, got %d", sys, DefaultMaxAttempts, MaxMaxAttempts, c.MaxAttempts)
	}
	if c.MaxResponseBytes < 0 {
		return fmt.Errorf("webhook %s: maxResponseBytes: must not be negative", sys)
	}
	if c.CallbackBase != "" {
		if err := checkURL(c.CallbackBase); err != nil {
			return fmt.Errorf("webhook %s: callbackBase: %w", sys, err)
		}
		u, _ := url.Parse(c.CallbackBase)
		if u.RawQuery != "" || u.ForceQuery {
			return fmt.Errorf("webhook %s: callbackBase: must not have a query (the request id is appended as a path segment)", sys)
		}
	}
	return nil
}

// systemName is the name used in errors: Name, or the URL's host.
func (c *Config) systemName() string {
	if c.Name != "" {
		return c.Name
	}
	if u, err := url.Parse(c.URL); err == nil && u.Host != "" {
		return u.Host
	}
	return "(unnamed)"
}

// withDefaults returns a copy of c with defaults applied.
func (c *Config) withDefaults() Config {
	out := *c
	out.Datasets = append([]Dataset(nil), c.Datasets...)
	for i := range out.Datasets {
		if out.Datasets[i].Key == "" {
			out.Datasets[i].Key = DefaultKey
		}
	}
	if out.Identifiers == "" {
		out.Identifiers = IdentifiersRaw
	}
	if out.Timeout == 0 {
		out.Timeout = DefaultTimeout
	}
	if out.MaxAttempts == 0 {
		out.MaxAttempts = DefaultMaxAttempts
	}
	if out.MaxResponseBytes == 0 {
		out.MaxResponseBytes = DefaultMaxResponseBytes
	}
	out.CallbackBase = strings.TrimRight(out.CallbackBase, "/")
	out.Name = c.systemName()
	return out
}

// checkURL requires an absolute https URL (http only for a loopback host)
// without user info or fragment.
func checkURL(s string) error {
	if s == "" {
		return fmt.Errorf("required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL")
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("must be absolute, with a host")
	}
	if u.User != nil {
		return fmt.Errorf("must not carry user info (the signature authenticates requests)")
	}
	if u.Fragment != "" {
		return fmt.Errorf("must not have a fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return fmt.Errorf("must be https (http is accepted for loopback hosts only)")
		}
	default:
		return fmt.Errorf("must be https")
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
