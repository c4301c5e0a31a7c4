package portal

import (
	"strings"

	"golang.org/x/text/language"
)

// The portal's words, in one place per language: pages and emails take
// every string from here, so a language is one more catalog. English is
// the first; a catalog may leave keys out, which then read in English.

// catalogs maps a language tag to its strings.
var catalogs = map[string]map[string]string{
	"en": {
		"title":                 "Your personal data",
		"intro":                 "Ask us what we hold about you, to correct it, to erase it, or to stop using it. We answer within one month. First we check that this email address is yours: we send a code to it.",
		"type.legend":           "What would you like us to do?",
		"type.access":           "Send me a copy of the data you hold about me",
		"type.discovery":        "Tell me where you hold data about me",
		"type.erasure":          "Erase the data you hold about me",
		"type.rectification":    "Correct data you hold about me",
		"type.restriction":      "Stop using my data for now (restriction)",
		"type.portability":      "Give me the data I provided, to take to another organisation (portability)",
		"email":                 "Your email address",
		"email.hint":            "We send a one-time code here. Only data linked to an address you prove is yours is searched.",
		"name":                  "Your name (optional)",
		"corrections.legend":    "For a correction: the right values",
		"correct.email":         "Correct email address",
		"correct.name":          "Correct name",
		"agent.legend":          "I am asking on behalf of someone else",
		"agent.hint":            "Fill this in only if you act for the person whose data it is (as their lawyer, parent or carer, say). Above, enter their email address, not yours: the code goes to them, and nothing happens until they confirm.",
		"agent.name":            "Your name",
		"agent.email":           "Your email address",
		"agent.relationship":    "How you are related to them (optional)",
		"agent.proof":           "Proof that you may act for them",
		"agent.proof.hint":      "A power of attorney, a court order or a signed authorisation: a PDF, PNG or JPEG file of at most 5 MB.",
		"sent.agent":            "If the address is right, a message with a 6-digit code is on its way to the person you act for. They enter the code here, or open the link in the message. It works for 30 minutes.",
		"err.proof.missing":     "To ask on someone's behalf, add a proof that you may act for them.",
		"err.proof.type":        "The proof must be a PDF, PNG or JPEG file.",
		"err.proof.size":        "The proof must be at most 5 MB.",
		"err.proof.again":       "Choose the proof file again: for your safety, files are not kept when a form is sent back.",
		"err.agentName":         "Enter your name.",
		"err.agentEmail":        "Enter your valid email address.",
		"err.relationship":      "Say how you are related in at most 200 characters.",
		"mail.agent":            "This request was made on your behalf by",
		"mail.agent.check":      "If you did not ask them to act for you, do not enter the code.",
		"submit":                "Send the request",
		"sent.title":            "Check your email",
		"sent.body":             "If the address is right, a message with a 6-digit code is on its way. Enter the code here. It works for 30 minutes.",
		"code":                  "Code from the email",
		"verify":                "Confirm",
		"resend":                "Send a new code",
		"verified.title":        "Thank you: your request is confirmed",
		"verified.body":         "We are working on it and will answer within the month the law allows. You can close this page.",
		"resent":                "A new code is on its way. The previous one no longer works.",
		"err.title":             "Please check",
		"err.email":             "Enter a valid email address.",
		"err.type":              "Choose what you would like us to do.",
		"err.code":              "Enter the 6-digit code from the email.",
		"err.wrong":             "That code is not right. Check the email and try again.",
		"err.expired":           "That code has expired. Ask for a new one.",
		"err.attempts":          "Too many wrong codes. Ask for a new one.",
		"err.nomore":            "No more codes can be sent for this request. Please send the request again later.",
		"err.toosoon":           "Please wait a little before asking for another code.",
		"err.limit":             "Too many requests from here. Please try again later.",
		"err.ticket":            "This link is not valid. Please send your request again.",
		"err.done":              "This request no longer waits for a code.",
		"err.unavailable":       "The portal cannot take requests right now. Please try again later.",
		"err.corrections":       "For a correction, give at least one right value.",
		"mail.subject":          "Your code to confirm your data request",
		"mail.greeting":         "Hello,",
		"mail.body":             "We received a request about the personal data we hold for this email address. To confirm that it is yours, enter this code:",
		"mail.expires":          "The code works until",
		"mail.link":             "Or open this link to confirm:",
		"mail.ignore":           "If you did not ask for this, ignore this email: nothing happens without the code.",
		"mail.download.subject": "Your code to download your data",
		"mail.download.body":    "Someone asked to download the copy of your personal data from our request portal. If it was you, enter this code on the download page:",
		"mail.download.ignore":  "If it was not you, ignore this email: the data stays with us without the code.",
		"delivery.subject":      "Your data is ready",
		"delivery.body":         "The copy of the personal data we hold about you is ready. Open this link to download it:",
		"delivery.expires":      "The link works until",
		"delivery.code":         "For your safety we send a new code to this address before the download starts, so nobody else can use this email.",
		"download.title":        "Download your data",
		"download.intro":        "To make sure it is you, we send a one-time code to the email address of your request. Enter it here to get your download link.",
		"download.send":         "Email me a code",
		"download.confirm":      "Get my download link",
		"download.sent":         "A code is on its way to your email address. It works for 30 minutes.",
		"ready.title":           "Your data is ready",
		"ready.body":            "Your download is a ZIP file with a summary and your data from each of our systems.",
		"ready.link":            "Download my data (ZIP)",
		"ready.expires":         "The link works until",
		"err.linkexpired":       "This link has expired. Please contact us or send a new request.",
		"err.noexport":          "There is nothing to download for this link any more. Please contact us or send a new request.",
	},
}

// Supported are the languages with a catalog, English first.
var supported = []language.Tag{language.English}

var matcher = language.NewMatcher(supported)

// pickLanguage chooses a catalog from an Accept-Language header.
func pickLanguage(acceptLanguage string) string {
	tags, _, _ := language.ParseAcceptLanguage(acceptLanguage)
	_, i, _ := matcher.Match(tags...)
	base, _ := supported[i].Base()
	return strings.ToLower(base.String())
}

// text returns the string key in language lang, falling back to English.
func text(lang, key string) string {
	if s, ok := catalogs[lang][key]; ok {
		return s
	}
	if s, ok := catalogs["en"][key]; ok {
		return s
	}
	return key
}
