"""Issue 12.4 and 12.8: the app runs with exactly the custom role's actions, and every action is needed.

The ARM stand-in reads the action list from infra/role/actions.json (the file infra/modules/role.bicep loads)
and refuses anything outside it with 403 AuthorizationFailed, including the long-running operation polls.
Resource Graph, like Azure, returns only the rows the caller may read. RBAC propagation after a deployment is
modelled by a delay during which the principal is refused everything.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from localazure.rbac import role_actions
from localazure.server import LocalAzure
from shared.app.config import Settings
from shared.app.sweep import run_sweep
from shared.azure.credentials import make_credential
from shared.azure.network import AzureNetwork
from shared.azure.wiring import build_sweep_deps, event_deps
from shared.core.errors import InputError
from tests.eventfactory import function_event
from tests.integration.conftest import Guard, local_env
from tests.nsgfactory import nsg, nsg_id, rule

RG = "rg1"
NSG = "app-nsg"
NSG_ID = nsg_id(NSG, RG)
SUB = NSG_ID.split("/")[2]
ASG = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/applicationSecurityGroups/web"
ROLE = role_actions(enforce=True)


@pytest.fixture
def app(guard: Guard, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Guard]:
    def configure(actions: tuple[str, ...] = ROLE, mode: str = "enforce", delay_s: float = 0.0, **env: str) -> Guard:
        guard.azure.rbac.restrict(guard.azure.token, actions, object_id="app-principal", delay_s=delay_s)
        monkeypatch.setenv("REVERT_MODE", mode)
        monkeypatch.setenv("REVERT_STRATEGIES", "insert-deny")  # scenarios may opt in to narrow
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        event_deps.cache_clear()
        return guard

    return configure


def remediation(guard: Guard) -> dict[str, Any]:
    """The revert's result row (the write-ahead ``planned`` row comes first, docs/revert.md)."""
    (row,) = [r for r in guard.rows(RecordType="remediation") if r["Result"] != "planned"]
    return row


def deliver(guard: Guard, rules: list, name: str = "AllowSSH") -> None:
    guard.azure.seed_nsg(nsg(rules, name=NSG))
    guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, name))


def event_read(guard: Guard) -> bool:
    deliver(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    # the event's own finding (the revert's re-evaluation adds rows after it)
    rows = guard.rows(RecordType="finding")
    return bool(rows) and rows[0]["Status"] == "Open"


def revert_insert_deny(guard: Guard) -> bool:  # PUT of a new rule, polled at locations/operations
    deliver(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    return remediation(guard)["Result"] == "verified"


def revert_narrow_asg_rule(guard: Guard) -> bool:  # PUT of a rule that references an ASG
    os.environ["REVERT_STRATEGIES"] = "narrow"  # opt-in strategy (the default only adds denies)
    event_deps.cache_clear()
    deliver(guard, [rule("AllowSSH", 100, "22", "0.0.0.0/0", nsg=NSG, dest_asgs=[ASG]),
                    rule("DenyWeb", 101, "80", "*", access="Deny", nsg=NSG)])
    row = remediation(guard)
    return (row["Details"].get("strategy"), row["Result"]) == ("narrow-sources", "verified")


def revert_delete(guard: Guard) -> bool:  # DELETE, polled at locations/operations and operationResults
    os.environ["REVERT_STRATEGIES"] = "narrow"  # opt-in: narrowing Internet to nothing deletes the rule
    event_deps.cache_clear()
    deliver(guard, [rule("AllowSSH", 100, "22", "Internet", nsg=NSG),
                    rule("DenyWeb", 101, "80", "*", access="Deny", nsg=NSG)])
    return remediation(guard)["Result"] == "verified"


def event_exemption(guard: Guard) -> bool:  # the NSG's policy exemptions, listed over ARM (docs/exemptions.md)
    from tests.exemptionfactory import seed_exemption

    guard.azure.seed_nsg(nsg([rule("AllowSSH", 300, "22", "*", nsg=NSG)], name=NSG))
    seed_exemption(guard.azure, NSG_ID, ["AllowSSH"])
    guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    return [r["Status"] for r in guard.rows(RecordType="finding")] == ["Exempt"]


def sweep_public_nic(guard: Guard) -> bool:  # Resource Graph: NSGs and the NICs with a public IP
    azure = guard.azure
    nic_id = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/networkInterfaces/vm1"
    body = nsg([rule("AllowSSH", 300, "22", "*", nsg=NSG)], name=NSG)
    body["properties"]["networkInterfaces"] = [{"id": nic_id}]
    azure.seed_nsg(body)
    azure.seed_nic({"id": nic_id, "name": "vm1", "type": "Microsoft.Network/networkInterfaces", "properties": {
        "networkSecurityGroup": {"id": NSG_ID},
        "ipConfigurations": [{"name": "ip1", "properties": {
            "subnet": {"id": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/"
                             "virtualNetworks/v/subnets/s1"},
            "publicIPAddress": {"id": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/"
                                      "publicIPAddresses/vm1-ip"}}}]}})
    result = run_sweep(build_sweep_deps(Settings.from_env(local_env(azure))))
    findings = guard.rows(RecordType="finding")
    return not result.failures and [f["Severity"] for f in findings] == ["critical"]


def sweep_ml_computes(guard: Guard) -> bool:  # the Azure ML lens: workspaces, computes, a cluster's nodes
    from localazure.aml_estate import seed_ml_estate

    seed_ml_estate(guard.azure)
    result = run_sweep(build_sweep_deps(Settings.from_env(local_env(guard.azure))))
    computes = {r["ComputeName"]: r for r in guard.rows(RecordType="compute")}
    return (not result.failures and set(computes) == {"ci-bob-notebook", "train-a100", "ci-chen-nlp"}
            and computes["train-a100"]["Details"]["sshPorts"] == [22, 50000, 50001])  # NAT ports from listNodes


def event_compute_write(guard: Guard) -> bool:  # the compute an event names (ARM GET), its NSGs (Resource Graph)
    from localazure.aml_estate import seed_ml_estate
    from tests.integration.test_aml_lens import ADA, ada_instance, open_ssh_to_everyone, put_compute

    seed_ml_estate(guard.azure)
    open_ssh_to_everyone(guard.azure)
    guard.azure.add_principal("ada-token", ADA)
    assert put_compute(guard.azure, ada_instance(), "ada-token").status_code == 201
    guard.deliver_published()
    rows = guard.rows(RecordType="compute")
    return [(r["Status"], r.get("Severity")) for r in rows] == [("NonCompliant", "critical")]


SCENARIOS = {f.__name__: f for f in (event_read, event_exemption, revert_insert_deny,
                                     revert_narrow_asg_rule, revert_delete,
                                     sweep_public_nic, sweep_ml_computes, event_compute_write)}
#: the scenario that breaks without each action of the role (every action must be here: none is spare)
NEEDS = {
    "Microsoft.Network/networkSecurityGroups/read": "event_read",
    "Microsoft.Network/networkInterfaces/read": "sweep_public_nic",
    "Microsoft.ResourceGraph/resources/read": "sweep_public_nic",
    "Microsoft.Authorization/policyExemptions/read": "event_exemption",
    "Microsoft.Network/networkSecurityGroups/securityRules/read": "revert_insert_deny",
    "Microsoft.Network/networkSecurityGroups/securityRules/write": "revert_insert_deny",
    "Microsoft.Network/networkSecurityGroups/securityRules/delete": "revert_delete",
    "Microsoft.Network/locations/operations/read": "revert_insert_deny",
    "Microsoft.Network/locations/operationResults/read": "revert_delete",
    "Microsoft.Network/applicationSecurityGroups/joinNetworkSecurityRule/action": "revert_narrow_asg_rule",
    "Microsoft.MachineLearningServices/workspaces/read": "sweep_ml_computes",
    "Microsoft.MachineLearningServices/workspaces/computes/read": "event_compute_write",
    "Microsoft.MachineLearningServices/workspaces/computes/listNodes/action": "sweep_ml_computes",
}
#: read actions that Resource Graph enforces by hiding rows of that type instead of refusing the query
HIDDEN_BY_RESOURCE_GRAPH = {"Microsoft.Network/networkInterfaces/read",
                            "Microsoft.MachineLearningServices/workspaces/read"}


def test_role_file_lists_each_needed_action_once():
    assert sorted(ROLE) == sorted(NEEDS) and len(set(ROLE)) == len(ROLE)
    assert not any("*" in a for a in ROLE)
    assert "Microsoft.Network/networkSecurityGroups/write" not in ROLE  # never the whole-NSG PUT


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_app_works_with_exactly_the_custom_role(app, scenario):
    guard = app()
    assert SCENARIOS[scenario](guard)
    assert guard.azure.rbac.refused == []


@pytest.mark.parametrize("action", sorted(NEEDS))
def test_each_action_of_the_role_is_needed(app, action):
    guard = app(tuple(a for a in ROLE if a != action))
    assert not SCENARIOS[NEEDS[action]](guard)
    if action not in HIDDEN_BY_RESOURCE_GRAPH:
        assert action in [a for a, _ in guard.azure.rbac.refused]


#: infra/modules/role.bicep before issue 12 (read side + enforce side)
ROLE_BEFORE_ISSUE_12 = (
    "Microsoft.Network/networkSecurityGroups/read", "Microsoft.Network/networkSecurityGroups/securityRules/read",
    "Microsoft.Network/networkSecurityGroups/defaultSecurityRules/read", "Microsoft.Network/networkInterfaces/read",
    "Microsoft.Network/publicIPAddresses/read", "Microsoft.Network/virtualNetworks/read",
    "Microsoft.Network/virtualNetworks/subnets/read", "Microsoft.ResourceGraph/resources/read",
    "Microsoft.Resources/subscriptions/read", "Microsoft.Network/networkSecurityGroups/securityRules/write",
    "Microsoft.Network/networkSecurityGroups/securityRules/delete",
)


@pytest.mark.parametrize("scenario", ["revert_insert_deny", "revert_narrow_asg_rule", "revert_delete"])
def test_the_role_before_issue_12_could_not_finish_its_own_writes(app, scenario):
    # with today's exemption read (issue 11): without it no revert is attempted at all
    guard = app((*ROLE_BEFORE_ISSUE_12, "Microsoft.Authorization/policyExemptions/read"))
    assert not SCENARIOS[scenario](guard)
    refused = {a for a, _ in guard.azure.rbac.refused}
    assert refused & {"Microsoft.Network/locations/operations/read",
                      "Microsoft.Network/applicationSecurityGroups/joinNetworkSecurityRule/action"}


def test_poll_refusal_has_azures_authorization_failed_body(local_azure: LocalAzure):
    local_azure.seed_nsg(nsg([], name=NSG))
    token = "writer-token"
    local_azure.add_principal(token, __import__("localazure.eventgrid", fromlist=["LOCAL_DEVELOPER"]).LOCAL_DEVELOPER)
    local_azure.rbac.restrict(token, ["Microsoft.Network/networkSecurityGroups/securityRules/write"],
                              object_id="0000-app")
    from azure.core.exceptions import HttpResponseError

    from localazure.auth import StaticTokenCredential

    client = local_azure.network_client(SUB, StaticTokenCredential(token))
    body = {"properties": rule("x", 500, "22", "10.0.0.0/8", nsg=NSG)["properties"]}
    with pytest.raises(HttpResponseError) as info:
        client.security_rules.begin_create_or_update(RG, NSG, "x", body).result()
    assert info.value.status_code == 403
    error = info.value.response.json()["error"]
    assert error["code"] == "AuthorizationFailed"
    assert error["message"].startswith("The client '0000-app' with object id '0000-app' does not have "
                                       "authorization to perform action 'Microsoft.Network/locations/operations/read'")
    assert "x" in {r["name"] for r in local_azure.get_nsg(NSG_ID)["properties"]["securityRules"]}  # the write landed


def test_nsg_get_is_retried_while_the_role_assignment_propagates(app):
    guard = app(mode="off", delay_s=1.5, AUTHZ_RETRY_SECONDS="10")
    assert event_read(guard)
    assert guard.azure.count("arm.get", status=403) >= 1
    assert event_deps().reader.authz_retries >= 1


def test_a_lasting_403_is_still_a_permanent_error_after_the_bounded_retry(local_azure: LocalAzure):
    local_azure.seed_nsg(nsg([], name=NSG))
    local_azure.rbac.restrict(local_azure.token, ["Microsoft.ResourceGraph/resources/read"])
    settings = Settings.from_env(local_env(local_azure, AUTHZ_RETRY_SECONDS="1"))
    waits: list[float] = []
    network = AzureNetwork(settings, make_credential(settings), sleep=lambda s: (waits.append(s),
                                                                                 __import__("time").sleep(s)))
    with pytest.raises(InputError, match="403 AuthorizationFailed"):
        network.get_nsg(NSG_ID)
    assert waits and sum(waits) <= 1.01 and network.authz_retries == len(waits)
