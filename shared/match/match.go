// Package match normalises personal identifiers (email addresses and phone
// numbers) and finds them in free text and raw dataset lines.
//
// The package is used by the Data Subject Request scanners, which read
// NDJSON/CSV datasets that can be gigabytes in size. Two rules apply
// throughout:
//
//   - Personal data never appears in an error message. Errors describe what is
//     wrong with a value ("email: missing @"), never the value itself.
//   - The per-line hot paths (Prefilter.Match, ContainsEmailToken, and the
//     fast-reject step of ContainsPhone) do not allocate.
package match

import "errors"

// ErrInvalidEmail is wrapped by every error returned by NormalizeEmail.
var ErrInvalidEmail = errors.New("invalid email")

// ErrInvalidPhone is wrapped by every error returned by NormalizePhone.
var ErrInvalidPhone = errors.New("invalid phone number")

// lowerTable maps ASCII 'A'-'Z' to 'a'-'z' and every other byte to itself.
var lowerTable = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = byte(c) + ('a' - 'A')
	}
	return t
}()

// upperByte returns the ASCII upper-case variant of c (c itself if c is not
// an ASCII lower-case letter).
func upperByte(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// byteSet is a 256-entry membership table.
type byteSet [256]bool

func makeByteSet(members string) (s byteSet) {
	for i := 0; i < len(members); i++ {
		s[members[i]] = true
	}
	return s
}

const (
	asciiAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	// localSpecials are the non-alphanumeric characters allowed in the local
	// part of an email address (RFC 5322 atext).
	localSpecials = ".!#$%&'*+/=?^_`{|}~-"
)

var (
	// emailLocalChars is [A-Za-z0-9.!#$%&'*+/=?^_`{|}~-].
	emailLocalChars = makeByteSet(asciiAlnum + localSpecials)
	// domainLabelChars is [A-Za-z0-9-].
	domainLabelChars = makeByteSet(asciiAlnum + "-")
	// emailTokenTail is [A-Za-z0-9_-]: bytes that may not follow a matched email.
	emailTokenTail = makeByteSet(asciiAlnum + "-_")
	// phoneRunChars are the bytes a phone-number candidate is made of.
	phoneRunChars = makeByteSet("+0123456789 ()-./")
)
