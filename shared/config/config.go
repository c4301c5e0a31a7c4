// Package config reads every setting of the product once, at start, from
// app settings (environment variables), applies defaults and validates them.
// local.settings.json.example lists the same settings with their defaults.
package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// MaxExportLinkTTL is the longest lifetime an export link may have (7 days:
// a user delegation key, and so its SAS, cannot live longer).
const MaxExportLinkTTL = 7 * 24 * time.Hour

// Connection is an identity-based or connection-string connection, read the
// way the Functions host reads it: NAME holds a connection string, or
// NAME__<property> settings describe an identity-based connection.
type Connection struct {
	// ConnectionString is NAME itself, when set.
	ConnectionString string
	// AccountName (storage) from NAME__accountName.
	AccountName string
	// ServiceURI is NAME__blobServiceUri (storage) or derived from the account name.
	ServiceURI string
	// FullyQualifiedNamespace (Service Bus) from NAME__fullyQualifiedNamespace.
	FullyQualifiedNamespace string
	// ClientID of a user-assigned managed identity, NAME__clientId.
	ClientID string
	// Credential is NAME__credential ("managedidentity" or empty).
	Credential string
}

// IsSet reports whether any form of the connection is configured.
func (c Connection) IsSet() bool {
	return c.ConnectionString != "" || c.AccountName != "" || c.ServiceURI != "" || c.FullyQualifiedNamespace != ""
}

// Config is every setting of the product.
type Config struct {
	// Storage is AzureWebJobsStorage: requests, exports and datasets.
	Storage Connection
	// ServiceBus is ServiceBusConnection (unused by `dsr local`).
	ServiceBus Connection
	// StateContainer holds request documents (DSR_STATE_CONTAINER, default "state").
	StateContainer string
	// ExportsContainer holds export packages (DSR_EXPORTS_CONTAINER, default "exports").
	ExportsContainer string
	// AuditContainer holds the append-only audit trail (DSR_AUDIT_CONTAINER, default "audit").
	AuditContainer string
	// ProofContainer holds agents' proofs of authority, private
	// (DSR_PROOF_CONTAINER, default "proofs").
	ProofContainer string
	// ProofRetention is how long after its request ended a proof of
	// authority is kept before the sweeper deletes it (DSR_PROOF_RETENTION,
	// Go duration, default 2160h (90 days), 24h–8760h).
	ProofRetention time.Duration
	// SourcesConfig is the path of the sources config file (DSR_SOURCES_CONFIG,
	// default "sources.json" in the app root).
	SourcesConfig string
	// ExportLinkTTL is the lifetime of export links (DSR_EXPORT_LINK_TTL, Go
	// duration, default 72h, at most 168h).
	ExportLinkTTL time.Duration
	// PhoneRegion reads subject phone numbers written without a country code
	// (DSR_PHONE_REGION, ISO 3166 alpha-2; default empty: + and country code required).
	PhoneRegion string
	// IntakeRejectedQueue receives a notice for every invalid intake message
	// (DSR_INTAKE_REJECTED_QUEUE, default "dsr-intake-rejected").
	IntakeRejectedQueue string
	// AppRoot is where host.json and the function folders are (FUNCTIONS_APP_ROOT_PATH, default ".").
	AppRoot string
	// AuthMode is how callers are authenticated (DSR_AUTH_MODE): "platform"
	// (App Service Authentication injects X-MS-CLIENT-PRINCIPAL) or "keys"
	// (default: principal headers ignored; function-key callers get KeyRoles).
	AuthMode string
	// KeyRoles are the roles of callers known only by a function key
	// (DSR_KEY_ROLES, comma-separated; default none, so key-only callers
	// can do nothing).
	KeyRoles string
	// AllowTestRoles honours the X-DSR-Test-Roles header that narrows a key
	// caller's roles (DSR_ALLOW_TEST_ROLES=true; for tests only).
	AllowTestRoles bool
	// PseudonymSecret keys HMAC pseudonyms and the audit trail's record key
	// hashes (DSR_PSEUDONYM_SECRET, at least 16 bytes; required for erasure).
	PseudonymSecret string
	// ApprovalTypes are the request types that wait for approval after
	// discovery (DSR_APPROVAL_TYPES, default "erasure,rectification").
	ApprovalTypes string
	// SweepStuckAfter is how long a request may sit in a non-terminal stage
	// (received or in progress) before the sweeper sends its stage message
	// again (DSR_SWEEP_STUCK_AFTER, Go duration, default 30m, 1m–24h).
	SweepStuckAfter time.Duration
	// RepeatWindow is how far back a new request looks for the same
	// person's earlier requests of its type, to flag it as a repeat held
	// for an operator (Art. 12(5)) (DSR_REPEAT_WINDOW, Go duration, default
	// 720h, 24h–8760h; 0 turns flagging off).
	RepeatWindow time.Duration
	// StageRetries is how many scheduled retries a failing stage gets
	// before its request fails with the cause (DSR_STAGE_RETRIES, default
	// 8, 1–30). StageRetryDelay is the wait before the first retry, doubled
	// for each next one up to StageRetryMaxDelay, each jittered down to at
	// most half (DSR_STAGE_RETRY_DELAY, default 10s, 1s–10m;
	// DSR_STAGE_RETRY_MAX_DELAY, default 5m or half DSR_SWEEP_STUCK_AFTER if
	// less, from the first delay to 1h and under DSR_SWEEP_STUCK_AFTER, so
	// the sweeper does not re-drive a request that waits for its retry).
	StageRetries       int
	StageRetryDelay    time.Duration
	StageRetryMaxDelay time.Duration
	// ScanShardBytes is the size of a shard of a fanned-out discovery: a
	// Blob dataset of at least two shards is scanned over the dsr-scan
	// queue (DSR_SCAN_SHARD_MB, MiB, default 256, 1–65536; 0 turns fan-out
	// off). ScanMaxShards bounds one scan's shards; a larger dataset gets
	// larger shards (DSR_SCAN_MAX_SHARDS, default 64, 1–1000).
	ScanShardBytes int64
	ScanMaxShards  int
	// HandlerPort is where `dsr serve` listens (FUNCTIONS_CUSTOMHANDLER_PORT, default 8080).
	HandlerPort int
	// Verify says which requests wait for their requester to prove the
	// address they gave (DSR_VERIFY): comma-separated channel:type pairs,
	// channel portal, http, queue or *, type a request type or *; default
	// "portal:*"; "none" for none.
	Verify []VerifyRule
	// VerifyCodeTTL is how long a code works (DSR_VERIFY_CODE_TTL, default
	// 30m, 5m–24h); VerifyExpireAfter how long an unverified request waits
	// before it expires (DSR_VERIFY_EXPIRE_AFTER, default 168h, 1h–720h).
	VerifyCodeTTL, VerifyExpireAfter time.Duration
	// VerifyDeadline is when the Art. 12(3) month starts for a request that
	// waited for verification (DSR_VERIFY_DEADLINE): "receipt" (default, the
	// conservative reading) or "verification".
	VerifyDeadline string
	// EmailEndpoint is the Azure Communication Services endpoint that sends
	// email (DSR_EMAIL_ACS_ENDPOINT, https://<resource>.communication.azure.com);
	// EmailSender the address it sends from (DSR_EMAIL_SENDER).
	EmailEndpoint, EmailSender string
	// OutboxContainer, for local runs, writes each email as a JSON blob into
	// this container instead of sending it (DSR_EMAIL_OUTBOX_CONTAINER).
	OutboxContainer string
	// PortalTypes are the request types the public portal offers
	// (DSR_PORTAL_TYPES, default "access,erasure,rectification,restriction";
	// "none": no portal). DSR_VERIFY must cover each for the portal.
	PortalTypes []string
	// TransmitAllowHosts are host names a portability package may be sent
	// to although they resolve to a private address (a controller behind a
	// private endpoint) (DSR_TRANSMIT_ALLOW_HOSTS, comma-separated; default
	// none).
	TransmitAllowHosts []string
	// PublicURL is the app's own base URL, under which asynchronous
	// webhook systems deliver their answers: https://<WEBSITE_HOSTNAME>
	// (set by the platform), or http:// for a loopback host (`dsr local`).
	// Empty when WEBSITE_HOSTNAME is not set.
	PublicURL string
}

// Load reads the configuration through getenv (os.Getenv in production).
func Load(getenv func(string) string) (*Config, error) {
	var kvErr error
	getenv = refuseKeyVaultReferences(getenv, &kvErr)
	c, err := load(getenv)
	if kvErr != nil {
		return nil, kvErr
	}
	return c, err
}

// KeyVaultReferencePrefix starts an App Service Key Vault reference. The
// platform replaces a reference with the secret; when it cannot (the
// identity may not read the vault, the secret or its version is missing),
// the app gets the reference text itself as the value.
const KeyVaultReferencePrefix = "@Microsoft.KeyVault("

// UnresolvedKeyVaultReference reports whether a setting's value is a Key
// Vault reference the platform could not resolve.
func UnresolvedKeyVaultReference(v string) bool {
	return strings.HasPrefix(strings.TrimSpace(v), KeyVaultReferencePrefix)
}

// KeyVaultError is the error for a setting left holding its reference: it
// names the setting, never the value.
func KeyVaultError(name string) error {
	return fmt.Errorf("%s: holds an unresolved Key Vault reference (the platform could not read the secret: check the "+
		"reference, that the secret exists, that the app's identity has Key Vault Secrets User and that the app's "+
		"keyVaultReferenceIdentity is that identity); refusing to start rather than use the reference text as the value", name)
}

// refuseKeyVaultReferences wraps getenv so that a setting holding an
// unresolved Key Vault reference reads as empty and the first one is
// reported through err: DSR_PSEUDONYM_SECRET would otherwise pass its
// length check and key every pseudonym and audit hash with the reference
// text, in a write-once audit trail.
func refuseKeyVaultReferences(getenv func(string) string, err *error) func(string) string {
	return func(name string) string {
		v := getenv(name)
		if UnresolvedKeyVaultReference(v) {
			if *err == nil {
				*err = KeyVaultError(name)
			}
			return ""
		}
		return v
	}
}

func load(getenv func(string) string) (*Config, error) {
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	c := &Config{
		Storage:             connection(getenv, "AzureWebJobsStorage"),
		ServiceBus:          connection(getenv, "ServiceBusConnection"),
		StateContainer:      get("DSR_STATE_CONTAINER", "state"),
		ExportsContainer:    get("DSR_EXPORTS_CONTAINER", "exports"),
		AuditContainer:      get("DSR_AUDIT_CONTAINER", "audit"),
		ProofContainer:      get("DSR_PROOF_CONTAINER", "proofs"),
		PhoneRegion:         strings.ToUpper(get("DSR_PHONE_REGION", "")),
		IntakeRejectedQueue: get("DSR_INTAKE_REJECTED_QUEUE", "dsr-intake-rejected"),
		AppRoot:             get("FUNCTIONS_APP_ROOT_PATH", "."),
	}
	c.AuthMode = get("DSR_AUTH_MODE", "keys")
	if c.AuthMode != "keys" && c.AuthMode != "platform" {
		return nil, fmt.Errorf("DSR_AUTH_MODE: must be platform (behind App Service Authentication) or keys, got %q", c.AuthMode)
	}
	c.KeyRoles = get("DSR_KEY_ROLES", "")
	switch v := strings.ToLower(get("DSR_ALLOW_TEST_ROLES", "false")); v {
	case "true", "1":
		c.AllowTestRoles = true
	case "false", "0":
	default:
		return nil, fmt.Errorf("DSR_ALLOW_TEST_ROLES: must be true or false, got %q", v)
	}
	c.PseudonymSecret = strings.TrimSpace(getenv("DSR_PSEUDONYM_SECRET"))
	if c.PseudonymSecret != "" && len(c.PseudonymSecret) < 16 {
		return nil, fmt.Errorf("DSR_PSEUDONYM_SECRET: use at least 16 characters")
	}
	c.ApprovalTypes = get("DSR_APPROVAL_TYPES", "erasure,rectification")
	if strings.TrimSpace(getenv("DSR_APPROVAL_TYPES")) == "none" {
		c.ApprovalTypes = ""
	}
	c.SourcesConfig = get("DSR_SOURCES_CONFIG", "sources.json")
	if !filepath.IsAbs(c.SourcesConfig) {
		c.SourcesConfig = filepath.Join(c.AppRoot, c.SourcesConfig)
	}
	ttl, err := time.ParseDuration(get("DSR_EXPORT_LINK_TTL", "72h"))
	if err != nil {
		return nil, fmt.Errorf("DSR_EXPORT_LINK_TTL: %w", err)
	}
	if ttl < time.Minute || ttl > MaxExportLinkTTL {
		return nil, fmt.Errorf("DSR_EXPORT_LINK_TTL: must be between 1m and %s, got %s", MaxExportLinkTTL, ttl)
	}
	c.ExportLinkTTL = ttl
	stuck, err := time.ParseDuration(get("DSR_SWEEP_STUCK_AFTER", "30m"))
	if err != nil {
		return nil, fmt.Errorf("DSR_SWEEP_STUCK_AFTER: %w", err)
	}
	if stuck < time.Minute || stuck > 24*time.Hour {
		return nil, fmt.Errorf("DSR_SWEEP_STUCK_AFTER: must be between 1m and 24h, got %s", stuck)
	}
	c.SweepStuckAfter = stuck
	if c.ProofRetention, err = durationIn(get("DSR_PROOF_RETENTION", "2160h"), "DSR_PROOF_RETENTION", 24*time.Hour, 8760*time.Hour); err != nil {
		return nil, err
	}
	// 0 (in any spelling) turns flagging off; otherwise a day to a year.
	if v := get("DSR_REPEAT_WINDOW", "720h"); v != "0" {
		if d, err := time.ParseDuration(v); err != nil || d != 0 {
			if c.RepeatWindow, err = durationIn(v, "DSR_REPEAT_WINDOW", 24*time.Hour, 8760*time.Hour); err != nil {
				return nil, fmt.Errorf("%w (or 0: no flagging)", err)
			}
		}
	}
	if err := c.loadStageRetries(get); err != nil {
		return nil, err
	}
	mb, err := intIn(get("DSR_SCAN_SHARD_MB", "256"), "DSR_SCAN_SHARD_MB", 0, 65536, " (0 turns fan-out off)")
	if err != nil {
		return nil, err
	}
	c.ScanShardBytes = int64(mb) << 20
	if c.ScanMaxShards, err = intIn(get("DSR_SCAN_MAX_SHARDS", "64"), "DSR_SCAN_MAX_SHARDS", 1, 1000, ""); err != nil {
		return nil, err
	}
	port := get("FUNCTIONS_CUSTOMHANDLER_PORT", get("FUNCTIONS_HTTPWORKER_PORT", "8080"))
	if c.HandlerPort, err = strconv.Atoi(port); err != nil || c.HandlerPort <= 0 || c.HandlerPort > 65535 {
		return nil, fmt.Errorf("FUNCTIONS_CUSTOMHANDLER_PORT: %q is not a port number", port)
	}
	if c.PhoneRegion != "" && !isAlpha2(c.PhoneRegion) {
		return nil, fmt.Errorf("DSR_PHONE_REGION: must be an ISO 3166 alpha-2 code such as US, got %q", c.PhoneRegion)
	}
	for name, v := range map[string]string{"DSR_STATE_CONTAINER": c.StateContainer, "DSR_EXPORTS_CONTAINER": c.ExportsContainer, "DSR_AUDIT_CONTAINER": c.AuditContainer, "DSR_PROOF_CONTAINER": c.ProofContainer} {
		if !validContainer(v) {
			return nil, fmt.Errorf("%s: %q is not a valid container name", name, v)
		}
	}
	if host := get("WEBSITE_HOSTNAME", ""); host != "" {
		scheme := "https://"
		if h, _, _ := strings.Cut(host, ":"); h == "localhost" || h == "127.0.0.1" || h == "[::1]" {
			scheme = "http://"
		}
		c.PublicURL = scheme + host
	}
	for h := range strings.SplitSeq(get("DSR_TRANSMIT_ALLOW_HOSTS", ""), ",") {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		if strings.ContainsAny(h, "/:@ ") || !strings.Contains(h, ".") {
			return nil, fmt.Errorf("DSR_TRANSMIT_ALLOW_HOSTS: %q is not a host name (list names such as controller.example, without scheme or port)", h)
		}
		c.TransmitAllowHosts = append(c.TransmitAllowHosts, h)
	}
	if err := loadVerification(c, get); err != nil {
		return nil, err
	}
	if !c.Storage.IsSet() {
		return nil, fmt.Errorf("AzureWebJobsStorage: not set (use UseDevelopmentStorage=true for Azurite, or AzureWebJobsStorage__accountName with a managed identity)")
	}
	return c, nil
}

// FromEnv is Load(os.Getenv).
func FromEnv() (*Config, error) { return Load(os.Getenv) }

func connection(getenv func(string) string, name string) Connection {
	p := func(prop string) string { return strings.TrimSpace(getenv(name + "__" + prop)) }
	c := Connection{
		ConnectionString:        strings.TrimSpace(getenv(name)),
		AccountName:             p("accountName"),
		ServiceURI:              p("blobServiceUri"),
		FullyQualifiedNamespace: p("fullyQualifiedNamespace"),
		ClientID:                p("clientId"),
		Credential:              p("credential"),
	}
	if c.ServiceURI == "" && c.AccountName != "" {
		c.ServiceURI = "https://" + c.AccountName + ".blob.core.windows.net/"
	}
	return c
}

// isAlpha2 reports whether s is two ASCII upper-case letters.
func isAlpha2(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

func validContainer(s string) bool {
	if len(s) < 3 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// VerifyRule says that requests of Type arriving on Channel need a verified
// requester ("*" matches any).
type VerifyRule struct{ Channel, Type string }

// Channels are where requests come from: the public portal, the HTTP API,
// the intake queue.
var Channels = []string{"portal", "http", "queue"}

// requestTypes are the request types settings may name (shared/dsr's).
var requestTypes = []string{"access", "discovery", "erasure", "rectification", "restriction", "portability"}

// VerifyRequired reports whether a request of type t on channel needs a
// verified requester.
func (c *Config) VerifyRequired(channel, t string) bool {
	for _, r := range c.Verify {
		if (r.Channel == "*" || r.Channel == channel) && (r.Type == "*" || r.Type == t) {
			return true
		}
	}
	return false
}

func loadVerification(c *Config, get func(name, def string) string) error {
	rules := get("DSR_VERIFY", "portal:*")
	if rules != "none" {
		for _, part := range strings.Split(rules, ",") {
			ch, typ, ok := strings.Cut(strings.TrimSpace(part), ":")
			if !ok || (ch != "*" && !contains(Channels, ch)) || (typ != "*" && !contains(requestTypes, typ)) {
				return fmt.Errorf("DSR_VERIFY: %q is not channel:type (channel portal, http, queue or *; type a request type or *), or none", strings.TrimSpace(part))
			}
			c.Verify = append(c.Verify, VerifyRule{Channel: ch, Type: typ})
		}
	}
	var err error
	if c.VerifyCodeTTL, err = durationIn(get("DSR_VERIFY_CODE_TTL", "30m"), "DSR_VERIFY_CODE_TTL", 5*time.Minute, 24*time.Hour); err != nil {
		return err
	}
	if c.VerifyExpireAfter, err = durationIn(get("DSR_VERIFY_EXPIRE_AFTER", "168h"), "DSR_VERIFY_EXPIRE_AFTER", time.Hour, 720*time.Hour); err != nil {
		return err
	}
	c.VerifyDeadline = get("DSR_VERIFY_DEADLINE", "receipt")
	if c.VerifyDeadline != "receipt" && c.VerifyDeadline != "verification" {
		return fmt.Errorf("DSR_VERIFY_DEADLINE: must be receipt (the month runs from receipt) or verification, got %q", c.VerifyDeadline)
	}
	c.EmailEndpoint, c.EmailSender = get("DSR_EMAIL_ACS_ENDPOINT", ""), get("DSR_EMAIL_SENDER", "")
	c.OutboxContainer = get("DSR_EMAIL_OUTBOX_CONTAINER", "")
	switch {
	case c.EmailEndpoint != "" && c.OutboxContainer != "":
		return fmt.Errorf("DSR_EMAIL_ACS_ENDPOINT and DSR_EMAIL_OUTBOX_CONTAINER: set one (ACS sends email; the outbox keeps it locally)")
	case c.EmailEndpoint != "":
		u, err := url.Parse(c.EmailEndpoint)
		if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("DSR_EMAIL_ACS_ENDPOINT: must be the resource's https endpoint, like https://contoso.communication.azure.com")
		}
		if at := strings.LastIndexByte(c.EmailSender, '@'); at < 1 || at == len(c.EmailSender)-1 || strings.ContainsAny(c.EmailSender, " <>\r\n") {
			return fmt.Errorf("DSR_EMAIL_SENDER: must be the sender address of a verified domain, like DoNotReply@contoso.com")
		}
	case c.OutboxContainer != "" && !validContainer(c.OutboxContainer):
		return fmt.Errorf("DSR_EMAIL_OUTBOX_CONTAINER: %q is not a valid container name", c.OutboxContainer)
	}
	if types := get("DSR_PORTAL_TYPES", "access,erasure,rectification,restriction"); types != "none" {
		for _, t := range strings.Split(types, ",") {
			t = strings.TrimSpace(t)
			if !contains(requestTypes, t) {
				return fmt.Errorf("DSR_PORTAL_TYPES: %q is not a request type (or none: no portal)", t)
			}
			// The portal is anonymous: a request from it must never run
			// before its requester proved the address.
			if !c.VerifyRequired("portal", t) {
				return fmt.Errorf("DSR_PORTAL_TYPES: %s requests from the portal would run unverified; DSR_VERIFY must cover portal:%s (or leave %s out)", t, t, t)
			}
			c.PortalTypes = append(c.PortalTypes, t)
		}
	}
	return nil
}

// loadStageRetries reads how failing stages are retried.
func (c *Config) loadStageRetries(get func(string, string) string) error {
	v := get("DSR_STAGE_RETRIES", "8")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 30 {
		return fmt.Errorf("DSR_STAGE_RETRIES: must be a whole number from 1 to 30, got %q", v)
	}
	c.StageRetries = n
	if c.StageRetryDelay, err = durationIn(get("DSR_STAGE_RETRY_DELAY", "10s"), "DSR_STAGE_RETRY_DELAY", time.Second, 10*time.Minute); err != nil {
		return err
	}
	// Unset, the cap keeps under the sweeper's patience by itself.
	def := min(5*time.Minute, max(c.SweepStuckAfter/2, c.StageRetryDelay)).String()
	if c.StageRetryMaxDelay, err = durationIn(get("DSR_STAGE_RETRY_MAX_DELAY", def), "DSR_STAGE_RETRY_MAX_DELAY", c.StageRetryDelay, time.Hour); err != nil {
		return fmt.Errorf("%w (at least DSR_STAGE_RETRY_DELAY)", err)
	}
	if c.StageRetryMaxDelay >= c.SweepStuckAfter {
		return fmt.Errorf("DSR_STAGE_RETRY_MAX_DELAY: must be shorter than DSR_SWEEP_STUCK_AFTER (%s), or the sweeper re-drives requests waiting for their retry; got %s",
			c.SweepStuckAfter, c.StageRetryMaxDelay)
	}
	return nil
}

// intIn parses a whole-number setting within [lo, hi].
func intIn(v, name string, lo, hi int, more string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s: must be a whole number from %d to %d%s, got %q", name, lo, hi, more, v)
	}
	return n, nil
}

// durationIn parses a Go duration setting within [lo, hi].
func durationIn(v, name string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if d < lo || d > hi {
		return 0, fmt.Errorf("%s: must be between %s and %s, got %s", name, lo, hi, d)
	}
	return d, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
