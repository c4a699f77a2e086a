// NSG Guard — stage 1 (azd provision / az deployment sub create).
// Creates the resource group and everything except the Event Grid event subscription, which needs the
// function `on_nsg_change` to exist and is deployed by the postdeploy hook (infra/eventgrid.bicep).
targetScope = 'subscription'

// ---------------------------------------------------------------------------------------------------
// azd conventions
// ---------------------------------------------------------------------------------------------------
@minLength(1)
@maxLength(64)
@description('azd environment name; used for the resource group name and a unique resource token.')
param environmentName string

@minLength(1)
@description('Region for all regional resources. Must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
@metadata({ azd: { type: 'location' } })
param location string

@description('Resource group name; empty = rg-<environmentName>.')
param resourceGroupName string = ''

// ---------------------------------------------------------------------------------------------------
// Behaviour of the app (become app settings; see docs/deploy.md)
// ---------------------------------------------------------------------------------------------------
@description('Grant the app rule write/delete (the custom role gains securityRules/write and /delete). Required for REVERT_MODE=enforce.')
param enableEnforce bool = false

@allowed(['off', 'dry-run', 'enforce'])
@description('REVERT_MODE. "enforce" only takes effect when enableEnforce is true; otherwise it is lowered to "dry-run".')
param revertMode string = 'off'

@minValue(0)
@description('REVERT_MAX_CHANGES: blast-radius limit per run.')
param revertMaxChanges int = 10

@minValue(1)
@maxValue(10000)
@description('REVERT_MAX_NSGS_PER_RUN: NSGs one sweep may revert, worst first; the rest are held with a skipped row.')
param revertMaxNsgsPerRun int = 25

@minValue(1)
@maxValue(10000)
@description('REVERT_MAX_NSGS_PER_WINDOW: NSGs all revert jobs together may write per rolling window.')
param revertMaxNsgsPerWindow int = 100

@minValue(1)
@maxValue(604740)
@description('REVERT_WINDOW_SECONDS: that rolling window, in seconds.')
param revertWindowSeconds int = 3600

@description('REVERT_PORT_KINDS: comma list of port kinds that may be reverted (ssh, ssh-custom, management).')
param revertPortKinds string = 'ssh'

@description('SSH_PORTS: the organisation\'s own SSH ports, comma list (e.g. "2222"). Empty = none.')
param sshPorts string = ''

@description('MANAGEMENT_PORTS: other management ports, comma list.')
param managementPorts string = '3389,5985,5986,23'

@description('EXEMPT_TAG: NSG tag that marks an accepted exception.')
param exemptTag string = 'nsg-guard-exempt'

@description('OWNER_TAG: NSG tag whose value is reported as the owner.')
param ownerTag string = 'owner'

@description('SWEEP_SCHEDULE: NCRONTAB (6 fields, UTC) of the nightly sweep.')
param sweepSchedule string = '0 0 2 * * *'

@description('OUTBOX_SCHEDULE: NCRONTAB of the outbox retry.')
param outboxSchedule string = '0 */5 * * * *'

@description('SWEEP_SUBSCRIPTIONS: comma list of subscription ids to sweep; empty = all the identity can read.')
param sweepSubscriptions string = ''

@description('SWEEP_MANAGEMENT_GROUPS: comma list of management group ids to sweep (the role must then be assigned at those groups, see docs).')
param sweepManagementGroups string = ''

// ---------------------------------------------------------------------------------------------------
// Platform
// ---------------------------------------------------------------------------------------------------
@description('Log Analytics retention (days) for the workspace and the findings table.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 90

@description('Flex Consumption instance memory (MB).')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Flex Consumption maximum instance count (scale-out cap; also caps concurrent ARM writes during a storm of events).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Email addresses that receive alerts.')
param alertEmails array = []

@secure()
@description('Optional webhook (e.g. Teams/Slack/ITSM) for alerts; empty = none. Secure because such URLs carry a token.')
param alertWebhookUrl string = ''

@description('Deploy the Azure Policy definition and assignment at this subscription.')
param deployPolicy bool = true

@allowed(['Audit', 'Deny', 'Disabled'])
@description('Effect of the policy assignment.')
param policyEffect string = 'Audit'

@description('Deploy the KPI workbook.')
param deployWorkbook bool = true

@description('Name of the Event Grid system topic for this subscription. Azure allows one system topic per source: infra/hooks/preprovision.sh finds an existing one (in any resource group) and sets this, systemTopicResourceGroup and createSystemTopic=false.')
param systemTopicName string = ''

@description('Create the Event Grid system topic (false = reuse systemTopicName in systemTopicResourceGroup).')
param createSystemTopic bool = true

@description('Resource group of a reused system topic; empty = this deployment\'s resource group.')
param systemTopicResourceGroup string = ''

@description('Reused topic only (set by the preprovision hook): its identity type, kept when our identity is added.')
param systemTopicIdentityType string = 'None'

@description('Reused topic only (set by the preprovision hook): base64 of the JSON object of its user-assigned identities, kept.')
param systemTopicIdentitiesB64 string = ''

@description('Reused topic only (set by the preprovision hook): base64 of the JSON object of its tags, kept.')
param systemTopicTagsB64 string = ''

@description('Grant the app identity Storage Queue Data Contributor : the revert queue (nsg-guard-revert) needs it (docs/revert.md).')
param enableQueueAccess bool = true

@description('Deploy a data collection rule for sshd auth/authpriv Syslog (failed SSH logins KPI); associate Linux VMs with it.')
param deploySyslogDcr bool = false

// ---------------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------------
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName, application: 'nsg-guard' }
var rgName = !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
var functionAppName = 'func-nsgguard-${resourceToken}'
var storageAccountName = 'stnsg${resourceToken}'
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'
var outboxContainerName = 'nsg-guard-outbox'
var deadLetterContainerName = 'eventgrid-deadletter'
var topicName = !empty(systemTopicName) ? systemTopicName : 'evgt-nsgguard-${resourceToken}'
var topicResourceGroup = !empty(systemTopicResourceGroup) ? systemTopicResourceGroup : rgName
// Environments may share a reused topic: the event subscription is named per environment.
var eventSubscriptionName = take('nsg-guard-${environmentName}', 58)
var effectiveRevertMode = (revertMode == 'enforce' && !enableEnforce) ? 'dry-run' : revertMode
// Watched ports for the policy: 22 + sshPorts + managementPorts, without empty entries ("2222," or ",,"): Azure
// Policy treats a failed int('') as an implicit deny of unrelated writes. int() makes a non-number fail this
// deployment instead; infra/hooks/preprovision.sh checks both lists with the app's own parser first.
var portEntries = filter(split(replace('${sshPorts},${managementPorts}', ' ', ''), ','), p => !empty(p))
var portNumbers = [for p in portEntries: int(p)]
var portStrings = [for n in portNumbers: string(n)]
var policyPorts = union(['22'], portStrings)

// The table/DCR schema: one JSON file, shared with the app code (shared/core/findings.py) and its tests.
var findingsSchema = loadJsonContent('../shared/schema/findings_table.json')

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: rgName
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    location: location
    tags: tags
    appIdentityName: 'id-nsgguard-${resourceToken}'
    eventGridIdentityName: 'id-nsgguard-eg-${resourceToken}'
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    location: location
    tags: tags
    name: storageAccountName
    deploymentContainerName: deploymentContainerName
    outboxContainerName: outboxContainerName
    deadLetterContainerName: deadLetterContainerName
    appPrincipalId: identity.outputs.appPrincipalId
    eventGridPrincipalId: identity.outputs.eventGridPrincipalId
    enableQueueAccess: enableQueueAccess
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    workspaceName: 'log-nsgguard-${resourceToken}'
    appInsightsName: 'appi-nsgguard-${resourceToken}'
    dcrName: 'dcr-nsgguard-${resourceToken}'
    retentionInDays: logRetentionDays
    findingsSchema: findingsSchema
    appPrincipalId: identity.outputs.appPrincipalId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    location: location
    tags: tags
    name: functionAppName
    planName: 'plan-nsgguard-${resourceToken}'
    identityId: identity.outputs.appIdentityId
    identityClientId: identity.outputs.appClientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    appSettings: {
      NSG_GUARD_AUTH: 'managed-identity'
      AZURE_CLIENT_ID: identity.outputs.appClientId
      LOGS_INGESTION_ENDPOINT: monitoring.outputs.logsIngestionEndpoint
      LOGS_DCR_IMMUTABLE_ID: monitoring.outputs.dcrImmutableId
      LOGS_STREAM_NAME: findingsSchema.stream
      SSH_PORTS: sshPorts
      MANAGEMENT_PORTS: managementPorts
      REVERT_MODE: effectiveRevertMode
      REVERT_MAX_CHANGES: string(revertMaxChanges)
      REVERT_MAX_NSGS_PER_RUN: string(revertMaxNsgsPerRun)
      REVERT_MAX_NSGS_PER_WINDOW: string(revertMaxNsgsPerWindow)
      REVERT_WINDOW_SECONDS: string(revertWindowSeconds)
      REVERT_PORT_KINDS: revertPortKinds
      EXEMPT_TAG: exemptTag
      OWNER_TAG: ownerTag
      SWEEP_SCHEDULE: sweepSchedule
      OUTBOX_SCHEDULE: outboxSchedule
      SWEEP_SUBSCRIPTIONS: sweepSubscriptions
      SWEEP_MANAGEMENT_GROUPS: sweepManagementGroups
      OUTBOX_BLOB_ENDPOINT: storage.outputs.blobEndpoint
      OUTBOX_CONTAINER: outboxContainerName
      DEADLETTER_CONTAINER: deadLetterContainerName
      // Revert queue: identity-based connection of the revert_job trigger, also read by the app.
      REVERT_QUEUE__queueServiceUri: storage.outputs.queueEndpoint
      REVERT_QUEUE__credential: 'managedidentity'
      REVERT_QUEUE__clientId: identity.outputs.appClientId
      REVERT_STRATEGIES: 'insert-deny'
    }
  }
}

module systemTopic 'modules/eventgrid-topic.bicep' = {
  name: 'eventgrid-topic-${resourceToken}'
  scope: resourceGroup(topicResourceGroup)
  dependsOn: [
    rg
  ]
  params: {
    tags: tags
    name: topicName
    create: createSystemTopic
    existingIdentityType: systemTopicIdentityType
    existingUserAssignedIdentities: empty(systemTopicIdentitiesB64) ? {} : json(base64ToString(systemTopicIdentitiesB64))
    existingTags: empty(systemTopicTagsB64) ? {} : json(base64ToString(systemTopicTagsB64))
    eventGridIdentityId: identity.outputs.eventGridIdentityId
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    actionGroupName: 'ag-nsgguard-${resourceToken}'
    workspaceId: monitoring.outputs.workspaceId
    alertEmails: alertEmails
    alertWebhookUrl: alertWebhookUrl
  }
}

module syslogDcr 'modules/syslog-dcr.bicep' = if (deploySyslogDcr) {
  name: 'syslog-dcr'
  scope: rg
  params: {
    location: location
    tags: tags
    dcrName: 'dcr-nsgguard-syslog-${resourceToken}'
    workspaceId: monitoring.outputs.workspaceId
  }
}

module workbook 'modules/workbook.bicep' = if (deployWorkbook) {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    workspaceId: monitoring.outputs.workspaceId
  }
}

// Least-privilege custom role for the app identity, assigned at this subscription.
module appRole 'modules/role.bicep' = {
  name: 'nsg-guard-role'
  params: {
    environmentName: environmentName
    enableEnforce: enableEnforce
    principalId: identity.outputs.appPrincipalId
  }
}

module policy 'modules/policy.bicep' = if (deployPolicy) {
  name: 'nsg-guard-policy'
  params: {
    effect: policyEffect
    ports: policyPorts
    nameSuffix: resourceToken
  }
}

// ---------------------------------------------------------------------------------------------------
// Outputs (azd stores them in .azure/<env>/.env; the postdeploy hook reads them)
// ---------------------------------------------------------------------------------------------------
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_CLIENT_ID string = identity.outputs.appClientId
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output OUTBOX_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output DEADLETTER_CONTAINER string = deadLetterContainerName
output EVENTGRID_SYSTEM_TOPIC_NAME string = topicName
output EVENTGRID_SYSTEM_TOPIC_RESOURCE_GROUP string = topicResourceGroup
output EVENTGRID_SUBSCRIPTION_NAME string = eventSubscriptionName
output AZURE_SUBSCRIPTION_ID string = subscription().subscriptionId
output ROLE_DEFINITION_ID string = appRole.outputs.roleDefinitionId
output ROLE_ASSIGNMENT_ID string = appRole.outputs.roleAssignmentId
output POLICY_DEFINITION_ID string = deployPolicy ? policy.outputs.definitionId : ''
output POLICY_ASSIGNMENT_ID string = deployPolicy ? policy.outputs.assignmentId : ''
output EVENTGRID_IDENTITY_ID string = identity.outputs.eventGridIdentityId
output LOGS_INGESTION_ENDPOINT string = monitoring.outputs.logsIngestionEndpoint
output LOGS_DCR_IMMUTABLE_ID string = monitoring.outputs.dcrImmutableId
output LOGS_STREAM_NAME string = findingsSchema.stream
output LOG_ANALYTICS_WORKSPACE_ID string = monitoring.outputs.workspaceId
output REVERT_MODE_EFFECTIVE string = effectiveRevertMode
