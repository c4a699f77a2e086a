#!/usr/bin/env pwsh
# azd postdeploy hook (Windows / PowerShell 7). Same steps as postdeploy.sh: wait for the function
# `on_nsg_change` to be indexed, then deploy infra/eventgrid.bicep (Event Grid subscription to the function).
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$template = Join-Path $PSScriptRoot '..' 'eventgrid.bicep'

if (-not $env:AZURE_RESOURCE_GROUP -and (Get-Command azd -ErrorAction SilentlyContinue)) {
    foreach ($line in (azd env get-values)) {
        if ($line -match '^([A-Za-z_][A-Za-z0-9_]*)="?(.*?)"?$') {
            Set-Item -Path "env:$($Matches[1])" -Value $Matches[2]
        }
    }
}

$required = 'AZURE_RESOURCE_GROUP', 'AZURE_FUNCTION_APP_NAME', 'EVENTGRID_SYSTEM_TOPIC_NAME',
            'STORAGE_ACCOUNT_NAME', 'EVENTGRID_IDENTITY_ID'
foreach ($name in $required) {
    if (-not (Get-Item -Path "env:$name" -ErrorAction SilentlyContinue).Value) {
        Write-Error "postdeploy: $name is not set (run azd provision first, or set it)"
        exit 1
    }
}

$functionName = 'on_nsg_change'
$waitSeconds = if ($env:NSG_GUARD_FUNCTION_WAIT_SECONDS) { [int]$env:NSG_GUARD_FUNCTION_WAIT_SECONDS } else { 300 }
$deadline = (Get-Date).AddSeconds($waitSeconds)
$endpointType = if ($env:NSG_GUARD_EVENTGRID_ENDPOINT_TYPE) { $env:NSG_GUARD_EVENTGRID_ENDPOINT_TYPE } else { 'AzureFunction' }
$deadLetter = if ($env:DEADLETTER_CONTAINER) { $env:DEADLETTER_CONTAINER } else { 'eventgrid-deadletter' }

Write-Host "postdeploy: waiting for function $functionName in $env:AZURE_FUNCTION_APP_NAME (up to ${waitSeconds}s)"
while ($true) {
    az functionapp function show --resource-group $env:AZURE_RESOURCE_GROUP --name $env:AZURE_FUNCTION_APP_NAME `
        --function-name $functionName --query name --output tsv 2>$null | Out-Null
    if ($LASTEXITCODE -eq 0) { break }
    if ((Get-Date) -ge $deadline) {
        Write-Error "postdeploy: $functionName not found after ${waitSeconds}s; is the code deployed (azd deploy)?"
        exit 1
    }
    Start-Sleep -Seconds 10
}

Write-Host 'postdeploy: deploying Event Grid subscription (infra/eventgrid.bicep)'
az deployment group create `
    --resource-group $env:AZURE_RESOURCE_GROUP `
    --name 'nsg-guard-eventgrid' `
    --template-file $template `
    --parameters `
        "systemTopicName=$env:EVENTGRID_SYSTEM_TOPIC_NAME" `
        "functionAppName=$env:AZURE_FUNCTION_APP_NAME" `
        "functionName=$functionName" `
        "storageAccountName=$env:STORAGE_ACCOUNT_NAME" `
        "deadLetterContainerName=$deadLetter" `
        "eventGridIdentityId=$env:EVENTGRID_IDENTITY_ID" `
        "endpointType=$endpointType" `
    --output none
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }

Write-Host 'postdeploy: Event Grid subscription nsg-guard-on-nsg-change is in place'
