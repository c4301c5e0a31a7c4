package blobdataset

import (
	"bytes"
	"context"
	"io"
	"sync"

	"github.com/dsr-functions/dsr/shared/sources"
)

// Early opens. A discovery scans the datasets of one dependency level
// together, but the levels one after another: cases wait for contacts,
// surveys for cases. For a small dataset of a later level that wait is
// mostly the round trip that opens its blob, not the scan. So when a
// discovery starts, the single blobs of the later levels' small datasets
// are downloaded at once, alongside the first level's scans, and each
// level's scan takes its blob from memory: a request waits for one round
// trip where it waited for one per level.
//
// What is read early is the blob as it was a moment before its level was
// reached, the same as a change made while the discovery runs: the scan
// records the version it read, and export reads only that version.
// A blob too large to hold (earlyOpenMaxBytes) is closed unread and scanned
// as usual, streaming; the connector remembers it and opens it early no
// more. An early open that fails is forgotten: the level's scan opens the
// blob itself and reports what it finds.

// earlyOpenMaxBytes is the largest blob a discovery holds in memory to
// save a round trip: bigger ones are streamed when their level comes
// (their scan takes longer than the round trip saved).
const earlyOpenMaxBytes = 1 << 20

// earlyOpenMax is how many blobs one discovery opens early at most, so
// that what it holds stays bounded (earlyOpenMax × earlyOpenMaxBytes).
const earlyOpenMax = 8

// earlyOpens are the blobs a discovery opened early, by dataset name.
// The datasets of one level are scanned at once, each taking its own.
type earlyOpens struct {
	mu sync.Mutex
	m  map[string]*earlyOpen
}

// earlyOpen is one blob being downloaded early; done is closed when data
// (the whole blob, held) or nothing (too large, or failed) is known.
type earlyOpen struct {
	done  chan struct{}
	data  []byte
	props blobProps
	held  bool
}

// openEarly starts the early downloads of the single-blob datasets of
// levels (a discovery's later dependency levels) whose blobs may be small.
// It needs a store that tells a download's size (sizedOpener). The
// downloads stop when ctx ends.
func (c *Connector) openEarly(ctx context.Context, levels [][]*sources.Dataset) *earlyOpens {
	so, ok := c.store.(sizedOpener)
	if !ok {
		return nil
	}
	_, versioned := c.store.(versioner)
	e := &earlyOpens{m: map[string]*earlyOpen{}}
	for _, level := range levels {
		for _, d := range level {
			if len(e.m) == earlyOpenMax {
				return e
			}
			if d.Blob == "" || !rangeReadable(d.Format) || (versioned && c.indexed(d)) || c.tooLargeToOpenEarly(d) {
				continue
			}
			o := &earlyOpen{done: make(chan struct{})}
			e.m[d.Name] = o
			go func() {
				defer close(o.done)
				body, p, err := so.openSized(ctx, d.Container, d.Blob)
				if err != nil {
					return
				}
				defer body.Close()
				if p.size > earlyOpenMaxBytes {
					c.largeBlobs.Store(d.Container+"/"+d.Blob, true)
					return
				}
				var buf bytes.Buffer
				buf.Grow(int(p.size))
				// The size said is the size read: a short body is a broken
				// download, and the level's scan reads it again.
				if n, err := io.Copy(&buf, io.LimitReader(body, earlyOpenMaxBytes+1)); err != nil || n != p.size {
					return
				}
				o.data, o.props, o.held = buf.Bytes(), p, true
			}()
		}
	}
	return e
}

// tooLargeToOpenEarly reports whether d's blob was found too large to hold
// by an earlier discovery on this connector.
func (c *Connector) tooLargeToOpenEarly(d *sources.Dataset) bool {
	_, large := c.largeBlobs.Load(d.Container + "/" + d.Blob)
	return large
}

// take returns dataset's blob as opened early, waiting for its download,
// and forgets it (a later pass opens the blob again). ok is false when the
// dataset was not opened early or its blob is not held: the caller opens
// it itself.
func (e *earlyOpens) take(ctx context.Context, dataset string) (body io.ReadCloser, p blobProps, ok bool) {
	if e == nil {
		return nil, blobProps{}, false
	}
	e.mu.Lock()
	o := e.m[dataset]
	delete(e.m, dataset)
	e.mu.Unlock()
	if o == nil {
		return nil, blobProps{}, false
	}
	select {
	case <-o.done:
	case <-ctx.Done():
		return nil, blobProps{}, false
	}
	if !o.held {
		return nil, blobProps{}, false
	}
	return io.NopCloser(bytes.NewReader(o.data)), o.props, true
}
