package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/dsr-functions/dsr/shared/dsr"
)

// The subject registry lists, per identifier of a person, the requests
// made with it, so that a repeat request (Art. 12(5)) is recognised. Like
// the restriction registry it is keyed by a keyed hash of the identifier
// and holds ids, types and dates only: no raw identifier, no data.
//
//	subjects/<hash>.json   {"requests":[{"requestId","type","createdAt"}]}

// SubjectRequest is one request in a person's registry entry.
type SubjectRequest struct {
	RequestID string    `json:"requestId"`
	Type      dsr.Type  `json:"type"`
	CreatedAt time.Time `json:"createdAt"`
}

type subjectEntry struct {
	Requests []SubjectRequest `json:"requests"`
}

// Bounds of one registry entry: requests older than SubjectRetention (more
// than the longest repeat window, a year) are dropped, and at most
// MaxSubjectRequests newest are kept, so no entry grows without end.
const (
	SubjectRetention   = 366 * 24 * time.Hour
	MaxSubjectRequests = 100
)

// maxSubjectAttempts bounds the retry loop of a contended append: a burst
// of requests for one person each loses at most once per winner.
const maxSubjectAttempts = 16

func subjectBlob(hash string) string { return "subjects/" + hash + ".json" }

// AddSubjectRequest lists r under one hashed identifier and returns the
// entry's requests, r among them. The write is conditional (create-only,
// or on the ETag read) and retried on a lost race, so concurrent requests
// for one person are all listed; r already listed (a redelivery) writes
// nothing.
func (s *Store) AddSubjectRequest(ctx context.Context, hash string, r SubjectRequest) ([]SubjectRequest, error) {
	if !identifierHash.MatchString(hash) {
		return nil, fmt.Errorf("subject registry: malformed identifier hash")
	}
	name := subjectBlob(hash)
	for attempt := range maxSubjectAttempts {
		var e subjectEntry
		etag, err := s.getJSON(ctx, name, &e)
		cond := &blob.ModifiedAccessConditions{IfMatch: &etag}
		switch {
		case errors.Is(err, ErrNotFound):
			cond = &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}
		case err != nil:
			return nil, fmt.Errorf("subject registry: %w", err)
		}
		if slices.ContainsFunc(e.Requests, func(x SubjectRequest) bool { return x.RequestID == r.RequestID }) {
			return e.Requests, nil
		}
		e.Requests = boundSubjectRequests(append(e.Requests, r), r.CreatedAt)
		body, _ := json.Marshal(e)
		_, err = s.c.NewBlockBlobClient(name).Upload(ctx, nopCloser(body), &blockblob.UploadOptions{
			HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json")},
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: cond},
		})
		if isConflict(err) {
			// Full jitter, capped: writers that lost together must not
			// retry together.
			time.Sleep(rand.N(time.Duration(min(10<<attempt, 500)) * time.Millisecond))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("subject registry: write: %w", err)
		}
		return e.Requests, nil
	}
	return nil, fmt.Errorf("subject registry: still contended after %d attempts", maxSubjectAttempts)
}

// GetSubjectRequests reads the requests listed under one hashed
// identifier; none (and no error) for an identifier never seen.
func (s *Store) GetSubjectRequests(ctx context.Context, hash string) ([]SubjectRequest, error) {
	if !identifierHash.MatchString(hash) {
		return nil, nil
	}
	var e subjectEntry
	if _, err := s.getJSON(ctx, subjectBlob(hash), &e); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("subject registry: %w", err)
	}
	return e.Requests, nil
}

// boundSubjectRequests sorts an entry's requests oldest first and drops
// those past SubjectRetention before now and all but the newest
// MaxSubjectRequests.
func boundSubjectRequests(rs []SubjectRequest, now time.Time) []SubjectRequest {
	cutoff := now.Add(-SubjectRetention)
	rs = slices.DeleteFunc(rs, func(x SubjectRequest) bool { return x.CreatedAt.Before(cutoff) })
	slices.SortStableFunc(rs, func(a, b SubjectRequest) int { return a.CreatedAt.Compare(b.CreatedAt) })
	if len(rs) > MaxSubjectRequests {
		rs = rs[len(rs)-MaxSubjectRequests:]
	}
	return rs
}
