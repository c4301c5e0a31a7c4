// Package verify is the verify function (queue dsr-verify): it checks after erasure or rectification
// that nothing that should have changed is left.
package verify

import (
	"github.com/dsr-functions/dsr/functions/internal/hostfn"
	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/pipeline"
)

// New returns the queue handler.
func New(svc *pipeline.Service) funchost.QueueFunc { return hostfn.Stage(svc, svc.Queues.Verify) }
