// NSG Guard — stage 2: the Event Grid event subscription from the subscription's system topic to the
// function `on_nsg_change`. Deployed by the azd postdeploy hook (infra/hooks/postdeploy.sh|.ps1) because an
// AzureFunction endpoint is validated against the deployed function (Event Grid fetches its system key).
//   az deployment group create -g <rg> -f infra/eventgrid.bicep -p systemTopicName=... functionAppName=... \
//     storageAccountName=... eventGridIdentityId=...
targetScope = 'resourceGroup'

param systemTopicName string
param functionAppName string
param functionName string = 'on_nsg_change'
param storageAccountName string
param deadLetterContainerName string = 'eventgrid-deadletter'
@description('Resource id of the user-assigned identity attached to the system topic (dead-letter writer).')
param eventGridIdentityId string
@allowed(['AzureFunction', 'WebHook'])
@description('AzureFunction (default): Event Grid resolves the function and its key itself. WebHook: fallback that posts to the eventgrid extension URL with the eventgrid_extension system key, read at deployment time.')
param endpointType string = 'AzureFunction'
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 30
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

// The four NSG operations; Event Grid compares StringIn values case-insensitively.
var nsgOperations = [
  'Microsoft.Network/networkSecurityGroups/write'
  'Microsoft.Network/networkSecurityGroups/delete'
  'Microsoft.Network/networkSecurityGroups/securityRules/write'
  'Microsoft.Network/networkSecurityGroups/securityRules/delete'
  'Microsoft.MachineLearningServices/workspaces/computes/write'
  'Microsoft.MachineLearningServices/workspaces/computes/delete'
]

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

var azureFunctionDestination = {
  endpointType: 'AzureFunction'
  properties: {
    resourceId: '${site.id}/functions/${functionName}'
    maxEventsPerBatch: 1
    preferredBatchSizeInKilobytes: 64
  }
}

var webHookDestination = endpointType == 'WebHook' ? {
  endpointType: 'WebHook'
  properties: {
    endpointUrl: 'https://${site.properties.defaultHostName}/runtime/webhooks/eventgrid?functionName=${functionName}&code=${listKeys('${site.id}/host/default', '2024-04-01').systemKeys.eventgrid_extension}'
    maxEventsPerBatch: 1
    preferredBatchSizeInKilobytes: 64
  }
} : {}

resource subscriptionToFunction 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'nsg-guard-on-nsg-change'
  properties: {
    destination: endpointType == 'AzureFunction' ? azureFunctionDestination : webHookDestination
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Resources.ResourceWriteSuccess'
        'Microsoft.Resources.ResourceDeleteSuccess'
      ]
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: nsgOperations
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    // Identity-based dead-lettering: the topic's user-assigned identity holds Storage Blob Data
    // Contributor on this container only (infra/modules/storage.bicep). No storage keys involved.
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'UserAssigned'
        userAssignedIdentity: eventGridIdentityId
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output eventSubscriptionId string = subscriptionToFunction.id
output functionResourceId string = '${site.id}/functions/${functionName}'
