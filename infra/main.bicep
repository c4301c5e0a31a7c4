// DSR Functions on Azure: a Go custom handler on Flex Consumption, a
// user-assigned managed identity with narrowly scoped roles, storage without
// shared keys, Service Bus without SAS keys, Entra-authenticated telemetry and
// the pseudonym secret in Key Vault. Deploy with `azd up` (azure.yaml) or
// `az deployment group create` (docs/deploy.md).
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(40)
@description('Environment name (azd sets it); names and tags derive from it.')
param environmentName string

@description('Region for every resource (must offer Flex Consumption).')
param location string = resourceGroup().location

@secure()
@minLength(16)
@description('Seeds DSR_PSEUDONYM_SECRET in Key Vault (at least 16 characters). Keep it: changing it unlinks earlier pseudonyms.')
param pseudonymSecret string

@description('Lifetime of export links in hours (DSR_EXPORT_LINK_TTL; 1 to 168).')
@minValue(1)
@maxValue(168)
param exportLinkTtlHours int = 72

@description('Extra days exports are kept after their link expired, before the lifecycle rule deletes them.')
@minValue(1)
param exportGraceDays int = 1

@description('Days every audit blob stays write-once after its last append (time-based retention on the audit container, 1 to 146000). Default 2190, about six years. See docs/deploy.md.')
@minValue(1)
@maxValue(146000)
param auditRetentionDays int = 2190

@description('unlocked (default): the template creates and updates the audit retention policy. Set locked once an operator has locked it (irreversible, docs/deploy.md); the template then leaves the locked policy alone.')
@allowed([
  'unlocked'
  'locked'
])
param auditImmutability string = 'unlocked'

@description('Days a previous blob version is kept (versioning is on): erased or overwritten data lives on in versions, and then in soft delete for 7 more days.')
@minValue(1)
param previousVersionRetentionDays int = 7

@description('Client id of the Entra app registration for App Service Authentication (DSR_AUTH_MODE=platform). Empty: keys mode until set.')
param authClientId string = ''

@description('Roles of callers known only by a function key (DSR_KEY_ROLES). Empty: none.')
param keyRoles string = ''

@description('Request types that wait for approval after discovery (DSR_APPROVAL_TYPES).')
param approvalTypes string = 'erasure,rectification'

@description('Window in which a request of the same type by the same person is flagged as a repeat for an operator (DSR_REPEAT_WINDOW, Art. 12(5); 0: off).')
param repeatWindow string = '720h'

@description('Host names a portability package may be sent to although they resolve to a private address, e.g. a controller behind a private endpoint (DSR_TRANSMIT_ALLOW_HOSTS, comma-separated; default none).')
param transmitAllowHosts string = ''

@description('Region for phone numbers given without a country code (DSR_PHONE_REGION, ISO 3166 alpha-2). Empty: + required.')
param phoneRegion string = ''

@description('Object id of the deploying user (azd sets AZURE_PRINCIPAL_ID): may upload datasets. Empty: no assignment.')
param principalId string = ''

@description('What principalId is (azd sets AZURE_PRINCIPAL_TYPE: User for `azd auth login`, ServicePrincipal in CI). A fixed User fails with UnmatchedPrincipalType under a service principal.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param principalType string = 'User'

@description('Where Azure Communication Services keeps email data at rest (create-only), e.g. Europe or United States.')
param emailDataLocation string = 'Europe'

@description('Which channel:type requests must prove the address with a code (DSR_VERIFY). Default: everything from the portal.')
param verify string = 'portal:*'

@description('Request types the public portal offers (DSR_PORTAL_TYPES); none turns the portal off.')
param portalTypes string = 'access,erasure,rectification,restriction'

param tags object = {}

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var allTags = union(tags, {
  'azd-env-name': environmentName
})
var containers = {
  deployment: 'deployment'
  state: 'state'
  exports: 'exports'
  audit: 'audit'
  datasets: 'datasets'
  proofs: 'proofs'
}
var intakeRejectedQueue = 'dsr-intake-rejected'
// Whole days covering the link lifetime, plus the grace period.
var exportRetentionDays = (exportLinkTtlHours + 23) / 24 + exportGraceDays

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: 'id-dsr-${token}'
    location: location
    tags: allTags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: 'stdsr${token}'
    location: location
    tags: allTags
    deploymentContainer: containers.deployment
    stateContainer: containers.state
    exportsContainer: containers.exports
    auditContainer: containers.audit
    datasetsContainer: containers.datasets
    proofContainer: containers.proofs
    exportRetentionDays: exportRetentionDays
    auditRetentionDays: auditRetentionDays
    auditImmutability: auditImmutability
    previousVersionRetentionDays: previousVersionRetentionDays
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  params: {
    name: 'sb-dsr-${token}'
    location: location
    tags: allTags
    intakeRejectedQueue: intakeRejectedQueue
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-dsr-${token}'
    appInsightsName: 'appi-dsr-${token}'
    location: location
    tags: allTags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: 'kv-dsr-${take(token, 17)}'
    location: location
    tags: allTags
    pseudonymSecret: pseudonymSecret
  }
}

module email 'modules/email.bicep' = {
  name: 'email'
  params: {
    emailServiceName: 'ecs-dsr-${token}'
    communicationServiceName: 'acs-dsr-${token}'
    dataLocation: emailDataLocation
    tags: allTags
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    serviceBusNamespaceName: serviceBus.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    keyVaultName: keyVault.outputs.name
    communicationServiceName: email.outputs.communicationServiceName
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    planName: 'plan-dsr-${token}'
    appName: 'func-dsr-${token}'
    location: location
    tags: allTags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    serviceBusNamespace: serviceBus.outputs.fullyQualifiedNamespace
    appInsightsConnectionString: monitoring.outputs.connectionString
    pseudonymSecretUri: keyVault.outputs.secretUri
    stateContainer: containers.state
    exportsContainer: containers.exports
    proofContainer: containers.proofs
    auditContainer: containers.audit
    exportLinkTtlHours: exportLinkTtlHours
    intakeRejectedQueue: intakeRejectedQueue
    approvalTypes: approvalTypes
    repeatWindow: repeatWindow
    transmitAllowHosts: transmitAllowHosts
    phoneRegion: phoneRegion
    authMode: 'platform'
    authClientId: authClientId
    keyRoles: keyRoles
    emailEndpoint: email.outputs.endpoint
    emailSender: email.outputs.sender
    verify: verify
    portalTypes: portalTypes
  }
  // The app starts resolving its connections at once: roles first.
  dependsOn: [
    roles
  ]
}

output AZURE_LOCATION string = location
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_URL string = 'https://${functionApp.outputs.defaultHostName}/api'
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_AUDIT_CONTAINER string = containers.audit
output AZURE_SERVICEBUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_EMAIL_SENDER string = email.outputs.sender
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
