package blobs_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/dsr-functions/dsr/shared/blobs"
	"github.com/dsr-functions/dsr/shared/config"
)

// delegationAccountHost is how the SDK learns the account name: from the
// first label of the host, as in Azure (<account>.blob.core.windows.net).
const delegationAccountHost = "devstoreaccount1.blob.localhost"

// TestSignReadUserDelegation runs the production path — an identity-based
// connection, a bearer token, a user delegation SAS over HTTPS — against a
// second Azurite in OAuth mode (which decodes tokens without verifying them).
func TestSignReadUserDelegation(t *testing.T) {
	ctx := context.Background()
	serviceURL, client := startOAuthAzurite(t)

	a, err := blobs.OpenWithOptions(config.Connection{ServiceURI: serviceURL}, fakeTokenCredential{},
		&service.ClientOptions{ClientOptions: policy.ClientOptions{Transport: client}})
	if err != nil {
		t.Fatal(err)
	}

	// Data operations with the bearer token.
	const containerName = "delegation"
	if err := a.EnsureContainers(ctx, containerName); err != nil {
		t.Fatalf("create container with a bearer token (Azurite OAuth mode): %v", err)
	}
	payload := make([]byte, 64<<10)
	_, _ = rand.Read(payload)
	bc := a.Service.NewContainerClient(containerName)
	for _, name := range []string{"exports/a.zip", "exports/other.zip"} {
		if _, err := bc.NewBlockBlobClient(name).UploadBuffer(ctx, payload, &blockblob.UploadBufferOptions{}); err != nil {
			t.Fatalf("upload %s with a bearer token: %v", name, err)
		}
	}

	link, err := a.SignRead(ctx, containerName, "exports/a.zip", time.Hour, "x.zip", time.Now())
	if err != nil {
		t.Fatalf("SignRead with a user delegation key: %v", err)
	}
	u, err := url.Parse(link.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if got := q.Get("spr"); got != "https" {
		t.Errorf("spr = %q, want https (HTTPS only): %s", got, link.URL)
	}
	// A user delegation SAS carries the key's object id; a shared-key one does not.
	if q.Get("skoid") == "" || q.Get("sig") == "" {
		t.Errorf("not a user delegation SAS (skoid/sig missing): %s", link.URL)
	}
	if u.Scheme != "https" || u.Host != delegationAccountHost+":"+u.Port() {
		t.Errorf("link %s is not on https://%s", link.URL, delegationAccountHost)
	}

	// The link works by itself: no Authorization header.
	status, body, hdr := plainGet(t, client, link.URL)
	if status != http.StatusOK {
		t.Fatalf("GET signed link: status %d, body %s", status, snippet(body))
	}
	if !bytes.Equal(body, payload) {
		t.Errorf("GET signed link: got %d bytes, not the uploaded %d", len(body), len(payload))
	}
	if cd := hdr.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") || !strings.Contains(cd, `filename="x.zip"`) {
		t.Errorf("Content-Disposition = %q, want attachment; filename=\"x.zip\"", cd)
	}

	// A tampered signature is refused.
	tq := u.Query()
	sig, _ := base64.StdEncoding.DecodeString(tq.Get("sig"))
	if len(sig) == 0 {
		t.Fatalf("sig %q is not base64", tq.Get("sig"))
	}
	sig[0] ^= 0xff
	tq.Set("sig", base64.StdEncoding.EncodeToString(sig))
	tampered := *u
	tampered.RawQuery = tq.Encode()
	if status, body, _ := plainGet(t, client, tampered.String()); status != http.StatusForbidden {
		t.Errorf("GET with tampered signature: status %d, want 403; body %s", status, snippet(body))
	}

	// The SAS is for one blob only.
	other := *u
	other.Path = strings.TrimSuffix(u.Path, "a.zip") + "other.zip"
	if status, body, _ := plainGet(t, client, other.String()); status != http.StatusForbidden {
		t.Errorf("GET another blob with the SAS: status %d, want 403; body %s", status, snippet(body))
	}

	// Without the SAS there is no access at all.
	bare := *u
	bare.RawQuery = ""
	if status, _, _ := plainGet(t, client, bare.String()); status == http.StatusOK {
		t.Errorf("GET without SAS: status 200, want refusal")
	}

	// A short-lived link works, then expires.
	short, err := a.SignRead(ctx, containerName, "exports/a.zip", 2*time.Second, "x.zip", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if status, body, _ := plainGet(t, client, short.URL); status != http.StatusOK {
		// Expiry is truncated to the second, so the link may have as little
		// as one second: fetched at once, it is still valid.
		t.Errorf("GET 2s link at once: status %d, want 200; body %s", status, snippet(body))
	}
	time.Sleep(time.Until(short.ExpiresAt) + 3*time.Second)
	if status, body, _ := plainGet(t, client, short.URL); status != http.StatusForbidden {
		t.Errorf("GET 2s link after expiry (%s): status %d, want 403; body %s", short.ExpiresAt.Format(time.RFC3339), status, snippet(body))
	}
}

func plainGet(t *testing.T, client *http.Client, u string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", u, err)
	}
	return resp.StatusCode, body, resp.Header
}

// snippet keeps failure messages readable when a body is the blob's bytes.
func snippet(b []byte) string {
	if len(b) > 300 {
		return fmt.Sprintf("%q… (%d bytes)", b[:300], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// fakeTokenCredential returns an unsigned JWT with the claims Azurite checks
// (it decodes tokens but does not verify their signatures).
type fakeTokenCredential struct{}

func (fakeTokenCredential) GetToken(_ context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	now := time.Now()
	exp := now.Add(time.Hour)
	const tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	claims := map[string]any{
		"aud": "https://storage.azure.com",
		"iss": "https://sts.windows.net/" + tenant + "/",
		"iat": now.Add(-time.Minute).Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": exp.Unix(),
		"oid": "11059fcc-5514-4800-b5f8-49808b9cfab6",
		"tid": tenant,
	}
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	token := enc(map[string]string{"alg": "none", "typ": "JWT"}) + "." + enc(claims) + "."
	return azcore.AccessToken{Token: token, ExpiresOn: exp}, nil
}

// startOAuthAzurite starts Azurite's Blob service with OAuth over HTTPS, on
// a self-signed certificate, and returns the product-style service URL and
// an HTTP client that reaches it (any *.localhost host dials 127.0.0.1, the
// certificate is trusted). Azurite is killed when the test ends.
func startOAuthAzurite(t *testing.T) (string, *http.Client) {
	t.Helper()
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			t.Fatal("go.mod not found above the working directory")
		}
		root = parent
	}
	bin := filepath.Join(root, "node_modules", ".bin", "azurite-blob")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not found: run `npm ci` in the repository (or `make test`, which does)", bin)
	}

	dir := t.TempDir()
	certPEM, keyPEM := selfSignedCert(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	cmd := exec.Command(bin, "--oauth", "basic", "--cert", certFile, "--key", keyFile,
		"--skipApiVersionCheck", "--disableTelemetry", "--silent", "--loose",
		"--location", data, "--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port))
	logPath := filepath.Join(dir, "azurite.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start azurite (oauth): %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Registered after t.TempDir, so it runs first: Azurite is gone before
	// its directory is removed.
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	azuriteLog := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("cannot add the generated certificate to the pool")
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	transport := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, p, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if host == "localhost" || strings.HasSuffix(host, ".localhost") {
				addr = net.JoinHostPort("127.0.0.1", p)
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	serviceURL := fmt.Sprintf("https://%s:%d/", delegationAccountHost, port)

	// Wait until Azurite answers over TLS with the generated certificate.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(serviceURL + "?comp=properties&restype=service")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("azurite (oauth, https) exited before listening: %v\n%s", err, azuriteLog())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("azurite (oauth, https) did not answer on %s within 30s: %v\n%s", serviceURL, err, azuriteLog())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return serviceURL, client
}

// selfSignedCert makes a certificate for the product-style account host and
// 127.0.0.1, returned as PEM certificate and PKCS#8 key.
func selfSignedCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: delegationAccountHost},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{delegationAccountHost},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
}
