// Package console is the privacy team's console: server-rendered pages
// under /api/console/ for seeing what is due, reading what discovery found
// and what each dataset will undergo, deciding (approve, reject, extend,
// cancel), handing out the export, submitting requests, looking up
// restrictions and reading the audit trail, with charts of the workload.
//
// It is plain HTML forms and one stylesheet, embedded in the binary: no
// script at all, nothing loaded from elsewhere, and a Content-Security-Policy
// that forbids both. It reads and acts only through the app's own HTTP
// functions, in process, as the signed-in person (apicall.go), so the API's
// access policies decide what anyone may see or do.
package console

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/sources"
)

// Prefix is where the console is served.
const Prefix = "/api/console/"

// ContentSecurityPolicy allows the console's own stylesheet and forms to
// itself, and nothing else: no script, no frames, no other origin.
const ContentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"

// maxForm bounds a form post.
const maxForm = 64 << 10

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Config is what the console needs from the app.
type Config struct {
	// API serves the app's HTTP functions behind their access policies,
	// routed as the host routes them (method and /api/... path).
	API http.Handler
	// Authn reads the platform's principal (auth mode platform).
	Authn *auth.Authenticator
	// Sources says what each dataset's policies are, for the planned
	// actions shown before approval.
	Sources *sources.Config
	// Key keys the CSRF tokens of platform principals; give the same key
	// to every instance (random when empty: one instance only).
	Key []byte
	// Now is the clock (default time.Now).
	Now func() time.Time
	Log *slog.Logger
}

// Console serves the console's pages.
type Console struct {
	api      http.Handler
	authn    *auth.Authenticator
	sources  *sources.Config
	key      []byte
	now      func() time.Time
	log      *slog.Logger
	sessions *sessions
	pages    map[string]*template.Template
	mux      *http.ServeMux
}

// New builds the console.
func New(cfg Config) (*Console, error) {
	if cfg.API == nil || cfg.Authn == nil || cfg.Sources == nil {
		return nil, errors.New("console: API, Authn and Sources are required")
	}
	c := &Console{api: cfg.API, authn: cfg.Authn, sources: cfg.Sources, key: cfg.Key, now: cfg.Now, log: cfg.Log}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if len(c.key) == 0 {
		c.key = make([]byte, 32)
		if _, err := rand.Read(c.key); err != nil {
			return nil, err
		}
	}
	c.sessions = newSessions(func() time.Time { return c.now() })
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

func (c *Console) routes() {
	m := http.NewServeMux()
	assets, _ := fs.Sub(assetFS, "assets")
	m.Handle("GET "+Prefix+"assets/", http.StripPrefix(Prefix+"assets/", assetHandler(http.FileServerFS(assets))))
	m.HandleFunc("GET "+Prefix+"login", c.login)
	m.HandleFunc("GET "+Prefix+"{$}", c.signedIn(c.queue))
	m.HandleFunc("GET "+Prefix+"charts", c.signedIn(c.charts))
	m.HandleFunc("GET "+Prefix+"requests/{id}", c.signedIn(c.request))
	m.HandleFunc("POST "+Prefix+"requests/{id}/{action}", c.signedIn(c.act))
	m.HandleFunc("GET "+Prefix+"requests/{id}/proof", c.signedIn(c.proof))
	m.HandleFunc("GET "+Prefix+"new", c.signedIn(c.newForm))
	m.HandleFunc("POST "+Prefix+"new", c.signedIn(c.submit))
	m.HandleFunc("GET "+Prefix+"restrictions", c.signedIn(c.restrictionForm))
	m.HandleFunc("POST "+Prefix+"restrictions", c.signedIn(c.restrictionLookup))
	m.HandleFunc("POST "+Prefix+"logout", c.signedIn(c.logout))
	c.mux = m
}

// ServeHTTP answers under Prefix, with the console's security headers on
// every answer.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	}
	_, pattern := c.mux.Handler(r)
	if pattern == "" {
		c.render(w, r, http.StatusNotFound, "message", &page{Title: "Not found", Message: "No console page has this address."})
		return
	}
	c.mux.ServeHTTP(w, r)
}

// assetHandler serves the stylesheet with a cache lifetime (it holds no
// data).
func assetHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// visitor is the signed-in person.
type visitor struct {
	principal *auth.Principal
	session   *session
	sid       string
}

// identify finds who is calling: the platform's principal (App Service
// Authentication), else a local session cookie.
func (c *Console) identify(r *http.Request) (*visitor, error) {
	if r.Header.Get(auth.PrincipalHeader) != "" && c.authn.Mode == auth.ModePlatform {
		p, err := c.authn.Authenticate(r)
		if err != nil {
			return nil, err
		}
		return &visitor{principal: p}, nil
	}
	if ck, err := r.Cookie(SessionCookie); err == nil {
		if s := c.sessions.lookup(ck.Value); s != nil {
			p := s.principal
			return &visitor{principal: &p, session: s, sid: ck.Value}, nil
		}
	}
	return nil, nil
}

// signedIn runs h for a signed-in person, refuses others, and checks the
// CSRF token of every state-changing call.
func (c *Console) signedIn(h func(http.ResponseWriter, *http.Request, *visitor)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		v, err := c.identify(r)
		if err != nil {
			c.log.Warn("console: bad principal", "reason", err.Error())
			c.render(w, r, http.StatusUnauthorized, "message", &page{Title: "Not signed in", Message: "Your sign-in could not be read. Sign in again."})
			return
		}
		if v == nil {
			if c.authn.Mode == auth.ModePlatform && r.Method == http.MethodGet {
				http.Redirect(w, r, "/.auth/login/aad?post_login_redirect_uri="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
				return
			}
			c.render(w, r, http.StatusUnauthorized, "message", &page{Title: "Not signed in",
				Message: "Open the console link that `dsr local` printed (it is also in .local/console-url). In Azure, sign in with your organisation account."})
			return
		}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil {
				c.render(w, r, http.StatusRequestEntityTooLarge, "message", &page{Title: "Form too large", Message: "The form is larger than 64 KiB.", Visitor: v})
				return
			}
			if !c.checkCSRF(r, v) {
				c.log.Warn("console: CSRF check failed", "path", r.URL.Path)
				c.render(w, r, http.StatusForbidden, "message", &page{Title: "Refused", Message: "This form did not come from the console. Reload the page and try again.", Visitor: v})
				return
			}
		}
		h(w, r, v)
	}
}

// login exchanges a one-time token for a session cookie.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	sid, err := c.sessions.redeem(r.URL.Query().Get("token"))
	if err != nil {
		c.render(w, r, http.StatusUnauthorized, "message", &page{Title: "Login link not valid", Message: "This login link is unknown, already used or expired. Restart `dsr local` for a new one."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: sid, Path: Prefix, HttpOnly: true, Secure: secure(r),
		SameSite: http.SameSiteStrictMode, MaxAge: int(SessionTTL / time.Second)})
	// A redirect drops the token from the address bar and the history.
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, v *visitor) {
	if v.sid != "" {
		c.sessions.end(v.sid)
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: Prefix, HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode, MaxAge: -1})
	if v.session == nil {
		http.Redirect(w, r, "/.auth/logout", http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "message", &page{Title: "Signed out", Message: "You are signed out of the console."})
}

// LoginURL returns a one-time login link for p under base (the app's
// origin, like http://127.0.0.1:7071), for `dsr local` and tests.
func (c *Console) LoginURL(base string, p auth.Principal) (string, error) {
	if p.ID == "" || p.Kind == "" {
		return "", errors.New("console: the principal needs a kind and an id")
	}
	tok, err := c.sessions.issueLogin(p)
	if err != nil {
		return "", fmt.Errorf("console: login token: %w", err)
	}
	return strings.TrimRight(base, "/") + Prefix + "login?token=" + tok, nil
}

// page is what every page template gets.
type page struct {
	Title   string
	Nav     string
	Visitor *visitor
	CSRF    string
	Message string
	// Problem is an API refusal to show (its detail and field errors).
	Problem *problemView
	Data    any
}

// Name is the signed-in person's display name.
func (v *visitor) Name() string {
	if v.principal.Name != "" {
		return v.principal.Name
	}
	return v.principal.Kind
}

// Roles lists the person's roles.
func (v *visitor) Roles() string {
	var out []string
	for _, r := range v.principal.Roles {
		out = append(out, string(r))
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// Can reports whether the person holds a role (for showing controls; the
// API decides).
func (v *visitor) Can(role string) bool { return v.principal.Has(auth.Role(role)) }

// render writes a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	t, ok := c.pages[name]
	if !ok {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	if p.Visitor != nil {
		p.CSRF = c.csrfToken(p.Visitor)
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", p); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		http.Error(w, "the page could not be shown", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// fail shows an unexpected error without its text (it may hold anything);
// the log gets it.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, v *visitor, what string, err error) {
	c.log.Error("console: "+what, "err", err)
	c.render(w, r, http.StatusInternalServerError, "message", &page{Title: "Something went wrong", Message: "The console could not " + what + ". Try again; the app's log has the details.", Visitor: v})
}

// ctx is the request context for API calls.
func ctx(r *http.Request) context.Context { return r.Context() }
