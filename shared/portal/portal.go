// Package portal is the public request portal: where a person asks, with
// nothing but a browser, what a company holds about them, to correct it, to
// erase it or to restrict it. It is anonymous and on the internet, so it
// assumes a hostile caller: every request waits for a one-time code sent to
// the address given before anything is searched (shared/pipeline
// identity.go); the answer to a submission is the same whether or not we
// hold anything about that address (nothing is looked up before the code);
// submissions are limited per address and per client address, in Blob so
// every instance shares the counts; bodies are small; pages have no script
// and a Content-Security-Policy that allows nothing else; and no page, log
// or error carries the address.
//
// Routes (function portal, route portal/{*path}):
//
//	GET  /api/portal/                          the form
//	POST /api/portal/requests                  submit (form, with an agent's proof, or JSON) → a ticket
//	GET  /api/portal/requests/{ticket}/verify  the code form (the email's link)
//	POST /api/portal/requests/{ticket}/verify  enter the code
//	POST /api/portal/requests/{ticket}/resend  a new code, after a wait
//	GET  /api/portal/requests/{ticket}/download the export-ready email's link
//	POST /api/portal/requests/{ticket}/download/code  a fresh code for it
//	POST /api/portal/requests/{ticket}/download the code → the download link
//
// A ticket names the request to the person who submitted it: the request id
// and a MAC of it under the app's secret, so tickets cannot be made up.
package portal

import (
	"bytes"
	"context"
	"crypto/hmac"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/problem"
	"github.com/dsr-functions/dsr/shared/ratelimit"
)

// Prefix is where the portal is served.
const Prefix = "/api/portal/"

// ContentSecurityPolicy allows the portal's own stylesheet and forms to
// itself, and nothing else.
const ContentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"

// maxBody bounds a submission (form or JSON).
const maxBody = 16 << 10

// Limits of the portal: submissions per address and per client address,
// and code checks per client address (codes are also limited per request).
var (
	LimitAddress = ratelimit.Limit{Name: "portal-address", Max: 3, Window: time.Hour}
	LimitClient  = ratelimit.Limit{Name: "portal-client", Max: 20, Window: time.Hour}
	LimitCodes   = ratelimit.Limit{Name: "portal-codes", Max: 30, Window: time.Hour}
)

// Limiter counts calls against a limit (shared/ratelimit in the app).
type Limiter interface {
	Allow(ctx context.Context, lim ratelimit.Limit, key string) (ratelimit.Decision, error)
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Config is what the portal needs.
type Config struct {
	Service *pipeline.Service
	Limiter Limiter
	// Secret keys the tickets (derived from DSR_PSEUDONYM_SECRET).
	Secret []byte
	// Types are the request types the portal offers.
	Types []dsr.Type
	Log   *slog.Logger
}

// Portal serves the portal.
type Portal struct {
	cfg   Config
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// New builds the portal.
func New(cfg Config) (*Portal, error) {
	if cfg.Service == nil || cfg.Limiter == nil || len(cfg.Secret) < 16 {
		return nil, errors.New("portal: Service, Limiter and a secret of at least 16 bytes are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	p := &Portal{cfg: cfg, pages: map[string]*template.Template{}}
	for _, name := range []string{"form", "code", "done", "message", "download", "ready"} {
		t, err := template.New(name).Funcs(template.FuncMap{"t": text}).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("portal: template %s: %w", name, err)
		}
		p.pages[name] = t
	}
	m := http.NewServeMux()
	assets, _ := fs.Sub(assetFS, "assets")
	m.Handle("GET "+Prefix+"assets/", http.StripPrefix(Prefix+"assets/", http.FileServerFS(assets)))
	if len(cfg.Types) > 0 {
		// Without types the portal only takes codes (for requests from
		// channels that ask for them), and offers no form.
		m.HandleFunc("GET "+Prefix+"{$}", p.form)
		m.HandleFunc("POST "+Prefix+"requests", p.submit)
	}
	m.HandleFunc("GET "+Prefix+"requests/{ticket}/verify", p.codeForm)
	m.HandleFunc("POST "+Prefix+"requests/{ticket}/verify", p.verify)
	m.HandleFunc("POST "+Prefix+"requests/{ticket}/resend", p.resend)
	m.HandleFunc("GET "+Prefix+"requests/{ticket}/download", p.downloadPage)
	m.HandleFunc("POST "+Prefix+"requests/{ticket}/download", p.download)
	m.HandleFunc("POST "+Prefix+"requests/{ticket}/download/code", p.downloadCode)
	p.mux = m
	return p, nil
}

// ServeHTTP answers under Prefix with the portal's security headers.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if strings.HasPrefix(r.URL.Path, Prefix+"assets/") {
		h.Set("Cache-Control", "public, max-age=3600")
	} else {
		h.Set("Cache-Control", "no-store")
	}
	if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	if r.Method == http.MethodPost {
		limit := int64(maxBody)
		if r.URL.Path == Prefix+"requests" && isUpload(r) {
			limit = maxUploadBody // the form with an agent's proof (agent.go)
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		// A form another site posts on a visitor's behalf is refused; API
		// clients and same-site forms are not.
		if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
			p.fail(w, r, lang(r), http.StatusForbidden, "forbidden", "err.unavailable", "form", nil)
			return
		}
	}
	if _, pattern := p.mux.Handler(r); pattern == "" {
		p.fail(w, r, lang(r), http.StatusNotFound, "not-found", "err.ticket", "message", nil)
		return
	}
	p.mux.ServeHTTP(w, r)
}

func lang(r *http.Request) string { return pickLanguage(r.Header.Get("Accept-Language")) }

// wantsJSON reports whether the caller speaks JSON (an API client) rather
// than HTML forms (a browser).
func wantsJSON(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/json" || (r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "application/json"))
}

// page is what every template gets.
type page struct {
	Lang   string
	Title  string
	Error  string
	Notice string
	Fields map[string]string
	Types  []dsr.Type
	Values map[string]string
	Ticket string
	Code   string
	// Link is the export's download link (the ready page).
	Link string
}

func (p *Portal) render(w http.ResponseWriter, status int, name string, pg *page) {
	var b strings.Builder
	if err := p.pages[name].ExecuteTemplate(&b, "layout", pg); err != nil {
		p.cfg.Log.Error("portal: render", "page", name, "err", err)
		http.Error(w, "error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, b.String())
}

// fail answers a refusal: problem+json for an API client, the page name
// with the message for a browser. It never echoes what was sent, except
// back into the form fields of the sender's own page.
func (p *Portal) fail(w http.ResponseWriter, r *http.Request, lg string, status int, code, key, name string, pg *page) {
	if wantsJSON(r) {
		problem.Write(w, r, problem.New(status, code, "", text("en", key)))
		return
	}
	if pg == nil {
		pg = &page{}
	}
	pg.Lang, pg.Error = lg, text(lg, key)
	if pg.Title == "" {
		pg.Title = text(lg, "title")
	}
	if name == "form" {
		pg.Types = p.cfg.Types
	}
	p.render(w, status, name, pg)
}

func (p *Portal) form(w http.ResponseWriter, r *http.Request) {
	lg := lang(r)
	p.render(w, http.StatusOK, "form", &page{Lang: lg, Title: text(lg, "title"), Types: p.cfg.Types, Values: map[string]string{"type": string(p.cfg.Types[0])}})
}

// input is a submission as the portal takes it.
type input struct {
	Type        string            `json:"type"`
	Email       string            `json:"email"`
	Name        string            `json:"name,omitempty"`
	Corrections map[string]string `json:"corrections,omitempty"`
	// AgentJSON is an agent a JSON client sent: refused, since only the
	// form carries the proof of authority (agent.go).
	AgentJSON json.RawMessage `json:"agent,omitempty"`
	Agent     agentInput      `json:"-"`
}

// readInput reads a form or a JSON body.
func readInput(r *http.Request) (input, error) {
	var in input
	if wantsJSON(r) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return in, err
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return in, err
		}
		if _, dup := dsr.DuplicateKey(body); dup {
			return in, errors.New("a key is given twice")
		}
		in.Agent.JSON = len(in.AgentJSON) > 0 && string(in.AgentJSON) != "null"
		return in, nil
	}
	if isUpload(r) {
		return in, readMultipart(r, &in)
	}
	if err := r.ParseForm(); err != nil {
		return in, err
	}
	in.Type, in.Email, in.Name = r.PostFormValue("type"), r.PostFormValue("email"), r.PostFormValue("name")
	// An agent's fields without the file a plain form cannot carry: the
	// agent is told to add the proof.
	in.Agent.Name, in.Agent.Email, in.Agent.Relationship = r.PostFormValue("agentName"), r.PostFormValue("agentEmail"), r.PostFormValue("agentRelationship")
	for field, key := range map[string]string{"email": "correctEmail", "name": "correctName"} {
		if v := strings.TrimSpace(r.PostFormValue(key)); v != "" {
			if in.Corrections == nil {
				in.Corrections = map[string]string{}
			}
			in.Corrections[field] = v
		}
	}
	return in, nil
}

// submit takes a request: same answer for every address, a code on its way.
func (p *Portal) submit(w http.ResponseWriter, r *http.Request) {
	lg := lang(r)
	in, err := readInput(r)
	values := map[string]string{"type": in.Type, "email": in.Email, "name": in.Name,
		"correctEmail": in.Corrections["email"], "correctName": in.Corrections["name"],
		"agentName": in.Agent.Name, "agentEmail": in.Agent.Email, "agentRelationship": in.Agent.Relationship}
	formPage := &page{Values: values}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.Is(err, errProofTooLarge) {
			formPage.Fields = map[string]string{proofField: text(lg, "err.proof.size")}
			p.fail(w, r, lg, http.StatusRequestEntityTooLarge, "proof-too-large", "err.proof.size", "form", formPage)
			return
		}
		if errors.As(err, &tooBig) {
			p.fail(w, r, lg, http.StatusRequestEntityTooLarge, "body-too-large", "err.unavailable", "form", formPage)
			return
		}
		p.fail(w, r, lg, http.StatusBadRequest, "malformed", "err.type", "form", formPage)
		return
	}
	if !p.offers(dsr.Type(in.Type)) {
		formPage.Fields = map[string]string{"type": text(lg, "err.type")}
		p.fail(w, r, lg, http.StatusUnprocessableEntity, "invalid-request", "err.type", "form", formPage)
		return
	}
	sub := dsr.Submission{Type: dsr.Type(in.Type), Subject: &dsr.Subject{Email: in.Email, Name: in.Name}}
	if sub.Type == dsr.TypeRectification {
		if len(in.Corrections) == 0 {
			formPage.Fields = map[string]string{"corrections": text(lg, "err.corrections")}
			p.fail(w, r, lg, http.StatusUnprocessableEntity, "invalid-request", "err.corrections", "form", formPage)
			return
		}
		sub.Corrections = in.Corrections
	}
	if !p.checkAgent(w, r, lg, in, &sub, formPage) {
		return
	}
	body, _ := json.Marshal(sub)
	parsed, err := dsr.ParseSubmission(body, "", p.cfg.Service.NowUTC())
	if err != nil {
		formPage.Fields = map[string]string{}
		key := "err.email"
		var ie *dsr.InputError
		if errors.As(err, &ie) {
			for _, fe := range ie.Errors {
				switch {
				case strings.HasPrefix(fe.Field, "corrections"):
					formPage.Fields["corrections"], key = text(lg, "err.corrections"), "err.corrections"
				case fe.Field == "subject.name":
					formPage.Fields["name"] = fe.Detail
				case agentFields[fe.Field][0] != "":
					f := agentFields[fe.Field]
					formPage.Fields[f[0]], key = text(lg, f[1]), f[1]
				default:
					formPage.Fields["email"] = text(lg, "err.email")
				}
			}
		}
		p.fail(w, r, lg, http.StatusUnprocessableEntity, "invalid-request", key, "form", formPage)
		return
	}
	// Limits: per client address first (cheap to spread, so generous),
	// then per requested address (keyed hash inside the limiter).
	for _, l := range []struct {
		lim ratelimit.Limit
		key string
	}{{LimitClient, clientAddress(r)}, {LimitAddress, parsed.Subject.Email}} {
		if !p.allow(w, r, lg, l.lim, l.key, "form", formPage) {
			return
		}
	}
	var st *dsr.Stored
	notice := "sent.body"
	if parsed.Agent != nil {
		// The proof goes with the request; the code still goes to the
		// subject, who must confirm.
		st, err = p.cfg.Service.SubmitWithProof(r.Context(), parsed, in.Agent.Proof, "portal", dsr.Actor{Kind: "agent"})
		notice = "sent.agent"
	} else {
		st, _, err = p.cfg.Service.Submit(r.Context(), parsed, "", "portal", "", dsr.Actor{Kind: "subject"})
	}
	if err != nil {
		var ie *dsr.InputError
		if errors.As(err, &ie) && ie.Code == "verification-required" {
			p.cfg.Log.Error("portal: verification is not configured; refusing portal requests", "reason", err.Error())
			p.fail(w, r, lg, http.StatusServiceUnavailable, "not-configured", "err.unavailable", "form", formPage)
			return
		}
		if errors.Is(err, pipeline.ErrNoProofStore) {
			p.cfg.Log.Error("portal: proofs of authority are not configured; refusing agents' requests")
			p.fail(w, r, lg, http.StatusServiceUnavailable, "not-configured", "err.unavailable", "form", formPage)
			return
		}
		p.cfg.Log.Error("portal: submit", "err", err)
		p.fail(w, r, lg, http.StatusInternalServerError, "internal-error", "err.unavailable", "form", formPage)
		return
	}
	if st.State != dsr.StateAwaitingVerification {
		// The portal never runs a request unverified: DSR_VERIFY and
		// DSR_PORTAL_TYPES are checked at start; this is a last guard.
		p.cfg.Log.Error("portal: a portal request does not wait for verification", "requestId", st.ID)
		_, _ = p.cfg.Service.Cancel(r.Context(), st.ID, "", dsr.Actor{Kind: "portal"})
		p.fail(w, r, lg, http.StatusServiceUnavailable, "not-configured", "err.unavailable", "form", formPage)
		return
	}
	ticket := p.ticket(st.ID)
	p.cfg.Log.Info("portal: request received", "requestId", st.ID, "type", st.Type)
	if wantsJSON(r) {
		w.Header().Set("Location", Prefix+"requests/"+ticket+"/verify")
		writeJSON(w, http.StatusAccepted, map[string]string{"ticket": ticket, "verify": Prefix + "requests/" + ticket + "/verify"})
		return
	}
	p.render(w, http.StatusAccepted, "code", &page{Lang: lg, Title: text(lg, "sent.title"), Notice: text(lg, notice), Ticket: ticket})
}

func (p *Portal) offers(t dsr.Type) bool {
	for _, x := range p.cfg.Types {
		if x == t {
			return true
		}
	}
	return false
}

// allow applies a limit; when it refuses it answers 429 and returns false.
func (p *Portal) allow(w http.ResponseWriter, r *http.Request, lg string, lim ratelimit.Limit, key, name string, pg *page) bool {
	d, err := p.cfg.Limiter.Allow(r.Context(), lim, key)
	if err != nil {
		p.cfg.Log.Error("portal: rate limit", "limit", lim.Name, "err", err)
		p.fail(w, r, lg, http.StatusServiceUnavailable, "unavailable", "err.unavailable", name, pg)
		return false
	}
	if !d.Allowed {
		w.Header().Set("Retry-After", strconv.Itoa(int(d.RetryAfter.Seconds()+0.999)))
		p.cfg.Log.Warn("portal: rate limited", "limit", lim.Name)
		p.fail(w, r, lg, http.StatusTooManyRequests, "rate-limited", "err.limit", name, pg)
		return false
	}
	return true
}

// clientAddress is the caller's IP: the last X-Forwarded-For entry when
// present (App Service's front end appends the address it saw; entries a
// caller sends itself come before it), else the connection's address.
func clientAddress(r *http.Request) string {
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		parts := strings.Split(xff, ",")
		a := strings.TrimSpace(parts[len(parts)-1])
		if host, _, err := net.SplitHostPort(a); err == nil {
			return host
		}
		return a
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ticket names request id to its requester.
func (p *Portal) ticket(id string) string {
	return id + "." + p.mac("dsr-portal-ticket\x00"+id)
}

// requestOf checks a ticket in constant time and returns its request id.
func (p *Portal) requestOf(ticket string) (string, bool) {
	id, _, ok := strings.Cut(ticket, ".")
	if !ok || !dsr.ValidID(id) {
		return "", false
	}
	return id, hmac.Equal([]byte(ticket), []byte(p.ticket(id)))
}

func (p *Portal) codeForm(w http.ResponseWriter, r *http.Request) {
	lg := lang(r)
	ticket := r.PathValue("ticket")
	if _, ok := p.requestOf(ticket); !ok {
		p.fail(w, r, lg, http.StatusNotFound, "unknown-ticket", "err.ticket", "message", nil)
		return
	}
	code := r.URL.Query().Get("code")
	if !validCode(code) {
		code = ""
	}
	p.render(w, http.StatusOK, "code", &page{Lang: lg, Title: text(lg, "sent.title"), Ticket: ticket, Code: code})
}

func validCode(c string) bool {
	if len(c) != 6 {
		return false
	}
	for _, r := range c {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// verify checks the code the person entered.
func (p *Portal) verify(w http.ResponseWriter, r *http.Request) {
	lg := lang(r)
	ticket := r.PathValue("ticket")
	id, ok := p.requestOf(ticket)
	codePage := &page{Title: text(lg, "sent.title"), Ticket: ticket}
	if !ok {
		p.fail(w, r, lg, http.StatusNotFound, "unknown-ticket", "err.ticket", "message", nil)
		return
	}
	code, ok := p.readCode(w, r, lg, "code", codePage)
	if !ok || !p.allow(w, r, lg, LimitCodes, clientAddress(r), "code", codePage) {
		return
	}
	if _, err := p.cfg.Service.VerifyCode(r.Context(), id, code); err != nil {
		p.codeFailure(w, r, lg, id, "code", codePage, err)
		return
	}
	p.cfg.Log.Info("portal: request verified", "requestId", id)
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "verified"})
		return
	}
	p.render(w, http.StatusOK, "done", &page{Lang: lg, Title: text(lg, "verified.title"), Notice: text(lg, "verified.body")})
}

// resend sends a new code after the wait.
func (p *Portal) resend(w http.ResponseWriter, r *http.Request) {
	lg := lang(r)
	ticket := r.PathValue("ticket")
	id, ok := p.requestOf(ticket)
	codePage := &page{Title: text(lg, "sent.title"), Ticket: ticket}
	if !ok {
		p.fail(w, r, lg, http.StatusNotFound, "unknown-ticket", "err.ticket", "message", nil)
		return
	}
	if !p.allow(w, r, lg, LimitCodes, clientAddress(r), "code", codePage) {
		return
	}
	if err := p.cfg.Service.ResendCode(r.Context(), id); err != nil {
		p.codeFailure(w, r, lg, id, "code", codePage, err)
		return
	}
	if wantsJSON(r) {
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "sent"})
		return
	}
	codePage.Lang, codePage.Notice = lg, text(lg, "resent")
	p.render(w, http.StatusAccepted, "code", codePage)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
