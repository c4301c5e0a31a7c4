package infra_test

import (
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/infra"
)

// Each deployment finding has a check that passes on the templates and
// fails on the template as it was before the fix.

func TestNoFlexUnsupportedProperties(t *testing.T) {
	fa := read(t, "infra/modules/functionapp.bicep")
	if m := infra.CheckFlexProperties(fa); len(m) != 0 {
		t.Fatalf("functionapp.bicep: %v", m)
	}
	old := mustMutate(t, fa, "      minTlsVersion: '1.2'", "      minTlsVersion: '1.2'\n      ftpsState: 'Disabled'")
	if m := infra.CheckFlexProperties(old); len(m) != 1 || !strings.Contains(m[0], "ftpsState") {
		t.Errorf("ftpsState not caught: %v", m)
	}
	withSetting := mustMutate(t, fa, "  DSR_STATE_CONTAINER: stateContainer", "  FUNCTIONS_WORKER_RUNTIME: 'custom'\n  DSR_STATE_CONTAINER: stateContainer")
	if m := infra.CheckFlexProperties(withSetting); len(m) != 1 || !strings.Contains(m[0], "FUNCTIONS_WORKER_RUNTIME") {
		t.Errorf("FUNCTIONS_WORKER_RUNTIME not caught: %v", m)
	}
}

func TestAzdAlphaFeatureDocumented(t *testing.T) {
	yaml, docs := read(t, "azure.yaml"), read(t, "docs/deploy.md")
	if m := infra.CheckAzdAlphaFeatures(yaml, docs); len(m) != 0 {
		t.Fatal(m)
	}
	if m := infra.CheckAzdAlphaFeatures(yaml, strings.ReplaceAll(docs, "alpha.language.custom", "x")); len(m) != 1 {
		t.Errorf("undocumented alpha feature not caught: %v", m)
	}
}

func TestSiteConfigWritesSerialised(t *testing.T) {
	fa := read(t, "infra/modules/functionapp.bicep")
	if m := infra.CheckSiteConfigWritesSerialised(fa); len(m) != 0 {
		t.Fatal(m)
	}
	parallel := mustMutate(t, fa, "  dependsOn: [\n    settings\n  ]\n", "")
	if m := infra.CheckSiteConfigWritesSerialised(parallel); len(m) != 1 {
		t.Errorf("parallel writes to the site not caught: %v", m)
	}
}

func TestDeployerPrincipalTypeFromAzd(t *testing.T) {
	roles, main, params := read(t, "infra/modules/roles.bicep"), read(t, "infra/main.bicep"), read(t, "infra/main.parameters.json")
	if m := infra.CheckDeployerPrincipalType(roles, main, params); len(m) != 0 {
		t.Fatal(m)
	}
	fixed := mustMutate(t, roles, "principalType: deployerPrincipalType", "principalType: 'User'")
	if m := infra.CheckDeployerPrincipalType(fixed, main, params); len(m) != 1 {
		t.Errorf("fixed principalType not caught: %v", m)
	}
	if m := infra.CheckDeployerPrincipalType(roles, main, strings.ReplaceAll(params, "AZURE_PRINCIPAL_TYPE", "X")); len(m) != 1 {
		t.Errorf("principalType not from azd not caught: %v", m)
	}
}

func TestKeyRolesReachTheApp(t *testing.T) {
	fa := read(t, "infra/modules/functionapp.bicep")
	if m := infra.CheckKeyRolesReachTheApp(fa); len(m) != 0 {
		t.Fatal(m)
	}
	old := mustMutate(t, fa, "requireAuthentication: empty(keyRoles)", "requireAuthentication: true")
	old = mustMutate(t, old, "unauthenticatedClientAction: empty(keyRoles) ? 'Return401' : 'AllowAnonymous'", "unauthenticatedClientAction: 'Return401'")
	if m := infra.CheckKeyRolesReachTheApp(old); len(m) != 2 {
		t.Errorf("key-only callers turned away not caught: %v", m)
	}
}

func TestHostRolesAsMicrosoftRequires(t *testing.T) {
	b := rolesBicep(t)
	if m := infra.CheckHostRoles(b); len(m) != 0 {
		t.Fatal(m)
	}
	contributor := mustMutate(t, b, "roles.storageBlobDataOwner", "roles.storageBlobDataContributor")
	if m := infra.CheckHostRoles(contributor); len(m) != 1 || !strings.Contains(m[0], "Storage Blob Data Owner") {
		t.Errorf("Contributor on host storage not caught: %v", m)
	}
	sendReceive := mustMutate(t, b, "090c5cfd-751d-490a-894a-3ce6f1109419", "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39")
	if m := infra.CheckHostRoles(sendReceive); len(m) != 1 || !strings.Contains(m[0], "Service Bus Data Owner") {
		t.Errorf("Sender instead of Owner on the namespace not caught: %v", m)
	}
}

func TestRoleVariablesNameTheirRoles(t *testing.T) {
	roles := read(t, "infra/modules/roles.bicep")
	if m := infra.CheckRoleNames(roles); len(m) != 0 {
		t.Fatal(m)
	}
	swapped := mustMutate(t, roles, "storageBlobDataOwner: 'b7e6dc6d", "storageBlobDataOwner: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe', x: 'b7e6dc6d")
	if m := infra.CheckRoleNames(swapped); len(m) == 0 {
		t.Errorf("a role variable holding another role's id not caught")
	}
}

// The deployment docs say what no template can fix.
var deployDocFacts = map[string]string{
	"how to enable the azd alpha feature for the custom language": "azd config set alpha.language.custom on",
	"how to recover a purge-protected vault after azd down":       "az keyvault recover",
	"how to check the region offers the custom runtime":           "az functionapp list-flexconsumption-runtimes",
	"that an unresolved Key Vault reference stops the app":        "unresolved Key Vault reference",
}

func TestDeployDocsStateTheFacts(t *testing.T) {
	docs := read(t, "docs/deploy.md")
	if m := infra.CheckDocsMention(docs, deployDocFacts); len(m) != 0 {
		t.Fatal(m)
	}
	if m := infra.CheckDocsMention(strings.ReplaceAll(docs, "az keyvault recover", "x"), deployDocFacts); len(m) != 1 {
		t.Errorf("a missing fact not caught: %v", m)
	}
}
