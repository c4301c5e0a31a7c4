// Package recipients tells the recipients of a person's data about an
// erasure, rectification or restriction (Art. 19), as the sources config
// says for each: a signed POST to their webhook (signed as the webhook
// connector's calls are, identifiers raw or as keyed hashes), or an email
// that names the request and what was done but no identifier.
package recipients

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dsr-functions/dsr/shared/config"
	"github.com/dsr-functions/dsr/shared/notify"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/queue"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/webhook"
)

// HeaderNoticeID carries the notice's id: the same id is the same notice
// (a recipient that sees it twice acts once).
const HeaderNoticeID = "X-DSR-Notice-Id"

// Notifier sends notices.
type Notifier struct {
	// Getenv reads the settings the config names (URLs, secrets, keys).
	Getenv func(string) string
	// HTTP posts to webhooks (default: a client with a 30 s timeout).
	HTTP *http.Client
	// Mail sends email notices; nil refuses them.
	Mail notify.Sender
	// Bus opens a sender to a recipient's Service Bus namespace (a
	// connection string, or a namespace reached with the app's identity);
	// nil refuses Service Bus recipients. Senders are kept per recipient.
	Bus func(conn config.Connection) (BusSender, error)

	mu      sync.Mutex
	senders map[string]BusSender
}

// BusSender sends to a Service Bus entity (*servicebus.Sender).
type BusSender interface {
	queue.Sender
	Close(ctx context.Context) error
}

// Close closes the Service Bus senders.
func (x *Notifier) Close(ctx context.Context) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	var errs []error
	for _, s := range x.senders {
		errs = append(errs, s.Close(ctx))
	}
	x.senders = nil
	return errors.Join(errs...)
}

var _ pipeline.Notifier = (*Notifier)(nil)

// Body is a webhook notice's JSON body.
type Body struct {
	NoticeID  string                   `json:"noticeId"`
	RequestID string                   `json:"requestId"`
	Type      string                   `json:"type"`
	Lifted    bool                     `json:"lifted,omitempty"`
	Datasets  []pipeline.NoticeDataset `json:"datasets"`
	Subject   any                      `json:"subject"`
	At        time.Time                `json:"at"`
}

// Notify tells r about n.
func (x *Notifier) Notify(ctx context.Context, r *sources.Recipient, n pipeline.Notice) error {
	switch {
	case r.Notify.Webhook != nil:
		return x.post(ctx, r.Notify.Webhook, n)
	case r.Notify.ServiceBus != nil:
		return x.sendBus(ctx, r, n)
	case r.Notify.Email != nil:
		if x.Mail == nil {
			return fmt.Errorf("recipient %s: no email sender configured (DSR_EMAIL_*)", r.Name)
		}
		return x.Mail.Send(ctx, message(r, n))
	}
	return fmt.Errorf("recipient %s: no way to notify", r.Name)
}

// body is the notice as webhooks and Service Bus receive it, identifiers
// raw or as keyed hashes under the key in hashKeySetting.
func (x *Notifier) body(n pipeline.Notice, identifiers, hashKeySetting string) ([]byte, error) {
	var key []byte
	if identifiers == "hashed" {
		if key = []byte(x.Getenv(hashKeySetting)); len(key) < webhook.MinSecretBytes {
			return nil, fmt.Errorf("settings missing: %s needs a hash key of at least %d bytes", hashKeySetting, webhook.MinSecretBytes)
		}
	}
	subject, _, err := webhook.WireSubject(n.Subject, key)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(Body{NoticeID: n.NoticeID, RequestID: n.RequestID, Type: string(n.Type), Lifted: n.Lifted,
		Datasets: n.Datasets, Subject: subject, At: n.At.UTC()})
	if err != nil {
		return nil, fmt.Errorf("encode notice: %w", err)
	}
	return body, nil
}

// sendBus puts the notice on the recipient's queue or topic, MessageId the
// notice id, so the entity's duplicate detection drops a repeat.
func (x *Notifier) sendBus(ctx context.Context, r *sources.Recipient, n pipeline.Notice) error {
	b := r.Notify.ServiceBus
	body, err := x.body(n, b.Identifiers, b.HashKeySetting)
	if err != nil {
		return err
	}
	snd, err := x.busSender(r)
	if err != nil {
		return err
	}
	err = snd.Send(ctx, b.Entity(), queue.Message{ID: n.NoticeID, Body: body, Subject: "dsr-notice",
		Properties: map[string]any{"requestId": n.RequestID, "type": string(n.Type)}})
	if err != nil {
		// The SDK's message names the namespace and entity, not the person.
		return fmt.Errorf("service bus notice: %w", err)
	}
	return nil
}

func (x *Notifier) busSender(r *sources.Recipient) (BusSender, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if s, ok := x.senders[r.Name]; ok {
		return s, nil
	}
	if x.Bus == nil {
		return nil, fmt.Errorf("recipient %s: Service Bus is not available to notify", r.Name)
	}
	b := r.Notify.ServiceBus
	conn := config.Connection{FullyQualifiedNamespace: b.Namespace}
	if b.ConnectionSetting != "" {
		if conn.ConnectionString = x.Getenv(b.ConnectionSetting); conn.ConnectionString == "" {
			return nil, fmt.Errorf("settings missing: %s needs a Service Bus connection string", b.ConnectionSetting)
		}
	}
	s, err := x.Bus(conn)
	if err != nil {
		return nil, fmt.Errorf("recipient %s: %w", r.Name, err)
	}
	if x.senders == nil {
		x.senders = map[string]BusSender{}
	}
	x.senders[r.Name] = s
	return s, nil
}

func (x *Notifier) post(ctx context.Context, w *sources.RecipientWebhook, n pipeline.Notice) error {
	url := w.URL
	if w.URLSetting != "" {
		url = x.Getenv(w.URLSetting)
	}
	secret := []byte(x.Getenv(w.SecretSetting))
	if url == "" || len(secret) < webhook.MinSecretBytes {
		return fmt.Errorf("webhook settings missing: %s needs a URL and %s a secret of at least %d bytes", w.URLSetting, w.SecretSetting, webhook.MinSecretBytes)
	}
	body, err := x.body(n, w.Identifiers, w.HashKeySetting)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("notice request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderNoticeID, n.NoticeID)
	webhook.SetSignature(req.Header, secret, body, time.Now())
	client := x.HTTP
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("post notice: %s", transport(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("post notice: status %d", resp.StatusCode)
	}
	return nil
}

// transport is a transport error without the URL (which may carry a
// token in its query).
func transport(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

// message is the email notice: the request and what was done, never the
// person's identifiers (the recipient looks the reference up with us).
func message(r *sources.Recipient, n pipeline.Notice) notify.Message {
	verb := map[string]string{"erasure": "erased", "rectification": "corrected", "restriction": "restricted"}[string(n.Type)]
	if n.Lifted {
		verb = "no longer restricted"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Hello,\n\nUnder Article 19 GDPR we tell you that personal data we disclosed to you (%s) was %s at a data subject's request.\n\n", r.Description, verb)
	fmt.Fprintf(&b, "Our reference: %s\nRequest type: %s\n\n", n.RequestID, n.Type)
	for _, d := range n.Datasets {
		fmt.Fprintf(&b, "- %s: %s\n", d.Dataset, done(d))
	}
	b.WriteString("\nPlease do the same with the copies you hold. To learn whose data it is, ask us quoting the reference; this email names no one.\n")
	return notify.Message{To: r.Notify.Email.To, Subject: fmt.Sprintf("Data subject request %s: personal data %s", n.RequestID, verb), Text: b.String(), Key: n.NoticeID}
}

func done(d pipeline.NoticeDataset) string {
	var parts []string
	for _, p := range []struct {
		n    int64
		verb string
	}{{d.Deleted, "deleted"}, {d.Masked, "masked"}, {d.Retained, "retained"}, {d.Rectified, "corrected"}, {d.Restricted, "restricted"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d record(s) %s", p.n, p.verb))
		}
	}
	if len(parts) == 0 {
		return "nothing changed"
	}
	return strings.Join(parts, ", ")
}
