// Package export is the export function (queue dsr-export): it builds the
// access package of a request.
package export

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
			svc.Log.Error("export: unusable message dropped", "err", err)
			return nil
		}
		return svc.Export(ctx, sm.RequestID, m.DeliveryCount)
	}
}
