package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/dsr-functions/dsr/shared/auth"
)

// Who is signed in, and how.
//
// In Azure (auth mode platform) App Service Authentication signs people in
// with Entra ID and puts their principal on every request; the console
// reads it and keeps nothing. Locally (auth mode keys) there is no sign-in
// service: `dsr local` asks for a login URL carrying a one-time token (as
// Jupyter does); opening it exchanges the token for a session cookie. Tokens
// and sessions live in this process's memory only, which is all `dsr local`
// needs; a deployed app in keys mode issues none, so its console is closed.

// SessionCookie is the name of the local session cookie.
const SessionCookie = "dsr_console"

// Lifetimes of a login token (until first use) and of a session.
const (
	LoginTokenTTL = 24 * time.Hour
	SessionTTL    = 12 * time.Hour
)

// maxSessions bounds the sessions kept in memory; the oldest go first.
const maxSessions = 1000

type session struct {
	principal auth.Principal
	csrf      []byte
	expires   time.Time
}

// sessions holds login tokens and sessions by the SHA-256 of their secret
// (a lookup never compares the secret itself).
type sessions struct {
	mu     sync.Mutex
	now    func() time.Time
	logins map[[32]byte]session
	live   map[[32]byte]*session
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, logins: map[[32]byte]session{}, live: map[[32]byte]*session{}}
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// issueLogin returns a one-time login token for p.
func (s *sessions) issueLogin(p auth.Principal) (string, error) {
	tok, err := randomToken()
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire()
	s.logins[sha256.Sum256([]byte(tok))] = session{principal: p, expires: s.now().Add(LoginTokenTTL)}
	return tok, nil
}

var errBadLogin = errors.New("the login link is unknown, used or expired")

// redeem exchanges a login token for a new session and its cookie value.
func (s *sessions) redeem(token string) (string, error) {
	key := sha256.Sum256([]byte(token))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire()
	grant, ok := s.logins[key]
	if !ok {
		return "", errBadLogin
	}
	delete(s.logins, key)
	sid, err := randomToken()
	if err != nil {
		return "", err
	}
	csrf := make([]byte, 32)
	if _, err := rand.Read(csrf); err != nil {
		return "", err
	}
	if len(s.live) >= maxSessions {
		var oldest [32]byte
		var at time.Time
		for k, v := range s.live {
			if at.IsZero() || v.expires.Before(at) {
				oldest, at = k, v.expires
			}
		}
		delete(s.live, oldest)
	}
	s.live[sha256.Sum256([]byte(sid))] = &session{principal: grant.principal, csrf: csrf, expires: s.now().Add(SessionTTL)}
	return sid, nil
}

// lookup returns the session of a cookie value.
func (s *sessions) lookup(sid string) *session {
	if sid == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.live[sha256.Sum256([]byte(sid))]
	if !ok || !s.now().Before(v.expires) {
		return nil
	}
	return v
}

// end forgets a session (sign out).
func (s *sessions) end(sid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, sha256.Sum256([]byte(sid)))
}

// expire drops what has expired; s.mu is held.
func (s *sessions) expire() {
	now := s.now()
	for k, v := range s.logins {
		if !now.Before(v.expires) {
			delete(s.logins, k)
		}
	}
	for k, v := range s.live {
		if !now.Before(v.expires) {
			delete(s.live, k)
		}
	}
}

// csrfToken is the token forms carry for a caller: the session's own
// random token, or for a platform principal a keyed hash of who they are
// (the platform's session cookie is the credential, so a cross-site form
// must not be able to ride on it).
func (c *Console) csrfToken(v *visitor) string {
	if v.session != nil {
		return base64.RawURLEncoding.EncodeToString(v.session.csrf)
	}
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("csrf\x00" + v.principal.Ref()))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF accepts a state-changing call only from the console's own
// pages: the form's token must match (constant time), and a browser that
// says where the call comes from must say it comes from this site.
func (c *Console) checkCSRF(r *http.Request, v *visitor) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin":
	default:
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" && o != originOf(r) {
		return false
	}
	got := r.PostFormValue("csrf")
	want := c.csrfToken(v)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// originOf is the origin the browser sees for this app.
func originOf(r *http.Request) string {
	scheme := "http"
	if secure(r) {
		scheme = "https"
	}
	host := r.Host
	if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
		host = fh
	}
	return scheme + "://" + host
}

// secure reports whether the browser reached the app over HTTPS (directly
// or through the platform's front end).
func secure(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" || r.Header.Get("X-ARR-SSL") != ""
}
