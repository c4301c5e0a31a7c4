// Package tombstone keeps what an erasure leaves behind so that the data it
// kept stays attributable to the person.
//
// An erasure deletes a person's contact row but keeps, under an Art. 17(3)
// ground or masked, records that still reference it: activity-log entries,
// redacted cases carrying her contact id. Without the deleted row, nothing
// links those records to her any more, so a later access request (Art. 15
// still applies to what is kept) would find nothing. A tombstone restores the
// link without keeping raw identifiers in a form anyone can read:
//
//   - It is stored once per lookup identifier (each of the subject's emails,
//     phones and ids, and each deleted key that other records reference),
//     under a keyed hash of that identifier (DSR_PSEUDONYM_SECRET): the
//     container lists no identifier.
//   - Its content is sealed (AES-256-GCM) with a key derived from the same
//     identifier and the secret: only a request that already knows one of
//     the person's identifiers (and the app, which holds the secret) can
//     read it. What it holds: the subject's identifiers, the deleted keys
//     others reference, and what the erasure kept where (for the report).
//
// A later request looks its identifiers up (Find) and discovery follows
// relations from the deleted keys as if the rows still existed.
//
// After a restore from backup, the erasures must be applied again, and no
// request knows whose: for that one purpose each tombstone also has a copy
// sealed with a key derived from the secret alone (List), which only the
// app, holding the secret, can open.
//
// Layout in the state container: tombstones/<hash>/<requestId>.json (one per
// identifier) and tombstones/all/<requestId>.json (the replay copy).
package tombstone

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"golang.org/x/sync/errgroup"

	"github.com/dsr-functions/dsr/shared/policy"
	"github.com/dsr-functions/dsr/shared/sources"
)

// Tombstone is what one completed erasure leaves.
type Tombstone struct {
	RequestID string    `json:"requestId"`
	ErasedAt  time.Time `json:"erasedAt"`
	// The subject's normalised identifiers, as the erasure request gave them.
	Emails []string          `json:"emails,omitempty"`
	Phones []string          `json:"phones,omitempty"`
	IDs    map[string]string `json:"ids,omitempty"`
	// Keys are the deleted records' values that other records reference,
	// by dataset and field (sources.Subject.Keys).
	Keys map[string]map[string][]string `json:"keys,omitempty"`
	// Found are identifiers the deleted records held that the request did
	// not give (her phone in her contact row): the tombstone is filed
	// under them too, so a later request by her phone finds it. They are
	// lookup identifiers only: discovery searches by the request's
	// identifiers and the Emails, Phones and IDs above, so an erasure's
	// verification sees exactly what the erasure saw.
	Found []Identifier `json:"found,omitempty"`
	// Kept says what the erasure kept where, for the reports of later
	// requests.
	Kept []Kept `json:"kept,omitempty"`
}

// Kept is what an erasure did in a dataset where it kept records.
type Kept struct {
	Dataset string `json:"dataset"`
	// Action is "retained" (kept unchanged under Ground) or "masked" (kept
	// with Fields masked).
	Action      string   `json:"action"`
	Fields      []string `json:"fields,omitempty"`
	Ground      string   `json:"ground,omitempty"`
	LegalBasis  string   `json:"legalBasis,omitempty"`
	RetainUntil string   `json:"retainUntil,omitempty"`
}

// Identifier is one lookup identifier: a kind ("email", "phone",
// "id:<name>", "key:<dataset>.<field>") and a normalised value.
type Identifier struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// AddFound records an identifier a deleted record held, unless the
// tombstone knows it already.
func (t *Tombstone) AddFound(id Identifier) {
	if !slices.Contains(t.Identifiers(), id) {
		t.Found = append(t.Found, id)
	}
}

// Identifiers are the lookup identifiers of a tombstone: the subject's and
// the deleted keys, each once, in a fixed order.
func (t *Tombstone) Identifiers() []Identifier {
	var out []Identifier
	for _, e := range t.Emails {
		out = append(out, Identifier{"email", e})
	}
	for _, p := range t.Phones {
		out = append(out, Identifier{"phone", p})
	}
	for _, n := range slices.Sorted(maps.Keys(t.IDs)) {
		out = append(out, Identifier{"id:" + n, t.IDs[n]})
	}
	for _, ds := range slices.Sorted(maps.Keys(t.Keys)) {
		for _, f := range slices.Sorted(maps.Keys(t.Keys[ds])) {
			for _, v := range t.Keys[ds][f] {
				out = append(out, KeyIdentifier(ds, f, v))
			}
		}
	}
	out = append(out, t.Found...)
	seen := map[Identifier]bool{}
	return slices.DeleteFunc(out, func(id Identifier) bool {
		dup := seen[id]
		seen[id] = true
		return dup
	})
}

// KeyIdentifier is the lookup identifier of a record key: value v of field
// of dataset, which other records reference.
func KeyIdentifier(dataset, field, v string) Identifier {
	return Identifier{"key:" + dataset + "." + field, v}
}

// SubjectIdentifiers are the lookup identifiers a request gives.
func SubjectIdentifiers(s sources.Subject) []Identifier {
	t := Tombstone{Emails: s.Emails, Phones: s.Phones, IDs: s.IDs}
	return t.Identifiers()
}

// Merge adds what tombstones know to a subject: their identifiers (an id
// the request gave keeps its value) and their deleted keys. It returns the
// subject unchanged when there are none.
func Merge(s sources.Subject, tombs []*Tombstone) sources.Subject {
	if len(tombs) == 0 {
		return s
	}
	out := sources.Subject{Emails: slices.Clone(s.Emails), Phones: slices.Clone(s.Phones), IDs: maps.Clone(s.IDs), Keys: map[string]map[string][]string{}}
	for ds, fields := range s.Keys {
		for f, vals := range fields {
			out.Keys = addKeys(out.Keys, ds, f, vals...)
		}
	}
	for _, t := range tombs {
		for _, e := range t.Emails {
			if !slices.Contains(out.Emails, e) {
				out.Emails = append(out.Emails, e)
			}
		}
		for _, p := range t.Phones {
			if !slices.Contains(out.Phones, p) {
				out.Phones = append(out.Phones, p)
			}
		}
		for n, v := range t.IDs {
			if out.IDs == nil {
				out.IDs = map[string]string{}
			}
			if _, ok := out.IDs[n]; !ok {
				out.IDs[n] = v
			}
		}
		for ds, fields := range t.Keys {
			for f, vals := range fields {
				out.Keys = addKeys(out.Keys, ds, f, vals...)
			}
		}
	}
	return out
}

func addKeys(m map[string]map[string][]string, dataset, field string, vals ...string) map[string]map[string][]string {
	if m == nil {
		m = map[string]map[string][]string{}
	}
	if m[dataset] == nil {
		m[dataset] = map[string][]string{}
	}
	for _, v := range vals {
		if !slices.Contains(m[dataset][field], v) {
			m[dataset][field] = append(m[dataset][field], v)
		}
	}
	return m
}

// AddKey records a deleted key that other records reference.
func (t *Tombstone) AddKey(dataset, field, v string) {
	t.Keys = addKeys(t.Keys, dataset, field, v)
}

// Store keeps tombstones in the state container.
type Store struct {
	c      *container.Client
	secret []byte
}

// ErrNoSecret: tombstones need DSR_PSEUDONYM_SECRET.
var ErrNoSecret = errors.New("tombstones need DSR_PSEUDONYM_SECRET")

// New returns a store over the state container, keyed by secret.
func New(c *container.Client, secret []byte) *Store { return &Store{c: c, secret: secret} }

// Hash is the keyed hash a tombstone of identifier id is filed under.
func Hash(secret []byte, id Identifier) string {
	return policy.KeyHash(secret, "tombstone", id.Kind+"\x00"+id.Value)
}

const prefix = "tombstones/"

var idPattern = regexp.MustCompile(`^r[0-9a-f]{28}$`)

func blobName(hash, requestID string) string { return prefix + hash + "/" + requestID + ".json" }

// sealed is a tombstone as stored.
type sealed struct {
	V     int    `json:"v"`
	Nonce []byte `json:"nonce"`
	Data  []byte `json:"data"`
}

// sealKey derives the AES-256 key of the copy filed under id.
func (s *Store) sealKey(id Identifier) []byte {
	h := hmac.New(sha256.New, s.secret)
	h.Write([]byte("dsr-tombstone-seal\x00" + id.Kind + "\x00" + id.Value))
	return h.Sum(nil)
}

func (s *Store) aead(id Identifier) cipher.AEAD {
	block, err := aes.NewCipher(s.sealKey(id))
	if err != nil {
		panic(fmt.Sprintf("tombstone: aes: %v", err)) // a 32-byte key never fails
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		panic(fmt.Sprintf("tombstone: gcm: %v", err))
	}
	return g
}

// Put files the tombstone under each of its identifiers. Writing it again
// (a redelivered erasure) replaces the copies: it is idempotent.
func (s *Store) Put(ctx context.Context, t *Tombstone) error {
	if len(s.secret) == 0 {
		return ErrNoSecret
	}
	if !idPattern.MatchString(t.RequestID) {
		return errors.New("tombstone: malformed request id")
	}
	plain, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("tombstone: encode: %w", err)
	}
	write := func(name string, id Identifier, aad string) error {
		nonce := make([]byte, 12)
		if _, err := rand.Read(nonce); err != nil {
			return fmt.Errorf("tombstone: nonce: %w", err)
		}
		body, _ := json.Marshal(sealed{V: 1, Nonce: nonce, Data: s.aead(id).Seal(nil, nonce, plain, []byte(aad))})
		if _, err := s.c.NewBlockBlobClient(name).UploadBuffer(ctx, body, nil); err != nil {
			return fmt.Errorf("tombstone: write: %w", err)
		}
		return nil
	}
	for _, id := range t.Identifiers() {
		hash := Hash(s.secret, id)
		if err := write(blobName(hash, t.RequestID), id, hash); err != nil {
			return err
		}
	}
	return write(allPrefix+t.RequestID+".json", replayKey, t.RequestID)
}

// replayKey is the "identifier" the replay copies are sealed under: a
// fixed one, so the key derives from the secret alone.
var replayKey = Identifier{Kind: "replay", Value: "all"}

const allPrefix = prefix + "all/"

// List returns the tombstones of completed erasures in request id order
// (the order they were made), at most limit of them after request id
// after ("" for the first), and the id to pass as after for the next page
// ("" when there is none). It is for replaying erasures after a restore.
func (s *Store) List(ctx context.Context, after string, limit int) ([]*Tombstone, string, error) {
	if len(s.secret) == 0 {
		return nil, "", ErrNoSecret
	}
	if after != "" && !idPattern.MatchString(after) {
		return nil, "", errors.New("tombstone: malformed request id")
	}
	// Listings come in name order, and names are request ids, which sort
	// by creation time.
	pager := s.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr(allPrefix)})
	var out []*Tombstone
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if bloberror.HasCode(err, bloberror.ContainerNotFound) {
			return nil, "", nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("tombstone: list: %w", err)
		}
		for _, it := range page.Segment.BlobItems {
			id := strings.TrimSuffix(strings.TrimPrefix(*it.Name, allPrefix), ".json")
			if !idPattern.MatchString(id) || id <= after {
				continue
			}
			if len(out) == limit {
				return out, out[len(out)-1].RequestID, nil
			}
			t, err := s.open(ctx, *it.Name, id, replayKey)
			if err != nil {
				return nil, "", err
			}
			out = append(out, t)
		}
	}
	return out, "", nil
}

// findLookups is how many identifiers Find looks up at once.
const findLookups = 8

// Find returns the tombstones filed under any of the identifiers, each
// once, oldest erasure first.
func (s *Store) Find(ctx context.Context, ids []Identifier) ([]*Tombstone, error) {
	if len(s.secret) == 0 {
		return nil, nil
	}
	// One listing per identifier, findLookups at a time: a request's
	// discovery waits for them, and one after another they were a round
	// trip each.
	found := make([][]*Tombstone, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(findLookups)
	for i, id := range ids {
		g.Go(func() error {
			ts, err := s.Lookup(gctx, id)
			found[i] = ts
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	byRequest := map[string]*Tombstone{}
	for _, ts := range found {
		for _, t := range ts {
			byRequest[t.RequestID] = t
		}
	}
	out := slices.Collect(maps.Values(byRequest))
	sort.Slice(out, func(i, j int) bool {
		if !out[i].ErasedAt.Equal(out[j].ErasedAt) {
			return out[i].ErasedAt.Before(out[j].ErasedAt)
		}
		return out[i].RequestID < out[j].RequestID
	})
	return out, nil
}

// Lookup returns the tombstones filed under one identifier.
func (s *Store) Lookup(ctx context.Context, id Identifier) ([]*Tombstone, error) {
	if len(s.secret) == 0 {
		return nil, nil
	}
	hash := Hash(s.secret, id)
	pager := s.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr(prefix + hash + "/")})
	var out []*Tombstone
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if bloberror.HasCode(err, bloberror.ContainerNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("tombstone: list: %w", err)
		}
		for _, it := range page.Segment.BlobItems {
			t, err := s.open(ctx, *it.Name, hash, id)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		}
	}
	return out, nil
}

func (s *Store) open(ctx context.Context, name, hash string, id Identifier) (*Tombstone, error) {
	resp, err := s.c.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("tombstone: read: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("tombstone: read: %w", err)
	}
	var sl sealed
	if err := json.Unmarshal(b, &sl); err != nil || sl.V != 1 {
		return nil, errors.New("tombstone: unreadable copy")
	}
	plain, err := s.aead(id).Open(nil, sl.Nonce, sl.Data, []byte(hash))
	if err != nil {
		// The secret was rotated, or the copy was tampered with.
		return nil, errors.New("tombstone: a copy does not open with this secret (rotated DSR_PSEUDONYM_SECRET?)")
	}
	var t Tombstone
	if err := json.Unmarshal(plain, &t); err != nil {
		return nil, errors.New("tombstone: unreadable content")
	}
	return &t, nil
}
