package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sources"
)

// loadChange begins a change stage's run: the request, its discovery and
// the connector's rewriter. The request is nil when there is nothing to
// do: unknown, ended, or already past this stage (a redelivered message;
// the message of the stage it waits for is sent again, in case a crash lost
// it). A request that has not reached the stage is an error.
func (s *Service) loadChange(ctx context.Context, id string, stage dsr.Stage) (*dsr.Stored, *sources.Discovery, sources.Rewriter, error) {
	st, err := s.loadForStage(ctx, id, string(stage))
	if st == nil || err != nil {
		return nil, nil, nil, err
	}
	switch {
	case st.State.Terminal():
		return nil, nil, nil, nil
	case st.Stage != stage && dsr.Before(st.Type, stage, st.Stage):
		return nil, nil, nil, s.nextMessage(ctx, st)
	case st.Stage != stage:
		return nil, nil, nil, fmt.Errorf("%s %s: request is at stage %s", stage, id, st.Stage)
	}
	if len(s.Secret) == 0 {
		s.recordAttemptError(ctx, id, stage, ErrNoSecret)
		return nil, nil, nil, Permanent(fmt.Errorf("%s %s: %w", stage, id, ErrNoSecret))
	}
	rw, ok := s.Connector.(sources.Rewriter)
	if !ok {
		return nil, nil, nil, Permanent(fmt.Errorf("%s %s: the connector cannot change data", stage, id))
	}
	var disc sources.Discovery
	if err := s.positionsOf(ctx, st, &disc); err != nil {
		return nil, nil, nil, fmt.Errorf("%s %s: read discovery: %w", stage, id, err)
	}
	return st, &disc, rw, nil
}

// The change stages (erasure, rectification, restriction) differ only in
// what they do to a record; the walk over the datasets is the same: in
// dependents-first order, delegating systems are asked to make the change
// themselves, a system that could not be searched fails its part, and the
// other datasets get their records rewritten blob by blob, each blob once
// (ErasedBlobs marks it), conditionally on the version discovery saw.

// changer is what one change stage does.
type changer struct {
	stage dsr.Stage
	// action is what a delegating system is asked for ("erasure",
	// "rectification", "restriction", "lift-restriction").
	action string
	// plan says what the stage does in one dataset.
	plan func(d *sources.Dataset, dm sources.DatasetMatches) plan
}

// plan is a change stage's decision for one dataset.
type plan struct {
	// act: the dataset is the stage's business (a rectification leaves
	// datasets not marked rectifiable alone); delegate: its system makes
	// the change itself.
	act, delegate bool
	// rewrite: its records are rewritten with decide, audited under
	// policy; otherwise they are left as they are (an erasure retains).
	rewrite bool
	policy  string
	decide  func(loc sources.Location) recordDecision
}

// outcome is what the walk did in one dataset.
type outcome struct {
	d    *sources.Dataset
	dm   sources.DatasetMatches
	plan plan
	// done sums what the rewrites (or the delegating system) did.
	done dsr.ErasedBlob
	// failure says why the system's part failed ("": it did its part).
	failure string
}

// Lost races: a blob that another request (or anyone) changed between
// discovery and this stage's conditional rewrite is discovered again and
// the walk goes on from the fresh positions in the same invocation, after
// a short jittered wait, up to maxLostRaces times: many erasures of one
// dataset at once each lose the race to the others several times, and that
// is progress, not failure, so it uses up neither deliveries nor the
// stage's scheduled retries. Blobs already done are marked on the request
// (ErasedBlobs) and skipped.
const maxLostRaces = 16

// lostRaceBackoff spaces the tries after a lost race: 50 ms doubling to 2 s.
var lostRaceBackoff = Backoff{Base: 50 * time.Millisecond, Max: 2 * time.Second}

// keyedLocks are locks by name that a waiter can give up on (its context
// ends). The zero value is ready; locks are kept for the life of the
// process, one per blob changed.
type keyedLocks struct{ m sync.Map }

func (k *keyedLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	v, _ := k.m.LoadOrStore(key, make(chan struct{}, 1))
	ch := v.(chan struct{})
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// changeEach walks a discovery's datasets for change c and returns one
// outcome per configured dataset, in the order they were changed, and the
// datasets whose systems failed their part; data that changed meanwhile is
// discovered again and the walk retried in place (see maxLostRaces). An
// error means the stage failed (it is retried), including while waiting
// for a delegating system (see ignoreWaiting).
func (s *Service) changeEach(ctx context.Context, rw sources.Rewriter, st *dsr.Stored, disc *sources.Discovery, attempt int, c changer) ([]outcome, []string, error) {
	// What an earlier attempt committed but did not confirm is confirmed
	// first, so the walk skips those blobs and the report counts them.
	st, err := s.settlePending(ctx, rw, st, c.stage)
	if err != nil {
		return nil, nil, err
	}
	for race := 1; ; race++ {
		out, failed, err := s.changeOnce(ctx, rw, st, disc, attempt, c)
		var re *rediscovered
		if !errors.As(err, &re) || race >= maxLostRaces {
			return out, failed, err
		}
		fresh, err := s.afterLostRace(ctx, st.ID, c.stage, race)
		if err != nil {
			return nil, nil, err
		}
		st, disc = fresh, re.fresh
	}
}

// afterLostRace waits a jittered while after lost race number race, then
// reads the request again to go on from.
func (s *Service) afterLostRace(ctx context.Context, id string, stage dsr.Stage, race int) (*dsr.Stored, error) {
	wait := lostRaceBackoff.Delay(race, s.random())
	s.Log.Info("lost a race for changed data; going on from fresh positions", "requestId", id, "stage", stage, "race", race, "wait", wait)
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("%s %s: %w", stage, id, ctx.Err())
	case <-time.After(wait):
	}
	st, _, err := s.Store.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("%s %s: reload: %w", stage, id, err)
	}
	if st.State.Terminal() || st.Stage != stage {
		return nil, fmt.Errorf("%s %s: request moved to %s/%s meanwhile", stage, id, st.Stage, st.State)
	}
	return st, nil
}

// changeOnce is one walk of changeEach.
func (s *Service) changeOnce(ctx context.Context, rw sources.Rewriter, st *dsr.Stored, disc *sources.Discovery, attempt int, c changer) ([]outcome, []string, error) {
	var out []outcome
	var failed []string
	// marks are the blobs done, by this walk or an earlier attempt: the
	// report sums them, not the blobs this discovery still lists (a fresh
	// one after a lost race no longer lists a blob whose records of hers
	// were all deleted).
	marks := maps.Clone(st.ErasedBlobs)
	if marks == nil {
		marks = map[string]dsr.ErasedBlob{}
	}
	for _, dm := range s.dependentsFirst(disc) {
		d := s.Sources.Dataset(dm.Dataset)
		if d == nil {
			continue
		}
		o := outcome{d: d, dm: dm, plan: c.plan(d, dm)}
		switch {
		case !o.plan.act:
		case o.plan.delegate:
			done, failure, err := s.delegate(ctx, st, d, c.stage, c.action, attempt)
			if err != nil {
				return nil, nil, err
			}
			o.done, o.failure = done, failure
		case dm.Error != "":
			o.failure = dm.Error // not searched: nothing known to change
		case o.plan.rewrite:
			for _, loc := range dm.Locations {
				if _, ok := marks[d.Name+"/"+loc.Blob]; ok {
					continue
				}
				done, err := s.changeBlob(ctx, rw, st, d, loc, c.stage, o.plan.policy, attempt, o.plan.decide)
				if reason, gaveUp := failedSource(err); gaveUp {
					o.failure = reason
					break
				}
				if err != nil {
					return nil, nil, err
				}
				marks[d.Name+"/"+loc.Blob] = done
			}
			o.done = doneIn(marks, d.Name)
		}
		if o.failure != "" {
			failed = append(failed, d.Name)
		}
		out = append(out, o)
	}
	return out, failed, nil
}
