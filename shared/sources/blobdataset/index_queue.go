package blobdataset

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// IndexMessage asks the scan queue to build one blob's index: dataset and
// blob names only (the config's, not personal data).
type IndexMessage struct {
	Dataset string `json:"dataset"`
	Blob    string `json:"blob"`
}

// ParseScanMessage reads a scan queue message: a fanned-out scan's shard,
// or an index to build (exactly one of the results is set).
func ParseScanMessage(body []byte) (*ShardMessage, *IndexMessage, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, nil, fmt.Errorf("scan message: %w", err)
	}
	if _, ok := probe["job"]; ok {
		m, err := ParseShardMessage(body)
		if err != nil {
			return nil, nil, err
		}
		return &m, nil, nil
	}
	var m IndexMessage
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return nil, nil, fmt.Errorf("scan message: %w", err)
	}
	if m.Dataset == "" || m.Blob == "" {
		return nil, nil, errors.New("scan message: neither a shard nor a dataset and blob")
	}
	return nil, &m, nil
}

// IndexedDatasets are the names of the datasets whose index is on.
func (c *Connector) IndexedDatasets() []string {
	if c.index == nil {
		return nil
	}
	var out []string
	for _, d := range c.cfg.Datasets {
		if d.Index {
			out = append(out, d.Name)
		}
	}
	return out
}

// RefreshIndexes asks send to build the index of every blob of an indexed
// dataset whose index is missing or stale, and deletes the indexes of
// blobs that are gone. It returns how many builds it asked for. The
// sweeper calls it (every five minutes): an index is refreshed only for
// the blobs that changed. send gets the blob's current version (ETag, ""
// when the store cannot tell) besides the message, to name the ask: one
// build per version, however often it is asked for.
func (c *Connector) RefreshIndexes(ctx context.Context, send func(ctx context.Context, m IndexMessage, version string) error) (int, error) {
	n := 0
	var errs []error
	for _, name := range c.IndexedDatasets() {
		stale, etags, err := c.staleIndexes(ctx, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, b := range stale {
			if err := send(ctx, IndexMessage{Dataset: name, Blob: b}, etags[b]); err != nil {
				errs = append(errs, fmt.Errorf("dataset %s: ask for an index build: %w", name, err))
				continue
			}
			n++
		}
		if _, err := c.PruneIndexes(ctx, name); err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}
