package infra_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/infra"
)

// appGoSources reads the non-test Go files under shared/, functions/ and
// cmd/, keyed by repo-relative slash path.
func appGoSources(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, dir := range []string{"shared", "functions", "cmd"} {
		err := filepath.WalkDir(filepath.Join(repo, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			rel, err := filepath.Rel(repo, p)
			if err != nil {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[filepath.ToSlash(rel)] = string(b)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out) < 10 {
		t.Fatalf("found only %d Go sources", len(out))
	}
	return out
}

func functionJSONs(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repo, "functions", "*", "function.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no function.json files: %v", err)
	}
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
		b.WriteByte('\n')
	}
	return b.String()
}

// rolesBicep is the roles module plus main.bicep (which assigns no roles
// itself: the module's principalId is the app identity).
func rolesBicep(t *testing.T) string {
	t.Helper()
	return read(t, "infra/modules/roles.bicep") + "\n" + read(t, "infra/main.bicep")
}

func mustMutate(t *testing.T, src, from, to string) string {
	t.Helper()
	out := strings.ReplaceAll(src, from, to)
	if out == src {
		t.Fatalf("mutation %q did not apply", from)
	}
	return out
}

func TestEveryOperationCoveredByARole(t *testing.T) {
	srcs := appGoSources(t)
	if m := infra.CheckRoleCoverage(srcs, functionJSONs(t), rolesBicep(t)); len(m) > 0 {
		t.Fatalf("Azure operations not allowed by any role assigned to the app identity:\n%s", strings.Join(m, "\n"))
	}
	// The scan must actually see the operations, or passing means nothing.
	seen := map[string]bool{}
	for p, s := range srcs {
		calls, err := infra.SDKCalls(p, s)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range calls {
			seen[c.Name] = true
		}
	}
	for _, want := range []string{"DownloadStream", "GetProperties", "NewListBlobsFlatPager", "Upload", "UploadStream",
		"StageBlock", "CommitBlockList", "AppendBlock", "Create", "CreateContainer", "Delete",
		"GetUserDelegationCredential", "SendMessage", "NewSender"} {
		if !seen[want] {
			t.Errorf("scan missed %s", want)
		}
	}
}

func TestAppRoleAssignments(t *testing.T) {
	got, problems := infra.AppRoleAssignments(rolesBicep(t))
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	var ids []string
	for _, a := range got {
		ids = append(ids, a.RoleID)
		if a.ScopeType == "" {
			t.Errorf("%s: scope not resolved", a.Resource)
		}
	}
	for _, id := range []string{"b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "db58b8e5-c6ad-4a2a-8342-4190687cbf4a",
		"090c5cfd-751d-490a-894a-3ce6f1109419"} {
		if !slices.Contains(ids, id) {
			t.Errorf("role %s not found among app assignments %v", id, ids)
		}
	}
	// The email sender (shared/notify/acs calls ACS over HTTP with the app's
	// token, so no SDK call names it): on the Communication Service.
	if !slices.ContainsFunc(got, func(a infra.RoleAssignment) bool {
		return a.RoleID == "09976791-48a7-449e-bb21-39d1a415f350" && a.ScopeType == "Microsoft.Communication/communicationServices"
	}) {
		t.Errorf("no Communication and Email Service Owner on the Communication Service among %+v", got)
	}
	// The deployer's assignment is not the app's: 6 app assignments, not 7.
	if len(got) != 6 {
		t.Errorf("want 6 app-identity assignments, got %d: %+v", len(got), got)
	}
	// And the roles module's principalId really is the app identity.
	mod := regexp.MustCompile(`(?s)module roles 'modules/roles\.bicep' = \{.*?\n\}`).FindString(read(t, "infra/main.bicep"))
	if !regexp.MustCompile(`(?m)^\s*principalId:\s*identity\.outputs\.principalId\s*$`).MatchString(mod) {
		t.Fatalf("main.bicep no longer passes identity.outputs.principalId to the roles module:\n%s", mod)
	}
}

// only returns the reports mentioning every one of words.
func only(reports []string, words ...string) []string {
	var out []string
	for _, r := range reports {
		if !slices.ContainsFunc(words, func(w string) bool { return !strings.Contains(r, w) }) {
			out = append(out, r)
		}
	}
	return out
}

func TestMissingSenderRoleCaught(t *testing.T) {
	// Data Receiver instead of Data Owner on the namespace: sends uncovered.
	bicep := mustMutate(t, rolesBicep(t), "090c5cfd-751d-490a-894a-3ce6f1109419", "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0")
	m := infra.CheckRoleCoverage(appGoSources(t), functionJSONs(t), bicep)
	if len(m) == 0 {
		t.Fatal("missing Service Bus Data Sender not caught")
	}
	if len(only(m, "shared/queue/servicebus/servicebus.go:", "SendMessage", infra.ActServiceBusSend)) != 1 ||
		len(only(m, "shared/queue/servicebus/servicebus.go:", "NewSender")) != 1 {
		t.Errorf("report should name SendMessage and NewSender in servicebus.go:\n%s", strings.Join(m, "\n"))
	}
	if len(only(m, infra.ActServiceBusSend)) != len(m) {
		t.Errorf("only send should be uncovered:\n%s", strings.Join(m, "\n"))
	}
}

func TestMissingReceiverRoleCaught(t *testing.T) {
	// Data Sender instead of Data Owner on the namespace: the
	// serviceBusTrigger functions are then uncovered.
	bicep := mustMutate(t, rolesBicep(t), "090c5cfd-751d-490a-894a-3ce6f1109419", "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39")
	m := infra.CheckRoleCoverage(appGoSources(t), functionJSONs(t), bicep)
	if !slices.Equal(m, []string{"functions/*/function.json: serviceBusTrigger needs " + infra.ActServiceBusRecv + ", which no role assigned to the app identity grants"}) {
		t.Errorf("missing receiver not caught as the only fault:\n%s", strings.Join(m, "\n"))
	}
	// Without triggers, no receive is needed.
	if m := infra.CheckRoleCoverage(nil, `{"bindings":[{"type":"httpTrigger"}]}`, bicep); len(m) != 0 {
		t.Errorf("receive required without a serviceBusTrigger: %v", m)
	}
}

func TestMissingBlobRoleCaught(t *testing.T) {
	bicep := mustMutate(t, rolesBicep(t), "storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'", "storageBlobDataOwner: '00000000-0000-0000-0000-000000000000'")
	m := infra.CheckRoleCoverage(appGoSources(t), functionJSONs(t), bicep)
	for _, want := range [][]string{
		{"shared/store/store.go:", "Upload", infra.ActBlobWrite},
		{"shared/store/store.go:", "DownloadStream", infra.ActBlobRead},
		{"shared/store/list.go:", "NewListBlobsFlatPager"},
		{"shared/audit/audit.go:", "AppendBlock", infra.ActBlobAdd},
		{"shared/audit/audit.go:", "Create needs " + infra.ActBlobWrite},
		{"shared/blobs/blobs.go:", "Delete", infra.ActBlobDelete},
		{"shared/blobs/blobs.go:", "CreateContainer", infra.ActContainerWrite},
		{"shared/sources/blobdataset/rewrite.go:", "CommitBlockList"},
	} {
		if len(only(m, want...)) == 0 {
			t.Errorf("missing %v in report:\n%s", want, strings.Join(m, "\n"))
		}
	}
	// The Delegator still covers user delegation; Service Bus is untouched;
	// non-SDK Create calls (os.Create, Store.Create) are not counted.
	for _, not := range []string{"GetUserDelegationCredential", "ServiceBus", "cmd/package", "shared/pipeline/pipeline.go"} {
		if r := only(m, not); len(r) > 0 {
			t.Errorf("unexpected report for %s: %v", not, r)
		}
	}
	// Our code alone would do with Contributor (the host needs Owner:
	// CheckHostRoles).
	contributor := mustMutate(t, rolesBicep(t), "roles.storageBlobDataOwner)", "roles.storageBlobDataContributor)")
	if m := infra.CheckRoleCoverage(appGoSources(t), functionJSONs(t), contributor); len(m) != 0 {
		t.Errorf("Storage Blob Data Contributor should cover the code: %v", m)
	}
}

func TestRoleOnWrongScopeCaught(t *testing.T) {
	// Contributor assigned on the Service Bus namespace grants no blob access.
	src := rolesBicep(t)
	bicep := mustMutate(t, src, "resource blobData 'Microsoft.Authorization/roleAssignments@2022-04-01' = {\n  name: guid(storage.id, principalId, roles.storageBlobDataOwner)\n  scope: storage",
		"resource blobData 'Microsoft.Authorization/roleAssignments@2022-04-01' = {\n  name: guid(storage.id, principalId, roles.storageBlobDataOwner)\n  scope: serviceBus")
	if m := infra.CheckRoleCoverage(appGoSources(t), functionJSONs(t), bicep); len(only(m, "UploadStream", infra.ActBlobWrite)) == 0 {
		t.Errorf("blob role on the wrong scope not caught: %v", m)
	}
	// A deployer-only assignment does not cover the app.
	bicep = mustMutate(t, src, "roles.storageBlobDataOwner)\n    principalId: principalId\n", "roles.storageBlobDataOwner)\n    principalId: deployerPrincipalId\n")
	if m := infra.CheckRoleCoverage(appGoSources(t), functionJSONs(t), bicep); len(only(m, "Upload")) == 0 {
		t.Errorf("role assigned to the deployer only counted for the app: %v", m)
	}
}

func TestNewUncoveredOperationCaught(t *testing.T) {
	srcs := appGoSources(t)
	const path = "shared/store/store.go"
	src := srcs[path]
	if !strings.Contains(src, "\"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob\"") {
		t.Fatal("store.go no longer imports azblob/blob")
	}
	// Blob index tags need blobs/tags/write, which only Storage Blob Data
	// Owner grants (docs: azure-services.md): with Contributor, a new
	// SetTags call is caught.
	contributor := mustMutate(t, rolesBicep(t), "roles.storageBlobDataOwner)", "roles.storageBlobDataContributor)")
	srcs[path] = src + "\nfunc (s *Store) tag(ctx context.Context, name string) error {\n" +
		"\t_, err := s.c.NewBlobClient(name).SetTags(ctx, map[string]string{\"k\": \"v\"}, nil)\n\treturn err\n}\n" +
		"\n// A comment calling x.SetTags(ctx) and a string \"y.SetTags(\" do not count.\n"
	m := infra.CheckRoleCoverage(srcs, functionJSONs(t), contributor)
	lines := strings.Count(src, "\n") + 3
	want := path + ":" + strconv.Itoa(lines) + ": SetTags needs " + infra.ActBlobTagsWrite + ", which no role assigned to the app identity grants"
	if !slices.Equal(m, []string{want}) {
		t.Errorf("new SetTags call not caught exactly:\nwant %s\ngot  %v", want, m)
	}
	// An unparsable source is reported, not skipped.
	srcs[path] = src + "\nfunc broken( {\n"
	if m := infra.CheckRoleCoverage(srcs, functionJSONs(t), rolesBicep(t)); len(only(m, path, "cannot parse")) != 1 {
		t.Errorf("parse error not reported: %v", m)
	}
}

func TestAmbiguousCallNames(t *testing.T) {
	src := `package p

import (
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
)

func f(s *S, svc *Svc) {
	os.Create("x")
	s.Store.Create(nil)
	s.m.Delete("k")
	svc.NewContainerClient("c").Delete(nil, nil)
	svc.NewContainerClient("c").NewBlobClient("b").Delete(nil, nil)
	_ = bloberror.HasCode
}
`
	calls, err := infra.SDKCalls("p.go", src)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range calls {
		got = append(got, c.Name+"="+strings.Join(c.Actions, ","))
	}
	want := []string{"Delete=" + infra.ActContainerDelete, "Delete=" + infra.ActBlobDelete}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
