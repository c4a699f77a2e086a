# Shared by the azd hooks (sourced, POSIX sh). azd and az sign in separately: every hook checks that az is
# signed in and passes --subscription "$AZURE_SUBSCRIPTION_ID" to every az call (az's own default subscription
# may be another one).

# azd exports the environment's values to hooks; fall back to `azd env get-values` when run by hand.
load_azd_env() {
  if [ -z "${AZURE_SUBSCRIPTION_ID:-}" ] && command -v azd >/dev/null 2>&1; then
    eval "$(azd env get-values)"
  fi
}

# fail HOOK MESSAGE: one clear line on stderr, exit 1.
fail() {
  echo "$1: $2" >&2
  exit 1
}

# require_az HOOK: az is installed and signed in, and AZURE_SUBSCRIPTION_ID is set and visible to it.
require_az() {
  command -v az >/dev/null 2>&1 || fail "$1" "the Azure CLI (az) is not installed; see docs/deploy.md, Prerequisites"
  [ -n "${AZURE_SUBSCRIPTION_ID:-}" ] || fail "$1" "AZURE_SUBSCRIPTION_ID is not set (azd env set AZURE_SUBSCRIPTION_ID <id>)"
  if ! az account show --subscription "$AZURE_SUBSCRIPTION_ID" --query id --output tsv >/dev/null 2>&1; then
    fail "$1" "az is not signed in to subscription $AZURE_SUBSCRIPTION_ID (azd and az sign in separately): run az login, then az account show --subscription $AZURE_SUBSCRIPTION_ID"
  fi
}
