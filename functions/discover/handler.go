// Package discover is the discover function (queue dsr-discover): it finds
// the subject's records in every source.
package discover

import (
	"context"
	"errors"

	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/pipeline"
)

// New returns the queue handler.
func New(svc *pipeline.Service) funchost.QueueFunc {
	return func(ctx context.Context, m *funchost.QueueMessage) error {
		sm, err := pipeline.ParseStageMessage(m.Body)
		if errors.Is(err, pipeline.ErrInvalidMessage) {
			svc.Log.Error("discover: unusable message dropped", "err", err)
			return nil
		}
		return svc.Discover(ctx, sm.RequestID, m.DeliveryCount)
	}
}
