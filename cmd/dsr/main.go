// Command dsr is the DSR Functions binary: the Azure Functions custom
// handler (serve), the same handler with a built-in local host and embedded
// queue (local), the sample data generator (sample), and a command line for
// the API (requests, export) and the local queue (send).
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/dsr-functions/dsr/functions"
	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/blobs"
	"github.com/dsr-functions/dsr/shared/config"
	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/queue/embedded"
	"github.com/dsr-functions/dsr/shared/queue/servicebus"
	"github.com/dsr-functions/dsr/shared/sample"
)

const usage = `usage: dsr <command> [flags]

commands:
  serve     run as the Azure Functions custom handler (listens on FUNCTIONS_CUSTOMHANDLER_PORT)
  local     run locally: handler + built-in Functions host + embedded queue (port 7071)
  sample    generate the sample datasets to a folder or into Blob Storage

  requests  create|get|list|wait|approve|reject|extend|cancel|audit: call the API
  export    download|link: save an access package, checked against its sha256
  send      put a message on dsr local's embedded queue (e.g. dsr-intake)
  mail      show the emails dsr local kept in its outbox (verification codes, ...)

The API commands read DSR_URL (default http://127.0.0.1:7071), DSR_FUNCTION_KEY and
DSR_ENTRA_SCOPE, or the flags --url, --key, --entra-scope; see docs/cli.md.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(ctx, log)
	case "local":
		err = local(ctx, log, os.Args[2:])
	case "sample":
		err = sampleCmd(ctx, os.Args[2:])
	case "requests":
		err = runCLI(ctx, osEnv(), requestsCmd, os.Args[2:])
	case "export":
		err = runCLI(ctx, osEnv(), exportCmd, os.Args[2:])
	case "send":
		err = runCLI(ctx, osEnv(), sendCmd, os.Args[2:])
	case "mail":
		err = mailCmd(ctx, os.Args[2:], os.Stdout)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "dsr: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "dsr %s: %v\n", os.Args[1], err)
		os.Exit(exitCode(err))
	}
}

// serve is what the Functions host starts in Azure.
func serve(ctx context.Context, log *slog.Logger) error {
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	var sbCred azcore.TokenCredential
	if cfg.ServiceBus.ConnectionString == "" {
		if sbCred, err = blobs.Credential(cfg.ServiceBus); err != nil {
			return err
		}
	}
	sender, err := servicebus.New(cfg.ServiceBus, sbCred)
	if err != nil {
		return err
	}
	defer sender.Close(context.Background())
	app, err := functions.New(cfg, sender, log)
	if err != nil {
		return err
	}
	defer app.Close()
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.HandlerPort)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("custom handler listening", "addr", ln.Addr().String(), "functions", len(app.Functions))
	return serveUntil(ctx, ln, app.Handler)
}

func serveUntil(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 1 << 20} // the host refuses more than funchost.MaxHeaderBytes itself, as problem+json
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return ctx.Err()
}

// local runs everything on one machine: Azurite for Blob Storage, the
// embedded queue for Service Bus, the built-in host for the Functions host.
func local(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	port := fs.Int("port", 7071, "port of the local Functions host (bound to 127.0.0.1)")
	seed := fs.String("sample", "", "seed the sample datasets of this size first (tiny, small, medium, ... or a contact count)")
	queueDir := fs.String("queue-dir", localQueueDir, `where the embedded queue keeps its journal, so a restart resumes in-flight requests ("" keeps it in memory only)`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	getenv := func(k string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		switch k {
		case "AzureWebJobsStorage":
			return "UseDevelopmentStorage=true"
		case "DSR_SOURCES_CONFIG":
			return "sample/sources.json"
		case "DSR_PSEUDONYM_SECRET":
			// Local only: a fixed, public development secret.
			return "dsr-local-development-secret-not-for-production"
		case "DSR_KEY_ROLES":
			// The holder of the local function key is the developer.
			return "DSR.Admin"
		case "WEBSITE_HOSTNAME":
			// Where asynchronous webhook systems post their answers, and
			// what the links in emails point to.
			return "127.0.0.1:" + strconv.Itoa(*port)
		case "DSR_EMAIL_OUTBOX_CONTAINER":
			// No email leaves a laptop: each message is a JSON blob in
			// the outbox container (see the README).
			if os.Getenv("DSR_EMAIL_ACS_ENDPOINT") == "" {
				return "outbox"
			}
		}
		return ""
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	broker, err := embedded.Open(embedded.Options{Dir: *queueDir})
	if err != nil {
		return fmt.Errorf("%w (or start afresh: remove %s)", err, *queueDir)
	}
	defer broker.Close()
	if n := broker.Restored(); n > 0 {
		log.Info("embedded queue restored: in-flight messages resume", "messages", n, "dir", *queueDir)
	}
	app, err := functions.New(cfg, broker, log)
	if err != nil {
		return err
	}
	defer app.Close()
	if err := app.Account.EnsureContainers(ctx, cfg.StateContainer, cfg.ExportsContainer, cfg.AuditContainer, cfg.ProofContainer); err != nil {
		return fmt.Errorf("%w (is Azurite running? `make run` starts it)", err)
	}
	if *seed != "" {
		size, err := sample.ParseSize(*seed)
		if err != nil {
			return err
		}
		n, err := sample.Upload(ctx, app.Account.Service, size, 1)
		if err != nil {
			return err
		}
		log.Info("sample data ready", "size", size.Name, "contacts", size.Contacts, "uploaded", n)
	}
	handlerLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// The handler's port is on 127.0.0.1 like the host's: a per-run token
	// the host sends keeps other local processes from skipping the key.
	hostToken, err := randomToken()
	if err != nil {
		return err
	}
	go func() { _ = serveUntil(ctx, handlerLn, funchost.RequireHostToken(app.Handler, hostToken)) }()
	hostLn, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		return fmt.Errorf("listen on port %d: %w", *port, err)
	}
	key, err := localFunctionKey()
	if err != nil {
		return err
	}
	// As concurrent as the Functions host is per instance in Azure.
	hs, err := funchost.ReadHostSettings(filepath.Join(cfg.AppRoot, "host.json"))
	if err != nil {
		return err
	}
	host := &funchost.LocalHost{
		Concurrency:    hs.MaxConcurrentCalls,
		MaxLockRenewal: hs.MaxAutoLockRenewal,
		FunctionKey:    key,
		Functions:      enabledFunctions(app.Functions, os.Getenv, log),
		HandlerURL:     &url.URL{Scheme: "http", Host: handlerLn.Addr().String()},
		Broker:         broker,
		Log:            log,
		HostToken:      hostToken,
		BeforeComplete: crashAfter(os.Getenv("DSR_LOCAL_CRASH_AFTER"), log),
	}
	go host.Run(ctx)
	// A first sweep now rather than at the timer's first tick (up to five
	// minutes on): it re-drives what a crash left and asks for the
	// identifier indexes that are missing.
	for _, f := range host.Functions {
		if f.Name == "sweeper" {
			go func() {
				now := time.Now().UTC()
				if err := host.InvokeTimer(ctx, f, time.Time{}, now.Add(5*time.Minute)); err != nil && ctx.Err() == nil {
					log.Warn("first sweep failed; the timer sweeps again", "err", err)
				}
			}()
		}
	}
	fmt.Fprintf(os.Stderr, "DSR Functions running locally: http://%s/api (Ctrl-C to stop)\n", hostLn.Addr())
	consoleURL, err := localConsoleURL(app, "http://"+hostLn.Addr().String(), cfg.KeyRoles)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Console: %s\n  (a one-time login link, also in %s)\n", consoleURL, localConsoleFile)
	if len(cfg.PortalTypes) > 0 {
		fmt.Fprintf(os.Stderr, "Request portal: http://%s/api/portal/ (codes and other emails go to the %q container)\n", hostLn.Addr(), cfg.OutboxContainer)
	}
	return serveUntil(ctx, hostLn, host)
}

// localQueueDir is where `dsr local` keeps the embedded queue's journal
// by default, next to its other local state.
const localQueueDir = ".local/queue"

// enabledFunctions leaves out the functions disabled with the Functions
// host's app setting AzureWebJobs.<name>.Disabled=true (or, as shells
// cannot export names with dots, AzureWebJobs_<name>_Disabled), e.g. the
// sweeper while watching what the queue alone recovers.
func enabledFunctions(all []funchost.Function, getenv func(string) string, log *slog.Logger) []funchost.Function {
	out := make([]funchost.Function, 0, len(all))
	for _, f := range all {
		v := getenv("AzureWebJobs." + f.Name + ".Disabled")
		if v == "" {
			v = getenv("AzureWebJobs_" + f.Name + "_Disabled")
		}
		if b, _ := strconv.ParseBool(v); b {
			log.Info("function disabled", "function", f.Name)
			continue
		}
		out = append(out, f)
	}
	return out
}

// crashAfter, for crash tests (DSR_LOCAL_CRASH_AFTER=<function>), kills the
// process as kill -9 would once an invocation of that function has
// succeeded and before its message is completed: the stage's effects are
// done and its message will be delivered again, the worst moment to crash.
func crashAfter(function string, log *slog.Logger) func(string) {
	if function == "" {
		return nil
	}
	return func(name string) {
		if name != function {
			return
		}
		log.Warn("DSR_LOCAL_CRASH_AFTER: killing the process", "function", name)
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			_ = p.Kill()
		}
		select {} // the kill is asynchronous: complete nothing meanwhile
	}
}

// localConsoleFile is where `dsr local` writes the console's login link.
const localConsoleFile = ".local/console-url"

// localConsoleURL mints a one-time console login link for the developer,
// with the roles of the local function key, and writes it (mode 0600) to
// localConsoleFile, as Jupyter does with its token URL. Opening it once
// sets a session cookie; a restart of `dsr local` mints a new one.
func localConsoleURL(app *functions.App, base, keyRoles string) (string, error) {
	roles, err := auth.ParseRoles(keyRoles)
	if err != nil {
		return "", fmt.Errorf("DSR_KEY_ROLES: %w", err)
	}
	link, err := app.Console.LoginURL(base, auth.Principal{Kind: "user", ID: "local-developer", Name: "Local developer", Roles: roles})
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(localConsoleFile), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(localConsoleFile, []byte(link+"\n"), 0o600); err != nil {
		return "", err
	}
	return link, nil
}

// localKeyFile is where `dsr local` keeps a generated function key, so the
// README's walkthrough can read it.
const localKeyFile = ".local/function-key"

// localFunctionKey is DSR_LOCAL_FUNCTION_KEY, or a key generated now,
// printed once and written (mode 0600) to localKeyFile.
func localFunctionKey() (string, error) {
	if k := os.Getenv("DSR_LOCAL_FUNCTION_KEY"); k != "" {
		if len(k) < 16 {
			return "", errors.New("DSR_LOCAL_FUNCTION_KEY: use at least 16 characters")
		}
		return k, nil
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	k := base64.RawURLEncoding.EncodeToString(b[:])
	if err := os.MkdirAll(filepath.Dir(localKeyFile), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(localKeyFile, []byte(k+"\n"), 0o600); err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "Function key for this run (header x-functions-key; also in %s):\n  %s\n", localKeyFile, k)
	return k, nil
}

// sampleCmd writes the sample datasets to a folder, or uploads them.
func sampleCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sample", flag.ContinueOnError)
	sizeFlag := fs.String("size", "small", "tiny, small, medium, large, huge, or a number of contacts")
	seed := fs.Uint64("seed", 1, "random seed (the same seed gives the same bytes)")
	out := fs.String("out", "", "write the files under this folder")
	upload := fs.Bool("upload", false, "upload into the storage account of AzureWebJobsStorage")
	format := fs.String("format", "native", "storage format: "+strings.Join(sample.Formats(), ", ")+
		" (native is NDJSON, CSV and a JSON array, as sample/sources.json describes; each other format has its sample/sources.<format>.json)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	size, err := sample.ParseSize(*sizeFlag)
	if err != nil {
		return err
	}
	switch {
	case *upload && (*format == "native" || *format == ""):
		cs := os.Getenv("AzureWebJobsStorage")
		if cs == "" {
			cs = "UseDevelopmentStorage=true"
		}
		acct, err := blobs.OpenConnectionString(cs)
		if err != nil {
			return err
		}
		n, err := sample.Upload(ctx, acct.Service, size, *seed)
		if err != nil {
			return err
		}
		fmt.Printf("uploaded %d datasets (%s, %d contacts) to container %s\n", n, size.Name, size.Contacts, sample.Container)
		return nil
	case *upload:
		cs := os.Getenv("AzureWebJobsStorage")
		if cs == "" {
			cs = "UseDevelopmentStorage=true"
		}
		acct, err := blobs.OpenConnectionString(cs)
		if err != nil {
			return err
		}
		sink := &sample.BlobSink{Service: acct.Service, Stamp: fmt.Sprintf("%s/%s/%d/%d", *format, size.Name, size.Contacts, *seed)}
		if err := sample.WriteFormat(ctx, *format, sink, size, *seed); err != nil {
			return err
		}
		fmt.Printf("uploaded %d blobs (%s format, %s, %d contacts)\n", sink.Written, *format, size.Name, size.Contacts)
		return nil
	case *out != "":
		sink := &sample.FolderSink{Dir: *out}
		err := sample.WriteFormat(ctx, *format, sink, size, *seed)
		for _, p := range sink.Written {
			fmt.Println(p)
		}
		return err
	default:
		return errors.New("sample: give -out DIR or -upload")
	}
}

// randomToken is 32 random bytes, URL-safe.
func randomToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
