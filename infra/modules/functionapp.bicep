// The Function App on the Flex Consumption plan (FC1), runtime custom 1.0:
// the Go custom handler from dist/dsr-functions.zip. It runs as the
// user-assigned identity; every connection is identity-based. The app settings
// are checked against shared/config/config.go by infra/infra_test.go.
param planName string
param appName string
param location string
param tags object = {}

param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerUrl string
param serviceBusNamespace string
param appInsightsConnectionString string
param pseudonymSecretUri string

param stateContainer string = 'state'
param exportsContainer string = 'exports'
param auditContainer string = 'audit'
param proofContainer string = 'proofs'
@description('How long after its request ended an agent\'s proof of authority is kept (Go duration).')
param proofRetention string = '2160h'
param sourcesConfig string = 'sources.json'
@minValue(1)
@maxValue(168)
param exportLinkTtlHours int = 72
param sweepStuckAfter string = '30m'
@description('Scheduled retries of a failing stage before its request fails with the cause, and the jittered wait before the first (doubling up to the max delay).')
@minValue(1)
@maxValue(30)
param stageRetries int = 8
param stageRetryDelay string = '10s'
param stageRetryMaxDelay string = '5m'
@description('Size in MiB of a shard of a discovery fanned out over dsr-scan (0: no fan-out).')
param scanShardMb int = 256
@description('Most shards of one fanned-out scan.')
param scanMaxShards int = 64
param phoneRegion string = ''
param intakeRejectedQueue string = 'dsr-intake-rejected'
param approvalTypes string = 'erasure,rectification'
@description('How far back a request looks for the same person\'s earlier requests of its type, flagged as a repeat (Art. 12(5)); 0: no flagging.')
param repeatWindow string = '720h'
param transmitAllowHosts string = ''
@allowed([
  'platform'
  'keys'
])
param authMode string = 'platform'
param keyRoles string = ''

@description('Azure Communication Services endpoint the app sends email through (https://<name>.<region>.communication.azure.com).')
param emailEndpoint string
@description('Sender address on a domain linked to that service.')
param emailSender string
param verify string = 'portal:*'
param verifyCodeTtl string = '30m'
param verifyExpireAfter string = '168h'
@allowed([
  'receipt'
  'verification'
])
param verifyDeadline string = 'receipt'
param portalTypes string = 'access,erasure,rectification,restriction'

@description('Client id of the Entra app registration for App Service Authentication. Empty: configure it later (see docs/deploy.md).')
param authClientId string = ''

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    // No ftpsState: Flex Consumption does not support it, and newer
    // regional stamps reject a site that sets it (ARM error 51021); FTP is
    // not available on Flex Consumption at all (infra/flex_check.go lists
    // the site properties and app settings Flex refuses).
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
}

// Every setting the code reads (shared/config/config.go), identity-based
// connections only. On Flex Consumption the runtime is set by
// functionAppConfig.runtime, not FUNCTIONS_WORKER_RUNTIME.
var appSettings = {
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  ServiceBusConnection__fullyQualifiedNamespace: serviceBusNamespace
  ServiceBusConnection__credential: 'managedidentity'
  ServiceBusConnection__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  DSR_STATE_CONTAINER: stateContainer
  DSR_EXPORTS_CONTAINER: exportsContainer
  DSR_AUDIT_CONTAINER: auditContainer
  DSR_PROOF_CONTAINER: proofContainer
  DSR_PROOF_RETENTION: proofRetention
  DSR_SOURCES_CONFIG: sourcesConfig
  DSR_EXPORT_LINK_TTL: '${exportLinkTtlHours}h'
  DSR_SWEEP_STUCK_AFTER: sweepStuckAfter
  DSR_STAGE_RETRIES: string(stageRetries)
  DSR_STAGE_RETRY_DELAY: stageRetryDelay
  DSR_STAGE_RETRY_MAX_DELAY: stageRetryMaxDelay
  DSR_SCAN_SHARD_MB: string(scanShardMb)
  DSR_SCAN_MAX_SHARDS: string(scanMaxShards)
  DSR_PHONE_REGION: phoneRegion
  DSR_INTAKE_REJECTED_QUEUE: intakeRejectedQueue
  DSR_PSEUDONYM_SECRET: '@Microsoft.KeyVault(SecretUri=${pseudonymSecretUri})'
  DSR_APPROVAL_TYPES: approvalTypes
  DSR_REPEAT_WINDOW: repeatWindow
  DSR_TRANSMIT_ALLOW_HOSTS: transmitAllowHosts
  // platform trusts X-MS-CLIENT-PRINCIPAL, which only App Service
  // Authentication may set: without it, fall back to keys (closed by default).
  DSR_AUTH_MODE: empty(authClientId) ? 'keys' : authMode
  DSR_KEY_ROLES: keyRoles
  DSR_ALLOW_TEST_ROLES: 'false'
  DSR_VERIFY: verify
  DSR_VERIFY_CODE_TTL: verifyCodeTtl
  DSR_VERIFY_EXPIRE_AFTER: verifyExpireAfter
  DSR_VERIFY_DEADLINE: verifyDeadline
  DSR_PORTAL_TYPES: portalTypes
  DSR_EMAIL_ACS_ENDPOINT: emailEndpoint
  DSR_EMAIL_SENDER: emailSender
  // Only for `dsr local`: in Azure the mail leaves through ACS.
  DSR_EMAIL_OUTBOX_CONTAINER: ''
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: app
  name: 'appsettings'
  properties: appSettings
}

// App Service Authentication (Entra ID) in front of the app, when an app
// registration is given: it validates tokens and injects X-MS-CLIENT-PRINCIPAL
// (DSR_AUTH_MODE=platform). The anonymous health probe stays reachable.
resource auth 'Microsoft.Web/sites/config@2024-04-01' = if (!empty(authClientId)) {
  parent: app
  name: 'authsettingsV2'
  // One write to a site's configuration at a time: written in parallel with
  // the app settings, either may fail with "another operation is in
  // progress".
  dependsOn: [
    settings
  ]
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      // Without keyRoles every caller needs a token, and the platform turns
      // away the others. With keyRoles, machine callers holding only a
      // function key must reach the app: the platform lets unauthenticated
      // calls through (still after the function key check), and the app
      // gives them DSR_KEY_ROLES, while callers with a token get the
      // principal the platform validated (DSR_AUTH_MODE=platform).
      requireAuthentication: empty(keyRoles)
      unauthenticatedClientAction: empty(keyRoles) ? 'Return401' : 'AllowAnonymous'
      // Webhook systems deliver asynchronous answers without an Entra
      // token; the app checks each delivery's HMAC signature instead.
      // Whether App Service Authentication matches the wildcard form is not
      // verified here (no Azure): docs/deploy.md says how to check it.
      // The anonymous functions (a test keeps this list equal to them):
      // health, the API contract, the public request portal, the
      // transmission public key, and the webhook callbacks.
      excludedPaths: [
        '/api/health'
        '/api/openapi.json'
        '/api/portal/*'
        '/api/transmit-key'
        '/api/webhooks/*'
      ]
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: authClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${authClientId}'
            authClientId
          ]
        }
      }
    }
  }
}

output id string = app.id
output name string = app.name
output defaultHostName string = app.properties.defaultHostName
