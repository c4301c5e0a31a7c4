package audit

import (
	"context"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// Group commit. Every stage of every request appends to the hour's blob,
// so under load one append blob takes most of the trail's writes, one
// round trip each, and an append blob holds at most 50,000 blocks. Lines
// for one blob that arrive while an append to it is in flight therefore
// wait and go together in the next block: each caller still returns only
// once its lines are stored (or with the error of the block that held
// them), and the blob gets fewer, larger blocks. Order is kept: a block
// holds lines in arrival order, and blocks go in the order they filled.

// maxBlockBytes bounds one append block (Storage accepts 4 MiB on every
// service version).
const maxBlockBytes = 4 << 20

// flushTimeout bounds one append on behalf of a group (not any caller's
// deadline: the block holds others' lines too).
const flushTimeout = 30 * time.Second

type groupBatch struct {
	data  []byte
	fresh bool // create the blob before appending (AppendNew)
	done  chan struct{}
	err   error
}

type blobQueue struct {
	flushing bool
	batches  []*groupBatch
}

type grouper struct {
	mu    sync.Mutex
	blobs map[string]*blobQueue
}

// append stores lines at the end of blob name, in a block shared with the
// lines of concurrent callers. fresh says the blob most likely does not
// exist yet (appendLine creates it first).
func (g *grouper) append(ctx context.Context, c *container.Client, name string, lines []byte, fresh bool) error {
	g.mu.Lock()
	if g.blobs == nil {
		g.blobs = map[string]*blobQueue{}
	}
	q := g.blobs[name]
	if q == nil {
		q = &blobQueue{}
		g.blobs[name] = q
	}
	var b *groupBatch
	if n := len(q.batches); n > 0 && len(q.batches[n-1].data)+len(lines) <= maxBlockBytes {
		b = q.batches[n-1]
	} else {
		b = &groupBatch{done: make(chan struct{})}
		q.batches = append(q.batches, b)
	}
	b.data = append(b.data, lines...)
	b.fresh = b.fresh || fresh
	if !q.flushing {
		q.flushing = true
		go g.flush(c, name, q)
	}
	g.mu.Unlock()
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err() // the lines may still be stored: entries are idempotent by id
	}
}

// flush appends the queued batches of one blob, one block each, until none
// is left.
func (g *grouper) flush(c *container.Client, name string, q *blobQueue) {
	for {
		g.mu.Lock()
		if len(q.batches) == 0 {
			q.flushing = false
			delete(g.blobs, name)
			g.mu.Unlock()
			return
		}
		b := q.batches[0]
		q.batches = q.batches[1:]
		g.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		b.err = appendLine(ctx, c.NewAppendBlobClient(name), b.data, b.fresh)
		cancel()
		close(b.done)
	}
}
