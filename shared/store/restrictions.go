package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Restriction is one entry of the restriction registry (Art. 18): whether
// processing of a subject identified by one identifier is restricted, since
// when, and by which request. The blob is named by a keyed hash of the
// identifier: the registry holds no raw identifiers.
type Restriction struct {
	Restricted bool       `json:"restricted"`
	Since      time.Time  `json:"since"`
	RequestID  string     `json:"requestId"`
	Ground     string     `json:"ground"`
	LiftedAt   *time.Time `json:"liftedAt,omitempty"`
	// LiftedBy is the request that lifted the restriction; RequestID stays
	// the one that made it.
	LiftedBy string `json:"liftedByRequest,omitempty"`
	// Keys are the registry keys (keyed hashes) of every identifier the
	// same restriction covers: the request's and those found in the
	// person's records, so that lifting it by any one lifts them all.
	Keys []string `json:"keys,omitempty"`
}

var identifierHash = regexp.MustCompile(`^k_[0-9a-f]{32}$`)

func restrictionBlob(hash string) string { return "restrictions/" + hash + ".json" }

// PutRestriction records the registry entry for one hashed identifier.
func (s *Store) PutRestriction(ctx context.Context, hash string, r Restriction) error {
	if !identifierHash.MatchString(hash) {
		return fmt.Errorf("restriction: malformed identifier hash")
	}
	body, _ := json.Marshal(r)
	if _, err := s.c.NewBlockBlobClient(restrictionBlob(hash)).Upload(ctx, nopCloser(body), nil); err != nil {
		return fmt.Errorf("restriction: write: %w", err)
	}
	return nil
}

// GetRestriction reads the registry entry of one hashed identifier;
// ErrNotFound when the subject was never restricted.
func (s *Store) GetRestriction(ctx context.Context, hash string) (*Restriction, error) {
	if !identifierHash.MatchString(hash) {
		return nil, ErrNotFound
	}
	var r Restriction
	if _, err := s.getJSON(ctx, restrictionBlob(hash), &r); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("restriction: read: %w", err)
	}
	return &r, nil
}
