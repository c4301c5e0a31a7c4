// Package outbox is the notify.Sender for local runs and tests: instead of
// sending, it writes each message as one JSON blob into a Blob container
// (by default "outbox"), where `dsr local` users and tests read it back.
// Nothing leaves the machine, yet the message went through the same
// validation and the same Sender interface as in production.
//
// The blob's name depends on the message's Key only
// (<hex SHA-256 of Key>.json), so a retried send overwrites the same blob:
// one Key, one message, as a deduplicating mail service would give. The name
// holds no personal data; the content does (recipient, subject, body in
// clear), which is why this backend is for local runs and emulated storage,
// not for production accounts.
//
// A blob looks like:
//
//	{"key":"r01…:verify:1","to":"avery.morgan@contoso.example","subject":"Your code",
//	 "text":"…","html":"…","sentAt":"2026-01-02T03:04:05.123456789Z"}
//
// List returns the messages in the order they were (last) sent; Find those
// to one address.
package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/dsr-functions/dsr/shared/blobs"
	"github.com/dsr-functions/dsr/shared/notify"
)

// DefaultContainer is the container OpenAccount uses when given no name.
const DefaultContainer = "outbox"

// maxBlobBytes bounds what List reads per blob: a message's bodies are at
// most notify.MaxBodyBytes, JSON escaping can grow them up to six times.
const maxBlobBytes = 8 << 20

// Stored is one message as the outbox holds it.
type Stored struct {
	Key     string `json:"key"`
	To      string `json:"to"`
	Subject string `json:"subject"`
	Text    string `json:"text"`
	HTML    string `json:"html"`
	// SentAt is when the message was (last) written, UTC, RFC 3339 with
	// nanoseconds in the JSON so that List's order is stable.
	SentAt time.Time `json:"sentAt"`
	// Blob is the blob's name in the container (not stored in the JSON).
	Blob string `json:"-"`
}

// Message returns the notify.Message s was written from.
func (s Stored) Message() notify.Message {
	return notify.Message{To: s.To, Subject: s.Subject, Text: s.Text, HTML: s.HTML, Key: s.Key}
}

// Outbox writes messages into one container. It is safe for concurrent use.
type Outbox struct {
	c   *container.Client
	now func() time.Time
}

var _ notify.Sender = (*Outbox)(nil)

// Open returns an Outbox writing into c, creating the container if it does
// not exist yet (an existing one is fine).
func Open(ctx context.Context, c *container.Client) (*Outbox, error) {
	if c == nil {
		return nil, fmt.Errorf("outbox: no container client")
	}
	if _, err := c.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return nil, fmt.Errorf("outbox: create container: %w", err)
	}
	return &Outbox{c: c, now: time.Now}, nil
}

// OpenAccount is Open on the container name of an account opened with
// shared/blobs; an empty name means DefaultContainer.
func OpenAccount(ctx context.Context, a *blobs.Account, name string) (*Outbox, error) {
	if a == nil || a.Service == nil {
		return nil, fmt.Errorf("outbox: no storage account")
	}
	if name == "" {
		name = DefaultContainer
	}
	return Open(ctx, a.Service.NewContainerClient(name))
}

// SetClock replaces the clock that stamps SentAt (for tests).
func (o *Outbox) SetClock(now func() time.Time) { o.now = now }

// BlobName is the blob a message with this key is written to.
func BlobName(key string) string { return notify.KeyHash(key) + ".json" }

// Send validates m and writes it to BlobName(m.Key), replacing what a
// previous send of the same Key wrote.
func (o *Outbox) Send(ctx context.Context, m notify.Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	s := Stored{Key: m.Key, To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML, SentAt: o.now().UTC()}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the HTML body stays readable in the blob
	if err := enc.Encode(s); err != nil {
		return &notify.Error{Ref: notify.KeyRef(m.Key), Reason: "outbox: encode", Cause: err}
	}
	// The storage error names the container and the blob (a hash), never
	// the message.
	_, err := o.c.NewBlockBlobClient(BlobName(m.Key)).UploadBuffer(ctx, buf.Bytes(), &blockblob.UploadBufferOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json; charset=utf-8")},
	})
	if err != nil {
		ne := &notify.Error{Ref: notify.KeyRef(m.Key), Reason: "outbox: write", Cause: err}
		var re *azcore.ResponseError
		if errors.As(err, &re) {
			ne.Status, ne.Code = re.StatusCode, re.ErrorCode
		}
		return ne
	}
	return nil
}

// List returns every message in the outbox, oldest SentAt first (ties by
// Key). Blobs that are not <hash>.json are skipped; a .json blob that does
// not parse is an error.
func (o *Outbox) List(ctx context.Context) ([]Stored, error) {
	var out []Stored
	pager := o.c.NewListBlobsFlatPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("outbox: list: %w", err)
		}
		for _, it := range page.Segment.BlobItems {
			if it.Name == nil || !strings.HasSuffix(*it.Name, ".json") || strings.Contains(*it.Name, "/") {
				continue
			}
			s, ok, err := o.read(ctx, *it.Name)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, s)
			}
		}
	}
	slices.SortFunc(out, func(a, b Stored) int {
		if c := a.SentAt.Compare(b.SentAt); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out, nil
}

// Find returns the messages to one address, oldest first. Addresses are
// compared case-insensitively, as people (and this product's matching)
// treat them.
func (o *Outbox) Find(ctx context.Context, to string) ([]Stored, error) {
	all, err := o.List(ctx)
	if err != nil {
		return nil, err
	}
	to = strings.TrimSpace(to)
	return slices.DeleteFunc(all, func(s Stored) bool { return !strings.EqualFold(s.To, to) }), nil
}

// read fetches one blob; ok is false when it was deleted since the listing
// (someone cleaning the outbox while a test reads it).
func (o *Outbox) read(ctx context.Context, name string) (s Stored, ok bool, err error) {
	resp, err := o.c.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		if bloberror.HasCode(err, bloberror.BlobNotFound) {
			return Stored{}, false, nil
		}
		return Stored{}, false, fmt.Errorf("outbox: read %s: %w", name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBlobBytes+1))
	if err != nil {
		return Stored{}, false, fmt.Errorf("outbox: read %s: %w", name, err)
	}
	if len(b) > maxBlobBytes {
		return Stored{}, false, fmt.Errorf("outbox: read %s: larger than %d bytes", name, maxBlobBytes)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		// json's syntax and type errors quote no content, only offsets,
		// characters and type names.
		return Stored{}, false, fmt.Errorf("outbox: read %s: %w", name, err)
	}
	s.Blob = name
	return s, true, nil
}
