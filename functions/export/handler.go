// Package export is the export function (queue dsr-export): it builds the access package of a
// request.
package export

import (
	"github.com/dsr-functions/dsr/functions/internal/hostfn"
	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/pipeline"
)

// New returns the queue handler.
func New(svc *pipeline.Service) funchost.QueueFunc { return hostfn.Stage(svc, svc.Queues.Export) }
