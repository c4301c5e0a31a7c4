package match

import (
	"bytes"
	"html"
	"strings"
	"unicode/utf8"
)

// Real exports write identifiers in encoded shapes: JSON string escapes of
// any character (.NET's System.Text.Json writes '+' as \u002B), HTML
// character references in text taken from web pages or emails (&#64;,
// &#x40;, &commat;), percent-encoding in mailto: links (%40, %2B), and
// addresses wrapped across a line break inside a quoted text field. The
// functions here decode those shapes so that matching sees the identifier
// itself. They are used only on text that holds an encoding mark
// (HasEncodingMark), so plain data pays one byte search, never a decode.

// maxDecodeRounds bounds how many layers of encoding are undone (JSON
// pasted into JSON, &amp;#64;): each round decodes every shape once.
const maxDecodeRounds = 3

// HasEncodingMark reports whether text b may hold an identifier in an
// encoded or wrapped shape: a JSON escape that decoding must undo (\u, \\,
// \n, \r), an HTML character reference (& followed by '#' or a letter), a
// percent escape (% and two hex digits), or a raw line break. Text without
// a mark is matched as it is.
func HasEncodingMark(b []byte) bool {
	return hasMark(b, markBytes[:])
}

// HasEscapeMark is HasEncodingMark for raw JSON text, where a raw line
// break is only ever whitespace between tokens (a string holds its line
// breaks as \n), so it is no mark.
func HasEscapeMark(b []byte) bool {
	return hasMark(b, markBytes[:3])
}

func hasMark(b []byte, marks []byte) bool {
	for _, c := range marks {
		for i := 0; ; {
			k := bytes.IndexByte(b[i:], c)
			if k < 0 {
				break
			}
			if isMark(b, i+k) {
				return true
			}
			i += k + 1
		}
	}
	return false
}

// markBytes are the bytes every encoding mark starts with; the first three
// start the escapes, the others are raw line breaks.
var markBytes = [...]byte{'\\', '&', '%', '\n', '\r'}

// isMark reports whether an encoding mark starts at b[i] (b[i] is one of
// markBytes).
func isMark(b []byte, i int) bool {
	next := func(k int) byte {
		if i+k < len(b) {
			return b[i+k]
		}
		return 0
	}
	switch b[i] {
	case '\\':
		switch next(1) {
		case 'u', 'U', 'n', 'r', '\\':
			return true
		}
		return false
	case '&':
		c := next(1)
		return c == '#' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
	case '%':
		return isHex(next(1)) && isHex(next(2))
	default: // '\n', '\r'
		return true
	}
}

// MarkFinder answers HasEscapeMark for many consecutive lines of one
// buffer with one byte search per mark byte over the whole buffer (plus one
// per mark found), instead of several searches per line: the scan's hot
// loop asks it about every line the prefilter rejected.
type MarkFinder struct {
	buf []byte
	// next[k] is the position of the next markBytes[k] at or after the
	// last position asked about (-1: not searched yet; len(buf): none).
	next [3]int
	// first is the least of next: no mark lies before it (the fast path
	// of Has, which the scan's hot loop takes for almost every line).
	first int
}

// Reset starts answering for buf; positions are indices into it.
func (f *MarkFinder) Reset(buf []byte) {
	f.buf = buf
	f.next = [3]int{-1, -1, -1}
	f.first = -1
}

// Has reports whether buf[start:end] holds an escape mark. Calls must ask
// about ranges in increasing order of start (each line once, in order).
func (f *MarkFinder) Has(start, end int) bool {
	if f.first >= end {
		return false
	}
	return f.search(start, end)
}

func (f *MarkFinder) search(start, end int) bool {
	found := false
	for k := range f.next {
		p := f.next[k]
		for {
			if p < start {
				if i := bytes.IndexByte(f.buf[start:], markBytes[k]); i >= 0 {
					p = start + i
				} else {
					p = len(f.buf)
				}
			}
			if p >= end {
				break
			}
			// A mark's bytes lie inside the line: a line never ends
			// inside a JSON escape.
			if isMark(f.buf[:end], p) {
				found = true
				break
			}
			p++
			if i := bytes.IndexByte(f.buf[p:], markBytes[k]); i >= 0 {
				p += i
			} else {
				p = len(f.buf)
			}
		}
		f.next[k] = p
		if found {
			break
		}
	}
	if found {
		// Some next may be stale (behind start) now: search again next time.
		f.first = -1
		return true
	}
	f.first = min(f.next[0], f.next[1], f.next[2])
	return false
}

// AppendCanonical appends to dst the bytes of b with every encoding undone
// (JSON escapes, HTML character references, percent escapes; one layer more
// than DecodeText undoes, since a raw line still holds the JSON layer that
// parsing removes from a value) and, with unwrap, every line break removed
// together with the spaces and tabs around it, so that an address wrapped
// across lines is whole again. It is meant for the prefilter's second look at a line that
// holds an encoding mark: the result may join what were two tokens, so it
// is only ever used to find candidates, never to decide a match.
func AppendCanonical(dst, b []byte, unwrap bool) []byte {
	start := len(dst)
	dst = decodeOnce(dst, b)
	// Further layers (JSON pasted into JSON, &amp;#64;) are rare: only
	// then is there a second buffer.
	for round := 1; round <= maxDecodeRounds && HasEncodingMark(dst[start:]); round++ {
		next := decodeOnce(nil, dst[start:])
		if bytes.Equal(next, dst[start:]) {
			break
		}
		dst = append(dst[:start], next...)
	}
	if unwrap {
		dst = dst[:start+len(unwrapLines(dst[start:start], dst[start:]))]
	}
	return dst
}

// DecodeText returns s with every encoding undone (as AppendCanonical,
// without unwrapping), or s itself when it holds no mark.
func DecodeText(s string) string {
	if !HasEncodingMark([]byte(s)) {
		return s
	}
	return string(AppendCanonical(nil, []byte(s), false))
}

// decodeOnce appends b to dst with one layer of each encoding undone, in
// one pass: JSON escapes, HTML character references, percent escapes. A
// sequence that is not a valid escape stays as it is.
func decodeOnce(dst, b []byte) []byte {
	// Runs without an escape are copied whole: the next position of each
	// escape byte is searched once and reused until passed.
	next := [3]int{-1, -1, -1}
	for i := 0; i < len(b); {
		j := len(b)
		for k := range next {
			if next[k] < i {
				if p := bytes.IndexByte(b[i:], markBytes[k]); p >= 0 {
					next[k] = i + p
				} else {
					next[k] = len(b)
				}
			}
			j = min(j, next[k])
		}
		dst = append(dst, b[i:j]...)
		if j == len(b) {
			break
		}
		i = j
		switch b[i] {
		case '\\':
			if r, n, ok := jsonEscape(b[i:]); ok {
				dst = utf8.AppendRune(dst, r)
				i += n
				continue
			}
		case '&':
			if r, n, ok := charRef(b[i:]); ok {
				dst = append(dst, r...)
				i += n
				continue
			}
		case '%':
			if i+2 < len(b) && isHex(b[i+1]) && isHex(b[i+2]) {
				dst = append(dst, unhex(b[i+1])<<4|unhex(b[i+2]))
				i += 3
				continue
			}
		}
		dst = append(dst, b[i])
		i++
	}
	return dst
}

// jsonEscape decodes the JSON escape at the start of b (b[0] is '\\') and
// returns the rune and how many bytes it took.
func jsonEscape(b []byte) (rune, int, bool) {
	if len(b) < 2 {
		return 0, 0, false
	}
	switch e := b[1]; e {
	case '"', '\\', '/', '\'':
		return rune(e), 2, true
	case 'n':
		return '\n', 2, true
	case 'r':
		return '\r', 2, true
	case 't':
		return '\t', 2, true
	case 'b', 'f':
		return ' ', 2, true
	case 'u', 'U':
		r, ok := hex4(b, 2)
		if !ok {
			return 0, 0, false
		}
		n := 6
		if 0xD800 <= r && r < 0xDC00 && len(b) > 7 && b[6] == '\\' && (b[7] == 'u' || b[7] == 'U') {
			if lo, ok := hex4(b, 8); ok && 0xDC00 <= lo && lo < 0xE000 {
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				n = 12
			}
		}
		if 0xD800 <= r && r < 0xE000 {
			r = utf8.RuneError
		}
		return r, n, true
	}
	return 0, 0, false
}

// maxRefLen bounds an HTML character reference (&CounterClockwiseContourIntegral; is 33).
const maxRefLen = 40

// charRef decodes the HTML character reference at the start of b (b[0] is
// '&'): numeric (&#64; &#x40;, the ';' optional as browsers read them) or
// named (&commat;, with its ';'). It returns the decoded bytes and how
// many bytes it took.
func charRef(b []byte) ([]byte, int, bool) {
	if len(b) < 3 {
		return nil, 0, false
	}
	if b[1] == '#' {
		i, base := 2, 10
		if b[i] == 'x' || b[i] == 'X' {
			i, base = 3, 16
		}
		var r rune
		digits := 0
		for ; i < len(b) && digits < 8; i++ {
			c := b[i]
			var d rune
			switch {
			case '0' <= c && c <= '9':
				d = rune(c - '0')
			case base == 16 && isHex(c):
				d = rune(unhex(c))
			default:
				goto done
			}
			r = r*rune(base) + d
			digits++
		}
	done:
		if digits == 0 {
			return nil, 0, false
		}
		if i < len(b) && b[i] == ';' {
			i++
		}
		if r == 0 || r > utf8.MaxRune || (0xD800 <= r && r < 0xE000) {
			r = utf8.RuneError
		}
		return utf8.AppendRune(nil, r), i, true
	}
	end := bytes.IndexByte(b[:min(len(b), maxRefLen)], ';')
	if end < 2 {
		return nil, 0, false
	}
	for _, c := range b[1:end] {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return nil, 0, false
		}
	}
	ref := string(b[:end+1])
	dec := html.UnescapeString(ref)
	if dec == ref {
		return nil, 0, false
	}
	return []byte(dec), end + 1, true
}

// hex4 reads four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		if !isHex(c) {
			return 0, false
		}
		r = r<<4 | rune(unhex(c))
	}
	return r, true
}

// unwrapLines drops every line break together with the spaces and tabs
// around it. dst may be b[:0]: it never gets ahead of what it reads.
func unwrapLines(dst, b []byte) []byte {
	for i := 0; i < len(b); {
		k := bytes.IndexByte(b[i:], '\n')
		if r := bytes.IndexByte(b[i:], '\r'); r >= 0 && (k < 0 || r < k) {
			k = r
		}
		if k < 0 {
			return append(dst, b[i:]...)
		}
		dst = append(dst, b[i:i+k]...)
		// Drop the spaces and tabs already copied before the break.
		for len(dst) > 0 && (dst[len(dst)-1] == ' ' || dst[len(dst)-1] == '\t') {
			dst = dst[:len(dst)-1]
		}
		i, _ = lineBreakRun(b, i+k)
	}
	return dst
}

// lineBreakRun reports whether a line break (\n, \r or \r\n) starts at
// b[i] and returns the end of it and of the spaces and tabs after it.
func lineBreakRun(b []byte, i int) (int, bool) { return breakRun(b, i, false) }

// breakRun reports whether a line-break run starts at b[i]: with leading,
// spaces and tabs first; then one line break (\n, \r or \r\n) and the
// spaces and tabs after it. It returns where the run ends.
func breakRun[T ~string | ~[]byte](b T, i int, leading bool) (int, bool) {
	k := i
	blank := func() {
		for k < len(b) && (b[k] == ' ' || b[k] == '\t') {
			k++
		}
	}
	if leading {
		blank()
	}
	switch {
	case k < len(b) && b[k] == '\r':
		k++
		if k < len(b) && b[k] == '\n' {
			k++
		}
	case k < len(b) && b[k] == '\n':
		k++
	default:
		return i, false
	}
	blank()
	return k, true
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// MentionsEmail reports whether free text mentions email (normalised) as a
// whole token in any shape real text holds it: as it is
// (ContainsEmailToken), after undoing JSON, HTML and percent encodings,
// and wrapped once across a line break inside the address
// ("avery.morgan@contoso.\nexample"). The token rule applies to the shape
// found, so "ann@x.com.au" never matches "ann@x.com", encoded or wrapped;
// a line break inside an address is only bridged where the characters on
// both sides continue the address exactly, and only once. Plain spaces
// never split an address: "ann@ x.com" is a sentence, not an address.
func MentionsEmail(text, email string) bool {
	if ContainsEmailToken(text, email) {
		return true
	}
	if !HasEncodingMark([]byte(text)) {
		return false
	}
	dec := DecodeText(text)
	if dec != text && ContainsEmailToken(dec, email) {
		return true
	}
	return strings.ContainsAny(dec, "\r\n") && containsWrappedEmail(dec, email)
}

// MentionsPhone reports whether free text holds a phone number that
// normalises to phoneDigits, as it is or after undoing encodings (see
// MentionsEmail).
func MentionsPhone(text, phoneDigits, defaultRegion string) bool {
	if ContainsPhone(text, phoneDigits, defaultRegion) {
		return true
	}
	if !HasEncodingMark([]byte(text)) {
		return false
	}
	dec := DecodeText(text)
	return dec != text && ContainsPhone(dec, phoneDigits, defaultRegion)
}

// containsWrappedEmail finds email in text with exactly one line break
// (with the spaces and tabs around it) between two of its characters,
// under the token rule of ContainsEmailToken.
func containsWrappedEmail(text, email string) bool {
	at := strings.IndexByte(email, '@')
	if at < 0 {
		return false
	}
	local, domain := email[:at], email[at+1:]
	for i := 0; i < len(text); {
		k := strings.IndexByte(text[i:], '@')
		if k < 0 {
			return false
		}
		p := i + k
		i = p + 1
		start, breaks, ok := matchBackward(text, p, local, 1)
		if !ok {
			continue
		}
		end, breaks2, ok := matchForward(text, p+1, domain, 1-breaks)
		if !ok || breaks+breaks2 != 1 {
			continue
		}
		if isEmailToken(text, start, end) {
			return true
		}
	}
	return false
}

// matchBackward matches want so that it ends just before text[p],
// ASCII case-insensitively, bridging at most allow line-break runs, and
// returns where the match starts and how many runs it bridged.
func matchBackward(text string, p int, want string, allow int) (start, breaks int, ok bool) {
	i := p
	for j := len(want) - 1; j >= 0; j-- {
		if i > 0 && breaks < allow && (text[i-1] == '\n' || text[i-1] == '\r' || text[i-1] == ' ' || text[i-1] == '\t') {
			if k, bridged := breakRunBefore(text, i); bridged {
				i, breaks = k, breaks+1
			}
		}
		if i == 0 || lowerTable[text[i-1]] != want[j] {
			return 0, 0, false
		}
		i--
	}
	return i, breaks, true
}

// matchForward matches want from text[p] on (see matchBackward) and
// returns where the match ends.
func matchForward(text string, p int, want string, allow int) (end, breaks int, ok bool) {
	i := p
	for j := 0; j < len(want); j++ {
		if i < len(text) && breaks < allow && (text[i] == '\n' || text[i] == '\r' || text[i] == ' ' || text[i] == '\t') {
			if e, bridged := breakRun(text, i, true); bridged {
				i, breaks = e, breaks+1
			}
		}
		if i >= len(text) || lowerTable[text[i]] != want[j] {
			return 0, 0, false
		}
		i++
	}
	return i, breaks, true
}

// breakRunBefore reports whether text[:i] ends with a line-break run
// (spaces and tabs, one line break, spaces and tabs) and returns where the
// run starts.
func breakRunBefore(text string, i int) (int, bool) {
	k := i
	for k > 0 && (text[k-1] == ' ' || text[k-1] == '\t') {
		k--
	}
	switch {
	case k > 0 && text[k-1] == '\n':
		k--
		if k > 0 && text[k-1] == '\r' {
			k--
		}
	case k > 0 && text[k-1] == '\r':
		k--
	default:
		return i, false
	}
	for k > 0 && (text[k-1] == ' ' || text[k-1] == '\t') {
		k--
	}
	return k, true
}

// NormalizeEmailField normalises the value of an email identifier field in
// the shapes such fields hold: a bare address, a display name with the
// address in angle brackets (`"Quinn O'Brien" <QUINN.OBRIEN@x.example>`,
// `Marie Dupont <m.dupont+support@x.example>`), a mailto: link (percent
// escapes undone, any ?query dropped), or any of these encoded (JSON,
// HTML). Only the address counts: a display name is never matched.
func NormalizeEmailField(v string) (string, error) {
	e, err := NormalizeEmail(v)
	if err == nil {
		return e, nil
	}
	s := strings.TrimSpace(DecodeText(v))
	if strings.HasSuffix(s, ">") {
		if i := strings.LastIndexByte(s, '<'); i >= 0 {
			s = strings.TrimSpace(s[i+1 : len(s)-1])
		}
	}
	if len(s) >= 7 && strings.EqualFold(s[:7], "mailto:") {
		s = s[7:]
		if q := strings.IndexByte(s, '?'); q >= 0 {
			s = s[:q]
		}
	}
	if s == strings.TrimSpace(v) {
		return "", err
	}
	return NormalizeEmail(s)
}

// NormalizePhoneField normalises the value of a phone identifier field,
// undoing encodings first when plain normalisation fails.
func NormalizePhoneField(v, defaultRegion string) (string, error) {
	p, err := NormalizePhone(v, defaultRegion)
	if err == nil {
		return p, nil
	}
	if dec := DecodeText(v); dec != v {
		return NormalizePhone(dec, defaultRegion)
	}
	return "", err
}
