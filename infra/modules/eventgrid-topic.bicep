// Event Grid system topic on the Azure subscription (Microsoft.Resources.Subscriptions, location global).
// Azure allows one system topic per source: when the subscription already has one (other tooling, another
// environment) the preprovision hook finds it, in any resource group, and this module is deployed into that
// group to *update* it: same source and type, its existing identities and tags kept, our dead-letter identity
// added (deadLetterWithResourceIdentity uses an identity set on the topic itself).
// The event subscriptions are stage 2 (infra/eventgrid.bicep), after the function is deployed.
param tags object
param name string
@description('false = the topic exists already (found by infra/hooks/preprovision.sh); keep its tags and identities.')
param create bool = true
@description('Reused topic only: its current identity type (None, SystemAssigned, UserAssigned, "SystemAssigned, UserAssigned").')
param existingIdentityType string = 'None'
@description('Reused topic only: its current user-assigned identities (resource id -> {}).')
param existingUserAssignedIdentities object = {}
@description('Reused topic only: its current tags.')
param existingTags object = {}
param eventGridIdentityId string

var keepsSystemAssigned = !create && contains(toLower(existingIdentityType), 'systemassigned')

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: 'global'
  tags: create ? tags : existingTags
  identity: {
    type: keepsSystemAssigned ? 'SystemAssigned, UserAssigned' : 'UserAssigned'
    userAssignedIdentities: union(create ? {} : existingUserAssignedIdentities, {
      '${eventGridIdentityId}': {}
    })
  }
  properties: {
    source: subscription().id
    topicType: 'Microsoft.Resources.Subscriptions'
  }
}

output name string = topic.name
output resourceGroup string = resourceGroup().name
