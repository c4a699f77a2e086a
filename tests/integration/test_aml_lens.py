"""The Azure ML lens end to end against the stand-ins: workspaces from Resource Graph, computes over ARM
(azure-core pipeline, nextLink paging, listNodes), the sweep's compute rows, compute write/delete events."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from azure.functions.timer import TimerRequest

from localazure.aml_estate import (
    AML_NSG,
    NOTEBOOKS_NSG,
    NOTEBOOKS_SUBNET,
    compute_instance,
    nsg_id,
    seed_ml_estate,
    workspace_path,
)
from localazure.estate import ML_SUB
from localazure.eventgrid import Principal
from localazure.server import LocalAzure
from shared.app.config import Settings
from shared.azure.aml import AzureMl
from shared.azure.credentials import make_credential
from shared.core.errors import InputError, NsgNotFound
from shared.core.inventory import Scope
from tests.integration.conftest import Guard, function, local_env

ADA = Principal(upn="ada.okafor@contoso.example", object_id="5e1f0b2a-0000-4000-8000-000000000001",
                name="Ada Okafor", ip="198.51.100.23")


@pytest.fixture
def ml(local_azure: LocalAzure) -> AzureMl:
    settings = Settings.from_env(local_env(local_azure))
    return AzureMl(settings, make_credential(settings), own_graph=True)


def open_ssh_to_everyone(azure: LocalAzure) -> None:
    """A legacy rule from before NSG Guard: TCP 22 from * on the notebooks subnet's NSG (no event)."""
    def edit(body: dict[str, Any]) -> None:
        body["properties"]["securityRules"].append({"name": "AllowSSH", "properties": {
            "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "22", "sourceAddressPrefix": "*",
            "destinationAddressPrefix": "*", "access": "Allow", "priority": 310, "direction": "Inbound"}})
    azure.update_nsg(nsg_id(NOTEBOOKS_NSG), edit)


def ada_instance(**kw: Any) -> dict[str, Any]:
    return compute_instance("ws-vision", "ci-ada-gpu", owner="ada.okafor@contoso.example",
                            owner_oid=ADA.object_id, ssh="Enabled", public_ip="20.61.12.34", **kw)


def put_compute(azure: LocalAzure, body: dict[str, Any], token: str) -> requests.Response:
    return requests.put(f"{azure.url}{body['id']}?api-version=2025-12-01", json=body, verify=azure.ca_path,
                        headers={"Authorization": f"Bearer {token}"}, timeout=10)


# --- inventory -----------------------------------------------------------------------------------------------

def test_inventory_pages_computes_with_next_link(local_azure: LocalAzure, ml: AzureMl):
    seed_ml_estate(local_azure, nsgs=False)
    for i in range(5):
        local_azure.aml.seed_compute(compute_instance("ws-vision", f"ci-{i}", owner=f"u{i}@contoso.example"))
    local_azure.aml.page_size = 2
    pages = list(ml.compute_pages(workspace_path("ws-vision")))
    names = [c["name"] for page in pages for c in page]
    assert [len(p) for p in pages] == [2, 2, 2, 1]  # 7 computes, every one exactly once
    assert sorted(names) == sorted(["ci-bob-notebook", "train-a100", *(f"ci-{i}" for i in range(5))])
    assert local_azure.count("aml", method="GET") == 4
    workspaces = [w["name"] for page in ml.workspace_pages(Scope())
                  for w in page]
    assert sorted(workspaces) == ["ws-nlp", "ws-vision"]


def test_list_nodes_is_paged_too(local_azure: LocalAzure, ml: AzureMl):
    ids = seed_ml_estate(local_azure, nsgs=False)
    local_azure.aml.page_size = 1
    nodes = ml.list_nodes(ids["train-a100"])["nodes"]
    assert [n["port"] for n in nodes] == [50000, 50001]
    assert local_azure.count("aml", method="POST") == 2


def test_missing_workspace_is_an_arm_404_and_a_next_link_off_the_endpoint_is_refused(local_azure: LocalAzure,
                                                                                   ml: AzureMl):
    with pytest.raises(NsgNotFound, match="not found"):
        list(ml.compute_pages(workspace_path("nope")))
    with pytest.raises(InputError, match="refusing to follow"):
        ml._call("GET", "https://evil.example/subscriptions/x", "test")


# --- the sweep -------------------------------------------------------------------------------------------------

def test_sweep_writes_one_compute_row_per_compute_and_flags_the_exposed_instance_critical(
        local_azure: LocalAzure, guard: Guard):
    ids = seed_ml_estate(local_azure)
    open_ssh_to_everyone(local_azure)
    local_azure.aml.seed_compute(ada_instance())
    function("nightly_sweep")(TimerRequest(past_due=False))

    computes = {r["ComputeName"]: r for r in guard.rows(RecordType="compute")}
    assert set(computes) == {"ci-ada-gpu", "ci-bob-notebook", "train-a100", "ci-chen-nlp"}
    ada = computes["ci-ada-gpu"]
    assert (ada["Status"], ada["Severity"], ada["Port"], ada["ComputeOwner"], ada["ComputePublicIp"]) == (
        "NonCompliant", "critical", 22, "ada.okafor@contoso.example", "20.61.12.34")
    assert ada["NsgId"] == ids[NOTEBOOKS_NSG] and ada["SweepId"]
    # Compute findings carry no NsgId (they resolve through compute rows); the NSG's own findings do.
    (critical,) = [r for r in guard.rows(RecordType="finding", ComputeName="ci-ada-gpu") if "NsgId" not in r]
    assert critical["Severity"] == "critical" and critical["RuleName"] == "AllowSSH"
    assert ada["OpenFindingIds"] == [critical["FindingId"]]
    assert computes["ci-bob-notebook"]["Status"] == "Compliant"
    # The cluster: SSH on 22 and NAT ports behind NSGs that admit no internet source -> latent; no owner -> low.
    cluster = computes["train-a100"]
    assert (cluster["Status"], cluster["Severity"]) == ("Compliant", "info")
    paths = {h["role"]: h for h in cluster["Details"]["nsgPath"]}
    assert set(paths) == {"subnet", "aml-managed"}
    assert paths["aml-managed"]["amlRequiredRules"] == ["AzureMachineLearning", "BatchNodeManagement"]
    assert cluster["Details"]["sshPorts"] == [22, 50000, 50001]
    owner = [r for r in guard.rows(RecordType="finding", ComputeName="train-a100") if r["PortKind"] == "owner"]
    assert len(owner) == 1 and owner[0]["Severity"] == "low" and "ComputeOwner" not in cluster
    # The AML-managed NSG's required rules are never findings; the NSG's own rows name the compute it guards.
    assert not [r for r in guard.rows(RecordType="finding") if r.get("NsgId") == ids[AML_NSG]]
    nsg_finding = [r for r in guard.rows(RecordType="finding") if r.get("NsgId") == ids[NOTEBOOKS_NSG]]
    assert nsg_finding and all(r["ComputeId"] for r in nsg_finding)
    (summary,) = guard.rows(RecordType="sweep")
    assert summary["Details"]["computes"] == {"workspaces": 2, "computes": 4, "judged": 4, "compliant": 3,
                                              "compliancePercent": 75.0, "critical": 1, "noOwner": 1,
                                              "complete": True}


def test_a_malformed_compute_is_a_row_of_its_own_and_the_rest_are_judged(local_azure: LocalAzure,
                                                                         guard: Guard):
    seed_ml_estate(local_azure)
    bad = ada_instance()
    bad["properties"]["properties"]["sshSettings"]["sshPort"] = "twenty-two"
    local_azure.aml.seed_compute(bad)
    function("nightly_sweep")(TimerRequest(past_due=False))
    computes = {r["ComputeName"]: r for r in guard.rows(RecordType="compute")}
    assert computes["ci-ada-gpu"]["Status"] == "Unknown" and "SSH port" in computes["ci-ada-gpu"]["Reason"]
    assert len(computes) == 4
    (summary,) = guard.rows(RecordType="sweep")
    assert [f["stage"] for f in summary["Details"]["failures"]] == ["compute"]


def test_list_nodes_forbidden_is_recorded_and_the_cluster_judged_on_22(local_azure: LocalAzure, guard: Guard):
    seed_ml_estate(local_azure)
    local_azure.faults.add("aml", status=403, code="AuthorizationFailed", times=None, match="/listNodes")
    function("nightly_sweep")(TimerRequest(past_due=False))
    (cluster,) = [r for r in guard.rows(RecordType="compute") if r["ComputeName"] == "train-a100"]
    assert cluster["Details"]["sshPorts"] == [22]
    (summary,) = guard.rows(RecordType="sweep")
    assert [f["stage"] for f in summary["Details"]["failures"]] == ["ml-nodes"]


# --- events ----------------------------------------------------------------------------------------------------

def test_compute_write_event_judges_the_new_compute_at_once_then_delete_resolves(local_azure: LocalAzure,
                                                                                 guard: Guard):
    seed_ml_estate(local_azure)
    open_ssh_to_everyone(local_azure)
    token = "ada-token"
    local_azure.add_principal(token, ADA)
    assert put_compute(local_azure, ada_instance(), token).status_code == 201
    assert guard.deliver_published() == 1
    (row,) = guard.rows(RecordType="compute")
    assert (row["Trigger"], row["Status"], row["Severity"], row["Actor"], row["ComputeOwner"]) == (
        "event", "NonCompliant", "critical", ADA.upn, ADA.upn)
    (finding,) = guard.rows(RecordType="finding")
    assert finding["Severity"] == "critical" and "NsgId" not in finding
    assert finding["FindingId"] in row["OpenFindingIds"]

    response = requests.delete(f"{local_azure.url}{row['ComputeId']}?api-version=2025-12-01",
                               verify=local_azure.ca_path, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200 and guard.deliver_published() == 1
    gone = guard.rows(RecordType="compute")[-1]
    assert (gone["Status"], gone["OpenFindingIds"]) == ("Deleted", [])


def test_compute_event_for_a_compute_gone_since_is_a_deleted_row(local_azure: LocalAzure, guard: Guard):
    seed_ml_estate(local_azure)
    local_azure.add_principal("ada-token", ADA)
    body = ada_instance()
    put_compute(local_azure, body, "ada-token")
    local_azure.aml.computes[workspace_path("ws-vision").lower()].pop("ci-ada-gpu")
    guard.deliver_published()
    (row,) = guard.rows(RecordType="compute")
    assert row["Status"] == "Deleted" and "deleted since" in row["Reason"]


def test_malformed_compute_event_is_rejected_not_raised(guard: Guard):
    event = {"id": "e1", "topic": f"/subscriptions/{ML_SUB}", "subject": "x", "eventType":
             "Microsoft.Resources.ResourceWriteSuccess", "eventTime": "2026-11-30T10:00:00Z", "dataVersion": "2",
             "metadataVersion": "1", "data": {"operationName": "Microsoft.MachineLearningServices/workspaces/"
                                                                "computes/write", "status": "Succeeded",
                                              "resourceUri": f"/subscriptions/{ML_SUB}/not-a-compute"}}
    from localazure.functions import eventgrid_event
    from shared.app.handlers import handle_nsg_event

    outcome = handle_nsg_event(json.dumps(event), None)  # type: ignore[arg-type]
    assert outcome.status == "rejected" and "not an Azure ML compute id" in outcome.reason
    guard.deliver(eventgrid_event(event))  # through the Function too: acknowledged, nothing raised
    assert NOTEBOOKS_SUBNET  # the estate constants stay importable for the demo


@pytest.mark.parametrize("scope", ["subscriptions", "management-groups"])
def test_compute_event_outside_the_configured_scope_is_ignored(local_azure: LocalAzure, guard: Guard,
                                                               monkeypatch: pytest.MonkeyPatch, scope: str):
    """Like NSG events (issue 10): a compute outside SWEEP_SUBSCRIPTIONS / SWEEP_MANAGEMENT_GROUPS is not read,
    judged or recorded; management groups are checked on the compute's workspace (Resource Graph indexes
    workspaces, not computes)."""
    from shared.azure.wiring import event_deps

    other = "11111111-1111-4111-8111-111111111111"
    if scope == "subscriptions":
        monkeypatch.setenv("SWEEP_SUBSCRIPTIONS", other)
    else:
        monkeypatch.setenv("SWEEP_MANAGEMENT_GROUPS", "mg-ml")
        local_azure.graph.management_groups = {"mg-ml": [other]}
    event_deps.cache_clear()
    seed_ml_estate(local_azure)
    open_ssh_to_everyone(local_azure)
    local_azure.add_principal("ada-token", ADA)
    assert put_compute(local_azure, ada_instance(), "ada-token").status_code == 201
    local_azure.reset()
    guard.deliver_published()
    assert guard.rows(RecordType="compute") == [] and local_azure.count("arm.get") == 0

    if scope == "subscriptions":
        monkeypatch.setenv("SWEEP_SUBSCRIPTIONS", ML_SUB)
    else:
        local_azure.graph.management_groups = {"mg-ml": [ML_SUB]}
    event_deps.cache_clear()
    assert put_compute(local_azure, ada_instance(), "ada-token").status_code in (200, 201)
    guard.deliver_published()
    (row,) = guard.rows(RecordType="compute")
    assert (row["Status"], row["Severity"]) == ("NonCompliant", "critical")


def test_an_approved_rule_makes_the_compute_exempt_on_the_event_path_and_the_sweep(local_azure: LocalAzure,
                                                                                   guard: Guard):
    """A policy exemption for the rule that exposes the compute: the NSG finding is Exempt and so is the
    compute's (kept visible, not open); the compute row is Compliant on both paths."""
    from tests.exemptionfactory import seed_exemption

    seed_ml_estate(local_azure)
    open_ssh_to_everyone(local_azure)
    seed_exemption(local_azure, nsg_id(NOTEBOOKS_NSG), ["AllowSSH"], ticket="CHG-9")
    local_azure.add_principal("ada-token", ADA)
    assert put_compute(local_azure, ada_instance(), "ada-token").status_code == 201
    guard.deliver_published()
    (row,) = guard.rows(RecordType="compute")
    assert (row["Status"], row["OpenFindingIds"]) == ("Compliant", [])
    (finding,) = [r for r in guard.rows(RecordType="finding") if r.get("ComputeId") and not r.get("NsgId")]
    assert (finding["Status"], finding["Severity"]) == ("Exempt", "critical") and "CHG-9" in finding["Reason"]

    function("nightly_sweep")(TimerRequest(past_due=False))
    ada = [r for r in guard.rows(RecordType="compute") if r["ComputeName"] == "ci-ada-gpu"][-1]
    assert (ada["Trigger"], ada["Status"], ada["OpenFindingIds"]) == ("sweep", "Compliant", [])
    nsg_rows = [r for r in guard.rows(RecordType="finding") if r.get("NsgName") == NOTEBOOKS_NSG
                and r.get("RuleName") == "AllowSSH" and r.get("Trigger") == "sweep"]
    assert nsg_rows and all(r["Status"] == "Exempt" for r in nsg_rows)
