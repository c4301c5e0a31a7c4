package portal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/notify"
	"github.com/dsr-functions/dsr/shared/pipeline"
	"github.com/dsr-functions/dsr/shared/store"
)

// The export's way to the person (routes under requests/{ticket}/download):
//
//	GET  .../download        what happens next, a button to get a code
//	POST .../download/code   email a fresh code to the verified address
//	POST .../download        the code → a page with the download link
//
// The ticket in the email's link names the request and when the link stops
// working, under a MAC: it cannot be made up or prolonged, and it hands out
// nothing by itself (mail scanners and forwarded emails open links).

// downloadTicket names a request's download page until until.
func (p *Portal) downloadTicket(id string, until time.Time) string {
	exp := strconv.FormatInt(until.Unix(), 10)
	return id + "." + exp + "." + p.mac("dsr-portal-download\x00"+id+"\x00"+exp)
}

func (p *Portal) mac(s string) string {
	m := hmac.New(sha256.New, p.cfg.Secret)
	m.Write([]byte(s))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// downloadOf checks a download ticket in constant time: the request id,
// and whether the link still works.
func (p *Portal) downloadOf(ticket string) (id string, valid, live bool) {
	parts := strings.Split(ticket, ".")
	if len(parts) != 3 || !dsr.ValidID(parts[0]) {
		return "", false, false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || exp <= 0 {
		return "", false, false
	}
	until := time.Unix(exp, 0)
	if !hmac.Equal([]byte(ticket), []byte(p.downloadTicket(parts[0], until))) {
		return "", false, false
	}
	return parts[0], true, p.cfg.Service.NowUTC().Before(until)
}

// downloadTicketFrom reads the path's ticket; when it is not valid, or no
// longer works, it answers and returns false.
func (p *Portal) downloadTicketFrom(w http.ResponseWriter, r *http.Request, lg string) (string, string, bool) {
	ticket := r.PathValue("ticket")
	id, valid, live := p.downloadOf(ticket)
	switch {
	case !valid:
		p.fail(w, r, lg, http.StatusNotFound, "unknown-ticket", "err.ticket", "message", nil)
		return "", "", false
	case !live:
		p.fail(w, r, lg, http.StatusGone, "link-expired", "err.linkexpired", "message", nil)
		return "", "", false
	}
	return id, ticket, true
}

func (p *Portal) downloadPage(w http.ResponseWriter, r *http.Request) {
	lg := lang(r)
	_, ticket, ok := p.downloadTicketFrom(w, r, lg)
	if !ok {
		return
	}
	code := r.URL.Query().Get("code")
	if !validCode(code) {
		code = ""
	}
	p.render(w, http.StatusOK, "download", &page{Lang: lg, Title: text(lg, "download.title"), Ticket: ticket, Code: code})
}

// downloadCode emails a fresh code to the request's verified address.
func (p *Portal) downloadCode(w http.ResponseWriter, r *http.Request) {
	lg := lang(r)
	id, ticket, ok := p.downloadTicketFrom(w, r, lg)
	if !ok {
		return
	}
	pg := &page{Title: text(lg, "download.title"), Ticket: ticket}
	if !p.allow(w, r, lg, LimitCodes, clientAddress(r), "download", pg) {
		return
	}
	err := p.cfg.Service.SendDownloadCode(r.Context(), id)
	if err == nil {
		if wantsJSON(r) {
			writeJSON(w, http.StatusAccepted, map[string]string{"status": "sent"})
			return
		}
		pg.Lang, pg.Notice = lg, text(lg, "download.sent")
		p.render(w, http.StatusAccepted, "download", pg)
		return
	}
	p.codeFailure(w, r, lg, id, "download", pg, err)
}

// download checks the code and hands out the link.
func (p *Portal) download(w http.ResponseWriter, r *http.Request) {
	lg := lang(r)
	id, ticket, ok := p.downloadTicketFrom(w, r, lg)
	if !ok {
		return
	}
	pg := &page{Title: text(lg, "download.title"), Ticket: ticket}
	code, ok := p.readCode(w, r, lg, "download", pg)
	if !ok || !p.allow(w, r, lg, LimitCodes, clientAddress(r), "download", pg) {
		return
	}
	link, err := p.cfg.Service.Download(r.Context(), id, code)
	if err != nil {
		p.codeFailure(w, r, lg, id, "download", pg, err)
		return
	}
	p.cfg.Log.Info("portal: export link handed out", "requestId", id)
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]any{"url": link.URL, "expiresAt": link.ExpiresAt})
		return
	}
	p.render(w, http.StatusOK, "ready", &page{Lang: lg, Title: text(lg, "ready.title"), Link: link.URL,
		Notice: text(lg, "ready.expires") + " " + link.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC") + "."})
}

// readCode reads a 6-digit code from a form or JSON body; when there is
// none it answers and returns false.
func (p *Portal) readCode(w http.ResponseWriter, r *http.Request, lg, name string, pg *page) (string, bool) {
	var code string
	if wantsJSON(r) {
		var in struct {
			Code string `json:"code"`
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if dec.Decode(&in) != nil {
			p.fail(w, r, lg, http.StatusBadRequest, "malformed", "err.code", name, pg)
			return "", false
		}
		code = in.Code
	} else {
		if r.ParseForm() != nil {
			p.fail(w, r, lg, http.StatusBadRequest, "malformed", "err.code", name, pg)
			return "", false
		}
		code = r.PostFormValue("code")
	}
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if !validCode(code) {
		p.fail(w, r, lg, http.StatusUnprocessableEntity, "invalid-code", "err.code", name, pg)
		return "", false
	}
	return code, true
}

// codeFailure answers the errors of sending or checking a code.
func (p *Portal) codeFailure(w http.ResponseWriter, r *http.Request, lg, id, name string, pg *page, err error) {
	var soon *pipeline.TooSoonError
	switch {
	case errors.Is(err, pipeline.ErrWrongCode):
		p.fail(w, r, lg, http.StatusUnprocessableEntity, "wrong-code", "err.wrong", name, pg)
	case errors.Is(err, pipeline.ErrCodeExpired):
		p.fail(w, r, lg, http.StatusUnprocessableEntity, "code-expired", "err.expired", name, pg)
	case errors.Is(err, pipeline.ErrTooManyAttempts):
		p.fail(w, r, lg, http.StatusUnprocessableEntity, "too-many-attempts", "err.attempts", name, pg)
	case errors.As(err, &soon):
		w.Header().Set("Retry-After", strconv.Itoa(int(soon.RetryAfter.Seconds()+0.999)))
		p.fail(w, r, lg, http.StatusTooManyRequests, "too-soon", "err.toosoon", name, pg)
	case errors.Is(err, pipeline.ErrNoMoreCodes):
		p.fail(w, r, lg, http.StatusUnprocessableEntity, "no-more-codes", "err.nomore", "message", nil)
	case errors.Is(err, pipeline.ErrNotAwaiting):
		p.fail(w, r, lg, http.StatusConflict, "not-awaiting", "err.done", "message", nil)
	case errors.Is(err, pipeline.ErrNoDownload), errors.Is(err, pipeline.ErrNoExport):
		p.fail(w, r, lg, http.StatusGone, "no-export", "err.noexport", "message", nil)
	case errors.Is(err, store.ErrNotFound):
		p.fail(w, r, lg, http.StatusNotFound, "unknown-ticket", "err.ticket", "message", nil)
	default:
		p.cfg.Log.Error("portal: code", "requestId", id, "page", name, "err", err)
		p.fail(w, r, lg, http.StatusInternalServerError, "internal-error", "err.unavailable", name, pg)
	}
}

// ComposeDelivery returns how the export-ready email reads: a link to the
// download page, and that a fresh code will be asked for there.
func (p *Portal) ComposeDelivery(publicURL string) func(pipeline.DeliveryMail) notify.Message {
	return func(m pipeline.DeliveryMail) notify.Message {
		lg := "en"
		link := strings.TrimRight(publicURL, "/") + Prefix + "requests/" + p.downloadTicket(m.RequestID, m.LinkExpiresAt) + "/download"
		until := m.LinkExpiresAt.UTC().Format("2006-01-02 15:04 UTC")
		var t strings.Builder
		for _, line := range []string{text(lg, "mail.greeting"), "", text(lg, "delivery.body"), "", link, "",
			text(lg, "delivery.expires") + " " + until + ".", "", text(lg, "delivery.code")} {
			t.WriteString(line + "\n")
		}
		e := html.EscapeString
		h := "<!doctype html><html lang=\"" + lg + "\"><body>" +
			"<p>" + e(text(lg, "mail.greeting")) + "</p><p>" + e(text(lg, "delivery.body")) + "</p>" +
			"<p><a href=\"" + e(link) + "\">" + e(link) + "</a></p>" +
			"<p>" + e(text(lg, "delivery.expires")) + " " + e(until) + ".</p>" +
			"<p>" + e(text(lg, "delivery.code")) + "</p></body></html>"
		return notify.Message{To: m.To, Subject: text(lg, "delivery.subject"), Text: t.String(), HTML: h, Key: m.Key}
	}
}
