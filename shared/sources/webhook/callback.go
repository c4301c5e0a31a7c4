package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/dsr-functions/dsr/shared/problem"
)

// CallbackOptions tune the callback endpoint.
type CallbackOptions struct {
	// MaxSkew is how far the callback's signed timestamp may be from now
	// (default DefaultMaxSkew).
	MaxSkew time.Duration
	// OnComplete, when set, is called after every stored callback that
	// finds the request's result complete (so at least once per result, and
	// again for a redelivery after completion): typically it enqueues the
	// request's discovery again, and must be idempotent. An error makes the
	// endpoint answer 500, so the system delivers again.
	OnComplete func(ctx context.Context, requestID string) error
}

// CallbackHandler returns the endpoint to which the system POSTs
// asynchronous access results: CallbackBase + "/" + requestId. The request
// id is the "id" path value when the route defines one ({id}), otherwise the
// last path segment. It
//
//   - reads at most MaxResponseBytes (413 beyond),
//   - verifies X-DSR-Timestamp and X-DSR-Signature with the system's secret
//     (401 otherwise),
//   - refuses a request id for which no access is awaited (404: never asked,
//     or its results were deleted; the system should drop the result),
//   - validates the body like a 200 access answer (400 otherwise): records
//     only for configured datasets, each with its string key, no id twice,
//   - stores the page create-only (a redelivery changes nothing) and answers
//     200 {"complete": true|false}.
//
// Error answers are RFC 9457 problem+json and never echo a value from the
// request. Nothing is stored unless every check passed.
func (c *Connector) CallbackHandler(opts CallbackOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			problem.Write(w, r, problem.New(http.StatusMethodNotAllowed, "method-not-allowed", "", "only POST is accepted"))
			return
		}
		if !c.async() {
			problem.Write(w, r, problem.New(http.StatusNotFound, "async-disabled", "", "asynchronous delivery is not enabled for this system"))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.cfg.MaxResponseBytes))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge, "too-large", "", "the body exceeds the configured maximum size"))
				return
			}
			problem.Write(w, r, problem.New(http.StatusBadRequest, "unreadable-body", "", "the body could not be read"))
			return
		}
		if err := Verify(c.cfg.Secret, r.Header, body, c.now(), opts.MaxSkew); err != nil {
			detail := "the signature does not verify"
			if errors.Is(err, ErrStaleTimestamp) {
				detail = "the timestamp is missing, malformed or outside the accepted window"
			}
			problem.Write(w, r, problem.New(http.StatusUnauthorized, "bad-signature", "", detail))
			return
		}
		id := r.PathValue("id")
		if id == "" {
			id = r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		}
		if !ValidRequestID(id) {
			problem.Write(w, r, problem.New(http.StatusBadRequest, "bad-request-id", "", "the path does not end in a request id"))
			return
		}
		ctx := r.Context()
		begun, err := c.store.Begun(ctx, id)
		if err != nil {
			problem.Write(w, r, problem.New(http.StatusInternalServerError, "store-failed", "", "the result could not be stored; deliver it again later"))
			return
		}
		if !begun {
			problem.Write(w, r, problem.New(http.StatusNotFound, "unknown-request", "", "no access result is awaited for this request; drop it"))
			return
		}
		pg, err := decodePage(bytes.NewReader(body), c.keys, func(string, string) bool { return true })
		if err == nil {
			err = checkUniqueIDs(pg)
		}
		if err != nil {
			problem.Write(w, r, problem.New(http.StatusBadRequest, "bad-body", "", err.Error()))
			return
		}
		sp := StoredPage{Cursor: pg.Cursor, Next: pg.Next, Records: map[string][]json.RawMessage{}}
		for ds, recs := range pg.Records {
			if len(recs) == 0 {
				continue
			}
			raws := make([]json.RawMessage, len(recs))
			for i, pr := range recs {
				raws[i] = pr.Raw
			}
			sp.Records[ds] = raws
		}
		if err := c.store.PutPage(ctx, id, sp); err != nil {
			problem.Write(w, r, problem.New(http.StatusInternalServerError, "store-failed", "", "the result could not be stored; deliver it again later"))
			return
		}
		// A Delete may have run since the first check: then what was just
		// written must not outlive it.
		if begun, err = c.store.Begun(ctx, id); err != nil || !begun {
			if err == nil {
				err = c.store.Delete(ctx, id)
			}
			if err != nil {
				problem.Write(w, r, problem.New(http.StatusInternalServerError, "store-failed", "", "the result could not be stored; deliver it again later"))
				return
			}
			problem.Write(w, r, problem.New(http.StatusNotFound, "unknown-request", "", "no access result is awaited for this request; drop it"))
			return
		}
		_, complete, err := c.stored(ctx, id)
		if err != nil {
			problem.Write(w, r, problem.New(http.StatusInternalServerError, "store-failed", "", "the stored result could not be checked; deliver it again later"))
			return
		}
		if complete && opts.OnComplete != nil {
			if err := opts.OnComplete(ctx, id); err != nil {
				problem.Write(w, r, problem.New(http.StatusInternalServerError, "notify-failed", "", "the result was stored but could not be processed; deliver it again later"))
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(map[string]bool{"complete": complete})
	})
}

// checkUniqueIDs refuses a page in which two records of one dataset share an id.
func checkUniqueIDs(p *page) error {
	for ds, recs := range p.Records {
		seen := make(map[string]bool, len(recs))
		for _, pr := range recs {
			if seen[pr.ID] {
				return errors.New("response: dataset " + ds + ": two records share one id")
			}
			seen[pr.ID] = true
		}
	}
	return nil
}
