package dsr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// Personal data used in the bad inputs below; no error may repeat any of it.
const (
	piiEmail = "Ann.Example@Mail.Example.com"
	piiPhone = "+1 415 555 2671"
	piiName  = "Ann Quixotic-Example"
	piiID    = "CUST-7788123"
)

// body builds a submission body from a JSON object literal's members.
func body(members string) []byte { return []byte("{" + members + "}") }

func TestParseSubmissionRejects(t *testing.T) {
	longNote := strings.Repeat("n", 2001)
	longName := strings.Repeat("é", 201)
	huge := body(`"type":"access","subject":{"email":"` + piiEmail + `"},"note":"` + strings.Repeat("x", MaxBodyBytes) + `"`)
	manyIDs := make([]string, 21)
	for i := range manyIDs {
		manyIDs[i] = fmt.Sprintf(`"id%d":"v%d"`, i, i)
	}
	future := testNow.Add(time.Hour).Format(time.RFC3339)

	tests := []struct {
		name   string
		body   []byte
		region string
		status int
		code   string
		field  string
		pii    []string // personal data in the body, never to be echoed
	}{
		{"malformed JSON: truncated", []byte(`{"type":"access","subject":{"email":"` + piiEmail + `"`), "", 400, "malformed-json", "", []string{piiEmail}},
		{"malformed JSON: missing colon", []byte(`{"type" "access","subject":{"email":"` + piiEmail + `"}}`), "", 400, "malformed-json", "", []string{piiEmail}},
		{"malformed JSON: single quotes", []byte(`{'type':'access'}`), "", 400, "malformed-json", "", nil},
		{"malformed JSON: trailing comma", body(`"type":"access","subject":{"email":"` + piiEmail + `"},`), "", 400, "malformed-json", "", []string{piiEmail}},
		{"trailing garbage", []byte(`{"type":"access","subject":{"email":"` + piiEmail + `"}} ` + piiName), "", 400, "malformed-json", "", []string{piiEmail, piiName}},
		{"trailing second object", []byte(`{"type":"access","subject":{"email":"a@example.com"}}{"type":"access"}`), "", 400, "malformed-json", "", nil},
		{"trailing brace", []byte(`{"type":"access","subject":{"email":"a@example.com"}}}`), "", 400, "malformed-json", "", nil},
		{"empty body", []byte(``), "", 400, "empty-body", "", nil},
		{"whitespace body", []byte(" \n\t "), "", 400, "empty-body", "", nil},
		{"array instead of object", []byte(`[{"type":"access","subject":{"email":"` + piiEmail + `"}}]`), "", 400, "wrong-type", "(body)", []string{piiEmail}},
		{"string instead of object", []byte(`"` + piiEmail + `"`), "", 400, "wrong-type", "(body)", []string{piiEmail}},
		{"null instead of object", []byte(`null`), "", 400, "wrong-type", "(body)", nil},
		{"unknown top-level field", body(`"type":"access","subject":{"email":"a@example.com"},"priority":"` + piiName + `"`), "", 400, "unknown-field", "priority", []string{piiName}},
		{"unknown subject field", body(`"type":"access","subject":{"email":"a@example.com","address":"` + piiName + `"}`), "", 400, "unknown-field", "subject.address", []string{piiName}},
		{"unknown field named by personal data", body(`"type":"access","subject":{"email":"a@example.com"},"` + piiEmail + `":1`), "", 400, "unknown-field", "", []string{piiEmail}},
		{"unknown subject field named by personal data", body(`"type":"access","subject":{"` + piiEmail + `":"x"}`), "", 400, "unknown-field", "subject", []string{piiEmail}},
		{"type as number", body(`"type":15,"subject":{"email":"` + piiEmail + `"}`), "", 400, "wrong-type", "type", []string{piiEmail}},
		{"subject as string", body(`"type":"access","subject":"` + piiEmail + `"`), "", 400, "wrong-type", "subject", []string{piiEmail}},
		{"subject as array", body(`"type":"access","subject":["` + piiEmail + `"]`), "", 400, "wrong-type", "subject", []string{piiEmail}},
		{"email as number", body(`"type":"access","subject":{"email":4155552671}`), "", 400, "wrong-type", "subject.email", []string{"4155552671"}},
		{"phone as number", body(`"type":"access","subject":{"phone":14155552671}`), "", 400, "wrong-type", "subject.phone", []string{"14155552671"}},
		{"ids value as number", body(`"type":"access","subject":{"ids":{"crm":7788123}}`), "", 400, "wrong-type", "subject.ids", []string{"7788123"}},
		{"ids as array", body(`"type":"access","subject":{"ids":["` + piiID + `"]}`), "", 400, "wrong-type", "subject.ids", []string{piiID}},
		{"receivedAt date only", body(`"type":"access","subject":{"email":"a@example.com"},"receivedAt":"2026-01-31"`), "", 400, "wrong-type", "receivedAt", nil},
		{"receivedAt not RFC 3339", body(`"type":"access","subject":{"email":"a@example.com"},"receivedAt":"31/01/2026 09:00"`), "", 400, "wrong-type", "receivedAt", nil},
		{"receivedAt impossible date", body(`"type":"access","subject":{"email":"a@example.com"},"receivedAt":"2026-02-30T09:00:00Z"`), "", 400, "wrong-type", "receivedAt", nil},
		{"receivedAt as number", body(`"type":"access","subject":{"email":"a@example.com"},"receivedAt":1767225600`), "", 400, "wrong-type", "receivedAt", nil},
		{"receivedAt holding personal data", body(`"type":"access","subject":{"email":"a@example.com"},"receivedAt":"` + piiEmail + `"`), "", 400, "wrong-type", "receivedAt", []string{piiEmail}},
		{"receivedAt in the future", body(`"type":"access","subject":{"email":"` + piiEmail + `"},"receivedAt":"` + future + `"`), "", 422, "invalid-request", "receivedAt", []string{piiEmail}},
		{"receivedAt before 2016", body(`"type":"access","subject":{"email":"a@example.com"},"receivedAt":"2015-12-31T23:59:59Z"`), "", 422, "invalid-request", "receivedAt", nil},
		{"no identifier: empty subject", body(`"type":"access","subject":{}`), "", 422, "invalid-request", "subject", nil},
		{"no identifier: name only", body(`"type":"access","subject":{"name":"` + piiName + `"}`), "", 422, "invalid-request", "subject", []string{piiName}},
		{"no identifier: empty ids", body(`"type":"access","subject":{"ids":{}}`), "", 422, "invalid-request", "subject", nil},
		{"no subject", body(`"type":"access"`), "", 422, "invalid-request", "subject", nil},
		{"null subject", body(`"type":"access","subject":null`), "", 422, "invalid-request", "subject", nil},
		{"invalid email: no @", body(`"type":"access","subject":{"email":"ann.example.mail.example.com"}`), "", 422, "invalid-request", "subject.email", []string{"ann.example.mail.example.com"}},
		{"invalid email: two @", body(`"type":"access","subject":{"email":"ann@quixote@example.com"}`), "", 422, "invalid-request", "subject.email", []string{"ann@quixote@example.com"}},
		{"invalid email: no local part", body(`"type":"access","subject":{"email":"@quixote-example.com"}`), "", 422, "invalid-request", "subject.email", []string{"quixote-example.com"}},
		{"invalid email: no domain", body(`"type":"access","subject":{"email":"ann.quixote@"}`), "", 422, "invalid-request", "subject.email", []string{"ann.quixote"}},
		{"invalid email: dotless domain", body(`"type":"access","subject":{"email":"ann@localhostquixote"}`), "", 422, "invalid-request", "subject.email", []string{"ann@localhostquixote"}},
		{"invalid email: space inside", body(`"type":"access","subject":{"email":"ann quixote@example.com"}`), "", 422, "invalid-request", "subject.email", []string{"ann quixote"}},
		{"invalid email: empty label", body(`"type":"access","subject":{"email":"ann@quixote..com"}`), "", 422, "invalid-request", "subject.email", []string{"ann@quixote..com"}},
		{"invalid email: hyphen label", body(`"type":"access","subject":{"email":"ann@-quixote.com"}`), "", 422, "invalid-request", "subject.email", []string{"ann@-quixote.com"}},
		{"invalid email: blank", body(`"type":"access","subject":{"email":"   "}`), "", 422, "invalid-request", "subject.email", nil},
		{"invalid email: too long", body(`"type":"access","subject":{"email":"` + strings.Repeat("q", 250) + `@example.com"}`), "", 422, "invalid-request", "subject.email", []string{strings.Repeat("q", 250)}},
		{"invalid phone: letters", body(`"type":"access","subject":{"phone":"call-me-maybe"}`), "", 422, "invalid-request", "subject.phone", []string{"call-me-maybe"}},
		{"invalid phone: too short", body(`"type":"access","subject":{"phone":"+1 415"}`), "", 422, "invalid-request", "subject.phone", []string{"+1 415"}},
		{"invalid phone: unknown country code", body(`"type":"access","subject":{"phone":"+999 4155552671"}`), "", 422, "invalid-request", "subject.phone", []string{"4155552671"}},
		{"national phone with no region", body(`"type":"access","subject":{"phone":"(415) 555-2671"}`), "", 422, "invalid-request", "subject.phone", []string{"(415) 555-2671", "4155552671", "555-2671"}},
		{"unknown type", body(`"type":"deletion","subject":{"email":"` + piiEmail + `"}`), "", 422, "invalid-request", "type", []string{piiEmail}},
		{"upper-case type", body(`"type":"ACCESS","subject":{"email":"a@example.com"}`), "", 422, "invalid-request", "type", nil},
		{"missing type", body(`"subject":{"email":"a@example.com"}`), "", 422, "invalid-request", "type", nil},
		{"lift on an erasure", body(`"type":"erasure","lift":true,"subject":{"email":"` + piiEmail + `"}`), "", 422, "invalid-request", "lift", []string{piiEmail}},
		{"lift as a string", body(`"type":"restriction","lift":"yes","subject":{"email":"a@example.com"}`), "", 400, "wrong-type", "lift", nil},
		{"rectification without the current name", body(`"type":"rectification","subject":{"email":"a@example.com"},"corrections":{"name":"` + piiName + `"}`), "", 422, "invalid-request", "subject.name", []string{piiName}},
		{"rectification without corrections", body(`"type":"rectification","subject":{"email":"a@example.com"}`), "", 422, "invalid-request", "corrections", nil},
		{"rectification of an unknown field", body(`"type":"rectification","subject":{"email":"a@example.com"},"corrections":{"iban":"DE00"}`), "", 422, "invalid-request", "corrections", []string{"DE00"}},
		{"rectification to an invalid email", body(`"type":"rectification","subject":{"email":"a@example.com"},"corrections":{"email":"` + piiEmail + `@"}`), "", 422, "invalid-request", "corrections.email", []string{piiEmail}},
		{"note too long", body(`"type":"access","subject":{"email":"a@example.com"},"note":"` + longNote + `"`), "", 422, "invalid-request", "note", nil},
		{"body over 64 KiB", huge, "", 413, "body-too-large", "", []string{piiEmail}},
		{"invalid UTF-8", []byte("{\"type\":\"access\",\"subject\":{\"name\":\"Ann \xff\xfe\",\"email\":\"a@example.com\"}}"), "", 400, "malformed-json", "", []string{"Ann \xff"}},
		{"id name with spaces", body(`"type":"access","subject":{"ids":{"customer id":"` + piiID + `"}}`), "", 422, "invalid-request", "subject.ids", []string{piiID}},
		{"id name starting with a digit", body(`"type":"access","subject":{"ids":{"1crm":"` + piiID + `"}}`), "", 422, "invalid-request", "subject.ids", []string{piiID}},
		{"empty id value", body(`"type":"access","subject":{"ids":{"crm":""}}`), "", 422, "invalid-request", "subject.ids.crm", nil},
		{"blank id value", body(`"type":"access","subject":{"ids":{"crm":"   "}}`), "", 422, "invalid-request", "subject.ids.crm", nil},
		{"id value too long", body(`"type":"access","subject":{"ids":{"crm":"` + strings.Repeat("7", 257) + `"}}`), "", 422, "invalid-request", "subject.ids.crm", []string{strings.Repeat("7", 257)}},
		{"too many ids", body(`"type":"access","subject":{"ids":{` + strings.Join(manyIDs, ",") + `}}`), "", 422, "invalid-request", "subject.ids", nil},
		{"corrections on an access request", body(`"type":"access","subject":{"email":"a@example.com"},"corrections":{"name":"` + piiName + `"}`), "", 422, "invalid-request", "corrections", []string{piiName}},
		{"name too long", body(`"type":"access","subject":{"email":"a@example.com","name":"` + longName + `"}`), "", 422, "invalid-request", "subject.name", []string{longName, strings.Repeat("é", 10)}},
	}
	if len(tests) < 25 {
		t.Fatalf("only %d cases", len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub, err := ParseSubmission(tc.body, tc.region, testNow)
			if err == nil {
				t.Fatalf("accepted: %+v", sub)
			}
			if sub != nil {
				t.Errorf("returned a submission along with the error")
			}
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %v is not an *InputError", err, err)
			}
			if ie.Status != tc.status || ie.Code != tc.code {
				t.Errorf("status %d code %q, want %d %q (%v)", ie.Status, ie.Code, tc.status, tc.code, err)
			}
			if len(ie.Errors) == 0 {
				t.Fatalf("no field errors: %v", err)
			}
			if ie.Errors[0].Field != tc.field {
				t.Errorf("Errors[0].Field = %q, want %q (%v)", ie.Errors[0].Field, tc.field, err)
			}
			if ie.Title == "" || ie.Errors[0].Detail == "" {
				t.Errorf("empty title or detail: %+v", ie)
			}
			assertNoPersonalData(t, ie, append(tc.pii, subjectValues(tc.body)...))
		})
	}
}

// subjectValues digs the subject's values out of a body that is valid JSON,
// as a second net for the explicit pii lists.
func subjectValues(b []byte) []string {
	var doc struct {
		Subject struct {
			Email, Phone, Name any
			IDs                map[string]any
		}
	}
	if json.Unmarshal(b, &doc) != nil {
		return nil
	}
	var out []string
	for _, v := range []any{doc.Subject.Email, doc.Subject.Phone, doc.Subject.Name} {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	for _, v := range doc.Subject.IDs {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func assertNoPersonalData(t *testing.T, ie *InputError, values []string) {
	t.Helper()
	texts := []string{ie.Error(), ie.Title, ie.Code}
	for _, fe := range ie.Errors {
		texts = append(texts, fe.Detail, fe.Field)
	}
	if b, err := json.Marshal(ie); err == nil {
		texts = append(texts, string(b))
	}
	for _, v := range values {
		v = strings.TrimSpace(v)
		if len(v) < 4 {
			continue
		}
		for _, text := range texts {
			if strings.Contains(strings.ToLower(text), strings.ToLower(v)) {
				t.Errorf("error text %q echoes the submitted value %q", text, v)
			}
		}
	}
}

func TestParseSubmissionAllErrorsReported(t *testing.T) {
	b := body(`"type":"forget-me","subject":{"email":"nope","phone":"nope","name":"` + strings.Repeat("x", 201) + `"},"note":"` + strings.Repeat("n", 2001) + `"`)
	_, err := ParseSubmission(b, "", testNow)
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v", err)
	}
	want := []string{"type", "subject.email", "subject.phone", "subject.name", "note"}
	var got []string
	for _, fe := range ie.Errors {
		got = append(got, fe.Field)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("fields = %v, want %v", got, want)
	}
	if ie.Code != "invalid-request" || ie.Status != http.StatusUnprocessableEntity {
		t.Errorf("code %q status %d", ie.Code, ie.Status)
	}
}

func TestParseSubmissionNationalPhoneHint(t *testing.T) {
	_, err := ParseSubmission(body(`"type":"access","subject":{"phone":"(415) 555-2671"}`), "", testNow)
	if err == nil || !strings.Contains(err.Error(), "international format") {
		t.Errorf("without a region the error should ask for + and a country code: %v", err)
	}
	_, err = ParseSubmission(body(`"type":"access","subject":{"phone":"12"}`), "US", testNow)
	if err == nil || strings.Contains(err.Error(), "international format") {
		t.Errorf("with a region the error should not ask for the international format: %v", err)
	}
}

func TestParseSubmissionAccepts(t *testing.T) {
	received := time.Date(2026, 2, 1, 8, 30, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name       string
		body       []byte
		region     string
		want       Subject
		typ        Type
		receivedAt *time.Time
		note       string
	}{
		{"email trimmed and lower-cased", body(`"type":"access","subject":{"email":"  Ann.Example@Mail.EXAMPLE.com \t"}`), "",
			Subject{Email: "ann.example@mail.example.com"}, TypeAccess, nil, ""},
		{"phone to E.164", body(`"type":"discovery","subject":{"phone":"+1 (415) 555-2671"}`), "",
			Subject{Phone: "+14155552671"}, TypeDiscovery, nil, ""},
		{"international phone ignores region", body(`"type":"access","subject":{"phone":"+44 20 7946 0958"}`), "US",
			Subject{Phone: "+442079460958"}, TypeAccess, nil, ""},
		{"national phone with region US", body(`"type":"access","subject":{"phone":"(415) 555-2671"}`), "US",
			Subject{Phone: "+14155552671"}, TypeAccess, nil, ""},
		{"national phone with lower-case region", body(`"type":"access","subject":{"phone":"415-555-2671"}`), "us",
			Subject{Phone: "+14155552671"}, TypeAccess, nil, ""},
		{"national phone with region GB", body(`"type":"access","subject":{"phone":"020 7946 0958"}`), "GB",
			Subject{Phone: "+442079460958"}, TypeAccess, nil, ""},
		{"ids trimmed, name trimmed", body(`"type":"access","subject":{"ids":{"crm":"  C-1 ","shop.user_id":"42"},"name":"  Ann Example "}`), "",
			Subject{IDs: map[string]string{"crm": "C-1", "shop.user_id": "42"}, Name: "Ann Example"}, TypeAccess, nil, ""},
		{"receivedAt honoured", body(`"type":"access","subject":{"email":"a@example.com"},"receivedAt":"2026-02-01T08:30:00+01:00","note":"by post"`), "",
			Subject{Email: "a@example.com"}, TypeAccess, &received, "by post"},
		{"all identifiers", body(`"type":"discovery","subject":{"email":"A@Example.com","phone":"+14155552671","name":"Ann","ids":{"crm":"1"}}`), "",
			Subject{Email: "a@example.com", Phone: "+14155552671", Name: "Ann", IDs: map[string]string{"crm": "1"}}, TypeDiscovery, nil, ""},
		{"whitespace around the body", []byte("\n  {\"type\":\"access\",\"subject\":{\"email\":\"a@example.com\"}}  \n"), "",
			Subject{Email: "a@example.com"}, TypeAccess, nil, ""},
		{"note at the limit", body(`"type":"access","subject":{"email":"a@example.com"},"note":"` + strings.Repeat("é", 2000) + `"`), "",
			Subject{Email: "a@example.com"}, TypeAccess, nil, strings.Repeat("é", 2000)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSubmission(tc.body, tc.region, testNow)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if s.Type != tc.typ || s.Note != tc.note {
				t.Errorf("type %q note %q", s.Type, s.Note)
			}
			got := *s.Subject
			if got.Email != tc.want.Email || got.Phone != tc.want.Phone || got.Name != tc.want.Name || fmt.Sprint(got.IDs) != fmt.Sprint(tc.want.IDs) {
				t.Errorf("subject = %+v, want %+v", got, tc.want)
			}
			switch {
			case tc.receivedAt == nil && s.ReceivedAt != nil:
				t.Errorf("receivedAt = %s, want none", s.ReceivedAt)
			case tc.receivedAt != nil && (s.ReceivedAt == nil || !s.ReceivedAt.Equal(*tc.receivedAt)):
				t.Errorf("receivedAt = %v, want %s", s.ReceivedAt, tc.receivedAt)
			}
		})
	}
}

func TestParseSubmissionReceivedAtFlowsToDueAt(t *testing.T) {
	s, err := ParseSubmission(body(`"type":"access","subject":{"email":"a@example.com"},"receivedAt":"2026-01-31T10:00:00+01:00"`), "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	st := NewStored(s, NewID(testNow), "api", testNow)
	if want := time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC); !st.ReceivedAt.Equal(want) {
		t.Errorf("ReceivedAt = %s, want %s", st.ReceivedAt, want)
	}
	if want := time.Date(2026, 2, 28, 9, 0, 0, 0, time.UTC); !st.DueAt.Equal(want) {
		t.Errorf("DueAt = %s, want %s", st.DueAt, want)
	}
}

func TestParseSubmissionClockSkew(t *testing.T) {
	// A few minutes ahead is clock skew between the caller and us, not the future.
	ahead := testNow.Add(4 * time.Minute).Format(time.RFC3339)
	if _, err := ParseSubmission(body(`"type":"access","subject":{"email":"a@example.com"},"receivedAt":"`+ahead+`"`), "", testNow); err != nil {
		t.Errorf("receivedAt 4 minutes ahead refused: %v", err)
	}
}

func TestParseSubmissionBodyLimit(t *testing.T) {
	obj := `{"type":"access","subject":{"email":"a@example.com"}}`
	// Pad with whitespace after the object, which is valid JSON.
	exact := []byte(obj + strings.Repeat(" ", MaxBodyBytes-len(obj)))
	if len(exact) != MaxBodyBytes {
		t.Fatalf("built %d bytes", len(exact))
	}
	if _, err := ParseSubmission(exact, "", testNow); err != nil {
		t.Errorf("a body of exactly %d bytes was refused: %v", MaxBodyBytes, err)
	}
	over := append([]byte{' '}, exact...)
	var ie *InputError
	if _, err := ParseSubmission(over, "", testNow); !errors.As(err, &ie) || ie.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("a body of %d bytes: %v", len(over), err)
	}
}

func FuzzParseSubmission(f *testing.F) {
	seeds := []string{
		``,
		`null`,
		`[]`,
		`{}`,
		`{"type":"access","subject":{"email":"Ann@Example.com"}}`,
		`{"type":"discovery","subject":{"phone":"+1 (415) 555-2671","name":"Ann"}}`,
		`{"type":"access","subject":{"phone":"(415) 555-2671"}}`,
		`{"type":"access","subject":{"ids":{"crm":" 42 ","shop.user":"x"}},"receivedAt":"2026-01-31T09:00:00Z","note":"n"}`,
		`{"type":"rectification","subject":{"email":"a@b.co"},"corrections":{"name":"B"}}`,
		`{"type":"erasure","subject":{"email":"a@b.co"}}`,
		`{"type":"access","subject":{"email":"a@b.co"}} trailing`,
		`{"type":"access","subject":{"email":"a@b.co","x":1}}`,
		`{"type":"access","subject":{"email":"a@b.co"},"receivedAt":12}`,
		`{"type":"access","subject":{"email":"a@b.co"},"receivedAt":"2099-01-01T00:00:00Z"}`,
		`{"type":"access","subject":{"ids":{"a b":""}}}`,
		`{"type":"access","subject":{"email":"\u0041@B.CO"}}`,
		"{\"type\":\"access\",\"subject\":{\"name\":\"\xff\"}}",
	}
	for _, s := range seeds {
		f.Add([]byte(s), "")
		f.Add([]byte(s), "US")
	}
	f.Fuzz(func(t *testing.T, b []byte, region string) {
		s, err := ParseSubmission(b, region, testNow)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %v is not an *InputError", err, err)
			}
			switch ie.Status {
			case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
			default:
				t.Fatalf("status %d: %v", ie.Status, err)
			}
			if len(ie.Errors) == 0 || ie.Code == "" {
				t.Fatalf("error without code or field errors: %+v", ie)
			}
			if s != nil {
				t.Fatalf("submission returned with an error")
			}
			return
		}
		if s == nil || s.Subject == nil {
			t.Fatalf("success without a subject: %+v", s)
		}
		sub := s.Subject
		if sub.Email == "" && sub.Phone == "" && len(sub.IDs) == 0 {
			t.Fatalf("success with no identifier: %+v", sub)
		}
		if !s.Type.Supported() {
			t.Fatalf("accepted unsupported type %q", s.Type)
		}
		if sub.Email != "" && (sub.Email != strings.ToLower(strings.TrimSpace(sub.Email))) {
			t.Fatalf("email not normalised: %q", sub.Email)
		}
		if sub.Phone != "" && (sub.Phone[0] != '+' || strings.Trim(sub.Phone[1:], "0123456789") != "") {
			t.Fatalf("phone not E.164: %q", sub.Phone)
		}
		for k, v := range sub.IDs {
			if v == "" || v != strings.TrimSpace(v) {
				t.Fatalf("id %q has value %q", k, v)
			}
		}
		// Normalisation is stable: the normalised submission parses to itself.
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		s2, err := ParseSubmission(again, region, testNow)
		if err != nil {
			t.Fatalf("the normalised submission %s is refused: %v", again, err)
		}
		if fmt.Sprintf("%+v", *s2.Subject) != fmt.Sprintf("%+v", *sub) {
			t.Fatalf("normalising twice changes the subject: %+v then %+v", *sub, *s2.Subject)
		}
	})
}
