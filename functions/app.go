// Package functions holds one folder per Azure Function: its function.json
// (the single source of truth for routes and queue names) beside its Go
// code. This file embeds the definitions and wires the implementations.
package functions

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	consolefn "github.com/dsr-functions/dsr/functions/console"
	discover "github.com/dsr-functions/dsr/functions/discover"
	discoverdeadletter "github.com/dsr-functions/dsr/functions/discover-deadletter"
	erase "github.com/dsr-functions/dsr/functions/erase"
	erasedeadletter "github.com/dsr-functions/dsr/functions/erase-deadletter"
	erasuresreplay "github.com/dsr-functions/dsr/functions/erasures-replay"
	export "github.com/dsr-functions/dsr/functions/export"
	exportdeadletter "github.com/dsr-functions/dsr/functions/export-deadletter"
	exportlink "github.com/dsr-functions/dsr/functions/export-link"
	health "github.com/dsr-functions/dsr/functions/health"
	intake "github.com/dsr-functions/dsr/functions/intake"
	openapi "github.com/dsr-functions/dsr/functions/openapi"
	portalfn "github.com/dsr-functions/dsr/functions/portal"
	requestsapprove "github.com/dsr-functions/dsr/functions/requests-approve"
	requestsaudit "github.com/dsr-functions/dsr/functions/requests-audit"
	requestscancel "github.com/dsr-functions/dsr/functions/requests-cancel"
	requestscreate "github.com/dsr-functions/dsr/functions/requests-create"
	requestsextend "github.com/dsr-functions/dsr/functions/requests-extend"
	requestsget "github.com/dsr-functions/dsr/functions/requests-get"
	requestsletter "github.com/dsr-functions/dsr/functions/requests-letter"
	requestslist "github.com/dsr-functions/dsr/functions/requests-list"
	requestsproof "github.com/dsr-functions/dsr/functions/requests-proof"
	requestsredrive "github.com/dsr-functions/dsr/functions/requests-redrive"
	requestsreject "github.com/dsr-functions/dsr/functions/requests-reject"
	restrictionsget "github.com/dsr-functions/dsr/functions/restrictions-get"
	"github.com/dsr-functions/dsr/functions/scan"
	sweeper "github.com/dsr-functions/dsr/functions/sweeper"
	transmitkey "github.com/dsr-functions/dsr/functions/transmit-key"
	verify "github.com/dsr-functions/dsr/functions/verify"
	verifydeadletter "github.com/dsr-functions/dsr/functions/verify-deadletter"
	webhookcallback "github.com/dsr-functions/dsr/functions/webhook-callback"
	"github.com/dsr-functions/dsr/shared/audit"
	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/blobs"
	"github.com/dsr-functions/dsr/shared/config"
	"github.com/dsr-functions/dsr/shared/console"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/notify"
	"github.com/dsr-functions/dsr/shared/notify/acs"
	"github.com/dsr-functions/dsr/shared/notify/outbox"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/portal"
	"github.com/dsr-functions/dsr/shared/queue"
	"github.com/dsr-functions/dsr/shared/queue/servicebus"
	"github.com/dsr-functions/dsr/shared/ratelimit"
	"github.com/dsr-functions/dsr/shared/recipients"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/blobdataset"
	"github.com/dsr-functions/dsr/shared/sources/open"
	"github.com/dsr-functions/dsr/shared/sources/webhook"
	"github.com/dsr-functions/dsr/shared/store"
	"github.com/dsr-functions/dsr/shared/tombstone"
	"github.com/dsr-functions/dsr/shared/transmit"
)

//go:embed */function.json
var definitions embed.FS

// Definitions returns the app's functions as their function.json files say.
func Definitions() ([]funchost.Function, error) { return funchost.LoadFunctions(definitions) }

// Policies says, for every HTTP function, which roles may call it. It is the
// one place where access is decided; README's role matrix mirrors it.
var Policies = map[string]auth.Policy{
	"requests-create":  {Any: []auth.Role{auth.RoleSubmit}},
	"requests-get":     {Any: []auth.Role{auth.RoleRead}, Own: auth.RoleSubmit},
	"requests-list":    {Any: []auth.Role{auth.RoleRead}, Own: auth.RoleSubmit},
	"requests-audit":   {Any: []auth.Role{auth.RoleRead}},
	"requests-proof":   {Any: []auth.Role{auth.RoleRead, auth.RoleApprove}},
	"requests-letter":  {Any: []auth.Role{auth.RoleRead}, Own: auth.RoleSubmit},
	"requests-cancel":  {Any: []auth.Role{auth.RoleApprove}},
	"requests-extend":  {Any: []auth.Role{auth.RoleApprove}},
	"requests-approve": {Any: []auth.Role{auth.RoleApprove}},
	"requests-reject":  {Any: []auth.Role{auth.RoleApprove}},
	"requests-redrive": {Any: []auth.Role{auth.RoleApprove}},
	"restrictions-get": {Any: []auth.Role{auth.RoleRead}},
	"export-link":      {Any: []auth.Role{auth.RoleExport}},
	"erasures-replay":  {Any: []auth.Role{auth.RoleAdmin}},
	"health":           {Anonymous: true},
	// A public key, for controllers that receive portability packages.
	"transmit-key": {Anonymous: true},
	// The public request portal: people without an account; every
	// request it takes waits for a code sent to the address given.
	"portal": {Anonymous: true},
	// The console signs people in itself and acts through the functions
	// above, in process, under their policies.
	"console": {Browser: true},
	// The API contract describes routes and shapes, never data.
	"openapi": {Anonymous: true},
	// Webhook systems authenticate each delivery with their signature.
	"webhook-callback": {Anonymous: true},
}

// Serves says which methods each HTTP function implements. Its
// function.json declares every other method of the HTTP set on its route
// too (unless another function there serves it), so that the host
// forwards a wrong method and the handler answers 405 with Allow instead
// of the host's bare 404 (TestEveryRouteAnswersEveryMethod).
var Serves = map[string][]string{
	"console":          {"GET", "POST"},
	"erasures-replay":  {"POST"},
	"export-link":      {"POST"},
	"health":           {"GET"},
	"openapi":          {"GET"},
	"portal":           {"GET", "POST"},
	"requests-approve": {"POST"},
	"requests-audit":   {"GET"},
	"requests-cancel":  {"POST"},
	"requests-create":  {"POST"},
	"requests-extend":  {"POST"},
	"requests-get":     {"GET"},
	"requests-letter":  {"GET"},
	"requests-list":    {"GET"},
	"requests-proof":   {"GET"},
	"requests-redrive": {"POST"},
	"requests-reject":  {"POST"},
	"restrictions-get": {"GET"},
	"transmit-key":     {"GET"},
	"webhook-callback": {"POST"},
}

// Registry maps every function name to its implementation, HTTP functions
// behind their access policy, except the console, which is built over the
// others (newConsole). callbacks are the asynchronous webhook systems'
// endpoints by name.
func Registry(svc *pipeline.Service, authn *auth.Authenticator, callbacks map[string]http.Handler, prt *portal.Portal, limits sweeper.Windows, shards scan.Runner, indexes func(context.Context) (int, error)) funchost.Registry {
	guard := func(name string, h http.Handler) http.Handler {
		return auth.Guard(authn, Policies[name], h, svc.Log)
	}
	var scans sweeper.Windows
	if shards != nil {
		scans = sweeper.SweepFunc(shards.SweepScans)
	}
	return funchost.Registry{
		HTTP: map[string]http.Handler{
			"requests-create":  guard("requests-create", requestscreate.New(svc)),
			"requests-get":     guard("requests-get", requestsget.New(svc)),
			"requests-list":    guard("requests-list", requestslist.New(svc)),
			"requests-audit":   guard("requests-audit", requestsaudit.New(svc)),
			"requests-proof":   guard("requests-proof", requestsproof.New(svc)),
			"requests-letter":  guard("requests-letter", requestsletter.New(svc)),
			"requests-cancel":  guard("requests-cancel", requestscancel.New(svc)),
			"requests-extend":  guard("requests-extend", requestsextend.New(svc)),
			"requests-approve": guard("requests-approve", requestsapprove.New(svc)),
			"requests-reject":  guard("requests-reject", requestsreject.New(svc)),
			"requests-redrive": guard("requests-redrive", requestsredrive.New(svc)),
			"restrictions-get": guard("restrictions-get", restrictionsget.New(svc)),
			"export-link":      guard("export-link", exportlink.New(svc)),
			"erasures-replay":  guard("erasures-replay", erasuresreplay.New(svc)),
			"health":           guard("health", health.New(svc)),
			"transmit-key":     guard("transmit-key", transmitkey.New(transmitKey(svc))),
			"portal":           guard("portal", portalfn.New(prt)),
			"openapi":          guard("openapi", openapi.New()),
			"webhook-callback": guard("webhook-callback", webhookcallback.New(callbacks)),
		},
		Queue: map[string]funchost.QueueFunc{
			"intake":              intake.New(svc),
			"discover":            discover.New(svc),
			"export":              export.New(svc),
			"discover-deadletter": discoverdeadletter.New(svc),
			"export-deadletter":   exportdeadletter.New(svc),
			"erase":               erase.New(svc),
			"verify":              verify.New(svc),
			"erase-deadletter":    erasedeadletter.New(svc),
			"verify-deadletter":   verifydeadletter.New(svc),
			"scan":                scan.New(shards, svc.Log),
		},
		Timer: map[string]funchost.TimerFunc{
			"sweeper": sweeper.New(svc, limits, scans, indexes),
		},
		Serves: Serves,
	}
}

// App is the wired application: its functions, the service behind them and
// the handler that serves them.
type App struct {
	Functions []funchost.Function
	Service   *pipeline.Service
	Account   *blobs.Account
	Handler   http.Handler
	// Console is the privacy team's console (LoginURL mints local logins).
	Console *console.Console
	// Close releases the data sources' connections.
	Close func()
}

// Options change how the application reaches data sources; the zero value
// is production's.
type Options struct {
	// HTTPClient calls Dataverse and webhook systems.
	HTTPClient *http.Client
	// Credential replaces the app's Microsoft Entra credential for data
	// sources (tests use a fixed-token credential).
	Credential azcore.TokenCredential
}

// New wires the application from settings and a queue sender.
func New(cfg *config.Config, sender queue.Sender, log *slog.Logger) (*App, error) {
	return NewWithOptions(cfg, sender, log, Options{})
}

// NewWithOptions is New with Options.
func NewWithOptions(cfg *config.Config, sender queue.Sender, log *slog.Logger, opts Options) (*App, error) {
	fns, err := Definitions()
	if err != nil {
		return nil, err
	}
	acct, err := blobs.Open(cfg.Storage, nil)
	if err != nil {
		return nil, err
	}
	src, err := sources.LoadFile(cfg.SourcesConfig)
	if err != nil {
		return nil, err
	}
	if err := checkPolicies(fns); err != nil {
		return nil, err
	}
	keyRoles, err := auth.ParseRoles(cfg.KeyRoles)
	if err != nil {
		return nil, fmt.Errorf("DSR_KEY_ROLES: %w", err)
	}
	authn := &auth.Authenticator{Mode: auth.Mode(cfg.AuthMode), KeyRoles: keyRoles, AllowTestRoles: cfg.AllowTestRoles}
	q := pipeline.Queues{
		Intake:         funchost.QueueOf(fns, "intake"),
		Discover:       funchost.QueueOf(fns, "discover"),
		Export:         funchost.QueueOf(fns, "export"),
		Erase:          funchost.QueueOf(fns, "erase"),
		Verify:         funchost.QueueOf(fns, "verify"),
		IntakeRejected: cfg.IntakeRejectedQueue,
	}
	if q.Discover == "" || q.Export == "" || q.Erase == "" || q.Verify == "" {
		return nil, fmt.Errorf("function.json: the discover, export, erase and verify functions must be Service Bus triggered")
	}
	approval := map[dsr.Type]bool{}
	for _, t := range strings.Split(cfg.ApprovalTypes, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if !dsr.Type(t).Known() {
			return nil, fmt.Errorf("DSR_APPROVAL_TYPES: unknown request type %q", t)
		}
		approval[dsr.Type(t)] = true
	}
	credential := func() (azcore.TokenCredential, error) { return blobs.Credential(cfg.Storage) }
	if opts.Credential != nil {
		credential = func() (azcore.TokenCredential, error) { return opts.Credential, nil }
	}
	stateContainer := acct.Service.NewContainerClient(cfg.StateContainer)
	// The service is made after the connectors; the fan-out wakes its
	// requests through it.
	var svc *pipeline.Service
	var blobOpts []blobdataset.Option
	scanQueue := funchost.QueueOf(fns, "scan")
	// An index build is asked for on dsr-scan. The timer's asks and a
	// discovery's name the blob version they found unindexed in the
	// message id: one build per version, however often it is asked for
	// (the timer's next run, 5 minutes on, is dropped as a duplicate while
	// the first may still wait), never dropped as a duplicate of an ask
	// for an earlier version (without a version: one ask per blob and 10
	// minutes). A rewrite's is always new: the blob changed after any
	// earlier ask.
	askIndexAs := func(ctx context.Context, m blobdataset.IndexMessage, rewrite bool, version string) error {
		body, _ := json.Marshal(m)
		sum := sha256.Sum256([]byte(m.Dataset + "\x00" + m.Blob))
		id := fmt.Sprintf("index:%x:%d", sum[:12], time.Now().Unix()/600)
		switch {
		case rewrite:
			id = fmt.Sprintf("index:%x:rewrite:%d", sum[:12], time.Now().UnixNano())
		case version != "":
			v := sha256.Sum256([]byte(version))
			id = fmt.Sprintf("index:%x:version:%x", sum[:12], v[:8])
		}
		return sender.Send(ctx, scanQueue, queue.Message{ID: id, Body: body, Subject: "index"})
	}
	askIndex := func(ctx context.Context, m blobdataset.IndexMessage, version string) error {
		return askIndexAs(ctx, m, false, version)
	}
	if scanQueue != "" && len(cfg.PseudonymSecret) > 0 {
		blobOpts = append(blobOpts, blobdataset.WithIndex(blobdataset.IndexOptions{
			Container: stateContainer,
			Secret:    derive(cfg.PseudonymSecret, "blob-index"),
			Logger:    log,
			Rebuild: func(ctx context.Context, dataset, blob string) {
				if err := askIndexAs(ctx, blobdataset.IndexMessage{Dataset: dataset, Blob: blob}, true, ""); err != nil {
					log.Warn("an index rebuild could not be asked for; the timer asks again", "dataset", dataset, "err", err)
				}
			},
			// A discovery that scanned a blob because its index is
			// missing or stale asks for the build now (on demand): the
			// next request uses it.
			Stale: func(ctx context.Context, dataset, blob, etag string) {
				if err := askIndex(ctx, blobdataset.IndexMessage{Dataset: dataset, Blob: blob}, etag); err != nil {
					log.Warn("an index build could not be asked for; the timer asks again", "dataset", dataset, "err", err)
				}
			},
		}))
	}
	if scanQueue != "" && cfg.ScanShardBytes > 0 {
		blobOpts = append(blobOpts, blobdataset.WithFanout(blobdataset.Fanout{
			Container:  stateContainer,
			Secret:     derive(cfg.PseudonymSecret, "scan-subjects"),
			ShardBytes: cfg.ScanShardBytes,
			MaxShards:  cfg.ScanMaxShards,
			Send: func(ctx context.Context, id string, body []byte) error {
				return sender.Send(ctx, scanQueue, queue.Message{ID: id, Body: body, Subject: "scan"})
			},
			Completed: func(ctx context.Context, ids []string) {
				for _, id := range ids {
					if err := svc.Redrive(ctx, id); err != nil {
						svc.Log.Warn("a fanned-out scan completed but a waiting request could not be woken; it looks again later", "requestId", id, "err", err)
					}
				}
			},
		}))
	}
	conns, err := open.Connectors(context.Background(), src, open.Deps{
		Blob:       acct.Service,
		Getenv:     os.Getenv,
		Credential: credential,
		HTTPClient: opts.HTTPClient,
		PublicURL:  cfg.PublicURL,
		WebhookStore: func(name string) webhook.ResultStore {
			return webhook.NewBlobStore(stateContainer, "webhooks/"+name+"/")
		},
		BlobOptions: blobOpts,
	})
	if err != nil {
		return nil, err
	}
	svc = &pipeline.Service{
		Store:           store.New(acct.Service.NewContainerClient(cfg.StateContainer)).WithPageTokenKey(derive(cfg.PseudonymSecret, "page-tokens")),
		Audit:           audit.New(acct, cfg.AuditContainer),
		Sender:          sender,
		Connector:       conns,
		Sources:         src,
		Packages:        &blobs.Packages{Account: acct, Container: cfg.ExportsContainer},
		Proofs:          &blobs.Proofs{Account: acct, Container: cfg.ProofContainer},
		ProofRetention:  cfg.ProofRetention,
		LinkTTL:         cfg.ExportLinkTTL,
		PhoneRegion:     cfg.PhoneRegion,
		Secret:          []byte(cfg.PseudonymSecret),
		Tombstones:      tombstone.New(acct.Service.NewContainerClient(cfg.StateContainer), []byte(cfg.PseudonymSecret)),
		ApprovalTypes:   approval,
		RepeatWindow:    cfg.RepeatWindow,
		Queues:          q,
		Log:             log,
		SweepStuckAfter: cfg.SweepStuckAfter,
		StageBackoff:    pipeline.Backoff{Base: cfg.StageRetryDelay, Max: cfg.StageRetryMaxDelay},
		StageRetries:    cfg.StageRetries,
		Cleanup:         conns.Cleanup,
		// A small export runs in the discovering invocation (chain.go).
		ChainExportRecords: pipeline.DefaultChainExportRecords,
	}
	if p, ok := sender.(pipeline.QueuePeeker); ok {
		// The embedded queue shows what waits; Service Bus is not asked
		// (its messages may go to another instance).
		svc.Lookahead = &pipeline.Lookahead{Peeker: p}
	}
	callbacks := map[string]http.Handler{}
	for name, wh := range conns.Webhooks {
		callbacks[name] = wh.CallbackHandler(webhook.CallbackOptions{OnComplete: svc.Redrive})
	}
	limits := ratelimit.New(stateContainer, derive(cfg.PseudonymSecret, "rate-limits"), svc.NowUTC)
	prt, err := identity(context.Background(), cfg, acct, svc, limits, credential)
	if err != nil {
		conns.Close()
		return nil, err
	}
	if cfg.PseudonymSecret != "" {
		key, err := transmit.SigningKey(cfg.PseudonymSecret)
		if err != nil {
			conns.Close()
			return nil, err
		}
		svc.Transmitter = &transmit.Client{Key: key, AllowHosts: cfg.TransmitAllowHosts}
	}
	// Recipients are told by webhook or by the same email sender.
	// Service Bus recipients are reached with their connection string, or
	// with the app's identity on their namespace.
	notifier := &recipients.Notifier{Getenv: os.Getenv, HTTP: opts.HTTPClient, Mail: svc.Identity.Mailer,
		Bus: func(conn config.Connection) (recipients.BusSender, error) {
			var cred azcore.TokenCredential
			if conn.ConnectionString == "" {
				var err error
				if cred, err = credential(); err != nil {
					return nil, err
				}
			}
			return servicebus.New(conn, cred)
		}}
	svc.Recipients = notifier
	closeAll := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = notifier.Close(ctx)
		conns.Close()
	}
	var shards scan.Runner
	var indexes func(context.Context) (int, error)
	if conns.Blob != nil && len(blobOpts) > 0 {
		shards = conns.Blob
		indexes = func(ctx context.Context) (int, error) { return conns.Blob.RefreshIndexes(ctx, askIndex) }
	}
	reg := Registry(svc, authn, callbacks, prt, limits, shards, indexes)
	con, err := newConsole(fns, reg, authn, svc, cfg)
	if err != nil {
		conns.Close()
		return nil, err
	}
	reg.HTTP["console"] = auth.Guard(authn, Policies["console"], consolefn.New(con), log)
	h, err := funchost.NewHandler(fns, reg, log)
	if err != nil {
		conns.Close()
		return nil, err
	}
	return &App{Functions: fns, Service: svc, Account: acct, Handler: h, Console: con, Close: closeAll}, nil
}

// transmitKey is the key the service signs transmissions with (nil when
// it does not transmit).
func transmitKey(svc *pipeline.Service) ed25519.PrivateKey {
	if c, ok := svc.Transmitter.(*transmit.Client); ok {
		return c.Key
	}
	return nil
}

// checkPolicies makes function.json and Policies agree: every HTTP function
// has a policy, and exactly the anonymous ones are authLevel anonymous.
func checkPolicies(fns []funchost.Function) error {
	for _, f := range fns {
		t := f.Trigger()
		if t.Type != funchost.HTTPTrigger {
			continue
		}
		p, ok := Policies[f.Name]
		if !ok {
			return fmt.Errorf("function %s: no access policy", f.Name)
		}
		if (p.Anonymous || p.Browser) != (t.AuthLevel == "anonymous") {
			return fmt.Errorf("function %s: authLevel %q disagrees with its access policy", f.Name, t.AuthLevel)
		}
		if !p.Anonymous && !p.Browser && len(p.Any) == 0 && p.Own == "" {
			return fmt.Errorf("function %s: its policy admits nobody", f.Name)
		}
	}
	return nil
}

// newConsole builds the console over the app's other HTTP functions,
// routed as the host routes them, so that it calls them in process exactly
// as an API caller would.
func newConsole(fns []funchost.Function, reg funchost.Registry, authn *auth.Authenticator, svc *pipeline.Service, cfg *config.Config) (*console.Console, error) {
	api := http.NewServeMux()
	for _, f := range fns {
		h, ok := reg.HTTP[f.Name]
		if !ok || Policies[f.Name].Browser {
			continue
		}
		for p := range f.ServedPatterns(Serves[f.Name]) {
			api.Handle(p, h)
		}
	}
	var key []byte
	if cfg.PseudonymSecret != "" {
		// Every instance derives the same CSRF key from the shared secret.
		sum := sha256.Sum256([]byte("dsr-console-csrf\x00" + cfg.PseudonymSecret))
		key = sum[:]
	}
	return console.New(console.Config{API: api, Authn: authn, Sources: svc.Sources, Key: key, Now: svc.NowUTC, Log: svc.Log})
}

// derive is a key for one purpose, from the app's secret (nil without it).
func derive(secret, purpose string) []byte {
	if secret == "" {
		return nil
	}
	sum := sha256.Sum256([]byte("dsr-" + purpose + "\x00" + secret))
	return sum[:]
}

// identity wires identity verification: the email sender (ACS in Azure,
// the outbox container locally), the verification settings, and the
// portal, where people submit requests and enter their codes. The portal
// exists whenever some request may wait for a code; its form offers
// DSR_PORTAL_TYPES.
func identity(ctx context.Context, cfg *config.Config, acct *blobs.Account, svc *pipeline.Service, limits *ratelimit.Limiter,
	credential func() (azcore.TokenCredential, error)) (*portal.Portal, error) {
	var mailer notify.Sender
	switch {
	case cfg.OutboxContainer != "":
		ob, err := outbox.OpenAccount(ctx, acct, cfg.OutboxContainer)
		if err != nil {
			return nil, fmt.Errorf("DSR_EMAIL_OUTBOX_CONTAINER: %w", err)
		}
		mailer = ob
	case cfg.EmailEndpoint != "":
		cred, err := credential()
		if err != nil {
			return nil, fmt.Errorf("DSR_EMAIL_ACS_ENDPOINT: credential: %w", err)
		}
		s, err := acs.New(acs.Config{Endpoint: cfg.EmailEndpoint, Sender: cfg.EmailSender, Credential: cred})
		if err != nil {
			return nil, fmt.Errorf("DSR_EMAIL_ACS_ENDPOINT: %w", err)
		}
		mailer = s
	}
	svc.Identity = &pipeline.Verification{
		Required:                 func(origin string, t dsr.Type) bool { return cfg.VerifyRequired(origin, string(t)) },
		Mailer:                   mailer,
		CodeTTL:                  cfg.VerifyCodeTTL,
		ExpireAfter:              cfg.VerifyExpireAfter,
		DeadlineFromVerification: cfg.VerifyDeadline == "verification",
	}
	if len(cfg.Verify) == 0 || cfg.PseudonymSecret == "" {
		return nil, nil
	}
	var types []dsr.Type
	for _, t := range cfg.PortalTypes {
		types = append(types, dsr.Type(t))
	}
	prt, err := portal.New(portal.Config{Service: svc, Limiter: limits, Secret: derive(cfg.PseudonymSecret, "portal-tickets"), Types: types, Log: svc.Log})
	if err != nil {
		return nil, err
	}
	svc.Identity.Compose = prt.ComposeCode(cfg.PublicURL)
	svc.Identity.ComposeDelivery = prt.ComposeDelivery(cfg.PublicURL)
	return prt, nil
}
