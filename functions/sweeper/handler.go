// Package sweeper is the sweeper function (timer, every five minutes): it
// re-drives requests stuck in a stage (a lost queue message must not strand
// a request), deletes export packages whose links have expired, expires
// requests never verified, deletes agents' proofs of authority after their
// request's retention (and proofs left without a request), and deletes
// ended rate-limit windows.
package sweeper

import (
	"context"
	"errors"
	"time"

	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/pipeline"
)

// Windows is what keeps rate-limit windows (shared/ratelimit).
type Windows interface {
	Sweep(ctx context.Context, olderThan time.Duration) (int, error)
}

// New returns the timer handler; limits may be nil.
func New(svc *pipeline.Service, limits Windows) funchost.TimerFunc {
	return func(ctx context.Context, info *funchost.TimerInfo) error {
		if info.IsPastDue {
			svc.Log.Info("sweeper: past due; sweeping now")
		}
		_, err := svc.Sweep(ctx)
		if _, perr := svc.SweepProofs(ctx); perr != nil {
			err = errors.Join(err, perr)
		}
		if limits != nil {
			// A day's margin: no limit of the app spans more than a day.
			if n, lerr := limits.Sweep(ctx, 24*time.Hour); lerr != nil {
				err = errors.Join(err, lerr)
			} else if n > 0 {
				svc.Log.Info("sweeper: rate-limit windows deleted", "windows", n)
			}
		}
		return err
	}
}
