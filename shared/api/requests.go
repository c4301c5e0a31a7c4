package api

import (
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/problem"
	"github.com/dsr-functions/dsr/shared/store"
)

// MaxReason bounds decision reasons.
const MaxReason = 1000

// LoadRequest reads the request named by the {id} path segment. It writes
// 400 for a malformed id and 404 for an unknown one, or for another
// caller's request when the caller may only see its own (its existence is
// not disclosed).
func LoadRequest(w http.ResponseWriter, r *http.Request, svc *pipeline.Service) (*dsr.Stored, bool) {
	id := r.PathValue("id")
	if !dsr.ValidID(id) {
		problem.Write(w, r, BadParam("id", "not a request id"))
		return nil, false
	}
	st, _, err := svc.Store.Get(r.Context(), id)
	if err == nil && auth.OwnOnly(r.Context()) && st.CreatedBy != auth.FromContext(r.Context()).Ref() {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		problem.Write(w, r, problem.New(http.StatusNotFound, "request-not-found", "", "no request has this id"))
		return nil, false
	}
	if err != nil {
		svc.Log.Error("read request", "requestId", id, "err", err)
		problem.Write(w, r, Internal())
		return nil, false
	}
	return st, true
}

// CheckReason validates a decision reason: at most MaxReason characters,
// and, when requiredWhy is set, present (requiredWhy says why it is needed).
func CheckReason(reason, requiredWhy string) *problem.Details {
	if requiredWhy != "" && strings.TrimSpace(reason) == "" {
		return BadField(http.StatusUnprocessableEntity, "invalid-request", "reason", "required: "+requiredWhy)
	}
	if utf8.RuneCountInString(reason) > MaxReason {
		return BadField(http.StatusUnprocessableEntity, "invalid-request", "reason", "must be at most 1000 characters")
	}
	return nil
}

// Caller is the calling person or app as the audit trail names it.
func Caller(r *http.Request) dsr.Actor {
	c := auth.FromContext(r.Context())
	return dsr.Actor{Kind: c.Kind, ID: c.ID, Name: c.Name}
}

// RespondDecision answers a staff decision: the request document, 409 when
// the request's state does not allow it, 500 otherwise.
func RespondDecision(w http.ResponseWriter, r *http.Request, svc *pipeline.Service, st *dsr.Stored, err error) {
	if errors.Is(err, dsr.ErrChangesStarted) {
		problem.Write(w, r, problem.New(http.StatusConflict, "changes-started", "", dsr.ErrChangesStarted.Error()))
		return
	}
	if errors.Is(err, pipeline.ErrConflict) {
		problem.Write(w, r, problem.New(http.StatusConflict, "not-allowed", "", err.Error()))
		return
	}
	if err != nil {
		svc.Log.Error("decision", "err", err)
		problem.Write(w, r, Internal())
		return
	}
	doc, err := svc.View(r.Context(), st, auth.FromContext(r.Context()).Has(auth.RoleExport))
	if err != nil {
		svc.Log.Error("view request", "requestId", st.ID, "err", err)
		problem.Write(w, r, Internal())
		return
	}
	WriteJSON(w, http.StatusOK, doc)
}
