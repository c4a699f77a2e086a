// Optional (deploySyslogDcr): a data collection rule for sshd's auth/authpriv Syslog on Linux VMs with the
// Azure Monitor Agent, feeding the "failed SSH logins" KPI (queries/aml_failed_ssh_logins.kql). Associate VMs
// with it (Azure Policy "Configure Linux machines to be associated with a Data Collection Rule", or a
// dataCollectionRuleAssociation per VM). AML computes cannot run the agent; the KPI lists them as not measured.
param location string
param tags object
param dcrName string
param workspaceId string

resource syslogDcr 'Microsoft.Insights/dataCollectionRules@2023-03-11' = {
  name: dcrName
  location: location
  tags: tags
  kind: 'Linux'
  properties: {
    description: 'NSG Guard: sshd authentication messages (auth, authpriv; Info and up) for the failed SSH logins KPI.'
    dataSources: {
      syslog: [
        {
          name: 'sshdAuth'
          streams: [
            'Microsoft-Syslog'
          ]
          facilityNames: [
            'auth'
            'authpriv'
          ]
          logLevels: [
            'Info'
            'Notice'
            'Warning'
            'Error'
            'Critical'
            'Alert'
            'Emergency'
          ]
        }
      ]
    }
    destinations: {
      logAnalytics: [
        {
          name: 'workspace'
          workspaceResourceId: workspaceId
        }
      ]
    }
    dataFlows: [
      {
        streams: [
          'Microsoft-Syslog'
        ]
        destinations: [
          'workspace'
        ]
      }
    ]
  }
}

output dcrId string = syslogDcr.id
