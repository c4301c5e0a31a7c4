package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/dsr-functions/dsr/shared/httpretry"
	"github.com/dsr-functions/dsr/shared/sources"
)

// Actions, as sent in the "action" member.
const (
	ActionAccess          = "access"
	ActionErasure         = "erasure"
	ActionRectification   = "rectification"
	ActionRestriction     = "restriction"
	ActionLiftRestriction = "lift-restriction"
)

// LocationBlob is the Blob of every Location this connector returns.
const LocationBlob = "webhook"

// maxPages bounds the pages of one access result.
const maxPages = 10000

// maxChangeResponse caps the body of a change's answer.
const maxChangeResponse = 1 << 20

var (
	// ErrPending reports that the system accepted an access (or change)
	// with 202 and will deliver the result later: call again once the
	// callback has delivered it (see CallbackOptions.OnComplete).
	ErrPending = fmt.Errorf("webhook: the system accepted the request: %w", sources.ErrPending)
	// ErrHashedRectification reports a rectification for a system that
	// receives hashed identifiers only: it cannot be told new values.
	ErrHashedRectification = errors.New("webhook: rectification is not possible with hashed identifiers (the system cannot be sent the new values); rectify this system by hand or switch it to raw identifiers")
	// ErrNoRequest reports a Discover or Read whose context carries no
	// request (see WithRequest).
	ErrNoRequest = errors.New("webhook: the context carries no request id (use webhook.WithRequest)")
)

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

// ValidRequestID reports whether s may be used as a request id here: 1 to
// 128 characters of [A-Za-z0-9_-], not starting with '_' or '-'.
func ValidRequestID(s string) bool { return requestIDRE.MatchString(s) }

type requestInfo struct {
	id      string
	subject sources.Subject
}

// WithRequest returns ctx carrying the request a Discover or Read serves:
// its id (sent as "requestId", used for idempotency and the callback URL)
// and its subject (Read fetches the records again, so it needs the
// subject; Discover uses its own argument). It is sources.WithRequest.
func WithRequest(ctx context.Context, requestID string, subject sources.Subject) context.Context {
	return sources.WithRequest(ctx, requestID, subject)
}

func requestFrom(ctx context.Context) (requestInfo, error) {
	id, subject, ok := sources.RequestFrom(ctx)
	if !ok {
		return requestInfo{}, ErrNoRequest
	}
	info := requestInfo{id: id, subject: subject}
	if !ValidRequestID(info.id) {
		return requestInfo{}, fmt.Errorf("webhook: request id is not [A-Za-z0-9_-], 1 to 128 characters")
	}
	return info, nil
}

// Connector reaches one system by signed HTTP POSTs. It implements
// sources.Connector and sources.Delegator and is safe for concurrent use.
type Connector struct {
	cfg    Config
	keys   map[string]string
	names  []string
	client *http.Client
	store  ResultStore

	now    func() time.Time
	sleep  func(context.Context, time.Duration) error
	jitter func(n int64) int64
}

var (
	_ sources.Connector = (*Connector)(nil)
	_ sources.Delegator = (*Connector)(nil)
)

// New validates cfg and returns a connector. client nil means a default
// client; either way redirects are not followed (a signed request carrying
// personal data goes to the configured URL only). store keeps asynchronous
// access results; it is required when cfg.CallbackBase is set and unused
// otherwise.
func New(cfg *Config, client *http.Client, store ResultStore) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Connector{cfg: cfg.withDefaults(), keys: map[string]string{}, store: store,
		now: time.Now, sleep: httpretry.Sleep, jitter: func(n int64) int64 { return rand.Int64N(n) }}
	if c.cfg.CallbackBase != "" && store == nil {
		return nil, fmt.Errorf("webhook %s: callbackBase is set but no result store was given", c.cfg.Name)
	}
	var hc http.Client
	if client != nil {
		hc = *client
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.client = &hc
	for _, d := range c.cfg.Datasets {
		c.keys[d.Name] = d.Key
		c.names = append(c.names, d.Name)
	}
	return c, nil
}

// Name returns the system's name (Config.Name, or the URL's host).
func (c *Connector) Name() string { return c.cfg.Name }

// Datasets returns the names of the system's datasets, in config order.
func (c *Connector) Datasets() []string { return slices.Clone(c.names) }

func (c *Connector) async() bool { return c.cfg.CallbackBase != "" && c.store != nil }

// Delegates reports whether dataset belongs to this system: all its
// changes go through Apply.
func (c *Connector) Delegates(dataset string) bool {
	_, ok := c.keys[dataset]
	return ok
}

// wire types: the request body.
type wireRequest struct {
	Action      string            `json:"action"`
	RequestID   string            `json:"requestId"`
	Subject     any               `json:"subject"`
	Datasets    []string          `json:"datasets"`
	Corrections map[string]string `json:"corrections,omitempty"`
	Cursor      string            `json:"cursor,omitempty"`
	CallbackURL string            `json:"callbackUrl,omitempty"`
}

type rawSubject struct {
	Emails []string          `json:"emails"`
	Phones []string          `json:"phones"`
	IDs    map[string]string `json:"ids"`
}

type hashedSubject struct {
	EmailHashes []string          `json:"emailHashes"`
	PhoneHashes []string          `json:"phoneHashes"`
	IDHashes    map[string]string `json:"idHashes"`
}

// normalised returns the subject's identifiers as sent (before hashing):
// emails trimmed and lower-cased, phones as '+' and E.164 digits, ids
// trimmed; empty values and repeats dropped. ok is false when nothing is left.
func normalised(s sources.Subject) (raw rawSubject, ok bool, err error) {
	raw = rawSubject{Emails: []string{}, Phones: []string{}, IDs: map[string]string{}}
	for _, e := range s.Emails {
		e = strings.ToLower(strings.TrimSpace(e))
		if e != "" && !slices.Contains(raw.Emails, e) {
			raw.Emails = append(raw.Emails, e)
		}
	}
	for _, p := range s.Phones {
		digits := strings.TrimPrefix(strings.TrimSpace(p), "+")
		if digits == "" {
			continue
		}
		if strings.Trim(digits, "0123456789") != "" || len(digits) > 15 {
			return raw, false, fmt.Errorf("webhook: a subject phone is not E.164 digits")
		}
		if p := "+" + digits; !slices.Contains(raw.Phones, p) {
			raw.Phones = append(raw.Phones, p)
		}
	}
	for name, v := range s.IDs {
		if v = strings.TrimSpace(v); v != "" && name != "" {
			raw.IDs[name] = v
		}
	}
	return raw, len(raw.Emails)+len(raw.Phones)+len(raw.IDs) > 0, nil
}

// HashIdentifier returns the hex HMAC-SHA256 of a normalised identifier
// under key, as sent in hashed mode. Receivers hash their own values the
// same way to compare.
func HashIdentifier(key []byte, normalisedValue string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(normalisedValue))
	return hex.EncodeToString(m.Sum(nil))
}

// wireSubject returns the "subject" member for the configured mode.
func (c *Connector) wireSubject(s sources.Subject) (any, bool, error) {
	key := c.cfg.HashKey
	if c.cfg.Identifiers != IdentifiersHashed {
		key = nil
	}
	return WireSubject(s, key)
}

// WireSubject is the "subject" member as webhook systems receive it: the
// normalised identifiers {"emails","phones","ids"}, or with a hash key
// their keyed hashes {"emailHashes","phoneHashes","idHashes"}. ok is false
// when the subject has no identifier.
func WireSubject(s sources.Subject, hashKey []byte) (any, bool, error) {
	raw, ok, err := normalised(s)
	if err != nil || !ok {
		return nil, ok, err
	}
	if hashKey == nil {
		return raw, true, nil
	}
	h := hashedSubject{EmailHashes: []string{}, PhoneHashes: []string{}, IDHashes: map[string]string{}}
	for _, e := range raw.Emails {
		h.EmailHashes = append(h.EmailHashes, HashIdentifier(hashKey, e))
	}
	for _, p := range raw.Phones {
		h.PhoneHashes = append(h.PhoneHashes, HashIdentifier(hashKey, p))
	}
	for name, v := range raw.IDs {
		h.IDHashes[name] = HashIdentifier(hashKey, v)
	}
	return h, true, nil
}

// Discover asks the system for the subject's records in every configured
// dataset (following "next" pages) and returns one DatasetMatches per
// dataset, in config order: Records is the count, and one Location
// {Blob: "webhook", Keys: the record ids sorted} when there are any. The
// context must carry the request (WithRequest).
//
// With async enabled, a complete result already delivered to the callback
// is used instead of asking again; when the system answers 202, Discover
// fails with an error wrapping ErrPending. A subject without identifiers
// matches nothing and sends nothing.
func (c *Connector) Discover(ctx context.Context, subj sources.Subject) (*sources.Discovery, error) {
	info, err := requestFrom(ctx)
	if err != nil {
		return nil, err
	}
	ids := map[string]map[string]bool{}
	for _, n := range c.names {
		ids[n] = map[string]bool{}
	}
	visit := func(ds string, pr pageRecord) error {
		if ids[ds][pr.ID] {
			return fmt.Errorf("webhook %s: dataset %s: two records share one id", c.cfg.Name, ds)
		}
		ids[ds][pr.ID] = true
		return nil
	}
	ws, ok, err := c.wireSubject(subj)
	if err != nil {
		return nil, err
	}
	if ok {
		if err := c.result(ctx, info.id, ws, c.names, nil, visit); err != nil {
			return nil, err
		}
	}
	out := &sources.Discovery{}
	for _, n := range c.names {
		m := sources.DatasetMatches{Dataset: n, Records: int64(len(ids[n]))}
		if len(ids[n]) > 0 {
			keys := make([]string, 0, len(ids[n]))
			for k := range ids[n] {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			m.Locations = []sources.Location{{Blob: LocationBlob, Keys: keys}}
		}
		out.Datasets = append(out.Datasets, m)
	}
	return out, nil
}

// Read emits the records of one dataset named by the matches' Keys, in
// Keys order, with their fields in the order the system sent them. It
// fetches them again (or reads the stored asynchronous result); a key the
// system no longer returns fails with sources.ErrChanged before anything is
// emitted. The context must carry the request and its subject (WithRequest).
func (c *Connector) Read(ctx context.Context, m sources.DatasetMatches, emit func(sources.Record) error) error {
	if _, ok := c.keys[m.Dataset]; !ok {
		return fmt.Errorf("webhook %s: unknown dataset %q", c.cfg.Name, m.Dataset)
	}
	var keys []string
	want := map[string]bool{}
	for _, loc := range m.Locations {
		if loc.Blob != LocationBlob {
			return fmt.Errorf("webhook %s: dataset %s: location names %q, want %q", c.cfg.Name, m.Dataset, loc.Blob, LocationBlob)
		}
		for _, k := range loc.Keys {
			if !want[k] {
				want[k] = true
				keys = append(keys, k)
			}
		}
	}
	if len(keys) == 0 {
		return nil
	}
	info, err := requestFrom(ctx)
	if err != nil {
		return err
	}
	ws, ok, err := c.wireSubject(info.subject)
	if err != nil {
		return err
	}
	if !ok && !c.async() {
		return fmt.Errorf("webhook %s: dataset %s: read: the context's subject has no identifiers", c.cfg.Name, m.Dataset)
	}
	got := map[string]sources.Record{}
	seen := map[string]bool{}
	keep := func(ds, id string) bool { return ds == m.Dataset && want[id] }
	visit := func(ds string, pr pageRecord) error {
		if ds != m.Dataset {
			return nil
		}
		if seen[pr.ID] {
			return fmt.Errorf("webhook %s: dataset %s: two records share one id", c.cfg.Name, ds)
		}
		seen[pr.ID] = true
		if want[pr.ID] {
			got[pr.ID] = pr.Rec
		}
		return nil
	}
	if err := c.result(ctx, info.id, ws, []string{m.Dataset}, keep, visit); err != nil {
		return err
	}
	if len(got) != len(keys) {
		return fmt.Errorf("webhook %s: dataset %s: %w (%d of %d records remain)", c.cfg.Name, m.Dataset, sources.ErrChanged, len(got), len(keys))
	}
	for _, k := range keys {
		if err := emit(got[k]); err != nil {
			return err
		}
	}
	return nil
}

// result visits every record of datasets for the request: from the stored
// asynchronous result when it is complete, otherwise by asking the system.
// ws nil (no identifiers) only reads a stored result.
func (c *Connector) result(ctx context.Context, requestID string, ws any, datasets []string, keep func(ds, id string) bool, visit func(string, pageRecord) error) error {
	if c.async() {
		cursors, complete, err := c.stored(ctx, requestID)
		if err != nil {
			return err
		}
		if complete {
			return c.fromStore(ctx, requestID, cursors, datasets, keep, visit)
		}
	}
	if ws == nil {
		return fmt.Errorf("webhook %s: %s: read: the context's subject has no identifiers", c.cfg.Name, describeDatasets(datasets))
	}
	return c.access(ctx, requestID, ws, datasets, keep, visit)
}

// stored reports whether the stored result for requestID is complete and
// returns its pages' cursors in order; it sets the completion marker when
// the pages turn out complete.
func (c *Connector) stored(ctx context.Context, requestID string) ([]string, bool, error) {
	marked, err := c.store.Complete(ctx, requestID)
	if err != nil {
		return nil, false, fmt.Errorf("webhook %s: stored result: %w", c.cfg.Name, err)
	}
	links, err := c.store.Links(ctx, requestID)
	if err != nil {
		return nil, false, fmt.Errorf("webhook %s: stored result: %w", c.cfg.Name, err)
	}
	cursors, complete, err := chain(links)
	if err != nil {
		return nil, false, fmt.Errorf("webhook %s: stored result: %w", c.cfg.Name, err)
	}
	if marked && !complete {
		return nil, false, fmt.Errorf("webhook %s: stored result is marked complete but pages are missing", c.cfg.Name)
	}
	if complete && !marked {
		if err := c.store.MarkComplete(ctx, requestID); err != nil {
			return nil, false, fmt.Errorf("webhook %s: stored result: %w", c.cfg.Name, err)
		}
	}
	return cursors, complete, nil
}

// chain follows the pages from cursor "" by their "next" links: complete
// when it reaches a page whose next is "".
func chain(links map[string]string) ([]string, bool, error) {
	var order []string
	visited := map[string]bool{}
	cur := ""
	for {
		next, ok := links[cur]
		if !ok {
			return order, false, nil
		}
		order = append(order, cur)
		visited[cur] = true
		if next == "" {
			return order, true, nil
		}
		if visited[next] {
			return nil, false, fmt.Errorf("the pages' next cursors form a loop")
		}
		cur = next
	}
}

func (c *Connector) fromStore(ctx context.Context, requestID string, cursors, datasets []string, keep func(ds, id string) bool, visit func(string, pageRecord) error) error {
	for i, cur := range cursors {
		for _, ds := range datasets {
			key := c.keys[ds]
			n := 0
			err := c.store.Records(ctx, requestID, cur, ds, func(raw json.RawMessage) error {
				rec, id, err := parseRecord(raw, key)
				if err != nil {
					return fmt.Errorf("webhook %s: dataset %s: stored page %d: record %d: %w", c.cfg.Name, ds, i+1, n, err)
				}
				n++
				pr := pageRecord{ID: id}
				if keep != nil && keep(ds, id) {
					pr.Raw, pr.Rec = raw, rec
				}
				return visit(ds, pr)
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// access asks the system for the records of datasets, page by page, and
// visits each. MaxResponseBytes bounds all pages together.
func (c *Connector) access(ctx context.Context, requestID string, ws any, datasets []string, keep func(ds, id string) bool, visit func(string, pageRecord) error) error {
	callback := ""
	if c.async() {
		// Before asking: a fast system may call back before it answers.
		if err := c.store.Begin(ctx, requestID); err != nil {
			return fmt.Errorf("webhook %s: %s: access: %w", c.cfg.Name, describeDatasets(datasets), err)
		}
		callback = c.cfg.CallbackBase + "/" + requestID
	}
	var used int64
	cursor := ""
	seenCursors := map[string]bool{"": true}
	for pageNo := 1; ; pageNo++ {
		body, err := json.Marshal(wireRequest{Action: ActionAccess, RequestID: requestID, Subject: ws, Datasets: datasets, Cursor: cursor, CallbackURL: callback})
		if err != nil {
			return fmt.Errorf("webhook %s: access: %w", c.cfg.Name, err)
		}
		idem := requestID + ":" + ActionAccess
		if cursor != "" {
			idem += ":" + cursor
		}
		var pg *page
		var read int64
		pending := false
		cl := &call{action: ActionAccess, datasets: datasets, requestID: requestID, idemKey: idem, body: body, limit: c.cfg.MaxResponseBytes - used,
			handle: func(_ context.Context, resp *http.Response, r *capReader) error {
				switch {
				case resp.StatusCode == http.StatusAccepted && pageNo == 1 && callback != "":
					pending = true
					return nil
				case resp.StatusCode == http.StatusAccepted:
					return fmt.Errorf("page %d: HTTP 202, but asynchronous delivery is only possible for the first page and with a callback URL", pageNo)
				case resp.StatusCode != http.StatusOK:
					return fmt.Errorf("page %d: HTTP %d is not an access answer", pageNo, resp.StatusCode)
				}
				p, err := decodePage(r, c.keys, keep)
				if errors.Is(err, ErrResponseTooLarge) {
					return fmt.Errorf("page %d: the result exceeds %d bytes (MaxResponseBytes): %w", pageNo, c.cfg.MaxResponseBytes, ErrResponseTooLarge)
				}
				if err != nil {
					return fmt.Errorf("page %d: %w", pageNo, err)
				}
				pg, read = p, r.read
				return nil
			}}
		if err := c.do(ctx, cl); err != nil {
			return err
		}
		if pending {
			return c.errorf(cl, 1, http.StatusAccepted, "accepted (HTTP 202); the result will be delivered to the callback", false, ErrPending)
		}
		used += read
		for _, ds := range c.names {
			for _, pr := range pg.Records[ds] {
				if err := visit(ds, pr); err != nil {
					return err
				}
			}
		}
		if pg.Next == "" {
			return nil
		}
		if seenCursors[pg.Next] {
			return c.errorf(cl, 1, http.StatusOK, fmt.Sprintf("page %d: the next cursor repeats an earlier one (paging loops)", pageNo), false, nil)
		}
		if pageNo >= maxPages {
			return c.errorf(cl, 1, http.StatusOK, fmt.Sprintf("more than %d pages", maxPages), false, nil)
		}
		seenCursors[pg.Next] = true
		cursor = pg.Next
	}
}

// changeResponse is a change's answer.
type changeResponse struct {
	Deleted  int64 `json:"deleted"`
	Masked   int64 `json:"masked"`
	Retained int64 `json:"retained"`
	Changed  int64 `json:"changed"`
}

// Apply asks the system to make a change to the subject's records in one
// dataset: it POSTs the action with the subject (and, for rectification,
// the corrections) and returns the counts the system reports. The
// Idempotency-Key is requestId:action:dataset; the system must apply a
// repeated key once. A 202 answer fails with an error wrapping ErrPending
// (call again later). In hashed mode rectification fails with
// ErrHashedRectification without contacting the system.
func (c *Connector) Apply(ctx context.Context, dataset string, ch sources.Change) (sources.ChangeResult, error) {
	var res sources.ChangeResult
	if _, ok := c.keys[dataset]; !ok {
		return res, fmt.Errorf("webhook %s: unknown dataset %q", c.cfg.Name, dataset)
	}
	switch ch.Action {
	case ActionErasure, ActionRestriction, ActionLiftRestriction:
		if len(ch.Corrections) > 0 {
			return res, fmt.Errorf("webhook %s: dataset %s: %s: corrections are only sent with a rectification", c.cfg.Name, dataset, ch.Action)
		}
	case ActionRectification:
		if c.cfg.Identifiers == IdentifiersHashed {
			return res, fmt.Errorf("webhook %s: dataset %s: %w", c.cfg.Name, dataset, ErrHashedRectification)
		}
		if len(ch.Corrections) == 0 {
			return res, fmt.Errorf("webhook %s: dataset %s: rectification without corrections", c.cfg.Name, dataset)
		}
		for k, v := range ch.Corrections {
			if k != "email" && k != "phone" && k != "name" {
				return res, fmt.Errorf("webhook %s: dataset %s: rectification: correction kind %q is not email, phone or name", c.cfg.Name, dataset, k)
			}
			if strings.TrimSpace(v) == "" {
				return res, fmt.Errorf("webhook %s: dataset %s: rectification: the %s correction is empty", c.cfg.Name, dataset, k)
			}
		}
	default:
		return res, fmt.Errorf("webhook %s: dataset %s: unknown action %q", c.cfg.Name, dataset, ch.Action)
	}
	if !ValidRequestID(ch.RequestID) {
		return res, fmt.Errorf("webhook %s: dataset %s: %s: request id is not [A-Za-z0-9_-], 1 to 128 characters", c.cfg.Name, dataset, ch.Action)
	}
	ws, ok, err := c.wireSubject(ch.Subject)
	if err != nil {
		return res, fmt.Errorf("webhook %s: dataset %s: %s: %w", c.cfg.Name, dataset, ch.Action, err)
	}
	if !ok {
		return res, fmt.Errorf("webhook %s: dataset %s: %s: the subject has no identifiers; nothing is sent", c.cfg.Name, dataset, ch.Action)
	}
	wr := wireRequest{Action: ch.Action, RequestID: ch.RequestID, Subject: ws, Datasets: []string{dataset}}
	if ch.Action == ActionRectification {
		wr.Corrections = ch.Corrections
	}
	body, err := json.Marshal(wr)
	if err != nil {
		return res, fmt.Errorf("webhook %s: dataset %s: %s: %w", c.cfg.Name, dataset, ch.Action, err)
	}
	pending := false
	cl := &call{action: ch.Action, datasets: []string{dataset}, requestID: ch.RequestID,
		idemKey: ch.RequestID + ":" + ch.Action + ":" + dataset, body: body, limit: maxChangeResponse,
		handle: func(_ context.Context, resp *http.Response, r *capReader) error {
			switch resp.StatusCode {
			case http.StatusAccepted:
				pending = true
				return nil
			case http.StatusOK:
			default:
				return fmt.Errorf("HTTP %d is not a change answer", resp.StatusCode)
			}
			dec := json.NewDecoder(r)
			var cr changeResponse
			if err := dec.Decode(&cr); err != nil {
				if errors.Is(err, ErrResponseTooLarge) {
					return fmt.Errorf("the answer exceeds %d bytes: %w", maxChangeResponse, err)
				}
				return fmt.Errorf("answer: %w", jsonErr(err, dec))
			}
			if cr.Deleted < 0 || cr.Masked < 0 || cr.Retained < 0 || cr.Changed < 0 {
				return fmt.Errorf("answer: a count is negative")
			}
			res = sources.ChangeResult(cr)
			return nil
		}}
	if err := c.do(ctx, cl); err != nil {
		return sources.ChangeResult{}, err
	}
	if pending {
		return sources.ChangeResult{}, c.errorf(cl, 1, http.StatusAccepted, "accepted (HTTP 202) but not done yet; call again with the same request id", false, ErrPending)
	}
	return res, nil
}
