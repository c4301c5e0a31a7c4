package dsr

import (
	"testing"
	"time"
)

func TestDuplicateKey(t *testing.T) {
	for body, want := range map[string]string{
		`{"type":"access","type":"erasure"}`:                        "type",
		`{"subject":{"email":"a@b.example","email":"c@d.example"}}`: "subject.email",
		`{"a":[{"b":1},{"b":2,"b":3}]}`:                             "a[].b",
		`{"a":{"x":1},"b":{"x":1},"a":2}`:                           "a",
		`{"ids":{"ann@x.example":"1","ann@x.example":"2"}}`:         "ids.(key)",
		`{"a":[[{"k":1,"k":1}]]}`:                                   "a[][].k",
		`{"t\u0079pe":"access","type":"erasure"}`:                   "type",
	} {
		if got, ok := DuplicateKey([]byte(body)); !ok || got != want {
			t.Errorf("%s: got %q %v, want %q", body, got, ok, want)
		}
	}
	for _, body := range []string{
		`{"type":"access","subject":{"type":"x","email":"a@b.example"}}`,
		`{"a":[{"b":1},{"b":2}]}`,
		`[{"a":1},{"a":1}]`,
		`{"a":{}}`, `"x"`, `{"a":`, ``,
	} {
		if got, ok := DuplicateKey([]byte(body)); ok {
			t.Errorf("%s: reported %q", body, got)
		}
	}
}

// A submission naming its type twice is refused, not taken by its last key.
func TestParseSubmissionRefusesDuplicateKeys(t *testing.T) {
	_, err := ParseSubmission([]byte(`{"type":"access","subject":{"email":"a@b.example"},"type":"erasure"}`), "", time.Now())
	ie, ok := err.(*InputError)
	if !ok || ie.Status != 400 || ie.Code != "duplicate-key" || ie.Errors[0].Field != "type" {
		t.Fatalf("got %#v", err)
	}
}
