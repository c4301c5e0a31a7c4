package transmit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheckURL(t *testing.T) {
	good := []string{
		"https://controller.example/dsr/import",
		"https://example.com:8443/import?batch=1",
		"https://93.184.216.34/import",
		"https://[2606:2800:220:1:248:1893:25c8:1946]/import",
	}
	for _, u := range good {
		if err := CheckURL(u); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", u, err)
		}
	}
	bad := map[string]string{
		"http://controller.example/x":         "https",
		"ftp://controller.example/x":          "https",
		"/relative":                           "absolute",
		"https://user:pw@controller.example/": "user name",
		"https://controller.example/x#frag":   "fragment",
		"https://10.0.0.1/x":                  "private",
		"https://127.0.0.1/x":                 "private",
		"https://[::1]/x":                     "private",
		"https://169.254.169.254/latest":      "private",
		"https://100.64.1.1/x":                "private",
		"https://[fd00::1]/x":                 "private",
		"https://[::ffff:10.0.0.1]/x":         "private",
		"https://[64:ff9b::a00:1]/x":          "private",
		"https://0.0.0.0/x":                   "private",
		"https://localhost/x":                 "local",
		"https://intranet/x":                  "local",
		"https://db.internal/x":               "local",
		"https://printer.local/x":             "local",
		"https:///x":                          "host",
		"https://controller.example/" + strings.Repeat("a", MaxURLLen): "2048",
	}
	for u, want := range bad {
		err := CheckURL(u)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckURL(%.60q) = %v, want an error mentioning %q", u, err, want)
			continue
		}
		if strings.Contains(err.Error(), "controller.example") || strings.Contains(err.Error(), "10.0.0.1") {
			t.Errorf("CheckURL error repeats the address: %v", err)
		}
	}
}

// receiver is a TLS test controller: it records what it got.
type receiver struct {
	srv      *httptest.Server
	hits     atomic.Int32
	status   int
	header   http.Header
	body     []byte
	location string
}

func newReceiver(t *testing.T, status int) *receiver {
	r := &receiver{status: status}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		r.header = req.Header.Clone()
		r.body, _ = io.ReadAll(req.Body)
		if r.location != "" {
			w.Header().Set("Location", r.location)
		}
		w.WriteHeader(r.status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// target is the receiver's URL under the host name its certificate
// names (example.com), resolved to the loopback address it listens on.
func (r *receiver) target(path string) string {
	return "https://example.com:" + r.srv.URL[strings.LastIndex(r.srv.URL, ":")+1:] + path
}

func (r *receiver) client(t *testing.T, key ed25519.PrivateKey, allow bool, addrs ...string) *Client {
	pool := x509.NewCertPool()
	pool.AddCert(r.srv.Certificate())
	c := &Client{Key: key, TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	if allow {
		c.AllowHosts = []string{"example.com"}
	}
	if len(addrs) == 0 {
		addrs = []string{"127.0.0.1"}
	}
	c.Resolve = func(_ context.Context, host string) ([]netip.Addr, error) {
		if host != "example.com" {
			return nil, errors.New("no such host " + host)
		}
		var out []netip.Addr
		for _, a := range addrs {
			out = append(out, netip.MustParseAddr(a))
		}
		return out, nil
	}
	return c
}

func testKey(t *testing.T) ed25519.PrivateKey {
	k, err := SigningKey("a deployment secret of some length")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pkg(body []byte) Package {
	sum := sha256.Sum256(body)
	return Package{RequestRef: "req-123", Body: bytes.NewReader(body), Bytes: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
}

func TestSendSignsAndStreamsThePackage(t *testing.T) {
	r := newReceiver(t, http.StatusAccepted)
	key := testKey(t)
	body := bytes.Repeat([]byte("PK\x03\x04 zip bytes "), 5000)
	p := pkg(body)
	target := r.target("/dsr/import")
	res, err := r.client(t, key, true).Send(context.Background(), target, p)
	if err != nil {
		t.Fatal(err)
	}
	if res.HTTPStatus != http.StatusAccepted || r.hits.Load() != 1 {
		t.Fatalf("status %d, hits %d", res.HTTPStatus, r.hits.Load())
	}
	if !bytes.Equal(r.body, body) {
		t.Fatalf("receiver got %d bytes, want the %d of the package", len(r.body), len(body))
	}
	if r.header.Get("Content-Type") != "application/zip" || !strings.HasPrefix(r.header.Get(HeaderDigest), "sha-256=:") {
		t.Fatalf("headers %v", r.header)
	}
	pub := key.Public().(ed25519.PublicKey)
	now := time.Now()
	if err := Verify(pub, r.header, p.SHA256, target, now, 5*time.Minute); err != nil {
		t.Fatalf("receiver cannot verify the signature: %v", err)
	}
	// The signature binds the package, the target and the time.
	if Verify(pub, r.header, strings.Repeat("0", 64), target, now, 5*time.Minute) == nil {
		t.Fatal("signature verified for another package")
	}
	if Verify(pub, r.header, p.SHA256, "https://other.example/import", now, 5*time.Minute) == nil {
		t.Fatal("signature verified for another receiver")
	}
	if Verify(pub, r.header, p.SHA256, target, now.Add(time.Hour), 5*time.Minute) == nil {
		t.Fatal("stale signature verified")
	}
	other, _ := SigningKey("another deployment's secret")
	if Verify(other.Public().(ed25519.PublicKey), r.header, p.SHA256, target, now, 5*time.Minute) == nil {
		t.Fatal("signature verified with another key")
	}
	jwk := PublicJWK(key)
	if jwk.Kty != "OKP" || jwk.Crv != "Ed25519" || jwk.Kid != KeyID(pub) || jwk.X == "" {
		t.Fatalf("jwk %+v", jwk)
	}
}

func TestSendRefusesPrivateAddresses(t *testing.T) {
	r := newReceiver(t, http.StatusOK)
	key := testKey(t)
	for name, addrs := range map[string][]string{
		"loopback":          {"127.0.0.1"},
		"private":           {"10.1.2.3"},
		"metadata":          {"169.254.169.254"},
		"one of several":    {"93.184.216.34", "192.168.1.10"},
		"ipv6 unique-local": {"fd12::1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := r.client(t, key, false, addrs...).Send(context.Background(), r.target("/x"), pkg([]byte("zip")))
			if !errors.Is(err, ErrRefused) || !Permanent(err) {
				t.Fatalf("err = %v, want a permanent refusal", err)
			}
			if strings.Contains(err.Error(), "example.com") || strings.Contains(err.Error(), addrs[len(addrs)-1]) {
				t.Fatalf("error names the address: %v", err)
			}
		})
	}
	if n := r.hits.Load(); n != 0 {
		t.Fatalf("the receiver was reached %d times", n)
	}
	for _, u := range []string{"http://example.com/x", "https://127.0.0.1/x", "https://localhost/x"} {
		if _, err := r.client(t, key, true).Send(context.Background(), u, pkg([]byte("zip"))); !errors.Is(err, ErrRefused) {
			t.Errorf("Send(%s) = %v, want refused", u, err)
		}
	}
}

func TestSendDoesNotFollowRedirectsAndClassifiesAnswers(t *testing.T) {
	key := testKey(t)
	followed := newReceiver(t, http.StatusOK)
	r := newReceiver(t, http.StatusFound)
	r.location = followed.srv.URL + "/stolen"
	_, err := r.client(t, key, true).Send(context.Background(), r.target("/x"), pkg([]byte("zip")))
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusFound {
		t.Fatalf("err = %v, want the 302 as an error", err)
	}
	if followed.hits.Load() != 0 {
		t.Fatal("the redirect was followed")
	}
	for status, permanent := range map[int]bool{400: true, 403: true, 404: true, 408: false, 429: false, 500: false, 503: false} {
		r := newReceiver(t, status)
		_, err := r.client(t, key, true).Send(context.Background(), r.target("/x"), pkg([]byte("zip")))
		if err == nil || Permanent(err) != permanent {
			t.Errorf("HTTP %d: err %v, permanent %v, want %v", status, err, Permanent(err), permanent)
		}
	}
}

func TestSigningKeyIsDerivedAndStable(t *testing.T) {
	a, _ := SigningKey("secret one is long enough")
	b, _ := SigningKey("secret one is long enough")
	c, _ := SigningKey("secret two is long enough")
	if !a.Equal(b) || a.Equal(c) {
		t.Fatal("the key must follow the secret, and only the secret")
	}
	if _, err := SigningKey(""); err == nil {
		t.Fatal("empty secret accepted")
	}
}
