// Package intake is the intake function (queue dsr-intake): other systems
// submit requests as messages; the MessageId is the idempotency key.
package intake

import (
	"context"

	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/pipeline"
)

// New returns the queue handler.
func New(svc *pipeline.Service) funchost.QueueFunc {
	return func(ctx context.Context, m *funchost.QueueMessage) error {
		return svc.Intake(ctx, m.MessageID, m.Body)
	}
}
