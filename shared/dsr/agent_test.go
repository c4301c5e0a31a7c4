package dsr

import (
	"errors"
	"strings"
	"testing"
)

// An agent's fields are checked one by one, each error naming its field
// and never repeating what was sent.
func TestParseSubmissionAgentRejects(t *testing.T) {
	tests := []struct {
		name   string
		agent  string
		fields []string
		status int
	}{
		{"no name", `{"email":"` + piiEmail + `"}`, []string{"agent.name"}, 422},
		{"blank name", `{"name":"   ","email":"agent@example.org"}`, []string{"agent.name"}, 422},
		{"no email", `{"name":"` + piiName + `"}`, []string{"agent.email"}, 422},
		{"bad email", `{"name":"` + piiName + `","email":"not-an-address"}`, []string{"agent.email"}, 422},
		{"long name", `{"name":"` + strings.Repeat("é", 201) + `","email":"agent@example.org"}`, []string{"agent.name"}, 422},
		{"long relationship", `{"name":"A","email":"agent@example.org","relationship":"` + strings.Repeat("r", 201) + `"}`, []string{"agent.relationship"}, 422},
		{"a proof described by the caller", `{"name":"A","email":"agent@example.org","proof":{"contentType":"application/pdf","bytes":1,"sha256":"x","uploadedAt":"2026-01-01T00:00:00Z"}}`, []string{"agent.proof"}, 422},
		{"everything wrong", `{"name":"","email":"x","relationship":"` + strings.Repeat("r", 201) + `"}`, []string{"agent.name", "agent.email", "agent.relationship"}, 422},
		{"unknown field", `{"name":"A","email":"agent@example.org","phone":"` + piiPhone + `"}`, []string{"agent.phone"}, 400},
		{"not an object", `"` + piiEmail + `"`, []string{"agent"}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSubmission(body(`"type":"access","subject":{"email":"subject@example.org"},"agent":`+tt.agent), "", testNow)
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v", err)
			}
			var got []string
			for _, fe := range ie.Errors {
				got = append(got, fe.Field)
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") || ie.Status != tt.status {
				t.Errorf("fields %v status %d, want %v %d", got, ie.Status, tt.fields, tt.status)
			}
			for _, v := range []string{piiEmail, piiName, piiPhone, "not-an-address"} {
				if strings.Contains(ie.Error(), v) {
					t.Errorf("error %q echoes %q", ie.Error(), v)
				}
			}
		})
	}
}

// A valid agent is normalised and carried onto the stored request, which
// gets its own copy.
func TestParseSubmissionAgentAccepts(t *testing.T) {
	sub, err := ParseSubmission(body(`"type":"erasure","subject":{"email":"Subject@Example.org"},"agent":{"name":"  Sam Agent ","email":" Sam@Agent.Example ","relationship":" daughter "}`), "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	want := Agent{Name: "Sam Agent", Email: "sam@agent.example", Relationship: "daughter"}
	if sub.Agent == nil || *sub.Agent != want {
		t.Fatalf("agent %+v, want %+v", sub.Agent, want)
	}
	if sub.Subject.Email != "subject@example.org" {
		t.Errorf("subject %q", sub.Subject.Email)
	}
	st := NewStored(sub, NewID(testNow), "portal", testNow)
	if st.Agent == nil || *st.Agent != want || st.Agent == sub.Agent {
		t.Errorf("stored agent %+v (shared with the submission: %v)", st.Agent, st.Agent == sub.Agent)
	}
	plain, err := ParseSubmission(body(`"type":"access","subject":{"email":"a@example.org"}`), "", testNow)
	if err != nil || plain.Agent != nil || NewStored(plain, NewID(testNow), "portal", testNow).Agent != nil {
		t.Errorf("a submission without an agent has one: %v", err)
	}
}

// A line break in an agent's name or relationship would write lines of its
// own into the subject's email: refused.
func TestParseSubmissionAgentControlCharacters(t *testing.T) {
	for _, a := range []string{
		`{"name":"Sam\nClick https://evil.example","email":"sam@agent.example"}`,
		`{"name":"Sam","email":"sam@agent.example","relationship":"lawyer\r\nnew line"}`,
	} {
		_, err := ParseSubmission(body(`"type":"access","subject":{"email":"s@example.org"},"agent":`+a), "", testNow)
		var ie *InputError
		if !errors.As(err, &ie) || len(ie.Errors) != 1 || !strings.HasPrefix(ie.Errors[0].Field, "agent.") {
			t.Errorf("%s: %v", a, err)
		}
	}
}
