package console

import (
	"fmt"
	"strings"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/policy"
	"github.com/dsr-functions/dsr/shared/sources"
)

// plannedAction is what a request will do to one dataset, shown to the
// person who approves it before they decide.
type plannedAction struct {
	// Verb is short (Delete, Mask, Retain, Rectify, Flag, Export, ...).
	Verb string
	// Detail says which fields, under which ground, or why not.
	Detail string
}

// delegates reports whether a dataset's system finds and changes the
// subject's records itself (a webhook system).
func delegates(d *sources.Dataset) bool {
	f, ok := d.Options.(interface{ FindsRecordsItself() bool })
	return ok && f.FindsRecordsItself()
}

// plan says what a request of type t does to dataset d (nil: a dataset no
// longer in the sources config).
func plan(t dsr.Type, d *sources.Dataset, lift bool) plannedAction {
	if d == nil {
		return plannedAction{Verb: "Unknown", Detail: "the dataset is no longer in the sources config"}
	}
	switch t {
	case dsr.TypeAccess:
		return plannedAction{Verb: "Export", Detail: "her records go into the export package"}
	case dsr.TypeDiscovery:
		return plannedAction{Verb: "Report", Detail: "counted on the request; nothing is changed or exported"}
	case dsr.TypePortability:
		switch {
		case d.Provided == nil:
			return plannedAction{Verb: "Skip", Detail: "not data she provided (no provided in the sources config)"}
		case len(d.Provided.Fields) > 0:
			return plannedAction{Verb: "Export", Detail: "her records' provided fields (" + strings.Join(d.Provided.Fields, ", ") + ") go into the package, with a JSON Schema"}
		default:
			return plannedAction{Verb: "Export", Detail: "her records go into the package, with a JSON Schema"}
		}
	case dsr.TypeErasure:
		if delegates(d) {
			return plannedAction{Verb: "Delegate", Detail: "the system erases her records itself"}
		}
		o := policy.Decide(d)
		switch o.Action {
		case sources.EraseRetain:
			detail := "ground: " + orNone(o.Ground)
			if o.LegalBasis != "" {
				detail += "; legal basis: " + o.LegalBasis
			}
			if o.RetainUntil != "" {
				detail += "; until " + o.RetainUntil
			}
			return plannedAction{Verb: "Retain", Detail: detail}
		case sources.EraseMask:
			var fields []string
			for _, r := range d.Erasure.Mask {
				fields = append(fields, fmt.Sprintf("%s (%s)", r.Field, r.Strategy))
			}
			return plannedAction{Verb: "Mask", Detail: strings.Join(fields, ", ") + "; mentions of her in others' records are masked"}
		default:
			return plannedAction{Verb: "Delete", Detail: "her records are deleted; records that only mention her keep the record and lose the mention"}
		}
	case dsr.TypeRectification:
		switch {
		case delegates(d):
			return plannedAction{Verb: "Delegate", Detail: "the system rectifies her records itself"}
		case d.SystemLog:
			return plannedAction{Verb: "Not rectifiable", Detail: "a system-generated log (a factual record of events)"}
		case !d.Rectifiable:
			return plannedAction{Verb: "Not rectifiable", Detail: "the dataset is not marked rectifiable"}
		default:
			return plannedAction{Verb: "Rectify", Detail: "the corrected identifiers are replaced in her records"}
		}
	case dsr.TypeRestriction:
		verb := "Restrict"
		if lift {
			verb = "Lift"
		}
		switch {
		case delegates(d):
			return plannedAction{Verb: verb, Detail: "the system applies it itself"}
		case d.RestrictionField != "":
			return plannedAction{Verb: verb, Detail: "flag field " + d.RestrictionField + " on her records"}
		default:
			return plannedAction{Verb: verb, Detail: "recorded in the restriction registry only (no flag field)"}
		}
	}
	return plannedAction{Verb: "None"}
}

func orNone(s string) string {
	if s == "" {
		return "(none given)"
	}
	return s
}
