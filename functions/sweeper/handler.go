// Package sweeper is the sweeper function (timer, every five minutes): it
// re-drives requests stuck in a stage (a lost queue message must not strand
// a request) and deletes export packages whose links have expired.
package sweeper

import (
	"context"

	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/pipeline"
)

// New returns the timer handler.
func New(svc *pipeline.Service) funchost.TimerFunc {
	return func(ctx context.Context, info *funchost.TimerInfo) error {
		if info.IsPastDue {
			svc.Log.Info("sweeper: past due; sweeping now")
		}
		_, err := svc.Sweep(ctx)
		return err
	}
}
