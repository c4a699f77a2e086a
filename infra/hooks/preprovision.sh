#!/bin/sh
# azd preprovision hook: before infra/main.bicep is deployed,
#   1. checks the port and revert parameters with the app's own settings parser (shared/app/config.py), so a
#      value the app would refuse never reaches the app settings or the Azure Policy assignment;
#   2. looks for the subscription's Event Grid system topic (one per source, in any resource group) and, if
#      there is one, makes this deployment reuse it (azd env: NSG_GUARD_SYSTEM_TOPIC_NAME/_RESOURCE_GROUP,
#      NSG_GUARD_CREATE_SYSTEM_TOPIC=false, and its identities and tags, kept when our identity is added).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
load_azd_env

python=$(command -v python3 || command -v python || true)
[ -n "$python" ] || fail preprovision "python3 is needed to check the parameters"
(cd "$here/../.." && "$python" "$here/check_params.py") || exit 1

require_az preprovision
sub="$AZURE_SUBSCRIPTION_ID"
topics=$(az eventgrid system-topic list --subscription "$sub" --output json) \
  || fail preprovision "could not list Event Grid system topics in subscription $sub"
found=$(printf '%s' "$topics" | "$python" "$here/find_topic.py" "$sub") \
  || fail preprovision "could not read the system topic list"
if [ -z "$found" ]; then
  echo "preprovision: no Event Grid system topic for /subscriptions/$sub yet; one will be created"
  azd env set NSG_GUARD_CREATE_SYSTEM_TOPIC true
  exit 0
fi
# find_topic.py prints: name resource-group identity-type identities-b64 tags-b64
set -- $found
echo "preprovision: reusing Event Grid system topic $1 in resource group $2 (one system topic per subscription)"
azd env set NSG_GUARD_CREATE_SYSTEM_TOPIC false
azd env set NSG_GUARD_SYSTEM_TOPIC_NAME "$1"
azd env set NSG_GUARD_SYSTEM_TOPIC_RESOURCE_GROUP "$2"
azd env set NSG_GUARD_SYSTEM_TOPIC_IDENTITY_TYPE "$3"
azd env set NSG_GUARD_SYSTEM_TOPIC_IDENTITIES_B64 "$4"
azd env set NSG_GUARD_SYSTEM_TOPIC_TAGS_B64 "$5"
