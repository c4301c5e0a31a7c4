package infra

// Audit immutability: the audit trail (shared/audit, append blobs written
// through an add-and-create SAS) is kept in a container whose Bicep declares
// a container-level time-based retention policy (WORM) that still allows
// appends, on an account with blob versioning on; and the container the app
// is told to write to (DSR_AUDIT_CONTAINER) is the container protected.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Resource types and limits the check knows.
const (
	BlobServicesType       = "Microsoft.Storage/storageAccounts/blobServices"
	ContainerType          = "Microsoft.Storage/storageAccounts/blobServices/containers"
	ImmutabilityPolicyType = "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies"
	// MaxImmutabilityDays is the longest container-level retention interval
	// (146,000 days, 400 years); the shortest is one day.
	MaxImmutabilityDays = 146000
)

// AuditContainerParam is the parameter that names the audit container in the
// storage module and the Function App module alike.
const AuditContainerParam = "auditContainer"

// bicepResource is one `resource` declaration of a Bicep source.
type bicepResource struct {
	Sym, Type string
	Existing  bool
	Cond      string // "if (...)" of a conditional resource, else ""
	Loop      bool   // declared with a for expression
	Body      string // the text inside the resource's braces
}

// bicepParam is one `param` declaration with the decorators above it.
type bicepParam struct {
	Type, Default string
	Decorators    []string
}

var (
	resourceDeclRe = regexp.MustCompile(`(?m)^\s*resource\s+([A-Za-z_]\w*)\s+'([^'@]+)@[^']*'\s*(existing\s*)?=`)
	moduleDeclRe   = regexp.MustCompile(`(?m)^\s*module\s+([A-Za-z_]\w*)\s+'([^']+)'\s*=`)
	paramDeclRe    = regexp.MustCompile(`^\s*param\s+([A-Za-z_]\w*)\s+([A-Za-z_]\w*)(?:\s*=\s*(.+?))?\s*$`)
	propLineRe     = regexp.MustCompile(`^\s*'?([A-Za-z_]\w*)'?\s*:\s*(.*?)\s*$`)
	identRe        = regexp.MustCompile(`^[A-Za-z_]\w*$`)
	notEqualCondRe = regexp.MustCompile(`^if\s*\(\s*([A-Za-z_]\w*)\s*!=\s*'([^']*)'\s*\)$`)
	minValueRe     = regexp.MustCompile(`^@minValue\(\s*(-?\d+)\s*\)$`)
	maxValueRe     = regexp.MustCompile(`^@maxValue\(\s*(-?\d+)\s*\)$`)
)

// bicepResources returns the resource declarations of a Bicep source,
// comments ignored.
func bicepResources(bicep string) []bicepResource {
	src := stripComments(bicep)
	var out []bicepResource
	for _, m := range resourceDeclRe.FindAllStringSubmatchIndex(src, -1) {
		r := bicepResource{Sym: src[m[2]:m[3]], Type: src[m[4]:m[5]], Existing: m[6] >= 0}
		open := strings.IndexAny(src[m[1]:], "{[")
		if open < 0 {
			continue
		}
		head := strings.TrimSpace(src[m[1] : m[1]+open])
		if strings.HasPrefix(head, "if") {
			r.Cond = head
			open = strings.IndexByte(src[m[1]:], '{')
		} else if src[m[1]+open] == '[' {
			r.Loop = true
			open = strings.IndexByte(src[m[1]:], '{')
		}
		if open < 0 {
			continue
		}
		body, ok := braceBody(src, m[1]+open)
		if !ok {
			continue
		}
		r.Body = body
		out = append(out, r)
	}
	return out
}

// topLevelProps returns the `key: value` lines of an object body that are
// not nested in another object or array; a value that opens a block is
// returned as its first line ("{", "[", "if (x) {").
func topLevelProps(body string) map[string]string {
	out := map[string]string{}
	depth := 0
	for _, line := range strings.Split(stripComments(body), "\n") {
		if depth == 0 {
			if m := propLineRe.FindStringSubmatch(line); m != nil {
				out[m[1]] = m[2]
			}
		}
		depth += nesting(line)
	}
	return out
}

// objectProp returns the body of the top-level `key: { ... }` of an object body.
func objectProp(body, key string) (string, bool) {
	src := stripComments(body)
	re := regexp.MustCompile(`^\s*'?` + regexp.QuoteMeta(key) + `'?\s*:\s*\{`)
	depth, off := 0, 0
	for _, line := range strings.SplitAfter(src, "\n") {
		if depth == 0 {
			if loc := re.FindStringIndex(line); loc != nil {
				return braceBody(src, off+loc[1]-1)
			}
		}
		depth += nesting(line)
		off += len(line)
	}
	return "", false
}

// bicepParams returns the parameters of a Bicep source with their
// decorators (a multi-line decorator such as @allowed([...]) joined on one line).
func bicepParams(bicep string) map[string]bicepParam {
	out := map[string]bicepParam{}
	var decs []string
	var pending strings.Builder
	depth := 0
	for _, line := range strings.Split(stripComments(bicep), "\n") {
		t := strings.TrimSpace(line)
		if depth > 0 {
			pending.WriteString(" " + t)
			if depth += nesting(line); depth <= 0 {
				decs, depth = append(decs, pending.String()), 0
				pending.Reset()
			}
			continue
		}
		switch m := paramDeclRe.FindStringSubmatch(line); {
		case strings.HasPrefix(t, "@"):
			if d := nesting(line); d > 0 {
				pending.WriteString(t)
				depth = d
			} else {
				decs = append(decs, t)
			}
		case m != nil:
			out[m[1]] = bicepParam{Type: m[2], Default: m[3], Decorators: decs}
			decs = nil
		case t == "":
		default:
			decs = nil
		}
	}
	return out
}

// decoratorInt returns the value of @minValue(n) or @maxValue(n).
func (p bicepParam) decoratorInt(re *regexp.Regexp) (int, bool) {
	for _, d := range p.Decorators {
		if m := re.FindStringSubmatch(d); m != nil {
			n, err := strconv.Atoi(m[1])
			return n, err == nil
		}
	}
	return 0, false
}

// ModuleParams returns the top-level params a Bicep source passes to the
// module declared from path (e.g. 'modules/storage.bicep'), as expressions.
func ModuleParams(bicep, path string) (map[string]string, error) {
	src := stripComments(bicep)
	for _, m := range moduleDeclRe.FindAllStringSubmatchIndex(src, -1) {
		if src[m[4]:m[5]] != path {
			continue
		}
		open := strings.IndexByte(src[m[1]:], '{')
		if open < 0 {
			return nil, fmt.Errorf("module %s: no body", path)
		}
		body, ok := braceBody(src, m[1]+open)
		if !ok {
			return nil, fmt.Errorf("module %s: unbalanced braces", path)
		}
		params, ok := objectProp(body, "params")
		if !ok {
			return map[string]string{}, nil
		}
		return topLevelProps(params), nil
	}
	return nil, fmt.Errorf("no module declared from '%s'", path)
}

// CheckAuditImmutability returns what keeps the audit trail from being
// write-once, given main.bicep and the storage module: the app and the
// storage module must name the same audit container; the blob service must
// have versioning on; an immutabilityPolicies resource must be a child of the
// container named by auditContainer, named 'default', with
// allowProtectedAppendWrites true (appends to existing append blobs fail
// without it) and not allowProtectedAppendWritesAll (mutually exclusive), a
// retention period of 1 to 146000 days as deployed by default, and a
// condition, if any, that holds by default. Empty means protected.
func CheckAuditImmutability(mainBicep, storageBicep string) []string {
	var out []string
	storMod, err := ModuleParams(mainBicep, "modules/storage.bicep")
	if err != nil {
		return []string{"main.bicep: " + err.Error()}
	}
	appMod, err := ModuleParams(mainBicep, "modules/functionapp.bicep")
	if err != nil {
		return []string{"main.bicep: " + err.Error()}
	}
	if c := storMod[AuditContainerParam]; c == "" || c != appMod[AuditContainerParam] {
		out = append(out, fmt.Sprintf("main.bicep: the storage module protects %s %q but the app writes the audit trail to %q",
			AuditContainerParam, c, appMod[AuditContainerParam]))
	}
	mainParams := bicepParams(mainBicep)
	params := bicepParams(storageBicep)
	// effective is the value a storage module parameter has in a default
	// deployment: what main.bicep passes (a literal, or a main parameter's
	// default), else the module's own default.
	effective := func(name string) (string, bool) {
		if expr, ok := storMod[name]; ok {
			if identRe.MatchString(expr) {
				if p, ok := mainParams[expr]; ok {
					return p.Default, p.Default != ""
				}
				return "", false
			}
			return expr, true
		}
		p, ok := params[name]
		return p.Default, ok && p.Default != ""
	}

	resources := bicepResources(storageBicep)
	versioning := false
	auditContainers := map[string]bool{}
	for _, r := range resources {
		if r.Existing {
			continue
		}
		switch r.Type {
		case BlobServicesType:
			if props, ok := objectProp(r.Body, "properties"); ok && topLevelProps(props)["isVersioningEnabled"] == "true" {
				versioning = true
			}
		case ContainerType:
			if !r.Loop && r.Cond == "" && topLevelProps(r.Body)["name"] == AuditContainerParam {
				auditContainers[r.Sym] = true
			}
		}
	}
	if !versioning {
		out = append(out, "storage.bicep: blob versioning is not on (blobServices properties.isVersioningEnabled: true)")
	}
	if len(auditContainers) == 0 {
		out = append(out, fmt.Sprintf("storage.bicep: no unconditional container resource named %s (the audit container must be declared on its own to carry a retention policy)", AuditContainerParam))
	}
	found := 0
	for _, r := range resources {
		if r.Existing || r.Type != ImmutabilityPolicyType || !auditContainers[topLevelProps(r.Body)["parent"]] {
			continue
		}
		found++
		where := "storage.bicep: immutability policy " + r.Sym
		if name := topLevelProps(r.Body)["name"]; name != "'default'" {
			out = append(out, fmt.Sprintf("%s: name is %s, must be 'default'", where, name))
		}
		body, _ := objectProp(r.Body, "properties")
		props := topLevelProps(body)
		if props["allowProtectedAppendWrites"] != "true" {
			out = append(out, where+": allowProtectedAppendWrites is not true, so appending to an existing audit blob would fail")
		}
		if props["allowProtectedAppendWritesAll"] == "true" {
			out = append(out, where+": allowProtectedAppendWritesAll is true (mutually exclusive with allowProtectedAppendWrites, and nothing here needs block-blob appends)")
		}
		out = append(out, checkRetentionDays(where, props["immutabilityPeriodSinceCreationInDays"], params, effective)...)
		if r.Cond != "" {
			m := notEqualCondRe.FindStringSubmatch(r.Cond)
			if m == nil {
				out = append(out, fmt.Sprintf("%s: condition %q not understood (expected if (param != 'value'))", where, r.Cond))
			} else if v, ok := effective(m[1]); !ok || v == "'"+m[2]+"'" {
				out = append(out, fmt.Sprintf("%s: not deployed by default (%s is %s)", where, m[1], v))
			}
		}
	}
	if found == 0 {
		out = append(out, fmt.Sprintf("storage.bicep: no %s resource whose parent is the %s container", ImmutabilityPolicyType, AuditContainerParam))
	}
	return out
}

// checkRetentionDays checks immutabilityPeriodSinceCreationInDays: an int
// literal in range, or an int parameter bounded to the range whose default
// deployment value is in range.
func checkRetentionDays(where, expr string, params map[string]bicepParam, effective func(string) (string, bool)) []string {
	inRange := func(s string) bool {
		n, err := strconv.Atoi(s)
		return err == nil && n >= 1 && n <= MaxImmutabilityDays
	}
	switch {
	case expr == "":
		return []string{where + ": no immutabilityPeriodSinceCreationInDays"}
	case !identRe.MatchString(expr):
		if !inRange(expr) {
			return []string{fmt.Sprintf("%s: immutabilityPeriodSinceCreationInDays %s is not 1 to %d", where, expr, MaxImmutabilityDays)}
		}
		return nil
	}
	p, ok := params[expr]
	if !ok || p.Type != "int" {
		return []string{fmt.Sprintf("%s: immutabilityPeriodSinceCreationInDays %s is not an int parameter", where, expr)}
	}
	var out []string
	if lo, ok := p.decoratorInt(minValueRe); !ok || lo < 1 {
		out = append(out, fmt.Sprintf("%s: parameter %s needs @minValue(1) or more", where, expr))
	}
	if hi, ok := p.decoratorInt(maxValueRe); !ok || hi > MaxImmutabilityDays {
		out = append(out, fmt.Sprintf("%s: parameter %s needs @maxValue(%d) or less", where, expr, MaxImmutabilityDays))
	}
	if v, ok := effective(expr); !ok || !inRange(v) {
		out = append(out, fmt.Sprintf("%s: %s has no default retention of 1 to %d days (got %q)", where, expr, MaxImmutabilityDays, v))
	}
	return out
}
