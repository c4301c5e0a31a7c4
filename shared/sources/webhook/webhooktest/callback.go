package webhooktest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/dsr-functions/dsr/shared/sources/webhook"
)

// job is an asynchronous access result waiting to be delivered.
type job struct {
	requestID string
	url       string
	pages     []cbPage
	running   bool
	done      bool
}

type cbPage struct {
	cursor    string
	body      []byte
	delivered bool
}

// Delivery is one callback POST attempt.
type Delivery struct {
	// RequestID is the request whose result was delivered.
	RequestID string
	// URL is the callbackUrl posted to.
	URL string
	// Cursor is the page's cursor ("" for the first page).
	Cursor string
	// Body is the signed body sent.
	Body []byte
	// Attempt counts the attempts of this page, from 1.
	Attempt int
	// Status is the receiver's status, 0 if there was no answer.
	Status int
	// Answer is the receiver's answer body.
	Answer string
	// Err describes a transport failure.
	Err string
}

// startJob snapshots the result of an access into callback pages and, unless
// callbacks are manual, starts delivering it; s.mu is held.
func (s *System) startJob(rec *Request) {
	size := s.opts.CallbackPageSize
	if size == 0 {
		size = s.opts.PageSize
	}
	hits := s.result(rec.Datasets, rec.Subject)
	var chunks [][]hit
	for len(hits) > 0 && size > 0 && len(hits) > size {
		chunks = append(chunks, hits[:size])
		hits = hits[size:]
	}
	chunks = append(chunks, hits)
	j := &job{requestID: rec.RequestID, url: rec.CallbackURL}
	for i, c := range chunks {
		cursor, next := "", ""
		if i > 0 {
			cursor = "cb/" + strconv.Itoa(i+1)
		}
		if i < len(chunks)-1 {
			next = "cb/" + strconv.Itoa(i+2)
		}
		j.pages = append(j.pages, cbPage{cursor: cursor, body: pageBody(c, &cursor, next)})
	}
	s.jobs[rec.RequestID] = j
	if s.opts.ManualCallbacks {
		return
	}
	j.running = true
	s.inflight++
	go func() {
		defer func() {
			s.mu.Lock()
			j.running = false
			s.inflight--
			s.idle.Broadcast()
			s.mu.Unlock()
		}()
		if d := s.opts.CallbackDelay; d > 0 {
			select {
			case <-time.After(d):
			case <-s.ctx.Done():
				return
			}
		}
		if err := s.deliverJob(s.ctx, j); err != nil && s.ctx.Err() == nil {
			s.t.Errorf("webhooktest: callback for request %s: %v", j.requestID, err)
		}
	}()
}

// Deliver POSTs every asynchronous result not yet delivered (with
// Options.ManualCallbacks, or one whose automatic delivery failed), page by
// page, retrying a page on a transport error, 408, 429 and 5xx up to 5
// times. It returns the first failure, e.g. a 4xx answer, or a last page
// not answered {"complete":true}.
func (s *System) Deliver(ctx context.Context) error {
	s.mu.Lock()
	var todo []*job
	for _, id := range slices.Sorted(maps.Keys(s.jobs)) {
		if j := s.jobs[id]; !j.done && !j.running {
			j.running = true
			todo = append(todo, j)
		}
	}
	s.mu.Unlock()
	var first error
	for _, j := range todo {
		err := s.deliverJob(ctx, j)
		if err != nil && first == nil {
			first = fmt.Errorf("webhooktest: callback for request %s: %w", j.requestID, err)
		}
		s.mu.Lock()
		j.running = false
		s.mu.Unlock()
	}
	return first
}

// Pending returns the request ids whose asynchronous result is not
// completely delivered yet, sorted.
func (s *System) Pending() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, j := range s.jobs {
		if !j.done {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Wait blocks until no automatic delivery is in progress.
func (s *System) Wait() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.inflight > 0 {
		s.idle.Wait()
	}
}

// Deliveries returns every callback POST attempt so far, in order.
func (s *System) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deliveries)
}

// deliverJob posts the pages of j not delivered yet.
func (s *System) deliverJob(ctx context.Context, j *job) error {
	order := make([]int, len(j.pages))
	for i := range order {
		order[i] = i
	}
	if s.opts.CallbackReverse {
		slices.Reverse(order)
	}
	last := ""
	for _, i := range order {
		s.mu.Lock()
		p := j.pages[i]
		s.mu.Unlock()
		if p.delivered {
			continue
		}
		answer, err := s.post(ctx, j, p)
		if err != nil {
			return err
		}
		s.mu.Lock()
		j.pages[i].delivered = true
		s.mu.Unlock()
		last = answer
	}
	s.mu.Lock()
	j.done = true
	s.mu.Unlock()
	var a struct {
		Complete *bool `json:"complete"`
	}
	if err := json.Unmarshal([]byte(last), &a); last != "" && (err != nil || a.Complete == nil || !*a.Complete) {
		return fmt.Errorf("every page is delivered but the last answer is %q, not {\"complete\":true}", last)
	}
	return nil
}

// post delivers one page, retrying what a sender should retry.
func (s *System) post(ctx context.Context, j *job, p cbPage) (string, error) {
	client := s.opts.CallbackClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	const attempts = 5
	for attempt := 1; ; attempt++ {
		d := Delivery{RequestID: j.requestID, URL: j.url, Cursor: p.cursor, Body: p.body, Attempt: attempt}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.url, bytes.NewReader(p.body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/json")
		webhook.SetSignature(req.Header, s.secret, p.body, time.Now())
		resp, err := client.Do(req)
		retry := true
		if err != nil {
			d.Err = err.Error()
		} else {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			d.Status, d.Answer = resp.StatusCode, string(b)
			retry = resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
		}
		s.mu.Lock()
		s.deliveries = append(s.deliveries, d)
		s.mu.Unlock()
		switch {
		case d.Status == http.StatusOK:
			return d.Answer, nil
		case d.Status == http.StatusNotFound:
			s.mu.Lock()
			j.done = true
			s.mu.Unlock()
			return "", fmt.Errorf("page %q: the receiver answered 404 (it awaits no result for this request); the result is dropped", p.cursor)
		case !retry || attempt == attempts || ctx.Err() != nil:
			if d.Err != "" {
				return "", fmt.Errorf("page %q: attempt %d: %s", p.cursor, attempt, d.Err)
			}
			return "", fmt.Errorf("page %q: attempt %d: HTTP %d %s", p.cursor, attempt, d.Status, d.Answer)
		}
		select {
		case <-time.After(time.Duration(10<<attempt) * time.Millisecond):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}
