// Azure Policy guardrail: definition + assignment at the subscription. The rule lives in
// infra/policy/deny-internet-ssh.json (tested by tests/infra/test_infra_policy.py). Bicep escapes the
// "[...]" policy expressions of loaded JSON, so ARM passes them to Azure Policy unevaluated.
targetScope = 'subscription'

@allowed(['Audit', 'Deny', 'Disabled'])
param effect string = 'Audit'
@description('Watched TCP ports as strings, e.g. [\'22\', \'3389\'].')
param ports array = ['22']
param publicSources array = ['*', 'Any', 'Internet', '0.0.0.0/0', '::/0']
@description('Makes the definition and assignment names unique per environment (two environments in one subscription must not overwrite each other).')
param nameSuffix string

var doc = loadJsonContent('../policy/deny-internet-ssh.json')
// Never hand Azure Policy an empty or padded entry: int('') in the rule is an implicit deny of every write.
var cleanPorts = filter(ports, p => !empty(trim(string(p))))

resource definition 'Microsoft.Authorization/policyDefinitions@2023-04-01' = {
  name: 'nsg-guard-deny-internet-ssh-${nameSuffix}'
  properties: {
    policyType: 'Custom'
    mode: doc.mode
    displayName: doc.displayName
    description: doc.description
    metadata: doc.metadata
    parameters: doc.parameters
    policyRule: doc.policyRule
  }
}

resource assignment 'Microsoft.Authorization/policyAssignments@2024-04-01' = {
  name: 'nsg-guard-internet-ssh-${nameSuffix}'
  properties: {
    displayName: 'NSG Guard: no SSH/management ports from the internet'
    description: 'Assigned by NSG Guard (infra/modules/policy.bicep).'
    policyDefinitionId: definition.id
    enforcementMode: 'Default'
    parameters: {
      effect: { value: effect }
      ports: { value: cleanPorts }
      publicSources: { value: publicSources }
    }
    nonComplianceMessages: [
      {
        message: 'Inbound TCP to SSH/management ports from the internet is not allowed. Use Bastion, JIT or a trusted source range.'
      }
    ]
  }
}

// Exemptions (docs/exemptions.md) point at this assignment: it is deployed even with effect 'Audit' (no deny),
// and NSG Guard recognises it by its name, or by EXEMPTION_ASSIGNMENT_ID when that app setting is set.
output exemptionAssignmentName string = assignment.name
output definitionId string = definition.id
output assignmentId string = assignment.id
