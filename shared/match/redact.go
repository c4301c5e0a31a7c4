package match

import "strings"

// ReplaceEmailTokens returns text with every whole-token occurrence of email
// (normalised, as ContainsEmailToken finds it) replaced by repl, and how
// many it replaced. Only the plain shape is replaced: a caller that must
// remove every shape checks MentionsEmail on the result.
func ReplaceEmailTokens(text, email, repl string) (string, int) {
	n := len(email)
	if n == 0 {
		return text, 0
	}
	var b strings.Builder
	last, count := 0, 0
	for i := 0; i+n <= len(text); {
		if equalFoldString(text[i:i+n], email) && isEmailToken(text, i, i+n) {
			b.WriteString(text[last:i])
			b.WriteString(repl)
			i += n
			last, count = i, count+1
			continue
		}
		i++
	}
	if count == 0 {
		return text, 0
	}
	b.WriteString(text[last:])
	return b.String(), count
}

// ReplacePhones returns text with every phone-number run that ContainsPhone
// would match to phoneDigits replaced by repl (the whole run of digits and
// separators, trimmed), and how many it replaced.
func ReplacePhones(text, phoneDigits, defaultRegion, repl string) (string, int) {
	if !ContainsPhone(text, phoneDigits, defaultRegion) {
		return text, 0
	}
	var b strings.Builder
	last, count := 0, 0
	phoneRuns(text, phoneDigits, defaultRegion, func(i, j int) bool {
		run := text[i:j]
		lead := len(run) - len(strings.TrimLeft(run, " .-/)"))
		trail := len(run) - len(strings.TrimRight(run, " .-/("))
		b.WriteString(text[last : i+lead])
		b.WriteString(repl)
		last, count = j-trail, count+1
		return true
	})
	if count == 0 {
		return text, 0
	}
	b.WriteString(text[last:])
	return b.String(), count
}
