// Function App on Flex Consumption (Python 3.11), user-assigned identity everywhere:
// identity-based AzureWebJobsStorage, identity-based deployment container, Entra-auth App Insights.
param location string
param tags object
param name string
param planName string
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param instanceMemoryMB int
param maximumInstanceCount int
param appInsightsConnectionString string
@description('App settings read by the NSG Guard code (see docs/deploy.md).')
param appSettings object

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Zone redundancy for Flex Consumption is region-dependent and not needed here: a zonal outage delays events, which Event Grid retries for 24 h, and the nightly sweep re-evaluates everything.
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

var hostSettings = {
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222:Event Grid delivers to an AzureFunction endpoint over the app's public endpoint (the eventgrid extension webhook, authenticated by the function's system key); the app exposes no HTTP functions.
  // checkov:skip=CKV_AZURE_17:Event Grid cannot present a client certificate, so requiring one would stop event delivery; the webhook is protected by the system key.
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero; always-ready instances would cost money for no gain: Event Grid retries for 24 h and the nightly sweep catches anything missed.
  // checkov:skip=CKV_AZURE_213:No HTTP functions to probe; Flex Consumption manages instance health. Failures surface through App Insights and the sweep-missing alert.
  name: name
  location: location
  // azd finds the deploy target by this tag (service name in azure.yaml).
  tags: union(tags, { 'azd-service-name': 'nsg-guard' })
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
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      // On Flex Consumption FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION must NOT be set: the
      // runtime comes from functionAppConfig.runtime.
      appSettings: [for s in items(union(appSettings, hostSettings)): {
        name: s.key
        value: s.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No FTP or SCM basic-auth publishing: azd deploys to the blob container with Entra ID.
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
