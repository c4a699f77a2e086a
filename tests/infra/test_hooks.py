"""The azd hooks (infra/hooks/*.sh) run against a stand-in Azure CLI (tests/infra/fakecli/az, azd).

Issue 12.1 (reuse an existing system topic), 12.2 (az sign-in, --subscription everywhere, host sync while
waiting, clear failure), 12.5 (parameters checked with the app's parser), 12.9 (predown removes what azd down
leaves), 12.11 (the WebHook key is read with retries, not by listKeys during the deployment).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOOKS = REPO / "infra" / "hooks"
FAKE = Path(__file__).resolve().parent / "fakecli"
SUB = "5f1c7a52-8e0b-4c39-9a47-2f6d0e3b9c11"
OTHER_SUB = "0a0a0a0a-0000-4000-8000-000000000000"

pytestmark = pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX sh")

OUTPUTS = {  # what `azd provision` put in the azd environment (outputs of infra/main.bicep)
    "AZURE_SUBSCRIPTION_ID": SUB,
    "AZURE_RESOURCE_GROUP": "rg-prod",
    "AZURE_FUNCTION_APP_NAME": "func-nsgguard-abc",
    "EVENTGRID_SYSTEM_TOPIC_NAME": "security-tooling-topic",
    "EVENTGRID_SYSTEM_TOPIC_RESOURCE_GROUP": "rg-security",
    "EVENTGRID_SUBSCRIPTION_NAME": "nsg-guard-prod",
    "STORAGE_ACCOUNT_NAME": "stnsgabc",
    "EVENTGRID_IDENTITY_ID": f"/subscriptions/{SUB}/resourceGroups/rg-prod/providers/"
                             "Microsoft.ManagedIdentity/userAssignedIdentities/id-nsgguard-eg-abc",
    "ROLE_DEFINITION_ID": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/1111",
    "ROLE_ASSIGNMENT_ID": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/2222",
    "POLICY_DEFINITION_ID": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/policyDefinitions/"
                            "nsg-guard-deny-internet-ssh-abc",
    "POLICY_ASSIGNMENT_ID": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/policyAssignments/"
                            "nsg-guard-internet-ssh-abc",
}
TOPIC = f"/subscriptions/{SUB}/resourceGroups/rg-security/providers/Microsoft.EventGrid/systemTopics/" \
        "security-tooling-topic"


def run(hook: str, tmp_path: Path, state: dict, **env: str) -> tuple[subprocess.CompletedProcess, dict]:
    path = tmp_path / "az-state.json"
    path.write_text(json.dumps({"subscription": SUB, "default": OTHER_SUB, **state}))
    full = {"PATH": f"{FAKE}{os.pathsep}{os.environ['PATH']}", "FAKE_AZ_STATE": str(path),
            "HOME": str(tmp_path), "NSG_GUARD_POLL_SECONDS": "0", **env}
    proc = subprocess.run(["sh", str(HOOKS / hook)], cwd=REPO, env=full, capture_output=True, text=True,
                          timeout=60)
    return proc, json.loads(path.read_text())


def assert_every_az_call_names_the_subscription(state: dict) -> None:
    assert state["calls"], "no az call"
    for call in state["calls"]:
        assert call[call.index("--subscription") + 1] == SUB, call


# --- preprovision ------------------------------------------------------------------------------------

def topic(sub: str = SUB, rg: str = "rg-security", kind: str = "Microsoft.Resources.Subscriptions", **extra):
    return {"name": "security-tooling-topic", "resourceGroup": rg, "topicType": kind,
            "source": f"/subscriptions/{sub}", **extra}


def test_preprovision_reuses_the_subscriptions_topic_in_another_resource_group(tmp_path):
    existing = topic(source=f"/SUBSCRIPTIONS/{SUB.upper()}", tags={"owner": "secops"},
                     identity={"type": "SystemAssigned, UserAssigned",
                               "userAssignedIdentities": {"/subscriptions/x/id-defender": {"principalId": "p"}}})
    existing["source"] = f"/SUBSCRIPTIONS/{SUB.upper()}"
    proc, state = run("preprovision.sh", tmp_path, {"topics": [topic(OTHER_SUB), existing]},
                      AZURE_SUBSCRIPTION_ID=SUB)
    assert proc.returncode == 0, proc.stderr
    env = state["azd_env"]
    assert env["NSG_GUARD_CREATE_SYSTEM_TOPIC"] == "false"
    assert (env["NSG_GUARD_SYSTEM_TOPIC_NAME"], env["NSG_GUARD_SYSTEM_TOPIC_RESOURCE_GROUP"]) == \
        ("security-tooling-topic", "rg-security")
    assert env["NSG_GUARD_SYSTEM_TOPIC_IDENTITY_TYPE"] == "SystemAssigned,UserAssigned"
    assert json.loads(base64.b64decode(env["NSG_GUARD_SYSTEM_TOPIC_IDENTITIES_B64"])) == \
        {"/subscriptions/x/id-defender": {}}
    assert json.loads(base64.b64decode(env["NSG_GUARD_SYSTEM_TOPIC_TAGS_B64"])) == {"owner": "secops"}
    assert_every_az_call_names_the_subscription(state)


@pytest.mark.parametrize("topics", [[], [topic(OTHER_SUB)], [topic(kind="Microsoft.Storage.StorageAccounts")]])
def test_preprovision_creates_a_topic_when_the_subscription_has_none(tmp_path, topics):
    proc, state = run("preprovision.sh", tmp_path, {"topics": topics}, AZURE_SUBSCRIPTION_ID=SUB)
    assert proc.returncode == 0, proc.stderr
    assert state["azd_env"] == {"NSG_GUARD_CREATE_SYSTEM_TOPIC": "true"}


@pytest.mark.parametrize(("params", "message"), [
    ({"NSG_GUARD_SSH_PORTS": "2222,abc"}, "'abc' is not a port number"),
    ({"NSG_GUARD_SSH_PORTS": "22"}, "port 22 is always watched"),
    ({"NSG_GUARD_MANAGEMENT_PORTS": "3389,70000"}, "'70000' is not a port number"),
    ({"NSG_GUARD_SSH_PORTS": "2222", "NSG_GUARD_MANAGEMENT_PORTS": "2222"}, "both as SSH ports and as management"),
    ({"NSG_GUARD_REVERT_MODE": "always"}, "REVERT_MODE='always'"),
])
def test_preprovision_refuses_parameters_the_app_would_refuse(tmp_path, params, message):
    proc, state = run("preprovision.sh", tmp_path, {"topics": []}, AZURE_SUBSCRIPTION_ID=SUB, **params)
    assert proc.returncode != 0 and message in proc.stderr
    assert proc.stderr.startswith("preprovision: invalid settings")
    assert state.get("calls", []) == [] and "azd_env" not in state  # nothing looked up, nothing set


def test_preprovision_accepts_trailing_commas_like_bicep_does(tmp_path):
    proc, _ = run("preprovision.sh", tmp_path, {"topics": []}, AZURE_SUBSCRIPTION_ID=SUB,
                  NSG_GUARD_SSH_PORTS="2222,", NSG_GUARD_MANAGEMENT_PORTS="3389,,5985")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("hook", ["preprovision.sh", "postdeploy.sh", "predown.sh"])
def test_hooks_stop_with_a_clear_message_when_az_is_not_signed_in(tmp_path, hook):
    proc, state = run(hook, tmp_path, {"logged_in": False}, **OUTPUTS)
    assert proc.returncode == 1
    assert f"{hook[:-3]}: az is not signed in to subscription {SUB}" in proc.stderr
    assert "az login" in proc.stderr and len(state["calls"]) == 1


# --- postdeploy --------------------------------------------------------------------------------------

def test_postdeploy_syncs_triggers_until_the_function_is_listed_then_deploys_into_the_topics_group(tmp_path):
    proc, state = run("postdeploy.sh", tmp_path, {"syncs_needed": 2}, **OUTPUTS)
    assert proc.returncode == 0, proc.stderr
    assert state["syncs"] == 2
    assert_every_az_call_names_the_subscription(state)
    (deployment,) = state["deployments"]
    assert deployment["resourceGroup"] == "rg-security"  # the reused topic's group, not the app's
    p = deployment["parameters"]
    assert (p["appResourceGroup"], p["systemTopicName"], p["eventSubscriptionName"]) == \
        ("rg-prod", "security-tooling-topic", "nsg-guard-prod")
    assert p["endpointType"] == "AzureFunction" and p["eventGridExtensionKey"] == ""


def test_postdeploy_fails_with_a_clear_message_when_the_function_never_appears(tmp_path):
    proc, state = run("postdeploy.sh", tmp_path, {"syncs_needed": 10**6}, NSG_GUARD_FUNCTION_WAIT_SECONDS="1",
                      NSG_GUARD_POLL_SECONDS="0.2", **OUTPUTS)
    assert proc.returncode == 1
    assert "postdeploy: on_nsg_change is not listed on func-nsgguard-abc after 1s of host/default/sync" \
        in proc.stderr
    assert state.get("syncs", 0) >= 1 and "deployments" not in state


def test_postdeploy_webhook_reads_the_key_with_retries_instead_of_list_keys(tmp_path):
    proc, state = run("postdeploy.sh", tmp_path, {"key": "k3y", "key_after": 2},
                      NSG_GUARD_EVENTGRID_ENDPOINT_TYPE="WebHook", **OUTPUTS)
    assert proc.returncode == 0, proc.stderr
    assert state["key_reads"] == 3
    (deployment,) = state["deployments"]
    assert deployment["parameters"]["endpointType"] == "WebHook"
    assert deployment["parameters"]["eventGridExtensionKey"] == "k3y"
    assert "k3y" not in proc.stdout + proc.stderr  # never printed


# --- predown -----------------------------------------------------------------------------------------

SUBSCRIPTION_LEVEL = [f"{TOPIC}/eventSubscriptions/nsg-guard-prod", f"{TOPIC}/eventSubscriptions/nsg-guard-prod-tags",
                      OUTPUTS["POLICY_ASSIGNMENT_ID"], OUTPUTS["POLICY_DEFINITION_ID"],
                      OUTPUTS["ROLE_ASSIGNMENT_ID"], OUTPUTS["ROLE_DEFINITION_ID"]]


def test_predown_removes_everything_azd_down_would_leave_behind(tmp_path):
    other = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/someone-elses"
    proc, state = run("predown.sh", tmp_path, {"resources": [*SUBSCRIPTION_LEVEL, TOPIC, other]}, **OUTPUTS)
    assert proc.returncode == 0, proc.stderr
    assert state["resources"] == [TOPIC, other]  # the reused topic and others' things stay
    deleted = [c[c.index("--ids") + 1] for c in state["calls"] if c[:2] == ["resource", "delete"]]
    assert deleted == SUBSCRIPTION_LEVEL  # assignments before definitions
    assert_every_az_call_names_the_subscription(state)


def test_predown_tolerates_what_is_already_gone_and_reports_what_it_could_not_remove(tmp_path):
    proc, state = run("predown.sh", tmp_path, {"resources": SUBSCRIPTION_LEVEL[2:],
                                                "fail_delete": [OUTPUTS["ROLE_DEFINITION_ID"]]}, **OUTPUTS)
    assert proc.returncode == 1
    assert "was already gone" in proc.stdout
    assert f"could not remove role definition {OUTPUTS['ROLE_DEFINITION_ID']}" in proc.stderr
    assert state["resources"] == [OUTPUTS["ROLE_DEFINITION_ID"]]
