// Package verify is the verify function (queue dsr-verify): it discovers again after erasure and
// fails the request if anything that should be gone remains.
package verify

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
			svc.Log.Error("verify: unusable message dropped", "err", err)
			return nil
		}
		return svc.Verify(ctx, sm.RequestID, m.DeliveryCount)
	}
}
