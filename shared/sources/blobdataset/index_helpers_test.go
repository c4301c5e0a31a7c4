package blobdataset

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
)

var testIndexSecret = []byte("test-index-secret-0123456789")

// smallIndexBlocks makes index blocks small and lets discovery use an
// index however many of a blob's blocks are candidates, so that the small
// data of tests goes through many blocks and through the index.
func smallIndexBlocks(t testing.TB, blockBytes int64) {
	t.Helper()
	oldBlock, oldMin, oldProbe := indexBlockBytes, minCandidates, indexProbe
	indexBlockBytes, minCandidates, indexProbe = blockBytes, 1<<30, 256
	t.Cleanup(func() { indexBlockBytes, minCandidates, indexProbe = oldBlock, oldMin, oldProbe })
}

// logBuffer is a slog handler's output, safe for concurrent writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// indexed is a connector with the index on over an index container of
// its own, and one without over the same data.
type indexedPair struct {
	idx, plain *Connector
	state      *container.Client
	log        *logBuffer
}

// indexedConnectors turns the index on for every dataset of cfg (which
// must be of indexable formats) and returns both connectors.
func (f *fixture) indexedConnectors(cfg *sources.Config) *indexedPair {
	f.t.Helper()
	for i := range cfg.Datasets {
		cfg.Datasets[i].Index = true
	}
	if err := cfg.Validate(); err != nil {
		f.t.Fatal(err)
	}
	state := f.acct.Service.NewContainerClient(azuritetest.Container(f.t, f.acct, "state"))
	log := &logBuffer{}
	idx := New(cfg, f.acct.Service, WithIndex(IndexOptions{Container: state, Secret: testIndexSecret,
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))}))
	return &indexedPair{idx: idx, plain: New(cfg, f.acct.Service), state: state, log: log}
}

// buildAll builds the index of every stale blob of every dataset.
func buildAll(t testing.TB, c *Connector) []IndexStats {
	t.Helper()
	var out []IndexStats
	for _, d := range c.cfg.Datasets {
		stale, err := c.StaleIndexes(context.Background(), d.Name)
		if err != nil {
			t.Fatalf("StaleIndexes %s: %v", d.Name, err)
		}
		for _, b := range stale {
			st, err := c.BuildIndex(context.Background(), d.Name, b)
			if err != nil {
				t.Fatalf("BuildIndex %s %s: %v", d.Name, b, err)
			}
			out = append(out, st)
		}
		if stale, err := c.StaleIndexes(context.Background(), d.Name); err != nil || len(stale) != 0 {
			t.Fatalf("StaleIndexes %s after building = %v, %v; want none", d.Name, stale, err)
		}
	}
	return out
}

// sameDiscovery discovers subjects with both connectors in one
// DiscoverMany call each and fails unless the results are identical
// (ordinals, mentions, offsets, lengths, ETags, errors).
func (p *indexedPair) sameDiscovery(t testing.TB, subjects ...sources.Subject) []*sources.Discovery {
	t.Helper()
	want, err := p.plain.DiscoverMany(context.Background(), subjects)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	got, err := p.idx.DiscoverMany(context.Background(), subjects)
	if err != nil {
		t.Fatalf("indexed: %v", err)
	}
	for i := range subjects {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("subject %d: indexed discovery differs from the scan:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	return got
}

// counts returns how many blob lookups the index answered and how many it
// left to a scan, since the last call.
func (p *indexedPair) counts() (used, bypassed int64) {
	return p.idx.index.used.Swap(0), p.idx.index.bypassed.Swap(0)
}

// indexBytes returns the index object of blob in dataset.
func (p *indexedPair) indexBytes(t testing.TB, dataset, blob string) []byte {
	t.Helper()
	d := p.idx.cfg.Dataset(dataset)
	data, _, _, err := p.idx.index.store.get(context.Background(), p.idx.index.name(d, blob), "", 0, 0)
	if err != nil {
		t.Fatalf("read index of %s: %v", blob, err)
	}
	return data
}

// putIndex overwrites the index object of blob in dataset.
func (p *indexedPair) putIndex(t testing.TB, dataset, blob string, data []byte) {
	t.Helper()
	d := p.idx.cfg.Dataset(dataset)
	name := p.idx.index.name(d, blob)
	etag, _, err := p.idx.index.store.props(context.Background(), name)
	if err != nil && !errors.Is(err, errIndexGone) {
		t.Fatal(err)
	}
	if err := p.idx.index.store.put(context.Background(), name, bytes.NewReader(data), etag, nil); err != nil {
		t.Fatal(err)
	}
}
