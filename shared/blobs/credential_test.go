package blobs

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/dsr-functions/dsr/shared/config"
)

// Credential selection: a user-assigned managed identity when the
// connection names a client id (as the Bicep deployment sets
// NAME__clientId), else the default chain (managed identity in Azure, the
// developer's az/azd login locally).
func TestCredentialSelection(t *testing.T) {
	mi, err := Credential(config.Connection{AccountName: "acct", ClientID: "00000000-0000-0000-0000-000000000001"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mi.(*azidentity.ManagedIdentityCredential); !ok {
		t.Fatalf("with a client id: %T, want *azidentity.ManagedIdentityCredential", mi)
	}
	def, err := Credential(config.Connection{AccountName: "acct"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := def.(*azidentity.DefaultAzureCredential); !ok {
		t.Fatalf("without a client id: %T, want *azidentity.DefaultAzureCredential", def)
	}
}

// An identity-based connection never uses a shared key: export links are
// then user-delegation SAS (tested against Azurite in delegation_test.go).
func TestIdentityConnectionHasNoSharedKey(t *testing.T) {
	a, err := Open(config.Connection{AccountName: "acct", ServiceURI: "https://acct.blob.core.windows.net/", ClientID: "00000000-0000-0000-0000-000000000001"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.sharedKey != nil || a.insecure {
		t.Fatalf("identity account: sharedKey %v insecure %v", a.sharedKey != nil, a.insecure)
	}
}
