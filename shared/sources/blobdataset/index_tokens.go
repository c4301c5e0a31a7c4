package blobdataset

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/dchest/siphash"
	"github.com/dsr-functions/dsr/shared/match"
	"github.com/dsr-functions/dsr/shared/sources"
)

// Index tokens. A record's tokens are the values the exact rules
// (sources.Rules) compare with a subject's identifiers, in the form they
// compare them: the normalised address of an email field, the E.164 digits
// of a phone field, the trimmed value of an id or relation field, and every
// address and number the free-text matchers could find in a free-text
// field (match.EmailMentionTokens, match.PhoneMentionTokens). A subject's
// lookups are her identifiers and relation keys in the same forms. So
// whenever the rules match a record for a subject, one of her lookups
// equals one of the record's tokens, and the index names the record's
// block: the index only ever adds candidates, never loses a match.
//
// Tokens are stored as keyed hashes, never as values: SipHash-2-4 under a
// 128-bit key of the dataset's own (tokenKey: HMAC-SHA256 of the index
// secret and the dataset's name), over the kind of value, the field (for
// ids and relation keys) and the value, cut to 40 bits and then to the
// index's hash width. SipHash is a pseudorandom function built for short
// inputs: without the secret, a hash tells nothing about its value and no
// guess can be checked against it, as with HMAC-SHA256, at a tenth of the
// cost per token (17.6 ns against 167 ns here). A build hashes every
// token of every record, so that was up to a quarter of its CPU.

// Namespaces of tokens: emails and phones are compared whatever field
// holds them; id and relation values only within their field.
const (
	nsEmail = "e"
	nsPhone = "p"
	nsValue = "v"
)

// tokenizer hashes the tokens of one dataset's records and the lookups of
// its subjects. It is not safe for concurrent use.
type tokenizer struct {
	d *sources.Dataset
	// k0 and k1 are the dataset's SipHash key (tokenKey).
	k0, k1 uint64
	buf    []byte
	// slots take the top-level fields the tokens come from, if that is
	// all they come from (topLevelFields), of each record in turn
	// (recordFields decodes only those); nil otherwise.
	slots *fieldSlots
	// mentions caches the mention tokens of free texts, which repeat
	// (templates, canned replies): finding phone numbers in a text costs
	// a phone-number parse per digit run. Texts up to maxCachedText bytes
	// are kept.
	mentions map[string][]mention
	// phones normalises phone numbers, in fields and in free text,
	// remembering the numbers that recur (shared by the connector's
	// builds: indexer.phoneMemo).
	phones *match.PhoneMemo
}

// mention is a token of a free text: an email or phone in normal form.
type mention struct{ ns, value string }

// maxMentionCache bounds the texts tokenizer.mentions keeps, so memory
// stays flat (a few MiB per worker).
const (
	maxMentionCache = 1 << 15
	maxCachedText   = 256
	maxPhoneMemo    = 1 << 15
)

// newTokenizer returns a tokenizer for dataset d; phones may be nil (a
// tokenizer of lookups only, or a test), and then it gets its own.
func newTokenizer(secret []byte, cfg *sources.Config, d *sources.Dataset, phones *match.PhoneMemo) *tokenizer {
	if phones == nil {
		phones = match.NewPhoneMemo(cfg.DefaultPhoneRegion, maxPhoneMemo)
	}
	k0, k1 := tokenKey(secret, d.Name)
	return &tokenizer{
		d:      d,
		k0:     k0,
		k1:     k1,
		slots:  newFieldSlots(topLevelFields(d)),
		phones: phones,
	}
}

// hash is the keyed 40-bit hash of a token: value in namespace ns (and
// field, for nsValue).
func (t *tokenizer) hash(ns, field, value string) uint64 {
	t.buf = append(t.buf[:0], ns...)
	t.buf = append(t.buf, 0)
	t.buf = append(t.buf, field...)
	t.buf = append(t.buf, 0)
	t.buf = append(t.buf, value...)
	return siphash.Hash(t.k0, t.k1, t.buf) >> (64 - hashBitsMax)
}

// tokenKey derives dataset's SipHash key from the index secret, so that
// the same value hashes apart in two datasets and no dataset's key tells
// anything of another's or of the secret.
func tokenKey(secret []byte, dataset string) (k0, k1 uint64) {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("dsr-index/2 token key\x00" + dataset))
	sum := m.Sum(nil)
	return binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])
}

// record calls yield with the hash of every token of a parsed record (a
// token may come more than once).
func (t *tokenizer) record(rec recordView, yield func(uint64)) {
	for _, id := range t.d.Identifiers {
		switch id.Kind {
		case sources.KindEmail:
			rec.Strings(id.Field, func(v string) bool {
				if e, err := match.NormalizeEmailField(v); err == nil {
					yield(t.hash(nsEmail, "", e))
				}
				return true
			})
		case sources.KindPhone:
			rec.Strings(id.Field, func(v string) bool {
				if p, ok := t.phones.Field(v); ok {
					yield(t.hash(nsPhone, "", p))
				}
				return true
			})
		case sources.KindID:
			t.values(rec, id.Field, yield)
		}
	}
	for _, f := range t.d.FreeText {
		rec.Text(f, func(text string) bool {
			for _, m := range t.textMentions(text) {
				yield(t.hash(m.ns, "", m.value))
			}
			return true
		})
	}
	for _, r := range t.d.Relations {
		t.values(rec, r.Field, yield)
	}
}

// textMentions returns the emails and phones free text may mention.
func (t *tokenizer) textMentions(text string) []mention {
	if m, ok := t.mentions[text]; ok {
		return m
	}
	var out []mention
	match.EmailMentionTokens(text, func(e string) { out = append(out, mention{nsEmail, e}) })
	t.phones.MentionTokens(text, func(p string) { out = append(out, mention{nsPhone, p}) })
	if t.mentions == nil {
		t.mentions = make(map[string][]mention, 1024)
	}
	// When full, the cache keeps what it has: the texts that repeat
	// (templates) come early.
	if len(text) <= maxCachedText && len(t.mentions) < maxMentionCache {
		t.mentions[strings.Clone(text)] = out
	}
	return out
}

// values yields the trimmed values of field, as the rules compare ids and
// relation keys.
func (t *tokenizer) values(rec recordView, field string, yield func(uint64)) {
	rec.Strings(field, func(v string) bool {
		if v = strings.TrimSpace(v); v != "" {
			yield(t.hash(nsValue, field, v))
		}
		return true
	})
}

// maxLookups bounds the hashes one blob's lookup may ask for; a pass with
// more (a subject with thousands of relation keys) scans instead.
const maxLookups = 4096

// lookups returns the hashes to look up for the due subjects, each once.
// ok is false when the index cannot answer for one of them: an email that
// is not normalised (free-text matching folds case, so its hash would not
// be the token's), an empty or non-digit phone (the prefilter treats an
// empty phone as matching every line), or too many lookups. The blob is
// then scanned: correctness over speed.
func (t *tokenizer) lookups(due []*subjectState) (hashes []uint64, ok bool) {
	emails, phones := len(t.d.FreeText) > 0, len(t.d.FreeText) > 0
	for _, id := range t.d.Identifiers {
		emails = emails || id.Kind == sources.KindEmail
		phones = phones || id.Kind == sources.KindPhone
	}
	seen := map[uint64]bool{}
	add := func(h uint64) {
		if !seen[h] {
			seen[h] = true
			hashes = append(hashes, h)
		}
	}
	for _, st := range due {
		s := st.subj
		for _, e := range s.Emails {
			if n, err := match.NormalizeEmail(e); err != nil || n != e {
				return nil, false
			}
			if emails {
				add(t.hash(nsEmail, "", e))
			}
		}
		for _, p := range s.Phones {
			if p == "" || strings.ContainsFunc(p, func(r rune) bool { return r < '0' || r > '9' }) {
				return nil, false
			}
			if phones {
				add(t.hash(nsPhone, "", p))
			}
		}
		for _, id := range t.d.Identifiers {
			if id.Kind != sources.KindID {
				continue
			}
			if want := strings.TrimSpace(s.IDs[id.IDNameOrField()]); want != "" {
				add(t.hash(nsValue, id.Field, want))
			}
		}
		for _, r := range t.d.Relations {
			for v := range st.keys[r.References][r.ReferencesField] {
				add(t.hash(nsValue, r.Field, v))
			}
		}
		if len(hashes) > maxLookups {
			return nil, false
		}
	}
	return hashes, true
}

// keyID names the index secret without revealing it.
func keyID(secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("dsr-index key id"))
	return hex.EncodeToString(m.Sum(nil))[:16]
}

// rulesID is a hash of what the tokens of dataset d depend on: its format,
// identifiers, free-text and relation fields, and the phone region.
func rulesID(cfg *sources.Config, d *sources.Dataset) string {
	var rel []string
	for _, r := range d.Relations {
		rel = append(rel, r.Field)
	}
	b, _ := json.Marshal(struct {
		Format      sources.Format
		Identifiers []sources.Identifier
		FreeText    []string
		Relations   []string
		Region      string
	}{d.Format, d.Identifiers, d.FreeText, rel, cfg.DefaultPhoneRegion})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// blobID is a hash of a blob's name: index objects are named by it, so
// that a name never appears in the state container's listing.
func blobID(dataset, blob string) string {
	sum := sha256.Sum256([]byte(dataset + "\x00" + blob))
	return hex.EncodeToString(sum[:16])
}
