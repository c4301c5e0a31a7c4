package infra

// Deployment checks (issue "the deployment as Microsoft's own tools see
// it"): what would stop the first `azd up` or break the app on its first
// day, read off the templates and docs, so that none of it can come back.
// Each is a pure function over file contents; its test feeds it a mutated
// copy and shows it fails.

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// FlexUnsupportedSiteProperties are site properties Flex Consumption does
// not support; setting one fails the deployment on newer regional stamps
// (ARM error 51021 for ftpsState) or is ignored. Source: Azure Functions
// docs, "Flex Consumption plan deprecations" (functions-app-settings) and
// "Flex Consumption considerations" (flex-consumption-plan).
var FlexUnsupportedSiteProperties = []string{
	"ftpsState", "alwaysOn", "use32BitWorkerProcess", "linuxFxVersion", "windowsFxVersion",
	"netFrameworkVersion", "javaVersion", "powerShellVersion", "functionAppScaleLimit", "minimumElasticInstanceCount",
}

// FlexUnsupportedAppSettings are app settings Flex Consumption refuses or
// replaces with functionAppConfig (same sources).
var FlexUnsupportedAppSettings = []string{
	"FUNCTIONS_EXTENSION_VERSION", "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_WORKER_RUNTIME_VERSION",
	"FUNCTIONS_MAX_HTTP_CONCURRENCY", "FUNCTIONS_WORKER_PROCESS_COUNT", "WEBSITE_RUN_FROM_PACKAGE",
	"WEBSITE_CONTENTSHARE", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTOVERVNET",
	"WEBSITE_NODE_DEFAULT_VERSION", "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT", "SCM_DO_BUILD_DURING_DEPLOYMENT",
	"ENABLE_ORYX_BUILD", "WEBSITE_SKIP_CONTENTSHARE_VALIDATION", "WEBSITE_VNET_ROUTE_ALL", "WEBSITE_DNS_SERVER",
}

// CheckFlexProperties reports every Flex-unsupported site property or app
// setting a Bicep source sets (comments ignored).
func CheckFlexProperties(bicep string) []string {
	src := stripComments(bicep)
	var out []string
	for _, p := range FlexUnsupportedSiteProperties {
		if regexp.MustCompile(`(?m)^\s*` + p + `\s*:`).MatchString(src) {
			out = append(out, fmt.Sprintf("site property %s is not supported on Flex Consumption", p))
		}
	}
	for _, s := range FlexUnsupportedAppSettings {
		if regexp.MustCompile(`(?m)^\s*'?` + s + `'?\s*:`).MatchString(src) {
			out = append(out, fmt.Sprintf("app setting %s is not supported on Flex Consumption (functionAppConfig replaces it)", s))
		}
	}
	return out
}

// CheckAzdAlphaFeatures reports azd alpha features azure.yaml relies on
// that the deployment docs do not tell the operator to enable: azd refuses
// `language: custom` unless alpha.language.custom is on (azd
// resources/alpha_features.yaml, id language.custom).
func CheckAzdAlphaFeatures(azureYAML, docs string) []string {
	var out []string
	if regexp.MustCompile(`(?m)^\s*language:\s*custom\s*$`).MatchString(azureYAML) &&
		!strings.Contains(docs, "azd config set alpha.language.custom on") {
		out = append(out, "azure.yaml uses language: custom, an azd alpha feature: the docs must say `azd config set alpha.language.custom on`")
	}
	return out
}

// siteConfigWrites finds the Microsoft.Web/sites/config resources of a
// Bicep source: symbolic name → the names it depends on.
func siteConfigWrites(src string) map[string][]string {
	out := map[string][]string{}
	for _, r := range bicepResources(src) {
		if r.Type != "Microsoft.Web/sites/config" {
			continue
		}
		var deps []string
		if d := regexp.MustCompile(`(?s)dependsOn:\s*\[(.*?)\]`).FindStringSubmatch(r.Body); d != nil {
			deps = strings.Fields(d[1])
		}
		out[r.Sym] = deps
	}
	return out
}

// CheckSiteConfigWritesSerialised reports site config writes (app
// settings, auth settings, ...) that may run in parallel: ARM writes
// resources without a dependency at the same time, and two writes to one
// site's configuration fail with "another operation is in progress". Every
// write but the first must depend on another one.
func CheckSiteConfigWritesSerialised(bicep string) []string {
	writes := siteConfigWrites(stripComments(bicep))
	var names []string
	for n := range writes {
		names = append(names, n)
	}
	sort.Strings(names)
	free := 0
	for _, n := range names {
		ordered := false
		for _, d := range writes[n] {
			if _, ok := writes[d]; ok {
				ordered = true
			}
		}
		if !ordered {
			free++
		}
	}
	if free > 1 {
		return []string{fmt.Sprintf("%d site config writes (%s) do not depend on each other: ARM runs them in parallel and one fails", free, strings.Join(names, ", "))}
	}
	return nil
}

// CheckDeployerPrincipalType reports a deployer role assignment whose
// principalType is fixed: azd deploys as a user on a laptop and as a
// service principal in CI (it passes AZURE_PRINCIPAL_TYPE), and a fixed
// 'User' fails with UnmatchedPrincipalType there.
func CheckDeployerPrincipalType(rolesBicep, mainBicep, parametersJSON string) []string {
	var out []string
	if regexp.MustCompile(`principalId:\s*deployerPrincipalId[^}]*principalType:\s*'`).MatchString(stripComments(rolesBicep)) {
		out = append(out, "the deployer's role assignment fixes principalType: pass it as a parameter")
	}
	if !strings.Contains(stripComments(mainBicep), "deployerPrincipalType: principalType") {
		out = append(out, "main.bicep does not pass principalType to the roles module")
	}
	if !strings.Contains(parametersJSON, "${AZURE_PRINCIPAL_TYPE") {
		out = append(out, "main.parameters.json does not take principalType from AZURE_PRINCIPAL_TYPE")
	}
	return out
}

// CheckKeyRolesReachTheApp reports an App Service Authentication setup that
// turns away every call without a token although DSR_KEY_ROLES gives roles
// to callers holding only a function key: with keyRoles set, the platform
// must let unauthenticated calls through to the app.
func CheckKeyRolesReachTheApp(functionAppBicep string) []string {
	src := stripComments(functionAppBicep)
	if !strings.Contains(src, "DSR_KEY_ROLES: keyRoles") {
		return nil
	}
	var out []string
	if regexp.MustCompile(`requireAuthentication:\s*true\b`).MatchString(src) {
		out = append(out, "requireAuthentication is always true: key-only callers (DSR_KEY_ROLES) never reach the app")
	}
	if regexp.MustCompile(`unauthenticatedClientAction:\s*'Return401'`).MatchString(src) {
		out = append(out, "unauthenticatedClientAction is always Return401: key-only callers (DSR_KEY_ROLES) never reach the app")
	}
	return out
}

// CheckHostRoles reports the roles Microsoft's Flex Consumption docs and
// samples require of the host's identity that the template does not
// grant: Storage Blob Data Owner on the host storage (AzureWebJobsStorage)
// and Azure Service Bus Data Owner on the namespace the triggers scale on.
func CheckHostRoles(bicep string) []string {
	assigned := map[string]bool{}
	as, _ := AppRoleAssignments(bicep)
	for _, a := range as {
		assigned[a.ScopeType+"/"+a.RoleID] = true
	}
	var out []string
	for _, want := range []struct{ scope, role, why string }{
		{"Microsoft.Storage/storageAccounts", "b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "Storage Blob Data Owner on the host storage"},
		{"Microsoft.ServiceBus/namespaces", "090c5cfd-751d-490a-894a-3ce6f1109419", "Azure Service Bus Data Owner on the namespace (target-based scaling reads queue lengths)"},
	} {
		if !assigned[want.scope+"/"+want.role] {
			out = append(out, "the app's identity lacks "+want.why)
		}
	}
	return out
}

// CheckRoleNames reports role definition ids whose variable name does not
// say the role they are (a renamed variable holding another role's id).
func CheckRoleNames(rolesBicep string) []string {
	var out []string
	re := regexp.MustCompile(`(?m)^\s*(\w+):\s*'([0-9a-f-]{36})'`)
	body, err := bicepBlock(rolesBicep, "roles", '{', '}')
	if err != nil {
		return []string{"roles.bicep has no var roles"}
	}
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		role, ok := RoleGrants[m[2]]
		if !ok {
			continue
		}
		want := camel(role.Name)
		if !strings.EqualFold(m[1], want) {
			out = append(out, fmt.Sprintf("roles.%s holds the id of %s (name it %s)", m[1], role.Name, want))
		}
	}
	return out
}

// camel turns "Azure Service Bus Data Owner" into "serviceBusDataOwner"
// (a leading "Azure" dropped, as the variables name them).
func camel(name string) string {
	words := strings.Fields(strings.TrimPrefix(name, "Azure "))
	for i, w := range words {
		if i == 0 {
			words[i] = strings.ToLower(w[:1]) + w[1:]
		} else {
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		}
	}
	return strings.Join(words, "")
}

// CheckDocsMention reports facts the deployment docs must state, by the
// phrase that states them.
func CheckDocsMention(docs string, phrases map[string]string) []string {
	var out []string
	for why, phrase := range phrases {
		if !strings.Contains(docs, phrase) {
			out = append(out, fmt.Sprintf("docs/deploy.md does not say %s (%q)", why, phrase))
		}
	}
	sort.Strings(out)
	return out
}
