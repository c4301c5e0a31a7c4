package pipeline

import (
	"context"
	"errors"
	"testing"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sources"
)

// A small discovery result is kept in the request document, written with
// the discovery's own update (no discovery blob); a large one goes to the
// blob and the document keeps none. Either way the next stages read the
// same positions and the request completes with the person's records.
func TestPositionsInTheDocumentOrTheBlob(t *testing.T) {
	for _, inline := range []bool{true, false} {
		w := newWorld(t)
		if !inline {
			old := inlinePositions
			inlinePositions = 16
			t.Cleanup(func() { inlinePositions = old })
		}
		st := w.complete(`{"type":"access","subject":{"email":"ann@x.example"}}`)
		_, inBlob := w.reqs.discoveries[st.ID]
		switch {
		case inline && (len(st.Positions) == 0 || inBlob):
			t.Fatalf("small discovery: %d bytes in the document, blob written %v; want the document only", len(st.Positions), inBlob)
		case !inline && (len(st.Positions) != 0 || !inBlob):
			t.Fatalf("large discovery: %d bytes in the document, blob written %v; want the blob only", len(st.Positions), inBlob)
		}
		var disc sources.Discovery
		if err := w.svc.positionsOf(context.Background(), st, &disc); err != nil || disc.Total() != st.Discovery.TotalRecords || disc.Total() == 0 {
			t.Fatalf("positions: %v, %d records; the request says %d", err, disc.Total(), st.Discovery.TotalRecords)
		}
		if st.Export == nil || st.Export.Bytes == 0 {
			t.Fatalf("no export: %+v", st.Export)
		}
	}
}

// A discovery made again that goes to the blob clears the positions an
// earlier one kept in the document, so a stage never reads stale ones.
func TestRediscoveryReplacesInlinePositions(t *testing.T) {
	w := newWorld(t)
	id := approvedErasure(t, w)
	st := w.get(id)
	if len(st.Positions) == 0 {
		t.Fatal("the first discovery kept no positions in the document")
	}
	old := inlinePositions
	inlinePositions = 16
	t.Cleanup(func() { inlinePositions = old })
	err := w.svc.rediscover(context.Background(), st, dsr.StageErasure, errors.New("changed"))
	var re *rediscovered
	if !errors.As(err, &re) {
		t.Fatalf("rediscover: %v", err)
	}
	after := w.get(id)
	if len(after.Positions) != 0 {
		t.Fatal("the document still holds the first discovery's positions")
	}
	var disc sources.Discovery
	if err := w.svc.positionsOf(context.Background(), after, &disc); err != nil || disc.Total() != re.fresh.Total() {
		t.Fatalf("positions after rediscovery: %v, %d records, want %d", err, disc.Total(), re.fresh.Total())
	}
	if after.LastAttemptError == "" {
		t.Error("the attempt's error was not recorded")
	}
}
