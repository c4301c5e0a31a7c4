package notify_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/notify"
)

const (
	addr    = "avery.morgan@contoso.example"
	subject = "Your verification code for request r019a"
)

func valid() notify.Message {
	return notify.Message{To: addr, Subject: subject, Text: "Your code is 492113.", HTML: "<p>Your code is <b>492113</b>.</p>", Key: "r019a:verify:1"}
}

func TestValidate(t *testing.T) {
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid message: %v", err)
	}
	textOnly := valid()
	textOnly.HTML = ""
	htmlOnly := valid()
	htmlOnly.Text = ""
	for _, m := range []notify.Message{textOnly, htmlOnly} {
		if err := m.Validate(); err != nil {
			t.Errorf("one body is enough: %v", err)
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*notify.Message)
	}{
		{"no key", func(m *notify.Message) { m.Key = "" }},
		{"huge key", func(m *notify.Message) { m.Key = strings.Repeat("k", notify.MaxKeyBytes+1) }},
		{"no recipient", func(m *notify.Message) { m.To = "" }},
		{"display name", func(m *notify.Message) { m.To = "Avery Morgan <" + addr + ">" }},
		{"angle brackets", func(m *notify.Message) { m.To = "<" + addr + ">" }},
		{"comment", func(m *notify.Message) { m.To = addr + " (Avery)" }},
		{"two recipients", func(m *notify.Message) { m.To = addr + ",eve@evil.example" }},
		{"two recipients semicolon", func(m *notify.Message) { m.To = addr + ";eve@evil.example" }},
		{"surrounding space", func(m *notify.Message) { m.To = " " + addr }},
		{"CRLF in recipient", func(m *notify.Message) { m.To = addr + "\r\nBcc: eve@evil.example" }},
		{"LF in recipient", func(m *notify.Message) { m.To = addr + "\nBcc:eve@evil.example" }},
		{"NUL in recipient", func(m *notify.Message) { m.To = "avery\x00@contoso.example" }},
		{"no domain", func(m *notify.Message) { m.To = "avery.morgan@" }},
		{"no local part", func(m *notify.Message) { m.To = "@contoso.example" }},
		{"no at", func(m *notify.Message) { m.To = "avery.morgan" }},
		{"dotless domain", func(m *notify.Message) { m.To = "avery@localhost" }},
		{"address literal", func(m *notify.Message) { m.To = "avery@[127.0.0.1]" }},
		{"quoted local part", func(m *notify.Message) { m.To = `"avery morgan"@contoso.example` }},
		{"too long address", func(m *notify.Message) { m.To = strings.Repeat("a", 250) + "@x.example" }},
		{"invalid UTF-8 recipient", func(m *notify.Message) { m.To = "avery\xff@contoso.example" }},
		{"no subject", func(m *notify.Message) { m.Subject = "" }},
		{"blank subject", func(m *notify.Message) { m.Subject = " \t " }},
		{"CRLF in subject", func(m *notify.Message) { m.Subject = "Hi\r\nBcc: eve@evil.example" }},
		{"LF in subject", func(m *notify.Message) { m.Subject = "Hi\nthere" }},
		{"CR in subject", func(m *notify.Message) { m.Subject = "Hi\rthere" }},
		{"NEL in subject", func(m *notify.Message) { m.Subject = "Hi\u0085there" }},
		{"line separator in subject", func(m *notify.Message) { m.Subject = "Hi\u2028there" }},
		{"tab in subject", func(m *notify.Message) { m.Subject = "Hi\tthere" }},
		{"long subject", func(m *notify.Message) { m.Subject = strings.Repeat("s", notify.MaxSubjectBytes+1) }},
		{"invalid UTF-8 subject", func(m *notify.Message) { m.Subject = "caf\xe9" }},
		{"no body", func(m *notify.Message) { m.Text, m.HTML = "", "" }},
		{"blank body", func(m *notify.Message) { m.Text, m.HTML = "\n ", "\t" }},
		{"oversize body", func(m *notify.Message) {
			m.Text = strings.Repeat("x", notify.MaxBodyBytes-10)
			m.HTML = strings.Repeat("y", 11)
		}},
		{"invalid UTF-8 body", func(m *notify.Message) { m.Text = "code \xff" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := valid()
			tc.edit(&m)
			err := m.Validate()
			if !errors.Is(err, notify.ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
			var ne *notify.Error
			if !errors.As(err, &ne) || ne.Ref != notify.KeyRef(m.Key) {
				t.Fatalf("Validate's error is %T %+v, want *notify.Error naming the key's ref", err, err)
			}
			assertNoPersonalData(t, err, m)
		})
	}
	// A body of exactly the cap is fine.
	m := valid()
	m.Text, m.HTML = strings.Repeat("x", notify.MaxBodyBytes), ""
	if err := m.Validate(); err != nil {
		t.Errorf("body of MaxBodyBytes: %v", err)
	}
}

func TestValidAddress(t *testing.T) {
	for _, s := range []string{addr, "a@b.c", "first.last+tag@sub.contoso.example", "o'brien@contoso.example", "AVERY@Contoso.Example"} {
		if !notify.ValidAddress(s) {
			t.Errorf("ValidAddress(%q) = false", s)
		}
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestOperationID(t *testing.T) {
	a := notify.OperationID("r019a:verify:1")
	if !uuidRE.MatchString(a) {
		t.Fatalf("OperationID = %q, not a version-8 RFC-variant UUID", a)
	}
	if b := notify.OperationID("r019a:verify:1"); b != a {
		t.Errorf("not deterministic: %q then %q", a, b)
	}
	seen := map[string]string{}
	for _, k := range []string{"", "r019a:verify:1", "r019a:verify:2", "r019b:verify:1", "r019a:export:1"} {
		id := notify.OperationID(k)
		if !uuidRE.MatchString(id) {
			t.Errorf("OperationID(%q) = %q", k, id)
		}
		if prev, ok := seen[id]; ok {
			t.Errorf("OperationID(%q) = OperationID(%q)", k, prev)
		}
		seen[id] = k
	}
	// Pinned: changing the derivation would give every in-flight key a new
	// Operation-Id (and defeat deduplication across a deployment).
	if got, want := notify.OperationID("r019a:verify:1"), pinnedOperationID; got != want {
		t.Errorf("OperationID changed: %q, was %q", got, want)
	}
}

const pinnedOperationID = "5eb3ff81-0383-8490-ab85-10eb0c3313a8" // checked with Python's hashlib and uuid

func TestKeyRefAndHash(t *testing.T) {
	r := notify.KeyRef("r019a:verify:1")
	if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(r) || r != notify.KeyRef("r019a:verify:1") || r == notify.KeyRef("r019a:verify:2") {
		t.Errorf("KeyRef = %q", r)
	}
	h := notify.KeyHash("r019a:verify:1")
	if len(h) != 64 || !strings.HasPrefix(h, r) {
		t.Errorf("KeyHash = %q, want 64 hex digits starting with KeyRef", h)
	}
}

func TestErrorText(t *testing.T) {
	cause := errors.New("connection reset")
	err := error(&notify.Error{Ref: "0123456789ab", Reason: "status 400", Status: 400, Code: "InvalidRecipient", Kind: notify.ErrRejected, Cause: cause})
	if got, want := err.Error(), "notify: send 0123456789ab: status 400 (InvalidRecipient): rejected: connection reset"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, notify.ErrRejected) || !errors.Is(err, cause) || errors.Is(err, notify.ErrStatusUnknown) {
		t.Error("errors.Is does not see Kind and Cause")
	}
	err = &notify.Error{Ref: "0123456789ab", Reason: "accepted, delivery status unknown after 2m0s", Kind: notify.ErrStatusUnknown}
	if got, want := err.Error(), "notify: send 0123456789ab: accepted, delivery status unknown after 2m0s"; got != want {
		t.Errorf("Error() = %q, want %q (the kind is not repeated)", got, want)
	}
}

// FuzzValidate: whatever passes Validate has single-line headers and one
// plain address; no error quotes the message.
func FuzzValidate(f *testing.F) {
	f.Add(addr, subject, "body", "k")
	f.Add(addr+"\r\nBcc: x@y.z", "s", "b", "k")
	f.Add("A <"+addr+">", "s\n", "", "k")
	f.Fuzz(func(t *testing.T, to, subj, text, key string) {
		m := notify.Message{To: to, Subject: subj, Text: text, Key: key}
		err := m.Validate()
		if err == nil {
			if strings.ContainsAny(to+subj, "\r\n\x00") || strings.Count(to, "@") < 1 || strings.ContainsAny(to, " ,;<>") {
				t.Fatalf("Validate accepted To=%q Subject=%q", to, subj)
			}
			return
		}
		// The text is one of a fixed set: nothing of the message's own.
		if !reasonRE.MatchString(err.Error()) {
			t.Fatalf("unexpected error text %q", err)
		}
	})
}

var reasonRE = regexp.MustCompile(`^notify: send [0-9a-f]{12}: invalid message: (no idempotency key|idempotency key is not UTF-8 of at most 1024 bytes|no recipient|recipient is not a single plain address|no subject|subject is longer than 998 bytes|subject holds control characters, line breaks or invalid UTF-8|no body \(text or HTML\)|body is larger than 1048576 bytes|body is not valid UTF-8)$`)

func assertNoPersonalData(t *testing.T, err error, m notify.Message) {
	t.Helper()
	s := err.Error()
	for _, v := range []string{m.To, m.Subject, m.Text, m.HTML} {
		if len(strings.TrimSpace(v)) >= 4 && strings.Contains(s, v) {
			t.Fatalf("error %q contains message content %q", s, v)
		}
	}
}
