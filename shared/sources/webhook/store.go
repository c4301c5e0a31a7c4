package webhook

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
)

// StoredPage is one page of an asynchronous access result, as a callback
// delivered it.
type StoredPage struct {
	// Cursor is the cursor this page answers ("" for the first page).
	Cursor string
	// Next is the cursor of the following page, "" for the last one.
	Next string
	// Records holds, per dataset, the records as raw JSON objects in the
	// order received. Datasets without records may be absent.
	Records map[string][]json.RawMessage
}

// ResultStore keeps asynchronous access results between the callback that
// delivers them and the Discover or Read that uses them. The stored records
// are personal data: Delete must be called when the request is finished.
//
// Implementations must be safe for concurrent use. Request ids and dataset
// names reaching a store have been validated ([A-Za-z0-9_-], [a-z0-9-]).
type ResultStore interface {
	// Begin records that an asynchronous access for requestID may be
	// delivered; callbacks for a request not begun (or deleted since) are
	// refused. Calling it again is harmless.
	Begin(ctx context.Context, requestID string) error
	// Begun reports whether Begin was called and Delete has not been since.
	Begun(ctx context.Context, requestID string) (bool, error)
	// PutPage stores a page. It is create-only: when a page with the same
	// cursor is stored already, that page is kept unchanged and PutPage
	// succeeds (a redelivered callback changes nothing). A page becomes
	// visible to Links only once all of it is stored.
	PutPage(ctx context.Context, requestID string, p StoredPage) error
	// Links returns, for every stored page, its cursor → next.
	Links(ctx context.Context, requestID string) (map[string]string, error)
	// Records calls fn with each record of dataset in the stored page
	// answering cursor, in the order received.
	Records(ctx context.Context, requestID, cursor, dataset string, fn func(json.RawMessage) error) error
	// MarkComplete records that the pages of requestID form a complete
	// result. Calling it again is harmless.
	MarkComplete(ctx context.Context, requestID string) error
	// Complete reports whether MarkComplete was called (and Delete not since).
	Complete(ctx context.Context, requestID string) (bool, error)
	// Delete removes everything stored for requestID; deleting nothing
	// succeeds.
	Delete(ctx context.Context, requestID string) error
}

// MemoryStore is a ResultStore in memory, for tests and local runs.
type MemoryStore struct {
	mu   sync.Mutex
	reqs map[string]*memRequest
}

type memRequest struct {
	begun    bool
	complete bool
	pages    map[string]StoredPage
}

var _ ResultStore = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{reqs: map[string]*memRequest{}} }

func (m *MemoryStore) req(id string) *memRequest {
	r := m.reqs[id]
	if r == nil {
		r = &memRequest{pages: map[string]StoredPage{}}
		m.reqs[id] = r
	}
	return r
}

// Begin implements ResultStore.
func (m *MemoryStore) Begin(_ context.Context, requestID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.req(requestID).begun = true
	return nil
}

// Begun implements ResultStore.
func (m *MemoryStore) Begun(_ context.Context, requestID string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.reqs[requestID]
	return r != nil && r.begun, nil
}

// PutPage implements ResultStore.
func (m *MemoryStore) PutPage(_ context.Context, requestID string, p StoredPage) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.req(requestID)
	if _, ok := r.pages[p.Cursor]; ok {
		return nil
	}
	cp := StoredPage{Cursor: p.Cursor, Next: p.Next, Records: map[string][]json.RawMessage{}}
	for ds, recs := range p.Records {
		out := make([]json.RawMessage, len(recs))
		for i, raw := range recs {
			out[i] = slices.Clone(raw)
		}
		cp.Records[ds] = out
	}
	r.pages[p.Cursor] = cp
	return nil
}

// Links implements ResultStore.
func (m *MemoryStore) Links(_ context.Context, requestID string) (map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	if r := m.reqs[requestID]; r != nil {
		for c, p := range r.pages {
			out[c] = p.Next
		}
	}
	return out, nil
}

// Records implements ResultStore.
func (m *MemoryStore) Records(_ context.Context, requestID, cursor, dataset string, fn func(json.RawMessage) error) error {
	m.mu.Lock()
	var recs []json.RawMessage
	if r := m.reqs[requestID]; r != nil {
		recs = r.pages[cursor].Records[dataset]
	}
	m.mu.Unlock()
	for _, raw := range recs {
		if err := fn(slices.Clone(raw)); err != nil {
			return err
		}
	}
	return nil
}

// MarkComplete implements ResultStore.
func (m *MemoryStore) MarkComplete(_ context.Context, requestID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.req(requestID).complete = true
	return nil
}

// Complete implements ResultStore.
func (m *MemoryStore) Complete(_ context.Context, requestID string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.reqs[requestID]
	return r != nil && r.complete, nil
}

// Delete implements ResultStore.
func (m *MemoryStore) Delete(_ context.Context, requestID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.reqs, requestID)
	return nil
}

// Len reports how many requests have anything stored (for tests).
func (m *MemoryStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.reqs)
}
