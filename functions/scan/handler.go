// Package scan is the scan function (queue dsr-scan): it scans one shard
// of a discovery fanned out over Function instances (see
// shared/sources/blobdataset/fanout.go).
package scan

import (
	"context"
	"log/slog"
	"time"

	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/sources/blobdataset"
)

// Runner runs one shard (blobdataset.Connector).
type Runner interface {
	RunShard(ctx context.Context, m blobdataset.ShardMessage) error
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
		sm, err := blobdataset.ParseShardMessage(m.Body)
		if err != nil {
			log.Error("dsr-scan: unusable message dropped", "err", err)
			return nil
		}
		if r == nil {
			log.Warn("dsr-scan: fan-out is off; message dropped", "job", sm.Job)
			return nil
		}
		if err := r.RunShard(ctx, sm); err != nil {
			log.Warn("dsr-scan: shard failed; the queue delivers it again", "job", sm.Job, "shard", sm.Shard, "deliveryCount", m.DeliveryCount, "err", err)
			return err
		}
		return nil
	}
}
