// Package sweeper is the sweeper function (timer, every five minutes): it
// re-drives requests stuck in a stage (a lost queue message must not strand
// a request), deletes export packages whose links have expired, expires
// requests never verified, deletes agents' proofs of authority after their
// request's retention (and proofs left without a request), and deletes
// ended rate-limit windows and the blobs of fanned-out scans a day old,
// and asks for the identifier indexes that are missing or stale.
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

// SweepFunc is a Windows that is a function (a fanned-out scan's blobs).
type SweepFunc func(ctx context.Context, olderThan time.Duration) (int, error)

// Sweep calls f.
func (f SweepFunc) Sweep(ctx context.Context, olderThan time.Duration) (int, error) {
	return f(ctx, olderThan)
}

// New returns the timer handler; limits and scans (a fanned-out
// discovery's jobs and results, deleted a day after they were last
// written) may be nil.
//
// indexes, if set, asks for the builds of the identifier indexes that are
// missing or stale (only blobs that changed) and returns how many.
func New(svc *pipeline.Service, limits, scans Windows, indexes func(context.Context) (int, error)) funchost.TimerFunc {
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
		if indexes != nil {
			if n, ierr := indexes(ctx); ierr != nil {
				err = errors.Join(err, ierr)
			} else if n > 0 {
				svc.Log.Info("sweeper: index builds asked for", "blobs", n)
			}
		}
		if scans != nil {
			if n, serr := scans.Sweep(ctx, 24*time.Hour); serr != nil {
				err = errors.Join(err, serr)
			} else if n > 0 {
				svc.Log.Info("sweeper: fanned-out scans' blobs deleted", "blobs", n)
			}
		}
		return err
	}
}
