// Package requestsget is the requests-get function: GET /api/requests/{id}.
package requestsget

import (
	"errors"
	"net/http"

	"github.com/dsr-functions/dsr/shared/api"
	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/problem"
	"github.com/dsr-functions/dsr/shared/store"
)

// New returns the handler: the request document, with a fresh export link
// when the package is ready.
func New(svc *pipeline.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, ok := Load(w, r, svc)
		if !ok {
			return
		}
		doc, err := svc.View(r.Context(), st, auth.FromContext(r.Context()).Has(auth.RoleExport))
		if err != nil {
			svc.Log.Error("view request", "requestId", st.ID, "err", err)
			problem.Write(w, r, api.Internal())
			return
		}
		api.WriteJSON(w, http.StatusOK, doc)
	})
}

// Load reads the request named by the {id} route value, answering 400 for
// a malformed id and 404 for an unknown one, or for another caller's
// request when the caller may only see its own (its existence is not
// disclosed).
func Load(w http.ResponseWriter, r *http.Request, svc *pipeline.Service) (*dsr.Stored, bool) {
	id := r.PathValue("id")
	if !dsr.ValidID(id) {
		problem.Write(w, r, api.BadParam("id", "not a request id"))
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
		problem.Write(w, r, api.Internal())
		return nil, false
	}
	return st, true
}
