// Package requestslist is the requests-list function: GET /api/requests.
package requestslist

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dsr-functions/dsr/shared/api"
	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/problem"
	"github.com/dsr-functions/dsr/shared/store"
)

// Page size limits.
const (
	defaultLimit = 50
	maxLimit     = 200
)

// stateNames and typeNames are what the state and type filters accept.
var (
	stateNames = names(dsr.States)
	typeNames  = names(dsr.Types)
)

func names[T ~string](list []T) []string {
	out := make([]string, len(list))
	for i, v := range list {
		out[i] = string(v)
	}
	return out
}

// Page is one page of the listing.
type Page struct {
	Items         []store.Summary `json:"items"`
	NextPageToken string          `json:"nextPageToken,omitempty"`
}

// New returns the handler: requests oldest first, filtered by state, type,
// overdue (open and past their deadline) and dueBefore, paginated with limit
// and pageToken. Callers who may only see their
// own requests list only those. Listings never carry subject identifiers.
func New(svc *pipeline.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, bad := api.Query(r, "state", "type", "overdue", "dueBefore", "followUp", "limit", "pageToken")
		if bad != nil {
			problem.Write(w, r, bad)
			return
		}
		f := store.Filter{State: dsr.State(q.Get("state")), Type: dsr.Type(q.Get("type"))}
		if auth.OwnOnly(r.Context()) {
			f.CreatedBy = auth.FromContext(r.Context()).Ref()
		}
		switch q.Get("overdue") {
		case "", "false":
		case "true":
			f.Open, f.DueBefore = true, svc.NowUTC()
		default:
			problem.Write(w, r, api.BadParam("overdue", "must be true or false"))
			return
		}
		switch q.Get("followUp") {
		case "", "false":
		case "true":
			f.FollowUp = true
		default:
			problem.Write(w, r, api.BadParam("followUp", "must be true or false"))
			return
		}
		if s := q.Get("dueBefore"); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				problem.Write(w, r, api.BadParam("dueBefore", "must be an RFC 3339 timestamp such as 2026-02-28T00:00:00Z"))
				return
			}
			if f.DueBefore.IsZero() || t.Before(f.DueBefore) {
				f.DueBefore = t
			}
		}
		if f.State != "" && !f.State.Known() {
			problem.Write(w, r, api.BadParam("state", "must be one of "+strings.Join(stateNames, ", ")))
			return
		}
		if f.Type != "" && !f.Type.Known() {
			problem.Write(w, r, api.BadParam("type", "must be one of "+strings.Join(typeNames, ", ")))
			return
		}
		limit := defaultLimit
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > maxLimit {
				problem.Write(w, r, api.BadParam("limit", "must be an integer from 1 to 200"))
				return
			}
			limit = n
		}
		items, next, err := svc.Store.List(r.Context(), f, limit, q.Get("pageToken"))
		if errors.Is(err, store.ErrBadPageToken) {
			problem.Write(w, r, api.BadParam("pageToken", "not a token from a previous page"))
			return
		}
		if err != nil {
			svc.Log.Error("list requests", "err", err)
			problem.Write(w, r, api.Internal())
			return
		}
		api.WriteJSON(w, http.StatusOK, Page{Items: items, NextPageToken: next})
	})
}
