package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/match"
	"github.com/dsr-functions/dsr/shared/policy"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/tombstone"
)

// subjectFor is who discovery looks for: the request's identifiers plus
// what the tombstones of earlier erasures of the same person know (their
// other identifiers, and the keys of deleted records that kept records
// still reference), so that what an erasure kept stays findable (Art. 15
// applies to it). It also returns those tombstones.
func (s *Service) subjectFor(ctx context.Context, st *dsr.Stored) (sources.Subject, []*tombstone.Tombstone, error) {
	subj := subjectOf(st)
	if s.Tombstones == nil {
		return subj, nil, nil
	}
	tombs, err := s.Tombstones.Find(ctx, tombstone.SubjectIdentifiers(subj))
	if err != nil {
		return subj, nil, fmt.Errorf("read tombstones: %w", err)
	}
	return tombstone.Merge(subj, tombs), tombs, nil
}

// discover runs discovery for the request's subject (see subjectFor).
// Most subjects were never erased, so it does not wait for the tombstone
// lookup: it searches for the subject as the request names her while the
// lookup runs, and keeps that result when no tombstone is found. When one
// is (or the lookup fails), it stops that search; then it searches for the
// subject the tombstones complete, and only that result counts. A round
// trip less per request, a search started in vain for the subjects of
// earlier erasures. Not with webhook sources: a search there asks another
// system, which may keep its answer for the request, so it is asked once,
// for the whole subject.
func (s *Service) discover(ctx context.Context, st *dsr.Stored) (*sources.Discovery, []*tombstone.Tombstone, error) {
	if s.Tombstones == nil || s.asksOtherSystems() {
		subj, tombs, err := s.subjectFor(ctx, st)
		if err != nil {
			return nil, nil, err
		}
		disc, err := s.Connector.Discover(s.requestContext(ctx, st), subj)
		return disc, tombs, err
	}
	subj := subjectOf(st)
	dctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type searched struct {
		disc *sources.Discovery
		err  error
	}
	search := make(chan searched, 1)
	go func() {
		disc, err := s.Connector.Discover(s.requestContext(dctx, st), subj)
		search <- searched{disc, err}
	}()
	tombs, err := s.Tombstones.Find(ctx, tombstone.SubjectIdentifiers(subj))
	if err != nil || len(tombs) > 0 {
		// The search's result will not be used: stop it, and wait
		// until it has stopped.
		cancel(errSearchSuperseded)
		<-search
		if err != nil {
			return nil, nil, fmt.Errorf("read tombstones: %w", err)
		}
		disc, err := s.Connector.Discover(s.requestContext(ctx, st), tombstone.Merge(subj, tombs))
		return disc, tombs, err
	}
	r := <-search
	return r.disc, nil, r.err
}

// errSearchSuperseded stops a search that the tombstones made pointless.
var errSearchSuperseded = errors.New("search superseded by the subject's tombstones")

// asksOtherSystems reports whether a search reaches a webhook source.
func (s *Service) asksOtherSystems() bool {
	if s.Sources == nil {
		return false
	}
	for i := range s.Sources.Datasets {
		if s.Sources.Kind(&s.Sources.Datasets[i]) == sources.ConnWebhook {
			return true
		}
	}
	return false
}

// keptAfterErasure says, per dataset, why the latest erasure of the
// subject kept records there.
func keptAfterErasure(tombs []*tombstone.Tombstone) map[string]*dsr.KeptAfterErasure {
	out := map[string]*dsr.KeptAfterErasure{}
	for _, t := range tombs { // oldest first: the latest erasure wins
		for _, k := range t.Kept {
			out[k.Dataset] = &dsr.KeptAfterErasure{RequestID: t.RequestID, ErasedAt: t.ErasedAt, Action: k.Action,
				Fields: k.Fields, Ground: k.Ground, LegalBasis: k.LegalBasis, RetainUntil: k.RetainUntil}
		}
	}
	return out
}

// fileTombstone files the erasure's tombstone before anything is changed:
// the subject's identifiers, the values of the referenced fields of every
// own record about to be deleted (read now, while they exist), and what is
// kept where. A crash after filing it and before the deletions leaves a
// tombstone of records still there, which is harmless; the other order
// could lose the link forever.
func (s *Service) fileTombstone(ctx context.Context, st *dsr.Stored, disc *sources.Discovery) error {
	if s.Tombstones == nil || st.TombstonedAt != nil {
		return nil
	}
	subj, earlier, err := s.subjectFor(ctx, st)
	if err != nil {
		return err
	}
	now := s.NowUTC()
	t := &tombstone.Tombstone{RequestID: st.ID, ErasedAt: now, Emails: subj.Emails, Phones: subj.Phones, IDs: subj.IDs}
	// Keys an earlier erasure deleted stay known: the newest tombstone
	// alone finds everything.
	for _, e := range earlier {
		for ds, fields := range e.Keys {
			for f, vals := range fields {
				for _, v := range vals {
					t.AddKey(ds, f, v)
				}
			}
		}
	}
	for _, dm := range disc.Datasets {
		d := s.Sources.Dataset(dm.Dataset)
		if d == nil || dm.Error != "" || dm.Records == 0 || s.delegates(d.Name) {
			continue
		}
		out := policy.Decide(d)
		switch out.Action {
		case sources.EraseRetain:
			t.Kept = append(t.Kept, tombstone.Kept{Dataset: d.Name, Action: "retained", Ground: out.Ground, LegalBasis: out.LegalBasis, RetainUntil: out.RetainUntil})
		case sources.EraseMask:
			k := tombstone.Kept{Dataset: d.Name, Action: "masked"}
			for _, r := range d.Erasure.Mask {
				k.Fields = append(k.Fields, r.Field)
			}
			t.Kept = append(t.Kept, k)
		case sources.EraseDelete:
			refs := s.Sources.ReferencedFields(d.Name)
			ids := identifierFields(d)
			if len(refs) == 0 && len(ids) == 0 {
				continue
			}
			err := s.readOwn(ctx, st, dm, func(rec sources.Record) {
				fields := recordMap(rec)
				for _, f := range refs {
					sources.PathStrings(fields, f, func(v string) bool {
						if v = strings.TrimSpace(v); v != "" {
							t.AddKey(d.Name, f, v)
						}
						return true
					})
				}
				// The identifiers the deleted records held: a later
				// request by her phone must find the tombstone too.
				for _, id := range ids {
					sources.PathStrings(fields, id.Field, func(v string) bool {
						if kind, norm, ok := normalizeIdentifier(id, v, s.Sources.DefaultPhoneRegion); ok {
							t.AddFound(tombstone.Identifier{Kind: kind, Value: norm})
						}
						return true
					})
				}
			})
			if err != nil {
				return err
			}
		}
	}
	if err := s.Tombstones.Put(ctx, t); err != nil {
		return fmt.Errorf("erase %s: file the tombstone: %w", st.ID, err)
	}
	_, err = s.Store.Update(ctx, st.ID, func(cur *dsr.Stored) (bool, error) {
		if cur.TombstonedAt != nil {
			return false, nil
		}
		cur.TombstonedAt = &now
		return true, nil
	})
	return err
}

// identifierFields are a dataset's email, phone and id identifiers.
func identifierFields(d *sources.Dataset) []sources.Identifier {
	var out []sources.Identifier
	for _, id := range d.Identifiers {
		if id.Kind == sources.KindEmail || id.Kind == sources.KindPhone || id.Kind == sources.KindID {
			out = append(out, id)
		}
	}
	return out
}

// normalizeIdentifier normalises a value of identifier field id the way
// requests are normalised, and names its kind as tombstones and the
// restriction registry do ("email", "phone", "id:<name>"). Phones are E.164
// digits without '+'.
func normalizeIdentifier(id sources.Identifier, v, region string) (kind, value string, ok bool) {
	switch id.Kind {
	case sources.KindEmail:
		e, err := match.NormalizeEmailField(v)
		return "email", e, err == nil
	case sources.KindPhone:
		p, err := match.NormalizePhoneField(v, region)
		return "phone", p, err == nil
	case sources.KindID:
		v = strings.TrimSpace(v)
		return "id:" + id.IDNameOrField(), v, v != ""
	}
	return "", "", false
}

// readOwn reads the records of one dataset that are the subject's own (not
// those that only mention her). Data that changed since discovery makes it
// discover again and fail the attempt, like a rewrite.
func (s *Service) readOwn(ctx context.Context, st *dsr.Stored, dm sources.DatasetMatches, fn func(sources.Record)) error {
	return s.readEach(ctx, st, dm, func(rec sources.Record, mention bool) {
		if !mention {
			fn(rec)
		}
	})
}

// readEach reads the discovered records of one dataset, saying of each
// whether it only mentions the subject (Location.Mentions). Each blob is
// read holding it (no rewrite here changes it meanwhile); positions that
// went stale make it discover again and read once more from the fresh
// ones, still holding the blob; if that fails too it returns the
// *rediscovered error.
func (s *Service) readEach(ctx context.Context, st *dsr.Stored, dm sources.DatasetMatches, fn func(rec sources.Record, mention bool)) error {
	for _, loc := range dm.Locations {
		if err := s.readBlob(ctx, st, dm.Dataset, loc, fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) readBlob(ctx context.Context, st *dsr.Stored, dataset string, loc sources.Location, fn func(rec sources.Record, mention bool)) error {
	unlock, err := s.blobLocks.lock(ctx, dataset+"/"+loc.Blob)
	if err != nil {
		return fmt.Errorf("%s %s: wait for blob %s: %w", st.Stage, st.ID, loc.Blob, err)
	}
	defer unlock()
	read := func(loc sources.Location) error {
		one := sources.DatasetMatches{Dataset: dataset, Records: int64(max(len(loc.Ordinals), len(loc.Keys))), Locations: []sources.Location{loc}}
		var recs []sources.Record
		var mentions []bool
		i := 0
		err := s.Connector.Read(s.requestContext(ctx, st), one, func(rec sources.Record) error {
			ordinal := int64(i)
			if len(loc.Keys) == 0 && i < len(loc.Ordinals) {
				ordinal = loc.Ordinals[i]
			}
			i++
			recs, mentions = append(recs, rec), append(mentions, loc.Mentioned(ordinal))
			return nil
		})
		if err != nil {
			return err
		}
		// Only a whole, current read counts: a stale one is read again.
		for i := range recs {
			fn(recs[i], mentions[i])
		}
		return nil
	}
	err = read(loc)
	if errors.Is(err, sources.ErrChanged) {
		rerr := s.rediscover(ctx, st, st.Stage, err)
		var re *rediscovered
		if !errors.As(rerr, &re) {
			return rerr
		}
		fresh, ok := locationOf(re.fresh, dataset, loc.Blob)
		if !ok {
			return rerr
		}
		if err = read(fresh); errors.Is(err, sources.ErrChanged) {
			return s.rediscover(ctx, st, st.Stage, err)
		}
	}
	if err != nil {
		return fmt.Errorf("%s %s: read %s: %w", st.Stage, st.ID, dataset, err)
	}
	return nil
}

// rediscover handles data that changed since discovery: it discovers
// again, stores the fresh positions, and returns a *rediscovered error: a
// change stage goes on from them in place (changeEach), any other stage
// fails the attempt and its retry works from them.
func (s *Service) rediscover(ctx context.Context, st *dsr.Stored, stage dsr.Stage, cause error) error {
	s.Log.Info("data changed since discovery; discovering again", "requestId", st.ID, "stage", stage)
	fresh, _, derr := s.discover(ctx, st)
	if derr != nil {
		return fmt.Errorf("%s %s: rediscover: %w", stage, st.ID, derr)
	}
	pos, perr := s.storePositions(ctx, st.ID, fresh)
	if perr != nil {
		return perr
	}
	// The fresh positions replace the old in the document (inline, or
	// none when they went to the blob), with the attempt's error.
	if _, uerr := s.Store.Update(ctx, st.ID, func(cur *dsr.Stored) (bool, error) {
		cur.Positions = pos
		if !cur.State.Terminal() {
			cur.LastAttemptError = attemptError(stage, cause)
		}
		return true, nil
	}); uerr != nil {
		return uerr
	}
	st.Positions = pos
	return &rediscovered{fresh: fresh, err: fmt.Errorf("%s %s: %w; discovered again, retrying", stage, st.ID, cause)}
}

// rediscovered is data that changed since discovery, discovered again.
type rediscovered struct {
	fresh *sources.Discovery
	err   error
}

func (e *rediscovered) Error() string { return e.err.Error() }
func (e *rediscovered) Unwrap() error { return e.err }

// recordMap is a record's fields by name, for path lookups.
func recordMap(rec sources.Record) map[string]any {
	m := make(map[string]any, len(rec.Fields))
	for _, f := range rec.Fields {
		if _, dup := m[f.Name]; !dup {
			m[f.Name] = f.Value
		}
	}
	return m
}
