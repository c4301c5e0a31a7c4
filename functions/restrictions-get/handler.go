// Package restrictionsget is the restrictions-get function:
// GET /api/restrictions?email=… (or phone=…, or id=<name>:<value>) tells
// downstream systems whether processing of a person is restricted (Art. 18),
// since when and why.
package restrictionsget

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/dsr-functions/dsr/shared/api"
	"github.com/dsr-functions/dsr/shared/match"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/problem"
	"github.com/dsr-functions/dsr/shared/store"
)

// Answer is the registry's answer for one identifier.
type Answer struct {
	Restricted bool       `json:"restricted"`
	Since      *time.Time `json:"since,omitempty"`
	Ground     string     `json:"ground,omitempty"`
	RequestID  string     `json:"requestId,omitempty"`
	LiftedAt   *time.Time `json:"liftedAt,omitempty"`
	// LiftedBy is the request that lifted it (RequestID made it).
	LiftedBy string `json:"liftedBy,omitempty"`
}

// New returns the handler. The identifier is normalised like a request's
// (emails lower-cased, phones to E.164) and never echoed or logged.
func New(svc *pipeline.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, bad := api.Query(r)
		if bad != nil {
			problem.Write(w, r, bad)
			return
		}
		if len(q) != 1 || len(q[firstKey(q)]) != 1 {
			problem.Write(w, r, api.BadParam("query", "give exactly one of email, phone or id=<name>:<value>"))
			return
		}
		kind, value := firstKey(q), strings.TrimSpace(q.Get(firstKey(q)))
		var err error
		switch kind {
		case "email":
			value, err = match.NormalizeEmail(value)
		case "phone":
			value, err = match.NormalizePhone(value, svc.PhoneRegion)
			value = "+" + value
		case "id":
			name, v, ok := strings.Cut(value, ":")
			if !ok || name == "" || v == "" {
				err = errors.New("malformed")
			}
			kind, value = "id:"+name, v
		default:
			problem.Write(w, r, api.BadParam(kind, "unknown query parameter (known: email, phone, id)"))
			return
		}
		if err != nil {
			problem.Write(w, r, api.BadParam(strings.SplitN(kind, ":", 2)[0], "not a valid identifier"))
			return
		}
		entry, err := svc.Restricted(r.Context(), kind, value)
		if errors.Is(err, store.ErrNotFound) {
			api.WriteJSON(w, http.StatusOK, Answer{Restricted: false})
			return
		}
		if err != nil {
			svc.Log.Error("restriction lookup", "err", err)
			problem.Write(w, r, api.Internal())
			return
		}
		since := entry.Since
		api.WriteJSON(w, http.StatusOK, Answer{Restricted: entry.Restricted, Since: &since, Ground: entry.Ground, RequestID: entry.RequestID, LiftedAt: entry.LiftedAt, LiftedBy: entry.LiftedBy})
	})
}

func firstKey(q map[string][]string) string {
	for k := range q {
		return k
	}
	return ""
}
