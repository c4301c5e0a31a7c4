package main

// The command line for people and scripts: `dsr requests …`, `dsr export …`
// and `dsr send`. They call the HTTP API through shared/client, with the
// same credentials a deployment expects (function key; Entra token in
// Azure), so a script tried against `dsr local` runs unchanged in Azure.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/dsr-functions/dsr/shared/client"
)

// Exit codes of the command line (docs/cli.md lists them).
const (
	exitFailure = 1 // the API refused, a call failed, a download did not match
	exitUsage   = 2 // bad command line
	// exitEnded: `wait` saw the request end in a state other than the one
	// waited for (failed, rejected, cancelled, or completed before --until).
	exitEnded   = 3
	exitTimeout = 4   // `wait` ran out of time
	exitSignal  = 130 // interrupted (Ctrl-C)
)

// exitError carries the process exit code of a failed command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitCode is the process exit code for err (1 unless it says otherwise).
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}

func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// silentUsage is a usage error the flag package has already printed.
var silentUsage = &exitError{code: exitUsage, err: errors.New("see the usage above")}

// cliEnv is what a command reads and writes besides the network, so that
// tests can run commands in-process.
type cliEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// stderrTTY: stderr is a terminal, so progress may redraw one line.
	stderrTTY bool
	// newCredential returns the Entra ID credential of a kind (default,
	// cli); tests replace it.
	newCredential func(kind string) (azcore.TokenCredential, error)
}

func osEnv() *cliEnv {
	return &cliEnv{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv,
		stderrTTY: isTerminal(os.Stderr), newCredential: azureCredential,
	}
}

// isTerminal reports whether f is a character device (a terminal), without
// a dependency for the ioctl.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// azureCredential is the Entra ID credential of a kind: "default" is the
// DefaultAzureCredential chain (environment, workload identity, managed
// identity, then Azure CLI and azd logins), "cli" the Azure CLI's login only
// (quicker on a laptop: no managed identity probe).
func azureCredential(kind string) (azcore.TokenCredential, error) {
	switch kind {
	case "", "default":
		return azidentity.NewDefaultAzureCredential(nil)
	case "cli":
		return azidentity.NewAzureCLICredential(nil)
	}
	return nil, usageError("--credential: %q is not default or cli", kind)
}

// Defaults and settings of the connection.
const (
	defaultURL   = "http://127.0.0.1:7071"
	envURL       = "DSR_URL"
	envKey       = "DSR_FUNCTION_KEY"
	envScope     = "DSR_ENTRA_SCOPE"
	envCredKind  = "DSR_ENTRA_CREDENTIAL"
	envLocalKey  = "DSR_LOCAL_FUNCTION_KEY"
	apiCallLimit = 60 * time.Second
)

// connFlags are the flags every API command takes: where the API is, how to
// authenticate, and the output format.
type connFlags struct {
	url, key, scope, credential string
	json                        bool
}

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "", "base URL of the Function App (env "+envURL+"; default "+defaultURL+", `dsr local`)")
	fs.StringVar(&c.key, "key", "", "function key, sent as x-functions-key (env "+envKey+"; for 127.0.0.1 default "+envLocalKey+" or "+localKeyFile+")")
	fs.StringVar(&c.scope, "entra-scope", "", "get an Entra ID token for this scope, e.g. api://<app client id>/.default (env "+envScope+")")
	fs.StringVar(&c.credential, "credential", "", "where the token comes from: default (managed identity, environment, az/azd login) or cli (az login only) (env "+envCredKind+")")
	fs.BoolVar(&c.json, "json", false, "print the API's JSON as is")
}

// client builds the API client from the flags, then the environment, then
// the defaults of `dsr local`.
func (c *connFlags) client(env *cliEnv) (*client.Client, error) {
	pick := func(flagVal, envName string) string {
		if flagVal != "" {
			return flagVal
		}
		return strings.TrimSpace(env.getenv(envName))
	}
	cfg := client.Config{BaseURL: pick(c.url, envURL), FunctionKey: pick(c.key, envKey), Scope: pick(c.scope, envScope)}
	if cfg.BaseURL == "" {
		cfg.BaseURL = defaultURL
	}
	base, err := client.ParseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, usageError("%v", err)
	}
	if cfg.FunctionKey == "" && client.IsLoopback(base) {
		if cfg.FunctionKey, err = localKey(env); err != nil {
			return nil, err
		}
	}
	if cfg.Scope != "" {
		if cfg.Credential, err = env.newCredential(pick(c.credential, envCredKind)); err != nil {
			return nil, fmt.Errorf("Entra ID credential: %w", err)
		}
	}
	cfg.HTTPClient = newHTTPClient()
	cfg.UserAgent = "dsr-cli"
	return client.New(cfg)
}

// localKey is the key `dsr local` uses: DSR_LOCAL_FUNCTION_KEY when set
// (then dsr local writes no file), else the key it generated and saved in
// .local/function-key under the directory it was started in (the
// repository root with `make run`). None is no error: the call then
// answers 401 with a hint.
func localKey(env *cliEnv) (string, error) {
	if k := strings.TrimSpace(env.getenv(envLocalKey)); k != "" {
		return k, nil
	}
	b, err := os.ReadFile(filepath.FromSlash(localKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the local function key: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// parseArgs parses flags placed before, between or after the positional
// arguments (`dsr requests get ID --json`), which the flag package alone
// does not, and checks the number of positional arguments.
func parseArgs(fs *flag.FlagSet, args []string, minPos, maxPos int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, silentUsage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...) // everything after -- is positional
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) < minPos:
		return nil, usageError("%s: missing argument (see dsr %s -h)", fs.Name(), fs.Name())
	case len(pos) > maxPos:
		return nil, usageError("%s: too many arguments (see dsr %s -h)", fs.Name(), fs.Name())
	}
	return pos, nil
}

// newFlagSet is a flag set that prints its synopsis and flags to stderr.
func newFlagSet(env *cliEnv, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "usage: dsr %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// runCLI runs a command-line command and turns its outcome into an exit
// code: an interrupted command is not a normal stop, as it is for serve.
func runCLI(ctx context.Context, env *cliEnv, fn func(context.Context, *cliEnv, []string) error, args []string) error {
	err := fn(ctx, env, args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		return nil
	case ctx.Err() != nil:
		// Whatever the call in flight reported, the user stopped it.
		return &exitError{code: exitSignal, err: errors.New("interrupted")}
	}
	return err
}

// repeated is a flag that may be given several times, as key=value.
type repeated struct {
	pairs [][2]string
}

func (r *repeated) String() string { return "" }

func (r *repeated) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want name=value")
	}
	r.pairs = append(r.pairs, [2]string{strings.TrimSpace(k), v})
	return nil
}

// readInput reads a file argument, "-" meaning stdin, up to limit bytes.
func readInput(env *cliEnv, name string, limit int64) ([]byte, error) {
	var r io.Reader = env.stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d KiB", displayName(name), limit>>10)
	}
	return b, nil
}

func displayName(name string) string {
	if name == "-" {
		return "stdin"
	}
	return name
}

// writeJSON prints an API answer as received, ending with one newline.
func writeJSON(w io.Writer, raw []byte) {
	raw = []byte(strings.TrimRight(string(raw), "\n"))
	_, _ = w.Write(append(raw, '\n'))
}

// shortTime formats an instant for people: UTC, to the minute.
func shortTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}

// newHTTPClient is the client for API calls; one call never takes longer
// than apiCallLimit (`wait` polls within its own --timeout).
func newHTTPClient() *http.Client { return &http.Client{Timeout: apiCallLimit} }
