package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/dsr-functions/dsr/shared/audit"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/policy"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/multi"
)

// ErrNoSecret is returned when erasure needs the pseudonymisation secret
// (for audit record keys and HMAC masks) and none is configured.
var ErrNoSecret = errors.New("DSR_PSEUDONYM_SECRET is not set")

// afterDiscovery moves a request on from discovery along its route: the
// optional approval step is taken for the types DSR_APPROVAL_TYPES names
// and for a repeat request (Art. 12(5)).
func (s *Service) afterDiscovery(st *dsr.Stored, attempt int, detail string) error {
	return s.advance(st, dsr.StageDiscovery, attempt, detail)
}

// advance moves a request from stage to the next step of its route.
func (s *Service) advance(st *dsr.Stored, stage dsr.Stage, attempt int, detail string) error {
	next, ok := dsr.Next(st.Type, stage, s.takes(st))
	if !ok {
		return fmt.Errorf("%s %s: no stage after %s", st.Type, st.ID, stage)
	}
	_, err := st.Advance(next.Stage, next.State, s.NowUTC(), attempt, detail)
	return err
}

// Approve lets a request waiting for approval continue along its route: to
// its change stage, or, for a repeat access request, to export.
func (s *Service) Approve(ctx context.Context, id string, by dsr.Actor) (*dsr.Stored, error) {
	st, err := s.decide(ctx, id, func(st *dsr.Stored) error { return st.Approve(s.NowUTC(), &by) })
	if err != nil {
		return st, err
	}
	return st, s.nextMessage(ctx, st)
}

// Reject declines a request waiting for approval, with the reason and the
// Art. 12(4) notice.
func (s *Service) Reject(ctx context.Context, id, reason string, by dsr.Actor) (*dsr.Stored, error) {
	return s.decide(ctx, id, func(st *dsr.Stored) error { return st.Reject(reason, s.NowUTC(), &by) })
}

// Erase applies each dataset's erasure policy to the subject's records (the
// dsr-erase queue): delete, mask, or retain under an Art. 17(3) ground.
// System logs are always retained. Each blob is rewritten conditionally on
// the ETag discovery saw and marked done on the request, so a redelivered
// message skips it; data that changed meanwhile is discovered again, never
// clobbered.
func (s *Service) Erase(ctx context.Context, id string, attempt int) error {
	st, disc, rw, err := s.loadChange(ctx, id, dsr.StageErasure)
	if st == nil || err != nil {
		return err
	}
	// Filed before anything changes; reading what it keeps may lose a race
	// too (see maxLostRaces).
	for race := 1; ; race++ {
		err := s.fileTombstone(ctx, st, disc)
		var re *rediscovered
		if !errors.As(err, &re) || race >= maxLostRaces {
			if err != nil {
				return err
			}
			break
		}
		if st, err = s.afterLostRace(ctx, id, dsr.StageErasure, race); err != nil {
			return err
		}
		disc = re.fresh
	}
	subj, _, err := s.subjectFor(ctx, st)
	if err != nil {
		return fmt.Errorf("erase %s: %w", id, err)
	}
	outcomes, failed, err := s.changeEach(ctx, rw, st, disc, attempt, changer{stage: dsr.StageErasure, action: "erasure",
		plan: func(d *sources.Dataset, dm sources.DatasetMatches) plan {
			out := policy.Decide(d)
			return plan{act: true, delegate: s.delegates(d.Name), rewrite: out.Action != sources.EraseRetain, policy: string(out.Action),
				decide: func(loc sources.Location) recordDecision { return s.erasure(subj, d, loc, out) }}
		}})
	if err != nil {
		return ignoreWaiting(err)
	}
	report := &dsr.ErasureReport{Sources: []dsr.ErasureResult{}}
	for _, o := range outcomes {
		if o.plan.delegate {
			report.Sources = append(report.Sources, dsr.ErasureResult{Source: o.d.Name, Action: "delegated", Error: o.failure,
				Deleted: int64(o.done.Deleted), Masked: int64(o.done.Masked), Retained: int64(o.done.Retained)})
			continue
		}
		out := policy.Decide(o.d)
		res := dsr.ErasureResult{Source: o.d.Name, Action: string(out.Action), Ground: out.Ground, LegalBasis: out.LegalBasis, RetainUntil: out.RetainUntil,
			Deleted: int64(o.done.Deleted), Masked: int64(o.done.Masked), Error: o.failure}
		if res.Deleted+res.Masked > 0 {
			res.Note = o.d.ChangeNote()
		}
		if !o.plan.rewrite && o.failure == "" {
			res.Retained = o.dm.Records
			if o.dm.Records > 0 {
				if err := s.Audit.Append(ctx, s.recordEntries(st, o.d, o.dm, "retained", out)...); err != nil {
					return fmt.Errorf("erase %s: audit: %w", id, err)
				}
			}
		}
		report.Sources = append(report.Sources, res)
	}
	report.CompletedAt = s.NowUTC()
	if s.Cleanup != nil {
		// Verification must ask the systems again, not reuse answers
		// they gave before the erasure.
		if err := s.Cleanup(ctx, id); err != nil {
			return fmt.Errorf("erase %s: forget systems' earlier answers: %w", id, err)
		}
	}
	st, err = s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
		if st.State.Terminal() || st.Stage != dsr.StageErasure {
			return false, nil
		}
		st.Erasure = report
		for _, f := range failed {
			st.AddFailedSource(f)
		}
		st.LastAttemptError = ""
		return true, s.advance(st, dsr.StageErasure, attempt, eraseDetail(report))
	})
	if err != nil {
		return err
	}
	s.Log.Info("erasure done", "requestId", id)
	if err := s.syncAudit(ctx, st); err != nil {
		return err
	}
	return s.nextMessage(ctx, st)
}

func eraseDetail(r *dsr.ErasureReport) string {
	var del, mask, keep int64
	for _, x := range r.Sources {
		del, mask, keep = del+x.Deleted, mask+x.Masked, keep+x.Retained
	}
	return fmt.Sprintf("%d deleted, %d masked, %d retained", del, mask, keep)
}

// erasure is what an erasure does to each discovered record of a location
// under policy out: delete it or mask it. Records that only mention the
// subject (subj, as discovery looked for her) keep everything but the
// mention. A record whose masks already hold stays unchanged.
func (s *Service) erasure(subj sources.Subject, d *sources.Dataset, loc sources.Location, out policy.Outcome) recordDecision {
	masker := policy.Masker{Secret: s.Secret}
	return func(ordinal int64, rec sources.Record) (*sources.Record, string, error) {
		if loc.Mentioned(ordinal) {
			// Someone else's record that mentions her: her mention goes,
			// the record stays.
			masked, changed := policy.MaskMentions(rec, d.FreeText, subj, s.Sources.DefaultPhoneRegion)
			if !changed {
				return &rec, "unchanged", nil
			}
			return &masked, "mention masked", nil
		}
		if out.Action == sources.EraseDelete {
			return nil, "deleted", nil
		}
		pending := pendingRules(rec, d.Erasure.Mask)
		if len(pending) == 0 {
			return &rec, "unchanged", nil
		}
		masked, err := masker.Mask(rec, pending, d.Format == sources.FormatCSV)
		if err != nil {
			return nil, "", err
		}
		return &masked, "masked", nil
	}
}

// changeBlob rewrites one blob with the decisions decideFor gives for its
// location (which return the new record, or nil to delete it, and the
// action to audit) and marks the blob done on the request, so a redelivered
// message skips it. With a rewriter that can plan, what the rewrite will
// change and the audit entries it owes are written on the request before
// the commit (PendingBlobs) and confirmed after it (see plans.go), so a
// crash between commit and confirmation loses neither. Positions that went
// stale (someone changed the blob since discovery) make it discover again
// and try once more from the fresh ones while it still holds the blob; if
// that fails too, the error says so (a *rediscovered) and changeEach goes
// on from the fresh discovery.
func (s *Service) changeBlob(ctx context.Context, rw sources.Rewriter, st *dsr.Stored, d *sources.Dataset, loc sources.Location, stage dsr.Stage, policyName string, attempt int,
	decideFor func(sources.Location) recordDecision) (dsr.ErasedBlob, error) {
	// One rewrite of a blob at a time in this instance: erasures of many
	// people in one dataset then take turns instead of each undoing the
	// others' reads; across instances the ETag still decides.
	unlock, err := s.blobLocks.lock(ctx, d.Name+"/"+loc.Blob)
	if err != nil {
		return dsr.ErasedBlob{}, fmt.Errorf("%s %s: wait for blob %s: %w", stage, st.ID, loc.Blob, err)
	}
	defer unlock()
	// rewrite rewrites at one location under a plan of its own. When it
	// fails after the plan was recorded, the commit may still have happened
	// (an answer lost on the way back): the blob says, and final is then
	// set with what the commit did, or with the error of finding out.
	// planID is the plan of the latest rewrite, which confirm clears.
	var planID string
	rewrite := func(at sources.Location) (done dsr.ErasedBlob, actions []audit.Entry, err error, final bool) {
		cp := s.newCommitPlan(ctx, st.ID, st.ID, d, at, stage, policyName)
		done, actions, err = s.rewriteBlob(ctx, rw, st.ID, st.ID, d, at, stage, policyName, decideFor(at), cp)
		planID = ""
		if cp.recorded {
			planID = cp.pending.Plan
		}
		if err == nil || !cp.recorded {
			return done, actions, err, false
		}
		settled, serr := s.settle(ctx, rw, st.ID, d.Name+"/"+loc.Blob, cp.pending)
		switch {
		case serr != nil:
			return dsr.ErasedBlob{}, nil, fmt.Errorf("%s %s: %w (and settling its plan: %v)", stage, st.ID, err, serr), true
		case settled != nil:
			return *settled, nil, nil, true
		}
		return done, actions, err, false
	}
	done, actions, err, final := rewrite(loc)
	if final {
		return done, err
	}
	if errors.Is(err, sources.ErrChanged) {
		rerr := s.rediscover(ctx, st, stage, err)
		var re *rediscovered
		if !errors.As(rerr, &re) {
			return dsr.ErasedBlob{}, rerr
		}
		fresh, ok := locationOf(re.fresh, d.Name, loc.Blob)
		if !ok {
			return dsr.ErasedBlob{}, rerr // nothing of hers left there: the walk skips it
		}
		if done, actions, err, final = rewrite(fresh); final {
			return done, err
		}
		if errors.Is(err, sources.ErrChanged) {
			return dsr.ErasedBlob{}, s.rediscover(ctx, st, stage, err)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return dsr.ErasedBlob{}, fmt.Errorf("%s %s: %w", stage, st.ID, err)
		}
		if errors.Is(err, errStageLeft) {
			return dsr.ErasedBlob{}, fmt.Errorf("%s %s: %w", stage, st.ID, err)
		}
		reason := boundReason(err)
		var bad *sources.DataError
		if errors.As(err, &bad) {
			// Broken data stays broken: its part fails at once.
			s.Log.Warn("a dataset's data cannot be read; its part of the request failed", "requestId", st.ID, "stage", stage, "dataset", d.Name)
			return dsr.ErasedBlob{}, &sourceFailure{reason: reason}
		}
		if rerr := s.retrySources(ctx, st.ID, stage, attempt, []string{d.Name + ": " + reason}); rerr != nil {
			return dsr.ErasedBlob{}, rerr
		}
		s.Log.Warn("a system failed its part of the request after every retry", "requestId", st.ID, "stage", stage, "dataset", d.Name)
		return dsr.ErasedBlob{}, &sourceFailure{reason: reason}
	}
	if err := s.confirm(ctx, st.ID, d.Name+"/"+loc.Blob, done, actions, planID); err != nil {
		return done, fmt.Errorf("%s %s: %w", stage, st.ID, err)
	}
	return done, nil
}

// locationOf finds a blob's location in a discovery.
func locationOf(disc *sources.Discovery, dataset, blob string) (sources.Location, bool) {
	for _, dm := range disc.Datasets {
		if dm.Dataset != dataset {
			continue
		}
		for _, loc := range dm.Locations {
			if loc.Blob == blob {
				return loc, true
			}
		}
	}
	return sources.Location{}, false
}

// recordDecision returns a record's new version (nil: delete it) and the
// action to audit ("unchanged" when it keeps the record as it is).
type recordDecision func(ordinal int64, rec sources.Record) (*sources.Record, string, error)

// rewriteBlob rewrites one blob (or table) with decide and returns what it
// did and one audit entry per record, for request requestID, with ids
// starting with idPrefix. Only keyed hashes of record keys are written.
// With cp and a rewriter that can plan, cp.before records what the commit
// will do before it happens.
func (s *Service) rewriteBlob(ctx context.Context, rw sources.Rewriter, requestID, idPrefix string, d *sources.Dataset, loc sources.Location, stage dsr.Stage, policyName string,
	decide recordDecision, cp *commitPlan) (dsr.ErasedBlob, []audit.Entry, error) {
	var actions []audit.Entry
	changed := 0
	edited := map[int64]bool{}
	entry := func(key, action string) audit.Entry {
		return recordEntry(requestID, idPrefix, d.Name, key, action, policyName, stage)
	}
	edit := func(ordinal int64, rec sources.Record) (*sources.Record, error) {
		edited[ordinal] = true
		key := policy.KeyHash(s.Secret, d.Name, recordKey(d, loc, ordinal, rec))
		next, action, err := decide(ordinal, rec)
		if err != nil {
			return nil, err
		}
		if next != nil && action != "unchanged" {
			changed++
		}
		actions = append(actions, entry(key, action))
		return next, nil
	}
	// owed are the entries of the records edited and, for a system that
	// changes record by record (Dataverse), of the records an interrupted
	// earlier attempt already deleted (it skips those).
	owed := func() []audit.Entry {
		out := slices.Clone(actions)
		for i, k := range loc.Keys {
			if !edited[int64(i)] {
				out = append(out, entry(policy.KeyHash(s.Secret, d.Name, k), "already gone"))
			}
		}
		return out
	}
	var res sources.RewriteResult
	var err error
	prw, plans := rw.(sources.PlannedRewriter)
	if cp != nil && plans {
		res, err = prw.RewritePlanned(ctx, d.Name, loc, edit, sources.CommitPlan{ID: cp.id, BeforeCommit: func(planned sources.RewriteResult) error {
			return cp.before(dsr.ErasedBlob{Dataset: d.Name, Deleted: planned.Deleted, Masked: changed}, planned.Commit, owed())
		}})
	} else {
		res, err = rw.Rewrite(ctx, d.Name, loc, edit)
	}
	if err != nil {
		return dsr.ErasedBlob{}, nil, err
	}
	return dsr.ErasedBlob{Dataset: d.Name, ETag: res.ETag, Deleted: res.Deleted, Masked: changed}, owed(), nil
}

// recordEntry is the audit entry of what a change stage did to one record
// (key is its keyed hash). Its id is stable, so an entry written again
// after a crash is recognised by readers.
func recordEntry(requestID, idPrefix, dataset, key, action, policyName string, stage dsr.Stage) audit.Entry {
	return audit.Entry{
		ID: fmt.Sprintf("%s:record:%s:%s", idPrefix, dataset, key), RequestID: requestID, Event: "record",
		Dataset: dataset, RecordKey: key, Action: action, Policy: policyName,
		Actor: &audit.Actor{Kind: "system", ID: string(stage)},
	}
}

// recordEntries are the audit entries of records kept under a retention
// ground.
func (s *Service) recordEntries(st *dsr.Stored, d *sources.Dataset, dm sources.DatasetMatches, action string, out policy.Outcome) []audit.Entry {
	var out2 []audit.Entry
	for _, loc := range dm.Locations {
		names := loc.Keys
		if len(names) == 0 {
			for _, o := range loc.Ordinals {
				names = append(names, loc.Blob+"#"+strconv.FormatInt(o, 10))
			}
		}
		for _, name := range names {
			key := policy.KeyHash(s.Secret, d.Name, name)
			out2 = append(out2, audit.Entry{
				ID: fmt.Sprintf("%s:record:%s:%s", st.ID, d.Name, key), RequestID: st.ID, Event: "record",
				Dataset: d.Name, RecordKey: key, Action: action, Policy: "retain: " + out.Ground,
				Actor: &audit.Actor{Kind: "system", ID: string(dsr.StageErasure)},
			})
		}
	}
	return out2
}

// recordKey names a record for the audit trail (hashed before it is
// written): its key field, its key in the location, or its position.
func recordKey(d *sources.Dataset, loc sources.Location, ordinal int64, rec sources.Record) string {
	if d.Key != "" {
		for _, f := range rec.Fields {
			if f.Name == d.Key {
				if v, ok := f.Value.(string); ok && v != "" {
					return v
				}
				return fmt.Sprint(f.Value)
			}
		}
	}
	if len(loc.Keys) > 0 && ordinal >= 0 && ordinal < int64(len(loc.Keys)) {
		return loc.Keys[ordinal]
	}
	return loc.Blob + "#" + strconv.FormatInt(ordinal, 10)
}

// pendingRules drops the mask rules whose field already holds a masked
// value, so masking a record again (after a crash) changes nothing: a
// pseudonym is never pseudonymised twice.
func pendingRules(rec sources.Record, rules []sources.MaskRule) []sources.MaskRule {
	var out []sources.MaskRule
	for _, r := range rules {
		v, found := topValue(rec, r.Field)
		if found && alreadyMasked(v, r) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// topValue is the first value path reaches in rec (sources.PathValues).
func topValue(rec sources.Record, path string) (any, bool) {
	var out any
	found := false
	sources.PathValues(recordMap(rec), path, func(v any) bool {
		out, found = v, true
		return false
	})
	return out, found
}

func alreadyMasked(v any, r sources.MaskRule) bool {
	s, isString := v.(string)
	switch r.Strategy {
	case sources.MaskNull:
		return v == nil || (isString && s == "")
	case sources.MaskRedact:
		text := r.Text
		if text == "" {
			text = "[redacted]"
		}
		return isString && s == text
	case sources.MaskHMAC:
		return isString && strings.HasPrefix(s, "pseu_")
	case sources.MaskYear:
		if !isString || len(s) != 4 {
			return false
		}
		_, err := strconv.Atoi(s)
		return err == nil
	}
	return false
}

// Verify discovers again after erasure (the dsr-verify queue): records
// found in datasets whose policy deletes or masks are residuals and fail the
// request with details; retained records are reported, not counted.
func (s *Service) Verify(ctx context.Context, id string, attempt int) error {
	st, err := s.loadForStage(ctx, id, "verify")
	if st == nil || err != nil {
		return err
	}
	if st.State.Terminal() {
		return nil
	}
	if st.Stage != dsr.StageVerification && dsr.Before(st.Type, dsr.StageVerification, st.Stage) {
		// Verified already (a redelivery): make sure the next stage's
		// message went out.
		return s.nextMessage(ctx, st)
	}
	if st.Stage != dsr.StageVerification {
		return fmt.Errorf("verify %s: request is at stage %s, not verification", id, st.Stage)
	}
	if st.Type == dsr.TypeRectification {
		return s.verifyRectification(ctx, st, attempt)
	}
	disc, _, err := s.discover(ctx, st)
	if errors.Is(err, sources.ErrPending) {
		if waiting, werr := s.waitForSystems(ctx, st, dsr.StageVerification, s.Queues.Verify, err); waiting || werr != nil {
			return werr
		}
		disc, _, err = s.discover(multi.GiveUpWaiting(ctx), st)
	}
	if err != nil {
		s.recordAttemptError(ctx, id, dsr.StageVerification, err)
		return fmt.Errorf("verify %s: %w", id, err)
	}
	rep := &dsr.VerificationReport{Sources: []dsr.VerificationSource{}, At: s.NowUTC()}
	var residualIn []string
	for _, dm := range disc.Datasets {
		d := s.Sources.Dataset(dm.Dataset)
		vs := dsr.VerificationSource{Source: dm.Dataset, Error: dm.Error}
		switch {
		case slices.Contains(st.FailedSources, dm.Dataset) && dm.Error == "":
			// Its erasure already failed and is reported: what is left
			// there is that failure, not a surprise.
			vs.Residual, vs.Error = dm.Records, "the erasure failed here (see the erasure report)"
			rep.Sources = append(rep.Sources, vs)
			continue
		case dm.Error != "":
			// Not searchable now: reported, and a follow-up for a person.
		case d != nil && s.delegates(d.Name):
			// The system may keep what it reported as retained.
			kept := int64(st.ErasedBlobs[d.Name+delegatedKey].Retained)
			vs.Retained = min(dm.Records, kept)
			vs.Residual = dm.Records - vs.Retained
		case d != nil && policy.Decide(d).Action == sources.EraseRetain:
			vs.Retained = dm.Records
		case d != nil && policy.Decide(d).Action == sources.EraseMask && dm.Records > 0:
			// Her own records stay linked through the tombstone's keys:
			// kept if every mask rule holds, residual otherwise; a record
			// that still only mentions her is residual.
			err := s.readEach(ctx, st, dm, func(rec sources.Record, mention bool) {
				if !mention && len(pendingRules(rec, d.Erasure.Mask)) == 0 {
					vs.Masked++
				} else {
					vs.Residual++
				}
			})
			if err != nil {
				return err
			}
		default:
			vs.Residual = dm.Records
		}
		if vs.Residual > 0 {
			residualIn = append(residualIn, fmt.Sprintf("%s (%d)", dm.Dataset, vs.Residual))
		}
		rep.Residual += vs.Residual
		rep.Retained += vs.Retained
		rep.Masked += vs.Masked
		rep.Sources = append(rep.Sources, vs)
	}
	st, err = s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
		if st.State.Terminal() || st.Stage != dsr.StageVerification {
			return false, nil
		}
		st.Verification = rep
		if rep.Residual > 0 {
			return true, st.Fail("residual-data", "verification found records left after erasure in: "+strings.Join(residualIn, ", "), s.NowUTC(), attempt)
		}
		detail := fmt.Sprintf("0 residual, %d retained, %d masked and kept", rep.Retained, rep.Masked)
		for _, vs := range rep.Sources {
			if vs.Error != "" {
				st.AddFailedSource(vs.Source)
			}
		}
		return true, s.finishChange(st, attempt, detail)
	})
	if err != nil {
		return err
	}
	if err := s.syncAudit(ctx, st); err != nil {
		return err
	}
	// The notification stage's message, when the route takes it.
	return s.nextMessage(ctx, st)
}

// dependentsFirst orders a discovery's datasets as the sources config's
// DependentsFirst does (surveys, cases, contacts); datasets the config no
// longer names come last, as discovered.
func (s *Service) dependentsFirst(disc *sources.Discovery) []sources.DatasetMatches {
	byName := map[string]sources.DatasetMatches{}
	for _, dm := range disc.Datasets {
		byName[dm.Dataset] = dm
	}
	out := make([]sources.DatasetMatches, 0, len(disc.Datasets))
	for _, d := range s.Sources.DependentsFirst() {
		if dm, ok := byName[d.Name]; ok {
			out = append(out, dm)
			delete(byName, d.Name)
		}
	}
	for _, dm := range disc.Datasets {
		if _, left := byName[dm.Dataset]; left {
			out = append(out, dm)
		}
	}
	return out
}
