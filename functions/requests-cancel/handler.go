// Package requestscancel is the requests-cancel function:
// POST /api/requests/{id}/cancel ends an open request.
package requestscancel

import (
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	requestsget "github.com/dsr-functions/dsr/functions/requests-get"
	"github.com/dsr-functions/dsr/shared/api"
	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/problem"
)

// MaxReason bounds decision reasons.
const MaxReason = 1000

// Body is the optional request body.
type Body struct {
	Reason string `json:"reason"`
}

// New returns the handler: 200 with the cancelled request, 409 when it has
// already ended.
func New(svc *pipeline.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b Body
		if r.ContentLength != 0 {
			raw, p := api.ReadJSONBody(r)
			if p == nil {
				p = api.DecodeStrict(raw, &b)
			}
			if p != nil {
				problem.Write(w, r, p)
				return
			}
		}
		if p := CheckReason(b.Reason, ""); p != nil {
			problem.Write(w, r, p)
			return
		}
		st, ok := requestsget.Load(w, r, svc)
		if !ok {
			return
		}
		st, err := svc.Cancel(r.Context(), st.ID, b.Reason, Caller(r))
		Respond(w, r, svc, st, err)
	})
}

// CheckReason validates a decision reason: at most MaxReason characters,
// and, when requiredWhy is set, present (requiredWhy says why it is needed).
func CheckReason(reason, requiredWhy string) *problem.Details {
	if requiredWhy != "" && strings.TrimSpace(reason) == "" {
		return api.BadField(http.StatusUnprocessableEntity, "invalid-request", "reason", "required: "+requiredWhy)
	}
	if utf8.RuneCountInString(reason) > MaxReason {
		return api.BadField(http.StatusUnprocessableEntity, "invalid-request", "reason", "must be at most 1000 characters")
	}
	return nil
}

// Caller is the deciding caller as the audit trail names it.
func Caller(r *http.Request) dsr.Actor {
	c := auth.FromContext(r.Context())
	return dsr.Actor{Kind: c.Kind, ID: c.ID, Name: c.Name}
}

// Respond answers a staff decision: the request document, 409 when the
// state does not allow it, 500 otherwise.
func Respond(w http.ResponseWriter, r *http.Request, svc *pipeline.Service, st *dsr.Stored, err error) {
	if errors.Is(err, pipeline.ErrConflict) {
		problem.Write(w, r, problem.New(http.StatusConflict, "not-allowed", "", err.Error()))
		return
	}
	if err != nil {
		svc.Log.Error("decision", "err", err)
		problem.Write(w, r, api.Internal())
		return
	}
	doc, err := svc.View(r.Context(), st, auth.FromContext(r.Context()).Has(auth.RoleExport))
	if err != nil {
		svc.Log.Error("view request", "requestId", st.ID, "err", err)
		problem.Write(w, r, api.Internal())
		return
	}
	api.WriteJSON(w, http.StatusOK, doc)
}
