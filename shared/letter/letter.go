// Package letter writes the short answer a person reads (Art. 12(1): concise,
// intelligible, in clear and plain language): what we found about her, what
// we did in each place (deleted, masked, kept and why and until when,
// corrected, restricted), who was told, and her rights. It is one HTML page
// with no script and no outside resources, so it opens anywhere: in the
// access export (letter.html) and, for the other request types, from the
// request (GET /api/requests/{id}/letter).
package letter

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sources"
)

// Source is one place we looked, and what we found and did there.
type Source struct {
	Name        string
	Description string
	// Records is how many of her records it holds (or held, before a change).
	Records int64
	Facts   sources.Facts
	// Unavailable says why the place could not be searched or changed.
	Unavailable string
	// Kept says why records remain after an earlier erasure.
	Kept *dsr.KeptAfterErasure
	// Done says what this request did there, in plain words ("" for access).
	Done string
}

// Letter is what the page says.
type Letter struct {
	RequestID  string
	Type       dsr.Type
	ReceivedAt time.Time
	// AnsweredAt is when the answer was made.
	AnsweredAt time.Time
	Sources    []Source
	// Rejection, when set, is why we did not do what she asked.
	Rejection *dsr.Rejection
	// Incomplete, when set, says that part of the request could not be
	// done yet and that someone follows up.
	Incomplete string
	// Notified names the recipients we told about the change (Art. 19).
	Notified []string
	// Notice is a notice the law requires with this answer (the lifting of
	// a restriction, Art. 18(3)).
	Notice string
}

//go:embed letter.html
var files embed.FS

var page = template.Must(template.New("letter.html").Funcs(template.FuncMap{
	"date":   func(t time.Time) string { return t.UTC().Format("2 January 2006") },
	"join":   func(s []string) string { return strings.Join(s, ", ") },
	"asked":  asked,
	"title":  title,
	"plural": plural,
	"kept":   keptSentence,
	"access": func(t dsr.Type) bool {
		return t == dsr.TypeAccess || t == dsr.TypeDiscovery || t == dsr.TypePortability
	},
}).ParseFS(files, "letter.html"))

// Render writes the letter as an HTML page.
func Render(w io.Writer, l Letter) error {
	if err := page.Execute(w, l); err != nil {
		return fmt.Errorf("letter: %w", err)
	}
	return nil
}

func title(t dsr.Type) string {
	switch t {
	case dsr.TypeAccess:
		return "The personal data we hold about you"
	case dsr.TypeDiscovery:
		return "Where we hold personal data about you"
	case dsr.TypeErasure:
		return "Erasing your personal data"
	case dsr.TypeRectification:
		return "Correcting your personal data"
	case dsr.TypeRestriction:
		return "Restricting the use of your personal data"
	case dsr.TypePortability:
		return "The personal data you gave us, ready to take elsewhere"
	}
	return "Your request"
}

// asked is what she asked for, to end "you asked us to ...".
func asked(t dsr.Type) string {
	switch t {
	case dsr.TypeAccess:
		return "give you a copy of the personal data we hold about you (Article 15 GDPR)"
	case dsr.TypeDiscovery:
		return "tell you where we hold personal data about you (Article 15 GDPR)"
	case dsr.TypeErasure:
		return "erase the personal data we hold about you (Article 17 GDPR)"
	case dsr.TypeRectification:
		return "correct personal data we hold about you (Article 16 GDPR)"
	case dsr.TypeRestriction:
		return "restrict the use of your personal data (Article 18 GDPR)"
	case dsr.TypePortability:
		return "give you the personal data you provided to us in a structured, machine-readable format, to take to another organisation (Article 20 GDPR); this archive holds that data as JSON and CSV with a JSON Schema for each file"
	}
	return "act on your personal data"
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// keptSentence says in plain words why records were kept after an erasure.
func keptSentence(k *dsr.KeptAfterErasure) string {
	var s string
	switch k.Action {
	case "retained":
		s = "We kept these records after your erasure request of " + k.ErasedAt.UTC().Format("2 January 2006") + " because " + k.Ground
		if k.LegalBasis != "" {
			s += " (" + k.LegalBasis + ")"
		}
	default:
		s = "After your erasure request of " + k.ErasedAt.UTC().Format("2 January 2006") + " we removed what identifies you from these records"
		if len(k.Fields) > 0 {
			s += " (" + strings.Join(k.Fields, ", ") + ")"
		}
		s += "; the rest is kept"
	}
	if k.RetainUntil != "" {
		s += ", until " + k.RetainUntil
	}
	return s + "."
}
