// Package audit keeps the append-only audit trail: one append blob per
// request (requests/<id>.ndjson) and one per hour for everything
// (all/YYYY/MM/DD/HH.ndjson). It writes only through a container SAS that
// allows adding blocks and creating new blobs, never overwriting or deleting,
// so not even this code can rewrite an entry: Storage refuses it.
//
// Entries hold as little personal data as possible: request ids, stages,
// states, the acting staff member or system, and for record actions a keyed
// hash of the record key, never a subject identifier.
package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/appendblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"golang.org/x/sync/errgroup"

	"github.com/dsr-functions/dsr/shared/blobs"
)

// Actor is who caused an entry: a person or app (platform principal), a
// function-key caller, a queue, or the system itself.
type Actor struct {
	Kind string `json:"kind"`
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

// Entry is one audit record.
type Entry struct {
	// ID is stable for the event ("<requestId>:<n>"), so a redelivered stage
	// that appends again is recognised; readers keep the first.
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	RequestID string    `json:"requestId"`
	Event     string    `json:"event"`
	Stage     string    `json:"stage,omitempty"`
	State     string    `json:"state,omitempty"`
	Attempt   int       `json:"attempt,omitempty"`
	Actor     *Actor    `json:"actor,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	// Record actions (erasure, rectification, restriction).
	Dataset   string `json:"dataset,omitempty"`
	RecordKey string `json:"recordKey,omitempty"`
	Action    string `json:"action,omitempty"`
	Policy    string `json:"policy,omitempty"`
}

// maxEntryBytes bounds one entry (an append block may be 4 MiB; ours are small).
const maxEntryBytes = 64 << 10

// Trail appends to and reads the audit container.
type Trail struct {
	acct *blobs.Account
	name string
	now  func() time.Time

	mu      sync.Mutex
	client  *container.Client
	expires time.Time
	// group shares append blocks between concurrent callers (group.go).
	group grouper
}

// sasLifetime is how long one add-and-create client is used before a new
// SAS is minted.
const sasLifetime = time.Hour

// New returns the trail kept in the named container of acct.
func New(acct *blobs.Account, containerName string) *Trail {
	return &Trail{acct: acct, name: containerName, now: time.Now}
}

// writer returns the restricted client, minting a fresh SAS when the current
// one is within ten minutes of expiry.
func (t *Trail) writer(ctx context.Context) (*container.Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if t.client != nil && now.Add(10*time.Minute).Before(t.expires) {
		return t.client, nil
	}
	c, exp, err := t.acct.ContainerClient(ctx, t.name, sas.ContainerPermissions{Add: true, Create: true, Read: true}, sasLifetime, now)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	t.client, t.expires = c, exp
	return c, nil
}

// WriteClient is the container client the trail writes with: it may add
// blocks and create new blobs, and nothing else. Exposed so a test can prove
// that an attempt to rewrite or delete an entry through it fails.
func (t *Trail) WriteClient(ctx context.Context) (*container.Client, error) { return t.writer(ctx) }

// RequestBlob is where a request's entries are.
func RequestBlob(id string) string { return "requests/" + id + ".ndjson" }

// hourBlob is the global blob for the hour of at.
func hourBlob(at time.Time) string { return at.UTC().Format("all/2006/01/02/15") + ".ndjson" }

// Append adds entries to their requests' blobs and to the global blob of
// the hour, in order: the lines of one call that go to one blob are one
// append block (shared with concurrent callers' lines, group.go).
func (t *Trail) Append(ctx context.Context, entries ...Entry) error {
	return t.append(ctx, false, entries)
}

// AppendNew is Append for entries that start their requests' trails: the
// request blobs are created before the first append instead of after a
// failed one (one storage operation fewer per request). It is only a
// hint: a blob that exists already is appended to all the same.
func (t *Trail) AppendNew(ctx context.Context, entries ...Entry) error {
	return t.append(ctx, true, entries)
}

// Prepare creates the trail blob of a request about to be created, so
// that its first entries are one append (not a create and an append) and
// the create overlaps the request's own creation. A blob that exists
// already is left as it is. If the request is then not created, its blob
// stays, empty: the trail is append-only.
func (t *Trail) Prepare(ctx context.Context, requestID string) error {
	c, err := t.writer(ctx)
	if err != nil {
		return err
	}
	_, err = c.NewAppendBlobClient(RequestBlob(requestID)).Create(ctx, &appendblob.CreateOptions{
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr("application/x-ndjson")},
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
	})
	// Through the create-only SAS an existing blob is refused as
	// unauthorised (see appendLine).
	if err != nil && !bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet, bloberror.AuthorizationPermissionMismatch) {
		return fmt.Errorf("audit: create %s: %w", RequestBlob(requestID), err)
	}
	return nil
}

// appendBlobs is how many blobs one append writes to at once.
const appendBlobs = 8

func (t *Trail) append(ctx context.Context, fresh bool, entries []Entry) error {
	c, err := t.writer(ctx)
	if err != nil {
		return err
	}
	var names []string
	lines := map[string][]byte{}
	add := func(name string, line []byte) {
		if _, ok := lines[name]; !ok {
			names = append(names, name)
		}
		lines[name] = append(lines[name], line...)
	}
	for _, e := range entries {
		if e.ID == "" || e.RequestID == "" || e.Event == "" {
			return errors.New("audit: an entry needs an id, a request id and an event")
		}
		if e.At.IsZero() {
			e.At = t.now().UTC()
		}
		line, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("audit: encode entry: %w", err)
		}
		if len(line) > maxEntryBytes {
			return fmt.Errorf("audit: entry %s is larger than %d bytes", e.ID, maxEntryBytes)
		}
		line = append(line, '\n')
		add(RequestBlob(e.RequestID), line)
		add(hourBlob(e.At), line)
	}
	// The blobs are appended to at once, up to appendBlobs at a time (the
	// request's and the hour's were a round trip each, one after the
	// other, on every stage's way); each blob's lines stay in order.
	var g errgroup.Group
	g.SetLimit(appendBlobs)
	for _, name := range names {
		g.Go(func() error {
			data := lines[name]
			for len(data) > 0 {
				// Whole lines, at most a block's worth each time.
				n := len(data)
				if n > maxBlockBytes {
					n = bytes.LastIndexByte(data[:maxBlockBytes], '\n') + 1
				}
				if err := t.group.append(ctx, c, name, data[:n], fresh && strings.HasPrefix(name, "requests/")); err != nil {
					return fmt.Errorf("audit: append to %s: %w", name, err)
				}
				data = data[n:]
			}
			return nil
		})
	}
	return g.Wait()
}

// appendLine appends one block, creating the append blob first if needed
// (create-only: an existing blob is never replaced). fresh tries the
// create first, for a blob that most likely does not exist yet.
func appendLine(ctx context.Context, ab *appendblob.Client, line []byte, fresh bool) error {
	var err error
	if !fresh {
		_, err = ab.AppendBlock(ctx, nopCloser(line), nil)
		if !bloberror.HasCode(err, bloberror.BlobNotFound) {
			return err
		}
	}
	_, err = ab.Create(ctx, &appendblob.CreateOptions{
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr("application/x-ndjson")},
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
	})
	// Another writer may have created it first. Through the create-only
	// SAS the service then refuses the create as unauthorised (overwriting
	// needs write permission), not as "already exists": append all the
	// same, and report the create's error if the blob is still missing.
	if err != nil && !bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet, bloberror.AuthorizationPermissionMismatch) {
		return err
	}
	createErr := err
	_, err = ab.AppendBlock(ctx, nopCloser(line), nil)
	if createErr != nil && bloberror.HasCode(err, bloberror.BlobNotFound) {
		return createErr
	}
	return err
}

// ForRequest returns a request's entries in order, each event once.
func (t *Trail) ForRequest(ctx context.Context, id string) ([]Entry, error) {
	c, err := t.writer(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := c.NewBlobClient(RequestBlob(id)).DownloadStream(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return []Entry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: read %s: %w", id, err)
	}
	defer resp.Body.Close()
	return decode(resp.Body)
}

func decode(r io.Reader) ([]Entry, error) {
	out := []Entry{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxEntryBytes+1)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("audit: corrupt entry: %w", err)
		}
		if seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit: read: %w", err)
	}
	return out, nil
}

type readSeekCloser struct{ *bytes.Reader }

func (readSeekCloser) Close() error { return nil }

func nopCloser(b []byte) io.ReadSeekCloser { return readSeekCloser{bytes.NewReader(b)} }
