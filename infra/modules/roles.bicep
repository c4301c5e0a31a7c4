// Role assignments for the app's managed identity, each scoped to the one
// resource it is needed on. Names are guid(scope.id, principalId, roleId), so a
// redeploy finds the same assignment.
param principalId string
param storageAccountName string
param serviceBusNamespaceName string
param appInsightsName string
param keyVaultName string
@description('The Communication Service the app sends email through.')
param communicationServiceName string

@description('Object id of the deploying user or group (optional): gets Storage Blob Data Contributor to upload datasets. Empty: none.')
param deployerPrincipalId string = ''
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param deployerPrincipalType string = 'User'

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageBlobDelegator: 'db58b8e5-c6ad-4a2a-8342-4190687cbf4a'
  serviceBusDataOwner: '090c5cfd-751d-490a-894a-3ce6f1109419'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  communicationAndEmailServiceOwner: '09976791-48a7-449e-bb21-39d1a415f350'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
  name: serviceBusNamespaceName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

// Read, write, delete and list blobs (state, exports, audit, datasets, the
// deployment package, the host's timer leases). The account is the host's
// storage (AzureWebJobsStorage): Microsoft's Flex Consumption docs and
// samples give the host identity Storage Blob Data Owner ("the default
// requirement for host storage"). Our own code needs no more than
// Contributor (infra/roles_check.go shows it), but the host is the one
// that must start.
resource blobData 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// generateUserDelegationKey, for the read-only user-delegation SAS export links.
resource blobDelegator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roles.storageBlobDelegator)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDelegator)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The stage messages the code sends (dsr-discover, dsr-export, ...), the
// host's Service Bus triggers (dead-letter queues included), and the scale
// controller reading queue lengths: target-based scaling on Flex
// Consumption reads the queues' runtime properties, which needs Manage
// rights (Azure/Azure-Functions#2379 shows the failure with Sender +
// Receiver, and Microsoft's Flex Service Bus sample grants Data Owner).
// Scoped to this one namespace, which holds nothing but our queues.
resource busOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(serviceBus.id, principalId, roles.serviceBusDataOwner)
  scope: serviceBus
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Telemetry with Entra ID auth (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The DSR_PSEUDONYM_SECRET Key Vault reference.
resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource communication 'Microsoft.Communication/communicationServices@2025-05-01' existing = {
  name: communicationServiceName
}

// Send the verification codes and delivery emails (POST /emails:send with an
// Entra token). Microsoft documents this built-in role for Entra apps sending
// email; no narrower built-in role exists. Scoped to the one Communication
// Service, which does nothing but send our mail.
resource emailSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(communication.id, principalId, roles.communicationAndEmailServiceOwner)
  scope: communication
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.communicationAndEmailServiceOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource deployerBlobData 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(storage.id, deployerPrincipalId, roles.storageBlobDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}
