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
	for i := 0; i < len(text); {
		if !phoneRunChars[text[i]] {
			i++
			continue
		}
		j, digits := i, 0
		for j < len(text) && phoneRunChars[text[j]] {
			if isDigit(text[j]) {
				digits++
			}
			j++
		}
		if digits >= minCandidateDigits && candidateMatches(text[i:j], digits, phoneDigits, defaultRegion) {
			run := text[i:j]
			lead := len(run) - len(strings.TrimLeft(run, " .-/)"))
			trail := len(run) - len(strings.TrimRight(run, " .-/("))
			b.WriteString(text[last : i+lead])
			b.WriteString(repl)
			last, count = j-trail, count+1
		}
		i = j
	}
	if count == 0 {
		return text, 0
	}
	b.WriteString(text[last:])
	return b.String(), count
}
