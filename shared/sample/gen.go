package sample

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Roles of the planted contacts; every other contact is roleRandom. With d
// the demo subject's index (demoIndex), the planted contacts are 3 (her
// namesake), d-4..d-1 (decoys), d (her) and d+1 (the contact whose case
// mentions her email). MinContacts keeps them distinct and in range.
type role int

const (
	roleRandom   role = iota
	roleDemo          // the demo subject
	roleNamesake      // another Avery Morgan: avery.morgan2@contoso.example, +1 425-555-0198
	roleMention       // case 0 mentions the demo subject's email; no survey on it
	roleLavery        // case 0 and its survey: lavery.morgan@contoso.example
	roleAU            // case 0 and its survey: avery.morgan@contoso.example.au
	rolePlus2         // case 0: avery.morgan2@...; its survey: avery.morgan@contoso.examples
	rolePhone         // case 0 mentions +1 (425) 555-0198
)

const (
	// agentStride is prime and does not divide len(firstNames)*len(lastNames)
	// (TestAgentStride checks), so it permutes the agent name table.
	agentStride   = 1009
	namesakeIndex = 3
	// demoCases is the number of the demo subject's own cases; each has one
	// survey response.
	demoCases = 3
	// mentionDescription is the one free-text mention of the demo subject
	// in cases.
	mentionDescription = "Customer forwarded a complaint from avery.morgan@contoso.example about billing."
)

// Time frame of the data.
var (
	contactsFrom = time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)
	contactsTo   = time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)
	dataEnd      = time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC)
	activityFrom = time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)
)

const activityTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// The demo subject's fixed records.
var (
	demoContact = contact{
		id: DemoContactID, first: "Avery", last: "Morgan",
		email: "Avery.Morgan@Contoso.example", phone: "+1 (425) 555-0199",
		city: "Redmond", created: time.Date(2021, 3, 14, 9, 26, 53, 0, time.UTC), pref: 2,
	}
	demoCaseData = [demoCases]struct {
		title, description string
		created            time.Time
		status             string
		// survey
		respondent, comment string
		score               int
	}{
		{
			"Duplicate charge on invoice",
			"Invoice for March shows the subscription charged twice; customer asks for a refund of the duplicate.",
			time.Date(2025, 3, 18, 10, 12, 0, 0, time.UTC), "5",
			"avery.morgan@contoso.example", "Refund was quick once it was approved.", 4,
		},
		{
			"Refund not received",
			"Refund promised last week has not arrived yet; customer is \"frustrated\", asked for a status update.\nChecked with billing: payment run is delayed.",
			time.Date(2025, 3, 27, 15, 40, 0, 0, time.UTC), "5",
			"  AVERY.MORGAN@contoso.example ", "Had to chase the refund twice, but it arrived.", 2,
		},
		{
			"Update billing address",
			"Customer moved, billing address needs to change.\nNew address confirmed verbally.",
			time.Date(2025, 11, 4, 8, 5, 0, 0, time.UTC), "1",
			"", "Address updated within minutes, thanks.", 5,
		},
	}
	// demoEvents are the demo subject's activity log entries; entity
	// "contact" entries have entityid = her contactid. Exactly one mentions
	// her phone, and none her email.
	demoEvents = []struct{ op, entity, details string }{
		{"contact.view", "contact", "Opened contact form from the case timeline."},
		{"contact.view", "contact", "Viewed contact details while handling a billing case."},
		{"activity.create", "phonecall", "Called back 425-555-0199 about the duplicate charge; customer confirmed the refund request."},
		{"contact.update", "contact", "Changed preferred contact method to Email."},
		{"contact.view", "contact", "Opened contact form from search results."},
	}
)

type contact struct {
	id, first, last string
	email, phone    string // "" when missing
	city            string
	created         time.Time
	pref            int
}

// gen holds the parameters and scratch space of one Generate call.
type gen struct {
	seed       uint64
	size       Size
	n, demo    int
	agentShift int // seed-dependent offset into the agent name table

	r   rng // the record being written
	aux rng // helpers called while r is in use

	buf []byte // the JSON record being built
	nf  int    // fields written to buf
}

func newGen(size Size, seed uint64) *gen {
	g := &gen{seed: seed, size: size, n: size.Contacts, demo: demoIndex(size.Contacts)}
	g.agentShift = g.aux.at(seed, tagAgentNames, 0, 0).intn(len(firstNames) * len(lastNames))
	return g
}

func (g *gen) role(i int) role {
	switch i {
	case g.demo:
		return roleDemo
	case namesakeIndex:
		return roleNamesake
	case g.demo + 1:
		return roleMention
	case g.demo - 1:
		return roleLavery
	case g.demo - 2:
		return roleAU
	case g.demo - 3:
		return rolePlus2
	case g.demo - 4:
		return rolePhone
	}
	return roleRandom
}

// excluded reports contacts that random activity log entries never
// reference, so the demo subject's activity count stays exact.
func (g *gen) excluded(i int) bool { return i == g.demo || i == g.demo+1 }

// ---- identities ----

func (g *gen) contactID(i int) string {
	if i == g.demo {
		return DemoContactID
	}
	var r rng
	return guidOf(r.at(g.seed, tagContactID, i, 0))
}

func (g *gen) incidentID(i, k int) string {
	var r rng
	return guidOf(r.at(g.seed, tagIncidentID, i, k))
}

func (g *gen) agentID(j int) string {
	var r rng
	return guidOf(r.at(g.seed, tagAgentID, j, 0))
}

// agentName returns agent j's first and last name and email. Names are
// unique: j walks the (first, last) table in a scrambled order (a stride
// coprime to its size, offset by the seed), with a numeric suffix once the
// table is exhausted.
func (g *gen) agentName(j int) (first, last, email string) {
	nf, nl := len(firstNames), len(lastNames)
	cells := nf * nl
	p := (j%cells*agentStride + g.agentShift) % cells
	first, last = firstNames[p%nf], lastNames[p/nf]
	suffix := ""
	if round := j / cells; round > 0 {
		suffix = strconv.Itoa(round + 1)
	}
	return first, last, emailPart(first) + "." + emailPart(last) + suffix + "@contoso.example"
}

// contact fills c with contact i, drawing from g.aux.
func (g *gen) contact(i int, c *contact) {
	switch g.role(i) {
	case roleDemo:
		*c = demoContact
		return
	case roleNamesake:
		r := g.aux.at(g.seed, tagContact, i, 0)
		*c = contact{
			id: g.contactID(i), first: "Avery", last: "Morgan",
			email: "avery.morgan2@contoso.example", phone: "+1 425-555-0198",
			city: "Seattle", created: randomTime(r, contactsFrom, contactsTo), pref: 3,
		}
		return
	}
	r := g.aux.at(g.seed, tagContact, i, 0)
	c.id = g.contactID(i)
	c.first = r.pick(firstNames)
	c.last = r.pick(lastNames)
	c.email = randomEmail(r, c.first, c.last)
	c.phone = randomPhone(r)
	c.city = r.pick(cities)
	c.created = randomTime(r, contactsFrom, contactsTo)
	c.pref = preferredContactMethods[r.intn(len(preferredContactMethods))]
}

// randomEmail returns a customer address at a non-Contoso domain, or ""
// (4%). Some are written in mixed case.
func randomEmail(r *rng, first, last string) string {
	if r.chance(4) {
		return ""
	}
	f, l := emailPart(first), emailPart(last)
	var local string
	switch r.intn(5) {
	case 0:
		local = f + "." + l
	case 1:
		local = f[:1] + l
	case 2:
		local = f + l + strconv.Itoa(10+r.intn(90))
	case 3:
		local = f + "_" + l
	default:
		local = l + "." + f
	}
	domain := r.pick(customerDomains)
	if r.chance(15) {
		local = strings.ToUpper(local[:1]) + local[1:]
		domain = strings.ToUpper(domain[:1]) + domain[1:]
	}
	return local + "@" + domain
}

// randomPhone returns a fictional US 555-01xx number in one of several
// formats, a fictional UK number, or "" (6%). It never returns the demo
// subject's number.
func randomPhone(r *rng) string {
	if r.chance(6) {
		return ""
	}
	if r.chance(10) {
		return fmt.Sprintf("+44 20 7946 0%03d", r.intn(1000))
	}
	area := r.pick(usAreaCodes)
	line := 100 + r.intn(100)
	if area == "425" && line == 199 { // the demo subject's number
		line = 142
	}
	l := "0" + strconv.Itoa(line)
	switch r.intn(7) {
	case 0:
		return "+1 " + area + "-555-" + l
	case 1:
		return "(" + area + ") 555-" + l
	case 2:
		return area + ".555." + l
	case 3:
		return area + "-555-" + l
	case 4:
		return "+1" + area + "555" + l
	case 5:
		return "1-" + area + "-555-" + l
	default:
		return "+1 (" + area + ") 555-" + l
	}
}

// randomTime returns a time in [from, to) with second precision.
func randomTime(r *rng, from, to time.Time) time.Time {
	span := int(to.Sub(from) / time.Second)
	return from.Add(time.Duration(r.intn(span)) * time.Second)
}

// caseCount is the number of cases of contact i. Planted contacts other
// than the demo subject have at least one (their case 0 is special).
func (g *gen) caseCount(i int) int {
	ro := g.role(i)
	if ro == roleDemo {
		return demoCases
	}
	var r rng
	c := r.at(g.seed, tagCaseCount, i, 0).intn(2*g.size.CasesPerContact + 1)
	if ro != roleRandom && c == 0 {
		c = 1
	}
	return c
}

// caseCreated is the first draw of case (i, k)'s stream r.
func (g *gen) caseCreated(i, k int, c *contact, r *rng) time.Time {
	t := randomTime(r, c.created, dataEnd.Add(-15*24*time.Hour))
	if g.role(i) == roleDemo {
		return demoCaseData[k].created
	}
	return t
}

// hasSurvey reports whether case (i, k) has a survey response.
func (g *gen) hasSurvey(i, k int) bool {
	switch g.role(i) {
	case roleDemo:
		return true
	case roleMention:
		if k == 0 {
			return false
		}
	case roleNamesake, roleLavery, roleAU, rolePlus2:
		if k == 0 {
			return true
		}
	}
	var r rng
	return r.at(g.seed, tagHasSurvey, i, k).chance(g.size.SurveyPercent)
}

// ---- writers ----

func (g *gen) writeContacts(w *bufio.Writer) error {
	var c contact
	for i := 0; i < g.n; i++ {
		g.contact(i, &c)
		g.begin()
		g.str("contactid", c.id)
		g.str("fullname", c.first+" "+c.last)
		g.str("firstname", c.first)
		g.str("lastname", c.last)
		g.strOrNull("emailaddress1", c.email)
		g.strOrNull("telephone1", c.phone)
		g.str("address1_city", c.city)
		g.time("createdon", c.created, time.RFC3339)
		g.int("preferredcontactmethodcode", c.pref)
		if err := g.endLine(w); err != nil {
			return err
		}
	}
	return nil
}

// caseHeader is the header row of the cases CSV.
var caseHeader = []string{"incidentid", "ticketnumber", "title", "description", "customerid", "ownerid", "createdon", "statuscode"}

func (g *gen) writeCases(w *bufio.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(caseHeader); err != nil {
		return err
	}
	row := make([]string, len(caseHeader))
	var c contact
	ticket := 1000
	for i := 0; i < g.n; i++ {
		g.contact(i, &c)
		nc := g.caseCount(i)
		ro := g.role(i)
		for k := 0; k < nc; k++ {
			ticket++
			r := g.r.at(g.seed, tagCase, i, k)
			created := g.caseCreated(i, k, &c, r)
			title := r.pick(caseTitles)
			desc := r.pick(caseOpenings)
			if r.chance(60) {
				desc += "\n" + fillContact(r.pick(caseFollowUps), &c)
			}
			status := r.pick(caseStatusCodes)
			owner := g.agentID(r.intn(g.size.Agents))
			suffix := ticketSuffix(r)
			if ro == roleDemo {
				d := demoCaseData[k]
				title, desc, status = d.title, d.description, d.status
			} else if k == 0 {
				switch ro {
				case roleMention:
					title, desc = "Complaint forwarded by customer", mentionDescription
				case roleLavery:
					desc = "Reply-to address on the ticket is lavery.morgan@contoso.example; customer confirmed it is correct."
				case roleAU:
					desc = "Customer in Sydney wrote from avery.morgan@contoso.example.au asking about regional pricing, GST, and delivery times."
				case rolePlus2:
					desc = `Possible duplicate of avery.morgan2@contoso.example. Checked: different person, "no merge".`
				case rolePhone:
					desc = "Called back +1 (425) 555-0198, no answer; left a voicemail."
				}
			}
			row[0] = g.incidentID(i, k)
			row[1] = "CAS-" + pad5(ticket) + "-" + suffix
			row[2] = title
			row[3] = desc
			row[4] = c.id
			row[5] = owner
			row[6] = created.Format(time.RFC3339)
			row[7] = status
			if err := cw.Write(row); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// fillContact replaces {phone} and {email} with the contact's own values
// (or a neutral sentence when the contact has none).
func fillContact(s string, c *contact) string {
	if strings.Contains(s, "{phone}") {
		if c.phone == "" {
			return "Customer asked to be called back; no number on file."
		}
		return strings.ReplaceAll(s, "{phone}", c.phone)
	}
	if strings.Contains(s, "{email}") {
		if c.email == "" {
			return "Customer asked for a written reply; no email on file."
		}
		return strings.ReplaceAll(s, "{email}", c.email)
	}
	return s
}

func ticketSuffix(r *rng) string {
	const alphabet = "BCDFGHJKLMNPQRSTVWXZ0123456789"
	var b [6]byte
	for i := range b {
		b[i] = alphabet[r.intn(len(alphabet))]
	}
	return string(b[:])
}

func pad5(n int) string {
	s := strconv.Itoa(n)
	if len(s) < 5 {
		s = strings.Repeat("0", 5-len(s)) + s
	}
	return s
}

func (g *gen) writeAgents(w *bufio.Writer) error {
	if _, err := w.WriteString("[\n"); err != nil {
		return err
	}
	for j := 0; j < g.size.Agents; j++ {
		first, last, email := g.agentName(j)
		r := g.r.at(g.seed, tagAgent, j, 0)
		g.begin()
		g.str("systemuserid", g.agentID(j))
		g.str("fullname", first+" "+last)
		g.str("internalemailaddress", email)
		g.str("title", r.pick(agentTitles))
		g.str("businessunit", r.pick(businessUnits))
		g.buf = append(g.buf, '}')
		if j < g.size.Agents-1 {
			g.buf = append(g.buf, ',')
		}
		g.buf = append(g.buf, '\n')
		if _, err := w.Write(g.buf); err != nil {
			return err
		}
	}
	_, err := w.WriteString("]\n")
	return err
}

func (g *gen) writeSurveys(w *bufio.Writer) error {
	var c contact
	for i := 0; i < g.n; i++ {
		nc := g.caseCount(i)
		loaded := false
		ro := g.role(i)
		for k := 0; k < nc; k++ {
			if !g.hasSurvey(i, k) {
				continue
			}
			if !loaded {
				g.contact(i, &c)
				loaded = true
			}
			created := g.caseCreated(i, k, &c, g.r.at(g.seed, tagCase, i, k))
			r := g.r.at(g.seed, tagSurvey, i, k)
			id := guidOf(r)
			respondent := c.email
			switch v := r.intn(100); {
			case respondent == "":
			case v < 10:
				respondent = strings.ToUpper(respondent)
			case v < 20:
				respondent = "  " + respondent + " "
			case v < 25:
				respondent = ""
			}
			score := 1 + r.intn(5)
			comment := r.pick(surveyComments)
			submitted := created.Add(time.Hour + time.Duration(r.intn(10*24*3600))*time.Second)
			switch {
			case ro == roleDemo:
				d := demoCaseData[k]
				respondent, comment, score = d.respondent, d.comment, d.score
			case k > 0:
			case ro == roleNamesake:
				respondent = "avery.morgan2@contoso.example"
			case ro == roleLavery:
				respondent = "lavery.morgan@contoso.example"
			case ro == roleAU:
				respondent = "Avery.Morgan@Contoso.example.au"
			case ro == rolePlus2:
				respondent = "avery.morgan@contoso.examples"
			}
			g.begin()
			g.str("responseid", id)
			g.str("incidentid", g.incidentID(i, k))
			g.strOrNull("respondentemail", respondent)
			g.int("score", score)
			g.str("comment", comment)
			g.time("submittedon", submitted, time.RFC3339)
			if err := g.endLine(w); err != nil {
				return err
			}
		}
	}
	return nil
}

func (g *gen) writeActivity(w *bufio.Writer) error {
	total := uint64(g.n) * uint64(g.size.EventsPerContact)
	span := uint64(dataEnd.Sub(activityFrom) / time.Millisecond)
	step := max(span/total, 1)
	nextDemo := 0
	demoAt := func(k int) uint64 { return total * uint64(k+1) / uint64(len(demoEvents)+1) }
	var c contact
	for e := uint64(0); e < total; e++ {
		r := g.r.at(g.seed, tagEvent, int(e), 0)
		hi, lo := bits.Mul64(span, e)
		offset, _ := bits.Div64(hi, lo, total)
		ts := activityFrom.Add(time.Duration(offset+uint64(r.intn(int(step)))) * time.Millisecond)
		id := guidOf(r)
		_, _, actor := g.agentName(r.intn(g.size.Agents))
		var op, entity, entityID, details string
		if nextDemo < len(demoEvents) && e == demoAt(nextDemo) {
			d := demoEvents[nextDemo]
			nextDemo++
			op, entity, details = d.op, d.entity, d.details
			if entity == "contact" {
				entityID = DemoContactID
			} else {
				entityID = guidOf(r)
			}
		} else {
			op, entity, entityID, details = g.randomEvent(r, &c)
		}
		g.begin()
		g.str("eventid", id)
		g.time("timestamp", ts, activityTimeLayout)
		g.str("actor", actor)
		g.str("operation", op)
		g.str("entity", entity)
		g.str("entityid", entityID)
		g.str("details", details)
		if err := g.endLine(w); err != nil {
			return err
		}
	}
	return nil
}

// randomContact picks a contact that random events may reference.
func (g *gen) randomContact(r *rng) int {
	i := r.intn(g.n)
	for g.excluded(i) {
		i = (i + 1) % g.n
	}
	return i
}

// randomEvent draws an activity log entry that references no record of
// the demo subject (nor the case that mentions her).
func (g *gen) randomEvent(r *rng, c *contact) (op, entity, entityID, details string) {
	v := r.intn(100)
	if v >= 35 && v < 70 { // case operations
		for range 8 {
			i := g.randomContact(r)
			if nc := g.caseCount(i); nc > 0 {
				entityID = g.incidentID(i, r.intn(nc))
				switch {
				case v < 55:
					return "case.update", "incident", entityID, r.pick(caseUpdateDetails)
				case v < 63:
					return "case.create", "incident", entityID, r.pick(caseCreateDetails)
				default:
					return "case.resolve", "incident", entityID, r.pick(caseResolveDetails)
				}
			}
		}
		v = 0 // no case found: view a contact instead
	}
	switch {
	case v < 30:
		return "contact.view", "contact", g.contactID(g.randomContact(r)), r.pick(viewDetails)
	case v < 35:
		return "contact.update", "contact", g.contactID(g.randomContact(r)), r.pick(updateDetails)
	case v < 80:
		g.contact(g.randomContact(r), c)
		id := guidOf(r)
		if c.phone == "" {
			return "activity.create", "phonecall", id, "Outbound call attempted; no phone number on file."
		}
		switch r.intn(3) {
		case 0:
			return "activity.create", "phonecall", id, "Outbound call to " + c.phone + " about an open case."
		case 1:
			return "activity.create", "phonecall", id, "Returned call to " + c.phone + ", issue resolved on the phone."
		default:
			return "activity.create", "phonecall", id, "Left a voicemail at " + c.phone + "."
		}
	case v < 85:
		return "export.run", "report", guidOf(r), r.pick(exportDetails)
	default:
		j := r.intn(g.size.Agents)
		return "user.signin", "systemuser", g.agentID(j), r.pick(signinDetails)
	}
}

// ---- JSON building ----

func (g *gen) begin() {
	g.buf = append(g.buf[:0], '{')
	g.nf = 0
}

func (g *gen) key(k string) {
	if g.nf > 0 {
		g.buf = append(g.buf, ',')
	}
	g.nf++
	g.buf = append(g.buf, '"')
	g.buf = append(g.buf, k...)
	g.buf = append(g.buf, '"', ':')
}

func (g *gen) str(k, v string) {
	g.key(k)
	g.buf = appendJSONString(g.buf, v)
}

// strOrNull writes "" as null.
func (g *gen) strOrNull(k, v string) {
	if v == "" {
		g.key(k)
		g.buf = append(g.buf, "null"...)
		return
	}
	g.str(k, v)
}

func (g *gen) int(k string, v int) {
	g.key(k)
	g.buf = strconv.AppendInt(g.buf, int64(v), 10)
}

func (g *gen) time(k string, t time.Time, layout string) {
	g.key(k)
	g.buf = append(g.buf, '"')
	g.buf = t.AppendFormat(g.buf, layout)
	g.buf = append(g.buf, '"')
}

// endLine closes the object and writes it as one NDJSON line.
func (g *gen) endLine(w *bufio.Writer) error {
	g.buf = append(g.buf, '}', '\n')
	_, err := w.Write(g.buf)
	return err
}

// appendJSONString appends s (valid UTF-8) as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
