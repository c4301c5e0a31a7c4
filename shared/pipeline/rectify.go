package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/match"
	"github.com/dsr-functions/dsr/shared/sources"
)

// Rectification statuses reported per dataset (Art. 16; system logs are a
// factual record of events and are never rectified).
const (
	statusRectified     = "rectified"
	statusSystemLog     = "not rectifiable: system-generated log"
	statusNotRectifible = "not rectifiable: not marked rectifiable"
	statusFailed        = "failed: the system could not be reached"
)

// Rectify (the dsr-erase queue) applies a rectification request's corrections (Art. 16) to the
// subject's records in rectifiable datasets: an email, phone or name
// identifier field is replaced only where it holds the subject's current
// value, so another person's value in a record matched through free text or
// a relation is never overwritten.
func (s *Service) Rectify(ctx context.Context, id string, attempt int) error {
	st, disc, rw, err := s.loadChange(ctx, id, dsr.StageRectification)
	if st == nil || err != nil {
		return err
	}
	outcomes, failed, err := s.changeEach(ctx, rw, st, disc, attempt, changer{stage: dsr.StageRectification, action: "rectification",
		plan: func(d *sources.Dataset, dm sources.DatasetMatches) plan {
			return plan{act: !d.SystemLog && d.Rectifiable, delegate: s.delegates(d.Name), rewrite: true, policy: "rectify",
				decide: func(sources.Location) recordDecision {
					return func(_ int64, rec sources.Record) (*sources.Record, string, error) {
						next, changed := s.correct(st, d, rec)
						if !changed {
							return &rec, "unchanged", nil
						}
						return &next, "rectified", nil
					}
				}}
		}})
	if err != nil {
		return ignoreWaiting(err)
	}
	rep := &dsr.RectificationReport{Sources: []dsr.RectificationSource{}}
	for _, o := range outcomes {
		if o.dm.Records == 0 && o.dm.Error == "" && !o.plan.delegate {
			continue
		}
		src := dsr.RectificationSource{Source: o.d.Name, Status: statusRectified, Rectified: int64(o.done.Masked), Error: o.failure}
		switch {
		case o.d.SystemLog:
			src.Status = statusSystemLog
		case !o.d.Rectifiable:
			src.Status = statusNotRectifible
		case o.failure != "":
			src.Status = statusFailed
		}
		if src.Rectified > 0 {
			src.Note = o.d.ChangeNote()
		}
		rep.Sources = append(rep.Sources, src)
	}
	rep.CompletedAt = s.NowUTC()
	st, err = s.Store.Update(ctx, st.ID, func(st *dsr.Stored) (bool, error) {
		if st.State.Terminal() || st.Stage != dsr.StageRectification {
			return false, nil
		}
		st.Rectification = rep
		for _, f := range failed {
			st.AddFailedSource(f)
		}
		st.LastAttemptError = ""
		return true, s.advance(st, dsr.StageRectification, attempt, "corrections applied")
	})
	if err != nil {
		return err
	}
	if err := s.syncAudit(ctx, st); err != nil {
		return err
	}
	return s.nextMessage(ctx, st)
}

// correct returns rec with each corrected identifier field replaced where it
// holds the subject's current value, and whether anything changed.
func (s *Service) correct(st *dsr.Stored, d *sources.Dataset, rec sources.Record) (sources.Record, bool) {
	out := sources.Record{Fields: append([]sources.Field(nil), rec.Fields...)}
	changed := false
	for _, id := range d.Identifiers {
		newValue, ok := st.Corrections[string(id.Kind)]
		if !ok {
			continue
		}
		for i, f := range out.Fields {
			if f.Name != id.Field {
				continue
			}
			v, isString := f.Value.(string)
			if !isString || !s.holdsCurrent(st, id.Kind, v) || v == newValue {
				continue
			}
			out.Fields[i].Value = newValue
			changed = true
		}
	}
	return out, changed
}

// holdsCurrent reports whether v is the subject's current value of kind.
func (s *Service) holdsCurrent(st *dsr.Stored, kind sources.IdentifierKind, v string) bool {
	switch kind {
	case sources.KindEmail:
		e, err := match.NormalizeEmail(v)
		return err == nil && e == st.Subject.Email
	case sources.KindPhone:
		p, err := match.NormalizePhone(v, s.Sources.DefaultPhoneRegion)
		return err == nil && st.Subject.Phone != "" && p == st.Subject.Phone[1:]
	case sources.KindName:
		return st.Subject.Name != "" && strings.EqualFold(strings.TrimSpace(v), st.Subject.Name)
	}
	return false
}

// verifyRectification reads the rectified records back and checks that
// every corrected field now holds its new value: none may still hold the
// subject's old one.
func (s *Service) verifyRectification(ctx context.Context, st *dsr.Stored, attempt int) error {
	var disc sources.Discovery
	if err := s.positionsOf(ctx, st, &disc); err != nil {
		return fmt.Errorf("verify %s: read discovery: %w", st.ID, err)
	}
	rep := &dsr.VerificationReport{Sources: []dsr.VerificationSource{}, At: s.NowUTC()}
	var residualIn []string
	for _, dm := range disc.Datasets {
		d := s.Sources.Dataset(dm.Dataset)
		if d == nil || dm.Records == 0 || d.SystemLog || !d.Rectifiable {
			continue
		}
		vs := dsr.VerificationSource{Source: d.Name}
		for _, loc := range dm.Locations {
			done, ok := st.ErasedBlobs[d.Name+"/"+loc.Blob]
			if !ok {
				continue
			}
			now := sources.DatasetMatches{Dataset: d.Name, Records: int64(len(loc.Ordinals) + len(loc.Keys)),
				Locations: []sources.Location{{Blob: loc.Blob, ETag: done.ETag, Ordinals: loc.Ordinals, Keys: loc.Keys}}}
			err := s.Connector.Read(s.requestContext(ctx, st), now, func(rec sources.Record) error {
				if _, stale := s.correct(st, d, rec); stale {
					vs.Residual++
				}
				return nil
			})
			if err != nil {
				s.recordAttemptError(ctx, st.ID, dsr.StageVerification, err)
				return fmt.Errorf("verify %s: %w", st.ID, err)
			}
		}
		if vs.Residual > 0 {
			residualIn = append(residualIn, fmt.Sprintf("%s (%d)", d.Name, vs.Residual))
		}
		rep.Residual += vs.Residual
		rep.Sources = append(rep.Sources, vs)
	}
	st, err := s.Store.Update(ctx, st.ID, func(st *dsr.Stored) (bool, error) {
		if st.State.Terminal() || st.Stage != dsr.StageVerification {
			return false, nil
		}
		st.Verification = rep
		if rep.Residual > 0 {
			return true, st.Fail("residual-data", "verification found old values left after rectification in: "+strings.Join(residualIn, ", "), s.NowUTC(), attempt)
		}
		return true, s.finishChange(st, attempt, "corrections verified")
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
