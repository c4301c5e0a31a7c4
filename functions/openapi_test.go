package functions_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/dsr-functions/dsr/functions"
	"github.com/dsr-functions/dsr/functions/openapi"
	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/funchost"
)

// contractDoc is the parts of the OpenAPI document the tests read.
type contractDoc struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		OperationID string                `json:"operationId"`
		Function    string                `json:"x-function"`
		Roles       []string              `json:"x-roles"`
		OwnRole     string                `json:"x-own-role"`
		Security    []map[string][]string `json:"security"`
		Browser     bool                  `json:"x-browser"`
		CatchAll    bool                  `json:"x-catch-all"`
		Responses   map[string]struct {
			Codes   []string `json:"x-codes"`
			Content map[string]struct {
				Schema json.RawMessage `json:"schema"`
			} `json:"content"`
		} `json:"responses"`
	} `json:"paths"`
	Components struct {
		Schemas map[string]json.RawMessage `json:"schemas"`
	} `json:"components"`
}

// contract is the document, a mux that finds an operation by method and
// path as the host routes them, and compiled response schemas.
type contract struct {
	doc     contractDoc
	mux     *http.ServeMux
	schemas *jsonschema.Compiler
	mu      sync.Mutex
	cache   map[string]*jsonschema.Schema
}

const contractURL = "mem://openapi.json"

var loadContract = sync.OnceValues(func() (*contract, error) {
	c := &contract{mux: http.NewServeMux(), cache: map[string]*jsonschema.Schema{}}
	if err := json.Unmarshal(openapi.Document, &c.doc); err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(openapi.Document))
	if err != nil {
		return nil, err
	}
	c.schemas = jsonschema.NewCompiler()
	c.schemas.DefaultDraft(jsonschema.Draft2020)
	c.schemas.AssertFormat()
	if err := c.schemas.AddResource(contractURL, raw); err != nil {
		return nil, err
	}
	for path, ops := range c.doc.Paths {
		for method, op := range ops {
			route := path
			if op.CatchAll {
				// OpenAPI has no catch-all parameter; the host's route
				// does: its last parameter takes the rest of the path.
				route = strings.TrimSuffix(route, "}") + "...}"
			}
			c.mux.Handle(strings.ToUpper(method)+" "+route, http.NotFoundHandler())
		}
	}
	return c, nil
})

func mustContract(t testing.TB) *contract {
	t.Helper()
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pointer escapes a JSON pointer token.
func pointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// schema compiles the schema of one response's content, once.
func (c *contract) schema(path, method, status, mediaType string) (*jsonschema.Schema, error) {
	loc := contractURL + "#/paths/" + pointer(path) + "/" + method + "/responses/" + status + "/content/" + pointer(mediaType) + "/schema"
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.cache[loc]; ok {
		return s, nil
	}
	s, err := c.schemas.Compile(loc)
	if err != nil {
		return nil, err
	}
	c.cache[loc] = s
	return s, nil
}

// check validates one answer of the API against the document: the route
// and method are documented, the status is one of the operation's
// responses, the body matches that response's schema for its media type,
// and a problem's code is one the response lists. It returns what is wrong.
// hostAnswer reports an answer of the host's front door, before any
// function (the document's info.description lists them): a path with dot
// segments, which names no operation, and oversized headers.
func hostAnswer(status int, body []byte) bool {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(body, &p)
	return (status == http.StatusNotFound && p.Code == "not-found") ||
		(status == http.StatusRequestHeaderFieldsTooLarge && p.Code == "headers-too-large")
}

func (c *contract) check(method, rawPath string, status int, contentType string, body []byte) []string {
	if hostAnswer(status, body) {
		return nil
	}
	req, _ := http.NewRequest(method, rawPath, nil)
	_, pattern := c.mux.Handler(req)
	if pattern == "" {
		if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
			return nil // the host's answer for routes no function serves
		}
		return []string{fmt.Sprintf("%s %s: no operation in openapi.json", method, rawPath)}
	}
	m, path, _ := strings.Cut(pattern, " ")
	path = strings.Replace(path, "...}", "}", 1)
	op := c.doc.Paths[path][strings.ToLower(m)]
	st := strconv.Itoa(status)
	resp, ok := op.Responses[st]
	if !ok {
		return []string{fmt.Sprintf("%s %s: status %d is not documented", method, path, status)}
	}
	if len(resp.Content) == 0 {
		if len(bytes.TrimSpace(body)) > 0 && status != http.StatusNotModified {
			return []string{fmt.Sprintf("%s %s %d: documented without a body, got %d bytes", method, path, status, len(body))}
		}
		return nil
	}
	mediaType, _, _ := strings.Cut(contentType, ";")
	if _, ok := resp.Content[mediaType]; !ok {
		return []string{fmt.Sprintf("%s %s %d: content type %q is not documented", method, path, status, contentType)}
	}
	if mediaType != "application/json" && mediaType != "application/problem+json" || method == http.MethodHead {
		return nil // pages: documented media type, no JSON schema; HEAD: GET's headers without the body
	}
	s, err := c.schema(path, strings.ToLower(m), st, mediaType)
	if err != nil {
		return []string{fmt.Sprintf("%s %s %d: compile schema: %v", method, path, status, err)}
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return []string{fmt.Sprintf("%s %s %d: body is not JSON: %v", method, path, status, err)}
	}
	if err := s.Validate(v); err != nil {
		return []string{fmt.Sprintf("%s %s %d: body does not match the documented schema: %v", method, path, status, err)}
	}
	if mediaType == "application/problem+json" {
		var p struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(body, &p)
		if !slices.Contains(resp.Codes, p.Code) {
			return []string{fmt.Sprintf("%s %s %d: problem code %q is not in x-codes %v", method, path, status, p.Code, resp.Codes)}
		}
	}
	return nil
}

// checkContract is called for every answer the harness receives.
func checkContract(t testing.TB, method, path string, resp *http.Response, body []byte) {
	t.Helper()
	if !strings.HasPrefix(path, "/api/") {
		return
	}
	for _, e := range mustContract(t).check(method, path, resp.StatusCode, resp.Header.Get("Content-Type"), body) {
		t.Errorf("contract: %s", e)
	}
}

// Every HTTP function's routes and methods are operations of the document,
// named after the function, and every operation is a function's.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	c := mustContract(t)
	if c.doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", c.doc.OpenAPI)
	}
	fns, err := functions.Definitions()
	if err != nil {
		t.Fatal(err)
	}
	fromFunctions := map[string]string{}
	for _, f := range fns {
		for p := range f.ServedPatterns(functions.Serves[f.Name]) {
			fromFunctions[strings.Replace(p, "...}", "}", 1)] = f.Name
		}
	}
	fromDoc := map[string]string{}
	ids := map[string]bool{}
	for path, ops := range c.doc.Paths {
		for method, op := range ops {
			fromDoc[strings.ToUpper(method)+" "+path] = op.Function
			if op.OperationID == "" || ids[op.OperationID] {
				t.Errorf("%s %s: operationId %q missing or repeated", method, path, op.OperationID)
			}
			ids[op.OperationID] = true
		}
	}
	for p, name := range fromFunctions {
		if got, ok := fromDoc[p]; !ok {
			t.Errorf("%s (function %s) is not in openapi.json", p, name)
		} else if got != name {
			t.Errorf("%s: x-function %q, want %q", p, got, name)
		}
	}
	for p := range fromDoc {
		if _, ok := fromFunctions[p]; !ok {
			t.Errorf("openapi.json documents %s, which no function.json serves", p)
		}
	}
	if len(fromFunctions) < 14 {
		t.Errorf("only %d HTTP routes found", len(fromFunctions))
	}
}

// The roles each operation documents are the app's access policies, and
// every guarded operation documents the guard's answers.
func TestOpenAPIRolesArePolicies(t *testing.T) {
	c := mustContract(t)
	for path, ops := range c.doc.Paths {
		for method, op := range ops {
			p, ok := functions.Policies[op.Function]
			if !ok {
				t.Errorf("%s %s: no policy for %s", method, path, op.Function)
				continue
			}
			var any []string
			for _, r := range p.Any {
				any = append(any, string(r))
			}
			sort.Strings(any)
			roles := slices.Sorted(slices.Values(op.Roles))
			if !slices.Equal(roles, any) || op.OwnRole != string(p.Own) {
				t.Errorf("%s %s: x-roles %v x-own-role %q; policy %v own %q", method, path, op.Roles, op.OwnRole, any, p.Own)
			}
			anonymous := len(op.Security) == 1 && len(op.Security[0]) == 0
			if anonymous != p.Anonymous || op.Browser != p.Browser {
				t.Errorf("%s %s: security %v x-browser %v, policy %+v", method, path, op.Security, op.Browser, p)
			}
			if !p.Anonymous && !p.Browser {
				for _, st := range []string{"401", "403"} {
					if _, ok := op.Responses[st]; !ok {
						t.Errorf("%s %s: guarded, but %s is not documented", method, path, st)
					}
				}
			}
			for st, r := range op.Responses {
				if _, isProblem := r.Content["application/problem+json"]; isProblem && len(r.Codes) == 0 {
					t.Errorf("%s %s %s: a problem response without x-codes", method, path, st)
				}
			}
		}
	}
	for _, r := range auth.AllRoles {
		found := false
		for _, ops := range c.doc.Paths {
			for _, op := range ops {
				found = found || slices.Contains(op.Roles, string(r)) || op.OwnRole == string(r)
			}
		}
		if !found {
			t.Errorf("role %s appears in no operation", r)
		}
	}
}

// Every schema in the document compiles (JSON Schema 2020-12, as OpenAPI
// 3.1 uses it), with every $ref resolved, and the checker itself notices a
// body that breaks the contract.
func TestOpenAPISchemasCompile(t *testing.T) {
	c := mustContract(t)
	for name := range c.doc.Components.Schemas {
		if _, err := c.schemas.Compile(contractURL + "#/components/schemas/" + pointer(name)); err != nil {
			t.Errorf("schema %s: %v", name, err)
		}
	}
	for path, ops := range c.doc.Paths {
		for method, op := range ops {
			for st, r := range op.Responses {
				for mt := range r.Content {
					if _, err := c.schema(path, method, st, mt); err != nil {
						t.Errorf("%s %s %s %s: %v", method, path, st, mt, err)
					}
				}
			}
		}
	}
	bad := map[string][]byte{
		"undocumented field": []byte(`{"status":"ok","storage":"ok","secret":"x"}`),
		"missing field":      []byte(`{"status":"ok"}`),
		"wrong enum":         []byte(`{"status":"fine","storage":"ok"}`),
	}
	for name, body := range bad {
		if errs := c.check("GET", "/api/health", 200, "application/json", body); len(errs) == 0 {
			t.Errorf("%s: the contract check accepted %s", name, body)
		}
	}
	if errs := c.check("GET", "/api/health", 200, "application/json", []byte(`{"status":"ok","storage":"ok"}`)); len(errs) > 0 {
		t.Errorf("a valid answer was refused: %v", errs)
	}
	if errs := c.check("GET", "/api/requests/r0000000000000000000000000000", 404, "application/problem+json",
		[]byte(`{"type":"urn:dsr-functions:problem:gone","title":"Not Found","status":404,"code":"gone"}`)); len(errs) == 0 {
		t.Error("an undocumented problem code was accepted")
	}
	if errs := c.check("DELETE", "/api/requests/r0000000000000000000000000000", 200, "application/json", []byte(`{}`)); len(errs) == 0 {
		t.Error("an undocumented operation was accepted")
	}
}

// The anonymous functions are exactly the paths App Service Authentication
// lets through without a token (infra), so the platform neither blocks the
// contract and health nor lets a guarded route through.
func TestAnonymousRoutesExcludedFromPlatformAuth(t *testing.T) {
	bicep, err := os.ReadFile("../infra/modules/functionapp.bicep")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)excludedPaths: \[(.*?)\]`).FindSubmatch(bicep)
	if m == nil {
		t.Fatal("excludedPaths not found in functionapp.bicep")
	}
	var excluded []string
	for _, q := range regexp.MustCompile(`'([^']+)'`).FindAllSubmatch(m[1], -1) {
		excluded = append(excluded, string(q[1]))
	}
	fns, err := functions.Definitions()
	if err != nil {
		t.Fatal(err)
	}
	var anonymous []string
	for _, f := range fns {
		if f.Trigger().Type != funchost.HTTPTrigger || !functions.Policies[f.Name].Anonymous {
			continue
		}
		route := "/api/" + f.Trigger().Route
		if i := strings.Index(route, "{"); i >= 0 {
			route = route[:i] + "*"
		}
		anonymous = append(anonymous, route)
	}
	slices.Sort(excluded)
	slices.Sort(anonymous)
	if !slices.Equal(excluded, anonymous) {
		t.Errorf("excludedPaths %v, anonymous functions %v", excluded, anonymous)
	}
}

// The document is served to anyone, with a validator for caches.
func TestOpenAPIServed(t *testing.T) {
	h := newHarness(t, harnessOptions{manual: true})
	resp, b := h.do("GET", "/api/openapi.json", "", "x-functions-key", "")
	if resp.StatusCode != 200 || !bytes.Equal(b, openapi.Document) {
		t.Fatalf("GET /api/openapi.json without a key: %d, %d bytes", resp.StatusCode, len(b))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	etag := resp.Header.Get("ETag")
	resp, b = h.do("GET", "/api/openapi.json", "", "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified || len(b) != 0 {
		t.Errorf("If-None-Match %s: %d, %d bytes", etag, resp.StatusCode, len(b))
	}
}
