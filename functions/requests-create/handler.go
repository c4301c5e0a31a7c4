// Package requestscreate is the requests-create function: POST /api/requests.
package requestscreate

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

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 200

// New returns the handler: validate, store, enqueue discovery, answer 202
// with Location and the request document. Bad input changes nothing.
func New(svc *pipeline.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if len(key) > maxIdempotencyKey || !printableASCII(key) {
			problem.Write(w, r, api.BadParam("Idempotency-Key", "must be at most 200 printable ASCII characters"))
			return
		}
		body, p := api.ReadJSONBody(r)
		if p != nil {
			problem.Write(w, r, p)
			return
		}
		sub, err := dsr.ParseSubmission(body, svc.PhoneRegion, svc.NowUTC())
		if err != nil {
			if p := api.InputProblem(err); p != nil {
				problem.Write(w, r, p)
				return
			}
			svc.Log.Error("parse submission", "err", err)
			problem.Write(w, r, api.Internal())
			return
		}
		caller := auth.FromContext(r.Context())
		st, created, err := svc.Submit(r.Context(), sub, key, "http", caller.Ref(), dsr.Actor{Kind: caller.Kind, ID: caller.ID, Name: caller.Name})
		if errors.Is(err, store.ErrIdempotencyMismatch) {
			problem.Write(w, r, problem.New(http.StatusUnprocessableEntity, "idempotency-key-reused", "Idempotency key reused",
				"this Idempotency-Key was already used with a different request body"))
			return
		}
		if p := api.InputProblem(err); p != nil {
			problem.Write(w, r, p)
			return
		}
		if err != nil {
			svc.Log.Error("submit request", "err", err)
			problem.Write(w, r, api.Internal())
			return
		}
		doc, err := svc.View(r.Context(), st, caller.Has(auth.RoleExport))
		if err != nil {
			svc.Log.Error("view request", "requestId", st.ID, "err", err)
			problem.Write(w, r, api.Internal())
			return
		}
		w.Header().Set("Location", "/api/requests/"+st.ID)
		if !created {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		api.WriteJSON(w, http.StatusAccepted, doc)
	})
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
