package match

import (
	"fmt"
	"strings"
)

// maxEmailLen is the maximum length of an email address (RFC 5321 path
// limit minus the angle brackets).
const maxEmailLen = 254

// NormalizeEmail trims and lower-cases an email and validates it (one '@',
// non-empty local part of allowed chars [A-Za-z0-9.!#$%&'*+/=?^_`{|}~-],
// domain of labels [A-Za-z0-9-] separated by dots with at least one dot, no
// leading/trailing dot or hyphen in a label, total <= 254). Returns an error
// that does not contain the input.
//
// Every error wraps ErrInvalidEmail.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", emailError("empty")
	}
	if len(s) > maxEmailLen {
		return "", emailError(fmt.Sprintf("longer than %d bytes", maxEmailLen))
	}
	at := strings.IndexByte(s, '@')
	if at < 0 {
		return "", emailError("missing @")
	}
	if strings.IndexByte(s[at+1:], '@') >= 0 {
		return "", emailError("more than one @")
	}
	local, domain := s[:at], s[at+1:]
	if local == "" {
		return "", emailError("empty local part")
	}
	for i := 0; i < len(local); i++ {
		if !emailLocalChars[local[i]] {
			return "", emailError("invalid character in local part")
		}
	}
	if err := validateDomain(domain); err != nil {
		return "", err
	}
	// Every byte is now ASCII, so a byte-wise lower-casing is exact.
	return asciiLower(s), nil
}

func validateDomain(domain string) error {
	if domain == "" {
		return emailError("empty domain")
	}
	if strings.IndexByte(domain, '.') < 0 {
		return emailError("domain has no dot")
	}
	if domain[0] == '.' || domain[len(domain)-1] == '.' {
		return emailError("domain starts or ends with a dot")
	}
	for label := range strings.SplitSeq(domain, ".") {
		if label == "" {
			return emailError("empty domain label")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return emailError("domain label starts or ends with a hyphen")
		}
		for i := 0; i < len(label); i++ {
			if !domainLabelChars[label[i]] {
				return emailError("invalid character in domain")
			}
		}
	}
	return nil
}

func emailError(reason string) error {
	return fmt.Errorf("email: %s: %w", reason, ErrInvalidEmail)
}

// asciiLower lower-cases the ASCII letters of s, allocating only if s has
// an upper-case letter.
func asciiLower(s string) string {
	i := 0
	for i < len(s) && (s[i] < 'A' || s[i] > 'Z') {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		b[i] = lowerTable[b[i]]
	}
	return string(b)
}

// ContainsEmailToken reports whether text contains email (already
// normalised, lower-case) as a whole token, ASCII case-insensitively.
//
// Token rule: the byte before the occurrence must not be an email local-part
// char ([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]); the byte after must not be
// [A-Za-z0-9-_], and if it is '.', the byte after that '.' must not be
// [A-Za-z0-9-]. So a sentence-ending period still matches, but
// "ann@x.com.au" does not match "ann@x.com", and "joann@x.com" does not
// match "ann@x.com". Every occurrence is checked, not just the first.
//
// The search anchors on the '@' of email (a single bytes.IndexByte-style
// scan), folds case byte by byte and never allocates. Only ASCII letters are
// folded; other bytes must match exactly. An email without '@' is searched
// for the same way, anchored on its first byte.
func ContainsEmailToken(text, email string) bool {
	n := len(email)
	if n == 0 || n > len(text) {
		return false
	}
	anchor := strings.IndexByte(email, '@')
	if anchor < 0 {
		anchor = 0
	}
	lo := lowerTable[email[anchor]]
	up := upperByte(lo)
	// Anchor positions in text that leave room for the whole email.
	first, last := anchor, len(text)-n+anchor
	nextLo, nextUp := -1, -1 // cached next occurrence of each case (absolute), -1 = stale
	if lo == up {
		nextUp = len(text) // never used
	}
	for i := first; i <= last; {
		// Find the next anchor byte at or after i, in either case, reusing
		// cached positions so the scan stays linear.
		if nextLo < i {
			if k := strings.IndexByte(text[i:last+1], lo); k >= 0 {
				nextLo = i + k
			} else {
				nextLo = len(text)
			}
		}
		if nextUp < i {
			if k := strings.IndexByte(text[i:last+1], up); k >= 0 {
				nextUp = i + k
			} else {
				nextUp = len(text)
			}
		}
		p := min(nextLo, nextUp)
		if p > last {
			return false
		}
		start := p - anchor
		if equalFoldString(text[start:start+n], email) && isEmailToken(text, start, start+n) {
			return true
		}
		i = p + 1
	}
	return false
}

// equalFoldString reports whether a and b (same length) are equal under
// ASCII case folding.
func equalFoldString(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerTable[a[i]] != lowerTable[b[i]] {
			return false
		}
	}
	return true
}

// isEmailToken applies the token boundary rule to text[start:end].
func isEmailToken(text string, start, end int) bool {
	if start > 0 && emailLocalChars[text[start-1]] {
		return false
	}
	if end < len(text) {
		c := text[end]
		if emailTokenTail[c] {
			return false
		}
		if c == '.' && end+1 < len(text) && domainLabelChars[text[end+1]] {
			return false
		}
	}
	return true
}
