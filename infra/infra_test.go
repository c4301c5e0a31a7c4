package infra_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/infra"
)

// repo is the repository root (tests run in infra/).
const repo = ".."

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func bicepFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{"infra/*.bicep", "infra/modules/*.bicep"} {
		m, err := filepath.Glob(filepath.Join(repo, pat))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 2 {
		t.Fatalf("expected infra/main.bicep and modules, found %v", files)
	}
	return files
}

// parseBicep runs infra/parse-bicep.mjs (tree-sitter-bicep) over files.
func parseBicep(t *testing.T, files ...string) (string, error) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(repo, "node_modules", "tree-sitter-bicep")); err != nil {
		t.Fatalf("node_modules/tree-sitter-bicep missing: run npm ci (make test does): %v", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found: %v", err)
	}
	abs := make([]string, len(files))
	for i, f := range files {
		if abs[i], err = filepath.Abs(f); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(node, append([]string{"infra/parse-bicep.mjs"}, abs...)...)
	cmd.Dir = repo
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestBicepParses(t *testing.T) {
	out, err := parseBicep(t, bicepFiles(t)...)
	if err != nil {
		t.Fatalf("bicep does not parse: %v\n%s", err, out)
	}
}

func TestBicepParserReportsBrokenFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.bicep")
	bad := filepath.Join(dir, "bad.bicep")
	// A real module with one closing brace removed, and a stray token.
	src := read(t, "infra/modules/identity.bicep")
	broken := strings.Replace(src, "  tags: tags\n}", "  tags: tags\n", 1) + "\nresource = 'x'\n"
	if broken == src {
		t.Fatal("mutation did not apply")
	}
	if err := os.WriteFile(good, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := parseBicep(t, good, bad)
	if err == nil {
		t.Fatalf("broken bicep not reported:\n%s", out)
	}
	if !strings.Contains(out, "bad.bicep") || strings.Contains(out, "good.bicep:") {
		t.Fatalf("report should name bad.bicep only:\n%s", out)
	}
}

// functionQueues reads every functions/*/function.json queue name, plus the
// queues the code sends to without a trigger.
func functionQueues(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repo, "functions", "*", "function.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no function.json files: %v", err)
	}
	queues := []string{"dsr-intake-rejected"}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		qs, err := infra.QueuesFromFunctionJSON(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, q := range qs {
			if !slices.Contains(queues, q) {
				queues = append(queues, q)
			}
		}
	}
	return queues
}

func TestEveryQueueDeclared(t *testing.T) {
	want := functionQueues(t)
	if !slices.Contains(want, "dsr-discover") || slices.ContainsFunc(want, func(q string) bool { return strings.Contains(q, "$") }) {
		t.Fatalf("queue scan looks wrong: %v", want)
	}
	declared, err := infra.BicepArrayStrings(read(t, "infra/modules/servicebus.bicep"), "queueNames")
	if err != nil {
		t.Fatal(err)
	}
	if m := infra.MissingQueues(want, declared); len(m) > 0 {
		t.Fatalf("queues used by functions but not declared in infra/modules/servicebus.bicep queueNames: %v", m)
	}
}

func TestMissingQueueCaught(t *testing.T) {
	src := read(t, "infra/modules/servicebus.bicep")
	mutated := strings.Replace(src, "  'dsr-export'\n", "", 1)
	if mutated == src {
		t.Fatal("mutation did not apply")
	}
	declared, err := infra.BicepArrayStrings(mutated, "queueNames")
	if err != nil {
		t.Fatal(err)
	}
	if m := infra.MissingQueues(functionQueues(t), declared); !slices.Equal(m, []string{"dsr-export"}) {
		t.Fatalf("missing dsr-export not caught, got %v", m)
	}
	// A queue named only in a comment does not count.
	commented := strings.Replace(src, "  'dsr-export'\n", "  // 'dsr-export'\n", 1)
	declared, _ = infra.BicepArrayStrings(commented, "queueNames")
	if m := infra.MissingQueues([]string{"dsr-export"}, declared); len(m) != 1 {
		t.Fatalf("commented-out queue counted as declared: %v", declared)
	}
	if _, err := infra.BicepArrayStrings("param x string\n", "queueNames"); err == nil {
		t.Fatal("absent queueNames array not reported")
	}
}

func TestQueuesFromFunctionJSON(t *testing.T) {
	qs, err := infra.QueuesFromFunctionJSON([]byte(`{"bindings":[{"type":"serviceBusTrigger","queueName":"a/$deadletterqueue"},{"type":"http"}]}`))
	if err != nil || !slices.Equal(qs, []string{"a"}) {
		t.Fatalf("got %v, %v", qs, err)
	}
}

func bicepSettings(t *testing.T, src string) []string {
	t.Helper()
	keys, err := infra.BicepObjectKeys(src, "appSettings")
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestSettingsRead(t *testing.T) {
	plain, conns := infra.SettingsRead(read(t, "shared/config/config.go"))
	for _, want := range []string{"DSR_STATE_CONTAINER", "DSR_PSEUDONYM_SECRET", "DSR_EXPORT_LINK_TTL", "DSR_AUTH_MODE"} {
		if !slices.Contains(plain, want) {
			t.Errorf("scan of config.go missed %s: %v", want, plain)
		}
	}
	if slices.Contains(plain, "FUNCTIONS_CUSTOMHANDLER_PORT") {
		t.Error("host-provided setting not excluded")
	}
	if !slices.Equal(conns, []string{"AzureWebJobsStorage", "ServiceBusConnection"}) {
		t.Errorf("connections: %v", conns)
	}
}

func TestEverySettingSetByBicep(t *testing.T) {
	cfg := read(t, "shared/config/config.go")
	have := bicepSettings(t, read(t, "infra/modules/functionapp.bicep"))
	if m := infra.MissingSettings(cfg, have); len(m) > 0 {
		t.Fatalf("settings the code reads but infra/modules/functionapp.bicep appSettings does not set: %v", m)
	}
	for _, s := range []string{"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"} {
		if !slices.Contains(have, s) {
			t.Errorf("%s not set", s)
		}
	}
	for _, s := range []string{"DSR_LOCAL_FUNCTION_KEY", "AzureWebJobsStorage", "ServiceBusConnection", "FUNCTIONS_WORKER_RUNTIME"} {
		if slices.Contains(have, s) {
			t.Errorf("%s must not be set in Azure (local only, connection string, or not for Flex)", s)
		}
	}
}

func TestEverySettingInLocalExample(t *testing.T) {
	have, err := infra.LocalSettingsNames([]byte(read(t, "local.settings.json.example")))
	if err != nil {
		t.Fatal(err)
	}
	if m := infra.MissingSettings(read(t, "shared/config/config.go"), have); len(m) > 0 {
		t.Fatalf("settings the code reads but local.settings.json.example does not list: %v", m)
	}
}

func TestMissingSettingCaught(t *testing.T) {
	cfg := read(t, "shared/config/config.go")
	src := read(t, "infra/modules/functionapp.bicep")
	cases := map[string]struct{ from, to, want string }{
		"plain":      {"  DSR_EXPORT_LINK_TTL: '${exportLinkTtlHours}h'\n", "", "DSR_EXPORT_LINK_TTL"},
		"secret":     {"  DSR_PSEUDONYM_SECRET:", "  // DSR_PSEUDONYM_SECRET:", "DSR_PSEUDONYM_SECRET"},
		"connection": {"  ServiceBusConnection__clientId: identityClientId\n", "", "ServiceBusConnection__clientId"},
		"address":    {"  AzureWebJobsStorage__accountName: storageAccountName\n", "", "AzureWebJobsStorage__{accountName|blobServiceUri|fullyQualifiedNamespace}"},
	}
	for name, c := range cases {
		mutated := strings.Replace(src, c.from, c.to, 1)
		if mutated == src {
			t.Fatalf("%s: mutation did not apply", name)
		}
		if m := infra.MissingSettings(cfg, bicepSettings(t, mutated)); !slices.Equal(m, []string{c.want}) {
			t.Errorf("%s: want %s reported, got %v", name, c.want, m)
		}
	}
	// A setting the code starts reading is caught too.
	newCfg := strings.Replace(cfg, `get("DSR_PHONE_REGION", "")`, `get("DSR_PHONE_REGION", get("DSR_NEW_SETTING", ""))`, 1)
	if newCfg == cfg {
		t.Fatal("config mutation did not apply")
	}
	if m := infra.MissingSettings(newCfg, bicepSettings(t, src)); !slices.Equal(m, []string{"DSR_NEW_SETTING"}) {
		t.Errorf("new setting not caught: %v", m)
	}
	// And one dropped from local.settings.json.example.
	ex := strings.Replace(read(t, "local.settings.json.example"), `"DSR_AUDIT_CONTAINER": "audit",`, "", 1)
	have, err := infra.LocalSettingsNames([]byte(ex))
	if err != nil {
		t.Fatal(err)
	}
	if m := infra.MissingSettings(cfg, have); !slices.Equal(m, []string{"DSR_AUDIT_CONTAINER"}) {
		t.Errorf("setting missing from example not caught: %v", m)
	}
}

func TestBicepObjectKeysTopLevelOnly(t *testing.T) {
	src := "var appSettings = {\n  A: 'x'\n  'B_C': { inner: 1 }\n  // D: 'commented'\n  E: '${f}}'\n}\nvar other = { Z: 1 }\n"
	keys, err := infra.BicepObjectKeys(src, "appSettings")
	if err != nil || !slices.Equal(keys, []string{"A", "B_C", "E"}) {
		t.Fatalf("got %v, %v", keys, err)
	}
}

func TestRoleAssignmentsNamedByGuid(t *testing.T) {
	// Every role assignment is named guid(scope.id, principal, roleId) and
	// scoped to a resource, never the resource group or subscription.
	src := read(t, "infra/modules/roles.bicep")
	n := strings.Count(src, "'Microsoft.Authorization/roleAssignments@")
	if n < 5 || strings.Count(src, "name: guid(") != n || strings.Count(src, "scope: ") != n {
		t.Fatalf("%d role assignments; each needs name: guid(...) and a resource scope", n)
	}
	for _, id := range []string{
		"b7e6dc6d-f1e8-4753-8033-0f276bb0955b", // Storage Blob Data Owner (host storage)
		"ba92f5b4-2d11-453d-a403-e96b0029c9fe", // Storage Blob Data Contributor (the deployer)
		"db58b8e5-c6ad-4a2a-8342-4190687cbf4a", // Storage Blob Delegator
		"090c5cfd-751d-490a-894a-3ce6f1109419", // Azure Service Bus Data Owner (scaling reads queue lengths)
		"3913510d-42f4-4e42-8a64-420c390055eb", // Monitoring Metrics Publisher
		"4633458b-17de-408a-b874-0445c86b69e6", // Key Vault Secrets User
	} {
		if !strings.Contains(src, id) {
			t.Errorf("role %s not assigned", id)
		}
	}
}

func TestAppRolesMatchCode(t *testing.T) {
	code := infra.RolesInCode(read(t, "shared/auth/auth.go"))
	if !slices.Equal(code, []string{"DSR.Admin", "DSR.Approve", "DSR.Export", "DSR.Read", "DSR.Submit"}) {
		t.Fatalf("role scan of shared/auth/auth.go looks wrong: %v", code)
	}
	if p := infra.CheckAppRoles([]byte(read(t, "infra/app-roles.json")), code); len(p) > 0 {
		t.Fatalf("infra/app-roles.json does not match the code:\n%s", strings.Join(p, "\n"))
	}
}

func TestAppRoleDriftCaught(t *testing.T) {
	src := read(t, "infra/app-roles.json")
	code := infra.RolesInCode(read(t, "shared/auth/auth.go"))
	dropped := strings.Replace(src, `"value": "DSR.Export"`, `"value": "DSR.Exports"`, 1)
	sameID := strings.Replace(src, "e0881fed-4df6-4fe2-bcf8-d1fc62050fd5", "5d2ac443-ab88-42c9-93dc-a9bb23efcea7", 1)
	appOnly := strings.Replace(src, `"allowedMemberTypes": ["User", "Application"],
    "isEnabled": true
  },
  {
    "id": "e0881fed`, `"allowedMemberTypes": ["Application"],
    "isEnabled": true
  },
  {
    "id": "e0881fed`, 1)
	cases := map[string]struct {
		json string
		code []string
		want string
	}{
		"role renamed":      {dropped, code, "DSR.Export is checked by the code but not declared"},
		"unknown role":      {dropped, code, "DSR.Exports is declared but the code knows no such role"},
		"duplicate id":      {sameID, code, "used twice"},
		"users cannot hold": {appOnly, code, "DSR.Submit must be enabled for User and Application members"},
		"new role in code":  {src, append(slices.Clone(code), "DSR.Audit"), "DSR.Audit is checked by the code but not declared"},
		"not json":          {"{", code, "app-roles.json:"},
	}
	for name, c := range cases {
		if c.json == src && slices.Equal(c.code, code) {
			t.Fatalf("%s: mutation did not apply", name)
		}
		if p := infra.CheckAppRoles([]byte(c.json), c.code); !strings.Contains(strings.Join(p, "\n"), c.want) {
			t.Errorf("%s: want %q, got %q", name, c.want, p)
		}
	}
}
