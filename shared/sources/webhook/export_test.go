package webhook

import (
	"context"
	"io"
	"time"
)

// Internals for the tests, which are in package webhook_test so that they
// can use webhooktest (which imports this package).

// SetSleep replaces the connector's wait between attempts.
func SetSleep(c *Connector, sleep func(context.Context, time.Duration) error) { c.sleep = sleep }

// EffectiveConfig returns the config with New's defaults applied.
func EffectiveConfig(c *Connector) Config { return c.cfg }

// Keys returns the key field of every dataset.
func Keys(c *Connector) map[string]string { return c.keys }

// Chain is chain.
func Chain(links map[string]string) ([]string, bool, error) { return chain(links) }

// PageDir is pageDir.
func PageDir(cursor string) string { return pageDir(cursor) }

// DecodePage decodes an access answer or callback body as the connector does.
func DecodePage(r io.Reader, keys map[string]string) error {
	_, err := decodePage(r, keys, nil)
	return err
}
