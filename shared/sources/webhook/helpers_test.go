package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/webhook"
	"github.com/dsr-functions/dsr/shared/sources/webhook/webhooktest"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
)

func TestMain(m *testing.M) { os.Exit(azuritetest.Run(m)) }

var (
	testSecret  = []byte("test-signing-secret-0123456789abcdef!")
	testHashKey = []byte("test-hash-key-0123456789abcdef-ghijkl")
	testReqID   = "r019b7a2c4e00a1b2c3d4e5f6a7b8"
	// testSubject as the pipeline passes it: phones without '+'.
	testSubject = sources.Subject{
		Emails: []string{"ann@example.com"},
		Phones: []string{"14155550123"},
		IDs:    map[string]string{"customerId": "C-1001"},
	}
	// personal are the values that must never appear in an error.
	personal = []string{"ann@example.com", "14155550123", "C-1001", "Ann Example"}
)

// newSystem starts a scripted receiving system (see webhooktest) with the
// test secret: it checks and records every request, then answers with
// respond.
func newSystem(t *testing.T, respond func(n int, r webhooktest.Request, w http.ResponseWriter, req *http.Request)) *webhooktest.System {
	t.Helper()
	return webhooktest.New(t, testSecret, webhooktest.Options{Respond: respond})
}

// newHashedSystem is newSystem for a system in hashed mode.
func newHashedSystem(t *testing.T, respond func(n int, r webhooktest.Request, w http.ResponseWriter, req *http.Request)) *webhooktest.System {
	t.Helper()
	return webhooktest.New(t, testSecret, webhooktest.Options{Respond: respond, Hashed: true, HashKey: testHashKey})
}

// testConfig is a valid raw-mode config for the system.
func testConfig(url string) *webhook.Config {
	return &webhook.Config{
		Name:     "crm",
		URL:      url,
		Secret:   testSecret,
		HashKey:  testHashKey,
		Datasets: []webhook.Dataset{{Name: "contacts"}, {Name: "orders", Key: "orderNo"}},
	}
}

// sleeps records the waits a connector asked for, without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) get() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

func newConnector(t *testing.T, cfg *webhook.Config, store webhook.ResultStore) (*webhook.Connector, *sleeps) {
	t.Helper()
	c, err := webhook.New(cfg, nil, store)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	sl := &sleeps{}
	webhook.SetSleep(c, func(ctx context.Context, d time.Duration) error {
		sl.mu.Lock()
		sl.d = append(sl.d, d)
		sl.mu.Unlock()
		return ctx.Err()
	})
	return c, sl
}

func reqCtx() context.Context {
	return webhook.WithRequest(context.Background(), testReqID, testSubject)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// readAll reads the records of dm as compact JSON.
func readAll(ctx context.Context, c *webhook.Connector, dm sources.DatasetMatches) ([]string, error) {
	var out []string
	err := c.Read(ctx, dm, func(r sources.Record) error {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		out = append(out, string(b))
		return nil
	})
	return out, err
}

func matchesOf(t *testing.T, d *sources.Discovery, name string) sources.DatasetMatches {
	t.Helper()
	for _, m := range d.Datasets {
		if m.Dataset == name {
			return m
		}
	}
	t.Fatalf("no dataset %s in the discovery", name)
	return sources.DatasetMatches{}
}

// noPersonalData fails when err's message holds a subject value.
func noPersonalData(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, v := range personal {
		if strings.Contains(err.Error(), v) {
			t.Errorf("error %q contains personal data %q", err, v)
		}
	}
}

func asError(t *testing.T, err error) *webhook.Error {
	t.Helper()
	var e *webhook.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *webhook.Error", err, err)
	}
	return e
}
