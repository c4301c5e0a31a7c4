package blobdataset

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/sources"
)

// TestTokensCoverRules is the index's promise checked on the rules
// themselves: for random records (identifiers in every shape the rules
// read, free text in strings, arrays and objects, relation values with
// spaces) and random subjects, whenever sources.Rules matches a record for
// a subject, one of the subject's lookups is among the record's tokens.
func TestTokensCoverRules(t *testing.T) {
	emails := []string{"ann@x.example", "bob.lee+tag@mail.y.example", "c@z.example"}
	phones := []string{"14255550199", "442079460958", "12065550100"}
	ids := []string{"p1", "P1", "42", "a b"}
	emailShapes := []func(string) string{
		func(e string) string { return e },
		strings.ToUpper,
		func(e string) string { return "Ann Lee <" + strings.ToUpper(e) + ">" },
		func(e string) string { return "mailto:" + strings.ReplaceAll(e, "@", "%40") + "?subject=x" },
		func(e string) string { return strings.ReplaceAll(e, "@", `\u0040`) },
		func(e string) string { return strings.ReplaceAll(e, "@", "&#64;") },
		func(e string) string { return " " + e + " " },
		func(e string) string { return "jo" + e },
		func(e string) string { return e + ".au" },
		func(e string) string { at := strings.IndexByte(e, '@'); return e[:at/2] + "\n  " + e[at/2:] },
		func(e string) string { at := strings.IndexByte(e, '@'); return e[:at+2] + "\n" + e[at+2:] },
	}
	phoneShapes := []func(string) string{
		func(p string) string { return "+" + p },
		func(p string) string {
			if strings.HasPrefix(p, "1") {
				return "(" + p[1:4] + ") " + p[4:7] + "-" + p[7:]
			}
			return "00" + p
		},
		func(p string) string { return "+" + p[:len(p)-4] + " " + p[len(p)-4:] },
		func(p string) string { return `\u002B` + p },
		func(p string) string { return p[1:] },
		func(p string) string { return "tel " + p + "9" },
	}
	texts := func(rng *rand.Rand) string {
		var b strings.Builder
		for range 1 + rng.IntN(3) {
			switch rng.IntN(4) {
			case 0:
				b.WriteString(emailShapes[rng.IntN(len(emailShapes))](emails[rng.IntN(len(emails))]))
			case 1:
				b.WriteString(phoneShapes[rng.IntN(len(phoneShapes))](phones[rng.IntN(len(phones))]))
			case 2:
				b.WriteString(" call me on 2024-05-22 or ")
			default:
				b.WriteString(". ")
			}
		}
		return b.String()
	}
	d := &sources.Dataset{Name: "d", Format: sources.FormatNDJSON,
		Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}, {Field: "emails[]", Kind: sources.KindEmail},
			{Field: "phone", Kind: sources.KindPhone}, {Field: "id", Kind: sources.KindID, IDName: "pid"}, {Field: "n.id", Kind: sources.KindID, IDName: "nid"}},
		FreeText:  []string{"notes", "thread[].body"},
		Relations: []sources.Relation{{Field: "owner", References: "d", ReferencesField: "id"}},
	}
	cfg := &sources.Config{Version: 1, DefaultPhoneRegion: "US", Datasets: []sources.Dataset{*d}}
	tok := newTokenizer(testIndexSecret, cfg, d, nil)
	rng := rand.New(rand.NewPCG(11, 12))
	matched := 0
	for range 4000 {
		rec := map[string]any{
			"email":  emailShapes[rng.IntN(len(emailShapes))](emails[rng.IntN(len(emails))]),
			"emails": []any{emailShapes[rng.IntN(len(emailShapes))](emails[rng.IntN(len(emails))]), 7},
			"phone":  phoneShapes[rng.IntN(len(phoneShapes))](phones[rng.IntN(len(phones))]),
			"id":     []any{ids[rng.IntN(len(ids))], " " + ids[rng.IntN(len(ids))] + " ", json.Number("42")}[rng.IntN(3)],
			"n":      map[string]any{"id": ids[rng.IntN(len(ids))]},
			"notes":  []any{texts(rng), map[string]any{"x": texts(rng)}}[rng.IntN(2)],
			"thread": []any{map[string]any{"body": texts(rng)}},
			"owner":  " " + ids[rng.IntN(len(ids))],
		}
		// Through JSON and back, as a record is read.
		raw, _ := json.Marshal(rec)
		fields, err := (&rawRecord{raw: raw}).fields()
		if err != nil {
			t.Fatal(err)
		}
		have := map[uint64]bool{}
		tok.record(recordView{m: fields}, func(h uint64) { have[h] = true })
		for range 4 {
			s := sources.Subject{IDs: map[string]string{}}
			if rng.IntN(2) == 0 {
				s.Emails = []string{emails[rng.IntN(len(emails))]}
			}
			if rng.IntN(2) == 0 {
				s.Phones = []string{phones[rng.IntN(len(phones))]}
			}
			if rng.IntN(2) == 0 {
				s.IDs["pid"] = ids[rng.IntN(len(ids))]
			}
			if rng.IntN(3) == 0 {
				s.IDs["nid"] = " " + ids[rng.IntN(len(ids))]
			}
			keys := keySet{}
			if rng.IntN(2) == 0 {
				keys.add("d", "id", ids[rng.IntN(len(ids))])
			}
			st := &subjectState{subj: s, keys: keys}
			rules := rules(cfg, d, s, keys)
			if rules.Match(sources.MapFields(fields)) == sources.NoMatch {
				continue
			}
			matched++
			hashes, ok := tok.lookups([]*subjectState{st})
			if !ok {
				t.Fatalf("subject %+v: not answerable", s)
			}
			found := false
			for _, h := range hashes {
				found = found || have[h]
			}
			if !found {
				t.Fatalf("the rules match %s for subject %+v (keys %v), but none of its lookups is a token of the record", raw, s, keys)
			}
		}
	}
	if matched < 1000 {
		t.Fatalf("only %d matches: the test data should match more often", matched)
	}
}

// TestTokenHashesAreKeyedAndSeparated checks what the index's privacy and
// its lookups rest on: a token's hash depends on the secret and on the
// dataset (another dataset's or another secret's index never answers for
// this one), on the kind of value and, for ids and relation keys, on the
// field; and it is stable, since a lookup must hash a subject's value to
// what the build hashed.
func TestTokenHashesAreKeyedAndSeparated(t *testing.T) {
	cfg := &sources.Config{DefaultPhoneRegion: "US"}
	a := &sources.Dataset{Name: "a"}
	b := &sources.Dataset{Name: "b"}
	secret := []byte("0123456789abcdef0123456789abcdef")
	other := []byte("0123456789abcdef0123456789abcdeF")
	hash := func(secret []byte, d *sources.Dataset, ns, field, value string) uint64 {
		return newTokenizer(secret, cfg, d, nil).hash(ns, field, value)
	}
	base := hash(secret, a, nsEmail, "", "ann@x.example")
	if again := hash(secret, a, nsEmail, "", "ann@x.example"); again != base {
		t.Fatalf("the same token hashed to %x then %x", base, again)
	}
	if base>>hashBitsMax != 0 {
		t.Fatalf("hash %x has more than %d bits", base, hashBitsMax)
	}
	for name, h := range map[string]uint64{
		"another secret":  hash(other, a, nsEmail, "", "ann@x.example"),
		"another dataset": hash(secret, b, nsEmail, "", "ann@x.example"),
		"another kind":    hash(secret, a, nsValue, "", "ann@x.example"),
		"another value":   hash(secret, a, nsEmail, "", "ann@x.exampl"),
	} {
		if h == base {
			t.Errorf("%s: hash %x equals the token's", name, h)
		}
	}
	// The separators keep field and value apart: ("ab", "c") is not
	// ("a", "bc").
	if hash(secret, a, nsValue, "ab", "c") == hash(secret, a, nsValue, "a", "bc") {
		t.Error("field and value run together")
	}
	k0, k1 := tokenKey(secret, "a")
	if l0, l1 := tokenKey(secret, "b"); l0 == k0 || l1 == k1 {
		t.Error("two datasets share a key half")
	}
	if k0 == 0 && k1 == 0 {
		t.Error("zero key")
	}
}
