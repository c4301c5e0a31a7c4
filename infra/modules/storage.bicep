// The storage account: no shared key access, TLS 1.2, no public blob access.
// Containers for the deployment package, request state, exports, the audit
// trail, datasets and agents' proofs of authority; blob versioning on; the audit container write-once
// (container-level time-based retention that still allows appends); lifecycle
// rules that delete export packages once their link has expired (plus a grace
// day), and previous blob versions after a few days, so that data erasure
// rewrote does not live on in old versions. Checked by infra/immutability_check.go.
param name string
param location string
param tags object = {}

@description('Container the Flex Consumption plan deploys the package from.')
param deploymentContainer string = 'deployment'
param stateContainer string = 'state'
param exportsContainer string = 'exports'
param auditContainer string = 'audit'
@description('Private container of agents\' proofs of authority (the app deletes each after its request\'s retention).')
param proofContainer string = 'proofs'
param datasetsContainer string = 'datasets'

@description('Days after which export blobs are deleted (link lifetime rounded up to days, plus grace).')
@minValue(1)
param exportRetentionDays int

@description('Days each audit blob stays write-once after its last append (immutabilityPeriodSinceCreationInDays, 1 to 146000).')
@minValue(1)
@maxValue(146000)
param auditRetentionDays int

@description('unlocked: this template creates and updates the audit retention policy. locked: an operator has locked it (irreversible); the template leaves it alone, since a locked policy can only be extended.')
@allowed([
  'unlocked'
  'locked'
])
param auditImmutability string = 'unlocked'

@description('Days a previous blob version is kept before the lifecycle rule deletes it (erased or overwritten data lives on in versions until then).')
@minValue(1)
param previousVersionRetentionDays int = 7

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    isVersioningEnabled: true
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

// The audit container is declared on its own below: its retention policy is
// a child of it.
var containerNames = [
  deploymentContainer
  stateContainer
  exportsContainer
  datasetsContainer
  proofContainer
]

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for c in containerNames: {
    parent: blobService
    name: c
    properties: {
      publicAccess: 'None'
    }
  }
]

resource auditContainerResource 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: auditContainer
  properties: {
    publicAccess: 'None'
  }
}

// Write-once audit trail (container-level WORM). Every blob in the container
// can be created and read but neither overwritten nor deleted until
// auditRetentionDays after its last append. allowProtectedAppendWrites lets
// shared/audit keep appending blocks to its existing append blobs (without it
// every Append Block to a protected blob fails); not allowProtectedAppendWritesAll
// (mutually exclusive with it), which only adds block-blob appends through the
// Data Lake API, which nothing here uses. Deployed unlocked: locking is
// irreversible and is an operator decision (docs/deploy.md, "Lock the audit
// retention policy"). A locked policy accepts no update but an extension, so
// once locked this template must not send it again (auditImmutability=locked).
resource auditRetention 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = if (auditImmutability != 'locked') {
  parent: auditContainerResource
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: auditRetentionDays
    allowProtectedAppendWrites: true
  }
}

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-expired-exports'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${exportsContainer}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: exportRetentionDays
                }
              }
              version: {
                delete: {
                  daysAfterCreationGreaterThan: exportRetentionDays
                }
              }
            }
          }
        }
        {
          // Versioning keeps the previous content of every overwritten block
          // blob, erased dataset records included: delete old versions.
          name: 'delete-previous-versions'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
            }
            actions: {
              version: {
                delete: {
                  daysAfterCreationGreaterThan: previousVersionRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    containers
    auditContainerResource
  ]
}

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output deploymentContainerUrl string = '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
