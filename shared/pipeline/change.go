package pipeline

import (
	"context"
	"fmt"

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
	if err := s.Store.GetDiscovery(ctx, id, &disc); err != nil {
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

// changeEach walks a discovery's datasets for change c and returns one
// outcome per configured dataset, in the order they were changed, and the
// datasets whose systems failed their part. An error means the delivery
// must fail (and the message come back), including while waiting for a
// delegating system (see ignoreWaiting).
func (s *Service) changeEach(ctx context.Context, rw sources.Rewriter, st *dsr.Stored, disc *sources.Discovery, attempt int, c changer) ([]outcome, []string, error) {
	var out []outcome
	var failed []string
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
				done, ok := st.ErasedBlobs[d.Name+"/"+loc.Blob]
				if !ok {
					var err error
					done, err = s.changeBlob(ctx, rw, st, d, loc, c.stage, o.plan.policy, attempt, o.plan.decide(loc))
					if reason, gaveUp := failedSource(err); gaveUp {
						o.failure = reason
						break
					}
					if err != nil {
						return nil, nil, err
					}
				}
				o.done.Deleted += done.Deleted
				o.done.Masked += done.Masked
			}
		}
		if o.failure != "" {
			failed = append(failed, d.Name)
		}
		out = append(out, o)
	}
	return out, failed, nil
}
