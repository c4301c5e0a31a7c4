package sources

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Recipient is someone to whom datasets are disclosed (Art. 19): when an
// erasure, rectification or restriction (or its lifting) changes what a
// person has in those datasets, the recipient is told, unless that proves
// impossible or involves disproportionate effort. The person may ask who
// they are.
type Recipient struct {
	// Name identifies the recipient ([a-z0-9][a-z0-9-]*), in the request's
	// notifications and the audit trail.
	Name string `json:"name"`
	// Description says who they are, for the person's letter and
	// facts.recipients.
	Description string `json:"description"`
	// Datasets are the datasets disclosed to them.
	Datasets []string `json:"datasets"`
	// Notify says how to tell them: exactly one of Webhook, ServiceBus and
	// Email.
	Notify RecipientNotify `json:"notify"`
}

// RecipientNotify is how a recipient is told.
type RecipientNotify struct {
	Webhook    *RecipientWebhook    `json:"webhook,omitempty"`
	ServiceBus *RecipientServiceBus `json:"serviceBus,omitempty"`
	Email      *RecipientEmail      `json:"email,omitempty"`
}

// RecipientServiceBus is a message on the recipient's Service Bus queue or
// topic, with the webhook notice's JSON body, MessageId the notice id (so
// the entity's duplicate detection drops a repeat), Subject "dsr-notice".
type RecipientServiceBus struct {
	// ConnectionSetting names the setting holding a connection string
	// (a SAS policy with Send on the entity), or Namespace is the fully
	// qualified namespace reached with the app's managed identity (which
	// then needs Azure Service Bus Data Sender there): exactly one.
	ConnectionSetting string `json:"connectionSetting,omitempty"`
	Namespace         string `json:"namespace,omitempty"`
	// Queue or Topic names the entity: exactly one.
	Queue string `json:"queue,omitempty"`
	Topic string `json:"topic,omitempty"`
	// Identifiers is "raw" (default) or "hashed" (keyed hashes under the
	// key in HashKeySetting), as for webhooks.
	Identifiers    string `json:"identifiers,omitempty"`
	HashKeySetting string `json:"hashKeySetting,omitempty"`
}

// Entity is the queue or topic the notice goes to.
func (b *RecipientServiceBus) Entity() string {
	if b.Queue != "" {
		return b.Queue
	}
	return b.Topic
}

// RecipientWebhook is a signed POST, as the webhook connector's calls are
// signed (X-DSR-Timestamp, X-DSR-Signature).
type RecipientWebhook struct {
	// URL (https) or URLSetting naming the setting that holds it.
	URL        string `json:"url,omitempty"`
	URLSetting string `json:"urlSetting,omitempty"`
	// SecretSetting names the setting holding the signing secret (≥ 32 bytes).
	SecretSetting string `json:"secretSetting"`
	// Identifiers is "raw" (default) or "hashed" (keyed hashes under the
	// key in HashKeySetting, as the webhook connector sends them).
	Identifiers    string `json:"identifiers,omitempty"`
	HashKeySetting string `json:"hashKeySetting,omitempty"`
}

// RecipientEmail is a notice by email (through the app's email sender).
// The email names the request and what was done, never the person's
// identifiers: the recipient looks the reference up with us.
type RecipientEmail struct {
	To string `json:"to"`
}

// Recipient returns the recipient named name, or nil.
func (c *Config) Recipient(name string) *Recipient {
	for i := range c.Recipients {
		if c.Recipients[i].Name == name {
			return &c.Recipients[i]
		}
	}
	return nil
}

// RecipientsOf lists the recipients of any of datasets, in config order.
func (c *Config) RecipientsOf(datasets []string) []*Recipient {
	var out []*Recipient
	for i := range c.Recipients {
		r := &c.Recipients[i]
		if slices.ContainsFunc(r.Datasets, func(d string) bool { return slices.Contains(datasets, d) }) {
			out = append(out, r)
		}
	}
	return out
}

// validateRecipients checks the recipients and ties them to the datasets'
// facts: a dataset without facts.recipients gets the descriptions of its
// recipients; one that lists some must name (by name or description) every
// recipient the config says receives it.
func (c *Config) validateRecipients() error {
	seen := map[string]bool{}
	for i := range c.Recipients {
		r := &c.Recipients[i]
		where := fmt.Sprintf("recipients[%d]", i)
		if !datasetName.MatchString(r.Name) {
			return fmt.Errorf("%s.name: %q must match %s", where, r.Name, datasetName)
		}
		if seen[r.Name] {
			return fmt.Errorf("%s.name: %q is given twice", where, r.Name)
		}
		seen[r.Name] = true
		if strings.TrimSpace(r.Description) == "" {
			return fmt.Errorf("%s.description: required (the person may ask who receives her data)", where)
		}
		if len(r.Datasets) == 0 {
			return fmt.Errorf("%s.datasets: at least one dataset", where)
		}
		for j, d := range r.Datasets {
			if c.Dataset(d) == nil {
				return fmt.Errorf("%s.datasets[%d]: no dataset is named %q", where, j, d)
			}
		}
		if err := r.Notify.check(); err != nil {
			return fmt.Errorf("%s.notify.%w", where, err)
		}
	}
	for i := range c.Datasets {
		d := &c.Datasets[i]
		var names, descs []string
		for _, r := range c.RecipientsOf([]string{d.Name}) {
			names, descs = append(names, r.Name), append(descs, r.Description)
		}
		if len(d.Facts.Recipients) == 0 {
			d.Facts.Recipients = descs
			continue
		}
		for k, n := range names {
			if !slices.Contains(d.Facts.Recipients, n) && !slices.Contains(d.Facts.Recipients, descs[k]) {
				return fmt.Errorf("datasets[%d].facts.recipients: recipient %q receives this dataset (recipients) but is not listed; list it by name or description, or leave facts.recipients empty to take them from recipients", i, n)
			}
		}
	}
	return nil
}

// serviceBusEntity is what Service Bus accepts as a queue or topic name.
var serviceBusEntity = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,259}$`)

// serviceBusNamespace is a fully qualified namespace name.
var serviceBusNamespace = regexp.MustCompile(`^[a-z][a-z0-9-]{4,48}[a-z0-9]\.servicebus\.(windows\.net|chinacloudapi\.cn|usgovcloudapi\.net)$`)

func checkIdentifiers(field, identifiers, hashKeySetting string) error {
	switch identifiers {
	case "", "raw":
		if hashKeySetting != "" {
			return fmt.Errorf(`%s.hashKeySetting: only identifiers "hashed" takes a hash key`, field)
		}
	case "hashed":
		if err := CheckSetting("hashKeySetting", hashKeySetting, true); err != nil {
			return fmt.Errorf("%s.%w", field, err)
		}
	default:
		return fmt.Errorf("%s.identifiers: %q is not one of raw, hashed", field, identifiers)
	}
	return nil
}

func (n RecipientNotify) check() error {
	ways := 0
	for _, set := range []bool{n.Webhook != nil, n.ServiceBus != nil, n.Email != nil} {
		if set {
			ways++
		}
	}
	switch {
	case ways != 1:
		return errors.New("webhook: exactly one of webhook, serviceBus and email is required")
	case n.ServiceBus != nil:
		b := n.ServiceBus
		if (b.ConnectionSetting == "") == (b.Namespace == "") {
			return errors.New("serviceBus.connectionSetting: exactly one of connectionSetting and namespace is required")
		}
		if err := CheckSetting("connectionSetting", b.ConnectionSetting, false); err != nil {
			return fmt.Errorf("serviceBus.%w", err)
		}
		if b.Namespace != "" && !serviceBusNamespace.MatchString(b.Namespace) {
			return errors.New("serviceBus.namespace: must be a fully qualified namespace such as contoso.servicebus.windows.net")
		}
		if (b.Queue == "") == (b.Topic == "") {
			return errors.New("serviceBus.queue: exactly one of queue and topic is required")
		}
		if !serviceBusEntity.MatchString(b.Entity()) {
			return errors.New("serviceBus.queue: not a Service Bus entity name (letters, digits, . _ - /, at most 260)")
		}
		return checkIdentifiers("serviceBus", b.Identifiers, b.HashKeySetting)
	case n.Email != nil:
		a, err := mail.ParseAddress(n.Email.To)
		if err != nil || a.Address != n.Email.To || a.Name != "" {
			return errors.New("email.to: must be one plain email address")
		}
		return nil
	}
	w := n.Webhook
	if (w.URL == "") == (w.URLSetting == "") {
		return errors.New("webhook.url: exactly one of url and urlSetting is required")
	}
	if w.URL != "" {
		if u, err := url.Parse(w.URL); err != nil || u.Scheme != "https" || u.Host == "" {
			return errors.New("webhook.url: must be an https URL")
		}
	}
	if err := CheckSetting("urlSetting", w.URLSetting, false); err != nil {
		return fmt.Errorf("webhook.%w", err)
	}
	if err := CheckSetting("secretSetting", w.SecretSetting, true); err != nil {
		return fmt.Errorf("webhook.%w", err)
	}
	if err := checkIdentifiers("webhook", w.Identifiers, w.HashKeySetting); err != nil {
		return err
	}
	return nil
}
