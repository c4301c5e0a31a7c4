package pipeline

import (
	"context"
	"encoding/json"

	"github.com/dsr-functions/dsr/shared/dsr"
)

// Chained exports. An access request's discovery hands over to its export
// through the export queue: the trail's entries, a message, a hop, and the
// export invocation's read of the request document, each in a row before
// the export can start. For a discovery that found few records the export
// is a few milliseconds of work, and those steps were most of its time.
// Such an export (ChainExportRecords) runs in the discovering invocation
// instead, right after the hand-over's trail entries, from the document
// the discovery has just written (its conditional write succeeded, so it
// is the current version as much as a read a moment later would be),
// while the hand-over appends the discovery's entries to the trail: the
// export's own entries, at its end, wait for that append.
//
// Nothing is lost on a crash: the discover message is completed only when
// the invocation ends, so a crash during the chained export redelivers
// it; discovery, finding the request past it, sends the export message
// (Discover's "already done" case) and the export runs from its queue.
// A chained export that fails hands over as usual: its message is sent and
// the export stage retries it like any other (an export is idempotent).
// A request whose route goes elsewhere after discovery (approval, erasure)
// is never chained.

// DefaultChainExportRecords is the product's ChainExportRecords: an
// export of up to a thousand records takes milliseconds (a few MB at
// most), well inside a discover invocation's time, while a larger one
// keeps its own invocation, queue and retries.
const DefaultChainExportRecords = 1000

// handedOverKey carries the document a stage runs from when the stage
// before it runs it (runChained), so that loadForStage need not read it.
type handedOverKey struct{}

type handedOverDoc struct {
	id string
	st *dsr.Stored
}

// handedOver returns the document handed over in ctx for request id (nil:
// none; the stage reads it).
func handedOver(ctx context.Context, id string) *dsr.Stored {
	h, _ := ctx.Value(handedOverKey{}).(handedOverDoc)
	if h.st == nil || h.id != id {
		return nil
	}
	return h.st
}

// chains reports whether the stage st waits for may run in this
// invocation: an export, after a discovery of at most ChainExportRecords
// records.
func (s *Service) chains(st *dsr.Stored) bool {
	if s.ChainExportRecords <= 0 || st.Discovery == nil || st.Discovery.TotalRecords > int64(s.ChainExportRecords) {
		return false
	}
	stage, _, ok := s.pendingStage(st)
	return ok && stage == dsr.StageExport
}

// pendingTrail is the hand-over's append of the stage before's entries
// while the chained stage runs: the chained stage's first append waits for
// it (auditedFrom) and starts where it ended, or, if it failed, where the
// document's mark says, so that the trail keeps every entry, in order.
type pendingTrail struct {
	id   string
	done chan struct{} // closed when to and err are set
	to   int
	err  error
}

type pendingTrailKey struct{}

// runChained runs the stage st waits for here (the caller checked that it
// chains), while trail appends the entries before it. It reports whether
// the stage ran to its end; false: the caller sends the stage's message.
func (s *Service) runChained(ctx context.Context, st *dsr.Stored, trail *pendingTrail) bool {
	if ctx.Err() != nil {
		return false
	}
	stage, r, _ := s.pendingStage(st)
	cctx := context.WithValue(ctx, pendingTrailKey{}, trail)
	cctx = context.WithValue(cctx, handedOverKey{}, handedOverDoc{st.ID, clone(st)})
	if err := r.Run(cctx, st.ID, 1); err != nil {
		s.Log.Info("chained stage failed; handed over through its queue", "requestId", st.ID, "stage", stage, "err", err)
		return false
	}
	return true
}

// clone is a deep copy of st, as a read of its stored form gives: the
// chained stage changes its own copy, and the caller's st stays as
// written (it may still send the stage's message from it).
func clone(st *dsr.Stored) *dsr.Stored {
	b, err := json.Marshal(st)
	if err != nil {
		return st
	}
	var c dsr.Stored
	if json.Unmarshal(b, &c) != nil {
		return st
	}
	return &c
}
