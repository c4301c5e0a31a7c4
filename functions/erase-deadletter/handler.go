// Package erasedeadletter is the erase-deadletter function: an erase message that dead-lettered
// fails its request with the reason.
package erasedeadletter

import (
	"github.com/dsr-functions/dsr/functions/internal/hostfn"
	"github.com/dsr-functions/dsr/shared/funchost"
	"github.com/dsr-functions/dsr/shared/pipeline"
)

// New returns the queue handler.
func New(svc *pipeline.Service) funchost.QueueFunc { return hostfn.DeadLetter(svc) }
