package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dsr-functions/dsr/shared/blobs"
	"github.com/dsr-functions/dsr/shared/notify/outbox"
)

// mailCmd shows the emails `dsr local` wrote to its outbox container
// instead of sending them: verification codes, and later notices, so a
// developer can do what a data subject does, on one machine.
func mailCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mail", flag.ContinueOnError)
	to := fs.String("to", "", "only the mail to this address")
	last := fs.Int("n", 5, "show the last n messages")
	container := fs.String("container", "", "the outbox container (default DSR_EMAIL_OUTBOX_CONTAINER, or outbox)")
	asJSON := fs.Bool("json", false, "print the messages as JSON")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	cs := os.Getenv("AzureWebJobsStorage")
	if cs == "" {
		cs = "UseDevelopmentStorage=true"
	}
	acct, err := blobs.OpenConnectionString(cs)
	if err != nil {
		return err
	}
	name := *container
	if name == "" {
		name = os.Getenv("DSR_EMAIL_OUTBOX_CONTAINER")
	}
	ob, err := outbox.OpenAccount(ctx, acct, name)
	if err != nil {
		return fmt.Errorf("outbox: %w (is Azurite running? `make run` starts it)", err)
	}
	var msgs []outbox.Stored
	if *to != "" {
		msgs, err = ob.Find(ctx, *to)
	} else {
		msgs, err = ob.List(ctx)
	}
	if err != nil {
		return err
	}
	if *last > 0 && len(msgs) > *last {
		msgs = msgs[len(msgs)-*last:]
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(msgs)
	}
	if len(msgs) == 0 {
		fmt.Fprintln(stdout, "no mail")
	}
	for _, m := range msgs {
		fmt.Fprintf(stdout, "── %s  to %s\nSubject: %s\n\n%s\n", m.SentAt.Format("2006-01-02 15:04:05Z"), m.To, m.Subject, strings.TrimRight(m.Text, "\n"))
	}
	return nil
}
