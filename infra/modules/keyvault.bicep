// Key Vault (RBAC authorisation) holding DSR_PSEUDONYM_SECRET. The app reads
// it through a Key Vault reference resolved by the platform with the
// user-assigned identity (Key Vault Secrets User on this vault only).
param name string
param location string
param tags object = {}

@secure()
@minLength(16)
@description('Seeds the pseudonym secret (HMAC key for pseudonyms and audit record hashes).')
param pseudonymSecret string

param secretName string = 'dsr-pseudonym-secret'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
  }
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: secretName
  properties: {
    value: pseudonymSecret
    contentType: 'text/plain'
  }
}

output id string = vault.id
output name string = vault.name
// Versionless: a new secret version is picked up without redeploying.
output secretUri string = secret.properties.secretUri
