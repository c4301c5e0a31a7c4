package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dsr-functions/dsr/shared/audit"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sources"
)

// delegatedKey marks, in Stored.ErasedBlobs, a change that a delegating
// system made for the whole dataset.
const delegatedKey = "/delegated"

// delegates reports whether the dataset's system applies changes itself.
func (s *Service) delegates(dataset string) bool {
	dg, ok := s.Connector.(sources.Delegator)
	return ok && dg.Delegates(dataset)
}

// errWaiting ends a stage delivery that waits for a system: its message
// has been scheduled again, so the delivery itself succeeds (see
// ignoreWaiting); failing it would have the broker deliver it again at
// once, besides the scheduled one.
var errWaiting = errors.New("waiting for a system to finish a change")

// ignoreWaiting turns errWaiting into success.
func ignoreWaiting(err error) error {
	if errors.Is(err, errWaiting) {
		return nil
	}
	return err
}

// delegate asks a delegating system (a webhook) to make a change for the
// subject, once per request: the result is kept on the request, so a
// redelivered message does not ask again, and audited. A failure makes this
// delivery fail (the message comes back) until SourceAttempts; after that
// it is returned as the reason for the report and the rest of the request
// goes ahead.
func (s *Service) delegate(ctx context.Context, st *dsr.Stored, d *sources.Dataset, stage dsr.Stage, action string, attempt int) (done dsr.ErasedBlob, failure string, err error) {
	if done, ok := st.ErasedBlobs[d.Name+delegatedKey]; ok {
		return done, "", nil
	}
	dg, ok := s.Connector.(sources.Delegator)
	if !ok {
		return done, "", Permanent(fmt.Errorf("%s %s: dataset %s: the connector cannot delegate changes", stage, st.ID, d.Name))
	}
	ch := sources.Change{Action: action, RequestID: st.ID, Subject: subjectOf(st)}
	if action == "rectification" {
		ch.Corrections = st.Corrections
	}
	res, aerr := dg.Apply(s.requestContext(ctx, st), d.Name, ch)
	if errors.Is(aerr, sources.ErrPending) {
		// The system took the job and will finish it later: ask again.
		waiting, werr := s.waitForSystems(ctx, st, stage, s.Queues.Erase, aerr)
		if werr != nil {
			return done, "", werr
		}
		if waiting {
			return done, "", errWaiting
		}
		return done, "the system accepted the change but did not confirm it in time", nil
	}
	if aerr != nil {
		reason := boundReason(aerr)
		if rerr := s.retrySources(ctx, st.ID, stage, attempt, []string{d.Name + ": " + reason}); rerr != nil {
			return done, "", rerr
		}
		s.Log.Warn("a system failed its part of the request after every retry", "requestId", st.ID, "stage", stage, "dataset", d.Name)
		return done, reason, nil
	}
	done = dsr.ErasedBlob{Dataset: d.Name, Deleted: int(res.Deleted), Masked: int(res.Masked + res.Changed), Retained: int(res.Retained)}
	entry := audit.Entry{
		ID: fmt.Sprintf("%s:delegated:%s:%s", st.ID, d.Name, action), RequestID: st.ID, Event: "delegated",
		Dataset: d.Name, Action: action, Policy: "applied by the dataset's own system",
		Detail: fmt.Sprintf("%d deleted, %d masked, %d changed, %d retained", res.Deleted, res.Masked, res.Changed, res.Retained),
		Actor:  &audit.Actor{Kind: "system", ID: string(stage)},
	}
	if err := s.Audit.Append(ctx, entry); err != nil {
		return done, "", fmt.Errorf("%s %s: audit: %w", stage, st.ID, err)
	}
	_, err = s.Store.Update(ctx, st.ID, func(cur *dsr.Stored) (bool, error) {
		if cur.ErasedBlobs == nil {
			cur.ErasedBlobs = map[string]dsr.ErasedBlob{}
		}
		cur.ErasedBlobs[d.Name+delegatedKey] = done
		return true, nil
	})
	return done, "", err
}

// withFailures adds the sources that failed their part to a completion's
// history detail.
func withFailures(st *dsr.Request, detail string) string {
	if n := len(st.FailedSources); n > 0 {
		detail += fmt.Sprintf("; %d source(s) failed their part: %s", n, strings.Join(st.FailedSources, ", "))
	}
	return detail
}

// sourceFailure is a system's part of a change given up after every retry:
// the stage reports it for that dataset and goes on with the others.
type sourceFailure struct{ reason string }

func (f *sourceFailure) Error() string { return "gave up: " + f.reason }

// failedSource reports whether err gives a system's part up, and why.
func failedSource(err error) (reason string, gaveUp bool) {
	var f *sourceFailure
	if errors.As(err, &f) {
		return f.reason, true
	}
	return "", false
}

// finishChange ends an erasure, rectification or restriction: completed,
// or, when a system could not do its part, failed with code
// "source-failed" naming those systems (the reports say why, and what every
// other system did).
func (s *Service) finishChange(st *dsr.Stored, attempt int, detail string) error {
	if n := len(st.FailedSources); n > 0 {
		return st.Fail("source-failed", fmt.Sprintf("%d source(s) could not do their part: %s; the other sources did theirs (see the reports)",
			n, strings.Join(st.FailedSources, ", ")), s.NowUTC(), attempt)
	}
	return s.advance(st, st.Stage, attempt, detail)
}

// boundReason is an error's text as kept on a request (its systems' errors
// carry no personal data), bounded in length.
func boundReason(err error) string {
	r := err.Error()
	if len(r) > 300 {
		r = r[:300] + "…"
	}
	return r
}
