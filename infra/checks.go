// Package infra holds the drift checks between the Bicep deployment
// (infra/*.bicep) and the code: every queue a function.json names is declared,
// and every setting the code reads is set by the Bicep and listed in
// local.settings.json.example. They are pure functions over file contents, so
// their tests can feed them mutated copies and show each check fails.
package infra

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// DeadLetterSuffix marks a function.json queue name that is a dead-letter sub-queue.
const DeadLetterSuffix = "/$deadletterqueue"

// HostProvided are settings config.go reads that the Functions host sets
// itself; a deployment must not set them.
var HostProvided = []string{"FUNCTIONS_APP_ROOT_PATH", "FUNCTIONS_CUSTOMHANDLER_PORT", "FUNCTIONS_HTTPWORKER_PORT", "WEBSITE_HOSTNAME"}

// QueuesFromFunctionJSON returns the queue names a function.json binds to,
// with any /$deadletterqueue suffix stripped.
func QueuesFromFunctionJSON(data []byte) ([]string, error) {
	var fj struct {
		Bindings []struct {
			Type      string `json:"type"`
			QueueName string `json:"queueName"`
		} `json:"bindings"`
	}
	if err := json.Unmarshal(data, &fj); err != nil {
		return nil, err
	}
	var out []string
	for _, b := range fj.Bindings {
		if b.QueueName != "" {
			out = append(out, strings.TrimSuffix(b.QueueName, DeadLetterSuffix))
		}
	}
	return out, nil
}

// BicepArrayStrings returns the string literals of `var <name> = [ ... ]` in
// a Bicep source, or an error when the array is absent.
func BicepArrayStrings(src, name string) ([]string, error) {
	body, err := bicepBlock(src, name, '[', ']')
	if err != nil {
		return nil, err
	}
	return scanStrings(body), nil
}

// BicepObjectKeys returns the top-level keys of `var <name> = { ... }` in a
// Bicep source, or an error when the object is absent.
func BicepObjectKeys(src, name string) ([]string, error) {
	body, err := bicepBlock(src, name, '{', '}')
	if err != nil {
		return nil, err
	}
	key := regexp.MustCompile(`^\s*(?:'([^']+)'|([A-Za-z_][A-Za-z0-9_]*))\s*:`)
	var out []string
	depth := 0
	for _, line := range strings.Split(stripComments(body), "\n") {
		if depth == 0 {
			if m := key.FindStringSubmatch(line); m != nil {
				out = append(out, m[1]+m[2])
			}
		}
		depth += nesting(line)
	}
	return out, nil
}

// MissingQueues returns the queues in want not declared in declared.
func MissingQueues(want, declared []string) []string {
	return missing(want, declared)
}

// SettingsRead scans config.go source for the settings it reads: get("NAME",
// getenv("NAME") and connection(getenv, "NAME"). Connections are returned
// separately: they are read as NAME or NAME__<property>.
func SettingsRead(configGo string) (plain, connections []string) {
	plainRe := regexp.MustCompile(`\b(?:get|getenv)\("([A-Za-z0-9_]+)"`)
	connRe := regexp.MustCompile(`\bconnection\(getenv,\s*"([A-Za-z0-9_]+)"\)`)
	for _, m := range plainRe.FindAllStringSubmatch(configGo, -1) {
		if !slices.Contains(plain, m[1]) && !slices.Contains(HostProvided, m[1]) {
			plain = append(plain, m[1])
		}
	}
	for _, m := range connRe.FindAllStringSubmatch(configGo, -1) {
		if !slices.Contains(connections, m[1]) {
			connections = append(connections, m[1])
		}
	}
	sort.Strings(plain)
	sort.Strings(connections)
	return plain, connections
}

// IdentityConnectionSettings are the settings an identity-based connection
// NAME needs with a user-assigned identity: NAME__credential, NAME__clientId,
// and one of the address properties.
func IdentityConnectionSettings(name string, have []string) (missingNames []string) {
	for _, p := range []string{"credential", "clientId"} {
		if !slices.Contains(have, name+"__"+p) {
			missingNames = append(missingNames, name+"__"+p)
		}
	}
	addr := []string{"accountName", "blobServiceUri", "fullyQualifiedNamespace"}
	if !slices.ContainsFunc(addr, func(p string) bool { return slices.Contains(have, name+"__"+p) }) {
		missingNames = append(missingNames, name+"__{"+strings.Join(addr, "|")+"}")
	}
	return missingNames
}

// MissingSettings returns every setting config.go reads that have does not
// set: plain settings by name, connections in their identity-based form.
func MissingSettings(configGo string, have []string) []string {
	plain, conns := SettingsRead(configGo)
	out := missing(plain, have)
	for _, c := range conns {
		out = append(out, IdentityConnectionSettings(c, have)...)
	}
	return out
}

// LocalSettingsNames returns the keys of Values in local.settings.json(.example).
func LocalSettingsNames(data []byte) ([]string, error) {
	var ls struct {
		Values map[string]string `json:"Values"`
	}
	if err := json.Unmarshal(data, &ls); err != nil {
		return nil, err
	}
	if ls.Values == nil {
		return nil, fmt.Errorf("no Values object")
	}
	var out []string
	for k := range ls.Values {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

func missing(want, have []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(have, w) && !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

// bicepBlock returns the text between the brackets of `var <name> = <open> ... <close>`.
func bicepBlock(src, name string, open, close byte) (string, error) {
	re := regexp.MustCompile(`(?m)^\s*var\s+` + regexp.QuoteMeta(name) + `\s*=\s*` + regexp.QuoteMeta(string(open)))
	loc := re.FindStringIndex(src)
	if loc == nil {
		return "", fmt.Errorf("no `var %s = %c...%c` found", name, open, close)
	}
	body, closer, ok := bracketBody(src, loc[1]-1)
	switch {
	case !ok:
		return "", fmt.Errorf("var %s: unterminated %c", name, open)
	case closer != close:
		return "", fmt.Errorf("var %s: unbalanced brackets", name)
	}
	return body, nil
}

// bracketBody returns the text inside the bracket at src[open] and the
// bracket that closes it, skipping single-quoted strings and // comments.
func bracketBody(src string, open int) (string, byte, bool) {
	depth, inStr := 0, false
	for i := open; i < len(src); i++ {
		c := src[i]
		switch {
		case inStr:
			if c == '\\' {
				i++
			} else if c == '\'' {
				inStr = false
			}
		case c == '\'':
			inStr = true
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '{' || c == '[' || c == '(':
			depth++
		case c == '}' || c == ']' || c == ')':
			depth--
			if depth == 0 {
				return src[open+1 : i], c, true
			}
		}
	}
	return "", 0, false
}

// scanStrings returns the single-quoted literals of a Bicep fragment, outside comments.
func scanStrings(s string) []string {
	var out []string
	s = stripComments(s)
	for i := 0; i < len(s); i++ {
		if s[i] != '\'' {
			continue
		}
		var b strings.Builder
		for i++; i < len(s) && s[i] != '\''; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
		}
		out = append(out, b.String())
	}
	return out
}

// stripComments drops // line comments outside string literals.
func stripComments(s string) string {
	var b strings.Builder
	inStr := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inStr {
			b.WriteByte(c)
			if c == '\\' && i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			} else if c == '\'' {
				inStr = false
			}
			continue
		}
		if c == '\'' {
			inStr = true
		} else if c == '/' && i+1 < len(s) && s[i+1] == '/' {
			for i < len(s) && s[i] != '\n' {
				i++
			}
			if i < len(s) {
				b.WriteByte('\n')
			}
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// nesting is the bracket balance of a line, outside string literals.
func nesting(line string) int {
	n, inStr := 0, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inStr && c == '\\':
			i++
		case c == '\'':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[' || c == '(':
			n++
		case c == '}' || c == ']' || c == ')':
			n--
		}
	}
	return n
}

// AppRole is one app role of infra/app-roles.json (the Entra app
// registration's appRoles, applied with `az ad app update --app-roles`).
type AppRole struct {
	ID                 string   `json:"id"`
	Value              string   `json:"value"`
	AllowedMemberTypes []string `json:"allowedMemberTypes"`
	IsEnabled          bool     `json:"isEnabled"`
}

// RolesInCode returns the app roles shared/auth declares (`Role = "DSR.x"`).
func RolesInCode(authGo string) []string {
	re := regexp.MustCompile(`\bRole\s*=\s*"(DSR\.[A-Za-z]+)"`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(authGo, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	sort.Strings(out)
	return out
}

// CheckAppRoles compares an app-roles.json with the roles the code checks:
// every role declared once, enabled, for users and applications, with a
// unique GUID id, and no role the code does not know.
func CheckAppRoles(appRolesJSON []byte, codeRoles []string) []string {
	var roles []AppRole
	if err := json.Unmarshal(appRolesJSON, &roles); err != nil {
		return []string{"app-roles.json: " + err.Error()}
	}
	var out, values []string
	ids := map[string]bool{}
	for _, r := range roles {
		switch {
		case !guidRe.MatchString(r.ID) || len(r.ID) != 36:
			out = append(out, fmt.Sprintf("app-roles.json: %s: id %q is not a GUID", r.Value, r.ID))
		case ids[strings.ToLower(r.ID)]:
			out = append(out, fmt.Sprintf("app-roles.json: %s: id %s used twice", r.Value, r.ID))
		}
		ids[strings.ToLower(r.ID)] = true
		if slices.Contains(values, r.Value) {
			out = append(out, fmt.Sprintf("app-roles.json: %s declared twice", r.Value))
		}
		values = append(values, r.Value)
		if !r.IsEnabled || !slices.Contains(r.AllowedMemberTypes, "User") || !slices.Contains(r.AllowedMemberTypes, "Application") {
			out = append(out, fmt.Sprintf("app-roles.json: %s must be enabled for User and Application members", r.Value))
		}
	}
	for _, m := range missing(codeRoles, values) {
		out = append(out, fmt.Sprintf("app-roles.json: %s is checked by the code but not declared", m))
	}
	for _, m := range missing(values, codeRoles) {
		out = append(out, fmt.Sprintf("app-roles.json: %s is declared but the code knows no such role", m))
	}
	return out
}
