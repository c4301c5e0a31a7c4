package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/dsr-functions/dsr/shared/dsr"
)

// ErrBadPageToken is returned for a page token this store did not issue.
var ErrBadPageToken = errors.New("invalid page token")

// Filter selects requests in List. Empty fields match everything.
type Filter struct {
	State dsr.State
	Type  dsr.Type
	// CreatedBy keeps only requests submitted by this caller reference.
	CreatedBy string
	// DueBefore keeps only requests due before it (zero: no limit).
	DueBefore time.Time
	// Open keeps only requests that are not in a terminal state.
	Open bool
	// FollowUp keeps only requests a person must follow up.
	FollowUp bool
	// Where, when set, keeps only the summaries it accepts.
	Where func(Summary) bool
}

func (f Filter) match(s Summary, createdBy string) bool {
	return (f.State == "" || s.State == f.State) && (f.Type == "" || s.Type == f.Type) &&
		(f.CreatedBy == "" || createdBy == f.CreatedBy) &&
		(f.DueBefore.IsZero() || s.DueAt.Before(f.DueBefore)) && (!f.Open || !s.State.Terminal()) &&
		(!f.FollowUp || s.FollowUp) && (f.Where == nil || f.Where(s))
}

// Summary is a request as listed: no subject, no history.
type Summary struct {
	ID         string    `json:"id"`
	Type       dsr.Type  `json:"type"`
	State      dsr.State `json:"state"`
	Stage      dsr.Stage `json:"stage"`
	CreatedAt  time.Time `json:"createdAt"`
	ReceivedAt time.Time `json:"receivedAt"`
	DueAt      time.Time `json:"dueAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
	// FollowUp is set when a person must follow the request up.
	FollowUp bool `json:"followUp,omitempty"`
	// Export is the package state (ExportNone, ExportLive, ExportDeleted;
	// "" for documents written before it was recorded). Not listed.
	Export string `json:"-"`
	// Repeat marks a request flagged as a repeat (Art. 12(5)).
	Repeat bool `json:"repeat,omitempty"`
}

// pageToken resumes a listing: the service's marker of the page being read
// and how many entries of that page were already consumed.
type pageToken struct {
	Marker string `json:"m,omitempty"`
	Skip   int    `json:"s"`
}

// listPageSize is how many blobs one service call lists.
const listPageSize = 500

// List returns up to limit requests matching f, oldest first, and a token for
// the next page ("" when there is none). Filtering uses blob metadata, so no
// document is read.
func (s *Store) List(ctx context.Context, f Filter, limit int, token string) ([]Summary, string, error) {
	var pos pageToken
	if token != "" {
		b, ok := s.openToken(token)
		if !ok || json.Unmarshal(b, &pos) != nil || pos.Skip < 0 {
			return nil, "", ErrBadPageToken
		}
	}
	out := []Summary{}
	for {
		opts := &container.ListBlobsFlatOptions{Prefix: to.Ptr("requests/"), Include: container.ListBlobsInclude{Metadata: true}, MaxResults: to.Ptr(int32(listPageSize))}
		if pos.Marker != "" {
			opts.Marker = to.Ptr(pos.Marker)
		}
		page, err := s.c.NewListBlobsFlatPager(opts).NextPage(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("list requests: %w", err)
		}
		items := page.Segment.BlobItems
		for i := pos.Skip; i < len(items); i++ {
			sum, createdBy, ok := summaryOf(items[i].Name, items[i].Metadata)
			if !ok || !f.match(sum, createdBy) {
				continue
			}
			out = append(out, sum)
			if len(out) == limit {
				next := pageToken{Marker: pos.Marker, Skip: i + 1}
				if i+1 == len(items) {
					if page.NextMarker == nil || *page.NextMarker == "" {
						return out, "", nil
					}
					next = pageToken{Marker: *page.NextMarker}
				}
				b, _ := json.Marshal(next)
				return out, s.sealToken(b), nil
			}
		}
		if page.NextMarker == nil || *page.NextMarker == "" {
			return out, "", nil
		}
		pos = pageToken{Marker: *page.NextMarker}
	}
}

// Page tokens carry a MAC: a token this store did not issue (made up, or
// edited to jump to another position) is refused rather than followed.

func (s *Store) tokenMAC(payload string) string {
	m := hmac.New(sha256.New, s.pageKey())
	m.Write([]byte("dsr-page-token\x00" + payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

func (s *Store) sealToken(b []byte) string {
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + s.tokenMAC(payload)
}

func (s *Store) openToken(token string) ([]byte, bool) {
	payload, mac, ok := strings.Cut(token, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(s.tokenMAC(payload))) {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	return b, err == nil
}

func summaryOf(name *string, md map[string]*string) (Summary, string, bool) {
	if name == nil {
		return Summary{}, "", false
	}
	id := strings.TrimSuffix(strings.TrimPrefix(*name, "requests/"), ".json")
	if !dsr.ValidID(id) {
		return Summary{}, "", false
	}
	get := func(k string) string {
		// Azure lower-cases metadata keys on some paths; look both ways.
		for key, v := range md {
			if strings.EqualFold(key, k) && v != nil {
				return *v
			}
		}
		return ""
	}
	ts := func(k string) time.Time { t, _ := time.Parse(time.RFC3339Nano, get(k)); return t }
	return Summary{
		ID: id, Type: dsr.Type(get("type")), State: dsr.State(get("state")), Stage: dsr.Stage(get("stage")),
		CreatedAt: ts("createdat"), ReceivedAt: ts("receivedat"), DueAt: ts("dueat"), UpdatedAt: ts("updatedat"),
		Export: get("export"), FollowUp: get("followup") == "true", Repeat: get("repeat") == "true",
	}, get("createdby"), true
}

// SummaryOf is a request as List shows it, for stores of requests kept
// elsewhere (the pipeline's in-memory store in tests).
func SummaryOf(st *dsr.Stored) Summary {
	return Summary{ID: st.ID, Type: st.Type, State: st.State, Stage: st.Stage, CreatedAt: st.CreatedAt,
		ReceivedAt: st.ReceivedAt, DueAt: st.DueAt, UpdatedAt: st.UpdatedAt, Export: exportState(st), Repeat: st.Repeat()}
}

// Matches reports whether f selects the request, as List does.
func (f Filter) Matches(st *dsr.Stored) bool { return f.match(SummaryOf(st), st.CreatedBy) }
