#!/bin/sh
# azd predown hook: `azd down` deletes resource groups only. Before it does, remove what this environment
# created outside them: the Event Grid subscriptions (they live on the system topic, which may be a reused
# topic in another resource group), the policy assignment and definition, and the custom role's assignment
# and definition (all at the subscription). Each is deleted by the exact id this deployment output; a thing
# already gone is not an error. A reused system topic itself is left in place (it is not ours).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
load_azd_env
require_az predown
sub="$AZURE_SUBSCRIPTION_ID"
failed=0

# remove WHAT ID: az resource delete by exact id; "not found" means already gone (not an error).
remove() {
  err=$(mktemp)
  if az resource delete --subscription "$sub" --ids "$2" --output none 2>"$err"; then
    echo "predown: removed $1 $2"
  elif grep -qiE "not ?found|does not exist|could not be found" "$err"; then
    echo "predown: $1 $2 was already gone"
  else
    echo "predown: could not remove $1 $2: $(head -c 300 "$err")" >&2
    failed=1
  fi
  rm -f "$err"
}

if [ -n "${EVENTGRID_SUBSCRIPTION_NAME:-}" ] && [ -n "${EVENTGRID_SYSTEM_TOPIC_NAME:-}" ]; then
  topic="/subscriptions/$sub/resourceGroups/${EVENTGRID_SYSTEM_TOPIC_RESOURCE_GROUP:-$AZURE_RESOURCE_GROUP}/providers/Microsoft.EventGrid/systemTopics/$EVENTGRID_SYSTEM_TOPIC_NAME"
  remove "event subscription" "$topic/eventSubscriptions/$EVENTGRID_SUBSCRIPTION_NAME"
  remove "event subscription" "$topic/eventSubscriptions/$EVENTGRID_SUBSCRIPTION_NAME-tags"
fi
# Assignments before definitions: ARM refuses to delete a definition that is still assigned.
for pair in "policy assignment:${POLICY_ASSIGNMENT_ID:-}" "policy definition:${POLICY_DEFINITION_ID:-}" \
            "role assignment:${ROLE_ASSIGNMENT_ID:-}" "role definition:${ROLE_DEFINITION_ID:-}"; do
  if [ -n "${pair#*:}" ]; then remove "${pair%%:*}" "${pair#*:}"; fi
done
[ "$failed" -eq 0 ] || fail predown "some subscription-level resources remain (listed above); remove them by hand (docs/deploy.md, Removing it)"
echo "predown: subscription-level resources of this environment are gone; azd down removes the resource group"
