package functions_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sources"
)

// shapesConfig is what an operator would add to the sources config for a
// mail export and a ticket system: identifiers in arrays and nested
// arrays, free text, and replies that hang off tickets.
const shapesConfig = `[
 {"name": "messages", "container": "CONTAINER", "blob": "shapes/messages.ndjson", "format": "ndjson", "key": "id",
  "identifiers": [{"field": "from", "kind": "email"}, {"field": "emails[]", "kind": "email"},
                  {"field": "participants[].email", "kind": "email"}, {"field": "phone", "kind": "phone"}],
  "freeText": ["body"],
  "facts": {"categories": ["messages"], "purposes": ["support"], "retention": "2 years", "source": "mail export"}},
 {"name": "tickets", "container": "CONTAINER", "blob": "shapes/tickets.csv", "format": "csv", "key": "ticket",
  "identifiers": [{"field": "requester", "kind": "email"}],
  "freeText": ["notes"],
  "facts": {"categories": ["tickets"], "purposes": ["support"], "retention": "2 years", "source": "ticket system"}},
 {"name": "ticket-replies", "container": "CONTAINER", "blob": "shapes/replies.ndjson", "format": "ndjson", "key": "id",
  "relations": [{"field": "ticket", "references": "tickets", "referencesField": "ticket"}],
  "facts": {"categories": ["ticket replies"], "purposes": ["support"], "retention": "2 years", "source": "ticket system"}}
]`

// Each line is one shape: "q" records are Quinn's, "m" Marie's, "d" are
// near-miss decoys that must never match either of them.
var shapesMessages = []string{
	`{"id":"q-json-escape","from":"quinn.obrien\u0040fabrikam.example"}`,
	`{"id":"q-json-escape-upper","from":"QUINN\u002EOBRIEN\u0040FABRIKAM.example"}`,
	`{"id":"q-display-name","from":"\"Quinn O'Brien\" <QUINN.OBRIEN@fabrikam.example>"}`,
	`{"id":"q-array","emails":["someone@contoso.example","Quinn.OBrien@fabrikam.example"]}`,
	`{"id":"q-array-of-objects","participants":[{"email":"someone@contoso.example"},{"email":"quinn.obrien@fabrikam.example"}]}`,
	`{"id":"q-html-decimal","body":"Reply to quinn.obrien&#64;fabrikam.example please"}`,
	`{"id":"q-html-hex-named","body":"Reply to quinn.obrien&#x40;fabrikam&period;example"}`,
	`{"id":"q-pasted-json","body":"pasted: {\"email\":\"quinn.obrien\\u0040fabrikam.example\"}"}`,
	`{"id":"q-wrapped","body":"original sender quinn.obrien@fabrikam.\nexample wants a refund"}`,
	`{"id":"q-phone-escaped","body":"rappel au \u002B33 1 23 45 67 89 demain"}`,
	`{"id":"m-dotnet-plus","from":"m.dupont\u002Bsupport@fabrikam.example"}`,
	`{"id":"m-display-name","from":"Marie Dupont <m.dupont+support@fabrikam.example>"}`,
	`{"id":"m-mailto-percent","body":"<a href=\"mailto:m.dupont%2Bsupport@fabrikam.example\">write</a>"}`,
	`{"id":"m-mailto-all-percent","body":"mailto:m.dupont%2Bsupport%40fabrikam.example"}`,
	`{"id":"d-prefix-letter","from":"lquinn.obrien\u0040fabrikam.example"}`,
	`{"id":"d-other-tld","emails":["quinn.obrien@fabrikam.example.au"]}`,
	`{"id":"d-subdomain","body":"quinn.obrien&#64;mail.fabrikam.example"}`,
	`{"id":"d-digit","body":"mailto:quinn.obrien2%40fabrikam.example"}`,
	`{"id":"d-dropped-tag","from":"m.dupont@fabrikam.example"}`,
	`{"id":"d-changed-tag","from":"m.dupont\u002Bsales@fabrikam.example"}`,
	`{"id":"d-namesake","participants":[{"email":"Quinn O'Brien"}],"body":"Quinn O'Brien called about Marie Dupont"}`,
	`{"id":"d-wrapped-tld","body":"quinn.obrien@fabrikam.\nexample.au"}`,
	`{"id":"d-phone-digit","body":"+33 1 23 45 67 88"}`,
	`{"id":"d-phone-truncated","phone":"+33 1 23 45 67"}`,
	`{"id":"d-display-name-only","from":"\"quinn.obrien@fabrikam.example\" <desk@fabrikam.example>"}`,
}

const shapesTickets = "ticket,requester,notes\n" +
	// t1 is someone else's ticket that mentions Quinn across a wrapped line:
	// hers to see; its reply is not.
	"t1,someone@contoso.example,\"Forwarded by the agent; original sender quinn.obrien@fabrikam.\nexample wants a refund\"\n" +
	"t2,Quinn O'Brien <quinn.obrien@fabrikam.example>,ok\n" +
	"t3,someone@contoso.example,\"wrapped decoy quinn.obrien@fabrikam.\nexample.au\"\n" +
	"t4,someone@contoso.example,quinn.obrien&#x40;fabrikam.example asked twice\n"

const shapesReplies = `{"id":"r1","ticket":"t1","text":"refund sent to the requester"}
{"id":"r2","ticket":"t2","text":"answered Quinn"}
{"id":"r3","ticket":"t3","text":"nothing"}
`

func newShapesHarness(t *testing.T) *harness {
	var extra []sources.Dataset
	h := newHarness(t, harnessOptions{editSources: func(c *sources.Config) {
		if err := json.Unmarshal([]byte(strings.ReplaceAll(shapesConfig, "CONTAINER", c.Datasets[0].Container)), &extra); err != nil {
			t.Fatal(err)
		}
		c.Datasets = append(c.Datasets, extra...)
		if err := c.Validate(); err != nil {
			t.Fatalf("the operator's config does not load: %v", err)
		}
	}})
	cc := h.app.Account.Service.NewContainerClient(h.datasets)
	for name, body := range map[string]string{
		"shapes/messages.ndjson": strings.Join(shapesMessages, "\n") + "\n",
		"shapes/tickets.csv":     shapesTickets,
		"shapes/replies.ndjson":  shapesReplies,
	} {
		if _, err := cc.NewBlockBlobClient(name).UploadBuffer(context.Background(), []byte(body), nil); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// ids are the key values of the exported records of a dataset.
func ids(recs []map[string]any, key string) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r[key].(string))
	}
	slices.Sort(out)
	return out
}

func byPrefix(prefix string, all []string) []string {
	var out []string
	for _, s := range all {
		if strings.HasPrefix(s, prefix) {
			out = append(out, strings.Split(s, `"`)[3])
		}
	}
	slices.Sort(out)
	return out
}

// TestIdentifierShapes: an access request finds every record that holds
// the person's identifiers in a shape real exports write them in, and none
// of the near misses; relations run only from her own records.
func TestIdentifierShapes(t *testing.T) {
	h := newShapesHarness(t)
	for _, tc := range []struct {
		name, subject string
		messages      []string
		tickets       []string
		replies       []string
	}{
		{"quinn", `{"email":"Quinn.OBrien@fabrikam.example","phone":"+33 1 23 45 67 89"}`,
			byPrefix(`{"id":"q-`, shapesMessages), []string{"t1", "t2", "t4"}, []string{"r2"}},
		{"marie", `{"email":"m.dupont+support@fabrikam.example"}`,
			byPrefix(`{"id":"m-`, shapesMessages), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := h.submit(`{"type":"access","subject":` + tc.subject + `}`)
			done, exp := h.waitTerminal(doc.ID)
			if done.State != dsr.StateCompleted {
				t.Fatalf("state %s: %+v", done.State, done.Error)
			}
			recs, _, _ := h.exportedRecords(exp)
			if got := ids(recs["messages"], "id"); !slices.Equal(got, tc.messages) {
				t.Errorf("messages: exported %q\nwant %q", got, tc.messages)
			}
			if got := ids(recs["tickets"], "ticket"); !slices.Equal(got, tc.tickets) {
				t.Errorf("tickets: exported %q, want %q", got, tc.tickets)
			}
			if got := ids(recs["ticket-replies"], "id"); !slices.Equal(got, tc.replies) {
				t.Errorf("ticket-replies: exported %q, want %q (r1 hangs off a ticket that only mentions her)", got, tc.replies)
			}
		})
	}
}

// TestErasureMasksMentionsAndKeepsOthersRecords: erasing Quinn deletes her
// own records, masks her mention in someone else's ticket and messages,
// and leaves that ticket's reply and every decoy exactly as they were.
func TestErasureMasksMentionsAndKeepsOthersRecords(t *testing.T) {
	h := newShapesHarness(t)
	cc := h.app.Account.Service.NewContainerClient(h.datasets)
	read := func(name string) string {
		resp, err := cc.NewBlobClient(name).DownloadStream(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	doc := h.submit(`{"type":"erasure","subject":{"email":"quinn.obrien@fabrikam.example","phone":"+33 1 23 45 67 89"}}`)
	h.approveWhenAsked(doc.ID)
	done, _ := h.waitTerminal(doc.ID)
	if done.State != dsr.StateCompleted {
		t.Fatalf("state %s: %+v (verification %+v)", done.State, done.Error, done.Verification)
	}
	if read("shapes/replies.ndjson") != `{"id":"r1","ticket":"t1","text":"refund sent to the requester"}
{"id":"r3","ticket":"t3","text":"nothing"}
` {
		t.Errorf("replies after erasure:\n%s\nwant only r2 (hers) gone", read("shapes/replies.ndjson"))
	}
	rows, err := csv.NewReader(strings.NewReader(read("shapes/tickets.csv"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows[1:] {
		got[r[0]] = r[2]
	}
	want := map[string]string{
		"t1": "[redacted]", // the wrapped mention cannot be cut out alone: the note goes whole
		"t3": "wrapped decoy quinn.obrien@fabrikam.\nexample.au",
		"t4": "[redacted]",
	}
	if !maps2Equal(got, want) {
		t.Errorf("tickets after erasure: %q, want %q (t2 deleted, mentions masked, decoy kept)", got, want)
	}
	after := read("shapes/messages.ndjson")
	for _, line := range shapesMessages {
		id := strings.Split(line, `"`)[3]
		switch {
		case strings.HasPrefix(id, "q-") && (strings.Contains(line, `"body"`)):
			if strings.Contains(after, line) || !strings.Contains(after, `"id":"`+id+`"`) {
				t.Errorf("%s only mentions her: it must stay, with the mention masked", id)
			}
		case strings.HasPrefix(id, "q-"):
			if strings.Contains(after, `"id":"`+id+`"`) {
				t.Errorf("%s is hers: it must be deleted", id)
			}
		default:
			if !strings.Contains(after, line) {
				t.Errorf("%s is not hers: it must stay byte for byte", id)
			}
		}
	}
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
