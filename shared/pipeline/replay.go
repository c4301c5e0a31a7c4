package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/dsr-functions/dsr/shared/audit"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/policy"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/multi"
	"github.com/dsr-functions/dsr/shared/tombstone"
)

// ErrUnknownDataset is returned for a replay of a dataset the sources
// config does not name.
var ErrUnknownDataset = errors.New("no such dataset in the sources config")

// Replay limits: tombstones handled per call.
const (
	DefaultReplayLimit = 100
	MaxReplayLimit     = 1000
)

// ReplayReport is what one call of ReplayErasures did.
type ReplayReport struct {
	// Datasets are the datasets the erasures were applied to again.
	Datasets []string `json:"datasets"`
	// Erasures is how many completed erasures (tombstones) were looked at;
	// SubjectsFound how many of their subjects the datasets held again.
	Erasures      int `json:"erasures"`
	SubjectsFound int `json:"subjectsFound"`
	// Deleted and Masked count the records changed; Retained those kept
	// under their datasets' grounds, as the erasure kept them.
	Deleted  int64 `json:"deleted"`
	Masked   int64 `json:"masked"`
	Retained int64 `json:"retained"`
	// Failed lists the erasures that could not be applied again, and why
	// (run the replay again for them: it is idempotent).
	Failed []ReplayFailure `json:"failed,omitempty"`
	// Next, when set, is the "after" of the next page: more erasures remain.
	Next string `json:"next,omitempty"`
}

// ReplayFailure is one erasure a replay could not apply again.
type ReplayFailure struct {
	RequestID string `json:"requestId"`
	Dataset   string `json:"dataset,omitempty"`
	Error     string `json:"error"`
}

// ReplayErasures applies every completed erasure again to dataset (all
// datasets when dataset is ""), for restoring a dataset from a backup taken
// before some erasures: it reads the erasures' tombstones, discovers each
// erased subject again (with the keys the tombstone keeps), and applies the
// dataset's erasure policy to what it finds: the subject's records are
// deleted or masked again, mentions masked, retained records left as the
// erasure left them. It handles at most limit erasures after request id
// after, in the order they were made, and says where to go on. Every change
// is audited on the erasure's own trail; running it again changes nothing
// more. Datasets of systems that erase by themselves (webhooks) are not
// replayed: their restores are theirs.
func (s *Service) ReplayErasures(ctx context.Context, dataset, after string, limit int, by dsr.Actor) (*ReplayReport, error) {
	if len(s.Secret) == 0 || s.Tombstones == nil {
		return nil, ErrNoSecret
	}
	rw, ok := s.Connector.(sources.Rewriter)
	if !ok {
		return nil, errors.New("replay: the connector cannot change data")
	}
	var targets []*sources.Dataset
	for i := range s.Sources.Datasets {
		d := &s.Sources.Datasets[i]
		if (dataset == "" || d.Name == dataset) && !s.delegates(d.Name) {
			targets = append(targets, d)
		}
	}
	if dataset != "" && len(targets) == 0 {
		if s.Sources.Dataset(dataset) == nil {
			return nil, ErrUnknownDataset
		}
		return nil, fmt.Errorf("%w: dataset %s belongs to a system that erases by itself", ErrUnknownDataset, dataset)
	}
	if limit <= 0 {
		limit = DefaultReplayLimit
	}
	tombs, next, err := s.Tombstones.List(ctx, after, min(limit, MaxReplayLimit))
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	rep := &ReplayReport{Next: next}
	for _, d := range targets {
		rep.Datasets = append(rep.Datasets, d.Name)
	}
	replayID := fmt.Sprint(s.NowUTC().UnixNano())
	for _, t := range tombs {
		rep.Erasures++
		found, err := s.replayOne(ctx, rw, t, targets, replayID, by, rep)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			rep.Failed = append(rep.Failed, ReplayFailure{RequestID: t.RequestID, Error: boundReason(err)})
			continue
		}
		if found {
			rep.SubjectsFound++
		}
	}
	s.Log.Info("erasures replayed", "datasets", len(rep.Datasets), "erasures", rep.Erasures, "subjectsFound", rep.SubjectsFound,
		"deleted", rep.Deleted, "masked", rep.Masked, "failed", len(rep.Failed))
	return rep, nil
}

// replayOne applies one erasure again and reports whether its subject was
// found in the target datasets.
func (s *Service) replayOne(ctx context.Context, rw sources.Rewriter, t *tombstone.Tombstone, targets []*sources.Dataset, replayID string, by dsr.Actor, rep *ReplayReport) (bool, error) {
	subj := tombstone.Merge(sources.Subject{}, []*tombstone.Tombstone{t})
	// Later erasures of the same person know more keys.
	more, err := s.Tombstones.Find(ctx, tombstone.SubjectIdentifiers(subj))
	if err != nil {
		return false, err
	}
	subj = tombstone.Merge(subj, more)
	rctx := multi.GiveUpWaiting(sources.WithRequest(ctx, t.RequestID, subj))
	disc, err := s.Connector.Discover(rctx, subj)
	if err != nil {
		return false, fmt.Errorf("discover: %w", err)
	}
	prefix := t.RequestID + ":replay:" + replayID
	var deleted, masked int64
	found := false
	for _, dm := range s.dependentsFirst(disc) {
		var d *sources.Dataset
		for _, x := range targets {
			if x.Name == dm.Dataset {
				d = x
			}
		}
		if d == nil || dm.Records == 0 {
			continue
		}
		if dm.Error != "" {
			rep.Failed = append(rep.Failed, ReplayFailure{RequestID: t.RequestID, Dataset: d.Name, Error: dm.Error})
			continue
		}
		out := policy.Decide(d)
		if out.Action == sources.EraseRetain {
			rep.Retained += dm.Records
			continue
		}
		for _, loc := range dm.Locations {
			done, actions, err := s.rewriteBlob(ctx, rw, t.RequestID, prefix, d, loc, dsr.StageErasure, "replay: "+string(out.Action), s.erasure(subj, d, loc, out), nil)
			if err != nil {
				rep.Failed = append(rep.Failed, ReplayFailure{RequestID: t.RequestID, Dataset: d.Name, Error: boundReason(err)})
				break
			}
			if err := s.Audit.Append(ctx, actions...); err != nil {
				return found, fmt.Errorf("audit: %w", err)
			}
			deleted += int64(done.Deleted)
			masked += int64(done.Masked)
			if done.Deleted+done.Masked > 0 {
				found = true
			}
		}
	}
	rep.Deleted += deleted
	rep.Masked += masked
	if found {
		err := s.Audit.Append(ctx, audit.Entry{
			ID: prefix, At: s.NowUTC(), RequestID: t.RequestID, Event: "erasure.replayed",
			Actor:  &audit.Actor{Kind: by.Kind, ID: by.ID, Name: by.Name},
			Detail: fmt.Sprintf("erasure applied again after a restore: %d deleted, %d masked", deleted, masked),
		})
		if err != nil {
			return found, fmt.Errorf("audit: %w", err)
		}
	}
	return found, nil
}
