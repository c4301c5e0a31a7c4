// Package blobs opens the Blob Storage account from settings (a connection
// string, including UseDevelopmentStorage=true for Azurite, or an account
// name with a managed identity) and signs read-only SAS links: with the
// shared key locally, with a user delegation key in Azure.
package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/dsr-functions/dsr/shared/config"
)

// DevelopmentAccountKey is Azurite's well-known, public devstoreaccount1 key.
const DevelopmentAccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

// DevelopmentConnectionString is what UseDevelopmentStorage=true means.
const DevelopmentConnectionString = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + DevelopmentAccountKey + ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"

// Account is an opened storage account.
type Account struct {
	// Service is the account's Blob service client.
	Service *service.Client
	// sharedKey is set for connection strings with a key; nil with identities.
	sharedKey *sas.SharedKeyCredential
	// insecure is true when the endpoint is plain HTTP (Azurite).
	insecure bool

	mu  sync.Mutex
	udc *service.UserDelegationCredential
	// udcExpiry is when the cached user delegation key stops being valid.
	udcExpiry time.Time
}

// Open connects to the account a Connection describes. cred is used for
// identity-based connections; when nil, one is built from the connection's
// clientId (managed identity) or the default Azure credential chain.
func Open(conn config.Connection, cred azcore.TokenCredential) (*Account, error) {
	return OpenWithOptions(conn, cred, nil)
}

// OpenWithOptions is Open with client options (a custom transport, say) for
// identity-based connections; nil means the defaults. Connection strings
// ignore them.
func OpenWithOptions(conn config.Connection, cred azcore.TokenCredential, opts *service.ClientOptions) (*Account, error) {
	if conn.ConnectionString != "" {
		return OpenConnectionString(conn.ConnectionString)
	}
	if conn.ServiceURI == "" {
		return nil, errors.New("storage connection: neither a connection string nor an account name is set")
	}
	if cred == nil {
		var err error
		if cred, err = Credential(conn); err != nil {
			return nil, err
		}
	}
	svc, err := service.NewClient(conn.ServiceURI, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("blob service client: %w", err)
	}
	return &Account{Service: svc, insecure: strings.HasPrefix(conn.ServiceURI, "http:")}, nil
}

// Credential picks the token credential for an identity-based connection: a
// user-assigned managed identity when clientId is set, else the default chain
// (managed identity in Azure, the developer's az/azd login locally).
func Credential(conn config.Connection) (azcore.TokenCredential, error) {
	if conn.ClientID != "" {
		c, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(conn.ClientID)})
		if err != nil {
			return nil, fmt.Errorf("managed identity credential: %w", err)
		}
		return c, nil
	}
	c, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("default azure credential: %w", err)
	}
	return c, nil
}

// OpenConnectionString opens an account from a storage connection string.
// UseDevelopmentStorage=true means the local Azurite emulator.
func OpenConnectionString(cs string) (*Account, error) {
	if strings.EqualFold(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(cs), ";")), "UseDevelopmentStorage=true") {
		cs = DevelopmentConnectionString
	}
	parts := map[string]string{}
	for _, kv := range strings.Split(cs, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok {
			parts[strings.ToLower(k)] = v
		}
	}
	name, key := parts["accountname"], parts["accountkey"]
	if name == "" || key == "" {
		return nil, errors.New("storage connection string: AccountName and AccountKey are required")
	}
	endpoint := parts["blobendpoint"]
	if endpoint == "" {
		proto := parts["defaultendpointsprotocol"]
		if proto == "" {
			proto = "https"
		}
		suffix := parts["endpointsuffix"]
		if suffix == "" {
			suffix = "core.windows.net"
		}
		endpoint = fmt.Sprintf("%s://%s.blob.%s", proto, name, suffix)
	}
	if !strings.HasSuffix(endpoint, "/") {
		endpoint += "/"
	}
	if _, err := url.Parse(endpoint); err != nil {
		return nil, fmt.Errorf("storage connection string: BlobEndpoint: %w", err)
	}
	cred, err := service.NewSharedKeyCredential(name, key)
	if err != nil {
		return nil, fmt.Errorf("storage connection string: %w", err)
	}
	svc, err := service.NewClientWithSharedKeyCredential(endpoint, cred, nil)
	if err != nil {
		return nil, fmt.Errorf("blob service client: %w", err)
	}
	return &Account{Service: svc, sharedKey: cred, insecure: strings.HasPrefix(endpoint, "http:")}, nil
}

// EnsureContainers creates the containers that do not exist yet.
func (a *Account) EnsureContainers(ctx context.Context, names ...string) error {
	for _, n := range names {
		_, err := a.Service.CreateContainer(ctx, n, nil)
		if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
			return fmt.Errorf("create container %s: %w", n, err)
		}
	}
	return nil
}

// ReadLink is a signed, read-only URL for one blob.
type ReadLink struct {
	URL       string
	ExpiresAt time.Time
}

// SignRead returns a read-only SAS URL for one blob, valid for ttl (at most
// config.MaxExportLinkTTL), that makes browsers save it as filename. It uses
// the account key when there is one and a user delegation key otherwise.
// HTTPS only, except against a plain-HTTP endpoint (Azurite).
func (a *Account) SignRead(ctx context.Context, containerName, blobName string, ttl time.Duration, filename string, now time.Time) (ReadLink, error) {
	if ttl <= 0 || ttl > config.MaxExportLinkTTL {
		return ReadLink{}, fmt.Errorf("sign read link: ttl %s outside (0, %s]", ttl, config.MaxExportLinkTTL)
	}
	now = now.UTC()
	expiry := now.Add(ttl).Truncate(time.Second)
	v := sas.BlobSignatureValues{
		Protocol:           sas.ProtocolHTTPS,
		StartTime:          now.Add(-5 * time.Minute),
		ExpiryTime:         expiry,
		Permissions:        (&sas.BlobPermissions{Read: true}).String(),
		ContainerName:      containerName,
		BlobName:           blobName,
		ContentDisposition: fmt.Sprintf("attachment; filename=%q", filename),
	}
	if a.insecure {
		v.Protocol = sas.ProtocolHTTPSandHTTP
	}
	qp, err := a.sign(ctx, v, now)
	if err != nil {
		return ReadLink{}, fmt.Errorf("sign read link: %w", err)
	}
	blobURL := a.Service.NewContainerClient(containerName).NewBlobClient(blobName).URL()
	return ReadLink{URL: blobURL + "?" + qp.Encode(), ExpiresAt: expiry}, nil
}

// sign signs v with the account key, or with a user delegation key.
func (a *Account) sign(ctx context.Context, v sas.BlobSignatureValues, now time.Time) (sas.QueryParameters, error) {
	if a.sharedKey != nil {
		return v.SignWithSharedKey(a.sharedKey)
	}
	udc, err := a.delegationKey(ctx, now, v.ExpiryTime)
	if err != nil {
		return sas.QueryParameters{}, err
	}
	return v.SignWithUserDelegation(udc)
}

// ContainerClient returns a client for one container that can do only what
// perms allow, for ttl: the service itself refuses anything else, whatever
// the code holding the client tries. The audit trail writes through one that
// may add and create but never overwrite or delete.
func (a *Account) ContainerClient(ctx context.Context, containerName string, perms sas.ContainerPermissions, ttl time.Duration, now time.Time) (*container.Client, time.Time, error) {
	if ttl <= 0 || ttl > config.MaxExportLinkTTL {
		return nil, time.Time{}, fmt.Errorf("container client: ttl %s outside (0, %s]", ttl, config.MaxExportLinkTTL)
	}
	now = now.UTC()
	expiry := now.Add(ttl).Truncate(time.Second)
	v := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPS,
		StartTime:     now.Add(-5 * time.Minute),
		ExpiryTime:    expiry,
		Permissions:   perms.String(),
		ContainerName: containerName,
	}
	if a.insecure {
		v.Protocol = sas.ProtocolHTTPSandHTTP
	}
	qp, err := a.sign(ctx, v, now)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("sign container %s: %w", containerName, err)
	}
	c, err := container.NewClientWithNoCredential(a.Service.NewContainerClient(containerName).URL()+"?"+qp.Encode(), nil)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("container client %s: %w", containerName, err)
	}
	return c, expiry, nil
}

// delegationKey returns a cached user delegation key that outlives expiry,
// fetching a new one (valid 7 days) when needed.
func (a *Account) delegationKey(ctx context.Context, now, expiry time.Time) (*service.UserDelegationCredential, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.udc != nil && a.udcExpiry.After(expiry) {
		return a.udc, nil
	}
	start := now.Add(-5 * time.Minute)
	keyExpiry := now.Add(config.MaxExportLinkTTL - time.Minute)
	if keyExpiry.Before(expiry) {
		return nil, fmt.Errorf("link would outlive the longest user delegation key")
	}
	udc, err := a.Service.GetUserDelegationCredential(ctx, service.KeyInfo{
		Start:  to.Ptr(start.Format(sas.TimeFormat)),
		Expiry: to.Ptr(keyExpiry.Format(sas.TimeFormat)),
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("get user delegation key: %w", err)
	}
	a.udc, a.udcExpiry = udc, keyExpiry
	return udc, nil
}

// Packages keeps export packages in one container: uploads streamed in
// 4 MiB blocks and committed only when complete, read-only links, deletes.
type Packages struct {
	Account   *Account
	Container string
}

// Put streams r into blob name as a ZIP to be downloaded as filename.
func (p *Packages) Put(ctx context.Context, name, filename string, r io.Reader, metadata map[string]string) error {
	meta := make(map[string]*string, len(metadata))
	for k, v := range metadata {
		meta[k] = to.Ptr(v)
	}
	_, err := p.Account.Service.NewContainerClient(p.Container).NewBlockBlobClient(name).UploadStream(ctx, r, &blockblob.UploadStreamOptions{
		BlockSize:   4 << 20,
		Concurrency: 2,
		HTTPHeaders: &blob.HTTPHeaders{
			BlobContentType:        to.Ptr("application/zip"),
			BlobContentDisposition: to.Ptr(fmt.Sprintf("attachment; filename=%q", filename)),
		},
		Metadata: meta,
	})
	if err != nil {
		return fmt.Errorf("upload package: %w", err)
	}
	return nil
}

// Open streams a package's bytes; the caller closes the reader.
func (p *Packages) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	resp, err := p.Account.Service.NewContainerClient(p.Container).NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("open package: %w", err)
	}
	return resp.Body, nil
}

// Link mints a read-only link to package name (see SignRead).
func (p *Packages) Link(ctx context.Context, name, filename string, ttl time.Duration, now time.Time) (ReadLink, error) {
	return p.Account.SignRead(ctx, p.Container, name, ttl, filename, now)
}

// Delete removes package name; a package already gone is no error.
func (p *Packages) Delete(ctx context.Context, name string) error {
	_, err := p.Account.Service.NewContainerClient(p.Container).NewBlobClient(name).Delete(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return fmt.Errorf("delete package: %w", err)
	}
	return nil
}
