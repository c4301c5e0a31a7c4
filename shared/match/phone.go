package match

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// NormalizePhone parses a phone number with github.com/nyaruka/phonenumbers,
// using defaultRegion (ISO 3166 alpha-2, case-insensitive, may be "") for
// numbers written without a country code, and returns E.164 digits WITHOUT
// the leading '+', e.g. "+1 (425) 555-0100" -> "14255550100" and
// "0044 20 7946 0958" -> "442079460958".
//
// A leading "00" international prefix is accepted for every region. Numbers
// are checked with the library's possible-number (length) rules, not its
// validity rules, so fictional ranges such as 555 numbers are accepted.
// Invalid or unparseable numbers, numbers that are only dialable locally
// (no area code), and national numbers when defaultRegion is "" return an
// error that does not contain the input. Every error wraps ErrInvalidPhone.
func NormalizePhone(s, defaultRegion string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", phoneError("empty")
	}
	if strings.HasPrefix(s, "00") {
		s = "+" + s[2:]
	}
	region := strings.ToUpper(strings.TrimSpace(defaultRegion))
	num, err := phonenumbers.Parse(s, region)
	if err != nil {
		// The library's errors are static sentinels that never contain the
		// input, so they can be wrapped as they are.
		if errors.Is(err, phonenumbers.ErrInvalidCountryCode) && region == "" && !strings.HasPrefix(s, "+") {
			return "", fmt.Errorf("phone: no country code and no default region: %w: %w", ErrInvalidPhone, err)
		}
		return "", fmt.Errorf("phone: parse: %w: %w", ErrInvalidPhone, err)
	}
	switch phonenumbers.IsPossibleNumberWithReason(num) {
	case phonenumbers.IS_POSSIBLE:
	case phonenumbers.IS_POSSIBLE_LOCAL_ONLY:
		return "", phoneError("local number without area code")
	case phonenumbers.INVALID_COUNTRY_CODE:
		return "", phoneError("invalid country code")
	case phonenumbers.TOO_SHORT:
		return "", phoneError("too short")
	case phonenumbers.TOO_LONG:
		return "", phoneError("too long")
	default:
		return "", phoneError("invalid length")
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	// Some inputs (a national trunk prefix inside an otherwise implausible
	// number) format to an E.164 string that parses to a different number.
	// Normalisation must be a fixed point, or a stored subject and a dataset
	// value would never compare equal: refuse such numbers.
	again, err := phonenumbers.Parse(e164, "")
	if err != nil || phonenumbers.Format(again, phonenumbers.E164) != e164 {
		return "", phoneError("ambiguous number")
	}
	return strings.TrimPrefix(e164, "+"), nil
}

// phoneNormalizer is NormalizePhone with a default region bound, reduced
// to whether the input is a number: what candidate runs need.
type phoneNormalizer func(s string) (string, bool)

func regionNormalizer(region string) phoneNormalizer {
	return func(s string) (string, bool) {
		p, err := NormalizePhone(s, region)
		return p, err == nil
	}
}

// PhoneMemo is NormalizePhoneField and PhoneMentionTokens for one default
// region, remembering what they found for inputs that repeat. A parse by
// the phone-number library costs about 20 µs, more than tokenising the
// rest of a record, and in a lake the same number recurs: in a person's
// records, in other datasets that hold her (cases, logs), in notes that
// quote it, written in different ways. So the memo keeps numbers by their
// canonical form (phoneKey: "(917) 555-0149" and "917.555.0149" are one
// entry), and one memo serves every worker and every blob of a process
// (it is safe for concurrent use). Its maps are bounded (the inputs that
// come first are kept), so memory stays flat.
type PhoneMemo struct {
	region string
	// us: the default region is the United States (northAmerican).
	us  bool
	max int
	// fields maps a field's value to NormalizePhoneField's answer,
	// numbers a number's canonical form (or, if it has none, the input)
	// to NormalizePhone's; "" if it is not a phone number.
	fields, numbers memoMap
}

// memoMap is a bounded map read far more often than written: readers
// share the lock.
type memoMap struct {
	mu sync.RWMutex
	m  map[string]string
}

func (m *memoMap) len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.m)
}

// NewPhoneMemo returns a PhoneMemo keeping up to max inputs of each kind
// (only inputs of at most 64 bytes: numbers are shorter).
func NewPhoneMemo(defaultRegion string, max int) *PhoneMemo {
	return &PhoneMemo{region: defaultRegion, max: max, fields: memoMap{m: map[string]string{}}, numbers: memoMap{m: map[string]string{}},
		us: strings.ToUpper(strings.TrimSpace(defaultRegion)) == "US"}
}

// northAmerican returns what NormalizePhone gives for key, the canonical
// form of a number (phoneKey), when it is a North American number whose
// answer is known without the phone library: "+1" and ten digits or, with
// default region US, ten digits or "1" and ten, where the ten start with
// 2 to 9 (an area code). The library reads each as country code 1 and the
// ten digits: no national prefix to strip (NANP's is "1", which an area
// code never starts with; a leading "1" before ten digits is the country
// code), a possible length (ten is NANP's only length that is not local),
// a fixed point. So the answer is "1" and the ten. A parse by the library
// costs about 20 µs, this a few nanoseconds, which is what the first sight
// of each number costs an index build. TestNorthAmericanIsTheLibrarys
// checks the claim against the library.
func northAmerican(key []byte, us bool) (string, bool) {
	var ten []byte
	switch {
	case len(key) == 12 && key[0] == '+' && key[1] == '1':
		ten = key[2:]
	case us && len(key) == 10 && key[0] != '+':
		ten = key
	case us && len(key) == 11 && key[0] == '1':
		ten = key[1:]
	default:
		return "", false
	}
	if ten[0] < '2' {
		return "", false
	}
	return "1" + string(ten), true
}

const maxMemoInput = 64

// remember returns m[key], computing and keeping it if it is not there.
// Two callers may compute the same key at once; both get the same answer.
func (p *PhoneMemo) remember(m *memoMap, key []byte, compute func() string) (string, bool) {
	m.mu.RLock()
	got, ok := m.m[string(key)] // no copy to look it up
	m.mu.RUnlock()
	if ok {
		return got, got != ""
	}
	got = compute()
	if len(key) <= maxMemoInput {
		m.mu.Lock()
		if len(m.m) < p.max {
			m.m[string(key)] = got
		}
		m.mu.Unlock()
	}
	return got, got != ""
}

// normalize is NormalizePhone(s, region) reduced to whether s is a
// number, remembered by s's canonical form.
func (p *PhoneMemo) normalize(s string) (string, bool) {
	var buf [maxMemoInput]byte
	key, ok := phoneKey(buf[:0], s)
	if !ok {
		key = append(buf[:0], s...)
	}
	return p.remember(&p.numbers, key, func() string {
		in := s
		if ok {
			if n, ok := northAmerican(key, p.us); ok {
				return n
			}
			in = string(key)
		}
		n, err := NormalizePhone(in, p.region)
		if err != nil {
			return ""
		}
		return n
	})
}

// Field is NormalizePhoneField(v, region), reduced to whether v is a
// number.
func (p *PhoneMemo) Field(v string) (string, bool) {
	var buf [maxMemoInput]byte
	return p.remember(&p.fields, append(buf[:0], v...), func() string {
		if n, ok := p.normalize(v); ok {
			return n
		}
		if dec := DecodeText(v); dec != v {
			n, _ := p.normalize(dec)
			return n
		}
		return ""
	})
}

// MentionTokens is PhoneMentionTokens(text, region, yield).
func (p *PhoneMemo) MentionTokens(text string, yield func(phoneDigits string)) {
	phoneMentionTokens(text, p.normalize, yield)
}

// phoneKey returns, in dst's memory, the canonical form of s, a phone number written
// with nothing but digits, spaces and "()-./" after an optional leading
// '+' or "00": '+' if it has either, then its digits. NormalizePhone
// gives the same answer for s and its canonical form, because the phone
// library reads such an input as its digits and whether it is
// international: it drops the characters before the first digit or '+',
// finds no extension (those need letters, '#', '~', ',' or ';') and
// strips the separators. (TestPhoneKeyKeepsTheNumber checks this against
// the library.) ok is false for other inputs, for inputs too long for
// the library (it refuses them whole) or for the memo, for fewer than
// three digits (the library's rule for two differs), and for a national
// form whose digits start "00" (NormalizePhone reads a leading "00" as
// '+' only where the text starts with it).
func phoneKey(dst []byte, s string) (key []byte, ok bool) {
	s = strings.TrimSpace(s)
	plus := false
	if strings.HasPrefix(s, "00") {
		plus, s = true, s[2:]
	} else if strings.HasPrefix(s, "+") {
		plus, s = true, s[1:]
	}
	if len(s) > maxMemoInput-1 {
		return dst, false
	}
	dst = dst[:0]
	if plus {
		dst = append(dst, '+')
	}
	digits := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '(', ')', '-', '.', '/':
		default:
			if !isDigit(c) {
				return dst, false
			}
			dst = append(dst, c)
			digits++
		}
	}
	if digits < 3 {
		return dst, false
	}
	if !plus && dst[0] == '0' && dst[1] == '0' {
		return dst, false
	}
	return dst, true
}

func phoneError(reason string) error {
	return fmt.Errorf("phone: %s: %w", reason, ErrInvalidPhone)
}

// Candidate limits for ContainsPhone.
const (
	minCandidateDigits = 7
	// maxCandidateDigits is 15 (E.164) plus a 2-digit "00" prefix or
	// national prefix; longer digit runs cannot be a single number.
	maxCandidateDigits = 17
	// maxWindowGroups bounds the fallback sub-candidates (see ContainsPhone).
	maxWindowGroups = 8
	// rejectKeyLen is how many trailing digits of the national significant
	// number the fast reject looks for.
	rejectKeyLen = 7
)

// ContainsPhone reports whether free text contains a phone number that
// normalises (with defaultRegion) to phoneDigits (E.164 digits without '+').
//
// Candidates are maximal runs of bytes from "+0123456789 ()-./" that contain
// at least 7 digits, trimmed of spaces and punctuation at both ends; each
// candidate is normalised with NormalizePhone and compared. If a candidate
// does not normalise at all (typically two numbers, or a date and a number,
// separated by spaces or '/'), its contiguous sub-runs of whole
// space/slash-separated groups (at most 8 groups, 7 to 17 digits) are tried
// as well. Digits glued to other digits are never split, so a number inside
// a longer digit run (an order id) does not match.
//
// A fast reject runs first and without allocation: the text must contain, as
// a contiguous digit sequence inside one run, the last 7 digits of the
// national significant number of phoneDigits (the digits after the country
// code). Only the tail is required because some national formats insert
// digits into the number (Argentina's mobile "15"). Only ASCII digits are
// recognised in text. An invalid phoneDigits (non-digits, unknown country
// code) never matches.
func ContainsPhone(text, phoneDigits, defaultRegion string) bool {
	nsn, ok := nationalNumber(phoneDigits)
	if !ok {
		return false
	}
	key := nsn[max(0, len(nsn)-rejectKeyLen):]
	if !containsDigitsInRun(text, key) {
		return false
	}
	found := false
	phoneRuns(text, phoneDigits, defaultRegion, func(int, int) bool {
		found = true
		return false
	})
	return found
}

// phoneRuns calls fn with the bounds of every phone run of text (see
// ContainsPhone) that matches phoneDigits, in order, until fn returns
// false.
func phoneRuns(text, phoneDigits, defaultRegion string, fn func(start, end int) bool) {
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
		if digits >= minCandidateDigits && candidateMatches(text[i:j], digits, phoneDigits, defaultRegion) && !fn(i, j) {
			return
		}
		i = j
	}
}

// nationalNumber splits E.164 digits (without '+') into country code and
// national significant number, using the library's table of calling codes
// (country codes are prefix-free, so at most one split is valid).
func nationalNumber(phoneDigits string) (string, bool) {
	if len(phoneDigits) < 4 || len(phoneDigits) > 15 {
		return "", false
	}
	for i := 0; i < len(phoneDigits); i++ {
		if !isDigit(phoneDigits[i]) {
			return "", false
		}
	}
	codes := phonenumbers.GetSupportedCallingCodes()
	cc := 0
	for l := 1; l <= 3; l++ {
		cc = cc*10 + int(phoneDigits[l-1]-'0')
		if codes[cc] {
			return phoneDigits[l:], true
		}
	}
	return "", false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// containsDigitsInRun reports whether key (1 to rejectKeyLen digits) occurs
// in the digit stream of text, where non-digit bytes of a phone run are
// skipped and any other byte breaks the stream. It is a KMP search with the
// failure table on the stack.
func containsDigitsInRun(text, key string) bool {
	var fail [rejectKeyLen + 1]int
	m := len(key)
	if m == 0 || m > rejectKeyLen {
		return false
	}
	for i, k := 1, 0; i < m; i++ {
		for k > 0 && key[i] != key[k] {
			k = fail[k-1]
		}
		if key[i] == key[k] {
			k++
		}
		fail[i] = k
	}
	q := 0
	for i := 0; i < len(text); i++ {
		c := text[i]
		if !isDigit(c) {
			if !phoneRunChars[c] {
				q = 0
			}
			continue
		}
		for q > 0 && c != key[q] {
			q = fail[q-1]
		}
		if c == key[q] {
			q++
			if q == m {
				return true
			}
		}
	}
	return false
}

// trimCandidate removes separators that cannot start or end a number.
func trimCandidate(s string) string {
	s = strings.TrimLeft(s, " .-/)")
	return strings.TrimRight(s, " .-/(")
}

// candidateMatches reports whether the run (with the given digit count), or
// failing that one of its group windows, normalises to phoneDigits.
func candidateMatches(run string, digits int, phoneDigits, region string) bool {
	found := false
	candidateNumbers(run, digits, regionNormalizer(region), func(got string) bool {
		found = got == phoneDigits
		return !found
	})
	return found
}

// candidateNumbers calls yield with what a phone run (with the given digit
// count) normalises to: the whole run when it normalises, else each of its
// group windows that does (see ContainsPhone), until yield returns false.
// It is the one definition of the numbers a run can hold, shared by
// ContainsPhone and PhoneMentionTokens.
func candidateNumbers(run string, digits int, normalize phoneNormalizer, yield func(string) bool) {
	run = trimCandidate(run)
	whole := false
	if digits <= maxCandidateDigits {
		if got, ok := normalize(run); ok {
			yield(got)
			return
		}
		whole = true
	}
	// Fallback: windows of whole groups separated by spaces or '/'.
	var groups [][2]int // [start, end) of each group within run
	for i := 0; i < len(run); {
		if run[i] == ' ' || run[i] == '/' {
			i++
			continue
		}
		j := i
		for j < len(run) && run[j] != ' ' && run[j] != '/' {
			j++
		}
		groups = append(groups, [2]int{i, j})
		i = j
	}
	for a := range groups {
		d := 0
		for b := a; b < len(groups) && b-a < maxWindowGroups; b++ {
			for k := groups[b][0]; k < groups[b][1]; k++ {
				if isDigit(run[k]) {
					d++
				}
			}
			if d > maxCandidateDigits {
				break
			}
			if d < minCandidateDigits || (whole && a == 0 && b == len(groups)-1) {
				continue
			}
			w := trimCandidate(run[groups[a][0]:groups[b][1]])
			if got, ok := normalize(w); ok && !yield(got) {
				return
			}
		}
	}
}
