// Package erase is the erase function (queue dsr-erase): it applies each dataset's erasure policy
// to the subject's records.
package erase

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
			svc.Log.Error("erase: unusable message dropped", "err", err)
			return nil
		}
		return svc.Erase(ctx, sm.RequestID, m.DeliveryCount)
	}
}
