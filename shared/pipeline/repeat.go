package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dsr-functions/dsr/shared/audit"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/policy"
	"github.com/dsr-functions/dsr/shared/store"
	"golang.org/x/sync/errgroup"
)

// Repeat requests (Art. 12(5)): a controller may refuse a request that is
// manifestly unfounded or excessive, "in particular because of its
// repetitive character". Nothing here refuses anything: a new request of
// the same type by the same person (matched by any identifier) within
// Service.RepeatWindow is flagged with the earlier ones and held at the
// approval step, where an operator approves it or rejects it with a reason
// (the Art. 12(4) notice goes with every rejection).
//
// Each identifier of a request is listed in the subject registry
// (store.AddSubjectRequest) under a keyed hash, so the registry holds no
// raw identifier. The check runs when the request is created; if the
// registry fails then, the request is created all the same and discovery
// runs the check before it searches (Stored.RepeatChecked), failing its
// delivery until the check is done.

// SubjectKey is the subject registry key of one identifier: a keyed hash
// under the app's secret. kind is "email", "phone" or "id:<name>"; values
// are normalised as requests store them.
func SubjectKey(secret []byte, kind, value string) string {
	return policy.KeyHash(secret, "subject-requests", kind+"\x00"+value)
}

// subjectKeys are the registry keys of a request's subject.
func (s *Service) subjectKeys(st *dsr.Stored) []string {
	return identifierKeys(st, func(kind, value string) string { return SubjectKey(s.Secret, kind, value) })
}

// identifierKeys are the keys of a request's identifiers in a registry
// (restrictions, the subject registry): key of each, with kind "email",
// "phone" or "id:<name>", ids in name order.
func identifierKeys(st *dsr.Stored, key func(kind, value string) string) []string {
	var keys []string
	if st.Subject.Email != "" {
		keys = append(keys, key("email", st.Subject.Email))
	}
	if st.Subject.Phone != "" {
		keys = append(keys, key("phone", st.Subject.Phone))
	}
	for _, n := range slices.Sorted(maps.Keys(st.Subject.IDs)) {
		keys = append(keys, key("id:"+n, st.Subject.IDs[n]))
	}
	return keys
}

// earlierCounts reports whether an earlier request in a state makes a new
// one a repeat. One that was never verified (awaiting_verification,
// expired) may not even be the person's; a cancelled one and a failed one
// were never answered.
func earlierCounts(state dsr.State) bool {
	switch state {
	case dsr.StateAwaitingVerification, dsr.StateExpired, dsr.StateCancelled, dsr.StateFailed:
		return false
	}
	return true
}

// checkRepeat lists a new request in its subject's registry and flags it
// as a repeat of the same person's earlier requests of its type within
// the window, once (a redelivery finds it checked). It returns the
// request as stored after the check. Without a window or a secret there
// is no check.
func (s *Service) checkRepeat(ctx context.Context, st *dsr.Stored) (*dsr.Stored, error) {
	if st.RepeatChecked || s.RepeatWindow <= 0 || len(s.Secret) == 0 {
		return st, nil
	}
	from := st.CreatedAt.Add(-s.RepeatWindow)
	before := func(r store.SubjectRequest) bool {
		return r.CreatedAt.Before(st.CreatedAt) || (r.CreatedAt.Equal(st.CreatedAt) && r.RequestID < st.ID)
	}
	entry := store.SubjectRequest{RequestID: st.ID, Type: st.Type, CreatedAt: st.CreatedAt}
	// The identifiers' registries, then the earlier requests, are read and
	// written at once: each is a round trip or two on the way to the
	// request's first stage.
	keys := s.subjectKeys(st)
	listed := make([][]store.SubjectRequest, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	for i, key := range keys {
		g.Go(func() (err error) {
			listed[i], err = s.Store.AddSubjectRequest(gctx, key, entry)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return st, fmt.Errorf("repeat check of %s: %w", st.ID, err)
	}
	earlier := map[string]store.SubjectRequest{}
	for _, l := range listed {
		for _, r := range l {
			if r.RequestID != st.ID && r.Type == st.Type && before(r) && !r.CreatedAt.Before(from) {
				earlier[r.RequestID] = r
			}
		}
	}
	ids := slices.Sorted(maps.Keys(earlier))
	prevs := make([]*dsr.Stored, len(ids))
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, id := range ids {
		g.Go(func() error {
			prev, _, err := s.Store.Get(gctx, id)
			if errors.Is(err, store.ErrNotFound) {
				return nil // listed by a submission that never stored its request
			}
			if err != nil {
				return fmt.Errorf("repeat check of %s: read %s: %w", st.ID, id, err)
			}
			prevs[i] = prev
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return st, err
	}
	var refs []dsr.RepeatRef
	for _, prev := range prevs {
		if prev != nil && earlierCounts(prev.State) {
			refs = append(refs, dsr.RepeatRef{ID: prev.ID, Type: prev.Type, CreatedAt: prev.CreatedAt, State: prev.State})
		}
	}
	slices.SortFunc(refs, func(a, b dsr.RepeatRef) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	// The trail gets the request's history so far in the same append,
	// and the write that records the check records that too: one
	// document write fewer per request (syncAudit then has nothing to do).
	audited := st.Audited
	if s.Audit != nil {
		entries, to := s.historyEntries(st, s.auditedFrom(ctx, st))
		if len(refs) > 0 {
			entries = append(entries, s.repeatEntry(st, refs))
		}
		if len(entries) > 0 {
			// Before the request says it was checked, so a failed append
			// is retried with the check; fixed ids make a retry one entry
			// each.
			if err := s.appendAudit(ctx, st, entries); err != nil {
				return st, fmt.Errorf("repeat check of %s: audit: %w", st.ID, err)
			}
		}
		audited = to
	}
	cur, err := s.Store.Update(ctx, st.ID, func(cur *dsr.Stored) (bool, error) {
		if cur.RepeatChecked {
			return false, nil
		}
		cur.RepeatChecked = true
		cur.RepeatOf = refs
		cur.Audited = max(cur.Audited, audited)
		return true, nil
	})
	if err != nil {
		return st, fmt.Errorf("repeat check of %s: %w", st.ID, err)
	}
	if len(refs) > 0 {
		s.Log.Info("repeat request flagged for an operator", "requestId", st.ID, "type", st.Type, "earlier", len(refs))
	}
	return cur, nil
}

// repeatEntry is the audit entry of a request flagged as a repeat: the
// earlier requests' ids, no identifier.
func (s *Service) repeatEntry(st *dsr.Stored, refs []dsr.RepeatRef) audit.Entry {
	ids := make([]string, len(refs))
	for i, r := range refs {
		ids[i] = r.ID
	}
	return audit.Entry{
		ID: st.ID + ":repeat.flagged", At: s.NowUTC(), RequestID: st.ID, Event: "repeat.flagged",
		Stage: string(st.Stage), State: string(st.State), Actor: &audit.Actor{Kind: "system", ID: "repeat-check"},
		Detail: fmt.Sprintf("repeat of %s (same person, same type, within %s); held for an operator to approve or reject (Art. 12(5))",
			strings.Join(ids, ", "), windowText(s.RepeatWindow)),
	}
}

// windowText says a window in days when it is whole days.
func windowText(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}
