package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sources"
)

// rights are the data subject's rights as stated in manifest.json and
// summary.txt.
var rights = []string{
	"Rectification (GDPR Art. 16): you can ask us to correct inaccurate personal data about you and to complete incomplete data.",
	"Erasure (GDPR Art. 17): you can ask us to delete personal data about you, for example when we no longer need it or you withdraw consent.",
	"Restriction of processing (GDPR Art. 18): you can ask us to limit how we use your data, for example while its accuracy is checked.",
	"Objection (GDPR Art. 21): you can object at any time to processing based on our legitimate interests or public interest, and always to direct marketing.",
	"Complaint (GDPR Art. 77): you can lodge a complaint with a data protection supervisory authority, in particular in the EU member state where you live, work or where you think the infringement happened.",
	"Data portability (GDPR Art. 20): you can reuse the data you gave us; the JSON and CSV files in this archive are in structured, machine-readable formats you can pass to another organisation.",
}

type manifest struct {
	Format       string            `json:"format"`
	GeneratedAt  string            `json:"generatedAt"`
	Request      manifestRequest   `json:"request"`
	TotalRecords int64             `json:"totalRecords"`
	Datasets     []manifestDataset `json:"datasets"`
	Rights       []string          `json:"rights"`
}

type manifestRequest struct {
	ID         string  `json:"id"`
	Type       string  `json:"type"`
	CreatedAt  *string `json:"createdAt"`
	ReceivedAt *string `json:"receivedAt"`
	DueAt      *string `json:"dueAt"`
}

type manifestDataset struct {
	Name        string        `json:"name"`
	Description string        `json:"description"`
	Records     int64         `json:"records"`
	Files       []string      `json:"files"`
	Facts       sources.Facts `json:"facts"`
	// Unavailable says why the dataset could not be searched.
	Unavailable string `json:"unavailable,omitempty"`
	// KeptAfterErasure says why records are still held after an erasure.
	KeptAfterErasure *manifestKept `json:"keptAfterErasure,omitempty"`
}

type manifestKept struct {
	dsr.KeptAfterErasure
	ErasedAt string `json:"erasedAt"`
	Reason   string `json:"reason"`
}

func manifestTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

// buildManifest returns the content of manifest.json.
func buildManifest(req Request, datasets []Dataset, parts []spooled, total int64, generatedAt time.Time) ([]byte, error) {
	m := manifest{
		Format:      Format,
		GeneratedAt: generatedAt.UTC().Format(time.RFC3339Nano),
		Request: manifestRequest{
			ID:         req.ID,
			Type:       req.Type,
			CreatedAt:  manifestTime(req.CreatedAt),
			ReceivedAt: manifestTime(req.ReceivedAt),
			DueAt:      manifestTime(req.DueAt),
		},
		TotalRecords: total,
		Datasets:     make([]manifestDataset, len(datasets)),
		Rights:       rights,
	}
	for i, d := range datasets {
		files := []string{}
		if parts[i].records > 0 {
			files = []string{jsonName(d.Name), csvName(d.Name)}
			if d.Schema {
				files = append(files, schemaName(d.Name))
			}
		}
		facts := d.Facts
		if facts.Categories == nil {
			facts.Categories = []string{}
		}
		if facts.Purposes == nil {
			facts.Purposes = []string{}
		}
		m.Datasets[i] = manifestDataset{
			Name:        d.Name,
			Description: d.Description,
			Records:     parts[i].records,
			Files:       files,
			Facts:       facts,
			Unavailable: d.Unavailable,
		}
		if d.Kept != nil && parts[i].records > 0 {
			m.Datasets[i].KeptAfterErasure = &manifestKept{KeptAfterErasure: *d.Kept, ErasedAt: d.Kept.ErasedAt.UTC().Format(time.RFC3339Nano), Reason: keptSentence(d.Kept)}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return buf.Bytes(), nil
}

func humanTime(t time.Time) string {
	if t.IsZero() {
		return "not recorded"
	}
	return t.UTC().Format("2 January 2006, 15:04 UTC")
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func listOr(items []string, none string) string {
	if len(items) == 0 {
		return none
	}
	return strings.Join(items, "; ")
}

func requestTypeText(t string) string {
	switch t {
	case "access":
		return "access to your personal data (GDPR Art. 15) and a portable copy (GDPR Art. 20)"
	case "":
		return "not recorded"
	}
	return t
}

// buildSummary returns the content of summary.txt.
func buildSummary(req Request, datasets []Dataset, parts []spooled, total int64, generatedAt time.Time) string {
	var b strings.Builder
	line := func(format string, args ...any) {
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	item := func(label, value string) {
		line("   %-21s%s", label+":", value)
	}
	heading := func(s string) {
		line("")
		line("%s", s)
		line("%s", strings.Repeat("-", len(s)))
	}

	line("COPY OF YOUR PERSONAL DATA")
	line("==========================")
	line("")
	line("This archive is a copy of the personal data we hold about you, prepared in")
	line("answer to your request under Article 15 of the General Data Protection")
	line("Regulation (GDPR). The data is also given in structured, commonly used,")
	line("machine-readable formats (JSON and CSV), so you can keep it, reuse it or")
	line("pass it to another organisation (Article 20, right to data portability).")

	heading("Your request")
	line("Reference:      %s", req.ID)
	line("Type:           %s", requestTypeText(req.Type))
	line("Received:       %s", humanTime(req.ReceivedAt))
	line("Recorded:       %s", humanTime(req.CreatedAt))
	line("Answer due by:  %s", humanTime(req.DueAt))
	line("This copy made: %s", humanTime(generatedAt))

	var empty, unavailable int
	for i, p := range parts {
		switch {
		case datasets[i].Unavailable != "":
			unavailable++
		case p.records == 0:
			empty++
		}
	}
	heading("What we hold about you")
	line("We looked in %s and found %s about you in total.",
		plural(int64(len(datasets)), "place (dataset)", "places (datasets)"), plural(total, "record", "records"))
	switch {
	case empty == 1:
		line("1 dataset held nothing about you; it is listed so you can see where we looked.")
	case empty > 1:
		line("%d datasets held nothing about you; they are listed so you can see where we looked.", empty)
	}
	if unavailable > 0 {
		line("%s could not be searched in time; the list below says which, and we will send what they hold separately.",
			plural(int64(unavailable), "dataset", "datasets"))
	}
	for i, d := range datasets {
		p := parts[i]
		f := d.Facts
		line("")
		desc := d.Description
		if desc == "" {
			desc = "(no description)"
		}
		line("%d. %s: %s", i+1, d.Name, desc)
		switch {
		case d.Unavailable != "":
			item("Records about you", "not included: this system could not be searched in time ("+d.Unavailable+"); we will send what it holds separately")
		case p.records == 0:
			item("Records about you", "none found, so there is no data file for this dataset")
		default:
			item("Records about you", fmt.Sprint(p.records))
			item("Files", jsonName(d.Name)+" and "+csvName(d.Name))
			if d.Kept != nil {
				item("Why it is kept", keptSentence(d.Kept))
			}
		}
		item("Kinds of data", listOr(f.Categories, "not stated"))
		item("Why we use it", listOr(f.Purposes, "not stated"))
		item("Who receives it", listOr(f.Recipients, "no recipients recorded"))
		item("How long we keep it", orText(f.Retention, "not stated"))
		item("Where it came from", orText(f.Source, "not stated"))
		item("Legal basis", orText(f.LegalBasis, "not stated"))
	}

	heading("Your rights")
	for _, r := range rights {
		line("- %s", r)
	}
	line("")
	line("To use any of these rights, contact us and quote the reference %s.", req.ID)

	heading("How to read the files")
	line("- summary.txt (this file): a plain-language overview.")
	line("- manifest.json: the same overview in machine-readable form: the request,")
	line("  each dataset with its record count, files and the facts above.")
	line("- data/<dataset>.json: the records of one dataset as a JSON array, one record")
	line("  per line, with the fields in the order we store them. Use this file to")
	line("  move your data to another service.")
	line("- data/<dataset>.csv: the same records as a table for spreadsheet programs.")
	line("  The first row names the columns; each further row is one record. The")
	line("  file is UTF-8 encoded: if letters look wrong, import it and choose UTF-8.")
	line("  An empty cell means the record has no value for that column. Values that")
	line("  hold several parts (lists or groups of fields) are written as JSON text.")
	line("  To stop spreadsheet programs from running text as a formula, any text")
	line("  that starts with =, +, -, @, a tab or a carriage return is shown with an")
	line("  apostrophe (') in front; the apostrophe is not part of the data, and the")
	line("  JSON file has the value without it.")
	line("Datasets in which we found nothing about you have no data files.")
	return b.String()
}

func orText(s, none string) string {
	if s == "" {
		return none
	}
	return s
}
