package pipeline

import (
	"context"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sources"
)

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
