package pipeline

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sources"
)

// inlinePositions is the largest discovery result (as JSON) kept in the
// request document (dsr.Stored.Positions); a larger one goes to the
// discovery blob. A person's records in a few datasets take a few hundred
// bytes; a document is rewritten at every step, so it stays small. A
// variable for tests.
var inlinePositions = 8 << 10

// storePositions prepares a discovery result for the request's next
// update: its JSON when small enough to keep in the document, else nil
// after storing it in the discovery blob. The caller sets
// dsr.Stored.Positions to what it returns in that update (nil included:
// positions inline from an earlier discovery must not outlive it).
func (s *Service) storePositions(ctx context.Context, id string, disc *sources.Discovery) (json.RawMessage, error) {
	b, err := json.Marshal(disc)
	if err != nil {
		return nil, fmt.Errorf("encode the discovery of %s: %w", id, err)
	}
	if len(b) <= inlinePositions {
		return b, nil
	}
	if err := s.Store.PutDiscovery(ctx, id, disc); err != nil {
		return nil, err
	}
	return nil, nil
}

// positionsOf reads a request's discovery result: from its document when
// kept there, else from the discovery blob.
func (s *Service) positionsOf(ctx context.Context, st *dsr.Stored, disc *sources.Discovery) error {
	if len(st.Positions) > 0 {
		if err := json.Unmarshal(st.Positions, disc); err != nil {
			return fmt.Errorf("decode the discovery of %s: %w", st.ID, err)
		}
		return nil
	}
	return s.Store.GetDiscovery(ctx, st.ID, disc)
}
