#!/bin/sh
# azd postdeploy hook (also usable by hand after `az deployment sub create` + a code deploy):
# waits until the function `on_nsg_change` is listed (asking the app to sync its triggers to ARM meanwhile),
# then deploys infra/eventgrid.bicep into the system topic's resource group, which creates the Event Grid
# subscriptions (AzureFunction endpoint, or WebHook with the eventgrid_extension key read here with retries)
# with identity-based dead-lettering.
# Needs: az CLI signed in (checked); env vars from azd (.azure/<env>/.env) or exported by hand:
#   AZURE_SUBSCRIPTION_ID AZURE_RESOURCE_GROUP AZURE_FUNCTION_APP_NAME EVENTGRID_SYSTEM_TOPIC_NAME
#   EVENTGRID_SYSTEM_TOPIC_RESOURCE_GROUP EVENTGRID_SUBSCRIPTION_NAME STORAGE_ACCOUNT_NAME EVENTGRID_IDENTITY_ID
#   [DEADLETTER_CONTAINER] [NSG_GUARD_FUNCTION_WAIT_SECONDS] [NSG_GUARD_POLL_SECONDS]
#   [NSG_GUARD_EVENTGRID_ENDPOINT_TYPE=AzureFunction|WebHook]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
template="$here/../eventgrid.bicep"
. "$here/common.sh"
load_azd_env

for v in AZURE_SUBSCRIPTION_ID AZURE_RESOURCE_GROUP AZURE_FUNCTION_APP_NAME EVENTGRID_SYSTEM_TOPIC_NAME \
         EVENTGRID_SYSTEM_TOPIC_RESOURCE_GROUP EVENTGRID_SUBSCRIPTION_NAME STORAGE_ACCOUNT_NAME EVENTGRID_IDENTITY_ID; do
  eval "val=\${$v:-}"
  [ -n "$val" ] || fail postdeploy "$v is not set (run azd provision first, or export it)"
done
require_az postdeploy
sub="$AZURE_SUBSCRIPTION_ID"

function_name=on_nsg_change
wait_seconds=${NSG_GUARD_FUNCTION_WAIT_SECONDS:-300}
poll=${NSG_GUARD_POLL_SECONDS:-10}
endpoint_type=${NSG_GUARD_EVENTGRID_ENDPOINT_TYPE:-AzureFunction}
deadline=$(( $(date +%s) + wait_seconds ))
site="/subscriptions/$sub/resourceGroups/$AZURE_RESOURCE_GROUP/providers/Microsoft.Web/sites/$AZURE_FUNCTION_APP_NAME"

echo "postdeploy: waiting for function $function_name in $AZURE_FUNCTION_APP_NAME (up to ${wait_seconds}s)"
until az functionapp function show --subscription "$sub" \
        --resource-group "$AZURE_RESOURCE_GROUP" \
        --name "$AZURE_FUNCTION_APP_NAME" \
        --function-name "$function_name" \
        --query name --output tsv >/dev/null 2>&1; do
  # Flex Consumption: ARM lists the new functions only after the triggers are synced.
  az rest --subscription "$sub" --method post --url "$site/host/default/sync?api-version=2022-03-01" \
    --output none >/dev/null 2>&1 || true
  if [ "$(date +%s)" -ge "$deadline" ]; then
    fail postdeploy "$function_name is not listed on $AZURE_FUNCTION_APP_NAME after ${wait_seconds}s of host/default/sync; check that azd deploy succeeded and that the app starts (Application Insights traces: 'Worker failed to index functions' means an import error)"
  fi
  sleep "$poll"
done

key=""
if [ "$endpoint_type" = "WebHook" ]; then
  # The eventgrid_extension system key appears only once the host has started with the extension: retry.
  echo "postdeploy: reading the eventgrid_extension system key (WebHook endpoint)"
  until key=$(az functionapp keys list --subscription "$sub" --resource-group "$AZURE_RESOURCE_GROUP" \
                --name "$AZURE_FUNCTION_APP_NAME" --query "systemKeys.eventgrid_extension" --output tsv 2>/dev/null) \
        && [ -n "$key" ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      fail postdeploy "no eventgrid_extension system key on $AZURE_FUNCTION_APP_NAME after ${wait_seconds}s; use the default AzureFunction endpoint type, or rerun once the app has started"
    fi
    sleep "$poll"
  done
fi

echo "postdeploy: deploying Event Grid subscriptions (infra/eventgrid.bicep) on topic $EVENTGRID_SYSTEM_TOPIC_NAME in $EVENTGRID_SYSTEM_TOPIC_RESOURCE_GROUP"
az deployment group create --subscription "$sub" \
  --resource-group "$EVENTGRID_SYSTEM_TOPIC_RESOURCE_GROUP" \
  --name "nsg-guard-eventgrid-$EVENTGRID_SUBSCRIPTION_NAME" \
  --template-file "$template" \
  --parameters \
      systemTopicName="$EVENTGRID_SYSTEM_TOPIC_NAME" \
      appResourceGroup="$AZURE_RESOURCE_GROUP" \
      functionAppName="$AZURE_FUNCTION_APP_NAME" \
      functionName="$function_name" \
      storageAccountName="$STORAGE_ACCOUNT_NAME" \
      deadLetterContainerName="${DEADLETTER_CONTAINER:-eventgrid-deadletter}" \
      eventGridIdentityId="$EVENTGRID_IDENTITY_ID" \
      eventSubscriptionName="$EVENTGRID_SUBSCRIPTION_NAME" \
      endpointType="$endpoint_type" \
      eventGridExtensionKey="$key" \
  --output none \
  || fail postdeploy "the Event Grid deployment failed (az deployment group show -g $EVENTGRID_SYSTEM_TOPIC_RESOURCE_GROUP -n nsg-guard-eventgrid-$EVENTGRID_SUBSCRIPTION_NAME)"

echo "postdeploy: Event Grid subscriptions $EVENTGRID_SUBSCRIPTION_NAME and $EVENTGRID_SUBSCRIPTION_NAME-tags are in place"
