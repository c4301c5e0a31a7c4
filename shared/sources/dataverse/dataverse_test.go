package dataverse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/dsr-functions/dsr/shared/httpretry"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/dataverse/dataversetest"
)

// guid makes a readable, valid, lower-case GUID: set is a hex digit naming
// the table (c contacts, a incidents, b annotations, e emails, d activities).
func guid(set byte, n int) string {
	return fmt.Sprintf("%c%07x-7c1e-4f5a-9b3d-%012x", set, n, n*7919)
}

func contact(n int) string    { return guid('c', n) }
func incident(n int) string   { return guid('a', n) }
func annotation(n int) string { return guid('b', n) }
func email(n int) string      { return guid('e', n) }
func activity(n int) string   { return guid('d', n) }

const (
	subjectEmail = "mira.okonkwo@contoso.example"
	subjectPhone = "12065550142"
	account1     = "a1b2c3d4-0000-4000-8000-000000000001"
	// generated is how many extra cases contact 2 has: more than one
	// relation chunk (25) and many pages.
	generated = 30
)

var subject = sources.Subject{
	Emails: []string{subjectEmail},
	Phones: []string{subjectPhone},
	// The portal knows one of her contact ids, written in upper case with braces.
	IDs: map[string]string{"contactId": "{" + strings.ToUpper(contact(9)) + "}"},
}

// seed fills the fake with a small Customer Service organisation: the
// subject Mira Okonkwo under several contacts, decoys that differ by a
// letter, a domain or a phone number, and another person's cases that
// mention her.
func seed(f *dataversetest.Server) {
	f.AddEntitySet("contacts", "contact", "contactid", "fullname", "emailaddress1", "emailaddress2", "telephone1", "mobilephone", "_parentcustomerid_value", "statecode", "createdon")
	f.AddEntitySet("incidents", "incident", "incidentid", "title", "ticketnumber", "description", "_customerid_value", "statecode", "createdon")
	f.AddEntitySet("annotations", "annotation", "annotationid", "subject", "notetext", "filename", "_objectid_value", "objecttypecode")
	f.AddEntitySet("emails", "email", "activityid", "subject", "description", "sender", "torecipients", "_regardingobjectid_value", "statecode")
	f.AddEntitySet("activitypointers", "activitypointer", "activityid", "activitytypecode", "subject", "description", "_regardingobjectid_value")

	c := func(n int, name, e1, e2, tel, mob string) {
		v := map[string]any{"contactid": contact(n), "fullname": name, "statecode": 0, "createdon": "2024-03-0" + fmt.Sprint(n%9+1) + "T10:00:00Z", "_parentcustomerid_value": account1}
		for k, s := range map[string]string{"emailaddress1": e1, "emailaddress2": e2, "telephone1": tel, "mobilephone": mob} {
			if s != "" {
				v[k] = s
			}
		}
		f.Put("contacts", v)
	}
	c(1, "Mira Okonkwo", "Mira.Okonkwo@Contoso.example", "", "+1 (206) 555-0142", "")
	c(2, "Mira O.", "mira@fabrikam.example", "", "", "206.555.0142")
	c(3, "Xavier Mira", "xmira.okonkwo@contoso.example", "", "+1 206 555 0143", "")
	c(4, "Phone Decoy", "p.decoy@contoso.example", "", "+1 (425) 555-0142", "")
	c(5, "Mira Okonkwo (AU)", "mira.okonkwo@contoso.example.au", "", "+61 2 9999 0142", "")
	c(6, "Pat O'Brien", "O'Brien@X.com", "", "", "")
	c(7, "Sam Other", "sam.other@contoso.example", "", "+44 20 7946 0958", "")
	c(8, "Mira (work)", "", subjectEmail, "", "")
	c(9, "M. Okonkwo", "", "", "", "")

	inc := func(n, customer int, title, desc string) {
		v := map[string]any{"incidentid": incident(n), "title": title, "ticketnumber": fmt.Sprintf("CAS-%05d-K2L3M4", n), "_customerid_value": contact(customer), "statecode": 0, "createdon": "2024-04-01T09:00:00Z"}
		if desc != "" {
			v["description"] = desc
		}
		f.Put("incidents", v)
	}
	inc(1, 1, "Billing question", "Customer asked about invoice 2023-0142.")
	inc(2, 1, "Refund", "")
	inc(3, 2, "Address change", "New address sent by post.")
	inc(4, 3, "Delivery delay", "Xavier asked about the delay.")
	inc(5, 4, "Wrong item", "Please reply to xmira.okonkwo@contoso.example")
	inc(6, 7, "Forwarded complaint", "Forwarded by Sam; original sender "+subjectEmail+".")
	inc(7, 7, "Callback", "Callback requested on 206 555 0142 after 5pm")
	inc(8, 7, "Callback (other)", "Callback on +1 425 555 0142")
	inc(9, 9, "Account access", "")
	for i := range generated {
		inc(100+i, 2, fmt.Sprintf("Order follow-up %d", i), "")
	}

	note := func(n int, object string, typ, subj, text string) {
		f.Put("annotations", map[string]any{"annotationid": annotation(n), "subject": subj, "notetext": text, "filename": nil, "_objectid_value": object, "objecttypecode": typ})
	}
	note(1, incident(1), "incident", "Call notes", "Explained the invoice.")
	note(2, incident(6), "incident", "Forwarded mail", "Attached the original message.")
	note(3, incident(4), "incident", "Decoy note", "Nothing about the subject.")
	note(4, contact(1), "contact", "Preferences", "Prefers email.")
	note(5, contact(3), "contact", "Decoy contact note", "Call back.")
	note(7, incident(8), "incident", "Decoy mention", "Spoke to her, email "+subjectEmail+".au")
	for i := range 10 {
		note(100+i, incident(100+i), "incident", "Order note", fmt.Sprintf("Order %d shipped.", i))
	}

	mail := func(n int, regarding, subj, sender, to string) {
		v := map[string]any{"activityid": email(n), "subject": subj, "description": "<p>Hello</p>", "sender": sender, "torecipients": to, "statecode": 1}
		if regarding != "" {
			v["_regardingobjectid_value"] = regarding
		}
		f.Put("emails", v)
	}
	mail(1, incident(2), "RE: Refund", "support@contoso.example", "someone@contoso.example")
	mail(2, incident(5), "RE: Wrong item", "support@contoso.example", "p.decoy@contoso.example")
	mail(3, "", "Newsletter", "news@contoso.example", subjectEmail+";support@contoso.example")
	mail(4, incident(4), "RE: Delivery", "support@contoso.example", "xmira.okonkwo@contoso.example")
	mail(5, "", "Question", "Mira.Okonkwo@contoso.example", "support@contoso.example")

	act := func(n int, regarding, typ, subj string) {
		f.Put("activitypointers", map[string]any{"activityid": activity(n), "activitytypecode": typ, "subject": subj, "description": nil, "_regardingobjectid_value": regarding})
	}
	act(1, incident(3), "task", "Update address")
	act(2, incident(8), "phonecall", "Call back (other)")
	act(3, incident(7), "phonecall", "Call back")
}

func testConfig(url string, pageSize int) *Config {
	return &Config{
		URL:                url,
		DefaultPhoneRegion: "US",
		PageSize:           pageSize,
		MaxAttempts:        3,
		Tables: []Table{
			{Name: "contacts", EntitySet: "contacts", Key: "contactid",
				Select: []string{"fullname", "emailaddress1", "telephone1", "mobilephone", "_parentcustomerid_value"},
				Identifiers: []sources.Identifier{
					{Field: "emailaddress1", Kind: sources.KindEmail}, {Field: "emailaddress2", Kind: sources.KindEmail},
					{Field: "telephone1", Kind: sources.KindPhone}, {Field: "mobilephone", Kind: sources.KindPhone},
					{Field: "contactid", Kind: sources.KindID, IDName: "contactId"}, {Field: "fullname", Kind: sources.KindName},
				}},
			{Name: "cases", EntitySet: "incidents", Key: "incidentid",
				Select:    []string{"title", "description", "_customerid_value"},
				FreeText:  []string{"description"},
				Relations: []Relation{{Field: "_customerid_value", References: "contacts", ReferencesField: "contactid"}}},
			{Name: "notes", EntitySet: "annotations", Key: "annotationid",
				FreeText: []string{"notetext"},
				Relations: []Relation{
					{Field: "_objectid_value", References: "cases", ReferencesField: "incidentid"},
					{Field: "_objectid_value", References: "contacts", ReferencesField: "contactid"},
				}},
			{Name: "emails", EntitySet: "emails", Key: "activityid",
				Select:      []string{"subject", "sender", "torecipients", "_regardingobjectid_value"},
				Identifiers: []sources.Identifier{{Field: "sender", Kind: sources.KindEmail}},
				FreeText:    []string{"torecipients"},
				Relations:   []Relation{{Field: "_regardingobjectid_value", References: "cases", ReferencesField: "incidentid"}}},
			{Name: "activities", EntitySet: "activitypointers", Key: "activityid",
				Relations: []Relation{{Field: "_regardingobjectid_value", References: "cases", ReferencesField: "incidentid"}}},
		},
	}
}

// setup starts a seeded fake and a connector whose sleeps are recorded,
// not waited.
func setup(t *testing.T, pageSize int) (*Connector, *dataversetest.Server, *dataversetest.Credential, *[]time.Duration) {
	t.Helper()
	f := dataversetest.New(t, pageSize)
	seed(f)
	cred := f.Credential()
	c, err := New(testConfig(f.URL(), pageSize), f.Client(), cred)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	sleeps := &[]time.Duration{}
	c.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		*sleeps = append(*sleeps, d)
		return ctx.Err()
	}
	return c, f, cred, sleeps
}

func keysOf(d *sources.Discovery, dataset string) []string {
	for _, m := range d.Datasets {
		if m.Dataset == dataset {
			if len(m.Locations) == 0 {
				return nil
			}
			return m.Locations[0].Keys
		}
	}
	return nil
}

func matchesOf(t *testing.T, d *sources.Discovery, dataset string) sources.DatasetMatches {
	t.Helper()
	for _, m := range d.Datasets {
		if m.Dataset == dataset {
			return m
		}
	}
	t.Fatalf("no dataset %s in discovery", dataset)
	return sources.DatasetMatches{}
}

func sorted(keys ...string) []string { return slices.Sorted(slices.Values(keys)) }

// expected is what discovery must find for the subject, and nothing else.
func expected() map[string][]string {
	cases := []string{incident(1), incident(2), incident(3), incident(6), incident(7), incident(9)}
	// Incidents 6 and 7 are Sam's and only mention the subject: they are
	// found, but the note and activity under them are Sam's alone.
	notes := []string{annotation(1), annotation(4)}
	for i := range generated {
		cases = append(cases, incident(100+i))
	}
	for i := range 10 {
		notes = append(notes, annotation(100+i))
	}
	return map[string][]string{
		"contacts":   sorted(contact(1), contact(2), contact(8), contact(9)),
		"cases":      sorted(cases...),
		"notes":      sorted(notes...),
		"emails":     sorted(email(1), email(3), email(5)),
		"activities": sorted(activity(1)),
	}
}

func TestDiscoverFindsTheSubjectAndNoDecoys(t *testing.T) {
	for _, reversed := range []bool{false, true} {
		t.Run(fmt.Sprintf("reversed=%v", reversed), func(t *testing.T) {
			c, f, _, _ := setup(t, 5)
			if reversed {
				// Dependents before what they reference: more passes, same result.
				slices.Reverse(c.cfg.Tables)
			}
			d, err := c.Discover(context.Background(), subject)
			if err != nil {
				t.Fatal(err)
			}
			want := expected()
			var total int64
			for ds, keys := range want {
				m := matchesOf(t, d, ds)
				if got := keysOf(d, ds); !slices.Equal(got, keys) {
					t.Errorf("%s: discovered\n %v\nwant\n %v", ds, got, keys)
				}
				if m.Records != int64(len(keys)) {
					t.Errorf("%s: Records = %d, want %d", ds, m.Records, len(keys))
				}
				if len(m.Locations) != 1 || m.Locations[0].Blob != c.mustTable(t, ds).EntitySet ||
					len(m.Locations[0].Ordinals) != 0 || m.Locations[0].ETag != "" {
					t.Errorf("%s: location = %+v", ds, m.Locations)
				}
				total += int64(len(keys))
			}
			if d.Total() != total {
				t.Errorf("Total = %d, want %d", d.Total(), total)
			}
			cases := matchesOf(t, d, "cases").Locations[0]
			var mentions []string
			for _, i := range cases.Mentions {
				mentions = append(mentions, cases.Keys[i])
			}
			if want := sorted(incident(6), incident(7)); !slices.Equal(mentions, want) {
				t.Errorf("cases that only mention the subject: %v, want %v", mentions, want)
			}
			// The decoys reached Go as candidates of the coarse filter and
			// were rejected there: the exact checks did the work.
			candidates := map[string]bool{}
			for _, r := range f.Requests() {
				for _, k := range r.Returned {
					candidates[k] = true
				}
			}
			for _, decoy := range []string{
				contact(4),    // same last four digits, another number
				incident(5),   // xmira.okonkwo@… in free text
				incident(8),   // +1 425 555 0142 in free text
				annotation(7), // …@contoso.example.au in free text
				email(4),      // xmira.okonkwo@… in torecipients
			} {
				if !candidates[decoy] {
					t.Errorf("decoy %s was not even a candidate; the test does not exercise the exact check", decoy)
				}
			}
		})
	}
}

func (c *Connector) mustTable(t *testing.T, name string) *Table {
	t.Helper()
	tb, err := c.table(name)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestDiscoverQueries(t *testing.T) {
	c, f, _, _ := setup(t, 5)
	if _, err := c.Discover(context.Background(), subject); err != nil {
		t.Fatal(err)
	}
	reqs := f.Requests()
	// The first request: contacts by identifiers, exactly.
	first := reqs[0]
	wantFilter := "emailaddress1 eq 'mira.okonkwo@contoso.example' or emailaddress2 eq 'mira.okonkwo@contoso.example'" +
		" or contains(telephone1,'0142') or contains(telephone1,'01 42') or contains(telephone1,'01.42') or contains(telephone1,'01-42')" +
		" or contains(mobilephone,'0142') or contains(mobilephone,'01 42') or contains(mobilephone,'01.42') or contains(mobilephone,'01-42')" +
		" or contactid eq " + contact(9)
	if first.Method != "GET" || first.Set != "contacts" || first.Filter != wantFilter {
		t.Errorf("first request %s %s $filter\n %s\nwant\n %s", first.Method, first.Set, first.Filter, wantFilter)
	}
	if first.Select != "contactid,emailaddress1,emailaddress2,telephone1,mobilephone" {
		t.Errorf("first $select = %q", first.Select)
	}
	if first.Prefer != "odata.maxpagesize=5" {
		t.Errorf("Prefer = %q", first.Prefer)
	}
	// Paging was followed: more matching cases than one page.
	paged, relationChunks := 0, 0
	for _, r := range reqs {
		if r.SkipToken != "" {
			paged++
		}
		if r.Set == "annotations" && strings.Contains(r.Filter, "_objectid_value eq ") {
			relationChunks++
			if r.Terms > 25 {
				t.Errorf("annotations query with %d terms", r.Terms)
			}
		}
	}
	if paged == 0 {
		t.Error("no nextLink was followed")
	}
	// 36 cases and 4 contacts are referenced by notes: at least two chunks per pass.
	if relationChunks < 2 {
		t.Errorf("relation queries on annotations = %d, want chunks", relationChunks)
	}
	// A relation query sends unquoted GUID literals.
	found := false
	for _, r := range reqs {
		if r.Set == "incidents" && strings.HasPrefix(r.Filter, "_customerid_value eq "+contact(1)+" or _customerid_value eq "+contact(2)) {
			found = true
		}
	}
	if !found {
		t.Error("no incidents query by _customerid_value with GUID literals")
	}
}

func TestDiscoverEncodesQuotes(t *testing.T) {
	c, f, _, _ := setup(t, 5)
	c.cfg.Tables = c.cfg.Tables[:1]
	d, err := c.Discover(context.Background(), sources.Subject{Emails: []string{"o'brien@x.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(d, "contacts"); !slices.Equal(got, []string{contact(6)}) {
		t.Errorf("discovered %v, want O'Brien's contact", got)
	}
	r := f.Requests()[0]
	if want := "emailaddress1 eq 'o''brien@x.com' or emailaddress2 eq 'o''brien@x.com'"; r.Filter != want {
		t.Errorf("$filter = %q, want %q", r.Filter, want)
	}
	wantRaw := "$select=contactid%2Cemailaddress1%2Cemailaddress2" +
		"&$filter=emailaddress1%20eq%20%27o%27%27brien%40x.com%27%20or%20emailaddress2%20eq%20%27o%27%27brien%40x.com%27"
	if r.RawQuery != wantRaw {
		t.Errorf("raw query\n %s\nwant\n %s", r.RawQuery, wantRaw)
	}
}

func TestQueryStringEncoding(t *testing.T) {
	for _, v := range []string{"o'brien@x.com", "a+b&c=d%e f#g@x.com", "ünï'cödé@x.com", "50% off; (a,b)"} {
		f := eqString("emailaddress1", v)
		raw := queryString([]string{"contactid", "emailaddress1"}, f)
		if _, err := dataversetest.ParseQuery(raw); err != nil {
			t.Errorf("%q: raw query %q is not fully encoded: %v", v, raw, err)
		}
		q, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatal(err)
		}
		if q.Get("$filter") != f || q.Get("$select") != "contactid,emailaddress1" || len(q) != 2 {
			t.Errorf("%q: decoded %v", v, q)
		}
		terms, err := dataversetest.ParseFilter(q.Get("$filter"))
		if err != nil || len(terms) != 1 || terms[0].Literal != v {
			t.Errorf("%q: parsed back as %+v, %v", v, terms, err)
		}
	}
	if got := stringLiteral("it's ''"); got != "'it''s '''''" {
		t.Errorf("stringLiteral = %s", got)
	}
}

func TestPhoneTails(t *testing.T) {
	got := phoneTails([]string{"12065550142", "442079460958", "12065550142", "12"})
	want := []string{"0142", "01 42", "01.42", "01-42", "0958", "09 58", "09.58", "09-58"}
	if !slices.Equal(got, want) {
		t.Errorf("phoneTails = %v, want %v", got, want)
	}
}

func TestDiscoverChangedDuringDiscovery(t *testing.T) {
	c, f, _, _ := setup(t, 5)
	var once sync.Once
	f.SetHook(func(r dataversetest.Request) {
		if r.Set == "annotations" {
			// After the first pass read the cases, one of them goes away.
			once.Do(func() { f.Remove("incidents", incident(6)) })
		}
	})
	_, err := c.Discover(context.Background(), subject)
	if !errors.Is(err, sources.ErrChanged) {
		t.Fatalf("err = %v, want ErrChanged", err)
	}
}

func TestBearerToken(t *testing.T) {
	c, f, cred, _ := setup(t, 500)
	if _, err := c.Discover(context.Background(), subject); err != nil {
		t.Fatal(err)
	}
	if n := len(f.Requests()); n < 5 {
		t.Fatalf("only %d requests", n)
	}
	if cred.Calls() != 1 {
		t.Errorf("GetToken called %d times, want 1 (cached)", cred.Calls())
	}
	if want := []string{f.URL() + "/.default"}; !slices.Equal(cred.Scopes()[0], want) {
		t.Errorf("scopes = %v, want %v", cred.Scopes()[0], want)
	}
	// Near expiry the token is renewed.
	cred.SetLifetime(2 * time.Hour)
	c.now = func() time.Time { return time.Now().Add(56 * time.Minute) }
	if _, err := c.Discover(context.Background(), subject); err != nil {
		t.Fatal(err)
	}
	if cred.Calls() != 2 {
		t.Errorf("GetToken called %d times after expiry, want 2", cred.Calls())
	}
	// A wrong token is refused by the server; the error is immediate and
	// the cached token is dropped.
	c.now = time.Now
	f.SetToken("rotated", true)
	f.ResetLog()
	_, err := c.Discover(context.Background(), subject)
	var re *requestError
	if !errors.As(err, &re) || re.status != 401 || len(f.Requests()) != 1 {
		t.Errorf("err = %v after %d requests, want an immediate 401", err, len(f.Requests()))
	}
	cred.SetToken("rotated")
	f.SetToken("rotated", false)
	if _, err := c.Discover(context.Background(), subject); err != nil {
		t.Errorf("after a 401 a new token is fetched: %v", err)
	}
	// A credential failure stops before any request.
	cred.SetError(errors.New("no managed identity"))
	c.mu.Lock()
	c.token = azcore.AccessToken{}
	c.mu.Unlock()
	f.ResetLog()
	if _, err := c.Discover(context.Background(), subject); err == nil || !strings.Contains(err.Error(), "no managed identity") || len(f.Requests()) != 0 {
		t.Errorf("err = %v, requests %d", err, len(f.Requests()))
	}
}

func TestRead(t *testing.T) {
	c, f, _, _ := setup(t, 5)
	d, err := c.Discover(context.Background(), subject)
	if err != nil {
		t.Fatal(err)
	}
	f.ResetLog()
	var recs []sources.Record
	if err := c.Read(context.Background(), matchesOf(t, d, "contacts"), func(r sources.Record) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	keys := keysOf(d, "contacts")
	if len(recs) != len(keys) {
		t.Fatalf("%d records, want %d", len(recs), len(keys))
	}
	for i, r := range recs {
		var names []string
		for _, fl := range r.Fields {
			names = append(names, fl.Name)
		}
		// The select order (key first), not the payload's schema order,
		// and no annotations.
		if want := []string{"contactid", "fullname", "emailaddress1", "telephone1", "mobilephone", "_parentcustomerid_value"}; !slices.Equal(names, want) {
			t.Errorf("record %d fields %v, want %v", i, names, want)
		}
		if r.Fields[0].Value != keys[i] {
			t.Errorf("record %d is %v, want %s (Keys order)", i, r.Fields[0].Value, keys[i])
		}
	}
	b, _ := json.Marshal(recs[0])
	if want := `{"contactid":"` + contact(1) + `","fullname":"Mira Okonkwo","emailaddress1":"Mira.Okonkwo@Contoso.example","telephone1":"+1 (206) 555-0142","mobilephone":null,"_parentcustomerid_value":"` + account1 + `"}`; string(b) != want {
		t.Errorf("record 0 = %s\nwant %s", b, want)
	}
	for _, r := range f.Requests() {
		if r.Method != "GET" || r.Set != "contacts" || !strings.HasPrefix(r.Filter, "contactid eq ") {
			t.Errorf("unexpected read request %+v", r)
		}
	}

	// Selecting every column: payload order, annotations dropped; more
	// records than one page.
	var notes []sources.Record
	if err := c.Read(context.Background(), matchesOf(t, d, "notes"), func(r sources.Record) error {
		notes = append(notes, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	nk := keysOf(d, "notes")
	if len(notes) != len(nk) {
		t.Fatalf("%d notes, want %d", len(notes), len(nk))
	}
	for i, r := range notes {
		if r.Fields[0].Name != "annotationid" || r.Fields[0].Value != nk[i] {
			t.Errorf("note %d = %v, want key %s first", i, r.Fields[0], nk[i])
		}
		for _, fl := range r.Fields {
			if strings.Contains(fl.Name, "@") {
				t.Errorf("note %d keeps annotation %s", i, fl.Name)
			}
		}
	}
	b, _ = json.Marshal(notes[0])
	if want := `{"annotationid":"` + annotation(1) + `","subject":"Call notes","notetext":"Explained the invoice.","filename":null,"_objectid_value":"` + incident(1) + `","objecttypecode":"incident"}`; string(b) != want {
		t.Errorf("note 0 = %s\nwant %s", b, want)
	}

	// More keys than one request may carry: chunks of at most 25 keys,
	// each paged, still in Keys order.
	f.ResetLog()
	var got []any
	if err := c.Read(context.Background(), matchesOf(t, d, "cases"), func(r sources.Record) error {
		got = append(got, r.Fields[0].Value)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := keysOf(d, "cases"); len(got) != len(want) || !slices.EqualFunc(got, want, func(a any, b string) bool { return a == b }) {
		t.Errorf("cases read %v, want %v", got, want)
	}
	chunks := 0
	for _, r := range f.Requests() {
		if r.SkipToken == "" {
			chunks++
		}
	}
	if chunks != 2 {
		t.Errorf("%d read queries for %d cases, want 2 chunks", chunks, len(got))
	}

	// An emit error stops the read and is returned as it is.
	stop := errors.New("stop")
	if err := c.Read(context.Background(), matchesOf(t, d, "notes"), func(sources.Record) error { return stop }); err != stop {
		t.Errorf("emit error: got %v", err)
	}

	// A record gone since discovery: ErrChanged, and nothing of the chunk emitted.
	f.Remove("contacts", contact(8))
	n := 0
	err = c.Read(context.Background(), matchesOf(t, d, "contacts"), func(sources.Record) error { n++; return nil })
	if !errors.Is(err, sources.ErrChanged) || n != 0 {
		t.Errorf("err = %v after %d records, want ErrChanged before any", err, n)
	}

	// Locations from elsewhere are refused.
	bad := matchesOf(t, d, "contacts")
	bad.Locations = []sources.Location{{Blob: "contacts", Keys: []string{"not-a-guid"}}}
	if err := c.Read(context.Background(), bad, func(sources.Record) error { return nil }); err == nil || errors.Is(err, sources.ErrChanged) {
		t.Errorf("bad key: err = %v", err)
	}
	bad.Locations = []sources.Location{{Blob: "accounts", Keys: []string{contact(1)}}}
	if err := c.Read(context.Background(), bad, func(sources.Record) error { return nil }); err == nil {
		t.Error("wrong entity set accepted")
	}
}

func TestRewriteDeletesAndPatchesWithIfMatch(t *testing.T) {
	c, f, _, _ := setup(t, 5)
	d, err := c.Discover(context.Background(), subject)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Erase the emails.
	loc := matchesOf(t, d, "emails").Locations[0]
	etags := map[string]string{}
	for _, k := range loc.Keys {
		etags[k] = f.ETag("emails", k)
	}
	f.ResetLog()
	var ordinals []int64
	res, err := c.Rewrite(ctx, "emails", loc, func(ord int64, rec sources.Record) (*sources.Record, error) {
		ordinals = append(ordinals, ord)
		if rec.Fields[0].Name != "activityid" || rec.Fields[0].Value != loc.Keys[ord] {
			t.Errorf("ordinal %d got record %v", ord, rec.Fields[0])
		}
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res != (sources.RewriteResult{Deleted: 3}) || !slices.Equal(ordinals, []int64{0, 1, 2}) {
		t.Errorf("result %+v, ordinals %v", res, ordinals)
	}
	var methods []string
	for _, r := range f.Requests() {
		methods = append(methods, r.Method)
		if r.Method == "DELETE" && r.IfMatch != etags[r.Key] {
			t.Errorf("DELETE %s If-Match %q, want %q", r.Key, r.IfMatch, etags[r.Key])
		}
	}
	// All reads before the first change.
	if want := []string{"GET", "GET", "GET", "DELETE", "DELETE", "DELETE"}; !slices.Equal(methods, want) {
		t.Errorf("methods %v, want %v", methods, want)
	}
	for _, k := range loc.Keys {
		if f.Row("emails", k) != nil {
			t.Errorf("email %s still exists", k)
		}
	}
	if f.Row("emails", email(2)) == nil || f.Row("emails", email(4)) == nil {
		t.Error("another person's email was deleted")
	}

	// Mask the contacts: only changed columns are patched; an unchanged
	// record is left alone.
	loc = matchesOf(t, d, "contacts").Locations[0]
	before := map[string]string{}
	for _, k := range loc.Keys {
		before[k] = f.ETag("contacts", k)
	}
	f.ResetLog()
	res, err = c.Rewrite(ctx, "contacts", loc, mask)
	if err != nil {
		t.Fatal(err)
	}
	if res != (sources.RewriteResult{Replaced: 4}) {
		t.Errorf("result %+v", res)
	}
	patches := map[string]dataversetest.Request{}
	for _, r := range f.Requests() {
		if r.Method == "PATCH" {
			patches[r.Key] = r
		}
	}
	if got := patches[contact(1)]; got.Body != `{"fullname":"[erased]","emailaddress1":null,"telephone1":null}` || got.IfMatch != before[contact(1)] {
		t.Errorf("PATCH contact 1: body %s If-Match %q (want %q)", got.Body, got.IfMatch, before[contact(1)])
	}
	if got := patches[contact(9)]; got.Body != `{"fullname":"[erased]"}` {
		t.Errorf("PATCH contact 9: body %s", got.Body)
	}
	row := f.Row("contacts", contact(1))
	if row["fullname"] != "[erased]" || row["emailaddress1"] != nil || row["createdon"] == nil {
		t.Errorf("contact 1 after the patch: %v", row)
	}

	// Again: everything is masked already, so nothing is sent but GETs.
	f.ResetLog()
	res, err = c.Rewrite(ctx, "contacts", loc, mask)
	if err != nil || res != (sources.RewriteResult{}) {
		t.Errorf("second mask: %+v, %v", res, err)
	}
	for _, r := range f.Requests() {
		if r.Method != "GET" {
			t.Errorf("second mask sent %s", r.Method)
		}
	}
}

// mask erases a contact's name, email and phone.
func mask(_ int64, rec sources.Record) (*sources.Record, error) {
	out := sources.Record{Fields: slices.Clone(rec.Fields)}
	for i, fl := range out.Fields {
		switch fl.Name {
		case "fullname":
			out.Fields[i].Value = "[erased]"
		case "emailaddress1", "telephone1":
			out.Fields[i].Value = nil
		}
	}
	return &out, nil
}

func TestRewriteConcurrentChange(t *testing.T) {
	c, f, _, _ := setup(t, 5)
	loc := sources.Location{Blob: "incidents", Keys: []string{incident(1), incident(2)}}
	_, err := c.Rewrite(context.Background(), "cases", loc, func(ord int64, rec sources.Record) (*sources.Record, error) {
		if ord == 1 {
			// Someone edits the case between our GET and our DELETE.
			f.Touch("incidents", incident(2))
		}
		return nil, nil
	})
	if !errors.Is(err, sources.ErrChanged) {
		t.Fatalf("err = %v, want ErrChanged", err)
	}
	if f.Row("incidents", incident(2)) == nil {
		t.Error("the changed record was deleted")
	}
	// A PATCH meets the same check.
	loc = sources.Location{Blob: "contacts", Keys: []string{contact(1)}}
	_, err = c.Rewrite(context.Background(), "contacts", loc, func(ord int64, rec sources.Record) (*sources.Record, error) {
		f.Touch("contacts", contact(1))
		return mask(ord, rec)
	})
	if !errors.Is(err, sources.ErrChanged) {
		t.Fatalf("patch err = %v, want ErrChanged", err)
	}
	if f.Row("contacts", contact(1))["fullname"] != "Mira Okonkwo" {
		t.Error("the changed contact was patched")
	}
}

func TestRewriteRetryIsIdempotent(t *testing.T) {
	c, f, _, _ := setup(t, 5)
	loc := sources.Location{Blob: "incidents", Keys: []string{incident(1), incident(2), incident(3)}}
	del := func(int64, sources.Record) (*sources.Record, error) { return nil, nil }
	// The first attempt dies part way: the second DELETE meets an outage.
	var outage sync.Once
	f.SetHook(func(r dataversetest.Request) {
		if r.Method == "DELETE" && r.Key == incident(2) {
			outage.Do(func() { f.AddFault(dataversetest.Fault{Method: "DELETE", Set: "incidents", Status: 503, Times: -1}) })
		}
	})
	if _, err := c.Rewrite(context.Background(), "cases", loc, del); err == nil {
		t.Fatal("first attempt succeeded despite the outage")
	}
	if f.Row("incidents", incident(1)) != nil || f.Row("incidents", incident(2)) == nil || f.Row("incidents", incident(3)) == nil {
		t.Fatal("the first attempt should have deleted exactly the first case")
	}
	// The outage ends; the retry finishes the work and reports the total.
	f.ClearFaults()
	f.SetHook(nil)
	edits := 0
	res, err := c.Rewrite(context.Background(), "cases", loc, func(o int64, r sources.Record) (*sources.Record, error) { edits++; return del(o, r) })
	if err != nil || res != (sources.RewriteResult{Deleted: 3}) || edits != 2 {
		t.Fatalf("retry: %+v, %v, %d edits", res, err, edits)
	}
	// And once more, after completion: nothing left to do, same result.
	f.ResetLog()
	res, err = c.Rewrite(context.Background(), "cases", loc, func(int64, sources.Record) (*sources.Record, error) {
		t.Error("edit called for a record that is gone")
		return nil, nil
	})
	if err != nil || res != (sources.RewriteResult{Deleted: 3}) {
		t.Errorf("completed retry: %+v, %v", res, err)
	}
	for _, r := range f.Requests() {
		if r.Method != "GET" {
			t.Errorf("completed retry sent %s", r.Method)
		}
	}
	// A record deleted by someone else between our GET and our DELETE is gone too.
	loc = sources.Location{Blob: "incidents", Keys: []string{incident(6)}}
	res, err = c.Rewrite(context.Background(), "cases", loc, func(int64, sources.Record) (*sources.Record, error) {
		f.Remove("incidents", incident(6))
		return nil, nil
	})
	if err != nil || res.Deleted != 1 {
		t.Errorf("delete of a vanished record: %+v, %v", res, err)
	}
}

func TestRewriteRefusesBadEdits(t *testing.T) {
	c, f, _, _ := setup(t, 5)
	loc := sources.Location{Blob: "incidents", Keys: []string{incident(1), incident(2)}}
	cases := map[string]func(int64, sources.Record) (*sources.Record, error){
		"lookup": func(ord int64, rec sources.Record) (*sources.Record, error) {
			if ord == 0 {
				return nil, nil // would delete, but the whole rewrite is refused
			}
			out := sources.Record{Fields: slices.Clone(rec.Fields)}
			for i := range out.Fields {
				if out.Fields[i].Name == "_customerid_value" {
					out.Fields[i].Value = contact(7)
				}
			}
			return &out, nil
		},
		"key": func(ord int64, rec sources.Record) (*sources.Record, error) {
			out := sources.Record{Fields: slices.Clone(rec.Fields)}
			out.Fields[0].Value = incident(99)
			return &out, nil
		},
		"unknown column": func(ord int64, rec sources.Record) (*sources.Record, error) {
			return &sources.Record{Fields: []sources.Field{{Name: "statuscode", Value: 5}}}, nil
		},
		"edit error": func(ord int64, rec sources.Record) (*sources.Record, error) {
			if ord == 1 {
				return nil, errors.New("policy says no")
			}
			return nil, nil
		},
	}
	for name, edit := range cases {
		f.ResetLog()
		_, err := c.Rewrite(context.Background(), "cases", loc, edit)
		if err == nil || errors.Is(err, sources.ErrChanged) {
			t.Errorf("%s: err = %v", name, err)
		}
		if name == "lookup" && !strings.Contains(err.Error(), "lookup column _customerid_value") {
			t.Errorf("lookup: unclear error %v", err)
		}
		for _, r := range f.Requests() {
			if r.Method != "GET" {
				t.Errorf("%s: sent %s despite the refused edit", name, r.Method)
			}
		}
	}
	if f.Row("incidents", incident(1)) == nil {
		t.Error("a refused rewrite deleted a record")
	}
	if _, err := c.Rewrite(context.Background(), "cases", sources.Location{Blob: "incidents", Keys: []string{incident(1), incident(1)}}, nil); err == nil {
		t.Error("duplicate keys accepted")
	}
	if _, err := c.Rewrite(context.Background(), "nope", loc, nil); err == nil {
		t.Error("unknown dataset accepted")
	}
}

// personal is every subject value and fragment that must never appear in
// an error.
var personal = []string{subjectEmail, "mira", "okonkwo", "0142", "206", "contoso", "$filter", "%24", "?", "https://", "/api/data"}

func assertClean(t *testing.T, err error) {
	t.Helper()
	msg := strings.ToLower(err.Error())
	for _, p := range personal {
		if strings.Contains(msg, strings.ToLower(p)) {
			t.Errorf("error %q contains %q", err, p)
		}
	}
	for n := range 200 {
		for _, k := range []string{contact(n), incident(n), annotation(n), email(n)} {
			if strings.Contains(msg, k) {
				t.Errorf("error %q contains a record key", err)
			}
		}
	}
}

func TestThrottlingAndRetries(t *testing.T) {
	ctx := context.Background()
	t.Run("429 Retry-After", func(t *testing.T) {
		c, f, _, sleeps := setup(t, 500)
		f.AddFault(dataversetest.Fault{Method: "GET", Set: "contacts", Status: 429, Header: map[string]string{"Retry-After": "2"}, Times: 1,
			Body: `{"error":{"code":"0x80072322","message":"Number of requests exceeded the limit of 6000 over time window of 300 seconds."}}`})
		d, err := c.Discover(ctx, subject)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(*sleeps, []time.Duration{2 * time.Second}) {
			t.Errorf("sleeps %v, want [2s]", *sleeps)
		}
		if got := keysOf(d, "contacts"); !slices.Equal(got, expected()["contacts"]) {
			t.Errorf("after the retry: %v", got)
		}
	})
	t.Run("Retry-After capped", func(t *testing.T) {
		c, f, _, sleeps := setup(t, 500)
		f.AddFault(dataversetest.Fault{Method: "GET", Status: 429, Header: map[string]string{"Retry-After": "86400"}, Times: 1})
		if _, err := c.Discover(ctx, subject); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(*sleeps, []time.Duration{maxRetryAfter}) {
			t.Errorf("sleeps %v, want [%v]", *sleeps, maxRetryAfter)
		}
	})
	t.Run("503 twice", func(t *testing.T) {
		c, f, _, sleeps := setup(t, 500)
		f.AddFault(dataversetest.Fault{Method: "GET", Set: "incidents", Status: 503, Times: 2})
		if _, err := c.Discover(ctx, subject); err != nil {
			t.Fatal(err)
		}
		s := *sleeps
		if len(s) != 2 || s[0] < 500*time.Millisecond || s[0] > time.Second || s[1] < time.Second || s[1] > 2*time.Second {
			t.Errorf("back-off sleeps %v, want one in [0.5s,1s] then one in [1s,2s]", s)
		}
	})
	t.Run("503 forever", func(t *testing.T) {
		c, f, _, sleeps := setup(t, 500)
		f.AddFault(dataversetest.Fault{Method: "GET", Set: "contacts", Status: 503, Times: -1,
			Body: `{"error":{"code":"0x80040216","message":"Query on emailaddress1 eq 'mira.okonkwo@contoso.example' failed"}}`})
		_, err := c.Discover(ctx, subject)
		if err == nil {
			t.Fatal("no error")
		}
		if n := len(f.Requests()); n != 3 || len(*sleeps) != 2 {
			t.Errorf("%d requests and %d sleeps, want MaxAttempts=3 and 2", n, len(*sleeps))
		}
		t.Logf("error: %v", err)
		for _, want := range []string{"dataset contacts", "GET contacts", "503", "0x80040216", "3 attempts"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		assertClean(t, err)
		if errors.Is(err, sources.ErrChanged) {
			t.Error("an outage is not a change")
		}
	})
	t.Run("network errors", func(t *testing.T) {
		c, f, _, _ := setup(t, 500)
		f.AddFault(dataversetest.Fault{Method: "GET", Set: "contacts", Status: -1, Times: -1})
		_, err := c.Discover(ctx, subject)
		if err == nil {
			t.Fatal("no error")
		}
		if n := len(f.Requests()); n != 3 {
			t.Errorf("%d requests, want 3", n)
		}
		t.Logf("error: %v", err)
		assertClean(t, err)
	})
	t.Run("a record GET with a dropped connection is retried", func(t *testing.T) {
		c, f, _, _ := setup(t, 500)
		f.AddFault(dataversetest.Fault{Method: "GET", Set: "emails", Record: true, Status: -1, Times: 1})
		res, err := c.Rewrite(ctx, "emails", sources.Location{Blob: "emails", Keys: []string{email(1)}}, func(int64, sources.Record) (*sources.Record, error) { return nil, nil })
		if err != nil || res.Deleted != 1 {
			t.Errorf("%+v, %v", res, err)
		}
	})
	t.Run("400 fails at once with the code only", func(t *testing.T) {
		c, f, _, sleeps := setup(t, 500)
		f.AddFault(dataversetest.Fault{Method: "GET", Set: "contacts", Status: 400, Times: -1,
			Body: `{"error":{"code":"0x80060888","message":"Could not find a property named 'mira.okonkwo@contoso.example'."}}`})
		_, err := c.Discover(ctx, subject)
		if err == nil || len(f.Requests()) != 1 || len(*sleeps) != 0 {
			t.Fatalf("err %v after %d requests", err, len(f.Requests()))
		}
		if !strings.Contains(err.Error(), "0x80060888") || !strings.Contains(err.Error(), "400") {
			t.Errorf("error %q lacks status or code", err)
		}
		assertClean(t, err)
	})
	t.Run("a hostile error code is dropped", func(t *testing.T) {
		c, f, _, _ := setup(t, 500)
		f.AddFault(dataversetest.Fault{Method: "GET", Set: "contacts", Status: 403, Times: -1,
			Body: `{"error":{"code":"mira.okonkwo@contoso.example","message":""}}`})
		_, err := c.Discover(ctx, subject)
		if err == nil {
			t.Fatal("no error")
		}
		assertClean(t, err)
	})
	t.Run("cancel while waiting", func(t *testing.T) {
		c, f, _, _ := setup(t, 500)
		c.sleep = httpretry.Sleep // really wait
		f.AddFault(dataversetest.Fault{Method: "GET", Status: 429, Header: map[string]string{"Retry-After": "30"}, Times: -1})
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Discover(cctx, subject)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Errorf("err = %v after %v", err, time.Since(start))
		}
	})
	t.Run("redirects are not followed", func(t *testing.T) {
		c, f, _, _ := setup(t, 500)
		f.AddFault(dataversetest.Fault{Method: "GET", Set: "contacts", Status: 307, Times: -1, Header: map[string]string{"Location": f.URL() + "/elsewhere"}})
		_, err := c.Discover(ctx, subject)
		var re *requestError
		if !errors.As(err, &re) || re.status != 307 || len(f.Requests()) != 1 {
			t.Errorf("err = %v after %d requests, want a 307 error and no second request", err, len(f.Requests()))
		}
	})
	t.Run("412 and 404 are not retried", func(t *testing.T) {
		c, f, _, sleeps := setup(t, 500)
		f.AddFault(dataversetest.Fault{Method: "DELETE", Status: 412, Times: -1})
		_, err := c.Rewrite(ctx, "emails", sources.Location{Blob: "emails", Keys: []string{email(1)}}, func(int64, sources.Record) (*sources.Record, error) { return nil, nil })
		if !errors.Is(err, sources.ErrChanged) || len(*sleeps) != 0 {
			t.Errorf("err %v, sleeps %v", err, *sleeps)
		}
		assertClean(t, err)
	})
}

func TestNextLinkMustStayOnTheEnvironment(t *testing.T) {
	c, f, _, _ := setup(t, 2)
	f.SetNextLinkBase("https://attacker.example")
	_, err := c.Discover(context.Background(), subject)
	if !errors.Is(err, errForeignNextLink) {
		t.Fatalf("err = %v, want the foreign nextLink refused", err)
	}
	for _, r := range f.Requests() {
		if r.SkipToken != "" {
			t.Error("a foreign nextLink was followed")
		}
	}
}

func TestValidate(t *testing.T) {
	good := func() *Config { return testConfig("https://org.crm.dynamics.com", 0) }
	if err := good().Validate(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		mut  func(*Config)
		want string
	}{
		"no url":          {func(c *Config) { c.URL = "" }, "url is required"},
		"http":            {func(c *Config) { c.URL = "http://org.crm.dynamics.com" }, "https"},
		"path":            {func(c *Config) { c.URL = "https://org.crm.dynamics.com/api/data" }, "environment root"},
		"query":           {func(c *Config) { c.URL = "https://org.crm.dynamics.com/?x=1" }, "environment root"},
		"api version":     {func(c *Config) { c.APIVersion = "9.2/../x" }, "apiVersion"},
		"page size":       {func(c *Config) { c.PageSize = 5001 }, "pageSize"},
		"attempts":        {func(c *Config) { c.MaxAttempts = -1 }, "maxAttempts"},
		"region":          {func(c *Config) { c.DefaultPhoneRegion = "USA" }, "defaultPhoneRegion"},
		"no name":         {func(c *Config) { c.Tables[0].Name = "" }, "name is required"},
		"duplicate name":  {func(c *Config) { c.Tables[1].Name = "contacts" }, "used twice"},
		"entity set":      {func(c *Config) { c.Tables[0].EntitySet = "contacts?$top=1" }, `entitySet "contacts?$top=1" is not a simple identifier`},
		"entity set path": {func(c *Config) { c.Tables[0].EntitySet = "contacts(00000000-0000-0000-0000-000000000000)" }, "entitySet"},
		"key":             {func(c *Config) { c.Tables[0].Key = "" }, "key"},
		"select":          {func(c *Config) { c.Tables[0].Select = []string{"fullname,emailaddress1"} }, "select column"},
		"identifier":      {func(c *Config) { c.Tables[0].Identifiers[0].Field = "email address" }, "identifier column"},
		"kind":            {func(c *Config) { c.Tables[0].Identifiers[0].Kind = "ssn" }, "unknown kind"},
		"free text":       {func(c *Config) { c.Tables[1].FreeText = []string{"1description"} }, "freeText column"},
		"relation table":  {func(c *Config) { c.Tables[1].Relations[0].References = "accounts" }, "unknown table"},
		"relation col":    {func(c *Config) { c.Tables[1].Relations[0].Field = "_customerid_value eq x" }, "relation column"},
		"relation ref":    {func(c *Config) { c.Tables[1].Relations[0].ReferencesField = "" }, "relation referencesColumn"},
	}
	for name, tc := range cases {
		cfg := good()
		tc.mut(cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
		}
		if _, nerr := New(cfg, nil, dataversetest.NewCredential("x")); nerr == nil {
			t.Errorf("%s: New accepted an invalid config", name)
		}
	}
	if _, err := New(good(), nil, nil); err == nil {
		t.Error("New accepted a nil credential")
	}
	cfg := good()
	cfg.MaxAttempts = 0
	c, err := New(cfg, nil, dataversetest.NewCredential(""))
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.APIVersion != "9.2" || c.cfg.PageSize != 500 || c.cfg.MaxAttempts != 5 || c.scope != "https://org.crm.dynamics.com/.default" {
		t.Errorf("defaults: %+v scope %s", c.cfg, c.scope)
	}
	if got := c.collectionURL("contacts", "$select=contactid"); got != "https://org.crm.dynamics.com/api/data/v9.2/contacts?$select=contactid" {
		t.Errorf("collection URL %s", got)
	}
}

func TestRetryAfterParsing(t *testing.T) {
	c, err := New(testConfig("https://org.crm.dynamics.com", 0), nil, dataversetest.NewCredential(""))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	c.now = func() time.Time { return now }
	for v, want := range map[string]time.Duration{
		"0": 0, "7": 7 * time.Second, "61": maxRetryAfter, "99999999999999999": maxRetryAfter,
		now.Add(10 * time.Second).Format(http.TimeFormat): 10 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		h := map[string][]string{"Retry-After": {v}}
		if got, ok := c.retryAfter(h); !ok || got != want {
			t.Errorf("Retry-After %q: %v %v, want %v", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "-3", "soon"} {
		if _, ok := c.retryAfter(map[string][]string{"Retry-After": {v}}); ok {
			t.Errorf("Retry-After %q accepted", v)
		}
	}
}

// An edit that changes the record it is given in place (as a simple
// masking function might) is still a change: the columns are patched.
func TestRewriteSeesInPlaceEdits(t *testing.T) {
	c, f, _, _ := setup(t, 5)
	d, err := c.Discover(context.Background(), subject)
	if err != nil {
		t.Fatal(err)
	}
	loc := matchesOf(t, d, "contacts").Locations[0]
	f.ResetLog()
	res, err := c.Rewrite(context.Background(), "contacts", loc, func(_ int64, rec sources.Record) (*sources.Record, error) {
		for i := range rec.Fields {
			if rec.Fields[i].Name == "fullname" {
				rec.Fields[i].Value = "[erased]"
			}
		}
		return &rec, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replaced != len(loc.Keys) {
		t.Errorf("replaced %d of %d records", res.Replaced, len(loc.Keys))
	}
	for _, k := range loc.Keys {
		if got := f.Row("contacts", k)["fullname"]; got != "[erased]" {
			t.Errorf("contact %s fullname %v, want [erased]", k, got)
		}
	}
}
