// Package store keeps request documents in Blob Storage. Every update is a
// read-modify-write conditional on the ETag read, so concurrent stages never
// overwrite each other; creation is create-only, and idempotency keys map to
// request ids through create-only marker blobs.
//
// Layout of the state container:
//
//	requests/<id>.json          the stored request (metadata: state, type, stage, dates)
//	discovery/<id>.json         where discovery found the subject's records (positions, no data)
//	idempotency/<sha256(key)>   {"id", "fingerprint"}: the request an idempotency key created
package store

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/dsr-functions/dsr/shared/dsr"
)

// ErrNotFound is returned for a request id that has no document.
var ErrNotFound = errors.New("request not found")

// ErrIdempotencyMismatch is returned when an idempotency key is reused with
// a different submission.
var ErrIdempotencyMismatch = errors.New("idempotency key already used for a different submission")

// maxUpdateAttempts bounds the optimistic-concurrency retry loop. With
// the jittered backoff (10 ms doubling) the last wait is up to 2.56 s and
// all of them about 5 s: 8 attempts (1.3 s) once left one of 16 writers
// racing for one document on a loaded host without a turn.
const maxUpdateAttempts = 10

// Store is the request store in one container.
type Store struct {
	c *container.Client
	// tokenKey authenticates page tokens; every instance of the app must
	// share it (WithPageTokenKey), or tokens work only where issued.
	tokenKey     []byte
	tokenKeyOnce sync.Once
	// known saves Update a read of a document this process just read or
	// wrote (known.go).
	known known
}

// New returns a store over the given container client.
func New(c *container.Client) *Store { return &Store{c: c} }

// WithPageTokenKey sets the key page tokens are authenticated with (the
// app derives it from DSR_PSEUDONYM_SECRET, shared by every instance).
func (s *Store) WithPageTokenKey(key []byte) *Store {
	s.tokenKey = append([]byte(nil), key...)
	return s
}

// pageKey is the page-token key: the one set, else a random one for this
// process.
func (s *Store) pageKey() []byte {
	s.tokenKeyOnce.Do(func() {
		if len(s.tokenKey) == 0 {
			s.tokenKey = make([]byte, 32)
			_, _ = crand.Read(s.tokenKey)
		}
	})
	return s.tokenKey
}

func requestBlob(id string) string   { return "requests/" + id + ".json" }
func discoveryBlob(id string) string { return "discovery/" + id + ".json" }

// Create stores a new request. With a non-empty idempotency key, the first
// Create for that key wins and later ones return the request it created
// (created=false), or ErrIdempotencyMismatch when fingerprint differs. Safe to
// repeat after a crash at any point.
func (s *Store) Create(ctx context.Context, st *dsr.Stored, idemKey, fingerprint string) (*dsr.Stored, bool, error) {
	if idemKey != "" {
		id, fp, err := s.claimKey(ctx, idemKey, st.ID, fingerprint)
		if err != nil {
			return nil, false, err
		}
		if fp != fingerprint {
			return nil, false, ErrIdempotencyMismatch
		}
		if id != st.ID {
			// The key was claimed before, maybe by a call that crashed before
			// writing its request: finish its work under the claimed id.
			if existing, _, err := s.Get(ctx, id); err == nil {
				return existing, false, nil
			} else if !errors.Is(err, ErrNotFound) {
				return nil, false, err
			}
			st.ID = id
		}
	}
	body, err := json.Marshal(st)
	if err != nil {
		return nil, false, fmt.Errorf("encode request: %w", err)
	}
	resp, err := s.c.NewBlockBlobClient(requestBlob(st.ID)).Upload(ctx, nopCloser(body), &blockblob.UploadOptions{
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json")},
		Metadata:         metadata(st),
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
	})
	if isConflict(err) {
		existing, _, gerr := s.Get(ctx, st.ID)
		return existing, false, gerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("create request %s: %w", st.ID, err)
	}
	if resp.ETag != nil {
		s.known.put(st.ID, body, *resp.ETag)
	}
	return st, true, nil
}

type keyClaim struct {
	ID          string `json:"id"`
	Fingerprint string `json:"fingerprint"`
}

// claimKey records key → id create-only and returns whichever claim won.
func (s *Store) claimKey(ctx context.Context, key, id, fingerprint string) (string, string, error) {
	sum := sha256.Sum256([]byte(key))
	name := "idempotency/" + hex.EncodeToString(sum[:])
	body, _ := json.Marshal(keyClaim{ID: id, Fingerprint: fingerprint})
	_, err := s.c.NewBlockBlobClient(name).Upload(ctx, nopCloser(body), &blockblob.UploadOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
	})
	if err == nil {
		return id, fingerprint, nil
	}
	if !isConflict(err) {
		return "", "", fmt.Errorf("claim idempotency key: %w", err)
	}
	var claim keyClaim
	if _, err := s.getJSON(ctx, name, &claim); err != nil {
		return "", "", fmt.Errorf("read idempotency key: %w", err)
	}
	return claim.ID, claim.Fingerprint, nil
}

// Get reads a request and the ETag of the version read.
func (s *Store) Get(ctx context.Context, id string) (*dsr.Stored, azcore.ETag, error) {
	if !dsr.ValidID(id) {
		return nil, "", ErrNotFound
	}
	body, etag, err := s.getBytes(ctx, requestBlob(id))
	if err != nil {
		return nil, "", err
	}
	var st dsr.Stored
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, "", fmt.Errorf("decode %s: %w", requestBlob(id), err)
	}
	s.known.put(id, body, etag)
	return &st, etag, nil
}

// latest is Update's starting point: the version this process last read
// or wrote, or else the stored one.
// remembered reports whether the version came from memory (it may be
// stale: only a write conditional on its ETag proves it current).
func (s *Store) latest(ctx context.Context, id string) (st *dsr.Stored, etag azcore.ETag, remembered bool, err error) {
	if d, ok := s.known.get(id); ok {
		var doc dsr.Stored
		if json.Unmarshal(d.body, &doc) == nil {
			return &doc, d.etag, true, nil
		}
	}
	st, etag, err = s.Get(ctx, id)
	return st, etag, false, err
}

// Update applies fn to the current version of a request and writes it back
// conditionally on the ETag read; on a concurrent change it reads again and
// reapplies fn. fn returns false to skip the write (nothing to change).
func (s *Store) Update(ctx context.Context, id string, fn func(*dsr.Stored) (bool, error)) (*dsr.Stored, error) {
	for attempt := 0; attempt < maxUpdateAttempts; attempt++ {
		st, etag, remembered, err := s.latest(ctx, id)
		if err != nil {
			return nil, err
		}
		changed, err := fn(st)
		if remembered && (err != nil || !changed) {
			// Nothing to write, or a refusal, decided on a version from
			// memory: decide again on the stored one, which may be newer
			// (only a successful conditional write proves a version
			// current).
			if st, etag, err = s.Get(ctx, id); err != nil {
				return nil, err
			}
			changed, err = fn(st)
		}
		if err != nil || !changed {
			return st, err
		}
		body, err := json.Marshal(st)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		resp, err := s.c.NewBlockBlobClient(requestBlob(id)).Upload(ctx, nopCloser(body), &blockblob.UploadOptions{
			HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json")},
			Metadata:         metadata(st),
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &etag}},
		})
		if bloberror.HasCode(err, bloberror.BlobNotFound) {
			s.known.forget(id) // read again: it says not found
			continue
		}
		if bloberror.HasCode(err, bloberror.ConditionNotMet) {
			s.known.forget(id)
			if attempt+1 < maxUpdateAttempts {
				// Full jitter: writers that lost together must not retry together.
				time.Sleep(rand.N(time.Duration(10<<attempt) * time.Millisecond))
			}
			continue
		}
		if err != nil {
			s.known.forget(id)
			return nil, fmt.Errorf("update request %s: %w", id, err)
		}
		if resp.ETag != nil {
			s.known.put(id, body, *resp.ETag)
		}
		return st, nil
	}
	return nil, fmt.Errorf("update request %s: still contended after %d attempts", id, maxUpdateAttempts)
}

// PutDiscovery stores the detailed discovery result of a request (record
// positions, no personal data), replacing any earlier one.
func (s *Store) PutDiscovery(ctx context.Context, id string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode discovery: %w", err)
	}
	if _, err := s.c.NewBlockBlobClient(discoveryBlob(id)).Upload(ctx, nopCloser(body), nil); err != nil {
		return fmt.Errorf("store discovery of %s: %w", id, err)
	}
	return nil
}

// GetDiscovery reads the detailed discovery result of a request into v.
func (s *Store) GetDiscovery(ctx context.Context, id string, v any) error {
	_, err := s.getJSON(ctx, discoveryBlob(id), v)
	return err
}

func (s *Store) getJSON(ctx context.Context, name string, v any) (azcore.ETag, error) {
	b, etag, err := s.getBytes(ctx, name)
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return "", fmt.Errorf("decode %s: %w", name, err)
	}
	return etag, nil
}

func (s *Store) getBytes(ctx context.Context, name string) ([]byte, azcore.ETag, error) {
	resp, err := s.c.NewBlobClient(name).DownloadStream(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return nil, "", ErrNotFound
	}
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", name, err)
	}
	return b, *resp.ETag, nil
}

// metadata mirrors the listable facts of a request on its blob, so List can
// filter without reading every document.
func metadata(st *dsr.Stored) map[string]*string {
	md := map[string]*string{
		"state":      to.Ptr(string(st.State)),
		"type":       to.Ptr(string(st.Type)),
		"stage":      to.Ptr(string(st.Stage)),
		"createdat":  to.Ptr(st.CreatedAt.UTC().Format(time.RFC3339Nano)),
		"receivedat": to.Ptr(st.ReceivedAt.UTC().Format(time.RFC3339Nano)),
		"dueat":      to.Ptr(st.DueAt.UTC().Format(time.RFC3339Nano)),
		"updatedat":  to.Ptr(st.UpdatedAt.UTC().Format(time.RFC3339Nano)),
		"createdby":  to.Ptr(st.CreatedBy),
		"export":     to.Ptr(exportState(st)),
		"followup":   to.Ptr(strconv.FormatBool(st.NeedsFollowUp())),
	}
	if st.Repeat() {
		md["repeat"] = to.Ptr("true") // the console's queue marks it
	}
	return md
}

// Export package states in blob metadata, so the sweeper reads only the
// documents of requests whose package may still exist.
const (
	ExportNone    = "none"
	ExportLive    = "live"
	ExportDeleted = "deleted"
)

func exportState(st *dsr.Stored) string {
	switch {
	case st.Export != nil && st.Export.DeletedAt != nil:
		return ExportDeleted
	case st.ExportBlob != "":
		return ExportLive
	}
	return ExportNone
}

func isConflict(err error) bool {
	return bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet)
}

type readSeekCloser struct{ *bytes.Reader }

func (readSeekCloser) Close() error { return nil }

func nopCloser(b []byte) io.ReadSeekCloser { return readSeekCloser{bytes.NewReader(b)} }

// Ping checks that the state container answers.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.c.GetProperties(ctx, nil); err != nil {
		return fmt.Errorf("state container: %w", err)
	}
	return nil
}
