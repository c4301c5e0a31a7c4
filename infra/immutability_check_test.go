package infra_test

import (
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/infra"
)

func TestAuditTrailWriteOnce(t *testing.T) {
	if p := infra.CheckAuditImmutability(read(t, "infra/main.bicep"), read(t, "infra/modules/storage.bicep")); len(p) > 0 {
		t.Fatalf("the audit trail is not write-once as deployed:\n%s", strings.Join(p, "\n"))
	}
}

// The policy's defaults as deployed, read back through the parser the check
// uses, so a test fails if the parser stops seeing them.
func TestAuditRetentionDefaults(t *testing.T) {
	main := read(t, "infra/main.bicep")
	params, err := infra.ModuleParams(main, "modules/storage.bicep")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"auditContainer", "auditRetentionDays", "auditImmutability"} {
		if params[p] == "" {
			t.Errorf("main.bicep does not pass %s to the storage module: %v", p, params)
		}
	}
	for _, want := range []string{"param auditRetentionDays int = 2190\n", "param auditImmutability string = 'unlocked'\n"} {
		if !strings.Contains(main, want) {
			t.Errorf("main.bicep: want %q", want)
		}
	}
	// azd passes the lock state from the environment, unlocked unless set.
	if !strings.Contains(read(t, "infra/main.parameters.json"), `"${DSR_AUDIT_IMMUTABILITY=unlocked}"`) {
		t.Error("main.parameters.json: auditImmutability must default to unlocked")
	}
}

func TestAuditImmutabilityMutationsCaught(t *testing.T) {
	main := read(t, "infra/main.bicep")
	storage := read(t, "infra/modules/storage.bicep")
	policyStart := strings.Index(storage, "resource auditRetention ")
	policyEnd := strings.Index(storage[policyStart:], "\n}\n") + policyStart + 3
	if policyStart < 0 || policyEnd < policyStart+3 {
		t.Fatal("policy resource not found in storage.bicep")
	}
	commented := storage[:policyStart] + "// " + strings.ReplaceAll(storage[policyStart:policyEnd-1], "\n", "\n// ") + "\n" + storage[policyEnd:]
	cases := []struct {
		name          string
		main, storage string
		want          string
	}{
		{"policy removed", main, storage[:policyStart] + storage[policyEnd:], "no Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies resource"},
		{"policy commented out", main, commented, "no Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies resource"},
		{"appends refused", main, strings.Replace(storage, "allowProtectedAppendWrites: true", "allowProtectedAppendWrites: false", 1), "allowProtectedAppendWrites is not true"},
		{"appends not set", main, strings.Replace(storage, "    allowProtectedAppendWrites: true\n", "", 1), "allowProtectedAppendWrites is not true"},
		{"appends all", main, strings.Replace(storage, "    allowProtectedAppendWrites: true\n", "    allowProtectedAppendWrites: true\n    allowProtectedAppendWritesAll: true\n", 1), "allowProtectedAppendWritesAll is true"},
		{"policy on another container", main, strings.Replace(storage, "  parent: auditContainerResource\n  name: 'default'", "  parent: containers[0]\n  name: 'default'", 1), "no Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies resource"},
		{"audit container in the loop", main, strings.Replace(storage, "  name: auditContainer\n", "  name: stateContainer\n", 1), "no unconditional container resource named auditContainer"},
		{"policy misnamed", main, strings.Replace(storage, "  parent: auditContainerResource\n  name: 'default'", "  parent: auditContainerResource\n  name: 'audit'", 1), "must be 'default'"},
		{"versioning off", main, strings.Replace(storage, "isVersioningEnabled: true", "isVersioningEnabled: false", 1), "blob versioning is not on"},
		{"no period", main, strings.Replace(storage, "    immutabilityPeriodSinceCreationInDays: auditRetentionDays\n", "", 1), "no immutabilityPeriodSinceCreationInDays"},
		{"period unbounded", main, strings.Replace(storage, "@maxValue(146000)\nparam auditRetentionDays int", "param auditRetentionDays int", 1), "needs @maxValue(146000)"},
		{"period literal too long", main, strings.Replace(storage, "immutabilityPeriodSinceCreationInDays: auditRetentionDays", "immutabilityPeriodSinceCreationInDays: 200000", 1), "is not 1 to 146000"},
		{"default period zero", strings.Replace(main, "param auditRetentionDays int = 2190", "param auditRetentionDays int = 0", 1), storage, "no default retention"},
		{"locked by default", strings.Replace(main, "param auditImmutability string = 'unlocked'", "param auditImmutability string = 'locked'", 1), storage, "not deployed by default"},
		{"condition unknown", main, strings.Replace(storage, "= if (auditImmutability != 'locked') {", "= if (false) {", 1), "not understood"},
		{"app writes elsewhere", strings.Replace(main, "    auditContainer: containers.audit\n    exportLinkTtlHours", "    auditContainer: containers.state\n    exportLinkTtlHours", 1), storage, "the app writes the audit trail to \"containers.state\""},
	}
	for _, c := range cases {
		if c.main == main && c.storage == storage {
			t.Fatalf("%s: mutation did not apply", c.name)
		}
		p := infra.CheckAuditImmutability(c.main, c.storage)
		if !strings.Contains(strings.Join(p, "\n"), c.want) {
			t.Errorf("%s: want a problem containing %q, got %q", c.name, c.want, p)
		}
	}
}

func TestBicepParamsAndResources(t *testing.T) {
	src := `@description('a (b) c')
@minValue(1)
@maxValue(10)
param days int = 5

@allowed([
  'x'
  'y'
])
param mode string = 'x'

var c = 'audit'
// resource ghost 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = {
resource svc 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  name: 'default'
  properties: {
    isVersioningEnabled: true
  }
}
resource box 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: svc
  name: auditContainer
}
resource pol 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = if (mode != 'y') {
  parent: box
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: days
    allowProtectedAppendWrites: true
  }
}
`
	main := "module storage 'modules/storage.bicep' = {\n  params: {\n    auditContainer: 'audit'\n  }\n}\nmodule functionApp 'modules/functionapp.bicep' = {\n  params: {\n    auditContainer: 'audit'\n  }\n}\n"
	if p := infra.CheckAuditImmutability(main, src); len(p) > 0 {
		t.Fatalf("minimal protected storage module reported: %q", p)
	}
	if p := infra.CheckAuditImmutability(main, strings.Replace(src, "param mode string = 'x'", "param mode string = 'y'", 1)); len(p) != 1 || !strings.Contains(p[0], "not deployed by default") {
		t.Fatalf("default that skips the policy not caught: %q", p)
	}
	if p := infra.CheckAuditImmutability(main, strings.Replace(src, "@minValue(1)\n", "", 1)); len(p) != 1 || !strings.Contains(p[0], "@minValue(1)") {
		t.Fatalf("unbounded minimum not caught: %q", p)
	}
	if _, err := infra.ModuleParams(main, "modules/missing.bicep"); err == nil {
		t.Fatal("missing module not reported")
	}
}
