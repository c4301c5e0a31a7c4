package functions_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/transmit"
)

// controller is another controller's import endpoint over HTTPS: it
// records every package it receives.
type controller struct {
	srv    *httptest.Server
	status int
	mu     sync.Mutex
	got    []received
}

type received struct {
	header http.Header
	body   []byte
	url    string
}

func newController(t *testing.T, status int) *controller {
	c := &controller{status: status}
	c.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.got = append(c.got, received{header: r.Header.Clone(), body: b, url: "https://example.com:" + c.port() + r.URL.RequestURI()})
		c.mu.Unlock()
		w.WriteHeader(c.status)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *controller) port() string { return c.srv.URL[strings.LastIndex(c.srv.URL, ":")+1:] }

// target is the controller's address under the name its certificate
// carries (example.com).
func (c *controller) target() string { return "https://example.com:" + c.port() + "/dsr/import" }

func (c *controller) received() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// reachable points the app's transmitter at the test controller:
// example.com resolves to the loopback address it listens on, its
// certificate is trusted, and (allow) the name is exempt from the private
// address refusal, as DSR_TRANSMIT_ALLOW_HOSTS does for a private endpoint.
func (h *harness) reachable(c *controller, allow bool) {
	tc, ok := h.app.Service.Transmitter.(*transmit.Client)
	if !ok {
		h.t.Fatal("the app has no transmitter")
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.srv.Certificate())
	tc.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	tc.Resolve = func(_ context.Context, host string) ([]netip.Addr, error) {
		if host != "example.com" {
			return nil, errors.New("no such host")
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	tc.AllowHosts = nil
	if allow {
		tc.AllowHosts = []string{"example.com"}
	}
}

func portabilityRequest(transmitTo string) string {
	s := `{"type":"portability","subject":{"email":"` + sample.DemoEmail + `","ids":{"contactId":"` + sample.DemoContactID + `"}}`
	if transmitTo != "" {
		s += `,"transmitTo":"` + transmitTo + `"`
	}
	return s + "}"
}

// A portability request exports only what she provided (the datasets
// marked provided, their provided fields), as JSON and CSV with a JSON
// Schema each, and sends the same package, signed, to the controller she
// named, once, with the outcome on the request and in the audit trail.
func TestPortabilityExportsProvidedDataAndTransmitsIt(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctl := newController(t, http.StatusAccepted)
	h.reachable(ctl, true)

	doc := h.submit(portabilityRequest(ctl.target()))
	if doc.Type != dsr.TypePortability || doc.TransmitTo != ctl.target() {
		t.Fatalf("new request: %+v", doc)
	}
	done, exp := h.waitTerminal(doc.ID)
	if done.State != dsr.StateCompleted {
		t.Fatalf("ended %s: %+v\n%s", done.State, done.Error, h.logs.String())
	}
	tr := done.Transmission
	if tr == nil || tr.Status != dsr.TransmissionSent || tr.Attempts != 1 || tr.HTTPStatus != http.StatusAccepted || done.FollowUp {
		t.Fatalf("transmission %+v, followUp %v", tr, done.FollowUp)
	}
	var stages []string
	for _, e := range done.History {
		stages = append(stages, string(e.Stage))
	}
	if got := strings.Join(stages, ","); got != "intake,discovery,export,transmission,done" {
		t.Fatalf("route %s", got)
	}

	// Her copy.
	status, zipBytes, _ := download(t, exp.URL)
	if status != 200 {
		t.Fatalf("download: %d", status)
	}
	files := readZip(t, zipBytes)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"data/contacts.csv", "data/contacts.json", "data/surveys.csv", "data/surveys.json", "letter.html", "manifest.json",
		"schemas/contacts.schema.json", "schemas/surveys.schema.json", "summary.txt"}
	if !slices.Equal(names, want) {
		t.Fatalf("package holds %v, want %v (only the datasets she provided)", names, want)
	}
	provided := map[string][]string{}
	for _, d := range h.sources.Datasets {
		if d.Provided != nil {
			provided[d.Name] = d.Provided.Fields
		}
	}
	for _, ds := range []string{"contacts", "surveys"} {
		var recs []map[string]any
		if err := json.Unmarshal(files["data/"+ds+".json"], &recs); err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			t.Fatalf("%s: no records", ds)
		}
		for _, r := range recs {
			for k := range r {
				if !slices.Contains(provided[ds], k) {
					t.Errorf("%s: field %s is not one she provided", ds, k)
				}
			}
		}
		var schema struct {
			Items struct {
				Properties map[string]any `json:"properties"`
			} `json:"items"`
		}
		if err := json.Unmarshal(files["schemas/"+ds+".schema.json"], &schema); err != nil {
			t.Fatal(err)
		}
		for k := range recs[0] {
			if _, ok := schema.Items.Properties[k]; !ok {
				t.Errorf("%s: the schema does not describe field %s", ds, k)
			}
		}
	}
	if strings.Contains(string(files["data/contacts.json"]), sample.DemoContactID) {
		t.Error("the contact id (not provided by her) is in the package")
	}
	if !strings.Contains(string(files["letter.html"]), "Article 20") {
		t.Error("the letter does not say what portability is")
	}

	// The controller got the same bytes, once, and can check who sent them.
	got := ctl.received()
	if len(got) != 1 {
		t.Fatalf("the controller received %d posts, want 1", len(got))
	}
	sum := sha256.Sum256(got[0].body)
	if hex.EncodeToString(sum[:]) != exp.SHA256 || string(got[0].body) != string(zipBytes) {
		t.Fatal("the controller received another package than hers")
	}
	resp, b := h.do("GET", "/api/transmit-key", "", "x-functions-key", "")
	if resp.StatusCode != 200 {
		t.Fatalf("transmit-key: %d %s", resp.StatusCode, b)
	}
	var set struct {
		Keys []transmit.JWK `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("key set %s", b)
	}
	pub, err := base64.RawURLEncoding.DecodeString(set.Keys[0].X)
	if err != nil {
		t.Fatal(err)
	}
	if err := transmit.Verify(ed25519.PublicKey(pub), got[0].header, exp.SHA256, got[0].url, time.Now(), 5*time.Minute); err != nil {
		t.Fatalf("the controller cannot verify the package: %v", err)
	}
	if got[0].header.Get(transmit.HeaderRequest) != doc.ID {
		t.Errorf("request reference %q", got[0].header.Get(transmit.HeaderRequest))
	}

	// Redelivering the transmission stage's message sends nothing again.
	if err := h.app.Service.Transmit(context.Background(), doc.ID, 2); err != nil {
		t.Fatal(err)
	}
	if n := len(ctl.received()); n != 1 {
		t.Fatalf("a redelivery sent the package again (%d posts)", n)
	}
	resp, b = h.do("GET", "/api/requests/"+doc.ID+"/audit", "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), "transmission.sent") {
		t.Fatalf("audit: %d %s", resp.StatusCode, b)
	}
	if strings.Contains(h.logs.String(), sample.DemoEmail) {
		t.Error("her email is in the logs")
	}
}

// Addresses of our own network are refused: as given (422, nothing
// stored), and when a public-looking name resolves to one (the request
// completes with her copy, the transmission refused and marked for follow
// up; the controller never hears from us). A receiver's 4xx is final.
func TestPortabilityRefusesPrivateAddresses(t *testing.T) {
	// Three requests by one person: not held as repeats here.
	h := newHarness(t, harnessOptions{env: map[string]string{"DSR_REPEAT_WINDOW": "0"}})
	before := len(h.blobNames(h.cfg.StateContainer))
	for _, bad := range []string{
		portabilityRequest("https://10.0.0.7/import"),
		portabilityRequest("https://127.0.0.1:8443/import"),
		portabilityRequest("https://169.254.169.254/latest/meta-data"),
		portabilityRequest("https://localhost/import"),
		portabilityRequest("http://controller.example/import"),
		portabilityRequest("https://user:secret@controller.example/import"),
		`{"type":"access","subject":{"email":"` + sample.DemoEmail + `"},"transmitTo":"https://controller.example/import"}`,
	} {
		resp, b := h.do("POST", "/api/requests", bad)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(b), `"transmitTo"`) {
			t.Errorf("%s: %d %s", bad, resp.StatusCode, b)
		}
		if strings.Contains(string(b), "10.0.0.7") || strings.Contains(string(b), "secret") {
			t.Errorf("the answer echoes the address: %s", b)
		}
	}
	if after := len(h.blobNames(h.cfg.StateContainer)); after != before {
		t.Fatalf("refused submissions stored %d blobs", after-before)
	}

	ctl := newController(t, http.StatusOK)
	h.reachable(ctl, false) // example.com resolves to 127.0.0.1, not exempt
	doc := h.submit(portabilityRequest(ctl.target()))
	done, exp := h.waitTerminal(doc.ID)
	if done.State != dsr.StateCompleted || exp.URL == "" {
		t.Fatalf("ended %s, export %+v", done.State, exp)
	}
	if tr := done.Transmission; tr == nil || tr.Status != dsr.TransmissionRefused || !strings.Contains(tr.Error, "private") || !done.FollowUp {
		t.Fatalf("transmission %+v, followUp %v", done.Transmission, done.FollowUp)
	}
	if n := len(ctl.received()); n != 0 {
		t.Fatalf("the private address was reached %d times", n)
	}

	rejecting := newController(t, http.StatusForbidden)
	h.reachable(rejecting, true)
	doc = h.submit(portabilityRequest(rejecting.target()))
	done, _ = h.waitTerminal(doc.ID)
	if tr := done.Transmission; done.State != dsr.StateCompleted || tr == nil || tr.Status != dsr.TransmissionFailed || tr.Attempts != 1 || tr.HTTPStatus != 403 || !done.FollowUp {
		t.Fatalf("403: state %s, transmission %+v", done.State, done.Transmission)
	}
	resp, b := h.do("GET", "/api/requests?followUp=true", "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), doc.ID) {
		t.Fatalf("follow-up list: %d %s", resp.StatusCode, b)
	}
}
