"""Structural checks of the deployment: app settings, Event Grid wiring, permissions, hooks, API versions,
the workbook and the KQL. Pure text/JSON/YAML-free checks so they run in the app venv and in the infra venv.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
QUERIES = REPO / "queries"


def read(rel: str) -> str:
    return (REPO / rel).read_text()


def all_bicep() -> dict[str, str]:
    return {str(p.relative_to(REPO)): p.read_text() for p in sorted(INFRA.rglob("*.bicep"))}


# --------------------------------------------------------------------------------------------------
# App settings: every setting the code reads is set by Bicep
# --------------------------------------------------------------------------------------------------

APP_SETTINGS = [
    "NSG_GUARD_AUTH",
    "AZURE_CLIENT_ID",
    "LOGS_INGESTION_ENDPOINT",
    "LOGS_DCR_IMMUTABLE_ID",
    "LOGS_STREAM_NAME",
    "SSH_PORTS",
    "MANAGEMENT_PORTS",
    "REVERT_MODE",
    "REVERT_MAX_CHANGES",
    "REVERT_MAX_NSGS_PER_RUN",
    "REVERT_MAX_NSGS_PER_WINDOW",
    "REVERT_WINDOW_SECONDS",
    "REVERT_PORT_KINDS",
    "EXEMPT_TAG",
    "OWNER_TAG",
    "SWEEP_SCHEDULE",
    "OUTBOX_SCHEDULE",
    "SWEEP_SUBSCRIPTIONS",
    "SWEEP_MANAGEMENT_GROUPS",
    "OUTBOX_BLOB_ENDPOINT",
    "OUTBOX_CONTAINER",
    "DEADLETTER_CONTAINER",
]
HOST_SETTINGS = [
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
]

DEFAULTS = {  # param in main.bicep -> documented default of the app setting
    "managementPorts": "'3389,5985,5986,23'",
    "revertMode": "'off'",
    "revertMaxChanges": "10",
    "revertMaxNsgsPerRun": "25",
    "revertMaxNsgsPerWindow": "100",
    "revertWindowSeconds": "3600",
    "revertPortKinds": "'ssh'",
    "exemptTag": "'nsg-guard-exempt'",
    "ownerTag": "'owner'",
    "sweepSchedule": "'0 0 2 * * *'",
    "outboxSchedule": "'0 */5 * * * *'",
    "sshPorts": "''",
    "sweepSubscriptions": "''",
    "sweepManagementGroups": "''",
}


def test_every_app_setting_the_code_reads_is_set():
    main = read("infra/main.bicep")
    block = main[main.index("appSettings: {") :]
    block = block[: block.index("\n    }\n")]
    for name in APP_SETTINGS:
        assert re.search(rf"^\s+{name}: ", block, re.M), name
    fa = read("infra/modules/functionapp.bicep")
    for name in HOST_SETTINGS:
        assert re.search(rf"^\s+{name}: ", fa, re.M), name
    assert "AzureWebJobsStorage__credential: 'managedidentity'" in fa
    assert "'ClientId=${identityClientId};Authorization=AAD'" in fa
    assert "NSG_GUARD_AUTH: 'managed-identity'" in main
    assert "LOGS_STREAM_NAME: findingsSchema.stream" in main
    assert (
        "OUTBOX_CONTAINER: outboxContainerName" in main
        and "var outboxContainerName = 'nsg-guard-outbox'" in main
    )
    assert "var deadLetterContainerName = 'eventgrid-deadletter'" in main
    # Flex Consumption rejects these as app settings (runtime comes from functionAppConfig).
    for forbidden in ("FUNCTIONS_WORKER_RUNTIME:", "FUNCTIONS_EXTENSION_VERSION:", "AzureWebJobsStorage:"):
        assert forbidden not in fa and forbidden not in main


@pytest.mark.parametrize(("param", "default"), sorted(DEFAULTS.items()))
def test_setting_defaults_match_the_app_contract(param, default):
    main = read("infra/main.bicep")
    m = re.search(rf"^param {param} \w+ = (.+)$", main, re.M)
    assert m, param
    assert m.group(1).strip() == default


def test_every_setting_is_documented():
    doc = read("docs/deploy.md")
    for name in APP_SETTINGS + HOST_SETTINGS:
        assert f"`{name}`" in doc, name


def test_flex_consumption_python_311_with_user_assigned_identity():
    fa = read("infra/modules/functionapp.bicep")
    assert "name: 'FC1'" in fa and "tier: 'FlexConsumption'" in fa
    assert re.search(r"runtime: \{\s*name: 'python'\s*version: '3\.11'", fa)
    assert "type: 'UserAssigned'" in fa
    assert "type: 'UserAssignedIdentity'" in fa  # deployment container auth
    assert "kind: 'functionapp,linux'" in fa


def test_storage_is_entra_only():
    st = read("infra/modules/storage.bicep")
    assert "allowSharedKeyAccess: false" in st
    assert "allowBlobPublicAccess: false" in st
    for path, text in all_bicep().items():
        # no list* call at all: the WebHook key is read by the postdeploy hook with retries (issue 12.11)
        assert "listKeys(" not in text, path
        assert "AccountKey=" not in text


def test_local_auth_disabled_on_monitoring():
    mon = read("infra/modules/monitoring.bicep")
    assert "disableLocalAuth: true" in mon
    assert "DisableLocalAuth: true" in mon


# --------------------------------------------------------------------------------------------------
# Event Grid
# --------------------------------------------------------------------------------------------------


def test_event_subscription_targets_the_function_with_the_nsg_filter():
    eg = read("infra/eventgrid.bicep")
    assert "endpointType: 'AzureFunction'" in eg
    assert "param endpointType string = 'AzureFunction'" in eg
    choose = "destination: endpointType == 'AzureFunction' ? azureFunctionDestination : webHookDestination"
    assert choose in eg
    assert "/runtime/webhooks/eventgrid?functionName=${functionName}&code=" in eg
    assert "param functionName string = 'on_nsg_change'" in eg
    assert "resourceId: '${site.id}/functions/${functionName}'" in eg
    for op in (
        "Microsoft.Network/networkSecurityGroups/write",
        "Microsoft.Network/networkSecurityGroups/delete",
        "Microsoft.Network/networkSecurityGroups/securityRules/write",
        "Microsoft.Network/networkSecurityGroups/securityRules/delete",
    ):
        assert f"'{op}'" in eg, op
    assert "operatorType: 'StringIn'" in eg and "key: 'data.operationName'" in eg
    assert "'Microsoft.Resources.ResourceWriteSuccess'" in eg
    assert "'Microsoft.Resources.ResourceDeleteSuccess'" in eg
    assert "retryPolicy:" in eg and "maxDeliveryAttempts" in eg
    # issue 12.7: a second subscription for Tags API writes on NSGs
    assert "values: [\n            'Microsoft.Resources/tags/write'\n          ]" in eg
    assert "operatorType: 'StringContains'\n          key: 'data.resourceUri'" in eg
    assert "'/providers/Microsoft.Network/networkSecurityGroups/'" in eg
    assert "name: '${eventSubscriptionName}-tags'" in eg and "name: eventSubscriptionName" in eg
    assert "deadLetterWithResourceIdentity:" in eg and "deadLetterDestination:" in eg
    assert "endpointType: 'StorageBlob'" in eg
    assert "scope: resourceGroup(appResourceGroup)" in eg  # the topic may live in another group
    # issue 12.1: a reused topic is updated in place: its identities and tags kept, our dead-letter identity added
    module = read("infra/modules/eventgrid-topic.bicep")
    assert "userAssignedIdentities: union(create ? {} : existingUserAssignedIdentities, {" in module
    assert "'${eventGridIdentityId}': {}" in module
    assert "type: keepsSystemAssigned ? 'SystemAssigned, UserAssigned' : 'UserAssigned'" in module
    assert "tags: create ? tags : existingTags" in module and " if (create)" not in module
    topic = read("infra/modules/eventgrid-topic.bicep")
    assert "topicType: 'Microsoft.Resources.Subscriptions'" in topic
    assert "location: 'global'" in topic
    assert "source: subscription().id" in topic


def test_event_grid_identity_can_write_only_the_dead_letter_container():
    st = read("infra/modules/storage.bicep")
    m = re.search(r"resource eventGridDeadLetterWriter [^\n]+\n(.*?)\n}", st, re.S)
    assert m
    assert "scope: deadLetterContainer" in m.group(1)
    assert "storageBlobDataContributor" in m.group(1)


# --------------------------------------------------------------------------------------------------
# Permissions
# --------------------------------------------------------------------------------------------------

ROLE_FILE = json.loads(read("infra/role/actions.json"))
READ_ACTIONS = set(ROLE_FILE["read"])
ENFORCE_ACTIONS = set(ROLE_FILE["enforce"])


def test_custom_role_is_exactly_the_documented_actions():
    role = read("infra/modules/role.bicep")
    assert "var roleActions = loadJsonContent('../role/actions.json')" in role
    assert "var readActions = roleActions.read" in role and "var enforceActions = roleActions.enforce" in role
    assert "actions: enableEnforce ? concat(readActions, enforceActions) : readActions" in role
    assert "*" not in "".join(READ_ACTIONS | ENFORCE_ACTIONS)
    assert "Microsoft.Network/networkSecurityGroups/write" not in READ_ACTIONS | ENFORCE_ACTIONS
    assert set(ROLE_FILE["why"]) == READ_ACTIONS | ENFORCE_ACTIONS  # each action says why it is there
    # issue 12.4: the role can poll its own long-running writes and rewrite rules that reference an ASG
    assert {"Microsoft.Network/locations/operations/read", "Microsoft.Network/locations/operationResults/read",
            "Microsoft.Network/applicationSecurityGroups/joinNetworkSecurityRule/action"} <= ENFORCE_ACTIONS
    doc = read("docs/deploy.md")
    assert "## What the deployment creates and what it needs" in doc
    for action in READ_ACTIONS | ENFORCE_ACTIONS:
        (line,) = [x for x in doc.splitlines() if x.startswith(f"| `{action}` |")]
        granted = "read (always)" if action in READ_ACTIONS else "enforce only"
        why = ROLE_FILE["why"][action].removeprefix("enforce only: ")
        assert line == f"| `{action}` | {granted} | {why} |", action
        if "MachineLearningServices" in action:  # the Azure ML lens also explains its actions in docs/aml.md
            assert f"`{action}`" in read("docs/aml.md"), action


def test_data_plane_roles_are_scoped_to_resources_not_the_subscription():
    assignments = 0
    for path, text in all_bicep().items():
        for m in re.finditer(
            r"resource \w+ 'Microsoft.Authorization/roleAssignments@[^']+' = (?:if \([^)]*\) )?\{(.*?)\n}",
            text,
            re.S,
        ):
            assignments += 1
            body = m.group(1)
            if path.endswith("role.bicep"):
                assert "roleDefinitionId: role.id" in body  # the custom role, at the subscription
            else:
                assert re.search(r"scope: \w+", body), (path, body)
            assert "principalType: 'ServicePrincipal'" in body
    assert assignments == 6


def test_enforce_mode_needs_enable_enforce():
    main = read("infra/main.bicep")
    assert (
        "var effectiveRevertMode = (revertMode == 'enforce' && !enableEnforce) ? 'dry-run' : revertMode"
        in main
    )
    assert "REVERT_MODE: effectiveRevertMode" in main
    assert "param enableEnforce bool = false" in main


# --------------------------------------------------------------------------------------------------
# azd: azure.yaml, parameters, hooks
# --------------------------------------------------------------------------------------------------


def test_azure_yaml_wires_the_service_and_the_hooks():
    y = read("azure.yaml")
    assert re.search(
        r"^services:\n  nsg-guard:\n    project: \.\n    language: python\n    host: function", y, re.M
    )
    assert "'azd-service-name': 'nsg-guard'" in read("infra/modules/functionapp.bicep")
    for hook in ("preprovision", "postdeploy", "predown"):
        assert f"  {hook}:\n    posix:\n      shell: sh\n      run: ./infra/hooks/{hook}.sh" in y, hook
        assert f"    windows:\n      shell: sh\n      run: ./infra/hooks/{hook}.sh" in y, hook
        assert os.access(INFRA / "hooks" / f"{hook}.sh", os.X_OK)
    assert re.search(r"^infra:\n  provider: bicep\n  path: infra\n  module: main", y, re.M)


def test_hooks_pass_exactly_the_stage2_parameters_from_stage1_outputs():
    eg = read("infra/eventgrid.bicep")
    params = set(re.findall(r"^param (\w+) ", eg, re.M))
    required = {p for p in params if not re.search(rf"^param {p} \w+ = ", eg, re.M)}
    main_outputs = set(re.findall(r"^output (\w+) ", read("infra/main.bicep"), re.M))
    text = read("infra/hooks/postdeploy.sh")
    passed = set(re.findall(r'(\w+)="?\$', text[text.index("--parameters") :]))
    assert required <= passed, required - passed
    assert passed <= params, passed - params
    assert "on_nsg_change" in text
    for hook in ("postdeploy.sh", "predown.sh", "common.sh"):
        text = read(f"infra/hooks/{hook}")
        for env in re.findall(r"\$\{?([A-Z][A-Z0-9_]+)\b", text):
            if env.startswith("NSG_GUARD_"):
                continue
            assert env in main_outputs, (hook, env)


def test_policy_and_event_subscription_names_are_unique_per_environment():
    policy = read("infra/modules/policy.bicep")
    assert "name: 'nsg-guard-deny-internet-ssh-${nameSuffix}'" in policy
    assert "name: 'nsg-guard-internet-ssh-${nameSuffix}'" in policy
    main = read("infra/main.bicep")
    assert "nameSuffix: resourceToken" in main
    assert "var eventSubscriptionName = take('nsg-guard-${environmentName}', 58)" in main
    assert "scope: resourceGroup(topicResourceGroup)" in main


def test_parameters_file_covers_azd_variables():
    p = json.loads(read("infra/main.parameters.json"))["parameters"]
    assert p["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert p["location"]["value"] == "${AZURE_LOCATION}"
    main = read("infra/main.bicep")
    for name in p:
        assert re.search(rf"^param {name} ", main, re.M), name


# --------------------------------------------------------------------------------------------------
# API versions (each checked against the Bicep resource reference; see docs/deploy.md)
# --------------------------------------------------------------------------------------------------

API_VERSIONS = {
    "Microsoft.Resources/resourceGroups": "2024-03-01",
    "Microsoft.ManagedIdentity/userAssignedIdentities": "2023-01-31",
    "Microsoft.Storage/storageAccounts": "2023-05-01",
    "Microsoft.Storage/storageAccounts/blobServices": "2023-05-01",
    "Microsoft.Storage/storageAccounts/queueServices": "2023-05-01",
    "Microsoft.Storage/storageAccounts/queueServices/queues": "2023-05-01",
    "Microsoft.Storage/storageAccounts/blobServices/containers": "2023-05-01",
    "Microsoft.Authorization/roleAssignments": "2022-04-01",
    "Microsoft.Authorization/roleDefinitions": "2022-04-01",
    "Microsoft.Authorization/policyDefinitions": "2023-04-01",
    "Microsoft.Authorization/policyAssignments": "2024-04-01",
    "Microsoft.OperationalInsights/workspaces": "2022-10-01",
    "Microsoft.OperationalInsights/workspaces/tables": "2022-10-01",
    "Microsoft.Insights/components": "2020-02-02",
    "Microsoft.Insights/dataCollectionRules": "2023-03-11",
    "Microsoft.Insights/actionGroups": "2023-01-01",
    "Microsoft.Insights/scheduledQueryRules": "2023-12-01",
    "Microsoft.Insights/workbooks": "2023-06-01",
    "Microsoft.Web/serverfarms": "2024-04-01",
    "Microsoft.Web/sites": "2024-04-01",
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies": "2023-12-01",
    "Microsoft.EventGrid/systemTopics": "2022-06-15",
    "Microsoft.EventGrid/systemTopics/eventSubscriptions": "2022-06-15",
}


def test_api_versions_are_the_verified_ones():
    seen = {}
    for path, text in all_bicep().items():
        for rtype, ver in re.findall(r"resource \w+ '([\w./]+)@([\w-]+)'", text):
            assert API_VERSIONS.get(rtype) == ver, (path, rtype, ver)
            seen[rtype] = ver
    assert set(seen) == set(API_VERSIONS)


def test_checkov_skips_carry_a_reason():
    for path, text in all_bicep().items():
        for m in re.finditer(r"checkov:skip=([A-Z0-9_]+)(:?)(.*)", text):
            assert m.group(2) == ":" and len(m.group(3).strip()) >= 40, (path, m.group(1))
        assert "#checkov" not in text, f"{path}: '#' is not a Bicep comment, use // checkov:skip="


# --------------------------------------------------------------------------------------------------
# Workbook and KQL
# --------------------------------------------------------------------------------------------------


def _load_build():
    spec = importlib.util.spec_from_file_location("nsg_guard_workbook_build", INFRA / "workbook" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_workbook_is_built_from_the_queries():
    build = _load_build()
    committed = (INFRA / "workbook" / "nsg-guard.workbook.json").read_text()
    assert committed == build.render(), "run: python infra/workbook/build.py"
    wb = json.loads(committed)
    assert wb["version"] == "Notebook/1.0"
    queries = [i["content"]["query"] for i in wb["items"] if i["type"] == 3]
    for file, *_ in build.PANELS:
        assert (QUERIES / file).read_text().strip() + "\n" in queries
    assert "loadTextContent('../workbook/nsg-guard.workbook.json')" in read("infra/modules/workbook.bicep")


KPI_FILES = {
    "compliance_over_time.kql",
    "open_findings_by_severity.kql",
    "open_findings_by_owner.kql",
    "open_findings_by_subscription.kql",
    "mttr.kql",
    "reverts.kql",
    "top_actors_port22.kql",
    "exempt_findings_by_severity.kql",
    "exemptions_in_force.kql",
    "aml_compute_compliance.kql",
    "aml_mttr.kql",
    "aml_failed_ssh_logins.kql",
    "aml_bruteforce_alerts.kql",
}
ALERT_FILES = {
    "alert_new_high_critical.kql",
    "alert_revert_failed.kql",
    "alert_sweep_failed.kql",
    "alert_sweep_missing.kql",
    "alert_new_exemption.kql",
    "alert_exemption_expiring.kql",
}


def test_each_kpi_and_alert_has_its_query_file():
    files = {p.name for p in QUERIES.glob("*.kql")}
    assert files == KPI_FILES | ALERT_FILES
    alerts = read("infra/modules/alerts.bicep")
    for f in ALERT_FILES:
        assert f"loadTextContent('../../queries/{f}')" in alerts, f
    assert alerts.count("kind: 'LogAlert'") == 1 and "for r in rules" in alerts


# Names a query may compute; anything else capitalised must be a column of the schema file.
COMPUTED = {
    "NsgKey",
    "OpenedAt",
    "EvalAt",
    "RowAt",
    "ResolvedAt",
    "HoursToRemediate",
    "Resolved",
    "MttrHours",
    "P50Hours",
    "P90Hours",
    "Rank",
    "Nsgs",
    "Compliant",
    "CompliancePercent",
    "Sweeps",
    "OpenFindings",
    "Remediations",
    "Findings",
    "LastSeen",
    "Failures",
    "ALERT",
    "KPI",
    "RowId",
    "ExemptionId",  # exemptions: Details.exemption.* projected
    "Approver",
    "ExpiresOn",
    "Ticket",
    "RunId",
    "ExemptFindings",
    "Rules",
}


AML_COMPUTED = {"Computes", "Critical", "OpenedAt", "ComputeKey", "RowAt", "ResolvedAt", "HoursToRemediate", "Day",
                "FailedLogins", "Measured", "ResourceKey", "AlertTypes", "AlertSeverities", "Severities", "Alerts"}


@pytest.mark.parametrize("name", sorted(KPI_FILES | ALERT_FILES))
def test_queries_use_only_schema_columns(name):
    schema = json.loads(read("shared/schema/findings_table.json"))
    columns = {c["name"] for c in schema["columns"]}
    # The Azure ML KPIs also read the workspace's Syslog and SecurityAlert tables (infra/kql/workspace_tables.json).
    workspace = json.loads(read("infra/kql/workspace_tables.json"))["tables"]
    columns |= {t["table"] for t in workspace} | {c["name"] for t in workspace for c in t["columns"]} | AML_COMPUTED
    text = (QUERIES / name).read_text()
    code = "\n".join(line.split("//")[0] for line in text.splitlines())
    code = re.sub(r'"[^"]*"', '""', code)  # string literals ("Open", "high", ...) are values, not columns
    assert "NsgGuardFindings_CL" in code
    idents = set(re.findall(r"\b([A-Z][A-Za-z0-9]+)\b", code)) - {"NsgGuardFindings_CL"}
    unknown = idents - columns - COMPUTED
    assert not unknown, unknown
    assert (
        "summarize arg_max(TimeGenerated, *) by RowId" in code
        or "distinct FindingId" in code
        or name == "alert_sweep_missing.kql"
    ), "dedupe on RowId"
