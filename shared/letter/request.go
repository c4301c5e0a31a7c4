package letter

import (
	"fmt"
	"strings"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sources"
)

// Answered reports whether a request has an answer to write: it ended
// (completed, failed after doing part of it, or refused).
func Answered(req *dsr.Request) bool {
	return req.State == dsr.StateCompleted || req.State == dsr.StateFailed || req.State == dsr.StateRejected
}

// FromRequest writes the letter of an ended request from its own record of
// what was found and done (the reports on the request), and the places'
// descriptions and facts from the sources config.
func FromRequest(req *dsr.Request, cfg *sources.Config) Letter {
	l := Letter{RequestID: req.ID, Type: req.Type, ReceivedAt: req.ReceivedAt, AnsweredAt: req.UpdatedAt, Rejection: req.Rejection}
	if n := len(req.History); n > 0 {
		l.AnsweredAt = req.History[n-1].At
	}
	byName := map[string]int{}
	if req.Discovery != nil {
		for _, s := range req.Discovery.Sources {
			src := Source{Name: s.Source, Records: s.Records, Unavailable: s.Error, Kept: s.Kept}
			if d := cfg.Dataset(s.Source); d != nil {
				src.Description, src.Facts = d.Description, d.Facts
			}
			byName[s.Source] = len(l.Sources)
			l.Sources = append(l.Sources, src)
		}
	}
	at := func(name string) *Source {
		i, ok := byName[name]
		if !ok {
			byName[name] = len(l.Sources)
			l.Sources = append(l.Sources, Source{Name: name})
			i = len(l.Sources) - 1
		}
		return &l.Sources[i]
	}
	if e := req.Erasure; e != nil {
		for _, r := range e.Sources {
			s := at(r.Source)
			if r.Error != "" {
				s.Unavailable = r.Error
				continue
			}
			s.Done = erasureDone(r)
		}
	}
	if r := req.Rectification; r != nil {
		for _, x := range r.Sources {
			s := at(x.Source)
			if x.Error != "" {
				s.Unavailable = x.Error
				continue
			}
			switch {
			case x.Rectified > 0:
				s.Done = "We corrected " + plural(x.Rectified, "record", "records") + "."
			case strings.HasPrefix(x.Status, "not rectifiable: "):
				s.Done = "We did not change these records: they are " + strings.TrimPrefix(x.Status, "not rectifiable: ") + "."
			}
		}
	}
	if r := req.Restriction; r != nil {
		for _, x := range r.Sources {
			s := at(x.Source)
			if x.Error != "" {
				s.Unavailable = x.Error
				continue
			}
			if x.Flagged > 0 && r.Lifted {
				s.Done = "We lifted the restriction on " + plural(x.Flagged, "record", "records") + "."
			} else if x.Flagged > 0 {
				s.Done = "We marked " + plural(x.Flagged, "record", "records") + " as restricted: we keep them but do not use them."
			}
		}
		l.Notice = r.Notice
	}
	for _, n := range req.Notifications {
		if n.Status != dsr.NotificationSent {
			continue
		}
		who := n.Recipient
		if r := cfg.Recipient(n.Recipient); r != nil {
			who = r.Description
		}
		l.Notified = append(l.Notified, who)
	}
	if req.State == dsr.StateFailed {
		l.Incomplete = "We could not do all of it yet"
		if len(req.FailedSources) > 0 {
			l.Incomplete += " (" + strings.Join(req.FailedSources, ", ") + ")"
		}
		l.Incomplete += ". Someone on our team is following this up and will write to you; what we did do is below."
	}
	return l
}

// erasureDone says what erasure did in one place.
func erasureDone(r dsr.ErasureResult) string {
	var parts []string
	if r.Deleted > 0 {
		parts = append(parts, "We deleted "+plural(r.Deleted, "record", "records")+".")
	}
	if r.Masked > 0 {
		parts = append(parts, "We removed what identifies you from "+plural(r.Masked, "record", "records")+" that we keep.")
	}
	if r.Retained > 0 {
		s := fmt.Sprintf("We kept %s because %s", plural(r.Retained, "record", "records"), r.Ground)
		if r.LegalBasis != "" {
			s += " (" + r.LegalBasis + ")"
		}
		if r.RetainUntil != "" {
			s += ", until " + r.RetainUntil
		}
		parts = append(parts, s+".")
	}
	if len(parts) == 0 {
		return "Nothing to erase here."
	}
	return strings.Join(parts, " ")
}
