// NSG Guard — stage 2: the Event Grid event subscriptions from the subscription's system topic to the
// function `on_nsg_change`. Deployed by the azd postdeploy hook (infra/hooks/postdeploy.sh|.ps1) because an
// AzureFunction endpoint is validated against the deployed function (Event Grid fetches its system key).
// Deployed into the resource group of the system topic, which may be a reused topic in another group
// (one system topic per subscription); the app and its storage are referenced in appResourceGroup.
//   az deployment group create -g <topic rg> -f infra/eventgrid.bicep -p systemTopicName=... \
//     appResourceGroup=... functionAppName=... storageAccountName=... eventGridIdentityId=...
targetScope = 'resourceGroup'

param systemTopicName string
@description('Resource group of the function app and the storage account (default: the topic\'s group).')
param appResourceGroup string = resourceGroup().name
param functionAppName string
param functionName string = 'on_nsg_change'
param storageAccountName string
param deadLetterContainerName string = 'eventgrid-deadletter'
@description('Resource id of the user-assigned identity attached to the system topic (dead-letter writer).')
param eventGridIdentityId string
@minLength(3)
@maxLength(58)
@description('Name of the event subscription; unique per environment, since environments may share a reused topic. The Tags API subscription is this name + "-tags".')
param eventSubscriptionName string = 'nsg-guard-on-nsg-change'
@allowed(['AzureFunction', 'WebHook'])
@description('AzureFunction (default): Event Grid resolves the function and its key itself. WebHook: fallback that posts to the eventgrid extension URL with the eventgrid_extension system key, which the hook reads (with retries) and passes in eventGridExtensionKey.')
param endpointType string = 'AzureFunction'
@secure()
@description('WebHook only: the eventgrid_extension system key of the app (read by the postdeploy hook once it exists).')
param eventGridExtensionKey string = ''
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 30
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

// The four NSG operations and the Azure ML compute write/delete; Event Grid compares StringIn values
// case-insensitively. (Tags API writes have their own subscription below.)
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
  scope: resourceGroup(appResourceGroup)
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
  scope: resourceGroup(appResourceGroup)
}

var azureFunctionDestination = {
  endpointType: 'AzureFunction'
  properties: {
    resourceId: '${site.id}/functions/${functionName}'
    maxEventsPerBatch: 1
    preferredBatchSizeInKilobytes: 64
  }
}

var webHookDestination = {
  endpointType: 'WebHook'
  properties: {
    endpointUrl: 'https://${site.properties.defaultHostName}/runtime/webhooks/eventgrid?functionName=${functionName}&code=${eventGridExtensionKey}'
    maxEventsPerBatch: 1
    preferredBatchSizeInKilobytes: 64
  }
}

// Delivery settings shared by both subscriptions.
var delivery = {
  destination: endpointType == 'AzureFunction' ? azureFunctionDestination : webHookDestination
  eventDeliverySchema: 'EventGridSchema'
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

resource subscriptionToFunction 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: eventSubscriptionName
  properties: union(delivery, {
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
  })
}

// Tags changed through the Tags API (portal, `az tag update`) are Microsoft.Resources/tags/write events on
// {resource}/providers/Microsoft.Resources/tags/default; advanced filters are ANDed, so NSG tags need their
// own subscription: that operation, on a resource URI inside networkSecurityGroups.
resource tagsToFunction 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: '${eventSubscriptionName}-tags'
  properties: union(delivery, {
    filter: {
      includedEventTypes: [
        'Microsoft.Resources.ResourceWriteSuccess'
      ]
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: [
            'Microsoft.Resources/tags/write'
          ]
        }
        {
          operatorType: 'StringContains'
          key: 'data.resourceUri'
          values: [
            '/providers/Microsoft.Network/networkSecurityGroups/'
          ]
        }
      ]
    }
  })
}

output eventSubscriptionId string = subscriptionToFunction.id
output tagsEventSubscriptionId string = tagsToFunction.id
output functionResourceId string = '${site.id}/functions/${functionName}'
