// Package scan is the scan function (queue dsr-scan): it scans one shard
// of a discovery fanned out over Function instances (see
// shared/sources/blobdataset/fanout.go), or builds one blob's identifier
// index (index*.go there).
package scan

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/blobdataset"
)

// Runner runs one shard or builds one blob's index (blobdataset.Connector).
type Runner interface {
	RunShard(ctx context.Context, m blobdataset.ShardMessage) error
	BuildIndex(ctx context.Context, dataset, blob string) (blobdataset.IndexStats, error)
	// SweepScans deletes the scans' blobs older than olderThan.
	SweepScans(ctx context.Context, olderThan time.Duration) (int, error)
}

// New returns the queue handler. A message that cannot be read is dropped
// (logged): delivering it again cannot help. A failed shard is returned
// as an error, for the queue to deliver again (its result is recorded
// only once, so a redelivery repeats nothing). With no runner (no Blob
// dataset, or fan-out off) messages are dropped.
func New(r Runner, log *slog.Logger) funchost.QueueFunc {
	return func(ctx context.Context, m *funchost.QueueMessage) error {
		shard, index, err := blobdataset.ParseScanMessage(m.Body)
		if err != nil {
			log.Error("dsr-scan: unusable message dropped", "err", err)
			return nil
		}
		if r == nil {
			log.Warn("dsr-scan: fan-out and the index are off; message dropped")
			return nil
		}
		if index != nil {
			return buildIndex(ctx, r, log, index, m.DeliveryCount)
		}
		if err := r.RunShard(ctx, *shard); err != nil {
			log.Warn("dsr-scan: shard failed; the queue delivers it again", "job", shard.Job, "shard", shard.Shard, "deliveryCount", m.DeliveryCount, "err", err)
			return err
		}
		return nil
	}
}

// buildIndex builds one blob's index. Data that cannot be indexed (a
// malformed record, the blob gone) is logged and the message dropped:
// discovery scans that blob, and the next refresh asks again once it
// changes. Anything else (the blob changed while it was read, storage
// unreachable) is for the queue to deliver again.
func buildIndex(ctx context.Context, r Runner, log *slog.Logger, m *blobdataset.IndexMessage, deliveries int) error {
	st, err := r.BuildIndex(ctx, m.Dataset, m.Blob)
	var bad *sources.DataError
	switch {
	case errors.As(err, &bad):
		log.Warn("dsr-scan: a blob cannot be indexed; discovery scans it", "dataset", m.Dataset, "blob", m.Blob, "reason", bad.Reason)
		return nil
	case err != nil:
		log.Warn("dsr-scan: index build failed; the queue delivers it again", "dataset", m.Dataset, "blob", m.Blob, "deliveryCount", deliveries, "err", err)
		return err
	case !st.Fresh:
		log.Info("dsr-scan: blob indexed", "dataset", m.Dataset, "blob", m.Blob, "records", st.Records)
	}
	return nil
}
