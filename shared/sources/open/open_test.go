package open_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/batch"
	"github.com/dsr-functions/dsr/shared/sources/open"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
)

func TestMain(m *testing.M) { os.Exit(azuritetest.Run(m)) }

// countGets counts the blob downloads a client makes, per blob name.
type countGets struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *countGets) Do(req *policy.Request) (*http.Response, error) {
	if r := req.Raw(); r.Method == http.MethodGet && !strings.Contains(r.URL.RawQuery, "comp=") {
		parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 3)
		c.mu.Lock()
		c.n[parts[len(parts)-1]]++
		c.mu.Unlock()
	}
	return req.Next()
}

func (c *countGets) get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

// Requests that discover at the same time share one pass over the Blob
// datasets, and each still gets exactly its own result.
func TestConcurrentDiscoveriesShareBlobPasses(t *testing.T) {
	acct := azuritetest.Account(t)
	name := azuritetest.Container(t, acct, "datasets")
	ctx := context.Background()
	size, err := sample.ParseSize("tiny")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range sample.Files() {
		var buf bytes.Buffer
		if err := sample.Generate(&buf, f, size, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := acct.Service.NewContainerClient(name).NewBlockBlobClient(f.Name).UploadBuffer(ctx, buf.Bytes(), nil); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := sources.LoadFile("../../../sample/sources.json")
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Datasets {
		cfg.Datasets[i].Container = name
	}
	counter := &countGets{n: map[string]int{}}
	svc, err := service.NewClientWithSharedKeyCredential(acct.Service.URL(), mustKey(t), &service.ClientOptions{ClientOptions: azcore.ClientOptions{PerCallPolicies: []policy.Policy{counter}}})
	if err != nil {
		t.Fatal(err)
	}
	conns, err := open.Connectors(ctx, cfg, open.Deps{Blob: svc, Getenv: os.Getenv, BlobBatch: batch.Options{Window: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer conns.Close()

	// 100 subjects: the demo subject and 99 others (some unknown).
	subjects := []sources.Subject{{Emails: []string{sample.DemoEmail}}}
	for i := 1; i < 100; i++ {
		subjects = append(subjects, sources.Subject{Emails: []string{fmt.Sprintf("person%03d@contoso.example", i)}})
	}
	results := make([]*sources.Discovery, len(subjects))
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i, s := range subjects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := conns.Discover(ctx, s)
			if err != nil {
				failed.Add(1)
				t.Errorf("discover %d: %v", i, err)
			}
			results[i] = d
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.FailNow()
	}
	passes := counter.get(sample.ContactsBlob)
	if passes == 0 || passes > 4 {
		t.Errorf("100 concurrent discoveries read the contacts blob %d times, want 1 to 4 shared passes", passes)
	}
	if results[0].Total() == 0 {
		t.Fatal("the demo subject was not found")
	}
	// Each result is exactly what a discovery of that subject alone finds.
	for _, i := range []int{0, 1, 50, 99} {
		alone, err := conns.Discover(ctx, subjects[i])
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(alone, results[i]) {
			t.Errorf("subject %d: batched result differs from its own discovery", i)
		}
	}
}

func mustKey(t *testing.T) *service.SharedKeyCredential {
	t.Helper()
	cs := azuritetest.ConnectionString(t)
	var name, key string
	for _, part := range strings.Split(cs, ";") {
		if v, ok := strings.CutPrefix(part, "AccountName="); ok {
			name = v
		}
		if v, ok := strings.CutPrefix(part, "AccountKey="); ok {
			key = v
		}
	}
	cred, err := service.NewSharedKeyCredential(name, key)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// A setting the sources config names that holds an unresolved Key Vault
// reference is refused by name, its value never repeated.
func TestConnectorsRefuseUnresolvedKeyVaultReferences(t *testing.T) {
	cfg, err := sources.Parse([]byte(`{"version":1,
	 "connections":{"billing":{"kind":"webhook","url":"https://billing.example/dsr","secretSetting":"BILLING_SECRET"}},
	 "datasets":[{"name":"billing","connection":"billing","facts":{"categories":["x"],"purposes":["y"],"retention":"z","source":"w"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if k == "BILLING_SECRET" {
			return "@Microsoft.KeyVault(VaultName=kv-dsr;SecretName=billing-secret)"
		}
		return ""
	}
	_, err = open.Connectors(context.Background(), cfg, open.Deps{Getenv: getenv})
	if err == nil || !strings.Contains(err.Error(), "BILLING_SECRET: holds an unresolved Key Vault reference") {
		t.Fatalf("Connectors: %v", err)
	}
	if strings.Contains(err.Error(), "kv-dsr") || strings.Contains(err.Error(), "billing-secret") {
		t.Errorf("the error repeats the value: %v", err)
	}
}
