// The user-assigned managed identity the Function App runs as: it reaches the
// deployment container, the state/exports/audit/datasets containers, Service
// Bus, Application Insights and the Key Vault secret. No keys anywhere.
param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
