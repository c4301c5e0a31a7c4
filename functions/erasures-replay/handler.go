// Package erasuresreplay is the erasures-replay function:
// POST /api/erasures/replay applies completed erasures again, after a
// dataset was restored from a backup taken before them.
package erasuresreplay

import (
	"errors"
	"net/http"

	"github.com/dsr-functions/dsr/shared/api"
	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/problem"
)

// Body is the request body: exactly one of dataset and all; after and
// limit page through the erasures (oldest first).
type Body struct {
	Dataset string `json:"dataset"`
	All     bool   `json:"all"`
	After   string `json:"after"`
	Limit   int    `json:"limit"`
}

// New returns the handler: 200 with the replay report.
func New(svc *pipeline.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, p := api.ReadJSONBody(r)
		var b Body
		if p == nil {
			p = api.DecodeStrict(raw, &b)
		}
		switch {
		case p != nil:
		case (b.Dataset == "") == !b.All:
			p = api.BadField(http.StatusUnprocessableEntity, "invalid-request", "dataset", `give a dataset name, or "all": true for every dataset`)
		case b.After != "" && !dsr.ValidID(b.After):
			p = api.BadField(http.StatusUnprocessableEntity, "invalid-request", "after", "must be a request id (the next of the previous answer)")
		case b.Limit < 0 || b.Limit > pipeline.MaxReplayLimit:
			p = api.BadField(http.StatusUnprocessableEntity, "invalid-request", "limit", "must be from 1 to 1000 (0: the default, 100)")
		}
		if p != nil {
			problem.Write(w, r, p)
			return
		}
		c := auth.FromContext(r.Context())
		rep, err := svc.ReplayErasures(r.Context(), b.Dataset, b.After, b.Limit, dsr.Actor{Kind: c.Kind, ID: c.ID, Name: c.Name})
		switch {
		case errors.Is(err, pipeline.ErrUnknownDataset):
			problem.Write(w, r, api.BadField(http.StatusUnprocessableEntity, "unknown-dataset", "dataset", "names no dataset whose data this app changes (see the sources config)"))
		case errors.Is(err, pipeline.ErrNoSecret):
			problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "not-configured", "", "erasures cannot be replayed without DSR_PSEUDONYM_SECRET"))
		case err != nil:
			svc.Log.Error("replay erasures", "err", err)
			problem.Write(w, r, api.Internal())
		default:
			api.WriteJSON(w, http.StatusOK, rep)
		}
	})
}
