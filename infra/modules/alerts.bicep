// Action group and log search alert rules on NsgGuardFindings_CL. The KQL lives in queries/alert_*.kql.
param location string
param tags object
param actionGroupName string
param workspaceId string
param alertEmails array
@secure()
param alertWebhookUrl string

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'Global'
  tags: tags
  properties: {
    enabled: true
    groupShortName: 'nsgguard'
    emailReceivers: [for (email, i) in alertEmails: {
      name: 'email-${i}'
      emailAddress: email
      useCommonAlertSchema: true
    }]
    webhookReceivers: empty(alertWebhookUrl) ? [] : [
      {
        name: 'webhook'
        serviceUri: alertWebhookUrl
        useCommonAlertSchema: true
      }
    ]
  }
}

var rules = [
  {
    name: 'nsgguard-new-high-critical-finding'
    displayName: 'NSG Guard: new high/critical finding'
    description: 'A high or critical exposure of SSH/management ports was detected (not open in the previous 2 days). Counted once, 10 to 15 minutes after ingestion (lagged window).'
    severity: 1
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    overrideQueryTimeRange: 'P2D'
    query: loadTextContent('../../queries/alert_new_high_critical.kql')
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    name: 'nsgguard-revert-failed'
    displayName: 'NSG Guard: revert failed'
    description: 'An automatic revert of an internet-exposed rule failed; the exposure may still be live.'
    severity: 1
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    overrideQueryTimeRange: 'PT1H'
    query: loadTextContent('../../queries/alert_revert_failed.kql')
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    name: 'nsgguard-sweep-failed'
    displayName: 'NSG Guard: sweep reported failures'
    description: 'The nightly sweep could not evaluate some NSGs or subscriptions.'
    severity: 2
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    overrideQueryTimeRange: 'PT3H'
    query: loadTextContent('../../queries/alert_sweep_failed.kql')
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    name: 'nsgguard-sweep-missing'
    displayName: 'NSG Guard: no sweep in 26 hours'
    description: 'No sweep summary row was ingested in the last 26 hours: the nightly sweep did not run or could not write.'
    severity: 2
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    overrideQueryTimeRange: 'P2D'
    query: loadTextContent('../../queries/alert_sweep_missing.kql')
    operator: 'LessThan'
    threshold: 1
  }
  // --- exemptions (docs/exemptions.md): every new approval is visible, and so is one about to lapse ---
  {
    name: 'nsgguard-new-exemption'
    displayName: 'NSG Guard: new exemption'
    description: 'An NSG Guard exemption (Azure Policy exemption, or a tag exemption / one that exempts nothing) was seen for the first time in 2 days.'
    severity: 3
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    overrideQueryTimeRange: 'P2D'
    query: loadTextContent('../../queries/alert_new_exemption.kql')
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    name: 'nsgguard-exemption-expiring'
    displayName: 'NSG Guard: exemption expires within 7 days'
    description: 'An exemption in force expires within 7 days; after that the finding is Open again and, with REVERT_MODE=enforce, reverted.'
    severity: 3
    evaluationFrequency: 'P1D'
    windowSize: 'P1D'
    overrideQueryTimeRange: 'P2D'
    query: loadTextContent('../../queries/alert_exemption_expiring.kql')
    operator: 'GreaterThan'
    threshold: 0
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for r in rules: {
  name: r.name
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: r.displayName
    description: r.description
    severity: r.severity
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: r.evaluationFrequency
    windowSize: r.windowSize
    overrideQueryTimeRange: r.overrideQueryTimeRange
    criteria: {
      allOf: [
        {
          query: r.query
          timeAggregation: 'Count'
          operator: r.operator
          threshold: r.threshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}]

output actionGroupId string = actionGroup.id
