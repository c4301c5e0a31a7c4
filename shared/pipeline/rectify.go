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

// rectify applies a rectification request's corrections (Art. 16) to the
// subject's records in rectifiable datasets: an email, phone or name
// identifier field is replaced only where it holds the subject's current
// value, so another person's value in a record matched through free text or
// a relation is never overwritten.
func (s *Service) rectify(ctx context.Context, rw sources.Rewriter, st *dsr.Stored, disc *sources.Discovery, attempt int) error {
	rep := &dsr.RectificationReport{Sources: []dsr.RectificationSource{}}
	var failed []string
	for _, dm := range s.dependentsFirst(disc) {
		d := s.Sources.Dataset(dm.Dataset)
		if d == nil || (dm.Records == 0 && dm.Error == "" && !s.delegates(d.Name)) {
			continue
		}
		src := dsr.RectificationSource{Source: d.Name, Status: statusRectified}
		switch {
		case d.SystemLog:
			src.Status = statusSystemLog
		case !d.Rectifiable:
			src.Status = statusNotRectifible
		case s.delegates(d.Name):
			done, failure, err := s.delegate(ctx, st, d, dsr.StageRectification, "rectification", attempt)
			if err != nil {
				return ignoreWaiting(err)
			}
			if failure != "" {
				src.Status, src.Error, failed = statusFailed, failure, append(failed, d.Name)
			}
			src.Rectified = int64(done.Masked)
		case dm.Error != "":
			src.Status, src.Error, failed = statusFailed, dm.Error, append(failed, d.Name)
		default:
			for _, loc := range dm.Locations {
				done, ok := st.ErasedBlobs[d.Name+"/"+loc.Blob]
				if !ok {
					var err error
					done, err = s.changeBlob(ctx, rw, st, d, loc, dsr.StageRectification, "rectify", attempt, func(_ int64, rec sources.Record) (*sources.Record, string, error) {
						next, changed := s.correct(st, d, rec)
						if !changed {
							return &rec, "unchanged", nil
						}
						return &next, "rectified", nil
					})
					if reason, gaveUp := failedSource(err); gaveUp {
						src.Status, src.Error, failed = statusFailed, reason, append(failed, d.Name)
						break
					}
					if err != nil {
						return err
					}
				}
				src.Rectified += int64(done.Masked)
			}
		}
		rep.Sources = append(rep.Sources, src)
	}
	rep.CompletedAt = s.NowUTC()
	st, err := s.Store.Update(ctx, st.ID, func(st *dsr.Stored) (bool, error) {
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
	if err := s.Store.GetDiscovery(ctx, st.ID, &disc); err != nil {
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
	return s.syncAudit(ctx, st)
}
