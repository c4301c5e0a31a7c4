// The Service Bus namespace (Standard: duplicate detection needs it; local,
// SAS-key auth disabled) and every queue the functions use. The queue list is
// checked against functions/*/function.json by infra/infra_test.go.
param name string
param location string
param tags object = {}

@description('Queue that receives a notice for each invalid intake message (DSR_INTAKE_REJECTED_QUEUE).')
param intakeRejectedQueue string = 'dsr-intake-rejected'

// Every queue a function.json names (without /$deadletterqueue), plus the
// queues the code sends to. The stage messages carry MessageIds derived from
// request and stage, so duplicate detection drops a resend.
var queueNames = [
  'dsr-intake'
  'dsr-discover'
  'dsr-export'
  'dsr-erase'
  'dsr-verify'
  'dsr-scan'
  'dsr-intake-rejected'
]

var allQueues = union(queueNames, [intakeRejectedQueue])

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource queues 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = [
  for q in allQueues: {
    parent: namespace
    name: q
    properties: {
      requiresDuplicateDetection: true
      duplicateDetectionHistoryTimeWindow: 'PT10M'
      maxDeliveryCount: 10
      deadLetteringOnMessageExpiration: true
      lockDuration: 'PT5M'
      defaultMessageTimeToLive: 'P14D'
    }
  }
]

output id string = namespace.id
output name string = namespace.name
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
output queueNames array = allQueues
