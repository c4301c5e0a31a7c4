package sample

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/sources"
)

func generate(t testing.TB, f File, size Size, seed uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Generate(&buf, f, size, seed); err != nil {
		t.Fatalf("Generate %s: %v", f.Name, err)
	}
	return buf.Bytes()
}

func generateAll(t testing.TB, size Size, seed uint64) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, f := range Files() {
		out[f.Name] = generate(t, f, size, seed)
	}
	return out
}

func mustSize(t testing.TB, s string) Size {
	t.Helper()
	sz, err := ParseSize(s)
	if err != nil {
		t.Fatal(err)
	}
	return sz
}

// ---- independent parsing ----

func parseNDJSON(t testing.TB, name string, b []byte) []map[string]any {
	t.Helper()
	var recs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s line %d: %v", name, n, err)
		}
		recs = append(recs, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("%s: does not end with a newline", name)
	}
	return recs
}

func parseCSV(t testing.TB, b []byte) []map[string]string {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = 0 // every row must have the header's column count
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatalf("cases csv: %v", err)
	}
	if len(rows) == 0 {
		t.Fatal("cases csv: empty")
	}
	header := rows[0]
	want := []string{"incidentid", "ticketnumber", "title", "description", "customerid", "ownerid", "createdon", "statuscode"}
	if strings.Join(header, ",") != strings.Join(want, ",") {
		t.Fatalf("cases header = %v, want %v", header, want)
	}
	var recs []map[string]string
	for _, row := range rows[1:] {
		if len(row) != len(header) {
			t.Fatalf("cases row has %d columns, want %d", len(row), len(header))
		}
		m := map[string]string{}
		for i, h := range header {
			m[h] = row[i]
		}
		recs = append(recs, m)
	}
	return recs
}

func parseJSONArray(t testing.TB, b []byte) []map[string]any {
	t.Helper()
	var recs []map[string]any
	if err := json.Unmarshal(b, &recs); err != nil {
		t.Fatalf("agents json: %v", err)
	}
	return recs
}

type parsed struct {
	contacts, surveys, activity []map[string]any
	agents                      []map[string]any
	cases                       []map[string]string
}

func parseAll(t testing.TB, files map[string][]byte) parsed {
	t.Helper()
	return parsed{
		contacts: parseNDJSON(t, ContactsBlob, files[ContactsBlob]),
		cases:    parseCSV(t, files[CasesBlob]),
		agents:   parseJSONArray(t, files[AgentsBlob]),
		surveys:  parseNDJSON(t, SurveysBlob, files[SurveysBlob]),
		activity: parseNDJSON(t, ActivityBlob, files[ActivityBlob]),
	}
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// ---- independent matching ----

func normEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

const localChars = "abcdefghijklmnopqrstuvwxyz0123456789.!#$%&'*+/=?^_`{|}~-"

// hasEmailToken: email (lower-case) occurs in text as a whole token.
func hasEmailToken(text, email string) bool {
	lt := strings.ToLower(text)
	for off := 0; ; {
		i := strings.Index(lt[off:], email)
		if i < 0 {
			return false
		}
		s, e := off+i, off+i+len(email)
		off = s + 1
		if s > 0 && strings.IndexByte(localChars, lt[s-1]) >= 0 {
			continue
		}
		if e < len(lt) {
			c := lt[e]
			if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '@' {
				continue
			}
			if c == '.' && e+1 < len(lt) && strings.IndexByte("abcdefghijklmnopqrstuvwxyz0123456789-", lt[e+1]) >= 0 {
				continue
			}
		}
		return true
	}
}

var phoneLike = regexp.MustCompile(`\+?\(?[0-9][0-9 ().-]*[0-9]`)

// usDigits normalises a US-looking phone number to E.164 digits.
func usDigits(s string) string {
	var d []byte
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			d = append(d, s[i])
		}
	}
	if len(d) == 10 {
		return "1" + string(d)
	}
	return string(d)
}

func hasPhone(text, phone string) bool {
	for _, m := range phoneLike.FindAllString(text, -1) {
		if usDigits(m) == phone {
			return true
		}
	}
	return false
}

// countDemo counts the demo subject's records per blob with the relations
// of sample/sources.json, independently of the generator.
func countDemo(p parsed, withPhone bool) map[string]int {
	free := func(text string) bool {
		return hasEmailToken(text, DemoEmail) || withPhone && hasPhone(text, DemoPhone)
	}
	counts := map[string]int{}
	contacts := map[string]bool{}
	for _, c := range p.contacts {
		if normEmail(str(c, "emailaddress1")) == DemoEmail || str(c, "contactid") == DemoContactID ||
			withPhone && usDigits(str(c, "telephone1")) == DemoPhone {
			contacts[str(c, "contactid")] = true
			counts[ContactsBlob]++
		}
	}
	cases := map[string]bool{}
	for _, c := range p.cases {
		if contacts[c["customerid"]] || free(c["description"]) {
			cases[c["incidentid"]] = true
			counts[CasesBlob]++
		}
	}
	for _, a := range p.agents {
		if normEmail(str(a, "internalemailaddress")) == DemoEmail {
			counts[AgentsBlob]++
		}
	}
	for _, s := range p.surveys {
		if normEmail(str(s, "respondentemail")) == DemoEmail || cases[str(s, "incidentid")] || free(str(s, "comment")) {
			counts[SurveysBlob]++
		}
	}
	for _, e := range p.activity {
		if normEmail(str(e, "actor")) == DemoEmail || contacts[str(e, "entityid")] || free(str(e, "details")) {
			counts[ActivityBlob]++
		}
	}
	return counts
}

// ---- tests ----

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in       string
		contacts int
	}{
		{"tiny", 50}, {"small", 1000}, {"medium", 100_000}, {"large", 1_000_000},
		{"huge", 10_000_000}, {" Small ", 1000}, {"2500", 2500}, {"1_000_000", 1_000_000}, {"20", 20},
	} {
		sz, err := ParseSize(tc.in)
		if err != nil {
			t.Errorf("ParseSize(%q): %v", tc.in, err)
			continue
		}
		if sz.Contacts != tc.contacts {
			t.Errorf("ParseSize(%q).Contacts = %d, want %d", tc.in, sz.Contacts, tc.contacts)
		}
		if err := sz.Validate(); err != nil {
			t.Errorf("ParseSize(%q) is not valid: %v", tc.in, err)
		}
	}
	for _, in := range []string{"", "tinyy", "abc", "19", "0", "-100", "+100", "1.5", "99999999999"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q): want error", in)
		}
	}
	if err := (Size{Contacts: 100}).Validate(); err == nil {
		t.Error("Size without rates: want Validate error")
	}
	if err := Generate(io.Discard, File{Container, ContactsBlob}, Size{Contacts: 5}, 1); err == nil {
		t.Error("Generate with invalid size: want error")
	}
	if err := Generate(io.Discard, File{Container, "nope.ndjson"}, mustSize(t, "tiny"), 1); err == nil {
		t.Error("Generate unknown file: want error")
	}
	if err := Generate(io.Discard, File{"other", ContactsBlob}, mustSize(t, "tiny"), 1); err == nil {
		t.Error("Generate unknown container: want error")
	}
}

func TestDeterminism(t *testing.T) {
	size := mustSize(t, "tiny")
	a := generateAll(t, size, 42)
	b := generateAll(t, size, 42)
	c := generateAll(t, size, 43)
	for _, f := range Files() {
		if !bytes.Equal(a[f.Name], b[f.Name]) {
			t.Errorf("%s: two generations with the same seed differ", f.Name)
		}
		if bytes.Equal(a[f.Name], c[f.Name]) {
			t.Errorf("%s: different seeds give identical output", f.Name)
		}
		if len(a[f.Name]) == 0 {
			t.Errorf("%s: empty", f.Name)
		}
	}
	// Generating one file alone, after others, gives the same bytes.
	if got := generate(t, File{Container, SurveysBlob}, size, 42); !bytes.Equal(got, a[SurveysBlob]) {
		t.Error("surveys generated alone differ")
	}
}

func TestDemoSubjectCounts(t *testing.T) {
	for _, name := range []string{"tiny", "small", "137"} {
		for _, seed := range []uint64{0, 1, 20260630} {
			size := mustSize(t, name)
			p := parseAll(t, generateAll(t, size, seed))
			demo := Demo(size)
			for _, withPhone := range []bool{true, false} {
				want := demo.Records
				if !withPhone {
					want = demo.RecordsWithoutPhone
				}
				got := countDemo(p, withPhone)
				for _, f := range Files() {
					if got[f.Name] != want[f.Name] {
						t.Errorf("size %s seed %d phone %v: %s: %d records of the demo subject, Demo says %d",
							name, seed, withPhone, f.Name, got[f.Name], want[f.Name])
					}
				}
			}
		}
	}
}

func TestDemoContact(t *testing.T) {
	for _, name := range []string{"tiny", "small"} {
		size := mustSize(t, name)
		demo := Demo(size)
		if demo.ContactIndex <= 0 || demo.ContactIndex >= size.Contacts {
			t.Fatalf("%s: demo index %d out of range", name, demo.ContactIndex)
		}
		contacts := parseNDJSON(t, ContactsBlob, generate(t, File{Container, ContactsBlob}, size, 7))
		if len(contacts) != size.Contacts {
			t.Fatalf("%s: %d contacts, want %d", name, len(contacts), size.Contacts)
		}
		c := contacts[demo.ContactIndex]
		want := map[string]string{
			"contactid": DemoContactID, "fullname": "Avery Morgan", "firstname": "Avery", "lastname": "Morgan",
			"emailaddress1": "Avery.Morgan@Contoso.example", "telephone1": "+1 (425) 555-0199",
		}
		for k, v := range want {
			if str(c, k) != v {
				t.Errorf("%s: demo contact %s = %q, want %q", name, k, str(c, k), v)
			}
		}
		if demo.ContactID != DemoContactID || demo.Email != DemoEmail || demo.Phone != "14255550199" {
			t.Errorf("Demo() = %+v", demo)
		}
		// The namesake exists and is someone else.
		namesakes := 0
		for _, c := range contacts {
			if str(c, "fullname") == "Avery Morgan" && str(c, "contactid") != DemoContactID {
				namesakes++
			}
		}
		if namesakes != 1 {
			t.Errorf("%s: %d namesakes, want 1", name, namesakes)
		}
	}
}

func TestDecoys(t *testing.T) {
	size := mustSize(t, "tiny")
	p := parseAll(t, generateAll(t, size, 3))
	var descs, respondents []string
	for _, c := range p.cases {
		descs = append(descs, c["description"])
	}
	for _, s := range p.surveys {
		respondents = append(respondents, str(s, "respondentemail"))
	}
	allDescs := strings.Join(descs, "\n")
	for _, d := range []string{
		"lavery.morgan@contoso.example", "avery.morgan@contoso.example.au",
		"avery.morgan2@contoso.example", "+1 (425) 555-0198", mentionDescription,
	} {
		if !strings.Contains(allDescs, d) {
			t.Errorf("no case description contains %q", d)
		}
	}
	allResp := strings.Join(respondents, "\n")
	for _, d := range []string{
		"lavery.morgan@contoso.example", "Avery.Morgan@Contoso.example.au",
		"avery.morgan@contoso.examples", "avery.morgan2@contoso.example", "  AVERY.MORGAN@contoso.example ",
	} {
		if !strings.Contains(allResp, d) {
			t.Errorf("no survey respondent %q", d)
		}
	}
	// The decoys defeat naive matching: substring search over-counts.
	naive, token := 0, 0
	for _, d := range descs {
		if strings.Contains(strings.ToLower(d), DemoEmail) {
			naive++
		}
		if hasEmailToken(d, DemoEmail) {
			token++
		}
	}
	if token != 1 || naive <= token {
		t.Errorf("case descriptions: %d whole-token mentions (want 1), %d substring mentions (want more)", token, naive)
	}
	phones := 0
	for _, d := range descs {
		if hasPhone(d, "14255550198") {
			phones++
		}
	}
	if phones == 0 {
		t.Error("no case mentions the near-miss phone")
	}
}

func TestFormatsAndIntegrity(t *testing.T) {
	size := mustSize(t, "small")
	p := parseAll(t, generateAll(t, size, 99))
	if len(p.contacts) != size.Contacts {
		t.Errorf("%d contacts, want %d", len(p.contacts), size.Contacts)
	}
	if len(p.agents) != size.Agents {
		t.Errorf("%d agents, want %d", len(p.agents), size.Agents)
	}
	contacts, agents, cases := map[string]bool{}, map[string]bool{}, map[string]bool{}
	agentEmails := map[string]bool{}
	for _, c := range p.contacts {
		id := str(c, "contactid")
		if contacts[id] {
			t.Errorf("duplicate contactid %s", id)
		}
		contacts[id] = true
		if _, err := time.Parse(time.RFC3339, str(c, "createdon")); err != nil {
			t.Errorf("contact createdon: %v", err)
		}
		if _, ok := c["preferredcontactmethodcode"].(float64); !ok {
			t.Errorf("contact preferredcontactmethodcode is not a number: %v", c["preferredcontactmethodcode"])
		}
	}
	for _, a := range p.agents {
		agents[str(a, "systemuserid")] = true
		e := str(a, "internalemailaddress")
		if !strings.HasSuffix(e, "@contoso.example") || agentEmails[e] {
			t.Errorf("agent email %q not unique @contoso.example", e)
		}
		agentEmails[e] = true
	}
	multiline := 0
	for _, c := range p.cases {
		if cases[c["incidentid"]] {
			t.Errorf("duplicate incidentid %s", c["incidentid"])
		}
		cases[c["incidentid"]] = true
		if !contacts[c["customerid"]] {
			t.Errorf("case customerid %s is no contact", c["customerid"])
		}
		if !agents[c["ownerid"]] {
			t.Errorf("case ownerid %s is no agent", c["ownerid"])
		}
		if strings.Contains(c["description"], "\n") && strings.Contains(c["description"], `"`) {
			multiline++
		}
		if _, err := time.Parse(time.RFC3339, c["createdon"]); err != nil {
			t.Errorf("case createdon: %v", err)
		}
	}
	if multiline == 0 {
		t.Error("no multi-line case description with quotes")
	}
	if n := len(p.cases); n < size.Contacts || n > 3*size.Contacts {
		t.Errorf("%d cases for %d contacts", n, size.Contacts)
	}
	for _, s := range p.surveys {
		if !cases[str(s, "incidentid")] {
			t.Errorf("survey incidentid %s is no case", str(s, "incidentid"))
		}
		if sc, _ := s["score"].(float64); sc < 1 || sc > 5 {
			t.Errorf("survey score %v", s["score"])
		}
	}
	if len(p.surveys) == 0 {
		t.Error("no surveys")
	}
	if want := size.Contacts * size.EventsPerContact; len(p.activity) != want {
		t.Errorf("%d activity entries, want %d", len(p.activity), want)
	}
	var last time.Time
	for _, e := range p.activity {
		ts, err := time.Parse(time.RFC3339, str(e, "timestamp"))
		if err != nil {
			t.Fatalf("activity timestamp: %v", err)
		}
		if ts.Before(last) {
			t.Errorf("activity timestamps not ordered: %v after %v", ts, last)
		}
		last = ts
		if !agentEmails[str(e, "actor")] {
			t.Errorf("activity actor %q is no agent", str(e, "actor"))
		}
		id := str(e, "entityid")
		switch str(e, "entity") {
		case "contact":
			if !contacts[id] {
				t.Errorf("activity entityid %s is no contact", id)
			}
		case "incident":
			if !cases[id] {
				t.Errorf("activity entityid %s is no case", id)
			}
		case "systemuser":
			if !agents[id] {
				t.Errorf("activity entityid %s is no agent", id)
			}
		}
	}
}

func TestSourcesConfig(t *testing.T) {
	b, err := os.ReadFile("../../sample/sources.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := sources.Parse(b)
	if err != nil {
		t.Fatalf("sample/sources.json: %v", err)
	}
	if cfg.DefaultPhoneRegion != "US" {
		t.Errorf("defaultPhoneRegion = %q", cfg.DefaultPhoneRegion)
	}
	files := Files()
	if len(cfg.Datasets) != len(files) {
		t.Fatalf("%d datasets, want %d", len(cfg.Datasets), len(files))
	}
	formats := map[string]sources.Format{
		ContactsBlob: sources.FormatNDJSON, CasesBlob: sources.FormatCSV, AgentsBlob: sources.FormatJSONArray,
		SurveysBlob: sources.FormatNDJSON, ActivityBlob: sources.FormatNDJSON,
	}
	for i, d := range cfg.Datasets {
		if d.Container != files[i].Container || d.Blob != files[i].Name || d.Prefix != "" {
			t.Errorf("dataset %s is %s/%s, want %s/%s", d.Name, d.Container, d.Blob, files[i].Container, files[i].Name)
		}
		if d.Format != formats[d.Blob] {
			t.Errorf("dataset %s format %s, want %s", d.Name, d.Format, formats[d.Blob])
		}
	}
}

// TestSmallIsFast checks the "small" preset's generation time budget.
func TestSmallIsFast(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	size := mustSize(t, "small")
	start := time.Now()
	var n int64
	for _, f := range Files() {
		cw := &countWriter{}
		if err := Generate(cw, f, size, 1); err != nil {
			t.Fatal(err)
		}
		n += cw.n
	}
	d := time.Since(start)
	t.Logf("small: %d bytes in %v", n, d)
	if d > 3*time.Second {
		t.Errorf("small took %v, budget 1s", d)
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

func BenchmarkGenerateSmall(b *testing.B) {
	size := mustSize(b, "small")
	for b.Loop() {
		for _, f := range Files() {
			if err := Generate(io.Discard, f, size, 1); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func TestAgentStride(t *testing.T) {
	cells := len(firstNames) * len(lastNames)
	a, b := agentStride, cells
	for b != 0 {
		a, b = b, a%b
	}
	if a != 1 {
		t.Fatalf("agentStride %d is not coprime to %d", agentStride, cells)
	}
}
