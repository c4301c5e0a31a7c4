package blobdataset

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/dsr-functions/dsr/shared/sources"
)

// The scan benchmarks read a deterministic NDJSON activity log of a CRM:
// about 2.8 million records per GiB, each about 380 bytes, each about one
// of scanPeople people (chosen uniformly), with that person's customer id,
// name, email, phone, a timestamp and a free-text note. Emails are stored
// in random case or padded now and then; a few records carry a near-miss
// decoy instead (the address inside a longer one: "x"+address, address+
// ".org"), and notes mention other people's addresses ("cc ..."), decoys
// of them, and phone numbers. The subjects of the benchmarks are
// scanSubjects of these people.
//
// The file is generated once under os.TempDir with its size in its name
// and reused while its size matches; delete it to regenerate.

const (
	scanDataVersion = 2
	scanPeople      = 100_000
	// scanSubjects is how many subjects the many-subject benchmarks use.
	scanSubjects = 1000
)

var (
	scanFirst = strings.Fields(`james mary robert patricia john jennifer michael linda david elizabeth
		william barbara richard susan joseph jessica thomas sarah charles karen christopher lisa daniel
		nancy matthew betty anthony sandra mark margaret donald ashley steven kimberly andrew emily paul
		donna joshua michelle kenneth carol kevin amanda brian melissa george deborah timothy stephanie
		ahmed fatima wei li yuki hiroshi olga ivan sofia lucas emma noah amara kwame priya arjun zoe jose
		ann joann mira avery`)
	scanLast = strings.Fields(`smith johnson williams brown jones garcia miller davis rodriguez martinez
		hernandez lopez gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson
		white harris sanchez clark ramirez lewis robinson walker young allen king wright scott torres
		nguyen hill flores green adams nelson baker hall rivera campbell mitchell carter roberts chen
		wang kim patel singh mueller schmidt rossi dubois novak kowalski jensen larsen silva costa
		okonkwo morgan`)
	scanDomains = []string{"contoso.example", "fabrikam.example", "northwind.example", "adatum.example"}
	scanWords   = strings.Fields(`the customer called about an order and asked us to update the delivery
		address please note that invoice was paid last week refund requested for damaged item follow up
		next tuesday contact prefers email over phone meeting scheduled with account manager renewal of
		subscription discussed pricing tier upgrade support ticket closed after reset of password shipped
		via express courier tracking number sent warranty claim approved replacement unit on backorder
		left voicemail no answer will try again tomorrow morning marketing consent withdrawn newsletter
		unsubscribe request processed data export requested by customer complaint escalated to team
		lead satisfied with resolution quote accepted purchase order received budget approval pending
		q3 review zone quick jazz box fix`)
	scanChannels = []string{"web", "phone", "email", "chat", "store"}
)

// scanPerson is one person of the generated population.
type scanPerson struct {
	first, last, email, customerID string
	area, exchange, line           int // phone +1 area-exchange-line
}

func (p scanPerson) phoneDigits() string {
	return fmt.Sprintf("1%03d%03d%04d", p.area, p.exchange, p.line)
}

// person returns person i (0 <= i < scanPeople); the same for every run.
func person(i int) scanPerson {
	r := rand.New(rand.NewPCG(uint64(i), 0x5ca7))
	p := scanPerson{
		first:    scanFirst[r.IntN(len(scanFirst))],
		last:     scanLast[r.IntN(len(scanLast))],
		area:     201 + r.IntN(780),
		exchange: 201 + r.IntN(780),
		line:     r.IntN(10000),
	}
	p.email = p.first + "." + p.last + "." + strconv.Itoa(i) + "@" + scanDomains[i%len(scanDomains)]
	p.customerID = fmt.Sprintf("CU%07d", i)
	return p
}

// scanSubjectIndex is the person behind subject k of the benchmarks, in a
// population of people.
func scanSubjectIndex(k, people int) int { return (k*97 + 13) % people }

// benchSubjects returns n subjects (emails only, as grep gets them, or
// emails and phones).
func benchSubjects(n int, phones bool) []sources.Subject {
	return populationSubjects(n, phones, scanPeople)
}

// populationSubjects returns n subjects of a population of people.
func populationSubjects(n int, phones bool, people int) []sources.Subject {
	out := make([]sources.Subject, n)
	for k := range out {
		p := person(scanSubjectIndex(k, people))
		out[k] = sources.Subject{Emails: []string{p.email}}
		if phones {
			out[k].Phones = []string{p.phoneDigits()}
		}
	}
	return out
}

// benchPatterns are the subjects' emails, the patterns grep and rg get.
func benchPatterns(subjects []sources.Subject) []string {
	var out []string
	for _, s := range subjects {
		out = append(out, s.Emails...)
	}
	return out
}

// scanDataset is the benchmark's dataset over blob (or prefix) name.
func scanDataset(blob, prefix string) sources.Dataset {
	return sources.Dataset{
		Name: "activity", Blob: blob, Prefix: prefix, Format: sources.FormatNDJSON, Key: "id",
		Identifiers: []sources.Identifier{
			{Field: "email", Kind: sources.KindEmail},
			{Field: "phone", Kind: sources.KindPhone},
			{Field: "customer_id", Kind: sources.KindID, IDName: "customerId"},
			{Field: "name", Kind: sources.KindName},
		},
		FreeText: []string{"note"},
		Facts:    testFacts,
	}
}

func scanConfig(d sources.Dataset) *sources.Config {
	return &sources.Config{Version: 1, DefaultPhoneRegion: "US", Datasets: []sources.Dataset{d}}
}

var (
	scanDataMu    sync.Mutex
	scanDataPaths = map[int]string{}
)

// scanData returns the path of the generated file of mib MiB, writing it
// first if it is not in os.TempDir yet.
func scanData(tb testing.TB, mib int) string {
	tb.Helper()
	scanDataMu.Lock()
	defer scanDataMu.Unlock()
	if p, ok := scanDataPaths[mib]; ok {
		return p
	}
	size := int64(mib) << 20
	path := filepath.Join(os.TempDir(), fmt.Sprintf("dsr-scan-bench-v%d-%dMiB.ndjson", scanDataVersion, mib))
	if fi, err := os.Stat(path); err != nil || fi.Size() != size {
		tb.Logf("generating %s (%d MiB, once)", path, mib)
		if err := writeScanData(path, size); err != nil {
			tb.Fatalf("benchmark data: %v", err)
		}
	}
	scanDataPaths[mib] = path
	return path
}

// writeScanData writes exactly size bytes of the activity log to path (via
// a temporary file and rename, so a partial file is never reused).
func writeScanData(path string, size int64) error {
	return writePopulationData(path, size, scanPeople)
}

// writePopulationData is writeScanData with records about a population of
// people (instead of scanPeople).
func writePopulationData(path string, size int64, people int) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".dsr-scan-bench-*")
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	g := newScanGen(20250601, people)
	const minFinal = 1000 // every line is shorter than this
	var line []byte
	for remaining := size; remaining > 0; {
		line = g.line(line[:0], -1)
		if int64(len(line))+minFinal > remaining {
			line = g.line(line[:0], int(remaining))
		}
		if _, err := w.Write(line); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		remaining -= int64(len(line))
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	return nil
}

// scanGen generates the activity log line by line.
type scanGen struct {
	r          *rand.Rand
	id         int
	population int
	people     map[int]scanPerson
}

func newScanGen(seed uint64, population int) *scanGen {
	return &scanGen{r: rand.New(rand.NewPCG(seed, 0xda7a)), population: population, people: map[int]scanPerson{}}
}

func (g *scanGen) person(i int) scanPerson {
	p, ok := g.people[i]
	if !ok {
		if len(g.people) > 1<<16 {
			clear(g.people)
		}
		p = person(i)
		g.people[i] = p
	}
	return p
}

// line appends one record and '\n'. If exactLen is positive the note is cut
// or padded so that the line is exactly that long.
func (g *scanGen) line(dst []byte, exactLen int) []byte {
	r := g.r
	g.id++
	p := g.person(r.IntN(g.population))
	email := p.email
	switch k := r.IntN(100); {
	case k < 10:
		email = strings.ToUpper(email)
	case k < 20:
		email = mixedCase(r, email)
	case k < 23:
		email = "  " + email + " "
	case k < 25:
		email = decoy(r, email)
	}
	start := len(dst)
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, int64(g.id), 10)
	dst = append(dst, `,"customer_id":"`...)
	dst = append(dst, p.customerID...)
	dst = append(dst, `","name":"`...)
	dst = append(dst, title(p.first)...)
	dst = append(dst, ' ')
	dst = append(dst, title(p.last)...)
	dst = append(dst, `","email":"`...)
	dst = append(dst, email...)
	dst = append(dst, `","phone":"`...)
	dst = appendPhone(dst, r, p)
	dst = append(dst, `","created":"2024-`...)
	dst = append2(dst, 1+r.IntN(12))
	dst = append(dst, '-')
	dst = append2(dst, 1+r.IntN(28))
	dst = append(dst, 'T')
	dst = append2(dst, r.IntN(24))
	dst = append(dst, ':')
	dst = append2(dst, r.IntN(60))
	dst = append(dst, `:00Z","channel":"`...)
	dst = append(dst, scanChannels[r.IntN(len(scanChannels))]...)
	dst = append(dst, `","note":"`...)
	noteStart := len(dst)
	noteLen := 120 + r.IntN(120)
	if exactLen > 0 {
		noteLen = 1 << 20
	}
	for len(dst)-noteStart < noteLen && (exactLen <= 0 || len(dst)-start < exactLen) {
		switch k := r.IntN(80); {
		case k == 0:
			dst = append(dst, "cc "...)
			dst = append(dst, g.person(r.IntN(g.population)).email...)
			dst = append(dst, ' ')
		case k == 1:
			dst = append(dst, "not "...)
			dst = append(dst, decoy(r, g.person(r.IntN(g.population)).email)...)
			dst = append(dst, ' ')
		case k == 2:
			q := g.person(r.IntN(g.population))
			dst = append(dst, "call "...)
			dst = appendPhone(dst, r, q)
			dst = append(dst, ' ')
		default:
			dst = append(dst, scanWords[r.IntN(len(scanWords))]...)
			dst = append(dst, ' ')
		}
	}
	const tail = "\"}\n"
	if exactLen > 0 {
		// Cut the note (which may end in an address, so drop a partial
		// word) and pad it with spaces to the exact length.
		for len(dst)-start > exactLen-len(tail) {
			dst = dst[:len(dst)-1]
		}
		for len(dst)-start < exactLen-len(tail) {
			dst = append(dst, ' ')
		}
	}
	return append(dst, tail...)
}

// decoy returns a string that holds email but is not that address.
func decoy(r *rand.Rand, email string) string {
	switch r.IntN(3) {
	case 0:
		return "x" + email
	case 1:
		return email + ".org"
	}
	return email + "_old"
}

func appendPhone(dst []byte, r *rand.Rand, p scanPerson) []byte {
	switch r.IntN(4) {
	case 0:
		return fmt.Appendf(dst, "+1 %03d-%03d-%04d", p.area, p.exchange, p.line)
	case 1:
		return fmt.Appendf(dst, "(%03d) %03d-%04d", p.area, p.exchange, p.line)
	case 2:
		return fmt.Appendf(dst, "%03d.%03d.%04d", p.area, p.exchange, p.line)
	}
	return fmt.Appendf(dst, "+1%03d%03d%04d", p.area, p.exchange, p.line)
}

func append2(dst []byte, n int) []byte {
	return append(dst, byte('0'+n/10), byte('0'+n%10))
}

func title(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

func mixedCase(r *rand.Rand, s string) string {
	b := []byte(s)
	for i := range b {
		if r.IntN(2) == 0 && 'a' <= b[i] && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}
