package match

import "strings"

// Mention tokens: an identifier index stores, for each free-text value,
// every email address and phone number that MentionsEmail and
// MentionsPhone could find in it, so that a lookup by the subject's
// normalised email or phone finds every record that mentions her. The
// functions here enumerate those values. They may yield more than the
// matchers would accept (a candidate that fails the token rule, say), never
// less: for every normalised email e with MentionsEmail(text, e), e is among
// EmailMentionTokens(text); likewise for phones. A value may be yielded more
// than once.

// EmailMentionTokens calls yield with every normalised email address that
// text may mention as MentionsEmail reads it: whole tokens as written,
// after undoing encodings, and wrapped once across a line break.
func EmailMentionTokens(text string, yield func(email string)) {
	emailTokens(text, false, yield)
	if !HasEncodingMark([]byte(text)) {
		return
	}
	dec := DecodeText(text)
	emailTokens(dec, strings.ContainsAny(dec, "\r\n"), yield)
}

// emailTokens yields, for every '@' of text, the addresses a whole-token
// occurrence around it can be: the local part is the run of local-part
// characters before the '@' (ContainsEmailToken's token rule allows no
// other start), the domain a prefix of the run of domain characters after
// it that ends at a dot or at the run's end. With wrapped, the local part
// may also bridge one line-break run (containsWrappedEmail), or the domain
// may.
func emailTokens(text string, wrapped bool, yield func(string)) {
	for p := strings.IndexByte(text, '@'); p >= 0; {
		b := p
		for b > 0 && emailLocalChars[text[b-1]] {
			b--
		}
		locals := [2]string{text[b:p]}
		if wrapped {
			if k, ok := breakRunBefore(text, b); ok {
				a := k
				for a > 0 && emailLocalChars[text[a-1]] {
					a--
				}
				if a < k {
					locals[1] = text[a:k] + text[b:p]
				}
			}
		}
		c := p + 1
		for c < len(text) && (domainLabelChars[text[c]] || text[c] == '.') {
			c++
		}
		domain := text[p+1 : c]
		for _, local := range locals {
			if local == "" {
				continue
			}
			domainPrefixes(domain, 0, func(d string) { emitEmail(local, d, yield) })
		}
		if wrapped && locals[0] != "" {
			if e, ok := breakRun(text, c, true); ok {
				f := e
				for f < len(text) && (domainLabelChars[text[f]] || text[f] == '.') {
					f++
				}
				if f > e {
					joined := domain + text[e:f]
					domainPrefixes(joined, len(domain), func(d string) { emitEmail(locals[0], d, yield) })
				}
			}
		}
		next := strings.IndexByte(text[p+1:], '@')
		if next < 0 {
			break
		}
		p += 1 + next
	}
}

// domainPrefixes calls fn with every prefix of run that is longer than
// from and ends at a dot (the dot excluded) or at the end of run.
func domainPrefixes(run string, from int, fn func(string)) {
	for i := from; i < len(run); i++ {
		if run[i] == '.' && i > from {
			fn(run[:i])
		}
	}
	if len(run) > from {
		fn(run)
	}
}

// emitEmail yields local@domain normalised, if it is a valid address.
func emitEmail(local, domain string, yield func(string)) {
	if e, err := NormalizeEmail(local + "@" + domain); err == nil {
		yield(e)
	}
}

// PhoneMentionTokens calls yield with every phone number (E.164 digits
// without '+') that text may mention as MentionsPhone reads it with
// defaultRegion: what each run of phone characters with at least 7 digits,
// or failing that each of its group windows, normalises to, as written and
// after undoing encodings.
func PhoneMentionTokens(text, defaultRegion string, yield func(phoneDigits string)) {
	phoneMentionTokens(text, regionNormalizer(defaultRegion), yield)
}

func phoneMentionTokens(text string, normalize phoneNormalizer, yield func(string)) {
	phoneTokens(text, normalize, yield)
	if !HasEncodingMark([]byte(text)) {
		return
	}
	if dec := DecodeText(text); dec != text {
		phoneTokens(dec, normalize, yield)
	}
}

func phoneTokens(text string, normalize phoneNormalizer, yield func(string)) {
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
		if digits >= minCandidateDigits {
			candidateNumbers(text[i:j], digits, normalize, func(got string) bool {
				yield(got)
				return true
			})
		}
		i = j
	}
}
