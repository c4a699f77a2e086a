// Least-privilege custom role for the NSG Guard app identity, assigned at the subscription.
// Management-group option: deploy this module with targetScope 'managementGroup' semantics by adding the
// group to assignableScopes and assigning there (see docs/deploy.md, "Sweeping management groups").
targetScope = 'subscription'

param environmentName string
param enableEnforce bool
param principalId string

// The actions live in infra/role/actions.json, with why each is needed; the ARM stand-in (localazure/rbac.py)
// reads the same file and refuses anything outside it, so a missing or spare action fails a test.
var roleActions = loadJsonContent('../role/actions.json')

// Read side: the event path's NSG GET and the sweep's Resource Graph queries.
var readActions = roleActions.read

// Write side: only with enableEnforce (REVERT_MODE=enforce). Rule-level PUT/DELETE, the long-running operation
// polls, and joining an application security group a rewritten rule references; the NSG itself
// (Microsoft.Network/networkSecurityGroups/write) is never granted.
var enforceActions = roleActions.enforce

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
output roleAssignmentId string = assignment.id
output actions array = enableEnforce ? concat(readActions, enforceActions) : readActions
