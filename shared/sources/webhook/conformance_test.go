package webhook_test

import (
	"encoding/json"
	"testing"

	"github.com/dsr-functions/dsr/shared/sources/sourcestest"
	"github.com/dsr-functions/dsr/shared/sources/webhook"
	"github.com/dsr-functions/dsr/shared/sources/webhook/webhooktest"
)

// whHarness loads the conformance scenario into the checking receiving
// system; a second fixture's system answers asynchronously, so the
// connector must report it will answer later.
type whHarness struct{}

func (whHarness) Delegates() bool { return true }

func (whHarness) Open(t *testing.T) sourcestest.Fixture {
	datasets := []webhooktest.Dataset{
		{Name: "people", Key: "pid", Emails: []string{"email"}, Phones: []string{"phone"}, IDs: map[string]string{"personId": "pid"}},
		{Name: "notes", Key: "nid", Emails: []string{"none"}, Phones: []string{"none"}},
		{Name: "replies", Key: "rid", Emails: []string{"none"}, Phones: []string{"none"}},
	}
	open := func(async bool) (*webhook.Connector, *webhooktest.System) {
		sys := webhooktest.New(t, testSecret, webhooktest.Options{Datasets: datasets, Async: async, ManualCallbacks: true})
		for _, d := range datasets {
			for _, r := range sourcestest.Scenario[d.Name] {
				b, _ := json.Marshal(r)
				sys.Put(d.Name, string(b))
			}
		}
		cfg := &webhook.Config{Name: "conformance", URL: sys.URL(), Secret: testSecret}
		for _, d := range datasets {
			cfg.Datasets = append(cfg.Datasets, webhook.Dataset{Name: d.Name, Key: d.Key})
		}
		var store webhook.ResultStore
		if async {
			cfg.CallbackBase = "https://app.example/api/webhooks/conformance"
			store = webhook.NewMemoryStore()
		}
		c, _ := newConnector(t, cfg, store)
		return c, sys
	}
	c, sys := open(false)
	return sourcestest.Fixture{
		Connector: c,
		Remove:    func(t *testing.T, ds, key string) { sys.Remove(ds, key) },
		Pending: func(t *testing.T) {
			// From now on the fixture's connector reaches a system that
			// answers later.
			ac, _ := open(true)
			*c = *ac
		},
	}
}

func TestConformance(t *testing.T) { sourcestest.Run(t, whHarness{}) }
