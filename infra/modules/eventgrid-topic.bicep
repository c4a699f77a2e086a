// Event Grid system topic on the Azure subscription (Microsoft.Resources.Subscriptions, location global).
// Its user-assigned identity is used for dead-lettering to blob storage (deadLetterWithResourceIdentity).
// The event subscription itself is stage 2 (infra/eventgrid.bicep), after the function is deployed.
param tags object
param name string
@description('false = the subscription already has a system topic with this name in this resource group.')
param create bool = true
param eventGridIdentityId string

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = if (create) {
  name: name
  location: 'global'
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${eventGridIdentityId}': {}
    }
  }
  properties: {
    source: subscription().id
    topicType: 'Microsoft.Resources.Subscriptions'
  }
}

output name string = name
