// Package console is the console function: the privacy team's pages under
// /api/console/ (shared/console). It is anonymous at the host because a
// browser holds no function key; the console signs people in itself (App
// Service Authentication's principal in Azure, a one-time login link from
// `dsr local` on a laptop) and reaches data only through the other HTTP
// functions, in process, under their access policies.
package console

import (
	"net/http"

	"github.com/dsr-functions/dsr/shared/console"
)

// New returns the handler.
func New(c *console.Console) http.Handler { return c }
