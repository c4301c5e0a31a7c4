package pipeline

import (
	"context"
	"io"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/dsr-functions/dsr/shared/audit"
	"github.com/dsr-functions/dsr/shared/blobs"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/store"
	"github.com/dsr-functions/dsr/shared/tombstone"
)

// The pipeline depends on these interfaces, which it owns; the app wires
// Blob Storage and Service Bus behind them (store.Store, audit.Trail,
// blobs.Packages, tombstone.Store, queue.Sender), and the pipeline's own
// tests in-memory ones, so the stage rules run in milliseconds without
// Azurite.

// Requests keeps request documents and what stages keep beside them.
// Update is a read-modify-write conditional on the document's ETag,
// retried on a lost race: fn may run more than once and reports whether it
// changed anything.
type Requests interface {
	Create(ctx context.Context, st *dsr.Stored, idemKey, fingerprint string) (*dsr.Stored, bool, error)
	Get(ctx context.Context, id string) (*dsr.Stored, azcore.ETag, error)
	Update(ctx context.Context, id string, fn func(*dsr.Stored) (bool, error)) (*dsr.Stored, error)
	List(ctx context.Context, f store.Filter, limit int, pageToken string) ([]store.Summary, string, error)
	PutDiscovery(ctx context.Context, id string, v any) error
	GetDiscovery(ctx context.Context, id string, v any) error
	PutRestriction(ctx context.Context, hash string, r store.Restriction) error
	GetRestriction(ctx context.Context, hash string) (*store.Restriction, error)
	// AddSubjectRequest lists a request under one hashed identifier of its
	// subject (a conditional append, once per request id) and returns every
	// request listed there.
	AddSubjectRequest(ctx context.Context, hash string, r store.SubjectRequest) ([]store.SubjectRequest, error)
	Ping(ctx context.Context) error
}

// AuditTrail is the append-only audit trail. Entries with an id already in
// the trail are shown once by readers.
type AuditTrail interface {
	Append(ctx context.Context, entries ...audit.Entry) error
	ForRequest(ctx context.Context, id string) ([]audit.Entry, error)
}

// Packages keeps export packages. Put commits a package only when r is read
// to its end; Link mints a read-only link; Delete of a missing package is
// no error.
type Packages interface {
	Put(ctx context.Context, name, filename string, r io.Reader, metadata map[string]string) error
	Link(ctx context.Context, name, filename string, ttl time.Duration, now time.Time) (blobs.ReadLink, error)
	Delete(ctx context.Context, name string) error
	// Open streams a package (to transmit it to another controller).
	Open(ctx context.Context, name string) (io.ReadCloser, error)
}

// Tombstones keep what erasures leave (shared/tombstone).
type Tombstones interface {
	Put(ctx context.Context, t *tombstone.Tombstone) error
	Find(ctx context.Context, ids []tombstone.Identifier) ([]*tombstone.Tombstone, error)
	List(ctx context.Context, after string, limit int) ([]*tombstone.Tombstone, string, error)
}

var (
	_ Requests   = (*store.Store)(nil)
	_ AuditTrail = (*audit.Trail)(nil)
	_ Packages   = (*blobs.Packages)(nil)
	_ Tombstones = (*tombstone.Store)(nil)
	_            = sources.Connector(nil)
)
