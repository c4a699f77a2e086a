#!/bin/sh
# azd postdeploy hook (also usable by hand after `az deployment sub create` + a code deploy):
# waits until the function `on_nsg_change` is indexed, then deploys infra/eventgrid.bicep, which creates
# the Event Grid subscription (AzureFunction endpoint) with identity-based dead-lettering.
# Needs: az CLI logged in; env vars from azd (.azure/<env>/.env) or exported by hand:
#   AZURE_RESOURCE_GROUP AZURE_FUNCTION_APP_NAME EVENTGRID_SYSTEM_TOPIC_NAME STORAGE_ACCOUNT_NAME
#   EVENTGRID_IDENTITY_ID [DEADLETTER_CONTAINER] [NSG_GUARD_FUNCTION_WAIT_SECONDS]
#   [NSG_GUARD_EVENTGRID_ENDPOINT_TYPE=AzureFunction|WebHook]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
template="$here/../eventgrid.bicep"

# azd exports the environment's values to hooks; fall back to `azd env get-values` when run by hand.
if [ -z "${AZURE_RESOURCE_GROUP:-}" ] && command -v azd >/dev/null 2>&1; then
  eval "$(azd env get-values)"
fi

for v in AZURE_RESOURCE_GROUP AZURE_FUNCTION_APP_NAME EVENTGRID_SYSTEM_TOPIC_NAME STORAGE_ACCOUNT_NAME EVENTGRID_IDENTITY_ID; do
  eval "val=\${$v:-}"
  if [ -z "$val" ]; then
    echo "postdeploy: $v is not set (run azd provision first, or export it)" >&2
    exit 1
  fi
done

function_name=on_nsg_change
wait_seconds=${NSG_GUARD_FUNCTION_WAIT_SECONDS:-300}
deadline=$(( $(date +%s) + wait_seconds ))

echo "postdeploy: waiting for function $function_name in $AZURE_FUNCTION_APP_NAME (up to ${wait_seconds}s)"
until az functionapp function show \
        --resource-group "$AZURE_RESOURCE_GROUP" \
        --name "$AZURE_FUNCTION_APP_NAME" \
        --function-name "$function_name" \
        --query name --output tsv >/dev/null 2>&1; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "postdeploy: $function_name not found after ${wait_seconds}s; is the code deployed (azd deploy)?" >&2
    exit 1
  fi
  sleep 10
done

echo "postdeploy: deploying Event Grid subscription (infra/eventgrid.bicep)"
az deployment group create \
  --resource-group "$AZURE_RESOURCE_GROUP" \
  --name "nsg-guard-eventgrid" \
  --template-file "$template" \
  --parameters \
      systemTopicName="$EVENTGRID_SYSTEM_TOPIC_NAME" \
      functionAppName="$AZURE_FUNCTION_APP_NAME" \
      functionName="$function_name" \
      storageAccountName="$STORAGE_ACCOUNT_NAME" \
      deadLetterContainerName="${DEADLETTER_CONTAINER:-eventgrid-deadletter}" \
      eventGridIdentityId="$EVENTGRID_IDENTITY_ID" \
      endpointType="${NSG_GUARD_EVENTGRID_ENDPOINT_TYPE:-AzureFunction}" \
  --output none

echo "postdeploy: Event Grid subscription nsg-guard-on-nsg-change is in place"
