package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/store"
)

const subjectHash = "k_0123456789abcdef0123456789abcdef"

func listedIDs(rs []store.SubjectRequest) []string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.RequestID)
	}
	slices.Sort(ids)
	return ids
}

// Concurrent requests for one person are all listed: each append is
// conditional on what it read, and a lost race reads again.
func TestSubjectRegistryConcurrentAppends(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	now := time.Now().UTC()
	var want []string
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		id := dsr.NewID(now.Add(time.Duration(i) * time.Millisecond))
		want = append(want, id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs, err := s.AddSubjectRequest(ctx, subjectHash, store.SubjectRequest{RequestID: id, Type: dsr.TypeAccess, CreatedAt: now})
			if err == nil && !slices.ContainsFunc(rs, func(r store.SubjectRequest) bool { return r.RequestID == id }) {
				err = fmt.Errorf("append of %s answered without it", id)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetSubjectRequests(ctx, subjectHash)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	if g := listedIDs(got); !slices.Equal(g, want) {
		t.Fatalf("listed %v\nwant %v", g, want)
	}
}

// A redelivered request is listed once; entries past the retention are
// dropped; other identifiers' entries are separate; raw identifiers are
// refused as names.
func TestSubjectRegistryIdempotentAndBounded(t *testing.T) {
	ctx := context.Background()
	s, cc := newStore(t)
	now := time.Now().UTC()
	old := store.SubjectRequest{RequestID: dsr.NewID(now.Add(-400 * 24 * time.Hour)), Type: dsr.TypeAccess, CreatedAt: now.Add(-400 * 24 * time.Hour)}
	recent := store.SubjectRequest{RequestID: dsr.NewID(now.Add(-24 * time.Hour)), Type: dsr.TypeErasure, CreatedAt: now.Add(-24 * time.Hour)}
	fresh := store.SubjectRequest{RequestID: dsr.NewID(now), Type: dsr.TypeAccess, CreatedAt: now}
	for _, r := range []store.SubjectRequest{old, recent, fresh, fresh} {
		if _, err := s.AddSubjectRequest(ctx, subjectHash, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetSubjectRequests(ctx, subjectHash)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].RequestID != recent.RequestID || got[1].RequestID != fresh.RequestID || got[0].Type != dsr.TypeErasure || !got[1].CreatedAt.Equal(now) {
		t.Fatalf("entry %+v; want the recent and the fresh request, once each, oldest first", got)
	}
	other, err := s.GetSubjectRequests(ctx, "k_ffffffffffffffffffffffffffffffff")
	if err != nil || len(other) != 0 {
		t.Fatalf("another identifier: %v %v", other, err)
	}
	if _, err := s.AddSubjectRequest(ctx, "ann@example.com", fresh); err == nil {
		t.Fatal("a raw identifier was accepted as a registry key")
	}
	if _, err := cc.NewBlobClient("subjects/"+subjectHash+".json").GetProperties(ctx, nil); err != nil {
		t.Fatalf("registry blob: %v", err)
	}
	// Only the newest MaxSubjectRequests stay.
	for i := range store.MaxSubjectRequests + 5 {
		at := now.Add(time.Duration(i+1) * time.Minute)
		if _, err := s.AddSubjectRequest(ctx, subjectHash, store.SubjectRequest{RequestID: dsr.NewID(at), Type: dsr.TypeAccess, CreatedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	got, err = s.GetSubjectRequests(ctx, subjectHash)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != store.MaxSubjectRequests || !got[len(got)-1].CreatedAt.Equal(now.Add(time.Duration(store.MaxSubjectRequests+5)*time.Minute)) {
		t.Fatalf("%d listed, newest %v", len(got), got[len(got)-1].CreatedAt)
	}
}

// A request flagged as a repeat is listed as one (from blob metadata), and
// one that is not is not.
func TestListMarksRepeats(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	first := newStored(dsr.TypeAccess, dsr.Subject{Email: "ann@example.com"})
	second := newStored(dsr.TypeAccess, dsr.Subject{Email: "ann@example.com"})
	for _, st := range []*dsr.Stored{first, second} {
		if _, _, err := s.Create(ctx, st, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Update(ctx, second.ID, func(st *dsr.Stored) (bool, error) {
		st.RepeatOf = []dsr.RepeatRef{{ID: first.ID, Type: first.Type, CreatedAt: first.CreatedAt, State: first.State}}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	items, _, err := s.List(ctx, store.Filter{}, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, it := range items {
		got[it.ID] = it.Repeat
	}
	if len(got) != 2 || got[first.ID] || !got[second.ID] {
		t.Fatalf("listed repeat marks %v; want only %s", got, second.ID)
	}
}
