package portal

import (
	"html"
	"strings"

	"github.com/dsr-functions/dsr/shared/notify"
	"github.com/dsr-functions/dsr/shared/pipeline"
)

// ComposeCode returns how the code emails read: the code, until when it
// works, and a link to the portal's code page with the code filled in
// (opening the link changes nothing by itself: mail scanners open links;
// the person confirms on the page). publicURL is the app's base URL.
func (p *Portal) ComposeCode(publicURL string) func(pipeline.CodeMail) notify.Message {
	return func(m pipeline.CodeMail) notify.Message {
		lg := "en"
		if m.Purpose == pipeline.PurposeDownload {
			return downloadCodeMail(lg, m)
		}
		link := strings.TrimRight(publicURL, "/") + Prefix + "requests/" + p.ticket(m.RequestID) + "/verify?code=" + m.Code
		until := m.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC")
		var t strings.Builder
		lines := []string{text(lg, "mail.greeting"), "", text(lg, "mail.body"), "", "    " + m.Code, "",
			text(lg, "mail.expires") + " " + until + ".", "", text(lg, "mail.link"), link, "", text(lg, "mail.ignore")}
		e := html.EscapeString
		agent := ""
		if m.Agent != "" {
			// The person learns who asked for her, before she confirms.
			on := text(lg, "mail.agent") + " " + m.Agent + ". " + text(lg, "mail.agent.check")
			lines = append(lines[:2], append([]string{on, ""}, lines[2:]...)...)
			agent = "<p>" + e(on) + "</p>"
		}
		for _, line := range lines {
			t.WriteString(line + "\n")
		}
		h := "<!doctype html><html lang=\"" + lg + "\"><body>" +
			"<p>" + e(text(lg, "mail.greeting")) + "</p>" + agent + "<p>" + e(text(lg, "mail.body")) + "</p>" +
			"<p style=\"font-size:24px;letter-spacing:4px\"><strong>" + e(m.Code) + "</strong></p>" +
			"<p>" + e(text(lg, "mail.expires")) + " " + e(until) + ".</p>" +
			"<p>" + e(text(lg, "mail.link")) + " <a href=\"" + e(link) + "\">" + e(link) + "</a></p>" +
			"<p>" + e(text(lg, "mail.ignore")) + "</p></body></html>"
		return notify.Message{To: m.To, Subject: text(lg, "mail.subject"), Text: t.String(), HTML: h, Key: m.Key}
	}
}

// downloadCodeMail is the code for the download page: no link, the person
// is on the page already.
func downloadCodeMail(lg string, m pipeline.CodeMail) notify.Message {
	until := m.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC")
	var t strings.Builder
	for _, line := range []string{text(lg, "mail.greeting"), "", text(lg, "mail.download.body"), "", "    " + m.Code, "",
		text(lg, "mail.expires") + " " + until + ".", "", text(lg, "mail.download.ignore")} {
		t.WriteString(line + "\n")
	}
	e := html.EscapeString
	h := "<!doctype html><html lang=\"" + lg + "\"><body>" +
		"<p>" + e(text(lg, "mail.greeting")) + "</p><p>" + e(text(lg, "mail.download.body")) + "</p>" +
		"<p style=\"font-size:24px;letter-spacing:4px\"><strong>" + e(m.Code) + "</strong></p>" +
		"<p>" + e(text(lg, "mail.expires")) + " " + e(until) + ".</p>" +
		"<p>" + e(text(lg, "mail.download.ignore")) + "</p></body></html>"
	return notify.Message{To: m.To, Subject: text(lg, "mail.download.subject"), Text: t.String(), HTML: h, Key: m.Key}
}
