package sources

import (
	"slices"
	"strings"
	"testing"
)

func recipientsConfig(edit func(c *Config)) *Config {
	facts := Facts{Categories: []string{"contact details"}, Purposes: []string{"service"}, Retention: "1 year", Source: "you"}
	withRecipients := facts
	withRecipients.Recipients = []string{"Support desk"}
	c := &Config{Version: 1, Datasets: []Dataset{
		{Name: "contacts", Container: "d", Blob: "c.ndjson", Format: FormatNDJSON, Identifiers: []Identifier{{Field: "email", Kind: KindEmail}}, Facts: facts},
		{Name: "cases", Container: "d", Blob: "k.ndjson", Format: FormatNDJSON, Identifiers: []Identifier{{Field: "email", Kind: KindEmail}}, Facts: withRecipients},
	}, Recipients: []Recipient{
		{Name: "partner", Description: "Marketing partner", Datasets: []string{"contacts"}, Notify: RecipientNotify{Email: &RecipientEmail{To: "dpo@partner.example"}}},
	}}
	if edit != nil {
		edit(c)
	}
	return c
}

// Recipients are checked field by field, and fill or must match the
// datasets' facts.recipients.
func TestRecipientsValidated(t *testing.T) {
	c := recipientsConfig(nil)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.Dataset("contacts").Facts.Recipients; !slices.Equal(got, []string{"Marketing partner"}) {
		t.Errorf("facts.recipients not filled from recipients: %v", got)
	}
	hook := func(w RecipientWebhook) func(c *Config) {
		return func(c *Config) { c.Recipients[0].Notify = RecipientNotify{Webhook: &w} }
	}
	bus := func(b RecipientServiceBus) func(c *Config) {
		return func(c *Config) { c.Recipients[0].Notify = RecipientNotify{ServiceBus: &b} }
	}
	for _, ok := range []RecipientServiceBus{
		{ConnectionSetting: "PARTNER_SB", Queue: "dsr-notices"},
		{Namespace: "partner-ns.servicebus.windows.net", Topic: "privacy/notices", Identifiers: "hashed", HashKeySetting: "PARTNER_KEY"},
	} {
		if err := recipientsConfig(bus(ok)).Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for name, tc := range map[string]struct {
		edit func(c *Config)
		want string
	}{
		"bad name":           {func(c *Config) { c.Recipients[0].Name = "Partner!" }, "recipients[0].name"},
		"twice":              {func(c *Config) { c.Recipients = append(c.Recipients, c.Recipients[0]) }, "recipients[1].name"},
		"no description":     {func(c *Config) { c.Recipients[0].Description = " " }, "recipients[0].description"},
		"no datasets":        {func(c *Config) { c.Recipients[0].Datasets = nil }, "recipients[0].datasets"},
		"unknown dataset":    {func(c *Config) { c.Recipients[0].Datasets = []string{"orders"} }, "recipients[0].datasets[0]"},
		"no transport":       {func(c *Config) { c.Recipients[0].Notify = RecipientNotify{} }, "recipients[0].notify.webhook"},
		"bad email":          {func(c *Config) { c.Recipients[0].Notify.Email.To = "Partner <dpo@partner.example>" }, "recipients[0].notify.email.to"},
		"http webhook":       {hook(RecipientWebhook{URL: "http://partner.example/n", SecretSetting: "S"}), "recipients[0].notify.webhook.url"},
		"no secret":          {hook(RecipientWebhook{URL: "https://partner.example/n"}), "recipients[0].notify.webhook.secretSetting"},
		"secret value":       {hook(RecipientWebhook{URL: "https://partner.example/n", SecretSetting: "hunter2 is my secret"}), "recipients[0].notify.webhook.secretSetting"},
		"hashed without key": {hook(RecipientWebhook{URL: "https://partner.example/n", SecretSetting: "S", Identifiers: "hashed"}), "recipients[0].notify.webhook.hashKeySetting"},
		"two transports": {func(c *Config) {
			c.Recipients[0].Notify.ServiceBus = &RecipientServiceBus{ConnectionSetting: "SB", Queue: "q"}
		}, "recipients[0].notify.webhook"},
		"bus without connection": {bus(RecipientServiceBus{Queue: "notices"}), "recipients[0].notify.serviceBus.connectionSetting"},
		"bus with both":          {bus(RecipientServiceBus{ConnectionSetting: "SB", Namespace: "partner-ns.servicebus.windows.net", Queue: "q"}), "recipients[0].notify.serviceBus.connectionSetting"},
		"bus connection value":   {bus(RecipientServiceBus{ConnectionSetting: "Endpoint=sb://x/;SharedAccessKey=hunter2", Queue: "q"}), "recipients[0].notify.serviceBus.connectionSetting"},
		"bus bad namespace":      {bus(RecipientServiceBus{Namespace: "https://partner.example", Queue: "q"}), "recipients[0].notify.serviceBus.namespace"},
		"bus queue and topic":    {bus(RecipientServiceBus{ConnectionSetting: "SB", Queue: "q", Topic: "t"}), "recipients[0].notify.serviceBus.queue"},
		"bus no entity":          {bus(RecipientServiceBus{ConnectionSetting: "SB"}), "recipients[0].notify.serviceBus.queue"},
		"bus bad entity":         {bus(RecipientServiceBus{ConnectionSetting: "SB", Topic: "no spaces"}), "recipients[0].notify.serviceBus.queue"},
		"bus hashed without key": {bus(RecipientServiceBus{ConnectionSetting: "SB", Queue: "q", Identifiers: "hashed"}), "recipients[0].notify.serviceBus.hashKeySetting"},
		"facts miss it": {func(c *Config) {
			c.Recipients[0].Datasets = []string{"cases"}
		}, "datasets[1].facts.recipients"},
	} {
		err := recipientsConfig(tc.edit).Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error on %s", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the value", name)
		}
	}
}
