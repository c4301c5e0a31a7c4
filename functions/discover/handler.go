// Package discover is the discover function (queue dsr-discover): it finds the subject's records in
// every source.
package discover

import (
	"github.com/dsr-functions/dsr/functions/internal/hostfn"
	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/pipeline"
)

// New returns the queue handler.
func New(svc *pipeline.Service) funchost.QueueFunc { return hostfn.Stage(svc, svc.Queues.Discover) }
