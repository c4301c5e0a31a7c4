// Email that really leaves (issue 13): an Email Communication Service with an
// Azure-managed sender domain, linked to a Communication Service the app
// calls with its managed identity (keys turned off). The managed domain needs
// no DNS but has a very limited sending volume and a fixed
// DoNotReply@<guid>.azurecomm.net sender: production links a custom domain
// instead (docs/deploy.md, "Email").
param emailServiceName string
param communicationServiceName string
param tags object = {}

@description('Where ACS keeps message data at rest (create-only), e.g. Europe or United States.')
param dataLocation string = 'Europe'

resource emailService 'Microsoft.Communication/emailServices@2023-04-01' = {
  name: emailServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

// The resource name must be AzureManagedDomain for an Azure-managed domain.
resource domain 'Microsoft.Communication/emailServices/domains@2023-04-01' = {
  parent: emailService
  name: 'AzureManagedDomain'
  location: 'global'
  tags: tags
  properties: {
    domainManagement: 'AzureManaged'
    userEngagementTracking: 'Disabled'
  }
}

resource communication 'Microsoft.Communication/communicationServices@2025-05-01' = {
  name: communicationServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
    linkedDomains: [
      domain.id
    ]
    // Entra tokens only: no access keys to leak or rotate (the property
    // is in the 2025-05-01 API and Microsoft's Bicep reference example).
    disableLocalAuth: true
  }
}

output communicationServiceName string = communication.name
output endpoint string = 'https://${communication.properties.hostName}'
output sender string = 'DoNotReply@${domain.properties.mailFromSenderDomain}'
