package dataversetest

import (
	"fmt"
	"regexp"
	"strings"
)

// FilterTerm is one term of the $filter grammar the connector may send,
// and the only one the server accepts:
//
//	filter := term (" or " term)*
//	term   := col " eq " (string | guid) | "contains(" col "," string ")"
//
// Strings are single-quoted with quotes doubled; GUIDs are unquoted and
// lower-case.
type FilterTerm struct {
	// Contains is true for contains(col,'lit'), false for col eq lit.
	Contains bool
	// Column is the column compared.
	Column string
	// Literal is the literal's value (unquoted, quotes undoubled).
	Literal string
	// GUID is true when the literal is an unquoted GUID.
	GUID bool
}

var (
	identPrefixRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`)
	guidPrefixRE  = regexp.MustCompile(`^` + guidPattern)
)

// ParseFilter parses a decoded $filter strictly; anything outside the
// grammar of FilterTerm is an error.
func ParseFilter(s string) ([]FilterTerm, error) {
	var out []FilterTerm
	p := s
	ident := func() (string, error) {
		id := identPrefixRE.FindString(p)
		if id == "" {
			return "", fmt.Errorf("identifier expected at %q", p)
		}
		p = p[len(id):]
		return id, nil
	}
	expect := func(tok string) error {
		if !strings.HasPrefix(p, tok) {
			return fmt.Errorf("%q expected at %q", tok, p)
		}
		p = p[len(tok):]
		return nil
	}
	str := func() (string, error) {
		if err := expect("'"); err != nil {
			return "", err
		}
		var b strings.Builder
		for {
			i := strings.IndexByte(p, '\'')
			if i < 0 {
				return "", fmt.Errorf("unterminated string")
			}
			b.WriteString(p[:i])
			p = p[i+1:]
			if strings.HasPrefix(p, "'") {
				b.WriteByte('\'')
				p = p[1:]
				continue
			}
			return b.String(), nil
		}
	}
	for {
		var tm FilterTerm
		var err error
		if strings.HasPrefix(p, "contains(") {
			p = p[len("contains("):]
			tm.Contains = true
			if tm.Column, err = ident(); err != nil {
				return nil, err
			}
			if err = expect(","); err != nil {
				return nil, err
			}
			if tm.Literal, err = str(); err != nil {
				return nil, err
			}
			if err = expect(")"); err != nil {
				return nil, err
			}
		} else {
			if tm.Column, err = ident(); err != nil {
				return nil, err
			}
			if err = expect(" eq "); err != nil {
				return nil, err
			}
			if strings.HasPrefix(p, "'") {
				if tm.Literal, err = str(); err != nil {
					return nil, err
				}
			} else if g := guidPrefixRE.FindString(p); g != "" {
				tm.Literal, tm.GUID = g, true
				p = p[len(g):]
			} else {
				return nil, fmt.Errorf("literal expected at %q", p)
			}
		}
		out = append(out, tm)
		if p == "" {
			return out, nil
		}
		if err := expect(" or "); err != nil {
			return nil, err
		}
	}
}

// Eval applies the term to a row's values as Dataverse would: eq
// case-insensitively (SQL collation), contains as LIKE '%lit%' (where '_'
// and '%' are wildcards), null and non-string values never matching.
func (tm FilterTerm) Eval(vals map[string]any) bool {
	v, ok := vals[tm.Column].(string)
	if !ok {
		return false
	}
	if !tm.Contains {
		return strings.EqualFold(v, tm.Literal)
	}
	var re strings.Builder
	re.WriteString("(?is)")
	for _, r := range tm.Literal {
		switch r {
		case '%':
			re.WriteString(".*")
		case '_':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return regexp.MustCompile(re.String()).MatchString(v)
}
