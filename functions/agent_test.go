package functions_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/textproto"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/sample"
)

// Authorised agents: someone asks on a person's behalf with a proof of
// authority uploaded with the portal's form.

const (
	agentName  = "Sam Agent-Quill"
	agentEmail = "sam.agent@agents.example"
)

// testProof is a small PDF (the portal goes by its first bytes).
var testProof = []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")

// upload is one file of a multipart form.
type upload struct {
	name, contentType string
	data              []byte
}

// multipartForm builds a multipart/form-data body with fields and files
// (a file with no name and no data is the file input with nothing chosen).
func multipartForm(t testing.TB, fields map[string]string, files ...upload) (string, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		hdr := textproto.MIMEHeader{}
		hdr.Set("Content-Disposition", `form-data; name="proof"; filename="`+f.name+`"`)
		hdr.Set("Content-Type", f.contentType)
		w, err := mw.CreatePart(hdr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(f.data)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), b.String()
}

func agentFields(typ, subjectEmail string) map[string]string {
	return map[string]string{"type": typ, "email": subjectEmail, "agentName": agentName, "agentEmail": agentEmail, "agentRelationship": "daughter"}
}

// submitAgent posts the portal's form as an agent, with a PDF, and
// returns the ticket.
func (v *visitor) submitAgent(typ, subjectEmail string) (string, string) {
	v.h.t.Helper()
	ct, body := multipartForm(v.h.t, agentFields(typ, subjectEmail), upload{"power-of-attorney.pdf", "application/pdf", testProof})
	resp, page := v.do("POST", "/api/portal/requests", ct, body)
	if resp.StatusCode != http.StatusAccepted {
		v.h.t.Fatalf("agent submit: %d\n%s", resp.StatusCode, page)
	}
	m := ticketInPage.FindStringSubmatch(page)
	if m == nil {
		v.h.t.Fatalf("no ticket on the page:\n%s", page)
	}
	return m[1], page
}

// signInAs signs p in to the console whatever the landing page shows
// them (without DSR.Read the work queue is refused).
func (h *harness) signInAs(p auth.Principal) *consoleClient {
	h.t.Helper()
	link, err := h.app.Console.LoginURL(h.front.URL, p)
	if err != nil {
		h.t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	cc := &consoleClient{h: h, c: &http.Client{Jar: jar}}
	cc.get(strings.TrimPrefix(link, h.front.URL))
	return cc
}

func idOf(ticket string) string { id, _, _ := strings.Cut(ticket, "."); return id }

// requestCount is how many requests the API lists.
func (h *harness) requestCount() int {
	h.t.Helper()
	resp, b := h.do("GET", "/api/requests?limit=100", "")
	var page struct {
		Items []json.RawMessage `json:"items"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &page) != nil {
		h.t.Fatalf("list: %d %s", resp.StatusCode, b)
	}
	return len(page.Items)
}

// An agent asks with a PDF: the request records the agent and the proof
// (its sniffed type, size and hash), the proof is in the private
// container, the code goes to the subject (never to the agent), whose
// email says who asked for her; the answer has the shape of anyone's; once
// she confirms, the request runs; nothing of either person is logged.
func TestPortalAgentRequest(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	v := h.visitor()
	resp, form := v.do("GET", "/api/portal/", "", "")
	if resp.StatusCode != 200 || !strings.Contains(form, `enctype="multipart/form-data"`) || !strings.Contains(form, `type="file"`) || !strings.Contains(form, "on behalf of someone else") {
		t.Fatalf("the form has no agent part:\n%s", form)
	}
	ticket, page := v.submitAgent("access", sample.DemoEmail)
	for _, s := range []string{sample.DemoEmail, agentEmail, agentName} {
		if strings.Contains(page, s) {
			t.Errorf("the answer repeats %q", s)
		}
	}
	// The same page as anyone's submission, but for who gets the code.
	_, plain := v.form("/api/portal/requests", url.Values{"type": {"access"}, "email": {"someone.else@example.org"}})
	shape := func(p string) string {
		p = regexp.MustCompile(`/api/portal/requests/[^/"]+/`).ReplaceAllString(p, "/api/portal/requests/T/")
		return regexp.MustCompile(`(?s)<div class="alert" role="status">.*?</div>`).ReplaceAllString(p, "NOTICE")
	}
	if shape(page) != shape(plain) {
		t.Errorf("an agent's answer differs from anyone's:\n%s\n---\n%s", page, plain)
	}
	id := idOf(ticket)
	doc, _ := h.get(id)
	sum := sha256.Sum256(testProof)
	a := doc.Agent
	if a == nil || a.Name != agentName || a.Email != agentEmail || a.Relationship != "daughter" || a.Proof == nil ||
		a.Proof.ContentType != "application/pdf" || a.Proof.Bytes != int64(len(testProof)) || a.Proof.SHA256 != hex.EncodeToString(sum[:]) || a.Proof.DeletedAt != nil {
		t.Fatalf("agent on the request: %+v %+v", a, a.Proof)
	}
	if doc.State != dsr.StateAwaitingVerification || doc.History[0].By == nil || doc.History[0].By.Kind != "agent" {
		t.Fatalf("request %s, first entry %+v", doc.State, doc.History[0])
	}
	if names := h.blobNames(h.proofs); len(names) != 1 || names[0] != id+"/proof" {
		t.Fatalf("proofs container: %v", names)
	}
	props, err := h.app.Account.Service.NewContainerClient(h.proofs).NewBlobClient(id+"/proof").GetProperties(context.Background(), nil)
	if err != nil || props.ContentType == nil || *props.ContentType != "application/pdf" {
		t.Fatalf("proof blob: %v", err)
	}
	if n := len(h.mail(agentEmail)); n != 0 {
		t.Fatalf("%d mails to the agent", n)
	}
	mails := h.mail(sample.DemoEmail)
	if len(mails) != 1 || !strings.Contains(mails[0].Text, "on your behalf by "+agentName) || !strings.Contains(mails[0].HTML, agentName) {
		t.Fatalf("the subject's mail does not say who asked: %+v", mails)
	}
	resp, page = v.form("/api/portal/requests/"+ticket+"/verify", url.Values{"code": {h.code(sample.DemoEmail)}})
	if resp.StatusCode != 200 || !strings.Contains(page, "confirmed") {
		t.Fatalf("the subject's code: %d\n%s", resp.StatusCode, page)
	}
	if final, _ := h.waitTerminal(id); final.State != dsr.StateCompleted || final.Agent == nil {
		t.Fatalf("final %s", final.State)
	}
	logs := strings.ToLower(h.logs.String())
	for _, s := range []string{agentEmail, strings.ToLower(agentName), "daughter", sample.DemoEmail} {
		if strings.Contains(logs, s) {
			t.Errorf("%q is in the logs", s)
		}
	}
}

// Refusals: a file that is not a PDF, PNG or JPEG by its content, a proof
// over 5 MiB, a body over the limit, no proof, two files, a bad agent
// address, and a JSON client naming an agent; none stores anything.
func TestPortalAgentRefusals(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	v := h.visitor()
	fields := agentFields("erasure", sample.DemoEmail)
	big := append(bytes.Clone(testProof), bytes.Repeat([]byte("x"), pipeline.MaxProofBytes)...)
	badAgent := agentFields("erasure", sample.DemoEmail)
	badAgent["agentEmail"] = "not-an-address"
	cases := []struct {
		name   string
		fields map[string]string
		files  []upload
		status int
		says   string
		field  string
	}{
		{"HTML renamed .pdf", fields, []upload{{"proof.pdf", "application/pdf", []byte("<!doctype html><script>alert(1)</script>")}}, http.StatusUnsupportedMediaType, "PDF, PNG or JPEG", "proof"},
		{"SVG image", fields, []upload{{"proof.png", "image/png", []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)}}, http.StatusUnsupportedMediaType, "PDF, PNG or JPEG", "proof"},
		{"proof over 5 MiB", fields, []upload{{"proof.pdf", "application/pdf", big}}, http.StatusRequestEntityTooLarge, "at most 5 MB", "proof"},
		{"no file chosen", fields, []upload{{"", "application/octet-stream", nil}}, http.StatusUnprocessableEntity, "add a proof", "proof"},
		{"no file input", fields, nil, http.StatusUnprocessableEntity, "add a proof", "proof"},
		{"two files", fields, []upload{{"a.pdf", "application/pdf", testProof}, {"b.pdf", "application/pdf", testProof}}, http.StatusBadRequest, "", ""},
		{"bad agent address", badAgent, []upload{{"a.pdf", "application/pdf", testProof}}, http.StatusUnprocessableEntity, "your valid email", "agentEmail"},
	}
	for _, tc := range cases {
		ct, body := multipartForm(t, tc.fields, tc.files...)
		resp, page := v.do("POST", "/api/portal/requests", ct, body)
		if resp.StatusCode != tc.status || !strings.Contains(page, tc.says) {
			t.Errorf("%s: %d, want %d saying %q\n%s", tc.name, resp.StatusCode, tc.status, tc.says, page)
			continue
		}
		if tc.field != "" && !regexp.MustCompile(`id="`+tc.field+`"[^>]*aria-invalid="true"|aria-invalid="true"[^>]*id="`+tc.field+`"`).MatchString(page) {
			t.Errorf("%s: %s is not marked invalid", tc.name, tc.field)
		}
		if tc.status != http.StatusBadRequest && (!strings.Contains(page, `value="`+agentName+`"`) || strings.Contains(page, "<!doctype html><script>")) {
			t.Errorf("%s: the form does not keep what was typed, or echoes the file", tc.name)
		}
	}
	// A body over 5 MiB + 16 KiB is cut off whatever it holds.
	ct, body := multipartForm(t, fields, upload{"p.pdf", "application/pdf", append(bytes.Clone(big), make([]byte, 64<<10)...)})
	if resp, _ := v.do("POST", "/api/portal/requests", ct, body); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over the limit: %d", resp.StatusCode)
	}
	// A plain form cannot carry the file; JSON clients cannot either.
	resp, page := v.form("/api/portal/requests", url.Values{"type": {"access"}, "email": {sample.DemoEmail}, "agentName": {agentName}, "agentEmail": {agentEmail}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "add a proof") {
		t.Errorf("an agent in a plain form: %d", resp.StatusCode)
	}
	resp, b := v.do("POST", "/api/portal/requests", "application/json", `{"type":"access","email":"x@example.org","agent":{"name":"A","email":"a@example.org"}}`)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(b, `"proof-required"`) {
		t.Errorf("an agent in JSON: %d %s", resp.StatusCode, b)
	}
	if n := h.requestCount(); n != 0 {
		t.Errorf("refused submissions created %d requests", n)
	}
	if names := h.blobNames(h.proofs); len(names) != 0 {
		t.Errorf("refused submissions stored proofs: %v", names)
	}
	if len(h.mail(sample.DemoEmail)) != 0 || len(h.mail(agentEmail)) != 0 {
		t.Error("refused submissions sent mail")
	}
	// Agents share the limits: the fourth request for one address within
	// the hour is refused, proof or not.
	for range 3 {
		v.submitAgent("access", "limited@example.org")
	}
	ct, body = multipartForm(t, agentFields("access", "limited@example.org"), upload{"p.pdf", "application/pdf", testProof})
	if resp, _ := v.do("POST", "/api/portal/requests", ct, body); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("fourth agent request for one address: %d", resp.StatusCode)
	}
}

// Staff see the agent on the request page and open the proof through the
// console, sandboxed and audited; only those who read or decide requests
// may; the API serves it the same way.
func TestConsoleAgentProof(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	v := h.visitor()
	ticket, _ := v.submitAgent("erasure", sample.DemoEmail)
	id := idOf(ticket)
	reader := h.signIn(staff("Robin", auth.RoleRead))
	resp, page := reader.get("/api/console/requests/" + id)
	link := "/api/console/requests/" + id + "/proof"
	if resp.StatusCode != 200 || !strings.Contains(page, agentName) || !strings.Contains(page, agentEmail) || !strings.Contains(page, "daughter") || !strings.Contains(page, `href="`+link+`"`) {
		t.Fatalf("request page: %d\n%s", resp.StatusCode, page)
	}
	resp, body := reader.get(link)
	want := map[string]string{
		"Content-Type": "application/pdf", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
		"Content-Security-Policy": "sandbox; default-src 'none'",
	}
	for k, val := range want {
		if got := resp.Header.Get(k); got != val {
			t.Errorf("%s: %q, want %q", k, got, val)
		}
	}
	if resp.StatusCode != 200 || body != string(testProof) || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
		t.Fatalf("proof: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Disposition"), body)
	}
	if resp, _ := h.signInAs(staff("Alex", auth.RoleApprove)).get(link); resp.StatusCode != 200 {
		t.Errorf("an approver: %d", resp.StatusCode)
	}
	for _, role := range []auth.Role{auth.RoleSubmit, auth.RoleExport} {
		cc := h.signInAs(staff("Kim", role))
		if resp, body := cc.get(link); resp.StatusCode != http.StatusForbidden || strings.Contains(body, "%PDF") {
			t.Errorf("%s: %d", role, resp.StatusCode)
		}
		if resp, _ := h.do("GET", "/api/requests/"+id+"/proof", "", auth.TestRolesHeader, string(role)); resp.StatusCode != http.StatusForbidden {
			t.Errorf("API as %s: %d", role, resp.StatusCode)
		}
	}
	resp, b := h.do("GET", "/api/requests/"+id+"/proof", "", auth.TestRolesHeader, string(auth.RoleRead))
	if resp.StatusCode != 200 || !bytes.Equal(b, testProof) || resp.Header.Get("Content-Security-Policy") != "sandbox; default-src 'none'" {
		t.Errorf("API: %d %v", resp.StatusCode, resp.Header)
	}
	// Every view is in the audit trail, with who looked.
	resp, b = h.do("GET", "/api/requests/"+id+"/audit", "")
	if n := strings.Count(string(b), `"proof.viewed"`); resp.StatusCode != 200 || n != 3 || !strings.Contains(string(b), "Robin") {
		t.Errorf("audit: %d views in %s", n, b)
	}
	// A request without an agent has no proof.
	plain := h.submit(`{"type":"access","subject":{"email":"` + sample.DemoEmail + `"}}`)
	if resp, _ := h.do("GET", "/api/requests/"+plain.ID+"/proof", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("no proof: %d", resp.StatusCode)
	}
	if resp, _ := reader.get("/api/console/requests/" + plain.ID + "/proof"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("console, no proof: %d", resp.StatusCode)
	}
}

// The sweeper deletes a proof DSR_PROOF_RETENTION after its request
// ended, records and audits it once; the request keeps the proof's facts.
func TestSweeperDeletesProof(t *testing.T) {
	h, clock := sweepHarness(t)
	v := h.visitor()
	ticket, _ := v.submitAgent("access", sample.DemoEmail)
	id := idOf(ticket)
	if resp, b := h.do("POST", "/api/requests/"+id+"/cancel", `{"reason":"the agent withdrew"}`); resp.StatusCode != 200 {
		t.Fatalf("cancel: %d %s", resp.StatusCode, b)
	}
	clock.Advance(h.cfg.ProofRetention - time.Hour)
	h.sweep()
	if names := h.blobNames(h.proofs); len(names) != 1 {
		t.Fatalf("deleted before the retention ended: %v", names)
	}
	clock.Advance(2 * time.Hour)
	h.sweep()
	if names := h.blobNames(h.proofs); len(names) != 0 {
		t.Fatalf("not deleted after the retention: %v", names)
	}
	doc, _ := h.get(id)
	if doc.Agent == nil || doc.Agent.Proof == nil || doc.Agent.Proof.DeletedAt == nil || doc.Agent.Proof.Bytes != int64(len(testProof)) {
		t.Fatalf("deletion not recorded: %+v", doc.Agent)
	}
	h.sweep() // idempotent
	resp, b := h.do("GET", "/api/requests/"+id+"/audit", "")
	if n := strings.Count(string(b), `"proof.deleted"`); resp.StatusCode != 200 || n != 1 {
		t.Errorf("%d proof.deleted entries", n)
	}
	if resp, b := h.do("GET", "/api/requests/"+id+"/proof", ""); resp.StatusCode != http.StatusGone {
		t.Errorf("a deleted proof: %d %s", resp.StatusCode, b)
	}
	// A proof whose request was never created goes after an hour (the
	// pipeline's tests show a younger one stays).
	orphan := dsr.NewID(clock.Now())
	cc := h.app.Account.Service.NewContainerClient(h.proofs)
	if _, err := cc.NewBlockBlobClient(orphan+"/proof").UploadBuffer(context.Background(), testProof, nil); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	h.sweep()
	if names := h.blobNames(h.proofs); len(names) != 0 {
		t.Fatalf("an old orphan stays: %v", names)
	}
}
