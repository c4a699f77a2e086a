// Storage for the Functions host (AzureWebJobsStorage, identity-based), the Flex Consumption deployment
// package container, the app's outbox container and the Event Grid dead-letter container.
// Shared-key access is disabled: every client (host, azd deploy, app, Event Grid) uses Entra ID.
param location string
param tags object
@minLength(3)
@maxLength(24)
param name string
param deploymentContainerName string
param outboxContainerName string
param deadLetterContainerName string
param appPrincipalId string
param eventGridPrincipalId string
param enableQueueAccess bool = false
@description('Replication. ZRS where the region offers it; LRS is enough for a stateless control-plane app.')
param skuName string = 'Standard_LRS'

// Built-in role ids (stable across tenants).
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:Flex Consumption without VNet integration and Event Grid dead-lettering reach the account over its public endpoint; access is Entra-only (shared key disabled), TLS 1.2, no anonymous blobs. VNet integration + private endpoints is the documented hardening step (docs/deploy.md).
  // checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: public network access is needed without VNet integration; data-plane access requires Entra ID RBAC.
  // checkov:skip=CKV_AZURE_206:The account holds only transient data (deployment package, host leases, a retry outbox, dead letters); LRS is a documented cost choice, set skuName=Standard_ZRS or Standard_GRS to change it.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
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

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource outboxContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: outboxContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

// App identity: Blob Data Owner on the account. The Functions host needs it for AzureWebJobsStorage
// (timer schedule monitor blobs, singleton leases, key/secrets blobs) and Flex needs it to read the
// deployment package; the app needs read/write/delete on the outbox container.
resource appBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, storageBlobDataOwner)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (enableQueueAccess) {
  name: guid(account.id, appPrincipalId, storageQueueDataContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Event Grid identity: Blob Data Contributor on the dead-letter container only.
resource eventGridDeadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, eventGridPrincipalId, storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: eventGridPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// --- Revert queue (docs/revert.md): on_nsg_change enqueues, revert_job (queue trigger, identity-based
// connection REVERT_QUEUE) performs; the host creates nsg-guard-revert-poison itself. ---
@description('Name of the revert job queue (the function binding uses this fixed name).')
param revertQueueName string = 'nsg-guard-revert'

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource revertQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: revertQueueName
}

output queueEndpoint string = account.properties.primaryEndpoints.queue
output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
