// Least-privilege custom role for the NSG Guard app identity, assigned at the subscription.
// Management-group option: deploy this module with targetScope 'managementGroup' semantics by adding the
// group to assignableScopes and assigning there (see README.md, "Deploying to Azure", "Sweeping management groups").
targetScope = 'subscription'

param environmentName string
param enableEnforce bool
param principalId string

// Read side: everything the evaluation, the sweep and effective-exposure context need.
var readActions = [
  'Microsoft.Network/networkSecurityGroups/read'
  'Microsoft.Network/networkSecurityGroups/securityRules/read'
  'Microsoft.Network/networkSecurityGroups/defaultSecurityRules/read'
  'Microsoft.Network/networkInterfaces/read'
  'Microsoft.Network/publicIPAddresses/read'
  'Microsoft.Network/virtualNetworks/read'
  'Microsoft.Network/virtualNetworks/subnets/read'
  'Microsoft.ResourceGraph/resources/read'
  'Microsoft.Resources/subscriptions/read'
  // Azure ML lens: workspaces (Resource Graph), computes (ARM list and GET), cluster node NAT ports (listNodes).
  'Microsoft.MachineLearningServices/workspaces/read'
  'Microsoft.MachineLearningServices/workspaces/computes/read'
  'Microsoft.MachineLearningServices/workspaces/computes/listNodes/action'
]

// Write side: only with enableEnforce (REVERT_MODE=enforce). Rule-level PUT/DELETE only; the NSG itself
// (Microsoft.Network/networkSecurityGroups/write) is never granted.
var enforceActions = [
  'Microsoft.Network/networkSecurityGroups/securityRules/write'
  'Microsoft.Network/networkSecurityGroups/securityRules/delete'
]

var roleName = guid(subscription().id, environmentName, 'nsg-guard-app-role')

resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: roleName
  properties: {
    // Role names are unique per tenant: qualify with the environment and the subscription.
    roleName: 'NSG Guard app (${environmentName}, ${take(subscription().subscriptionId, 8)})'
    description: enableEnforce ? 'NSG Guard: read NSGs and their context, revert internet-exposed security rules.' : 'NSG Guard: read NSGs and their context (detect only).'
    type: 'CustomRole'
    assignableScopes: [
      subscription().id
    ]
    permissions: [
      {
        actions: enableEnforce ? concat(readActions, enforceActions) : readActions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, roleName)
  properties: {
    roleDefinitionId: role.id
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output roleDefinitionId string = role.id
output actions array = enableEnforce ? concat(readActions, enforceActions) : readActions
