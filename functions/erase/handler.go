// Package erase is the erase function (queue dsr-erase): the change stage of erasure, rectification
// and restriction: it applies each dataset's policy to the subject's records.
package erase

import (
	"github.com/dsr-functions/dsr/functions/internal/hostfn"
	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/pipeline"
)

// New returns the queue handler.
func New(svc *pipeline.Service) funchost.QueueFunc { return hostfn.Stage(svc, svc.Queues.Erase) }
