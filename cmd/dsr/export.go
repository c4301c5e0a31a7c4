package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dsr-functions/dsr/shared/client"
	"github.com/dsr-functions/dsr/shared/dsr"
)

const exportUsage = `usage: dsr export <command> [flags]

commands:
  download ID [-o FILE]   save the access package, checked against its sha256 and size
  link ID                 print a fresh short-lived link to the package

Both take --url, --key, --entra-scope, --credential and --json. See docs/cli.md.
`

// exportCmd dispatches `dsr export <command>`.
func exportCmd(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(env.stderr, exportUsage)
		if len(args) == 0 {
			return &exitError{code: exitUsage, err: errors.New("missing command")}
		}
		return nil
	}
	var err error
	switch args[0] {
	case "download":
		err = downloadCmd(ctx, env, args[1:])
	case "link":
		err = linkCmd(ctx, env, args[1:])
	default:
		fmt.Fprint(env.stderr, exportUsage)
		return usageError("unknown command %q", args[0])
	}
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	return nil
}

// downloadCmd saves a package only once its bytes are proven to be the
// package the API describes; a mismatch leaves no file behind.
func downloadCmd(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "export download", "export download ID [-o FILE] [flags]")
	var conn connFlags
	conn.register(fs)
	out := fs.String("o", "", "where to save the ZIP (default dsr-export-<id>.zip; an existing file is replaced)")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	id := pos[0]
	if !dsr.ValidID(id) {
		return &exitError{code: exitUsage, err: client.ErrBadID}
	}
	if *out == "" {
		*out = "dsr-export-" + id + ".zip"
	}
	cl, err := conn.client(env)
	if err != nil {
		return err
	}
	got, err := cl.DownloadExport(ctx, id, *out)
	if err != nil {
		return err
	}
	if conn.json {
		b, err := json.Marshal(struct {
			ID string `json:"id"`
			*client.Downloaded
			Verified bool `json:"verified"`
		}{id, got, true})
		if err != nil {
			return err
		}
		writeJSON(env.stdout, b)
		return nil
	}
	fmt.Fprintf(env.stdout, "saved %s: %d bytes, sha256 %s (verified)\n", got.Path, got.Bytes, got.SHA256)
	return nil
}

// linkCmd prints a fresh link, for handing the package to someone who has
// no access to the API. The link is a bearer secret until it expires.
func linkCmd(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "export link", "export link ID [flags]")
	var conn connFlags
	conn.register(fs)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if !dsr.ValidID(pos[0]) {
		return &exitError{code: exitUsage, err: client.ErrBadID}
	}
	cl, err := conn.client(env)
	if err != nil {
		return err
	}
	link, err := cl.ExportLink(ctx, pos[0])
	if err != nil {
		return err
	}
	if conn.json {
		writeJSON(env.stdout, link.JSON)
		return nil
	}
	fmt.Fprintf(env.stderr, "expires %s; %d bytes, sha256 %s; anyone holding the link can download the package until then\n",
		shortTime(link.ExpiresAt), link.Bytes, link.SHA256)
	fmt.Fprintln(env.stdout, link.URL)
	return nil
}
