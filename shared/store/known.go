package store

import (
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// known remembers the last version of each request document this process
// read or wrote (its bytes and ETag), so Update can start from it instead
// of reading the document again: a request's stages update it several
// times in a row, and under load every saved read counts. It is only a
// starting point: the write is still conditional on the ETag, and a
// version someone else replaced fails it, is forgotten and read afresh.
// Reads (Get) never come from it, so nothing stale is ever shown or
// decided on.
type known struct {
	mu   sync.Mutex
	docs map[string]knownDoc
	// order is the ids in insertion order, for eviction.
	order []string
}

type knownDoc struct {
	body []byte
	etag azcore.ETag
}

// maxKnown bounds the documents remembered (a few KiB each).
const maxKnown = 2048

func (k *known) get(id string) (knownDoc, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	d, ok := k.docs[id]
	return d, ok
}

func (k *known) put(id string, body []byte, etag azcore.ETag) {
	if etag == "" {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.docs == nil {
		k.docs = map[string]knownDoc{}
	}
	if _, ok := k.docs[id]; !ok {
		k.order = append(k.order, id)
		for len(k.order) > maxKnown {
			delete(k.docs, k.order[0])
			k.order = k.order[1:]
		}
	}
	k.docs[id] = knownDoc{body: body, etag: etag}
}

func (k *known) forget(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.docs, id) // its id stays in order until evicted: harmless
}
