package blobdataset

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"sync"
	"testing"

	"github.com/dsr-functions/dsr/shared/blobs"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
)

var (
	azuriteOnce sync.Once
	azuriteStop func()
	azuriteErr  error
)

// TestMain stops the Azurite that a test started (see needAzurite).
func TestMain(m *testing.M) {
	code := m.Run()
	if azuriteStop != nil {
		azuriteStop()
	}
	os.Exit(code)
}

// needAzurite starts Azurite the first time a test needs it, unless
// azuritetest.EnvVar names one already running. It starts lazily so that
// the scan benchmarks, which read local files, run without it (and
// without its start-up taking CPU from them).
func needAzurite(t testing.TB) {
	t.Helper()
	azuriteOnce.Do(func() {
		if os.Getenv(azuritetest.EnvVar) != "" {
			return
		}
		stop, addr, err := azuritetest.Start()
		if err != nil {
			azuriteErr = err
			return
		}
		azuriteStop = stop
		os.Setenv(azuritetest.EnvVar, addr)
	})
	if azuriteErr != nil {
		t.Fatalf("azuritetest: %v", azuriteErr)
	}
}

// fixture is one test's container in Azurite.
type fixture struct {
	t    testing.TB
	ctx  context.Context
	acct *blobs.Account
	c    string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	needAzurite(t)
	acct := azuritetest.Account(t)
	return &fixture{t: t, ctx: context.Background(), acct: acct, c: azuritetest.Container(t, acct, "ds")}
}

// put uploads a blob and returns its ETag.
func (f *fixture) put(name, data string) string {
	f.t.Helper()
	resp, err := f.acct.Service.NewContainerClient(f.c).NewBlockBlobClient(name).UploadBuffer(f.ctx, []byte(data), nil)
	if err != nil {
		f.t.Fatalf("upload %s: %v", name, err)
	}
	if resp.ETag == nil || *resp.ETag == "" {
		f.t.Fatalf("upload %s: no ETag", name)
	}
	return string(*resp.ETag)
}

func (f *fixture) del(name string) {
	f.t.Helper()
	if _, err := f.acct.Service.NewContainerClient(f.c).NewBlobClient(name).Delete(f.ctx, nil); err != nil {
		f.t.Fatalf("delete %s: %v", name, err)
	}
}

var testFacts = sources.Facts{
	Categories: []string{"contact details"},
	Purposes:   []string{"testing"},
	Retention:  "1 day",
	Source:     "the test",
}

// connector builds a validated config of the datasets in the fixture's
// container (default phone region US) and a connector over it.
func (f *fixture) connector(datasets ...sources.Dataset) *Connector {
	f.t.Helper()
	return f.connectorWith(nil, datasets...)
}

// connectorWith is connector with options.
func (f *fixture) connectorWith(opts []Option, datasets ...sources.Dataset) *Connector {
	f.t.Helper()
	cfg := &sources.Config{Version: 1, DefaultPhoneRegion: "US"}
	for _, d := range datasets {
		d.Container = f.c
		d.Facts = testFacts
		cfg.Datasets = append(cfg.Datasets, d)
	}
	if err := cfg.Validate(); err != nil {
		f.t.Fatalf("test config: %v", err)
	}
	return New(cfg, f.acct.Service, opts...)
}

func (f *fixture) discover(c *Connector, s sources.Subject) *sources.Discovery {
	f.t.Helper()
	d, err := c.Discover(f.ctx, s)
	if err != nil {
		f.t.Fatalf("Discover: %v", err)
	}
	if len(d.Datasets) != len(c.cfg.Datasets) {
		f.t.Fatalf("Discover returned %d datasets, config has %d", len(d.Datasets), len(c.cfg.Datasets))
	}
	for i, m := range d.Datasets {
		if m.Dataset != c.cfg.Datasets[i].Name {
			f.t.Errorf("Discovery.Datasets[%d] is %q, want %q (config order)", i, m.Dataset, c.cfg.Datasets[i].Name)
		}
		checkConsistent(f.t, m)
	}
	return d
}

// checkConsistent checks the invariants of one DatasetMatches: Records is
// the number of ordinals, no empty Locations, ordinals strictly increasing.
func checkConsistent(t testing.TB, m sources.DatasetMatches) {
	t.Helper()
	var n int64
	for _, loc := range m.Locations {
		if len(loc.Ordinals) == 0 {
			t.Errorf("dataset %s: empty Location for %s", m.Dataset, loc.Blob)
		}
		if loc.ETag == "" {
			t.Errorf("dataset %s: Location %s without ETag", m.Dataset, loc.Blob)
		}
		for i := 1; i < len(loc.Ordinals); i++ {
			if loc.Ordinals[i] <= loc.Ordinals[i-1] {
				t.Errorf("dataset %s: blob %s: ordinals not increasing: %v", m.Dataset, loc.Blob, loc.Ordinals)
			}
		}
		n += int64(len(loc.Ordinals))
	}
	if n != m.Records {
		t.Errorf("dataset %s: Records %d but %d ordinals", m.Dataset, m.Records, n)
	}
}

// matchesOf returns the matches of the named dataset.
func matchesOf(t testing.TB, d *sources.Discovery, name string) sources.DatasetMatches {
	t.Helper()
	for _, m := range d.Datasets {
		if m.Dataset == name {
			return m
		}
	}
	t.Fatalf("no dataset %s in the discovery", name)
	return sources.DatasetMatches{}
}

// ordinals maps each dataset to its matched ordinals (all blobs joined);
// datasets without matches map to nil.
func ordinals(d *sources.Discovery) map[string][]int64 {
	out := map[string][]int64{}
	for _, m := range d.Datasets {
		var o []int64
		for _, loc := range m.Locations {
			o = append(o, loc.Ordinals...)
		}
		out[m.Dataset] = o
	}
	return out
}

func checkOrdinals(t testing.TB, d *sources.Discovery, want map[string][]int64) {
	t.Helper()
	got := ordinals(d)
	for name, w := range want {
		if !reflect.DeepEqual(got[name], w) {
			t.Errorf("dataset %s: ordinals %v, want %v", name, got[name], w)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("dataset %s not expected", name)
		}
	}
}

// readAll reads the records of dm, each as compact JSON.
func readAll(t testing.TB, c *Connector, dm sources.DatasetMatches) ([]string, error) {
	t.Helper()
	var out []string
	err := c.Read(context.Background(), dm, func(r sources.Record) error {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		out = append(out, string(b))
		return nil
	})
	return out, err
}

func mustRead(t testing.TB, c *Connector, dm sources.DatasetMatches) []string {
	t.Helper()
	recs, err := readAll(t, c, dm)
	if err != nil {
		t.Fatalf("Read %s: %v", dm.Dataset, err)
	}
	return recs
}

func wantChanged(t testing.TB, c *Connector, dm sources.DatasetMatches) {
	t.Helper()
	recs, err := readAll(t, c, dm)
	if !errors.Is(err, sources.ErrChanged) {
		t.Fatalf("Read %s = %d records, %v; want ErrChanged", dm.Dataset, len(recs), err)
	}
}
