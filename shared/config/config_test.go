package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// env is a map-backed getenv.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

const devStorage = "UseDevelopmentStorage=true"

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env("AzureWebJobsStorage", devStorage))
	if err != nil {
		t.Fatal(err)
	}
	if c.StateContainer != "state" || c.ExportsContainer != "exports" {
		t.Errorf("containers %q %q, want state exports", c.StateContainer, c.ExportsContainer)
	}
	if c.ExportLinkTTL != 72*time.Hour {
		t.Errorf("ExportLinkTTL = %s, want 72h", c.ExportLinkTTL)
	}
	if c.AppRoot != "." || c.SourcesConfig != "sources.json" {
		t.Errorf("AppRoot %q SourcesConfig %q", c.AppRoot, c.SourcesConfig)
	}
	if c.HandlerPort != 8080 {
		t.Errorf("HandlerPort = %d, want 8080", c.HandlerPort)
	}
	if c.PhoneRegion != "" {
		t.Errorf("PhoneRegion = %q, want empty", c.PhoneRegion)
	}
	if c.IntakeRejectedQueue != "dsr-intake-rejected" {
		t.Errorf("IntakeRejectedQueue = %q", c.IntakeRejectedQueue)
	}
	if c.Storage.ConnectionString != devStorage || !c.Storage.IsSet() {
		t.Errorf("Storage = %+v", c.Storage)
	}
	if c.ServiceBus.IsSet() {
		t.Errorf("ServiceBus set without settings: %+v", c.ServiceBus)
	}
}

func TestLoadSourcesConfigJoinsAppRoot(t *testing.T) {
	abs := filepath.Join(t.TempDir(), "elsewhere.json")
	tests := []struct {
		name string
		env  func(string) string
		want string
	}{
		{"default in app root", env("AzureWebJobsStorage", devStorage, "FUNCTIONS_APP_ROOT_PATH", "/home/site/wwwroot"), "/home/site/wwwroot/sources.json"},
		{"relative joined to app root", env("AzureWebJobsStorage", devStorage, "FUNCTIONS_APP_ROOT_PATH", "/app", "DSR_SOURCES_CONFIG", "conf/s.json"), "/app/conf/s.json"},
		{"absolute kept", env("AzureWebJobsStorage", devStorage, "FUNCTIONS_APP_ROOT_PATH", "/app", "DSR_SOURCES_CONFIG", abs), abs},
		{"blank app root is the default", env("AzureWebJobsStorage", devStorage, "FUNCTIONS_APP_ROOT_PATH", "   "), "sources.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if c.SourcesConfig != tc.want {
				t.Errorf("SourcesConfig = %q, want %q", c.SourcesConfig, tc.want)
			}
		})
	}
}

func TestLoadExportLinkTTL(t *testing.T) {
	tests := []struct {
		value string
		want  time.Duration
		err   string // substring of the error; "" for success
	}{
		{"72h", 72 * time.Hour, ""},
		{"1m", time.Minute, ""},
		{"168h", 168 * time.Hour, ""},
		{" 24h ", 24 * time.Hour, ""},
		{"90m", 90 * time.Minute, ""},
		{"168h0m1s", 0, "DSR_EXPORT_LINK_TTL"},
		{"169h", 0, "DSR_EXPORT_LINK_TTL"},
		{"720h", 0, "DSR_EXPORT_LINK_TTL"},
		{"59s", 0, "DSR_EXPORT_LINK_TTL"},
		{"0s", 0, "DSR_EXPORT_LINK_TTL"},
		{"-1h", 0, "DSR_EXPORT_LINK_TTL"},
		{"3 days", 0, "DSR_EXPORT_LINK_TTL"},
		{"72", 0, "DSR_EXPORT_LINK_TTL"},
		{"P3D", 0, "DSR_EXPORT_LINK_TTL"},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			c, err := Load(env("AzureWebJobsStorage", devStorage, "DSR_EXPORT_LINK_TTL", tc.value))
			if tc.err == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if c.ExportLinkTTL != tc.want {
					t.Errorf("ExportLinkTTL = %s, want %s", c.ExportLinkTTL, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted as %s", c.ExportLinkTTL)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q does not name %s", err, tc.err)
			}
		})
	}
}

func TestLoadStorageRequired(t *testing.T) {
	for _, e := range []func(string) string{
		env(),
		env("AzureWebJobsStorage", "   "),
		env("AzureWebJobsStorage__clientId", "00000000-0000-0000-0000-000000000001"),
		env("AzureWebJobsStorage__credential", "managedidentity"),
	} {
		_, err := Load(e)
		if err == nil {
			t.Fatal("loaded without a storage connection")
		}
		msg := err.Error()
		for _, want := range []string{"AzureWebJobsStorage", "UseDevelopmentStorage=true", "AzureWebJobsStorage__accountName"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q should mention %s", msg, want)
			}
		}
	}
}

func TestLoadIdentityBasedConnections(t *testing.T) {
	c, err := Load(env(
		"AzureWebJobsStorage__accountName", "dsrprod01",
		"AzureWebJobsStorage__clientId", "11111111-1111-1111-1111-111111111111",
		"AzureWebJobsStorage__credential", "managedidentity",
		"ServiceBusConnection__fullyQualifiedNamespace", "dsr-prod.servicebus.windows.net",
		"ServiceBusConnection__clientId", "22222222-2222-2222-2222-222222222222",
	))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Storage
	if s.ConnectionString != "" || s.AccountName != "dsrprod01" || s.ServiceURI != "https://dsrprod01.blob.core.windows.net/" {
		t.Errorf("Storage = %+v", s)
	}
	if s.ClientID != "11111111-1111-1111-1111-111111111111" || s.Credential != "managedidentity" || !s.IsSet() {
		t.Errorf("Storage = %+v", s)
	}
	sb := c.ServiceBus
	if sb.FullyQualifiedNamespace != "dsr-prod.servicebus.windows.net" || sb.ClientID != "22222222-2222-2222-2222-222222222222" || !sb.IsSet() {
		t.Errorf("ServiceBus = %+v", sb)
	}
	if sb.ServiceURI != "" || sb.ConnectionString != "" {
		t.Errorf("ServiceBus has storage fields: %+v", sb)
	}
}

func TestLoadExplicitBlobServiceURI(t *testing.T) {
	c, err := Load(env(
		"AzureWebJobsStorage__accountName", "dsrprod01",
		"AzureWebJobsStorage__blobServiceUri", "https://dsrprod01.blob.core.usgovcloudapi.net",
	))
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.ServiceURI != "https://dsrprod01.blob.core.usgovcloudapi.net" {
		t.Errorf("ServiceURI = %q: an explicit blobServiceUri must win over the derived one", c.Storage.ServiceURI)
	}
	c, err = Load(env("AzureWebJobsStorage__blobServiceUri", "https://x.blob.core.windows.net/"))
	if err != nil {
		t.Fatalf("blobServiceUri alone should be enough: %v", err)
	}
	if !c.Storage.IsSet() {
		t.Error("Storage not set")
	}
}

func TestLoadServiceBusConnectionString(t *testing.T) {
	cs := "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s"
	c, err := Load(env("AzureWebJobsStorage", devStorage, "ServiceBusConnection", cs))
	if err != nil {
		t.Fatal(err)
	}
	if c.ServiceBus.ConnectionString != cs {
		t.Errorf("ServiceBus.ConnectionString = %q", c.ServiceBus.ConnectionString)
	}
}

func TestLoadContainerNames(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"state", true},
		{"abc", true},
		{"dsr-state-2", true},
		{strings.Repeat("a", 63), true},
		{"ab", false},
		{strings.Repeat("a", 64), false},
		{"State", false},
		{"-state", false},
		{"state-", false},
		{"st--ate", false},
		{"st_ate", false},
		{"st.ate", false},
		{"stäte", false},
		{"../state", false},
	}
	for _, tc := range tests {
		for _, setting := range []string{"DSR_STATE_CONTAINER", "DSR_EXPORTS_CONTAINER"} {
			c, err := Load(env("AzureWebJobsStorage", devStorage, setting, tc.name))
			if tc.ok {
				if err != nil {
					t.Errorf("%s=%q refused: %v", setting, tc.name, err)
					continue
				}
				got := c.StateContainer
				if setting == "DSR_EXPORTS_CONTAINER" {
					got = c.ExportsContainer
				}
				if got != tc.name {
					t.Errorf("%s=%q read as %q", setting, tc.name, got)
				}
				continue
			}
			if err == nil {
				t.Errorf("%s=%q accepted", setting, tc.name)
			} else if !strings.Contains(err.Error(), setting) {
				t.Errorf("error %q does not name %s", err, setting)
			}
		}
	}
}

func TestLoadPort(t *testing.T) {
	tests := []struct {
		env  func(string) string
		want int
		ok   bool
	}{
		{env("AzureWebJobsStorage", devStorage, "FUNCTIONS_CUSTOMHANDLER_PORT", "34567"), 34567, true},
		{env("AzureWebJobsStorage", devStorage, "FUNCTIONS_HTTPWORKER_PORT", "4567"), 4567, true},
		{env("AzureWebJobsStorage", devStorage, "FUNCTIONS_CUSTOMHANDLER_PORT", "1234", "FUNCTIONS_HTTPWORKER_PORT", "4567"), 1234, true},
		{env("AzureWebJobsStorage", devStorage, "FUNCTIONS_CUSTOMHANDLER_PORT", "65535"), 65535, true},
		{env("AzureWebJobsStorage", devStorage, "FUNCTIONS_CUSTOMHANDLER_PORT", "0"), 0, false},
		{env("AzureWebJobsStorage", devStorage, "FUNCTIONS_CUSTOMHANDLER_PORT", "-1"), 0, false},
		{env("AzureWebJobsStorage", devStorage, "FUNCTIONS_CUSTOMHANDLER_PORT", "65536"), 0, false},
		{env("AzureWebJobsStorage", devStorage, "FUNCTIONS_CUSTOMHANDLER_PORT", "http"), 0, false},
		{env("AzureWebJobsStorage", devStorage, "FUNCTIONS_CUSTOMHANDLER_PORT", "80a"), 0, false},
		{env("AzureWebJobsStorage", devStorage, "FUNCTIONS_HTTPWORKER_PORT", "99999"), 0, false},
	}
	for i, tc := range tests {
		c, err := Load(tc.env)
		if !tc.ok {
			if err == nil {
				t.Errorf("case %d: accepted port %d", i, c.HandlerPort)
			} else if !strings.Contains(err.Error(), "PORT") {
				t.Errorf("case %d: error %q does not name the setting", i, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("case %d: %v", i, err)
		} else if c.HandlerPort != tc.want {
			t.Errorf("case %d: port %d, want %d", i, c.HandlerPort, tc.want)
		}
	}
}

func TestLoadPhoneRegion(t *testing.T) {
	tests := []struct {
		value string
		want  string
		ok    bool
	}{
		{"us", "US", true},
		{"US", "US", true},
		{"Gb", "GB", true},
		{" de ", "DE", true},
		{"", "", true},
		{"USA", "", false},
		{"U", "", false},
		{"1A", "", false},
		{"+1", "", false},
		{"é", "", false},
	}
	for _, tc := range tests {
		c, err := Load(env("AzureWebJobsStorage", devStorage, "DSR_PHONE_REGION", tc.value))
		if !tc.ok {
			if err == nil {
				t.Errorf("DSR_PHONE_REGION=%q accepted as %q", tc.value, c.PhoneRegion)
			} else if !strings.Contains(err.Error(), "DSR_PHONE_REGION") {
				t.Errorf("error %q does not name the setting", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("DSR_PHONE_REGION=%q: %v", tc.value, err)
		} else if c.PhoneRegion != tc.want {
			t.Errorf("DSR_PHONE_REGION=%q read as %q, want %q", tc.value, c.PhoneRegion, tc.want)
		}
	}
}

func TestLoadOverrides(t *testing.T) {
	c, err := Load(env(
		"AzureWebJobsStorage", devStorage,
		"DSR_STATE_CONTAINER", "dsr-state",
		"DSR_EXPORTS_CONTAINER", "dsr-exports",
		"DSR_INTAKE_REJECTED_QUEUE", "rejected",
		"DSR_EXPORT_LINK_TTL", "24h",
	))
	if err != nil {
		t.Fatal(err)
	}
	if c.StateContainer != "dsr-state" || c.ExportsContainer != "dsr-exports" || c.IntakeRejectedQueue != "rejected" || c.ExportLinkTTL != 24*time.Hour {
		t.Errorf("config = %+v", c)
	}
}

func TestLoadSweepStuckAfter(t *testing.T) {
	tests := []struct {
		value string
		want  time.Duration
		err   bool
	}{
		{"", 30 * time.Minute, false},
		{"30m", 30 * time.Minute, false},
		{"1m", time.Minute, false},
		{"24h", 24 * time.Hour, false},
		{" 2h ", 2 * time.Hour, false},
		{"59s", 0, true},
		{"24h0m1s", 0, true},
		{"0s", 0, true},
		{"-5m", 0, true},
		{"30", 0, true},
		{"half an hour", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			c, err := Load(env("AzureWebJobsStorage", devStorage, "DSR_SWEEP_STUCK_AFTER", tc.value))
			if tc.err {
				if err == nil || !strings.Contains(err.Error(), "DSR_SWEEP_STUCK_AFTER") {
					t.Fatalf("Load = %v, want an error naming DSR_SWEEP_STUCK_AFTER", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.SweepStuckAfter != tc.want {
				t.Errorf("SweepStuckAfter = %s, want %s", c.SweepStuckAfter, tc.want)
			}
		})
	}
}

// DSR_REPEAT_WINDOW: 30 days by default, 0 turns flagging off, otherwise
// a day to a year; an error names the setting.
func TestLoadRepeatWindow(t *testing.T) {
	for value, want := range map[string]time.Duration{
		"": 720 * time.Hour, "720h": 720 * time.Hour, "0": 0, "0s": 0, "24h": 24 * time.Hour, " 8760h ": 8760 * time.Hour,
		"23h59m": -1, "8761h": -1, "-24h": -1, "30d": -1, "720": -1,
	} {
		c, err := Load(env("AzureWebJobsStorage", devStorage, "DSR_REPEAT_WINDOW", value))
		switch {
		case want < 0 && (err == nil || !strings.Contains(err.Error(), "DSR_REPEAT_WINDOW")):
			t.Errorf("%q: Load = %v, want an error naming DSR_REPEAT_WINDOW", value, err)
		case want >= 0 && err != nil:
			t.Errorf("%q: %v", value, err)
		case want >= 0 && c.RepeatWindow != want:
			t.Errorf("%q: RepeatWindow = %s, want %s", value, c.RepeatWindow, want)
		}
	}
}

// DSR_STAGE_RETRIES, DSR_STAGE_RETRY_DELAY, DSR_STAGE_RETRY_MAX_DELAY: 8
// retries from 10s to 5m by default; out of range, unparseable, a cap under
// the first delay or at the sweeper's patience is refused naming the
// setting; unset, the cap stays under the sweeper's patience.
func TestLoadStageRetries(t *testing.T) {
	type want struct {
		n          int
		delay, cap time.Duration
		errNames   string
	}
	for _, tc := range []struct {
		kv   []string
		want want
	}{
		{nil, want{8, 10 * time.Second, 5 * time.Minute, ""}},
		{[]string{"DSR_STAGE_RETRIES", "3", "DSR_STAGE_RETRY_DELAY", "2s", "DSR_STAGE_RETRY_MAX_DELAY", "1m"}, want{3, 2 * time.Second, time.Minute, ""}},
		{[]string{"DSR_STAGE_RETRIES", "30", "DSR_STAGE_RETRY_DELAY", "1s", "DSR_STAGE_RETRY_MAX_DELAY", "1s"}, want{30, time.Second, time.Second, ""}},
		{[]string{"DSR_SWEEP_STUCK_AFTER", "2m"}, want{8, 10 * time.Second, time.Minute, ""}},
		{[]string{"DSR_STAGE_RETRIES", "0"}, want{errNames: "DSR_STAGE_RETRIES"}},
		{[]string{"DSR_STAGE_RETRIES", "31"}, want{errNames: "DSR_STAGE_RETRIES"}},
		{[]string{"DSR_STAGE_RETRIES", "many"}, want{errNames: "DSR_STAGE_RETRIES"}},
		{[]string{"DSR_STAGE_RETRY_DELAY", "999ms"}, want{errNames: "DSR_STAGE_RETRY_DELAY"}},
		{[]string{"DSR_STAGE_RETRY_DELAY", "11m"}, want{errNames: "DSR_STAGE_RETRY_DELAY"}},
		{[]string{"DSR_STAGE_RETRY_DELAY", "10"}, want{errNames: "DSR_STAGE_RETRY_DELAY"}},
		{[]string{"DSR_STAGE_RETRY_DELAY", "1m", "DSR_STAGE_RETRY_MAX_DELAY", "30s"}, want{errNames: "DSR_STAGE_RETRY_MAX_DELAY"}},
		{[]string{"DSR_STAGE_RETRY_MAX_DELAY", "61m", "DSR_SWEEP_STUCK_AFTER", "2h"}, want{errNames: "DSR_STAGE_RETRY_MAX_DELAY"}},
		{[]string{"DSR_STAGE_RETRY_MAX_DELAY", "30m"}, want{errNames: "DSR_STAGE_RETRY_MAX_DELAY"}},
	} {
		c, err := Load(env(append([]string{"AzureWebJobsStorage", devStorage}, tc.kv...)...))
		switch {
		case tc.want.errNames != "":
			if err == nil || !strings.Contains(err.Error(), tc.want.errNames) {
				t.Errorf("%v: Load = %v, want an error naming %s", tc.kv, err, tc.want.errNames)
			}
		case err != nil:
			t.Errorf("%v: %v", tc.kv, err)
		case c.StageRetries != tc.want.n || c.StageRetryDelay != tc.want.delay || c.StageRetryMaxDelay != tc.want.cap:
			t.Errorf("%v: retries %d delay %s cap %s, want %+v", tc.kv, c.StageRetries, c.StageRetryDelay, c.StageRetryMaxDelay, tc.want)
		}
	}
}

// DSR_SCAN_SHARD_MB and DSR_SCAN_MAX_SHARDS: 256 MiB shards, at most 64,
// by default; 0 MiB turns fan-out off; out of range or unparseable is
// refused naming the setting.
func TestLoadScanSettings(t *testing.T) {
	for _, tc := range []struct {
		kv       []string
		bytes    int64
		max      int
		errNames string
	}{
		{nil, 256 << 20, 64, ""},
		{[]string{"DSR_SCAN_SHARD_MB", "0"}, 0, 64, ""},
		{[]string{"DSR_SCAN_SHARD_MB", "1", "DSR_SCAN_MAX_SHARDS", "1000"}, 1 << 20, 1000, ""},
		{[]string{"DSR_SCAN_SHARD_MB", "-1"}, 0, 0, "DSR_SCAN_SHARD_MB"},
		{[]string{"DSR_SCAN_SHARD_MB", "65537"}, 0, 0, "DSR_SCAN_SHARD_MB"},
		{[]string{"DSR_SCAN_SHARD_MB", "1GB"}, 0, 0, "DSR_SCAN_SHARD_MB"},
		{[]string{"DSR_SCAN_MAX_SHARDS", "0"}, 0, 0, "DSR_SCAN_MAX_SHARDS"},
		{[]string{"DSR_SCAN_MAX_SHARDS", "1001"}, 0, 0, "DSR_SCAN_MAX_SHARDS"},
	} {
		c, err := Load(env(append([]string{"AzureWebJobsStorage", devStorage}, tc.kv...)...))
		switch {
		case tc.errNames != "":
			if err == nil || !strings.Contains(err.Error(), tc.errNames) {
				t.Errorf("%v: Load = %v, want an error naming %s", tc.kv, err, tc.errNames)
			}
		case err != nil:
			t.Errorf("%v: %v", tc.kv, err)
		case c.ScanShardBytes != tc.bytes || c.ScanMaxShards != tc.max:
			t.Errorf("%v: shard bytes %d max %d, want %d %d", tc.kv, c.ScanShardBytes, c.ScanMaxShards, tc.bytes, tc.max)
		}
	}
}

func TestLoadPublicURL(t *testing.T) {
	for host, want := range map[string]string{
		"":                            "",
		"dsr-prod.azurewebsites.net":  "https://dsr-prod.azurewebsites.net",
		"127.0.0.1:7071":              "http://127.0.0.1:7071",
		"localhost:7071":              "http://localhost:7071",
		"localhost.evil.example:7071": "https://localhost.evil.example:7071",
	} {
		c, err := Load(env("AzureWebJobsStorage", devStorage, "WEBSITE_HOSTNAME", host))
		if err != nil {
			t.Fatal(err)
		}
		if c.PublicURL != want {
			t.Errorf("WEBSITE_HOSTNAME %q: PublicURL %q, want %q", host, c.PublicURL, want)
		}
	}
}

// A Key Vault reference the platform could not resolve arrives as its own
// text: it passes a length check, so it is refused by name, never echoed.
func TestLoadRefusesUnresolvedKeyVaultReferences(t *testing.T) {
	const ref = "@Microsoft.KeyVault(SecretUri=https://kv-dsr.vault.azure.net/secrets/dsr-pseudonym-secret/)"
	for _, name := range []string{"DSR_PSEUDONYM_SECRET", "DSR_KEY_ROLES", "AzureWebJobsStorage"} {
		e := map[string]string{"AzureWebJobsStorage": devStorage, name: "  " + ref}
		_, err := Load(func(k string) string { return e[k] })
		if err == nil || !strings.Contains(err.Error(), name+": holds an unresolved Key Vault reference") {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if strings.Contains(err.Error(), "vault.azure.net") || strings.Contains(err.Error(), "SecretUri") {
			t.Errorf("%s: the error repeats the value: %v", name, err)
		}
	}
	// A resolved secret (any other text) is fine.
	if _, err := Load(env("AzureWebJobsStorage", devStorage, "DSR_PSEUDONYM_SECRET", "resolved-secret-value-0123")); err != nil {
		t.Fatal(err)
	}
}

func TestLoadVerification(t *testing.T) {
	c, err := Load(env("AzureWebJobsStorage", devStorage))
	if err != nil {
		t.Fatal(err)
	}
	if !c.VerifyRequired("portal", "erasure") || c.VerifyRequired("http", "erasure") || c.VerifyCodeTTL != 30*time.Minute ||
		c.VerifyExpireAfter != 168*time.Hour || c.VerifyDeadline != "receipt" || len(c.PortalTypes) != 4 {
		t.Errorf("defaults: %+v", c)
	}
	c, err = Load(env("AzureWebJobsStorage", devStorage, "DSR_VERIFY", "portal:*, http:erasure", "DSR_EMAIL_ACS_ENDPOINT", "https://contoso.communication.azure.com",
		"DSR_EMAIL_SENDER", "DoNotReply@contoso.example", "DSR_VERIFY_DEADLINE", "verification"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.VerifyRequired("http", "erasure") || c.VerifyRequired("queue", "erasure") || c.EmailSender != "DoNotReply@contoso.example" {
		t.Errorf("rules: %+v", c.Verify)
	}
	if c, err := Load(env("AzureWebJobsStorage", devStorage, "DSR_VERIFY", "none", "DSR_PORTAL_TYPES", "none")); err != nil || len(c.Verify) != 0 || len(c.PortalTypes) != 0 {
		t.Errorf("none: %v %+v", err, c)
	}
	for name, tc := range map[string]struct{ kv []string }{
		"DSR_VERIFY":                 {[]string{"DSR_VERIFY", "portal"}},
		"DSR_VERIFY ":                {[]string{"DSR_VERIFY", "web:*"}},
		"DSR_VERIFY  ":               {[]string{"DSR_VERIFY", "portal:delete"}},
		"DSR_PORTAL_TYPES":           {[]string{"DSR_VERIFY", "portal:access"}},
		"DSR_PORTAL_TYPES ":          {[]string{"DSR_PORTAL_TYPES", "access,everything"}},
		"DSR_VERIFY_CODE_TTL":        {[]string{"DSR_VERIFY_CODE_TTL", "1m"}},
		"DSR_VERIFY_EXPIRE_AFTER":    {[]string{"DSR_VERIFY_EXPIRE_AFTER", "90d"}},
		"DSR_VERIFY_DEADLINE":        {[]string{"DSR_VERIFY_DEADLINE", "never"}},
		"DSR_EMAIL_ACS_ENDPOINT":     {[]string{"DSR_EMAIL_ACS_ENDPOINT", "http://contoso.communication.azure.com", "DSR_EMAIL_SENDER", "a@b.example"}},
		"DSR_EMAIL_SENDER":           {[]string{"DSR_EMAIL_ACS_ENDPOINT", "https://contoso.communication.azure.com", "DSR_EMAIL_SENDER", "Contoso <a@b.example>"}},
		"DSR_EMAIL_OUTBOX_CONTAINER": {[]string{"DSR_EMAIL_OUTBOX_CONTAINER", "Out_Box"}},
		"DSR_EMAIL_ACS_ENDPOINT and": {[]string{"DSR_EMAIL_ACS_ENDPOINT", "https://contoso.communication.azure.com", "DSR_EMAIL_SENDER", "a@b.example", "DSR_EMAIL_OUTBOX_CONTAINER", "outbox"}},
	} {
		_, err := Load(env(append([]string{"AzureWebJobsStorage", devStorage}, tc.kv...)...))
		if err == nil || !strings.HasPrefix(err.Error(), strings.TrimSpace(name)) {
			t.Errorf("%v: %v, want an error naming %s", tc.kv, err, strings.TrimSpace(name))
		}
	}
}
