package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/dsr-functions/dsr/shared/audit"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/policy"
	"github.com/dsr-functions/dsr/shared/sources"
)

// A change stage's report and audit trail must say what the committed
// rewrites did, also when the process dies between a blob's commit and the
// marks it leaves on the request: the retry would find nothing left to
// change there and report (and audit) nothing. So each rewrite is planned:
//
//  1. once every record is decided and the new content staged, the plan
//     (what the commit changes, the audit entries it owes) is written on the
//     request (Stored.PendingBlobs), in a conditional update that also
//     checks that the request still is at the stage (not cancelled);
//  2. the commit names the plan (the blob's metadata keeps the last few
//     plan ids, see sources.PlannedRewriter);
//  3. after the commit the entries are appended to the audit trail and the
//     plan becomes the blob's mark (ErasedBlobs), which the report sums.
//
// A retry settles the plans it finds first: a plan the blob names was
// committed and is confirmed as in 3, without rewriting; any other plan
// was not (the blob is still the version it replaced, or someone else
// replaced it) and is dropped, and the blob is changed as usual.

// errStageLeft refuses to plan a commit for a request that is no longer at
// the stage: cancelled, failed, or moved on.
var errStageLeft = errors.New("the request is no longer at this stage; nothing is committed")

// commitPlan is one planned rewrite of changeBlob.
type commitPlan struct {
	id string
	// before records the plan on the request (sources.CommitPlan's
	// BeforeCommit, with the counts and entries rewriteBlob collected).
	before func(done dsr.ErasedBlob, commit string, owed []audit.Entry) error
	// recorded: the plan is on the request, as pending.
	recorded bool
	pending  dsr.PendingBlob
}

// newPlanID is a random plan id: short, as blob metadata keeps many.
func newPlanID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// newCommitPlan plans a rewrite of loc for request id at stage.
func (s *Service) newCommitPlan(ctx context.Context, id, idPrefix string, d *sources.Dataset, loc sources.Location, stage dsr.Stage, policyName string) *commitPlan {
	cp := &commitPlan{id: newPlanID()}
	key := d.Name + "/" + loc.Blob
	cp.before = func(done dsr.ErasedBlob, commit string, owed []audit.Entry) error {
		pb := dsr.PendingBlob{Plan: cp.id, Commit: commit, Stage: stage, Blob: loc.Blob, BaseETag: loc.ETag, Done: done, Policy: policyName, IDPrefix: idPrefix}
		for _, e := range owed {
			pb.Records = append(pb.Records, dsr.PlannedRecord{Key: e.RecordKey, Action: e.Action})
		}
		_, err := s.Store.Update(ctx, id, func(cur *dsr.Stored) (bool, error) {
			if cur.State.Terminal() || cur.Stage != stage {
				return false, fmt.Errorf("%w (it is %s at %s)", errStageLeft, cur.State, cur.Stage)
			}
			if cur.PendingBlobs == nil {
				cur.PendingBlobs = map[string]dsr.PendingBlob{}
			}
			cur.PendingBlobs[key] = pb
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("record the plan: %w", err)
		}
		cp.recorded, cp.pending = true, pb
		return nil
	}
	return cp
}

// entriesOf are the audit entries a plan owes.
func entriesOf(requestID string, pb dsr.PendingBlob) []audit.Entry {
	prefix := pb.IDPrefix
	if prefix == "" {
		prefix = requestID
	}
	out := make([]audit.Entry, 0, len(pb.Records))
	for _, r := range pb.Records {
		out = append(out, recordEntry(requestID, prefix, pb.Done.Dataset, r.Key, r.Action, pb.Policy, pb.Stage))
	}
	return out
}

// confirm records a committed rewrite of the blob at key: its audit
// entries, then its mark (ErasedBlobs), dropping its plan. Both steps may
// repeat after a crash: entry ids are stable and the mark is the same.
func (s *Service) confirm(ctx context.Context, id, key string, done dsr.ErasedBlob, entries []audit.Entry, planID string) error {
	if len(entries) > 0 {
		if err := s.Audit.Append(ctx, entries...); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
	}
	_, err := s.Store.Update(ctx, id, func(cur *dsr.Stored) (bool, error) {
		if cur.ErasedBlobs == nil {
			cur.ErasedBlobs = map[string]dsr.ErasedBlob{}
		}
		cur.ErasedBlobs[key] = done
		if p, ok := cur.PendingBlobs[key]; ok && (planID == "" || p.Plan == planID) {
			delete(cur.PendingBlobs, key)
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("mark blob done: %w", err)
	}
	return nil
}

// settle decides a pending plan: committed (the blob names it) it is
// confirmed and what it did returned; otherwise it is dropped and nil
// returned (the blob is changed again as usual).
func (s *Service) settle(ctx context.Context, rw sources.Rewriter, id, key string, pb dsr.PendingBlob) (*dsr.ErasedBlob, error) {
	prw, ok := rw.(sources.PlannedRewriter)
	if !ok {
		return nil, fmt.Errorf("blob %s has a planned rewrite but the connector cannot tell whether it committed", key)
	}
	committed, etag, err := prw.Committed(ctx, pb.Done.Dataset, pb.Blob, sources.PlanRef{ID: pb.Plan, Commit: pb.Commit})
	if err != nil {
		return nil, fmt.Errorf("did the planned rewrite of %s commit: %w", key, err)
	}
	if committed {
		done := pb.Done
		done.ETag = etag
		s.Log.Info("a planned rewrite had committed; confirming it", "requestId", id, "stage", pb.Stage, "dataset", pb.Done.Dataset)
		if err := s.confirm(ctx, id, key, done, entriesOf(id, pb), pb.Plan); err != nil {
			return nil, err
		}
		return &done, nil
	}
	_, err = s.Store.Update(ctx, id, func(cur *dsr.Stored) (bool, error) {
		if p, ok := cur.PendingBlobs[key]; !ok || p.Plan != pb.Plan {
			return false, nil
		}
		delete(cur.PendingBlobs, key)
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("drop the plan of %s: %w", key, err)
	}
	return nil, nil
}

// settlePending settles the request's pending plans of stage (left by an
// attempt that died between planning and confirming) and returns the
// request as it is then.
func (s *Service) settlePending(ctx context.Context, rw sources.Rewriter, st *dsr.Stored, stage dsr.Stage) (*dsr.Stored, error) {
	if len(st.PendingBlobs) == 0 {
		return st, nil
	}
	for _, key := range slices.Sorted(maps.Keys(st.PendingBlobs)) {
		pb := st.PendingBlobs[key]
		if pb.Stage != stage {
			continue
		}
		if _, err := s.settle(ctx, rw, st.ID, key, pb); err != nil {
			return nil, fmt.Errorf("%s %s: %w", stage, st.ID, err)
		}
	}
	fresh, _, err := s.Store.Get(ctx, st.ID)
	if err != nil {
		return nil, fmt.Errorf("%s %s: reload: %w", stage, st.ID, err)
	}
	return fresh, nil
}

// doneIn sums the marks of the blobs of dataset (not a delegated change):
// what the committed rewrites did there, whichever attempt made them and
// whether or not the latest discovery still lists the blob.
func doneIn(marks map[string]dsr.ErasedBlob, dataset string) dsr.ErasedBlob {
	sum := dsr.ErasedBlob{Dataset: dataset}
	for k, m := range marks {
		if m.Dataset != dataset || k == dataset+delegatedKey {
			continue
		}
		sum.Deleted += m.Deleted
		sum.Masked += m.Masked
	}
	return sum
}

// errNotReached is a failed stage's report entry for a dataset it did not
// get to.
const errNotReached = "not changed: the stage failed before it got here (see the request's error)"

// beforeFailing gathers, for a change stage about to fail its request,
// what its partial report needs: pending plans are settled first (best
// effort: what a committed one did is confirmed and counted), then the
// discovery is read. The returned function puts the partial report on the
// request inside the failing update; it does nothing for other stages or
// when the stage left a report.
func (s *Service) beforeFailing(ctx context.Context, id string, stage dsr.Stage) func(*dsr.Stored) {
	if !slices.Contains(dsr.ChangeStages, stage) {
		return func(*dsr.Stored) {}
	}
	st, _, err := s.Store.Get(ctx, id)
	if err != nil {
		return func(*dsr.Stored) {}
	}
	if rw, ok := s.Connector.(sources.Rewriter); ok && len(st.PendingBlobs) > 0 {
		if _, err := s.settlePending(ctx, rw, st, stage); err != nil {
			s.Log.Warn("could not settle the planned rewrites of a failing stage; the report may miss them", "requestId", id, "stage", stage, "err", err)
		}
	}
	var disc sources.Discovery
	if err := s.positionsOf(ctx, st, &disc); err != nil {
		s.Log.Warn("no discovery for the partial report of a failing stage", "requestId", id, "stage", stage, "err", err)
	}
	return func(st *dsr.Stored) { s.partialReport(st, stage, &disc) }
}

// partialReport puts on a request whose change stage failed the report of
// what that stage changed before (from the blobs' marks), one entry per
// dataset discovered or changed; datasets it did not get to say so.
func (s *Service) partialReport(st *dsr.Stored, stage dsr.Stage, disc *sources.Discovery) {
	names := []string{}
	for _, dm := range disc.Datasets {
		names = append(names, dm.Dataset)
	}
	for _, m := range st.ErasedBlobs {
		if !slices.Contains(names, m.Dataset) {
			names = append(names, m.Dataset)
		}
	}
	now := s.NowUTC()
	switch stage {
	case dsr.StageErasure:
		if st.Erasure != nil {
			return
		}
		rep := &dsr.ErasureReport{Sources: []dsr.ErasureResult{}, CompletedAt: now, Incomplete: true}
		for _, name := range names {
			d := s.Sources.Dataset(name)
			res := dsr.ErasureResult{Source: name}
			if dg, ok := st.ErasedBlobs[name+delegatedKey]; ok {
				res.Action, res.Deleted, res.Masked, res.Retained = "delegated", int64(dg.Deleted), int64(dg.Masked), int64(dg.Retained)
				rep.Sources = append(rep.Sources, res)
				continue
			}
			if d != nil {
				out := policy.Decide(d)
				res.Action, res.Ground, res.LegalBasis, res.RetainUntil = string(out.Action), out.Ground, out.LegalBasis, out.RetainUntil
				if out.Action == sources.EraseRetain {
					continue // nothing was to change there; retention is reported by a finished erasure
				}
			}
			done, changed := doneIn(st.ErasedBlobs, name), hasMarks(st.ErasedBlobs, name)
			res.Deleted, res.Masked = int64(done.Deleted), int64(done.Masked)
			if !changed && discovered(disc, name) > 0 {
				res.Error = errNotReached
			}
			rep.Sources = append(rep.Sources, res)
		}
		st.Erasure = rep
	case dsr.StageRectification:
		if st.Rectification != nil {
			return
		}
		rep := &dsr.RectificationReport{Sources: []dsr.RectificationSource{}, CompletedAt: now, Incomplete: true}
		for _, name := range names {
			d := s.Sources.Dataset(name)
			if d == nil || d.SystemLog || !d.Rectifiable {
				continue
			}
			src := dsr.RectificationSource{Source: name, Status: statusRectified}
			if dg, ok := st.ErasedBlobs[name+delegatedKey]; ok {
				src.Rectified = int64(dg.Masked)
			} else {
				src.Rectified = int64(doneIn(st.ErasedBlobs, name).Masked)
				if !hasMarks(st.ErasedBlobs, name) {
					if discovered(disc, name) == 0 {
						continue
					}
					src.Status, src.Error = statusFailed, errNotReached
				}
			}
			rep.Sources = append(rep.Sources, src)
		}
		st.Rectification = rep
	}
}

// hasMarks reports whether any blob of dataset was changed.
func hasMarks(marks map[string]dsr.ErasedBlob, dataset string) bool {
	for k, m := range marks {
		if m.Dataset == dataset && k != dataset+delegatedKey {
			return true
		}
	}
	return false
}

// discovered is how many records of dataset disc found.
func discovered(disc *sources.Discovery, dataset string) int64 {
	for _, dm := range disc.Datasets {
		if dm.Dataset == dataset {
			return dm.Records
		}
	}
	return 0
}
