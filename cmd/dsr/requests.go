package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dsr-functions/dsr/shared/client"
	"github.com/dsr-functions/dsr/shared/dsr"
)

const requestsUsage = `usage: dsr requests <command> [flags]

commands:
  create   submit a request (flags for the common fields, or --file with the JSON body)
  get      show a request
  list     list requests, oldest first (--state, --type, --overdue, --due-before, --all)
  wait     poll a request until it ends, or reaches --until STATE
  approve  let a request awaiting approval go on
  reject   decline a request awaiting approval (--reason, required)
  extend   extend the deadline (--months 1|2 --reason)
  cancel   cancel an open request (--reason, optional)
  redrive  run the step where a failed request failed again
  audit    show the request's audit trail

Every command takes --url, --key, --entra-scope, --credential and --json;
dsr requests <command> -h lists its flags. See docs/cli.md.
`

// requestsCmd dispatches `dsr requests <command>`.
func requestsCmd(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(env.stderr, requestsUsage)
		if len(args) == 0 {
			return &exitError{code: exitUsage, err: errors.New("missing command")}
		}
		return nil
	}
	cmds := map[string]func(context.Context, *cliEnv, []string) error{
		"create": createCmd, "get": getCmd, "list": listCmd, "wait": waitCmd,
		"approve": approveCmd, "reject": rejectCmd, "extend": extendCmd, "cancel": cancelCmd, "audit": auditCmd,
		"redrive": redriveCmd,
	}
	fn, ok := cmds[args[0]]
	if !ok {
		fmt.Fprint(env.stderr, requestsUsage)
		return usageError("unknown command %q", args[0])
	}
	if err := fn(ctx, env, args[1:]); err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	return nil
}

// createCmd submits a request. The body comes from --file as is (the API
// validates it), or is built from flags. Flags put identifiers in the
// shell's history and the process list: for real requests, prefer --file.
func createCmd(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "requests create", "requests create (--file FILE | --type TYPE [--email E] [--phone P] [--id NAME=VALUE] ...) [flags]")
	var conn connFlags
	conn.register(fs)
	file := fs.String("file", "", "the request body as JSON (- for stdin), sent as is")
	typ := fs.String("type", "", "request type: "+strings.Join(typeNames(), ", "))
	email := fs.String("email", "", "the subject's email")
	phone := fs.String("phone", "", "the subject's phone, with + and country code")
	name := fs.String("name", "", "the subject's name (never identifies alone)")
	ids := &repeated{}
	fs.Var(ids, "id", "an identifier NAME=VALUE, e.g. contactId=6d1f…; repeatable")
	corr := &repeated{}
	fs.Var(corr, "correct", "rectification: FIELD=NEW (email, phone, name); repeatable")
	note := fs.String("note", "", "a note kept with the request, e.g. how it was received")
	receivedAt := fs.String("received-at", "", "when the subject asked, RFC 3339 (default: now)")
	lift := fs.Bool("lift", false, "restriction: lift an earlier restriction")
	idemKey := fs.String("idempotency-key", "", "Idempotency-Key: the same key returns the same request (safe retries)")
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	var body []byte
	switch {
	case *file != "" && *typ != "":
		return usageError("give --file or --type with field flags, not both")
	case *file != "":
		b, err := readInput(env, *file, dsr.MaxBodyBytes)
		if err != nil {
			return usageError("--file: %v", err)
		}
		// The file is not shown: it holds personal data.
		if !json.Valid(b) {
			return usageError("--file: %s is not valid JSON", displayName(*file))
		}
		body = b
	case *typ != "":
		if !dsr.Type(*typ).Known() {
			return usageError("--type: must be one of %s", strings.Join(typeNames(), ", "))
		}
		if *receivedAt != "" {
			if _, err := time.Parse(time.RFC3339, *receivedAt); err != nil {
				return usageError("--received-at: must be RFC 3339, e.g. 2026-01-31T09:00:00Z")
			}
		}
		sub := map[string]any{}
		for k, v := range map[string]string{"email": *email, "phone": *phone, "name": *name} {
			if v != "" {
				sub[k] = v
			}
		}
		if len(ids.pairs) > 0 {
			m := map[string]string{}
			for _, p := range ids.pairs {
				m[p[0]] = p[1]
			}
			sub["ids"] = m
		}
		doc := map[string]any{"type": *typ, "subject": sub}
		if len(corr.pairs) > 0 {
			m := map[string]string{}
			for _, p := range corr.pairs {
				m[p[0]] = p[1]
			}
			doc["corrections"] = m
		}
		if *note != "" {
			doc["note"] = *note
		}
		if *receivedAt != "" {
			doc["receivedAt"] = *receivedAt
		}
		if *lift {
			doc["lift"] = true
		}
		var err error
		if body, err = json.Marshal(doc); err != nil {
			return fmt.Errorf("encode the request: %w", err)
		}
	default:
		return usageError("give --file FILE or --type TYPE (see dsr requests create -h)")
	}
	cl, err := conn.client(env)
	if err != nil {
		return err
	}
	req, replayed, err := cl.Create(ctx, body, *idemKey)
	if err != nil {
		return err
	}
	if replayed {
		fmt.Fprintf(env.stderr, "this Idempotency-Key was used before: request %s was not submitted again\n", req.ID)
	} else {
		fmt.Fprintf(env.stderr, "submitted %s request %s: %s, due %s\n", req.Type, req.ID, req.State, shortTime(req.DueAt))
	}
	if conn.json {
		writeJSON(env.stdout, req.JSON)
		return nil
	}
	// The id alone on stdout, for id=$(dsr requests create …).
	fmt.Fprintln(env.stdout, req.ID)
	return nil
}

func typeNames() []string {
	out := make([]string, len(dsr.Types))
	for i, t := range dsr.Types {
		out[i] = string(t)
	}
	return out
}

func stateNames() []string {
	out := make([]string, len(dsr.States))
	for i, s := range dsr.States {
		out[i] = string(s)
	}
	return out
}

// idCommand parses a command that takes one request id and builds the
// client; extra registers its own flags.
func idCommand(env *cliEnv, args []string, name, synopsis string, extra func(*flag.FlagSet)) (string, *connFlags, *client.Client, error) {
	fs := newFlagSet(env, "requests "+name, "requests "+name+" ID "+synopsis)
	conn := &connFlags{}
	conn.register(fs)
	if extra != nil {
		extra(fs)
	}
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return "", nil, nil, err
	}
	if !dsr.ValidID(pos[0]) {
		return "", nil, nil, &exitError{code: exitUsage, err: client.ErrBadID}
	}
	cl, err := conn.client(env)
	if err != nil {
		return "", nil, nil, err
	}
	return pos[0], conn, cl, nil
}

func getCmd(ctx context.Context, env *cliEnv, args []string) error {
	id, conn, cl, err := idCommand(env, args, "get", "[flags]", nil)
	if err != nil {
		return err
	}
	req, err := cl.Get(ctx, id)
	if err != nil {
		return err
	}
	return showRequest(env, conn, req)
}

func approveCmd(ctx context.Context, env *cliEnv, args []string) error {
	id, conn, cl, err := idCommand(env, args, "approve", "[flags]", nil)
	if err != nil {
		return err
	}
	req, err := cl.Approve(ctx, id)
	if err != nil {
		return err
	}
	return showRequest(env, conn, req)
}

func redriveCmd(ctx context.Context, env *cliEnv, args []string) error {
	id, conn, cl, err := idCommand(env, args, "redrive", "[flags]", nil)
	if err != nil {
		return err
	}
	req, err := cl.Redrive(ctx, id)
	if err != nil {
		return err
	}
	return showRequest(env, conn, req)
}

func rejectCmd(ctx context.Context, env *cliEnv, args []string) error {
	var reason *string
	id, conn, cl, err := idCommand(env, args, "reject", "--reason TEXT [flags]", func(fs *flag.FlagSet) {
		reason = fs.String("reason", "", "why, for the subject (Art. 12(4)); required")
	})
	if err != nil {
		return err
	}
	if strings.TrimSpace(*reason) == "" {
		return usageError("--reason is required: a refusal must give its reasons (Art. 12(4))")
	}
	req, err := cl.Reject(ctx, id, *reason)
	if err != nil {
		return err
	}
	return showRequest(env, conn, req)
}

func extendCmd(ctx context.Context, env *cliEnv, args []string) error {
	var months *int
	var reason *string
	id, conn, cl, err := idCommand(env, args, "extend", "--months 1|2 --reason TEXT [flags]", func(fs *flag.FlagSet) {
		months = fs.Int("months", 0, "months to add: 1 or 2 (at most 2 in all, Art. 12(3))")
		reason = fs.String("reason", "", "why, for the subject (Art. 12(3)); required")
	})
	if err != nil {
		return err
	}
	if *months < 1 || *months > dsr.MaxExtensionMonths {
		return usageError("--months must be 1 or 2")
	}
	if strings.TrimSpace(*reason) == "" {
		return usageError("--reason is required: the subject must be told why (Art. 12(3))")
	}
	req, err := cl.Extend(ctx, id, *months, *reason)
	if err != nil {
		return err
	}
	return showRequest(env, conn, req)
}

func cancelCmd(ctx context.Context, env *cliEnv, args []string) error {
	var reason *string
	id, conn, cl, err := idCommand(env, args, "cancel", "[--reason TEXT] [flags]", func(fs *flag.FlagSet) {
		reason = fs.String("reason", "", "why (optional)")
	})
	if err != nil {
		return err
	}
	req, err := cl.Cancel(ctx, id, *reason)
	if err != nil {
		return err
	}
	return showRequest(env, conn, req)
}

// showRequest prints a request document: as received with --json, else a
// summary for people (no subject: the API never returns it).
func showRequest(env *cliEnv, conn *connFlags, req *client.Request) error {
	if conn.json {
		writeJSON(env.stdout, req.JSON)
		return nil
	}
	printRequest(env.stdout, req)
	return nil
}

func printRequest(out io.Writer, req *client.Request) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	row := func(k, format string, args ...any) { fmt.Fprintf(w, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("id", "%s", req.ID)
	row("type", "%s", req.Type)
	row("state", "%s (stage %s)", req.State, req.Stage)
	row("received", "%s", shortTime(req.ReceivedAt))
	due := shortTime(req.DueAt)
	if req.DueSoon {
		due += ", due soon"
	}
	if req.Extension != nil {
		due += fmt.Sprintf(" (extended by %d month(s))", req.Extension.Months)
	}
	row("due", "%s", due)
	row("updated", "%s", shortTime(req.UpdatedAt))
	if req.Note != "" {
		row("note", "%s", req.Note)
	}
	if d := req.Discovery; d != nil {
		var parts []string
		for _, s := range d.Sources {
			p := fmt.Sprintf("%s %d", s.Source, s.Records)
			if s.Error != "" {
				p += " (error: " + s.Error + ")"
			}
			if s.Kept != nil {
				p += " (kept after erasure: " + s.Kept.Action + ")"
			}
			parts = append(parts, p)
		}
		row("discovery", "%d records: %s", d.TotalRecords, strings.Join(parts, ", "))
	}
	if e := req.Export; e != nil {
		s := fmt.Sprintf("%d bytes, sha256 %s, created %s", e.Bytes, e.SHA256, shortTime(e.CreatedAt))
		switch {
		case e.DeletedAt != nil:
			s += ", deleted " + shortTime(*e.DeletedAt)
		default:
			s += "; dsr export download " + req.ID
		}
		row("export", "%s", s)
	}
	if e := req.Erasure; e != nil {
		var parts []string
		for _, s := range e.Sources {
			parts = append(parts, fmt.Sprintf("%s %s (deleted %d, masked %d, retained %d)", s.Source, s.Action, s.Deleted, s.Masked, s.Retained))
		}
		row("erasure", "%s", strings.Join(parts, "; "))
	}
	if v := req.Verification; v != nil {
		row("verification", "residual %d, retained %d, masked %d", v.Residual, v.Retained, v.Masked)
	}
	if r := req.Rejection; r != nil {
		row("rejected", "%s: %s", shortTime(r.At), r.Reason)
	}
	if c := req.Cancellation; c != nil {
		row("cancelled", "%s: %s", shortTime(c.At), c.Reason)
	}
	if len(req.FailedSources) > 0 {
		row("failed sources", "%s", strings.Join(req.FailedSources, ", "))
	}
	if e := req.Error; e != nil {
		row("error", "%s: %s", e.Code, e.Message)
	}
}

func listCmd(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "requests list", "requests list [--state S] [--type T] [--overdue] [--due-before TIME] [--limit N] [--page-token T | --all] [flags]")
	var conn connFlags
	conn.register(fs)
	state := fs.String("state", "", "only this state: "+strings.Join(stateNames(), ", "))
	typ := fs.String("type", "", "only this type: "+strings.Join(typeNames(), ", "))
	overdue := fs.Bool("overdue", false, "only open requests past their deadline")
	dueBefore := fs.String("due-before", "", "only requests due before this RFC 3339 time")
	limit := fs.Int("limit", 0, "page size, 1-200 (API default 50)")
	token := fs.String("page-token", "", "continue a listing (the token the previous page printed)")
	all := fs.Bool("all", false, "follow every page")
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	o := client.ListOptions{State: dsr.State(*state), Type: dsr.Type(*typ), Overdue: *overdue, Limit: *limit, PageToken: *token}
	switch {
	case o.State != "" && !o.State.Known():
		return usageError("--state: must be one of %s", strings.Join(stateNames(), ", "))
	case o.Type != "" && !o.Type.Known():
		return usageError("--type: must be one of %s", strings.Join(typeNames(), ", "))
	case *limit != 0 && (*limit < 1 || *limit > 200):
		return usageError("--limit: must be from 1 to 200")
	case *all && *token != "":
		return usageError("give --all or --page-token, not both")
	}
	if *dueBefore != "" {
		t, err := time.Parse(time.RFC3339, *dueBefore)
		if err != nil {
			return usageError("--due-before: must be RFC 3339, e.g. 2026-02-28T00:00:00Z")
		}
		o.DueBefore = t
	}
	cl, err := conn.client(env)
	if err != nil {
		return err
	}
	var items []client.Summary
	var rawItems []json.RawMessage
	for {
		page, err := cl.List(ctx, o)
		if err != nil {
			return err
		}
		if !*all {
			if conn.json {
				writeJSON(env.stdout, page.JSON)
			} else {
				printSummaries(env.stdout, page.Items)
			}
			if page.NextPageToken != "" {
				fmt.Fprintf(env.stderr, "more: dsr requests list --page-token %s (or --all)\n", page.NextPageToken)
			}
			return nil
		}
		var raw struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(page.JSON, &raw); err != nil {
			return fmt.Errorf("list: %w", err)
		}
		items = append(items, page.Items...)
		rawItems = append(rawItems, raw.Items...)
		if page.NextPageToken == "" {
			break
		}
		o.PageToken = page.NextPageToken
	}
	if conn.json {
		// Every page's items in one document of the API's shape.
		if rawItems == nil {
			rawItems = []json.RawMessage{}
		}
		b, err := json.Marshal(map[string]any{"items": rawItems})
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		writeJSON(env.stdout, b)
		return nil
	}
	printSummaries(env.stdout, items)
	return nil
}

func printSummaries(out io.Writer, items []client.Summary) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "ID\tTYPE\tSTATE\tSTAGE\tRECEIVED\tDUE")
	for _, s := range items {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Type, s.State, s.Stage, shortTime(s.ReceivedAt), shortTime(s.DueAt))
	}
}

func auditCmd(ctx context.Context, env *cliEnv, args []string) error {
	id, conn, cl, err := idCommand(env, args, "audit", "[flags]", nil)
	if err != nil {
		return err
	}
	trail, err := cl.Audit(ctx, id)
	if err != nil {
		return err
	}
	if conn.json {
		writeJSON(env.stdout, trail.JSON)
		return nil
	}
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "AT\tEVENT\tSTAGE\tSTATE\tBY\tDETAIL")
	for _, e := range trail.Items {
		by := "-"
		if e.Actor != nil {
			by = e.Actor.Kind
			if e.Actor.ID != "" {
				by += ":" + e.Actor.ID
			}
		}
		detail := e.Detail
		if e.Dataset != "" {
			detail = strings.TrimSpace(fmt.Sprintf("%s %s %s %s", e.Dataset, e.Action, e.Policy, detail))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", e.At.UTC().Format(time.RFC3339), e.Event, dash(e.Stage), dash(e.State), by, detail)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// waitCmd polls a request until it reaches a state of --until (default:
// completed) or ends otherwise, showing progress on stderr: one line
// redrawn on a terminal, a line per change otherwise (logs stay readable).
func waitCmd(ctx context.Context, env *cliEnv, args []string) error {
	var until *string
	var timeout, interval *time.Duration
	var quiet *bool
	id, conn, cl, err := idCommand(env, args, "wait", "[--until STATE[,STATE]] [--timeout D] [flags]", func(fs *flag.FlagSet) {
		until = fs.String("until", "", "stop at one of these states (comma-separated), e.g. awaiting_approval (default: completed)")
		timeout = fs.Duration("timeout", 10*time.Minute, "give up after this long (exit code 4)")
		interval = fs.Duration("interval", time.Second, "time between polls")
		quiet = fs.Bool("quiet", false, "no progress on stderr")
	})
	if err != nil {
		return err
	}
	targets := []dsr.State{dsr.StateCompleted}
	if *until != "" {
		targets = nil
		for _, s := range strings.Split(*until, ",") {
			st := dsr.State(strings.TrimSpace(s))
			if !st.Known() {
				return usageError("--until: %q is not a state (%s)", st, strings.Join(stateNames(), ", "))
			}
			targets = append(targets, st)
		}
	}
	if *timeout <= 0 || *interval <= 0 {
		return usageError("--timeout and --interval must be positive")
	}
	p := &progress{w: env.stderr, tty: env.stderrTTY, quiet: *quiet, id: id, start: time.Now()}
	req, err := poll(ctx, cl, id, targets, *timeout, *interval, p)
	p.done()
	if err != nil {
		// A script reading --json gets the request as it was last seen.
		if req != nil && conn.json {
			writeJSON(env.stdout, req.JSON)
		}
		return err
	}
	if conn.json {
		writeJSON(env.stdout, req.JSON)
	} else {
		fmt.Fprintf(env.stdout, "%s %s (stage %s)\n", req.ID, req.State, req.Stage)
	}
	return nil
}

// poll reads the request every interval until its state is one of targets.
// A request that ends in another state is exitEnded; running out of time
// is exitTimeout. Failures that may pass (no answer, 429, 5xx) are retried
// until the timeout; any other error ends the wait.
func poll(ctx context.Context, cl *client.Client, id string, targets []dsr.State, timeout, interval time.Duration, p *progress) (*client.Request, error) {
	deadline := time.Now().Add(timeout)
	var last *client.Request
	for {
		callCtx, cancel := context.WithDeadline(ctx, deadline)
		req, err := cl.Get(callCtx, id)
		cancel()
		switch {
		case err == nil:
			last = req
			p.update(req)
			if slices.Contains(targets, req.State) {
				return req, nil
			}
			if req.State.Terminal() {
				msg := fmt.Sprintf("request ended %s (stage %s)", req.State, req.Stage)
				if req.Error != nil {
					msg += ": " + req.Error.Code + ": " + req.Error.Message
				}
				return req, &exitError{code: exitEnded, err: errors.New(msg)}
			}
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case client.Transient(err) && time.Now().Before(deadline):
			p.note(err)
		case client.Transient(err):
			// The deadline cut the call short: a timeout, not a failure.
		default:
			return nil, err
		}
		if !time.Now().Add(interval).Before(deadline) {
			where := "no answer yet"
			if last != nil {
				where = fmt.Sprintf("still %s (stage %s)", last.State, last.Stage)
			}
			return last, &exitError{code: exitTimeout, err: fmt.Errorf("timed out after %s: %s", timeout, where)}
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// progress shows where a waited-for request stands, on stderr.
type progress struct {
	w          io.Writer
	tty, quiet bool
	id         string
	start      time.Time
	last       string
	drawn      bool
}

func (p *progress) update(req *client.Request) {
	if p.quiet {
		return
	}
	now := fmt.Sprintf("%s/%s", req.Stage, req.State)
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s: %s (%s)", p.id, now, time.Since(p.start).Round(time.Second))
		p.drawn = true
		p.last = now
		return
	}
	if now != p.last {
		fmt.Fprintf(p.w, "%s: %s\n", p.id, now)
		p.last = now
	}
}

// note reports a failed poll that will be retried.
func (p *progress) note(err error) {
	if p.quiet {
		return
	}
	p.done()
	fmt.Fprintf(p.w, "%s: retrying: %v\n", p.id, err)
}

// done ends a redrawn progress line.
func (p *progress) done() {
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\n")
		p.drawn = false
	}
}
