// Package sample generates deterministic, Dynamics 365 Customer Service
// Insights-like demo data for the DSR functions: contacts, support cases,
// agents, survey responses and a system activity log, written as the Blob
// datasets that sample/sources.json describes.
//
// Generation streams record by record: every record draws its randomness
// from a math/rand/v2 PCG source seeded from (seed, dataset, record index),
// so memory does not grow with the size, each file can be generated on its
// own, and the same (size, seed) always yields byte-identical files.
//
// Among the random people the generator plants one demo data subject, Avery
// Morgan (DemoEmail), with a fixed, exactly known set of records, plus
// near-miss decoys (similar emails and a phone number one digit off) that a
// correct matcher must not report. Demo describes what is guaranteed.
package sample

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Container is the Blob container every generated dataset lives in.
const Container = "datasets"

// Blob names of the generated datasets (inside Container).
const (
	ContactsBlob = "crm/contacts.ndjson"        // Dynamics contacts (ndjson)
	CasesBlob    = "crm/cases.csv"              // support cases / incidents (csv)
	AgentsBlob   = "crm/agents.json"            // agents / system users (json-array)
	SurveysBlob  = "insights/surveys.ndjson"    // Customer Voice survey responses (ndjson)
	ActivityBlob = "system/activity-log.ndjson" // system activity log (ndjson)
)

// DemoEmail is the demo data subject's email address, normalised (trimmed,
// lower-case). The contacts dataset stores it in mixed case.
const DemoEmail = "avery.morgan@contoso.example"

// DemoPhone is the demo data subject's phone number as E.164 digits without
// the leading '+'. The contacts dataset stores it as "+1 (425) 555-0199".
const DemoPhone = "14255550199"

// DemoContactID is the demo data subject's contactid. It is the same for
// every size and seed.
const DemoContactID = "6d1f7a3c-2b94-4e58-a0c7-58e2b91d4f36"

// MinContacts is the smallest number of contacts a Size may have: the demo
// subject, her namesake and the decoys need room.
const MinContacts = 20

// MaxContacts is the largest number of contacts a Size may have.
const MaxContacts = 1_000_000_000

// Size says how much data to generate. Use ParseSize or SizeFor rather than
// filling it in by hand; Validate reports a Size Generate would refuse.
type Size struct {
	// Name is the preset name ("tiny", "small", ...), or "" for an explicit
	// number of contacts.
	Name string
	// Contacts is the number of contacts (at least MinContacts).
	Contacts int
	// CasesPerContact is the mean number of cases per contact: each random
	// contact has between 0 and 2*CasesPerContact cases.
	CasesPerContact int
	// SurveyPercent is the chance, in percent, that a random case has a
	// survey response.
	SurveyPercent int
	// EventsPerContact is the number of activity log entries per contact.
	EventsPerContact int
	// Agents is the number of agents (system users).
	Agents int
}

// Presets: name and number of contacts.
var presets = []struct {
	name     string
	contacts int
}{
	{"tiny", 50},
	{"small", 1_000},
	{"medium", 100_000},
	{"large", 1_000_000},
	{"huge", 10_000_000},
}

// SizeFor returns the Size for an explicit number of contacts, with the
// default rates: 2 cases per contact on average, a survey response for 35%
// of cases, 3 activity log entries per contact, and one agent per 100
// contacts (at least 8, at most 2,000): roughly 1.8 KB of data per contact.
func SizeFor(contacts int) Size {
	return Size{
		Contacts:         contacts,
		CasesPerContact:  2,
		SurveyPercent:    35,
		EventsPerContact: 3,
		Agents:           min(max(contacts/100, 8), 2000),
	}
}

// ParseSize parses a size preset: "tiny" (50 contacts), "small" (1,000),
// "medium" (100,000, about 180 MB), "large" (1,000,000, about 1.8 GB),
// "huge" (10,000,000, about 18 GB), or an explicit integer number of
// contacts (underscores and commas allowed as digit separators) between
// MinContacts and MaxContacts.
func ParseSize(s string) (Size, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for _, p := range presets {
		if t == p.name {
			sz := SizeFor(p.contacts)
			sz.Name = p.name
			return sz, nil
		}
	}
	digits := strings.NewReplacer("_", "", ",", "").Replace(t)
	n, err := strconv.Atoi(digits)
	if err != nil || digits == "" || digits[0] == '+' || digits[0] == '-' {
		return Size{}, fmt.Errorf("sample: size %q: want tiny, small, medium, large, huge or a number of contacts", s)
	}
	sz := SizeFor(n)
	if err := sz.Validate(); err != nil {
		return Size{}, err
	}
	return sz, nil
}

// Validate reports whether Generate accepts the size.
func (s Size) Validate() error {
	switch {
	case s.Contacts < MinContacts || s.Contacts > MaxContacts:
		return fmt.Errorf("sample: size: contacts must be between %d and %d, got %d", MinContacts, MaxContacts, s.Contacts)
	case s.CasesPerContact < 0 || s.CasesPerContact > 100:
		return fmt.Errorf("sample: size: cases per contact must be between 0 and 100, got %d", s.CasesPerContact)
	case s.SurveyPercent < 0 || s.SurveyPercent > 100:
		return fmt.Errorf("sample: size: survey percent must be between 0 and 100, got %d", s.SurveyPercent)
	case s.EventsPerContact < 1 || s.EventsPerContact > 100:
		return fmt.Errorf("sample: size: events per contact must be between 1 and 100, got %d", s.EventsPerContact)
	case s.Agents < 1 || s.Agents > 1_000_000:
		return fmt.Errorf("sample: size: agents must be between 1 and 1000000, got %d", s.Agents)
	}
	return nil
}

// String returns the preset name, or the number of contacts.
func (s Size) String() string {
	if s.Name != "" {
		return s.Name
	}
	return strconv.Itoa(s.Contacts)
}

// File is one generated dataset file (a blob).
type File struct {
	Container, Name string
}

// Files lists the blobs the generator writes, all in Container, in the order
// of the datasets in sample/sources.json.
func Files() []File {
	return []File{
		{Container, ContactsBlob},
		{Container, CasesBlob},
		{Container, AgentsBlob},
		{Container, SurveysBlob},
		{Container, ActivityBlob},
	}
}

// Generate writes the dataset named by f to w. It streams: memory use does
// not depend on the size. The output depends only on (f, size, seed), so
// files can be generated independently, in any order, and identically on
// every run. Write errors are returned as they are.
func Generate(w io.Writer, f File, size Size, seed uint64) error {
	if err := size.Validate(); err != nil {
		return err
	}
	if f.Container != Container {
		return fmt.Errorf("sample: unknown file %s/%s", f.Container, f.Name)
	}
	g := newGen(size, seed)
	bw := bufio.NewWriterSize(w, 64<<10)
	var err error
	switch f.Name {
	case ContactsBlob:
		err = g.writeContacts(bw)
	case CasesBlob:
		err = g.writeCases(bw)
	case AgentsBlob:
		err = g.writeAgents(bw)
	case SurveysBlob:
		err = g.writeSurveys(bw)
	case ActivityBlob:
		err = g.writeActivity(bw)
	default:
		return fmt.Errorf("sample: unknown file %s/%s", f.Container, f.Name)
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}

// DemoFacts is what the generator guarantees about the demo data subject.
//
// The counts assume discovery with sample/sources.json and a subject
// identified by DemoEmail, DemoPhone and contactId = DemoContactID (default
// phone region US). They arise as follows, for every size and seed:
//
//   - contacts (1): her own contact, matched by emailaddress1
//     ("Avery.Morgan@Contoso.example", case-insensitive), telephone1
//     ("+1 (425) 555-0199") and contactid. Her namesake (another "Avery
//     Morgan", avery.morgan2@contoso.example, +1 425-555-0198) matches by
//     name only, which never identifies a person.
//   - cases (4): her 3 cases, which reference her only by customerid
//     (relation to contacts.contactid), plus 1 case of another contact whose
//     description mentions her email in free text. That other contact is
//     not hers (relations only run from cases to contacts). Decoy cases
//     mention lavery.morgan@contoso.example, avery.morgan@contoso.example.au,
//     avery.morgan2@contoso.example and +1 (425) 555-0198; none match.
//   - agents (0): she is not an agent; no agent has her email.
//   - surveys (3): one response on each of her 3 cases (relation incidentid
//     to cases.incidentid); two also carry her respondentemail
//     ("avery.morgan@contoso.example" and "  AVERY.MORGAN@contoso.example "),
//     the third has none. The free-text case has no survey response, so the
//     relation from it adds nothing. Decoy responses come from
//     lavery.morgan@contoso.example, Avery.Morgan@Contoso.example.au,
//     avery.morgan@contoso.examples and avery.morgan2@contoso.example.
//   - activity-log (5): 3 contact.view and 1 contact.update entries with
//     entityid = her contactid (relation to contacts.contactid), plus 1
//     phone call entry whose details say "Called back 425-555-0199" (free
//     text, phone without country code, so it needs the US default region
//     and the subject's phone). No other entry references her contact, her
//     cases or the free-text case, so adding a relation from entityid to
//     cases.incidentid would not change the counts.
//
// Without the phone (email and contactId only) the count is the same except
// activity-log, which is 4: see RecordsWithoutPhone.
type DemoFacts struct {
	// ContactID is her contactid (DemoContactID).
	ContactID string
	// ContactIndex is her 0-based position in the contacts dataset (never 0).
	ContactIndex int
	// Email is her normalised email (DemoEmail).
	Email string
	// Phone is her phone as E.164 digits without '+' (DemoPhone).
	Phone string
	// Records is her exact number of records per blob name (File.Name),
	// for a subject identified by email, phone and contactId.
	Records map[string]int
	// RecordsWithoutPhone is the same for a subject identified by email and
	// contactId only.
	RecordsWithoutPhone map[string]int
}

// Demo describes what the generator guarantees about the demo data subject
// in data of the given size (for any seed). See DemoFacts for how each count
// arises.
func Demo(size Size) DemoFacts {
	return DemoFacts{
		ContactID:    DemoContactID,
		ContactIndex: demoIndex(size.Contacts),
		Email:        DemoEmail,
		Phone:        DemoPhone,
		Records: map[string]int{
			ContactsBlob: 1,
			CasesBlob:    demoCases + 1,
			AgentsBlob:   0,
			SurveysBlob:  demoCases,
			ActivityBlob: len(demoEvents),
		},
		RecordsWithoutPhone: map[string]int{
			ContactsBlob: 1,
			CasesBlob:    demoCases + 1,
			AgentsBlob:   0,
			SurveysBlob:  demoCases,
			ActivityBlob: len(demoEvents) - 1,
		},
	}
}

// demoIndex is the demo subject's position among n contacts: in the middle,
// so discovery must scan past other people first.
func demoIndex(n int) int { return n/2 + 7 }
