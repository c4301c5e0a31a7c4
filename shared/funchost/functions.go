// Package funchost speaks the Azure Functions custom handler wire contract:
// it reads function.json definitions, serves forwarded HTTP requests and
// invocation payloads as the handler (Handler), and plays the host's part
// locally (LocalHost): routing HTTP triggers and delivering queue messages as
// invocation payloads, with redelivery and dead-lettering.
package funchost

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"sort"
	"strings"
)

// Binding is one entry of a function.json "bindings" array.
type Binding struct {
	Type       string   `json:"type"`
	Direction  string   `json:"direction"`
	Name       string   `json:"name"`
	AuthLevel  string   `json:"authLevel,omitempty"`
	Methods    []string `json:"methods,omitempty"`
	Route      string   `json:"route,omitempty"`
	QueueName  string   `json:"queueName,omitempty"`
	Connection string   `json:"connection,omitempty"`
	Schedule   string   `json:"schedule,omitempty"`
	DataType   string   `json:"dataType,omitempty"`
}

// Function is one function: its folder name and bindings.
type Function struct {
	Name     string    `json:"-"`
	Bindings []Binding `json:"bindings"`
}

// Trigger kinds.
const (
	HTTPTrigger       = "httpTrigger"
	ServiceBusTrigger = "serviceBusTrigger"
	TimerTrigger      = "timerTrigger"
)

// Trigger returns the function's trigger binding.
func (f Function) Trigger() Binding {
	for _, b := range f.Bindings {
		if strings.HasSuffix(b.Type, "Trigger") {
			return b
		}
	}
	return Binding{}
}

// Pattern is the net/http ServeMux pattern(s) of an HTTP function, one per
// method (methods are case-insensitive; each appears once), e.g.
// "POST /api/requests/{id}/export-link". Constraints are dropped
// ({id:guid} becomes {id}) and a catch-all {*path} becomes {path...}.
func (f Function) Patterns() []string {
	t := f.Trigger()
	if t.Type != HTTPTrigger {
		return nil
	}
	route := "/api/" + routeParam.ReplaceAllStringFunc(t.Route, func(p string) string {
		m := routeParam.FindStringSubmatch(p)
		if m[1] == "*" {
			return "{" + m[2] + "...}"
		}
		return "{" + m[2] + "}"
	})
	var out []string
	seen := map[string]bool{}
	for _, m := range t.Methods {
		p := strings.ToUpper(m) + " " + route
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// AllMethods are the HTTP methods a route answers, in the order an Allow
// header lists them: those it serves, and 405 for the others.
var AllMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}

// ServedPatterns is the subset of Patterns for the methods given, or all
// of Patterns when methods is nil (see Registry.Serves).
func (f Function) ServedPatterns(methods []string) map[string]bool {
	out := map[string]bool{}
	declared := f.Patterns()
	if methods == nil {
		for _, p := range declared {
			out[p] = true
		}
		return out
	}
	if len(declared) == 0 {
		return out
	}
	_, route, _ := strings.Cut(declared[0], " ")
	for _, m := range methods {
		out[strings.ToUpper(m)+" "+route] = true
	}
	return out
}

// routeParam matches a route parameter with an optional constraint, {id:guid},
// or a catch-all, {*path}.
var routeParam = regexp.MustCompile(`\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}`)

// register adds pattern to mux, turning the ServeMux's panic on an invalid
// or conflicting pattern into an error.
func register(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

var functionName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,127}$`)

// LoadFunctions reads every <name>/function.json in fsys and validates it
// against what the Functions host requires of a custom handler app.
func LoadFunctions(fsys fs.FS) ([]Function, error) {
	paths, err := fs.Glob(fsys, "*/function.json")
	if err != nil {
		return nil, fmt.Errorf("find function.json files: %w", err)
	}
	sort.Strings(paths)
	var fns []Function
	routes := map[string]string{}
	// probe holds every route so far: a ServeMux refuses two patterns that
	// match the same requests (requests/{id} and requests/{rid}), as the
	// host's router could not choose between them either.
	probe := http.NewServeMux()
	for _, p := range paths {
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		f, err := ParseFunction(path.Dir(p), b)
		if err != nil {
			return nil, err
		}
		for _, pat := range f.Patterns() {
			if other, dup := routes[pat]; dup {
				return nil, fmt.Errorf("%s: route %q is also served by %s", p, pat, other)
			}
			if err := register(probe, pat, http.NotFoundHandler()); err != nil {
				return nil, fmt.Errorf("%s: route %q conflicts with %s", p, pat, conflicting(routes, pat))
			}
			routes[pat] = f.Name
		}
		fns = append(fns, f)
	}
	if len(fns) == 0 {
		return nil, fmt.Errorf("no */function.json found")
	}
	return fns, nil
}

// conflicting names the registered route that pattern conflicts with.
func conflicting(routes map[string]string, pattern string) string {
	pats := make([]string, 0, len(routes))
	for p := range routes {
		pats = append(pats, p)
	}
	sort.Strings(pats)
	for _, p := range pats {
		mux := http.NewServeMux()
		mux.Handle(p, http.NotFoundHandler())
		if register(mux, pattern, http.NotFoundHandler()) != nil {
			return fmt.Sprintf("%q of %s", p, routes[p])
		}
	}
	return "another function's route"
}

// ParseFunction decodes and validates one function.json.
func ParseFunction(name string, b []byte) (Function, error) {
	var f Function
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("function %s: decode function.json: %w", name, err)
	}
	f.Name = name
	if !functionName.MatchString(name) {
		return f, fmt.Errorf("function %s: invalid function name", name)
	}
	var triggers, ins, outs int
	for _, b := range f.Bindings {
		if b.Name == "" || b.Type == "" {
			return f, fmt.Errorf("function %s: every binding needs a type and a name", name)
		}
		if strings.HasSuffix(b.Type, "Trigger") {
			triggers++
		}
		switch b.Direction {
		case "in":
			ins++
		case "out":
			outs++
		default:
			return f, fmt.Errorf("function %s: binding %s: direction must be in or out", name, b.Name)
		}
	}
	if triggers != 1 {
		return f, fmt.Errorf("function %s: needs exactly one trigger binding, has %d", name, triggers)
	}
	t := f.Trigger()
	if t.Direction != "in" {
		return f, fmt.Errorf("function %s: trigger binding %s: direction must be in", name, t.Name)
	}
	switch t.Type {
	case HTTPTrigger:
		// The host forwards the raw request only to functions with exactly
		// one httpTrigger in and one http out; anything else would get an
		// invocation payload our HTTP handlers do not expect.
		if ins != 1 || outs != 1 || len(f.Bindings) != 2 || f.outType() != "http" {
			return f, fmt.Errorf("function %s: an HTTP function must have exactly one httpTrigger and one http output binding to be forwarded", name)
		}
		if t.Route == "" || strings.HasPrefix(t.Route, "/") || len(t.Methods) == 0 {
			return f, fmt.Errorf("function %s: httpTrigger needs a relative route and methods", name)
		}
		if strings.Contains(t.Route, "?}") {
			return f, fmt.Errorf("function %s: optional route parameters are not supported", name)
		}
		// The route must make valid, distinct ServeMux patterns, or
		// NewHandler and LocalHost would panic registering it.
		probe := http.NewServeMux()
		for _, p := range f.Patterns() {
			if err := register(probe, p, http.NotFoundHandler()); err != nil {
				return f, fmt.Errorf("function %s: route %q cannot be served: %w", name, t.Route, err)
			}
		}
	case ServiceBusTrigger:
		if t.QueueName == "" || t.Connection == "" {
			return f, fmt.Errorf("function %s: serviceBusTrigger needs queueName and connection", name)
		}
	case TimerTrigger:
		if t.Schedule == "" {
			return f, fmt.Errorf("function %s: timerTrigger needs a schedule", name)
		}
		if _, err := f.Schedule(); err != nil {
			return f, fmt.Errorf("function %s: timerTrigger schedule: %w", name, err)
		}
	default:
		return f, fmt.Errorf("function %s: trigger type %s is not supported by this app", name, t.Type)
	}
	return f, nil
}

func (f Function) outType() string {
	for _, b := range f.Bindings {
		if b.Direction == "out" {
			return b.Type
		}
	}
	return ""
}

// QueueOf returns the queue that triggers the named function, or "".
func QueueOf(fns []Function, name string) string {
	for _, f := range fns {
		if f.Name == name && f.Trigger().Type == ServiceBusTrigger {
			return f.Trigger().QueueName
		}
	}
	return ""
}
