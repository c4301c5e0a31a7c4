package store_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/store"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
)

func TestMain(m *testing.M) { os.Exit(azuritetest.Run(m)) }

// newStore returns a store over a fresh container, and the container itself.
func newStore(t *testing.T) (*store.Store, *container.Client) {
	t.Helper()
	acct := azuritetest.Account(t)
	name := azuritetest.Container(t, acct, "state")
	cc := acct.Service.NewContainerClient(name)
	return store.New(cc), cc
}

func newStored(typ dsr.Type, sub dsr.Subject) *dsr.Stored {
	now := time.Now()
	received := now.Add(-48 * time.Hour).UTC().Truncate(time.Second)
	return dsr.NewStored(&dsr.Submission{Type: typ, Subject: &sub, ReceivedAt: &received, Note: "via test"}, dsr.NewID(now), "test", now)
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCreateGetRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, cc := newStore(t)
	st := newStored(dsr.TypeAccess, dsr.Subject{Email: "ann@example.com", Phone: "+14155552671", Name: "Ann Example", IDs: map[string]string{"crm": "C-1"}})
	want := jsonOf(t, st)

	got, created, err := s.Create(ctx, st, "", "")
	if err != nil || !created {
		t.Fatalf("Create: created=%v err=%v", created, err)
	}
	if got.ID != st.ID {
		t.Errorf("Create returned id %s, want %s", got.ID, st.ID)
	}

	back, etag, err := s.Get(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if etag == "" {
		t.Error("Get returned no ETag")
	}
	if g := jsonOf(t, back); g != want {
		t.Errorf("round trip changed the request:\n got %s\nwant %s", g, want)
	}
	if back.Subject.Email != "ann@example.com" || back.Subject.IDs["crm"] != "C-1" {
		t.Errorf("subject lost: %+v", back.Subject)
	}

	props, err := cc.NewBlobClient("requests/"+st.ID+".json").GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	md := map[string]string{}
	for k, v := range props.Metadata {
		if v != nil {
			md[strings.ToLower(k)] = *v
		}
	}
	wantMD := map[string]string{
		"state":      "received",
		"type":       "access",
		"stage":      "intake",
		"createdat":  st.CreatedAt.UTC().Format(time.RFC3339Nano),
		"receivedat": st.ReceivedAt.UTC().Format(time.RFC3339Nano),
		"dueat":      st.DueAt.UTC().Format(time.RFC3339Nano),
		"updatedat":  st.UpdatedAt.UTC().Format(time.RFC3339Nano),
	}
	for k, v := range wantMD {
		if md[k] != v {
			t.Errorf("metadata %s = %q, want %q", k, md[k], v)
		}
	}
	for k, v := range md {
		if strings.Contains(v, "ann") || strings.Contains(v, "4155552671") {
			t.Errorf("metadata %s holds personal data", k)
		}
	}
	if ct := props.ContentType; ct == nil || *ct != "application/json" {
		t.Errorf("content type %v", ct)
	}
}

func TestCreateTwiceWithoutKey(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	st := newStored(dsr.TypeAccess, dsr.Subject{Email: "a@example.com"})
	if _, created, err := s.Create(ctx, st, "", ""); err != nil || !created {
		t.Fatalf("first Create: %v %v", created, err)
	}
	again := *st
	again.Subject = dsr.Subject{Email: "other@example.com"}
	got, created, err := s.Create(ctx, &again, "", "")
	if err != nil || created {
		t.Fatalf("second Create of the same id: created=%v err=%v", created, err)
	}
	if got.Subject.Email != "a@example.com" {
		t.Errorf("second Create overwrote or returned the wrong request: %+v", got.Subject)
	}
}

func TestCreateIdempotencyKey(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	first := newStored(dsr.TypeAccess, dsr.Subject{Email: "a@example.com"})
	got, created, err := s.Create(ctx, first, "key-1", "fp-A")
	if err != nil || !created || got.ID != first.ID {
		t.Fatalf("first Create: id=%v created=%v err=%v", got, created, err)
	}

	// Same key, same fingerprint: the first request, not a new one.
	second := newStored(dsr.TypeAccess, dsr.Subject{Email: "a@example.com"})
	got, created, err = s.Create(ctx, second, "key-1", "fp-A")
	if err != nil {
		t.Fatal(err)
	}
	if created || got.ID != first.ID {
		t.Errorf("repeat Create: id %s created=%v, want %s created=false", got.ID, created, first.ID)
	}
	if jsonOf(t, got) != jsonOf(t, first) {
		t.Errorf("repeat Create returned %s, want the first request", jsonOf(t, got))
	}

	// Same key, another fingerprint: refused.
	third := newStored(dsr.TypeDiscovery, dsr.Subject{Email: "b@example.com"})
	if _, _, err := s.Create(ctx, third, "key-1", "fp-B"); !errors.Is(err, store.ErrIdempotencyMismatch) {
		t.Errorf("Create with a different fingerprint: err = %v, want ErrIdempotencyMismatch", err)
	}

	// Another key creates another request.
	fourth := newStored(dsr.TypeAccess, dsr.Subject{Email: "a@example.com"})
	if got, created, err := s.Create(ctx, fourth, "key-2", "fp-A"); err != nil || !created || got.ID != fourth.ID {
		t.Errorf("Create with a new key: %v %v %v", got, created, err)
	}

	for _, id := range []string{second.ID, third.ID} {
		if _, _, err := s.Get(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("request %s exists (err %v): a repeated key must not create a request", id, err)
		}
	}
	list, _, err := s.List(ctx, store.Filter{}, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Errorf("List has %d requests, want 2", len(list))
	}
}

func TestCreateIdempotencyKeyConcurrent(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	const n = 6
	type result struct {
		id      string
		created bool
		err     error
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			st := newStored(dsr.TypeAccess, dsr.Subject{Email: "a@example.com"})
			got, created, err := s.Create(ctx, st, "same-key", "fp")
			r := result{created: created, err: err}
			if got != nil {
				r.id = got.ID
			}
			results <- r
		})
	}
	wg.Wait()
	close(results)
	ids := map[string]bool{}
	createdCount := 0
	for r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
		ids[r.id] = true
		if r.created {
			createdCount++
		}
	}
	if len(ids) != 1 || createdCount != 1 {
		t.Errorf("%d concurrent Creates with one key: ids %v, %d created; want one id, one created", n, ids, createdCount)
	}
	list, _, err := s.List(ctx, store.Filter{}, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Errorf("List has %d requests, want 1", len(list))
	}
}

func TestCreateRecoversAfterCrashBetweenClaimAndWrite(t *testing.T) {
	ctx := context.Background()
	s, cc := newStore(t)
	first := newStored(dsr.TypeAccess, dsr.Subject{Email: "a@example.com"})
	if _, created, err := s.Create(ctx, first, "crash-key", "fp"); err != nil || !created {
		t.Fatalf("Create: %v %v", created, err)
	}
	// The crash: the key is claimed for first.ID but its request was never written.
	if _, err := cc.NewBlobClient("requests/"+first.ID+".json").Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, first.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("request still readable after delete: %v", err)
	}

	retry := newStored(dsr.TypeAccess, dsr.Subject{Email: "a@example.com", Name: "retry"})
	retryID := retry.ID
	got, created, err := s.Create(ctx, retry, "crash-key", "fp")
	if err != nil {
		t.Fatal(err)
	}
	if !created || got.ID != first.ID {
		t.Fatalf("retry: id %s created=%v, want the claimed id %s created=true", got.ID, created, first.ID)
	}
	back, _, err := s.Get(ctx, first.ID)
	if err != nil {
		t.Fatalf("the request was not written under the claimed id: %v", err)
	}
	if back.Subject.Name != "retry" || back.ID != first.ID {
		t.Errorf("stored %+v", back)
	}
	if _, _, err := s.Get(ctx, retryID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the retry also wrote its own id %s: %v", retryID, err)
	}
	// And a third call now finds it.
	got, created, err = s.Create(ctx, newStored(dsr.TypeAccess, dsr.Subject{Email: "a@example.com"}), "crash-key", "fp")
	if err != nil || created || got.ID != first.ID {
		t.Errorf("after recovery: %v %v %v", got, created, err)
	}
}

func TestUpdateConcurrentNoLostUpdate(t *testing.T) {
	// 8 writers always fit in the attempts (each lost attempt means another
	// writer won); 16 need the jittered backoff so losers do not collide again.
	for _, n := range []int{8, 16} {
		t.Run(fmt.Sprint(n), func(t *testing.T) { concurrentUpdates(t, n) })
	}
}

func concurrentUpdates(t *testing.T, n int) {
	ctx := context.Background()
	s, _ := newStore(t)
	st := newStored(dsr.TypeAccess, dsr.Subject{Email: "a@example.com"})
	if _, _, err := s.Create(ctx, st, "", ""); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, err := s.Update(ctx, st.ID, func(r *dsr.Stored) (bool, error) {
				r.History = append(r.History, dsr.HistoryEntry{Stage: dsr.StageDiscovery, State: dsr.StateInProgress, At: time.Now().UTC(), Attempt: 1, Detail: fmt.Sprintf("writer-%d", i)})
				return true, nil
			})
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Update: %v", err)
		}
	}
	got, _, err := s.Get(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, h := range got.History[1:] {
		details = append(details, h.Detail)
	}
	sort.Strings(details)
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("writer-%d", i)
	}
	sort.Strings(want)
	if !slices.Equal(details, want) {
		t.Errorf("history after %d concurrent updates: %v, want %v", n, details, want)
	}
}

func TestUpdateWritesAndMirrorsMetadata(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	st := newStored(dsr.TypeDiscovery, dsr.Subject{Email: "a@example.com"})
	if _, _, err := s.Create(ctx, st, "", ""); err != nil {
		t.Fatal(err)
	}
	_, etag0, _ := s.Get(ctx, st.ID)
	at := time.Now().UTC()
	upd, err := s.Update(ctx, st.ID, func(r *dsr.Stored) (bool, error) {
		if _, err := r.Advance(dsr.StageDiscovery, dsr.StateInProgress, at, 1, ""); err != nil {
			return false, err
		}
		return r.Advance(dsr.StageDone, dsr.StateCompleted, at, 1, "")
	})
	if err != nil {
		t.Fatal(err)
	}
	if upd.State != dsr.StateCompleted {
		t.Errorf("Update returned state %s", upd.State)
	}
	got, etag1, _ := s.Get(ctx, st.ID)
	if got.State != dsr.StateCompleted || got.Stage != dsr.StageDone || etag1 == etag0 {
		t.Errorf("after Update: %s/%s, etag %s → %s", got.Stage, got.State, etag0, etag1)
	}
	list, _, err := s.List(ctx, store.Filter{State: dsr.StateCompleted}, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != st.ID || list[0].Stage != dsr.StageDone || !list[0].UpdatedAt.Equal(at) {
		t.Errorf("List after Update: %+v", list)
	}
}

func TestUpdateSkipsWriteWhenUnchanged(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	st := newStored(dsr.TypeAccess, dsr.Subject{Email: "a@example.com"})
	if _, _, err := s.Create(ctx, st, "", ""); err != nil {
		t.Fatal(err)
	}
	_, before, err := s.Get(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Update(ctx, st.ID, func(r *dsr.Stored) (bool, error) {
		r.Note = "changed but not to be written"
		return false, nil
	})
	if err != nil || got == nil {
		t.Fatalf("Update: %v %v", got, err)
	}
	boom := errors.New("boom")
	if _, err := s.Update(ctx, st.ID, func(r *dsr.Stored) (bool, error) {
		r.Note = "changed but failed"
		return true, boom
	}); !errors.Is(err, boom) {
		t.Errorf("Update with a failing fn: err = %v", err)
	}
	back, after, err := s.Get(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("ETag changed from %s to %s without a write", before, after)
	}
	if back.Note != "via test" {
		t.Errorf("note = %q", back.Note)
	}
	if _, err := s.Update(ctx, dsr.NewID(time.Now()), func(*dsr.Stored) (bool, error) { return true, nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Update of an unknown id: %v", err)
	}
}

func TestGetNotFound(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	st := newStored(dsr.TypeAccess, dsr.Subject{Email: "a@example.com"})
	if _, _, err := s.Create(ctx, st, "", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDiscovery(ctx, st.ID, map[string]int{"x": 1}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{
		dsr.NewID(time.Now()),
		"",
		"../x",
		"../requests/" + st.ID,
		strings.ToUpper(st.ID),
		st.ID + ".json",
		"requests/" + st.ID,
		"idempotency",
		"r" + strings.Repeat("z", 28),
	} {
		got, etag, err := s.Get(ctx, id)
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%q) = %v, %q, %v; want ErrNotFound", id, got, etag, err)
		}
	}
	// A missing container reads as not found too.
	acct := azuritetest.Account(t)
	missing := store.New(acct.Service.NewContainerClient("no-such-container-" + strings.ToLower(dsr.NewID(time.Now())[20:])))
	if _, _, err := missing.Get(ctx, st.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get on a missing container: %v", err)
	}
}

// seed creates requests of the given types and states, returning their ids.
func seed(t *testing.T, s *store.Store, specs []struct {
	typ   dsr.Type
	state dsr.State
}) []string {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for _, sp := range specs {
		st := newStored(sp.typ, dsr.Subject{Email: "a@example.com"})
		if sp.state != dsr.StateReceived {
			// A listing fixture: any state, whatever the route allows.
			st.Stage, st.State = dsr.StageDiscovery, sp.state
			st.History = append(st.History, dsr.HistoryEntry{Stage: dsr.StageDiscovery, State: sp.state, At: time.Now().UTC(), Attempt: 1})
		}
		if _, _, err := s.Create(ctx, st, "", ""); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, st.ID)
	}
	return ids
}

func TestListFilters(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	ids := seed(t, s, []struct {
		typ   dsr.Type
		state dsr.State
	}{
		{dsr.TypeAccess, dsr.StateReceived},
		{dsr.TypeDiscovery, dsr.StateReceived},
		{dsr.TypeAccess, dsr.StateInProgress},
		{dsr.TypeAccess, dsr.StateCompleted},
		{dsr.TypeDiscovery, dsr.StateCompleted},
	})
	// Unrelated blobs in the container are not requests.
	if err := s.PutDiscovery(ctx, ids[0], map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		f    store.Filter
		want []string
	}{
		{store.Filter{}, ids},
		{store.Filter{State: dsr.StateReceived}, []string{ids[0], ids[1]}},
		{store.Filter{State: dsr.StateInProgress}, []string{ids[2]}},
		{store.Filter{State: dsr.StateCompleted}, []string{ids[3], ids[4]}},
		{store.Filter{State: dsr.StateFailed}, nil},
		{store.Filter{Type: dsr.TypeAccess}, []string{ids[0], ids[2], ids[3]}},
		{store.Filter{Type: dsr.TypeDiscovery}, []string{ids[1], ids[4]}},
		{store.Filter{Type: dsr.TypeErasure}, nil},
		{store.Filter{State: dsr.StateCompleted, Type: dsr.TypeAccess}, []string{ids[3]}},
		{store.Filter{State: dsr.StateInProgress, Type: dsr.TypeDiscovery}, nil},
	}
	for _, tc := range tests {
		got, next, err := s.List(ctx, tc.f, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		if next != "" {
			t.Errorf("%+v: next token %q on the only page", tc.f, next)
		}
		if got == nil {
			t.Errorf("%+v: nil slice (an empty list must encode as [])", tc.f)
		}
		var gotIDs []string
		for _, sum := range got {
			gotIDs = append(gotIDs, sum.ID)
			if (tc.f.State != "" && sum.State != tc.f.State) || (tc.f.Type != "" && sum.Type != tc.f.Type) {
				t.Errorf("%+v: listed %+v", tc.f, sum)
			}
		}
		want := slices.Clone(tc.want)
		sort.Strings(want)
		if !slices.Equal(gotIDs, want) {
			t.Errorf("%+v: listed %v, want %v", tc.f, gotIDs, want)
		}
	}
	// Summaries carry the dates from metadata.
	got, _, err := s.List(ctx, store.Filter{}, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, sum := range got {
		full, _, err := s.Get(ctx, sum.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !sum.CreatedAt.Equal(full.CreatedAt) || !sum.ReceivedAt.Equal(full.ReceivedAt) || !sum.DueAt.Equal(full.DueAt) || !sum.UpdatedAt.Equal(full.UpdatedAt) || sum.Stage != full.Stage {
			t.Errorf("summary %+v does not match the document", sum)
		}
	}
}

// listAll pages through List and returns the ids in order and the number of pages.
func listAll(t *testing.T, s *store.Store, f store.Filter, limit int) ([]string, int) {
	t.Helper()
	ctx := context.Background()
	var ids []string
	token := ""
	pages := 0
	for {
		got, next, err := s.List(ctx, f, limit, token)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(got) > limit {
			t.Fatalf("page of %d with limit %d", len(got), limit)
		}
		if next != "" && len(got) != limit {
			t.Fatalf("short page (%d of %d) followed by token %q", len(got), limit, next)
		}
		for _, sum := range got {
			ids = append(ids, sum.ID)
		}
		if next == "" {
			return ids, pages
		}
		if pages > 10000 {
			t.Fatal("pagination does not end")
		}
		token = next
	}
}

func TestListPagination(t *testing.T) {
	s, _ := newStore(t)
	specs := make([]struct {
		typ   dsr.Type
		state dsr.State
	}, 5)
	for i := range specs {
		specs[i].typ, specs[i].state = dsr.TypeAccess, dsr.StateReceived
		if i%2 == 1 {
			specs[i].typ = dsr.TypeDiscovery
		}
	}
	ids := seed(t, s, specs)
	sorted := slices.Clone(ids)
	sort.Strings(sorted)

	got, pages := listAll(t, s, store.Filter{}, 2)
	if !slices.Equal(got, sorted) || pages != 3 {
		t.Errorf("limit 2: %d pages %v, want 3 pages %v", pages, got, sorted)
	}
	for _, limit := range []int{1, 3, 4, 5, 6, 100} {
		got, _ := listAll(t, s, store.Filter{}, limit)
		if !slices.Equal(got, sorted) {
			t.Errorf("limit %d: %v, want %v", limit, got, sorted)
		}
	}
	// Exactly one full page: no token for an empty next page.
	if _, next, err := s.List(context.Background(), store.Filter{}, 5, ""); err != nil || next != "" {
		t.Errorf("limit 5 over 5: next %q err %v", next, err)
	}
	var access []string
	for i, id := range ids {
		if i%2 == 0 {
			access = append(access, id)
		}
	}
	sort.Strings(access)
	if got, _ := listAll(t, s, store.Filter{Type: dsr.TypeAccess}, 1); !slices.Equal(got, access) {
		t.Errorf("filtered pagination: %v, want %v", got, access)
	}
}

func TestListPaginationAcrossServicePages(t *testing.T) {
	// More blobs than one service listing page (500) returns.
	ctx := context.Background()
	s, cc := newStore(t)
	const n = 523
	base := time.Now().Add(-time.Hour)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = dsr.NewID(base.Add(time.Duration(i) * time.Millisecond))
	}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			typ := "access"
			if i%3 == 0 {
				typ = "discovery"
			}
			_, err := cc.NewBlockBlobClient("requests/"+id+".json").UploadBuffer(ctx, []byte("{}"), &blockblob.UploadBufferOptions{
				Metadata: map[string]*string{"state": to.Ptr("received"), "type": to.Ptr(typ), "stage": to.Ptr("intake")},
			})
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	for _, limit := range []int{7, 100, 250, 499, 500, 501, 1000} {
		got, _ := listAll(t, s, store.Filter{}, limit)
		if !slices.Equal(got, ids) {
			t.Errorf("limit %d: %d ids listed, want %d in order", limit, len(got), n)
		}
	}
	var disc []string
	for i, id := range ids {
		if i%3 == 0 {
			disc = append(disc, id)
		}
	}
	if got, _ := listAll(t, s, store.Filter{Type: dsr.TypeDiscovery}, 37); !slices.Equal(got, disc) {
		t.Errorf("filtered: %d ids listed, want %d in order", len(got), len(disc))
	}
}

func TestListBadPageToken(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	seed(t, s, []struct {
		typ   dsr.Type
		state dsr.State
	}{{dsr.TypeAccess, dsr.StateReceived}})
	enc := base64.RawURLEncoding.EncodeToString
	for _, tok := range []string{
		"garbage!!",
		"%%%",
		"eyJ",
		enc([]byte("not json")),
		enc([]byte(`[1,2]`)),
		enc([]byte(`{"s":-1}`)),
		enc([]byte(`{"s":"x"}`)),
	} {
		if got, next, err := s.List(ctx, store.Filter{}, 10, tok); !errors.Is(err, store.ErrBadPageToken) {
			t.Errorf("token %q: %v %q %v, want ErrBadPageToken", tok, got, next, err)
		}
	}
}

// A token is taken only as issued, by a store with the same key: edited,
// made up or from another key, it is refused.
func TestPageTokensAreAuthenticated(t *testing.T) {
	ctx := context.Background()
	s, cc := newStore(t)
	s.WithPageTokenKey([]byte("key-one-0123456789abcdef"))
	seed(t, s, []struct {
		typ   dsr.Type
		state dsr.State
	}{{dsr.TypeAccess, dsr.StateReceived}, {dsr.TypeAccess, dsr.StateReceived}, {dsr.TypeAccess, dsr.StateReceived}})
	_, tok, err := s.List(ctx, store.Filter{}, 1, "")
	if err != nil || tok == "" {
		t.Fatalf("first page: %q %v", tok, err)
	}
	if got, _, err := s.List(ctx, store.Filter{}, 1, tok); err != nil || len(got) != 1 {
		t.Fatalf("the issued token: %v %v", got, err)
	}
	payload, mac, _ := strings.Cut(tok, ".")
	edited := base64.RawURLEncoding.EncodeToString([]byte(`{"s":2}`)) + "." + mac
	other := store.New(cc).WithPageTokenKey([]byte("key-two-0123456789abcdef"))
	for name, check := range map[string]func() error{
		"edited":    func() error { _, _, err := s.List(ctx, store.Filter{}, 1, edited); return err },
		"no mac":    func() error { _, _, err := s.List(ctx, store.Filter{}, 1, payload); return err },
		"other key": func() error { _, _, err := other.List(ctx, store.Filter{}, 1, tok); return err },
	} {
		if err := check(); !errors.Is(err, store.ErrBadPageToken) {
			t.Errorf("%s token: %v, want ErrBadPageToken", name, err)
		}
	}
	same := store.New(cc).WithPageTokenKey([]byte("key-one-0123456789abcdef"))
	if _, _, err := same.List(ctx, store.Filter{}, 1, tok); err != nil {
		t.Errorf("another instance with the same key: %v", err)
	}
}

type discoveryDoc struct {
	Sources []struct {
		Source string  `json:"source"`
		Rows   []int64 `json:"rows"`
	} `json:"sources"`
	At time.Time `json:"at"`
}

func TestDiscoveryRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	id := dsr.NewID(time.Now())
	var in discoveryDoc
	in.At = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	in.Sources = append(in.Sources, struct {
		Source string  `json:"source"`
		Rows   []int64 `json:"rows"`
	}{"crm", []int64{1, 5, 9}})
	var out discoveryDoc
	if err := s.GetDiscovery(ctx, id, &out); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDiscovery before Put: %v", err)
	}
	if err := s.PutDiscovery(ctx, id, in); err != nil {
		t.Fatal(err)
	}
	if err := s.GetDiscovery(ctx, id, &out); err != nil {
		t.Fatal(err)
	}
	if jsonOf(t, out) != jsonOf(t, in) {
		t.Errorf("round trip: %s, want %s", jsonOf(t, out), jsonOf(t, in))
	}
	// Put replaces.
	in.Sources[0].Rows = []int64{2}
	if err := s.PutDiscovery(ctx, id, in); err != nil {
		t.Fatal(err)
	}
	out = discoveryDoc{}
	if err := s.GetDiscovery(ctx, id, &out); err != nil || !slices.Equal(out.Sources[0].Rows, []int64{2}) {
		t.Errorf("after replace: %+v %v", out, err)
	}
	if err := s.PutDiscovery(ctx, id, func() {}); err == nil {
		t.Error("PutDiscovery of an unencodable value succeeded")
	}
}

func TestPing(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping on an existing container: %v", err)
	}
	acct := azuritetest.Account(t)
	missing := store.New(acct.Service.NewContainerClient("missing-" + dsr.NewID(time.Now())[14:]))
	if err := missing.Ping(ctx); err == nil {
		t.Error("Ping on a missing container succeeded")
	}
}

// An instance that remembers an older version of a request than the stored
// one (another instance wrote since) never decides on it: neither "nothing
// to change" nor a refusal stands until checked against the stored version,
// and a write based on it fails its condition and is redone.
func TestUpdateNeverDecidesOnAStaleVersion(t *testing.T) {
	ctx := context.Background()
	a, cc := newStore(t)
	b := store.New(cc) // another instance
	st := newStored(dsr.TypeAccess, dsr.Subject{Email: "a@example.com"})
	if _, _, err := a.Create(ctx, st, "", ""); err != nil { // a remembers intake/received
		t.Fatal(err)
	}
	if _, err := b.Update(ctx, st.ID, func(cur *dsr.Stored) (bool, error) {
		return cur.Advance(dsr.StageDiscovery, dsr.StateInProgress, time.Now(), 1, "")
	}); err != nil {
		t.Fatal(err)
	}
	// "Only once discovery has begun": a decides on the stored version.
	got, err := a.Update(ctx, st.ID, func(cur *dsr.Stored) (bool, error) {
		if cur.Stage != dsr.StageDiscovery {
			return false, nil
		}
		cur.Note = "seen in discovery"
		return true, nil
	})
	if err != nil || got.Note != "seen in discovery" || got.Stage != dsr.StageDiscovery {
		t.Fatalf("decided on a stale version: %+v %v", got, err)
	}
	// A refusal on a remembered version is checked again too.
	if _, err := b.Update(ctx, st.ID, func(cur *dsr.Stored) (bool, error) { cur.Note = "b"; return true, nil }); err != nil {
		t.Fatal(err)
	}
	got, err = a.Update(ctx, st.ID, func(cur *dsr.Stored) (bool, error) {
		if cur.Note != "b" {
			return false, errors.New("refused on an old version")
		}
		cur.Note = "after b"
		return true, nil
	})
	if err != nil || got.Note != "after b" {
		t.Fatalf("refused on a stale version: %+v %v", got, err)
	}
	stored, _, err := b.Get(ctx, st.ID)
	if err != nil || stored.Note != "after b" {
		t.Fatalf("stored %+v %v", stored, err)
	}
}
