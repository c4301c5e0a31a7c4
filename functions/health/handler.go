// Package health is the health function: GET /api/health.
package health

import (
	"context"
	"net/http"
	"time"

	"github.com/dsr-functions/dsr/shared/api"
	"github.com/dsr-functions/dsr/shared/pipeline"
)

// Status is the health answer.
type Status struct {
	Status  string `json:"status"`
	Storage string `json:"storage"`
}

// New returns the handler: 200 when the state container answers, 503 otherwise.
func New(svc *pipeline.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := svc.Store.Ping(ctx); err != nil {
			svc.Log.Warn("health: storage unreachable", "err", err)
			api.WriteJSON(w, http.StatusServiceUnavailable, Status{Status: "unhealthy", Storage: "unreachable"})
			return
		}
		api.WriteJSON(w, http.StatusOK, Status{Status: "ok", Storage: "ok"})
	})
}
