package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dsr-functions/dsr/shared/blobs"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/export"
	"github.com/dsr-functions/dsr/shared/sources"
)

// exportBlobName is where a request's package lives in the exports container.
func exportBlobName(id string) string { return id + "/" + exportFileName(id) }

func exportFileName(id string) string { return "dsr-export-" + id + ".zip" }

// Export builds the access package of a request (the dsr-export queue): a
// ZIP streamed to the exports container, then the request completes. The
// package is committed only when fully written (a crash leaves no partial
// blob), and a redelivery rewrites the same bytes to the same name.
func (s *Service) Export(ctx context.Context, id string, attempt int) error {
	st, err := s.loadForStage(ctx, id, "export")
	if st == nil || err != nil {
		return err
	}
	if st.State.Terminal() {
		// A crash after completing may have kept the email from leaving.
		return s.deliver(ctx, st, attempt)
	}
	if st.Stage != dsr.StageExport {
		return fmt.Errorf("export %s: request is at stage %s, not export", id, st.Stage)
	}
	var disc sources.Discovery
	if err := s.positionsOf(ctx, st, &disc); err != nil {
		return fmt.Errorf("export %s: read discovery: %w", id, err)
	}
	res, err := s.writePackage(ctx, st, &disc)
	if errors.Is(err, sources.ErrChanged) {
		// The data changed since discovery: discover again, then export what
		// is there now. Positions from a stale discovery are never used.
		s.Log.Info("export: data changed since discovery; discovering again", "requestId", id)
		fresh, tombs, derr := s.discover(ctx, st)
		if derr != nil {
			s.recordAttemptError(ctx, id, dsr.StageExport, derr)
			return fmt.Errorf("export %s: rediscover: %w", id, derr)
		}
		pos, perr := s.storePositions(ctx, id, fresh)
		if perr != nil {
			return perr
		}
		if _, err := s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
			st.Positions = pos
			st.Discovery = s.summary(fresh, tombs)
			for _, f := range fresh.Failed() {
				st.AddFailedSource(f.Dataset)
			}
			return true, nil
		}); err != nil {
			return err
		}
		st.Discovery = s.summary(fresh, tombs)
		res, err = s.writePackage(ctx, st, fresh)
	}
	if err != nil {
		s.recordAttemptError(ctx, id, dsr.StageExport, err)
		return fmt.Errorf("export %s: %w", id, err)
	}
	st, err = s.Store.Update(ctx, id, func(st *dsr.Stored) (bool, error) {
		if st.State.Terminal() {
			return false, nil
		}
		st.ExportBlob = exportBlobName(id)
		st.Export = &dsr.ExportInfo{Bytes: res.Bytes, SHA256: res.SHA256, CreatedAt: s.NowUTC()}
		st.LastAttemptError = ""
		return true, s.advance(st, dsr.StageExport, attempt, withFailures(&st.Request, fmt.Sprintf("export of %d records, %d bytes", res.Records, res.Bytes)))
	})
	if err != nil {
		return err
	}
	s.Log.Info("export done", "requestId", id, "bytes", res.Bytes)
	if err := s.syncAudit(ctx, st); err != nil {
		return err
	}
	if err := s.nextMessage(ctx, st); err != nil { // transmission, for a portability request that names a receiver
		return err
	}
	return s.deliver(ctx, st, attempt)
}

// writePackage streams the ZIP into the exports container.
func (s *Service) writePackage(ctx context.Context, st *dsr.Stored, disc *sources.Discovery) (export.Result, error) {
	ctx = s.requestContext(ctx, st)
	kept := map[string]*dsr.KeptAfterErasure{}
	if st.Discovery != nil {
		for _, src := range st.Discovery.Sources {
			kept[src.Source] = src.Kept
		}
	}
	// A portability package holds only what the person provided (Art.
	// 20(1)): the datasets marked provided, their provided fields, each
	// with a JSON Schema for the controller that imports it.
	portability := st.Type == dsr.TypePortability
	var datasets []export.Dataset
	for _, dm := range disc.Datasets {
		d := s.Sources.Dataset(dm.Dataset)
		if d == nil {
			return export.Result{}, fmt.Errorf("dataset %s: %w (no longer configured)", dm.Dataset, sources.ErrChanged)
		}
		if portability && d.Provided == nil {
			continue
		}
		dm := dm
		if dm.Error != "" {
			datasets = append(datasets, export.Dataset{Name: d.Name, Description: d.Description, Facts: d.Facts, Unavailable: dm.Error})
			continue
		}
		provided := d.Provided
		datasets = append(datasets, export.Dataset{
			Name: d.Name, Description: d.Description, Facts: d.Facts, Kept: kept[d.Name], Schema: portability,
			Read: func(ctx context.Context, emit func(sources.Record) error) error {
				if !portability {
					return s.Connector.Read(ctx, dm, emit)
				}
				return s.Connector.Read(ctx, dm, func(r sources.Record) error { return emit(provided.Project(r)) })
			},
		})
	}
	req := export.Request{ID: st.ID, Type: string(st.Type), CreatedAt: st.CreatedAt, ReceivedAt: st.ReceivedAt, DueAt: st.DueAt}
	generatedAt := st.CreatedAt
	if st.Discovery != nil {
		generatedAt = st.Discovery.CompletedAt
	}
	pr, pw := io.Pipe()
	var res export.Result
	done := make(chan error, 1)
	go func() {
		var err error
		res, err = export.Write(ctx, pw, req, datasets, generatedAt)
		pw.CloseWithError(err)
		done <- err
	}()
	upErr := s.Packages.Put(ctx, exportBlobName(st.ID), exportFileName(st.ID), pr, map[string]string{"requestid": st.ID})
	pr.CloseWithError(upErr)
	werr := <-done
	if werr != nil {
		return res, werr
	}
	if upErr != nil {
		return res, fmt.Errorf("export: %w", upErr)
	}
	return res, nil
}

// ExportLink mints a fresh read-only link to a completed request's package.
func (s *Service) ExportLink(ctx context.Context, st *dsr.Stored) (blobs.ReadLink, error) {
	if st.State != dsr.StateCompleted || st.ExportBlob == "" || st.Export == nil || st.Export.DeletedAt != nil {
		return blobs.ReadLink{}, ErrNoExport
	}
	return s.Packages.Link(ctx, st.ExportBlob, exportFileName(st.ID), s.LinkTTL, s.NowUTC())
}

// ErrNoExport is returned for a link to a request without a finished
// package, or whose package the sweeper has deleted.
var ErrNoExport = errors.New("the request has no finished export")

// View returns the request document for API callers. withLink adds a
// freshly minted export link when there is a package (links are never
// stored); callers without the export role get the package facts only.
func (s *Service) View(ctx context.Context, st *dsr.Stored, withLink bool) (dsr.Request, error) {
	doc := st.Request
	doc.FollowUp = st.NeedsFollowUp()
	doc.DueSoon = !st.State.Terminal() && st.DueAt.Sub(s.NowUTC()) <= dsr.DueSoonWindow
	// Who acted is kept in the audit trail; documents say only what kind of
	// caller it was (minimum disclosure).
	doc.History = make([]dsr.HistoryEntry, len(st.History))
	for i, h := range st.History {
		if h.By != nil {
			h.By = &dsr.Actor{Kind: h.By.Kind}
		}
		doc.History[i] = h
	}
	if st.Export != nil && (st.ExportBlob != "" || st.Export.DeletedAt != nil) {
		e := *st.Export
		doc.Export = &e
		if !withLink || e.DeletedAt != nil || st.State != dsr.StateCompleted {
			// A deleted package keeps its facts and when it was deleted; a
			// package still being transmitted gets its link when done.
			return doc, nil
		}
		link, err := s.ExportLink(ctx, st)
		if err != nil {
			return doc, err
		}
		e.URL, e.ExpiresAt = link.URL, &link.ExpiresAt
	}
	return doc, nil
}
