package dataversetest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Credential is an azcore.TokenCredential for tests: it hands out a token
// (by default the one its Server expects, see Server.Credential), valid for
// an hour, and records every call.
type Credential struct {
	mu     sync.Mutex
	server *Server // follow its token when token is unset
	token  string
	fixed  bool
	life   time.Duration
	err    error
	calls  int
	scopes [][]string
}

var _ azcore.TokenCredential = (*Credential)(nil)

// Credential returns a credential that hands out the token the server
// expects at the time of the call (see SetToken).
func (s *Server) Credential() *Credential { return &Credential{server: s, life: time.Hour} }

// NewCredential returns a credential that hands out token.
func NewCredential(token string) *Credential {
	return &Credential{token: token, fixed: true, life: time.Hour}
}

// GetToken implements azcore.TokenCredential.
func (c *Credential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.scopes = append(c.scopes, slices.Clone(o.Scopes))
	if c.err != nil {
		return azcore.AccessToken{}, c.err
	}
	tok := c.token
	if !c.fixed {
		tok = c.server.Token()
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(c.life)}, nil
}

// SetToken makes the credential hand out token from now on, whatever the
// server expects.
func (c *Credential) SetToken(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.token, c.fixed = token, true
}

// SetLifetime sets how long the tokens handed out from now on are valid.
func (c *Credential) SetLifetime(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.life = d
}

// SetError makes GetToken fail with err (nil: succeed again).
func (c *Credential) SetError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

// Calls returns how many times GetToken was called.
func (c *Credential) Calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// Scopes returns the scopes of every GetToken call, in order.
func (c *Credential) Scopes() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([][]string, len(c.scopes))
	for i, s := range c.scopes {
		out[i] = slices.Clone(s)
	}
	return out
}
