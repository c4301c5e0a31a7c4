package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"unicode/utf8"

	"github.com/dsr-functions/dsr/shared/client"
	"github.com/dsr-functions/dsr/shared/funchost"
)

// sendCmd puts a message on `dsr local`'s embedded queue, as another system
// puts one on Service Bus in Azure: the same body, a MessageId (on
// dsr-intake, the request's idempotency key) and application properties.
// So the queue path can be tried on a laptop exactly as automation uses it.
func sendCmd(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "send", "send [--queue NAME] [--message-id ID] [--property NAME=VALUE ...] FILE [flags]\n\n"+
		"Puts FILE (- for stdin) on a queue of `dsr local`'s embedded queue. Local only: in Azure,\n"+
		"send to the Service Bus queue itself.")
	var conn connFlags
	conn.register(fs)
	queueName := fs.String("queue", "dsr-intake", "the queue")
	messageID := fs.String("message-id", "", "the MessageId (default: a new random id); the same id again within 10 minutes is dropped as a duplicate")
	contentType := fs.String("content-type", "application/json", "the message's content type")
	subject := fs.String("subject", "", "the message's Subject (label)")
	props := &repeated{}
	fs.Var(props, "property", "an application property NAME=VALUE (a string); repeatable")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	body, err := readInput(env, pos[0], funchost.MaxQueueMessageBody)
	if err != nil {
		return usageError("%v", err)
	}
	// The body is not checked for JSON: an invalid message is worth trying
	// too (intake rejects it to dsr-intake-rejected).
	if !utf8.Valid(body) {
		return usageError("%s is not UTF-8 text", displayName(pos[0]))
	}
	if *messageID == "" {
		*messageID = newMessageID()
	}
	if len(*messageID) > funchost.MaxMessageIDLength {
		return usageError("--message-id: at most %d characters", funchost.MaxMessageIDLength)
	}
	m := client.QueueMessage{ID: *messageID, Body: body, ContentType: *contentType, Subject: *subject}
	if len(props.pairs) > 0 {
		m.Properties = map[string]any{}
		for _, p := range props.pairs {
			m.Properties[p[0]] = p[1]
		}
	}
	cl, err := conn.client(env)
	if err != nil {
		return err
	}
	receipt, err := cl.SendMessage(ctx, *queueName, m)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "sent to %s with MessageId %s (a duplicate within 10 minutes is dropped, as Service Bus does)\n", receipt.Queue, receipt.MessageID)
	if conn.json {
		writeJSON(env.stdout, receipt.JSON)
		return nil
	}
	fmt.Fprintln(env.stdout, receipt.MessageID)
	return nil
}

// newMessageID is a random GUID, what Service Bus SDKs generate.
func newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
