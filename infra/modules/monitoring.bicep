// Log Analytics workspace, Application Insights, the findings custom table and the Data Collection Rule
// (kind Direct: it carries its own logsIngestion endpoint, no Data Collection Endpoint needed).
// Both the table columns and the DCR stream declaration are generated from shared/schema/findings_table.json
// (passed in as findingsSchema by main.bicep, which loads it with loadJsonContent).
param location string
param tags object
param workspaceName string
param appInsightsName string
param dcrName string
param retentionInDays int
@description('Parsed shared/schema/findings_table.json: { table, stream, columns: [{ name, type, description }] }.')
param findingsSchema object
param appPrincipalId string

var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

// Column type of the schema file -> Log Analytics table column type (ColumnTypeEnum:
// string, int, long, real, boolean, dateTime, guid, dynamic).
var tableTypes = {
  string: 'string'
  int: 'int'
  long: 'long'
  real: 'real'
  boolean: 'boolean'
  datetime: 'dateTime'
  guid: 'guid'
  dynamic: 'dynamic'
}

// Column type of the schema file -> DCR stream column type (string, int, long, real, boolean, datetime,
// dynamic). DCR streams have no guid type: a guid column arrives as a string and is cast by the table.
var streamTypes = {
  string: 'string'
  int: 'int'
  long: 'long'
  real: 'real'
  boolean: 'boolean'
  datetime: 'datetime'
  guid: 'string'
  dynamic: 'dynamic'
}

var tableColumns = [for c in findingsSchema.columns: {
  name: c.name
  type: tableTypes[c.type]
  description: c.description
}]

var streamColumns = [for c in findingsSchema.columns: {
  name: c.name
  type: streamTypes[c.type]
}]

var outputStream = 'Custom-${findingsSchema.table}'

resource workspace 'Microsoft.OperationalInsights/workspaces@2022-10-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      disableLocalAuth: true
      enableLogAccessUsingOnlyResourcePermissions: true
    }
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

resource findingsTable 'Microsoft.OperationalInsights/workspaces/tables@2022-10-01' = {
  parent: workspace
  name: findingsSchema.table
  properties: {
    plan: 'Analytics'
    retentionInDays: retentionInDays
    schema: {
      name: findingsSchema.table
      description: findingsSchema.description
      columns: tableColumns
    }
  }
}

resource dcr 'Microsoft.Insights/dataCollectionRules@2023-03-11' = {
  name: dcrName
  location: location
  tags: tags
  kind: 'Direct'
  properties: {
    description: 'NSG Guard findings via the Logs Ingestion API'
    streamDeclarations: {
      '${findingsSchema.stream}': {
        columns: streamColumns
      }
    }
    destinations: {
      logAnalytics: [
        {
          name: 'findingsWorkspace'
          workspaceResourceId: workspace.id
        }
      ]
    }
    dataFlows: [
      {
        streams: [
          findingsSchema.stream
        ]
        destinations: [
          'findingsWorkspace'
        ]
        transformKql: 'source'
        outputStream: outputStream
      }
    ]
  }
  dependsOn: [
    findingsTable
  ]
}

// The app identity may send rows through this DCR only.
resource dcrPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(dcr.id, appPrincipalId, monitoringMetricsPublisher)
  scope: dcr
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// App Insights has local (key) auth disabled: the host sends telemetry with the app identity.
resource appInsightsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output workspaceId string = workspace.id
output workspaceName string = workspace.name
output appInsightsName string = appInsights.name
output appInsightsConnectionString string = appInsights.properties.ConnectionString
output dcrId string = dcr.id
output dcrImmutableId string = dcr.properties.immutableId
output logsIngestionEndpoint string = dcr.properties.endpoints.logsIngestion
