// KPI workbook. serializedData is generated from queries/*.kql by infra/workbook/build.py.
param location string
param tags object
param workspaceId string

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, 'nsg-guard-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'NSG Guard KPIs'
    category: 'workbook'
    sourceId: workspaceId
    version: 'Notebook/1.0'
    serializedData: replace(loadTextContent('../workbook/nsg-guard.workbook.json'), '__WORKSPACE_ID__', workspaceId)
  }
}

output workbookId string = workbook.id
