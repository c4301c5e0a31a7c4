// Package ratelimit limits how often something may happen per key (an email
// address, a client IP) across every running instance of the app.
//
// The request portal is anonymous and faces the internet, so submissions
// must be limited per address and per client IP. The Functions host runs
// several instances at once and starts and stops them at will: a count kept
// in memory would be per instance and lost on every restart, so counts live
// in Blob Storage, in the app's state container, and every change is a write
// conditional on the ETag read (or a create-only write), so two instances
// never overwrite each other's increments.
//
// # Fixed windows
//
// Each Limit counts in fixed windows aligned to the Unix epoch in units of
// its Window (an hour limit counts from hh:00:00 UTC to the next hh:00:00).
// Because the windows are a pure function of the clock, every instance agrees
// on them without any coordination, and a call costs one blob read and, when
// allowed, one conditional write. The price is a burst at a boundary: a
// caller may use all of Max at the end of one window and Max again at the
// start of the next, so up to 2×Max calls can fall within one Window's span.
// That is enough here: the limits keep an anonymous portal from being used
// to flood a mailbox or the privacy team's queue, not to meter anything
// exactly, and 2×Max is still a small, bounded number. A sliding window would
// have to keep a log of call times (more to store and rewrite per call) or
// read two windows per call, to remove a burst nobody is harmed by.
//
// # Personal data
//
// A key that identifies a person is never stored: blob names and contents
// hold only HMAC-SHA256(secret, "<limit name>\x00<key>") in hex, with the
// secret given to New (the app's DSR_PSEUDONYM_SECRET). Without the secret,
// the container cannot be searched for an address; errors name the hash,
// never the key.
//
// # Layout
//
//	ratelimit/<window end>/<limit name>/<window start>/<hash>
//
// with both times in Unix seconds, zero-padded to 12 digits, so names sort
// by the end of their window. The end comes first so that Sweep decides from
// the name alone (not from last-modified, which any write moves) and can
// stop listing at the first window that has not ended long enough. The body
// is a small JSON document with the count.
package ratelimit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"regexp"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// Prefix is where the counts live in the state container.
const Prefix = "ratelimit/"

// MinSecretLen is the shortest secret New accepts: a shorter one would let
// anyone holding the container try every plausible address against the
// hashes (the same minimum config sets for DSR_PSEUDONYM_SECRET).
const MinSecretLen = 16

// MaxAttempts bounds the read-and-conditional-write loop of one Allow call.
// Every lost race means another call's write succeeded, and at most Max
// writes succeed per window, so with the small limits of a portal a call
// loses far fewer times than this.
const MaxAttempts = 10

// ErrShortSecret is what every call of a Limiter built with a secret
// shorter than MinSecretLen returns.
var ErrShortSecret = fmt.Errorf("ratelimit: the secret must be at least %d bytes", MinSecretLen)

// Limit is one limit: at most Max allowed calls per key in each Window.
type Limit struct {
	// Name tells limits apart in blob names and in the hash, so one key
	// counts separately under each limit. Letters, digits, '-' and '_', at
	// most 63.
	Name string
	// Max is how many calls a key is allowed per window (at least 1).
	Max int
	// Window is the length of a window: a whole number of seconds, at
	// least one.
	Window time.Duration
}

// Decision is the answer of Allow.
type Decision struct {
	// Allowed reports whether the call may go ahead; only allowed calls
	// are counted.
	Allowed bool
	// RetryAfter is, for a refused call, the time left until the window
	// ends (always positive; round it up for a Retry-After header). Zero
	// for an allowed call.
	RetryAfter time.Duration
	// Remaining is how many more calls the key is allowed in this window.
	Remaining int
}

// Limiter counts calls in one container, shared by every instance.
type Limiter struct {
	c      *container.Client
	secret []byte
	now    func() time.Time
	err    error
}

// New returns a limiter keeping its counts under Prefix in c (the app's
// state container), hashing keys with secret. now is the clock (nil:
// time.Now); tests inject one. A secret shorter than MinSecretLen is refused:
// the limiter is built, but every call returns ErrShortSecret, so a portal
// misconfigured this way refuses to count (and can fail closed) rather than
// store weakly hashed addresses. Config checks the secret at startup too.
func New(c *container.Client, secret []byte, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	l := &Limiter{c: c, secret: bytes.Clone(secret), now: now}
	if len(secret) < MinSecretLen {
		l.secret, l.err = nil, ErrShortSecret
	}
	return l
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

func (lim Limit) validate() error {
	switch {
	case !namePattern.MatchString(lim.Name):
		return fmt.Errorf("ratelimit: invalid limit name %q", lim.Name)
	case lim.Max < 1:
		return fmt.Errorf("ratelimit: limit %s: Max must be at least 1", lim.Name)
	case lim.Window < time.Second || lim.Window%time.Second != 0:
		return fmt.Errorf("ratelimit: limit %s: Window must be a whole number of seconds", lim.Name)
	}
	return nil
}

// hash is the keyed hash a key is counted under for limit name:
// hex(HMAC-SHA256(secret, name + "\x00" + key)). The name is part of it so
// the same address hashes differently under each limit.
func (l *Limiter) hash(name, key string) string {
	h := hmac.New(sha256.New, l.secret)
	h.Write([]byte(name + "\x00" + key))
	return hex.EncodeToString(h.Sum(nil))
}

// window returns the start and end, in Unix seconds, of lim's window
// holding t.
func window(lim Limit, t time.Time) (start, end int64, err error) {
	s := t.Unix()
	if s < 0 {
		return 0, 0, fmt.Errorf("ratelimit: clock before the Unix epoch (%s)", t.UTC().Format(time.RFC3339))
	}
	w := int64(lim.Window / time.Second)
	start = s - s%w
	end = start + w
	if end > maxStamp {
		return 0, 0, fmt.Errorf("ratelimit: limit %s: window ends beyond what blob names hold", lim.Name)
	}
	return start, end, nil
}

// maxStamp is the largest Unix time the 12 digits of a blob name hold.
const maxStamp = 999_999_999_999

func blobName(name string, start, end int64, hash string) string {
	return fmt.Sprintf("%s%012d/%s/%012d/%s", Prefix, end, name, start, hash)
}

var blobPattern = regexp.MustCompile(`^` + Prefix + `([0-9]{12})/[A-Za-z0-9][A-Za-z0-9_-]{0,62}/[0-9]{12}/[0-9a-f]{64}$`)

// counter is a window's blob body. It holds only the hash, never the key.
type counter struct {
	V           int       `json:"v"`
	Limit       string    `json:"limit"`
	Hash        string    `json:"hash"`
	WindowStart time.Time `json:"windowStart"`
	WindowEnd   time.Time `json:"windowEnd"`
	Count       int       `json:"count"`
}

// Allow counts one call of key under lim, unless the key has used all of
// lim.Max in the current window: then it writes nothing and answers
// Allowed=false with the time left until the window ends. key must not be
// empty (an empty key would put every caller without one in one bucket:
// the caller decides what that means).
//
// The count is read with its ETag and written back with If-Match, or
// created with If-None-Match: *; a write that loses a race to another
// call (on this or another instance) reads again and retries, at most
// MaxAttempts times, so no two calls are counted as one and never more than
// Max are allowed per window.
func (l *Limiter) Allow(ctx context.Context, lim Limit, key string) (Decision, error) {
	if l.err != nil {
		return Decision{}, l.err
	}
	if err := lim.validate(); err != nil {
		return Decision{}, err
	}
	if key == "" {
		return Decision{}, fmt.Errorf("ratelimit: limit %s: empty key", lim.Name)
	}
	now := l.now()
	start, end, err := window(lim, now)
	if err != nil {
		return Decision{}, err
	}
	hash := l.hash(lim.Name, key)
	name := blobName(lim.Name, start, end, hash)
	bb := l.c.NewBlockBlobClient(name)
	c := counter{V: 1, Limit: lim.Name, Hash: hash, WindowStart: time.Unix(start, 0).UTC(), WindowEnd: time.Unix(end, 0).UTC()}
	refused := Decision{RetryAfter: time.Unix(end, 0).Sub(now)}

	for attempt := range MaxAttempts {
		count, etag, err := l.read(ctx, name)
		if err != nil {
			return Decision{}, fmt.Errorf("ratelimit: limit %s key %s: %w", lim.Name, hash, err)
		}
		if count >= lim.Max {
			return refused, nil
		}
		c.Count = count + 1
		body, _ := json.Marshal(c)
		cond := &blob.ModifiedAccessConditions{IfMatch: &etag}
		if etag == "" {
			cond = &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}
		}
		_, err = bb.Upload(ctx, streaming.NopCloser(bytes.NewReader(body)), &blockblob.UploadOptions{
			HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json")},
			Metadata:         map[string]*string{"windowend": to.Ptr(c.WindowEnd.Format(time.RFC3339))},
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: cond},
		})
		switch {
		case err == nil:
			return Decision{Allowed: true, Remaining: lim.Max - c.Count}, nil
		case lostRace(err):
			// Another call wrote first: read its count and try again.
			// Full jitter after a lost If-Match, so the losers of one
			// round do not collide again; a lost create re-reads at once.
			if etag != "" && attempt+1 < MaxAttempts {
				if err := sleep(ctx, rand.N(time.Duration(5<<attempt)*time.Millisecond)); err != nil {
					return Decision{}, fmt.Errorf("ratelimit: limit %s key %s: %w", lim.Name, hash, err)
				}
			}
		default:
			return Decision{}, fmt.Errorf("ratelimit: limit %s key %s: write count: %w", lim.Name, hash, err)
		}
	}
	return Decision{}, fmt.Errorf("ratelimit: limit %s key %s: still contended after %d attempts", lim.Name, hash, MaxAttempts)
}

// read returns a window's count and the ETag of the version read; an
// absent blob is count 0 with an empty ETag.
func (l *Limiter) read(ctx context.Context, name string) (int, azcore.ETag, error) {
	resp, err := l.c.NewBlobClient(name).DownloadStream(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("read count: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return 0, "", fmt.Errorf("read count: %w", err)
	}
	var c counter
	if err := json.Unmarshal(b, &c); err != nil {
		return 0, "", fmt.Errorf("decode count: %w", err)
	}
	if resp.ETag == nil || *resp.ETag == "" {
		return 0, "", errors.New("read count: no ETag")
	}
	return c.Count, *resp.ETag, nil
}

// lostRace reports a conditional write that another writer got to first:
// 412 for a changed ETag, 409 (or 412, depending on the service) for a
// create of a blob that now exists, and 404 for a blob a Sweep deleted
// between the read and the write.
func lostRace(err error) bool {
	return bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobAlreadyExists, bloberror.BlobNotFound)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Sweep deletes the windows, of every limit, that ended at least olderThan
// ago, and returns how many it deleted. It decides from the window end in
// each blob's name, not from last-modified, and leaves blobs under Prefix
// whose names it does not recognise alone. Run it from a timer with
// olderThan of a day: windows of the clock skew between instances, or an
// hour behind, stay untouched, and deleting an ended window changes no
// decision since no call counts in it any more.
func (l *Limiter) Sweep(ctx context.Context, olderThan time.Duration) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if olderThan < 0 {
		return 0, errors.New("ratelimit: sweep: olderThan must not be negative")
	}
	cutoff := l.now().Add(-olderThan).Unix()
	deleted := 0
	pager := l.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr(Prefix)})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return deleted, fmt.Errorf("ratelimit: sweep: list: %w", err)
		}
		for _, it := range page.Segment.BlobItems {
			if it.Name == nil {
				continue
			}
			m := blobPattern.FindStringSubmatch(*it.Name)
			if m == nil {
				continue
			}
			end, _ := strconv.ParseInt(m[1], 10, 64)
			if end > cutoff {
				// Names sort by window end: every later one ended later.
				return deleted, nil
			}
			_, err := l.c.NewBlobClient(*it.Name).Delete(ctx, nil)
			if bloberror.HasCode(err, bloberror.BlobNotFound) {
				continue // another sweeper was first
			}
			if err != nil {
				return deleted, fmt.Errorf("ratelimit: sweep: delete %s: %w", *it.Name, err)
			}
			deleted++
		}
	}
	return deleted, nil
}
