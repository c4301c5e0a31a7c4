package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/policy"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/store"
)

// restrictionGround is recorded for restrictions requested by the subject.
const restrictionGround = "Art. 18(1) GDPR: restriction requested by the data subject"

// RestrictionKey is the registry key of one identifier: a keyed hash, so
// the registry holds no raw identifiers. kind is "email", "phone" or
// "id:<name>"; values are normalised as requests normalise them.
func RestrictionKey(secret []byte, kind, value string) string {
	return policy.KeyHash(secret, "restriction", kind+"\x00"+value)
}

// restrictionKeys are the registry keys of a request's subject.
func (s *Service) restrictionKeys(st *dsr.Stored) []string {
	return identifierKeys(st, func(kind, value string) string { return RestrictionKey(s.Secret, kind, value) })
}

// discoveredRestrictionKeys are the registry keys of the identifiers held
// in the subject's own records (her phone in her contact row, her contact
// id): a restriction made by email is found by them too.
func (s *Service) discoveredRestrictionKeys(ctx context.Context, st *dsr.Stored, disc *sources.Discovery) ([]string, error) {
	var keys []string
	add := func(k string) {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	for _, dm := range disc.Datasets {
		d := s.Sources.Dataset(dm.Dataset)
		if d == nil || dm.Error != "" || dm.Records == 0 || s.delegates(d.Name) {
			continue
		}
		ids := identifierFields(d)
		if len(ids) == 0 {
			continue
		}
		err := s.readOwn(ctx, st, dm, func(rec sources.Record) {
			fields := recordMap(rec)
			for _, id := range ids {
				sources.PathStrings(fields, id.Field, func(v string) bool {
					if kind, norm, ok := normalizeIdentifier(id, v, s.Sources.DefaultPhoneRegion); ok {
						if kind == "phone" {
							norm = "+" + norm // the registry keys phones as requests store them
						}
						add(RestrictionKey(s.Secret, kind, norm))
					}
					return true
				})
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// Restricted looks one identifier up in the registry.
func (s *Service) Restricted(ctx context.Context, kind, value string) (*store.Restriction, error) {
	if len(s.Secret) == 0 {
		return nil, ErrNoSecret
	}
	return s.Store.GetRestriction(ctx, RestrictionKey(s.Secret, kind, value))
}

// Restrict (the dsr-erase queue) records (or lifts) the subject's restriction in the registry
// that downstream systems query, and sets (or clears) the restriction flag
// field of their records in datasets that have one (Art. 18). Lifting
// records the Art. 18(3) notice on the request.
func (s *Service) Restrict(ctx context.Context, id string, attempt int) error {
	st, disc, rw, err := s.loadChange(ctx, id, dsr.StageRestriction)
	if st == nil || err != nil {
		return err
	}
	now := s.NowUTC()
	keys := s.restrictionKeys(st)
	found, err := s.discoveredRestrictionKeys(ctx, st, disc)
	if err != nil {
		return err
	}
	for _, k := range found {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if st.Lift {
		// Lifting by any identifier lifts every identifier the restriction
		// covered.
		for i := 0; i < len(keys); i++ {
			prev, err := s.Store.GetRestriction(ctx, keys[i])
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			for _, k := range prev.Keys {
				if !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
		}
	}
	for _, key := range keys {
		entry := store.Restriction{Restricted: true, Since: now, RequestID: st.ID, Ground: restrictionGround, Keys: keys}
		prev, err := s.Store.GetRestriction(ctx, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if st.Lift {
				continue // nothing to lift for this identifier
			}
		case err != nil:
			return err
		case st.Lift:
			entry = *prev
			entry.Restricted, entry.LiftedAt, entry.LiftedBy = false, &now, st.ID
		case prev.Restricted:
			entry = *prev // already restricted: keep since when
			for _, k := range keys {
				if !slices.Contains(entry.Keys, k) {
					entry.Keys = append(entry.Keys, k)
				}
			}
		}
		if err := s.Store.PutRestriction(ctx, key, entry); err != nil {
			return err
		}
	}
	rep := &dsr.RestrictionReport{Lifted: st.Lift, Identifiers: len(keys), Sources: []dsr.RestrictionSource{}}
	if st.Lift {
		rep.Notice = dsr.LiftNotice
	}
	flag := !st.Lift
	action := "restriction"
	if st.Lift {
		action = "lift-restriction"
	}
	outcomes, failed, err := s.changeEach(ctx, rw, st, disc, attempt, changer{stage: dsr.StageRestriction, action: action,
		plan: func(d *sources.Dataset, dm sources.DatasetMatches) plan {
			return plan{act: s.delegates(d.Name) || (d.RestrictionField != "" && (dm.Records > 0 || dm.Error != "")),
				delegate: s.delegates(d.Name), rewrite: true, policy: "restrict",
				decide: func(sources.Location) recordDecision {
					return func(_ int64, rec sources.Record) (*sources.Record, string, error) {
						next, changed := setFlag(rec, d.RestrictionField, flag, d.Format == sources.FormatCSV)
						switch {
						case !changed:
							return &rec, "unchanged", nil
						case flag:
							return &next, "restricted", nil
						}
						return &next, "restriction lifted", nil
					}
				}}
		}})
	if err != nil {
		return ignoreWaiting(err)
	}
	for _, o := range outcomes {
		if o.plan.act {
			rep.Sources = append(rep.Sources, dsr.RestrictionSource{Source: o.d.Name, Flagged: int64(o.done.Masked), Error: o.failure})
		}
	}
	rep.CompletedAt = s.NowUTC()
	detail := fmt.Sprintf("restriction recorded for %d identifiers", rep.Identifiers)
	if st.Lift {
		detail = fmt.Sprintf("restriction lifted for %d identifiers", rep.Identifiers)
	}
	st, err = s.Store.Update(ctx, st.ID, func(st *dsr.Stored) (bool, error) {
		if st.State.Terminal() || st.Stage != dsr.StageRestriction {
			return false, nil
		}
		st.Restriction = rep
		for _, f := range failed {
			st.AddFailedSource(f)
		}
		st.LastAttemptError = ""
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

// setFlag sets a boolean field (a "true"/"false" string in CSV), adding it
// to JSON records that lack it.
func setFlag(rec sources.Record, field string, on bool, csv bool) (sources.Record, bool) {
	var value any = on
	if csv {
		value = fmt.Sprint(on)
	}
	out := sources.Record{Fields: append([]sources.Field(nil), rec.Fields...)}
	for i, f := range out.Fields {
		if f.Name == field {
			if fmt.Sprint(f.Value) == fmt.Sprint(on) {
				return rec, false
			}
			out.Fields[i].Value = value
			return out, true
		}
	}
	out.Fields = append(out.Fields, sources.Field{Name: field, Value: value})
	return out, true
}
