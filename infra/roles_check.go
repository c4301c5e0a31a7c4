package infra

// Role coverage (issue 5): every Azure operation the code performs is allowed
// by a role the Bicep assigns to the app's managed identity. The Go sources
// are scanned for Azure SDK calls by method name (go/parser, so comments and
// strings do not count), each call is mapped to the RBAC actions it needs, and
// those are matched against a static table of what each assigned role grants.

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// RBAC actions (control-plane Actions and DataActions alike) the code needs.
const (
	ActBlobRead        = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
	ActBlobWrite       = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"
	ActBlobDelete      = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete"
	ActBlobAdd         = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action"
	ActBlobTagsWrite   = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/write"
	ActContainerWrite  = "Microsoft.Storage/storageAccounts/blobServices/containers/write"
	ActContainerDelete = "Microsoft.Storage/storageAccounts/blobServices/containers/delete"
	ActUserDelegation  = "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action"
	ActServiceBusSend  = "Microsoft.ServiceBus/namespaces/queues/send/action"
	ActServiceBusRecv  = "Microsoft.ServiceBus/namespaces/queues/receive/action"
)

// OperationActions maps an Azure SDK method name to the actions it needs.
// Create and Delete are ambiguous names; see sdkCalls for when they count and
// containerOperationActions for their container-client meaning.
var OperationActions = map[string][]string{
	// blob reads
	"DownloadStream":             {ActBlobRead},
	"DownloadBuffer":             {ActBlobRead},
	"DownloadFile":               {ActBlobRead},
	"GetProperties":              {ActBlobRead},
	"NewListBlobsFlatPager":      {ActBlobRead},
	"NewListBlobsHierarchyPager": {ActBlobRead},
	// blob writes
	"Upload":          {ActBlobWrite},
	"UploadBuffer":    {ActBlobWrite},
	"UploadFile":      {ActBlobWrite},
	"UploadStream":    {ActBlobWrite},
	"StageBlock":      {ActBlobWrite},
	"CommitBlockList": {ActBlobWrite},
	"AppendBlock":     {ActBlobAdd},
	"Create":          {ActBlobWrite}, // append (or page) blob Create = Put Blob
	"SetMetadata":     {ActBlobWrite},
	"SetHTTPHeaders":  {ActBlobWrite},
	"CreateContainer": {ActContainerWrite},
	// blob index tags: only Storage Blob Data Owner grants these
	"SetTags": {ActBlobTagsWrite},
	// deletes
	"Delete":          {ActBlobDelete},
	"DeleteBlob":      {ActBlobDelete},
	"DeleteContainer": {ActContainerDelete},
	// user-delegation SAS
	"GetUserDelegationCredential": {ActUserDelegation},
	// Service Bus
	"SendMessage":      {ActServiceBusSend},
	"SendMessageBatch": {ActServiceBusSend},
	"NewSender":        {ActServiceBusSend},
}

// containerOperationActions overrides OperationActions for the ambiguous
// names when they are called on a container client.
var containerOperationActions = map[string][]string{
	"Create": {ActContainerWrite},
	"Delete": {ActContainerDelete},
}

// ambiguousOperations are method names common outside the SDK (os.Create,
// Store.Create): they count only on a visible blob/container client.
var ambiguousOperations = map[string]bool{"Create": true, "Delete": true}

// Role is a built-in role and the actions (wildcards allowed) it grants.
type Role struct {
	Name   string
	Grants []string
}

// RoleGrants are the built-in roles this check knows, by role definition id
// (Actions and DataActions of each built-in definition, merged). A role id
// not listed here grants nothing as far as the check is concerned.
var RoleGrants = map[string]Role{
	"b7e6dc6d-f1e8-4753-8033-0f276bb0955b": {"Storage Blob Data Owner", []string{
		"Microsoft.Storage/storageAccounts/blobServices/containers/*",
		ActUserDelegation,
		"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*",
	}},
	"ba92f5b4-2d11-453d-a403-e96b0029c9fe": {"Storage Blob Data Contributor", []string{
		ActContainerDelete,
		"Microsoft.Storage/storageAccounts/blobServices/containers/read",
		ActContainerWrite,
		ActUserDelegation,
		ActBlobDelete,
		ActBlobRead,
		ActBlobWrite,
		"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action",
		ActBlobAdd,
	}},
	"db58b8e5-c6ad-4a2a-8342-4190687cbf4a": {"Storage Blob Delegator", []string{ActUserDelegation}},
	"69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": {"Azure Service Bus Data Sender", []string{"Microsoft.ServiceBus/*/send/action", "Microsoft.ServiceBus/*/queues/read", "Microsoft.ServiceBus/*/topics/read"}},
	"4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0": {"Azure Service Bus Data Receiver", []string{"Microsoft.ServiceBus/*/receive/action", "Microsoft.ServiceBus/*/queues/read", "Microsoft.ServiceBus/*/topics/read"}},
	"090c5cfd-751d-490a-894a-3ce6f1109419": {"Azure Service Bus Data Owner", []string{"Microsoft.ServiceBus/*"}},
	// Sending email with an Entra token (shared/notify/acs); Microsoft lists
	// no narrower built-in role (../shared/reference/acs-email.md).
	"09976791-48a7-449e-bb21-39d1a415f350": {"Communication and Email Service Owner", []string{"Microsoft.Communication/*"}},
}

// AppPrincipalExprs are the principalId expressions that denote the app's
// managed identity: the roles module's principalId parameter (main.bicep
// passes identity.outputs.principalId to it), or the identity module output
// directly. The deployer's deployerPrincipalId does not count.
var AppPrincipalExprs = []string{"principalId", "identity.outputs.principalId"}

// SDKCall is one Azure SDK call found in a Go source.
type SDKCall struct {
	Path    string
	Line    int
	Name    string
	Actions []string
}

// RoleAssignment is one role assignment to the app identity in the Bicep.
type RoleAssignment struct {
	Resource  string // Bicep symbolic name
	RoleID    string
	ScopeType string // resource type of the scope, "" when unscoped or unknown
}

// SDKCalls returns the Azure SDK operations a Go source performs.
func SDKCalls(path, src string) ([]SDKCall, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	pkgs := map[string]bool{}
	importsBlobClients := false
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		name := p[strings.LastIndex(p, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		pkgs[name] = true
		if strings.Contains(p, "/storage/azblob") {
			switch p[strings.LastIndex(p, "/")+1:] {
			case "azblob", "blob", "blockblob", "appendblob", "pageblob", "container":
				importsBlobClients = true
			}
		}
	}
	var out []SDKCall
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		name := sel.Sel.Name
		actions, known := OperationActions[name]
		if !known {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && pkgs[id.Name] {
			return true // a package function (os.Create, sample.Upload), not an SDK method
		}
		kind := clientKind(sel.X)
		if ambiguousOperations[name] {
			if kind == "" && !importsBlobClients {
				return true
			}
			if kind == "container" {
				actions = containerOperationActions[name]
			}
		}
		out = append(out, SDKCall{Path: path, Line: fset.Position(call.Pos()).Line, Name: name, Actions: actions})
		return true
	})
	return out, nil
}

// clientKind is "container" or "blob" when the receiver is visibly built by
// a client constructor (x.NewContainerClient(..), x.NewBlobClient(..) ...).
func clientKind(x ast.Expr) string {
	call, ok := x.(*ast.CallExpr)
	if !ok {
		return ""
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return ""
	}
	switch sel.Sel.Name {
	case "NewContainerClient":
		return "container"
	case "NewBlobClient", "NewBlockBlobClient", "NewAppendBlobClient", "NewPageBlobClient":
		return "blob"
	}
	return ""
}

var (
	resourceRe   = regexp.MustCompile(`(?m)^\s*resource\s+([A-Za-z_]\w*)\s+'([^'@]+)@[^']*'`)
	varObjRe     = regexp.MustCompile(`(?m)^\s*var\s+([A-Za-z_]\w*)\s*=\s*\{`)
	guidEntryRe  = regexp.MustCompile(`(?m)^\s*'?([A-Za-z_]\w*)'?\s*:\s*'([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})'`)
	guidRe       = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	varRefRe     = regexp.MustCompile(`\b([A-Za-z_]\w*)\.([A-Za-z_]\w*)\b`)
	principalRe  = regexp.MustCompile(`(?m)^\s*principalId\s*:\s*(.+?)\s*$`)
	roleDefRe    = regexp.MustCompile(`(?m)^\s*roleDefinitionId\s*:\s*(.+?)\s*$`)
	scopeRe      = regexp.MustCompile(`(?m)^\s*scope\s*:\s*([A-Za-z_]\w*)\s*$`)
	roleAssignTy = "Microsoft.Authorization/roleAssignments"
)

// AppRoleAssignments returns the role assignments in a Bicep source whose
// principalId is the app identity (AppPrincipalExprs), with their role
// definition ids resolved from a literal GUID or a `var x = { key: 'guid' }`
// reference. Assignments it cannot resolve are returned as problems.
func AppRoleAssignments(bicep string) (out []RoleAssignment, problems []string) {
	src := stripComments(bicep)
	guidVars := map[string]string{} // "roles.storageBlobDataContributor" -> guid
	for _, m := range varObjRe.FindAllStringSubmatchIndex(src, -1) {
		name := src[m[2]:m[3]]
		body, ok := braceBody(src, m[1]-1)
		if !ok {
			continue
		}
		for _, e := range guidEntryRe.FindAllStringSubmatch(body, -1) {
			guidVars[name+"."+e[1]] = strings.ToLower(e[2])
		}
	}
	types := map[string]string{}
	for _, m := range resourceRe.FindAllStringSubmatch(src, -1) {
		types[m[1]] = m[2]
	}
	for _, m := range resourceRe.FindAllStringSubmatchIndex(src, -1) {
		sym, typ := src[m[2]:m[3]], src[m[4]:m[5]]
		if !strings.EqualFold(typ, roleAssignTy) {
			continue
		}
		open := strings.IndexByte(src[m[1]:], '{')
		if open < 0 {
			problems = append(problems, fmt.Sprintf("bicep: role assignment %s: no body", sym))
			continue
		}
		body, ok := braceBody(src, m[1]+open)
		if !ok {
			problems = append(problems, fmt.Sprintf("bicep: role assignment %s: unbalanced braces", sym))
			continue
		}
		p := principalRe.FindStringSubmatch(body)
		if p == nil || !slices.Contains(AppPrincipalExprs, p[1]) {
			continue
		}
		rd := roleDefRe.FindStringSubmatch(body)
		if rd == nil {
			problems = append(problems, fmt.Sprintf("bicep: role assignment %s: no roleDefinitionId", sym))
			continue
		}
		id := strings.ToLower(guidRe.FindString(rd[1]))
		if id == "" {
			for _, ref := range varRefRe.FindAllStringSubmatch(rd[1], -1) {
				if g, ok := guidVars[ref[1]+"."+ref[2]]; ok {
					id = g
					break
				}
			}
		}
		if id == "" {
			problems = append(problems, fmt.Sprintf("bicep: role assignment %s: cannot resolve role id from %s", sym, rd[1]))
			continue
		}
		ra := RoleAssignment{Resource: sym, RoleID: id}
		if s := scopeRe.FindStringSubmatch(body); s != nil {
			ra.ScopeType = types[s[1]]
		}
		out = append(out, ra)
	}
	return out, problems
}

// Grants reports whether the assignments grant action, honouring wildcards
// and each assignment's scope (a Service Bus role on the storage account
// grants no storage action).
func Grants(assignments []RoleAssignment, action string) bool {
	for _, a := range assignments {
		if a.ScopeType != "" && !strings.HasPrefix(strings.ToLower(action), strings.ToLower(a.ScopeType)+"/") {
			continue
		}
		for _, g := range RoleGrants[a.RoleID].Grants {
			if wildcardMatch(strings.ToLower(g), strings.ToLower(action)) {
				return true
			}
		}
	}
	return false
}

// TriggerReceives reports whether any function.json in functionJSONs (one or
// more concatenated documents) has a serviceBusTrigger binding: the Functions
// host then receives from Service Bus as the app identity.
func TriggerReceives(functionJSONs string) (bool, error) {
	dec := json.NewDecoder(strings.NewReader(functionJSONs))
	for dec.More() {
		var fj struct {
			Bindings []struct {
				Type string `json:"type"`
			} `json:"bindings"`
		}
		if err := dec.Decode(&fj); err != nil {
			return false, err
		}
		for _, b := range fj.Bindings {
			if strings.EqualFold(b.Type, "serviceBusTrigger") {
				return true, nil
			}
		}
	}
	return false, nil
}

// CheckRoleCoverage returns every Azure operation in goSources (path -> Go
// source) and the serviceBusTrigger bindings in functionJSONs that no role
// assigned to the app identity in bicepText allows, as "where: what", plus
// any source or Bicep it could not read. Empty means covered.
func CheckRoleCoverage(goSources map[string]string, functionJSONs, bicepText string) []string {
	assignments, out := AppRoleAssignments(bicepText)
	if len(assignments) == 0 {
		out = append(out, "bicep: no role assignment to the app identity found")
	}
	uncovered := func(where, what string, actions []string) {
		for _, a := range actions {
			if !Grants(assignments, a) {
				out = append(out, fmt.Sprintf("%s: %s needs %s, which no role assigned to the app identity grants", where, what, a))
			}
		}
	}
	paths := make([]string, 0, len(goSources))
	for p := range goSources {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		calls, err := SDKCalls(p, goSources[p])
		if err != nil {
			out = append(out, fmt.Sprintf("%s: cannot parse: %v", p, err))
			continue
		}
		for _, c := range calls {
			uncovered(fmt.Sprintf("%s:%d", c.Path, c.Line), c.Name, c.Actions)
		}
	}
	recv, err := TriggerReceives(functionJSONs)
	if err != nil {
		out = append(out, fmt.Sprintf("function.json: cannot parse: %v", err))
	}
	if recv {
		uncovered("functions/*/function.json", "serviceBusTrigger", []string{ActServiceBusRecv})
	}
	return out
}

// braceBody returns the text inside the brace at src[open].
func braceBody(src string, open int) (string, bool) {
	body, closer, ok := bracketBody(src, open)
	return body, ok && closer == '}'
}

// wildcardMatch matches s against pattern, where * matches any run of characters.
func wildcardMatch(pattern, s string) bool {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return pattern == s
	}
	if !strings.HasPrefix(s, pattern[:star]) {
		return false
	}
	rest := pattern[star+1:]
	for i := star; i <= len(s); i++ {
		if wildcardMatch(rest, s[i:]) {
			return true
		}
	}
	return false
}
