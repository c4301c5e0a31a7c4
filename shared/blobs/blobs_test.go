package blobs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/dsr-functions/dsr/shared/blobs"
	"github.com/dsr-functions/dsr/shared/config"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
)

func TestMain(m *testing.M) { os.Exit(azuritetest.Run(m)) }

func TestOpenDevelopmentStorage(t *testing.T) {
	for _, cs := range []string{
		"UseDevelopmentStorage=true",
		"UseDevelopmentStorage=true;",
		" usedevelopmentstorage=TRUE ; ",
	} {
		a, err := blobs.OpenConnectionString(cs)
		if err != nil {
			t.Fatalf("%q: %v", cs, err)
		}
		if got, want := a.Service.URL(), "http://127.0.0.1:10000/devstoreaccount1/"; got != want {
			t.Errorf("%q: service URL %q, want %q", cs, got, want)
		}
	}
	// Open with a Connection holding a connection string goes the same way.
	a, err := blobs.Open(config.Connection{ConnectionString: "UseDevelopmentStorage=true"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Service.URL(); got != "http://127.0.0.1:10000/devstoreaccount1/" {
		t.Errorf("Open: service URL %q", got)
	}
}

func TestOpenConnectionStringEndpoints(t *testing.T) {
	key := blobs.DevelopmentAccountKey
	tests := []struct {
		cs, want string
	}{
		{"DefaultEndpointsProtocol=https;AccountName=dsrprod;AccountKey=" + key + ";EndpointSuffix=core.windows.net", "https://dsrprod.blob.core.windows.net/"},
		{"AccountName=dsrprod;AccountKey=" + key, "https://dsrprod.blob.core.windows.net/"},
		{"DefaultEndpointsProtocol=https;AccountName=dsrcn;AccountKey=" + key + ";EndpointSuffix=core.chinacloudapi.cn", "https://dsrcn.blob.core.chinacloudapi.cn/"},
		{"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + key + ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;", "http://127.0.0.1:10000/devstoreaccount1/"},
		{"accountname=a1;accountkey=" + key + ";blobendpoint=http://localhost:12345/a1/", "http://localhost:12345/a1/"},
	}
	for _, tc := range tests {
		a, err := blobs.OpenConnectionString(tc.cs)
		if err != nil {
			t.Errorf("%q: %v", tc.cs, err)
			continue
		}
		if got := a.Service.URL(); got != tc.want {
			t.Errorf("%q: service URL %q, want %q", tc.cs, got, tc.want)
		}
	}
}

func TestOpenConnectionStringRefused(t *testing.T) {
	for _, cs := range []string{
		"",
		";;",
		"UseDevelopmentStorage=false",
		"DefaultEndpointsProtocol=https;AccountName=dsrprod;EndpointSuffix=core.windows.net",
		"DefaultEndpointsProtocol=https;AccountName=dsrprod;AccountKey=;EndpointSuffix=core.windows.net",
		"DefaultEndpointsProtocol=https;AccountKey=" + blobs.DevelopmentAccountKey,
		"BlobEndpoint=https://dsrprod.blob.core.windows.net/;SharedAccessSignature=sv=2024-01-01&sig=abc",
		"AccountName=dsrprod;AccountKey=not base64!",
	} {
		if _, err := blobs.OpenConnectionString(cs); err == nil {
			t.Errorf("%q accepted", cs)
		}
	}
	if _, err := blobs.Open(config.Connection{}, nil); err == nil {
		t.Error("Open of an empty connection succeeded")
	}
}

// upload stores data as a block blob and returns nothing; it fails the test on error.
func upload(t *testing.T, a *blobs.Account, container, name string, data []byte) {
	t.Helper()
	_, err := a.Service.NewContainerClient(container).NewBlockBlobClient(name).UploadBuffer(context.Background(), data, &blockblob.UploadBufferOptions{})
	if err != nil {
		t.Fatalf("upload %s: %v", name, err)
	}
}

func status(t *testing.T, method, u string, body []byte, header map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// withQuery returns u with the query parameter k set to v.
func withQuery(t *testing.T, u, k, v string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := p.Query()
	if q.Get(k) == "" {
		t.Fatalf("link %s has no %s parameter", u, k)
	}
	q.Set(k, v)
	p.RawQuery = q.Encode()
	return p.String()
}

func TestSignReadAgainstAzurite(t *testing.T) {
	ctx := context.Background()
	a := azuritetest.Account(t)
	c := azuritetest.Container(t, a, "exports")
	data := make([]byte, 300<<10)
	_, _ = rand.Read(data)
	name := "exports/r019cd79e46000000000000000000/package.zip"
	other := "exports/r019cd79e46000000000000000001/package.zip"
	upload(t, a, c, name, data)
	upload(t, a, c, other, []byte("someone else's export"))

	now := time.Now()
	link, err := a.SignRead(ctx, c, name, 10*time.Minute, "dsr-export-r019cd79e.zip", now)
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(10 * time.Minute).Truncate(time.Second); !link.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt = %s, want %s", link.ExpiresAt, want)
	}
	if !strings.HasPrefix(link.URL, a.Service.URL()+c+"/") {
		t.Errorf("link %s is not under the account and container", link.URL)
	}
	q, _ := url.Parse(link.URL)
	if sp := q.Query().Get("sp"); sp != "r" {
		t.Errorf("permissions sp=%q, want r", sp)
	}

	t.Run("plain GET returns the bytes as an attachment", func(t *testing.T) {
		resp, err := http.Get(link.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, got)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("got %d bytes that differ from the %d uploaded", len(got), len(data))
		}
		if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="dsr-export-r019cd79e.zip"` {
			t.Errorf("Content-Disposition = %q", cd)
		}
	})

	sig := q.Query().Get("sig")
	flipped := []byte(sig)
	if flipped[0] == 'A' {
		flipped[0] = 'B'
	} else {
		flipped[0] = 'A'
	}
	otherURL := a.Service.NewContainerClient(c).NewBlobClient(other).URL() + "?" + q.RawQuery
	farFuture := time.Now().Add(30 * 24 * time.Hour).UTC().Format("2006-01-02T15:04:05Z")
	refused := []struct {
		name   string
		method string
		url    string
		body   []byte
		header map[string]string
	}{
		{"signature altered", http.MethodGet, withQuery(t, link.URL, "sig", string(flipped)), nil, nil},
		{"signature removed", http.MethodGet, strings.Replace(link.URL, "sig=", "xsig=", 1), nil, nil},
		{"permissions widened to rw", http.MethodGet, withQuery(t, link.URL, "sp", "rw"), nil, nil},
		{"expiry extended", http.MethodGet, withQuery(t, link.URL, "se", farFuture), nil, nil},
		{"content disposition changed", http.MethodGet, withQuery(t, link.URL, "rscd", "inline"), nil, nil},
		{"SAS reused on another blob", http.MethodGet, otherURL, nil, nil},
		{"PUT with the read SAS", http.MethodPut, link.URL, []byte("overwritten"), map[string]string{"x-ms-blob-type": "BlockBlob"}},
		{"DELETE with the read SAS", http.MethodDelete, link.URL, nil, nil},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			if got := status(t, tc.method, tc.url, tc.body, tc.header); got != http.StatusForbidden {
				t.Errorf("%s → %d, want 403", tc.method, got)
			}
		})
	}

	// Nothing above changed the blob.
	t.Run("blob intact", func(t *testing.T) {
		resp, err := http.Get(link.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
			t.Errorf("after the refused requests: status %d, %d bytes", resp.StatusCode, len(got))
		}
	})
}

func TestSignReadOddBlobNames(t *testing.T) {
	ctx := context.Background()
	a := azuritetest.Account(t)
	c := azuritetest.Container(t, a, "odd")
	for _, name := range []string{
		"exports/with space/package (1).zip",
		"exports/ünïcødé/paket.zip",
		"exports/a+b&c=d/x.zip",
	} {
		data := []byte("content of " + name)
		upload(t, a, c, name, data)
		link, err := a.SignRead(ctx, c, name, time.Minute, "export.zip", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(link.URL)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
			t.Errorf("%q: status %d body %q", name, resp.StatusCode, got)
		}
	}
}

func TestSignReadExpires(t *testing.T) {
	ctx := context.Background()
	a := azuritetest.Account(t)
	c := azuritetest.Container(t, a, "expiry")
	upload(t, a, c, "p.zip", []byte("short-lived"))
	const ttl = 2 * time.Second
	signed := time.Now()
	link, err := a.SignRead(ctx, c, "p.zip", ttl, "p.zip", signed)
	if err != nil {
		t.Fatal(err)
	}
	// Fresh, the link works (checked only while clearly before the
	// whole-second expiry, so a slow machine cannot make this flaky).
	if time.Until(link.ExpiresAt) > 300*time.Millisecond {
		if got := status(t, http.MethodGet, link.URL, nil, nil); got != http.StatusOK && time.Now().Before(link.ExpiresAt) {
			t.Fatalf("fresh link → %d, want 200", got)
		}
	}
	// Azurite's expiry has whole-second resolution and no skew: wait TTL + 1 s.
	time.Sleep(time.Until(signed.Add(ttl + time.Second)))
	if got := status(t, http.MethodGet, link.URL, nil, nil); got != http.StatusForbidden {
		t.Errorf("expired link → %d, want 403", got)
	}
}

func TestSignReadTTLBounds(t *testing.T) {
	a, err := blobs.OpenConnectionString("UseDevelopmentStorage=true")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	for _, ttl := range []time.Duration{0, -time.Second, config.MaxExportLinkTTL + time.Second, 8 * 24 * time.Hour, 30 * 24 * time.Hour} {
		if _, err := a.SignRead(ctx, "c", "b", ttl, "f.zip", now); err == nil {
			t.Errorf("ttl %s accepted", ttl)
		}
	}
	for _, ttl := range []time.Duration{time.Second, time.Hour, config.MaxExportLinkTTL} {
		link, err := a.SignRead(ctx, "c", "b", ttl, "f.zip", now)
		if err != nil {
			t.Errorf("ttl %s refused: %v", ttl, err)
			continue
		}
		if link.ExpiresAt.After(now.Add(ttl)) || link.ExpiresAt.Before(now.Add(ttl-time.Second)) {
			t.Errorf("ttl %s: expires %s, signed %s", ttl, link.ExpiresAt, now)
		}
	}
}

// A package is stored whole, with its headers and metadata, whether it
// fits in one request (a block or less) or is staged block by block; a
// package whose reader fails leaves no blob.
func TestPackagesPut(t *testing.T) {
	ctx := context.Background()
	a := azuritetest.Account(t)
	p := &blobs.Packages{Account: a, Container: azuritetest.Container(t, a, "exports")}
	for _, size := range []int{0, 100, 4 << 20, 4<<20 + 1, 9<<20 + 7} {
		data := make([]byte, size)
		rand.Read(data)
		name := fmt.Sprintf("r%d/pkg.zip", size)
		// A reader that hands out odd-sized pieces, as a pipe does.
		if err := p.Put(ctx, name, "pkg.zip", iotest.OneByteReader(bytes.NewReader(data)), map[string]string{"requestid": "r1"}); err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		props, err := a.Service.NewContainerClient(p.Container).NewBlobClient(name).GetProperties(ctx, nil)
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		var requestID string
		for k, v := range props.Metadata { // keys come back in any case
			if strings.EqualFold(k, "requestid") && v != nil {
				requestID = *v
			}
		}
		if *props.ContentType != "application/zip" || *props.ContentDisposition != `attachment; filename="pkg.zip"` || requestID != "r1" {
			t.Errorf("%d bytes: type %q, disposition %q, request id %q", size, *props.ContentType, *props.ContentDisposition, requestID)
		}
		r, err := p.Open(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%d bytes: read back %d bytes, %v", size, len(got), err)
		}
	}
	for _, size := range []int64{10, 5 << 20} {
		name := fmt.Sprintf("failed%d/pkg.zip", size)
		broken := io.MultiReader(io.LimitReader(rand.Reader, size), iotest.ErrReader(errors.New("disk full")))
		if err := p.Put(ctx, name, "pkg.zip", broken, nil); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("a reader failing after %d bytes: %v", size, err)
		}
		if _, err := a.Service.NewContainerClient(p.Container).NewBlobClient(name).GetProperties(ctx, nil); !bloberror.HasCode(err, bloberror.BlobNotFound) {
			t.Errorf("a reader failing after %d bytes left a blob: %v", size, err)
		}
	}
}
