"""The nightly sweep end to end: real func.TimerRequest -> nightly_sweep -> real azure-mgmt-resourcegraph,
azure-mgmt-network and azure-monitor-ingestion clients -> the local stand-ins. No SDK method is patched."""

from __future__ import annotations

import base64
import json
import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.functions.timer import TimerRequest

from localazure.server import LocalAzure
from localazure.testing import nsg_body, rule_body
from shared.app.config import Settings
from shared.app.sweep import SweepResult, run_sweep
from shared.azure.aml import AzureMl
from shared.azure.credentials import make_credential
from shared.azure.graph import ResourceGraphSource
from shared.azure.wiring import build_sweep_deps
from tests.exemptionfactory import expired_exemption, seed_exemption
from tests.integration.conftest import function, local_env

SUBS = ("11111111-0000-4000-8000-000000000001", "22222222-0000-4000-8000-000000000002",
        "33333333-0000-4000-8000-000000000003")


def seed_estate(azure: LocalAzure, per_sub: int, subs: tuple[str, ...] = SUBS) -> dict[str, bool]:
    """``per_sub`` NSGs in each subscription; every third opens SSH to the internet. Returns id -> exposed.
    Each NSG is attached to a subnet (no public NICs), so findings keep their base severity."""
    out = {}
    for s, sub in enumerate(subs):
        for i in range(per_sub):
            exposed = (s * per_sub + i) % 3 == 0
            rules = [("AllowSSH", rule_body(300, "22", "*" if exposed else "10.0.0.0/8"))]
            body = nsg_body(sub, "rg", f"nsg-{i:03d}", rules, tags={"owner": f"team-{i % 2}"})
            body["properties"]["subnets"] = [{"id": f"/subscriptions/{sub}/resourceGroups/rg/providers/"
                                                   f"Microsoft.Network/virtualNetworks/vnet/subnets/s{i}"}]
            out[azure.seed_nsg(body)] = exposed
    return out


def sweep_with(azure: LocalAzure, page_size: int = 1000, **env: str) -> SweepResult:
    """The timer's use case with a smaller Resource Graph page (to cross many pages with few NSGs)."""
    settings = Settings.from_env({**local_env(azure), **env})
    deps = build_sweep_deps(settings)
    deps.graph = ResourceGraphSource(settings, make_credential(settings), page_size=page_size,
                                     sleep=lambda s: None)
    return run_sweep(deps)


def rows(azure: LocalAzure, **where: Any) -> list[dict[str, Any]]:
    return [r for r in azure.ingested() if all(r.get(k) == v for k, v in where.items())]


def test_timer_sweeps_everything_and_writes_a_summary_row(local_azure: LocalAzure, env: dict[str, str]):
    estate = seed_estate(local_azure, 4)
    function("nightly_sweep")(TimerRequest(past_due=False))

    evaluations = rows(local_azure, RecordType="evaluation")
    assert sorted(r["NsgId"] for r in evaluations) == sorted(estate)
    findings = rows(local_azure, RecordType="finding")
    assert sorted(r["NsgId"] for r in findings) == sorted(i for i, exposed in estate.items() if exposed)
    assert all(r["Trigger"] == "sweep" and r["Severity"] == "high" and r["Owner"].startswith("team-")
               and r["Attachments"]["effective"] == "no-public-ip" for r in findings)
    (summary,) = rows(local_azure, RecordType="sweep")
    d = summary["Details"]
    assert (d["nsgs"], d["compliant"], d["findings"]["high"], d["failures"]) == (12, 8, 4, [])
    assert d["compliancePercent"] == pytest.approx(66.67) and summary["Result"] == "completed"
    assert {r["SweepId"] for r in local_azure.ingested()} == {summary["SweepId"]}
    # one NIC query page + one policy exemption page (listed once per run) + one ML workspace page (the Azure ML
    # lens lists workspaces from Resource Graph once per run) + one NSG page
    assert local_azure.count("graph") == 4 and d["exemptionGraphCalls"] == 1
    assert local_azure.count("arm.get") == 0 and local_azure.count("arm.list") == 0


def test_paging_across_many_pages_evaluates_each_nsg_once(local_azure: LocalAzure):
    estate = seed_estate(local_azure, 15)  # 45 NSGs, pages of 7
    result = sweep_with(local_azure, page_size=7)
    assert result.summary["graphCalls"] == {"nics": 1, "nsgs": math.ceil(45 / 7)}
    assert result.summary["pages"] == 7
    ids = [r["NsgId"] for r in rows(local_azure, RecordType="evaluation")]
    assert len(ids) == len(set(ids)) == 45 and set(ids) == set(estate)
    assert result.summary["nsgs"] == 45 and not result.failures


def test_batches_are_uploaded_while_streaming(local_azure: LocalAzure):
    seed_estate(local_azure, 40)  # 120 NSGs -> 160 rows + 1 summary
    result = sweep_with(local_azure, page_size=10, SWEEP_BATCH_ROWS="100")
    assert result.rows_sent == 161
    assert [c.rows for c in local_azure.ingestion.calls] == [100, 61]


def test_throttled_pages_succeed_on_retry(local_azure: LocalAzure):
    seed_estate(local_azure, 5)
    local_azure.faults.add("graph", status=429, times=2, retry_after=0.01)  # the SDK honours Retry-After
    local_azure.faults.add("graph", status=429, times=1)  # no Retry-After: the adapter reads the quota headers
    result = sweep_with(local_azure, page_size=4)
    assert local_azure.count("graph", status=429) == 3
    assert result.summary["nsgs"] == 15 and not result.failures
    assert len(rows(local_azure, RecordType="evaluation")) == 15


def test_quota_headers_are_honoured(local_azure: LocalAzure):
    seed_estate(local_azure, 3)
    local_azure.graph.enforce_quota = True
    local_azure.graph.quota_per_window, local_azure.graph.quota_window_s = 3, 1.0
    settings = Settings.from_env(local_env(local_azure))
    deps = build_sweep_deps(settings)
    waits: list[float] = []
    deps.graph = ResourceGraphSource(settings, make_credential(settings), page_size=2,
                                     sleep=lambda s: (waits.append(s), __import__("time").sleep(s)))
    # The Azure ML lens lists workspaces through the same client, as build_sweep_deps wires it: one quota view.
    deps.computes = AzureMl(settings, make_credential(settings), deps.graph)
    result = run_sweep(deps)
    assert result.summary["nsgs"] == 9 and not result.failures
    assert waits and all(0 < w <= 1.0 for w in waits)  # waited for x-ms-user-quota-resets-after
    assert local_azure.count("graph", status=429) == 0  # ... and so was never throttled


def test_graph_unavailable_falls_back_per_subscription_and_one_subscription_fails(local_azure: LocalAzure):
    estate = seed_estate(local_azure, 3)
    local_azure.faults.add("graph", status=503, times=None, retry_after=0.01)
    local_azure.faults.add("arm.list", status=500, times=None, retry_after=0.01, match=f"/subscriptions/{SUBS[1]}/")
    result = sweep_with(local_azure, SWEEP_SUBSCRIPTIONS=",".join(SUBS))

    evaluated = {r["NsgId"] for r in rows(local_azure, RecordType="evaluation")}
    assert evaluated == {i for i in estate if SUBS[1] not in i}
    stages = Counter(f["stage"] for f in result.failures)
    # The policy exemptions and the Azure ML lens's workspaces cannot be listed either: recorded, not silent.
    assert stages == {"nic-inventory": 1, "exemptions": 1, "ml-workspaces": 1, "resource-graph": 1, "list": 1}
    assert result.summary["failedSubscriptions"] == [SUBS[1]]
    assert result.summary["source"] == "resource-graph+per-subscription"
    (summary,) = rows(local_azure, RecordType="sweep")
    assert summary["Result"] == "partial" and summary["Details"]["nsgs"] == 6
    assert all(f["Attachments"]["effective"] == "unknown" for f in rows(local_azure, RecordType="finding"))


def test_graph_page_failing_midway_resumes_per_subscription_without_duplicates(local_azure: LocalAzure):
    estate = seed_estate(local_azure, 5)  # 15 NSGs, pages of 4: the 3rd page (offset 8) fails for good
    token = base64.urlsafe_b64encode(json.dumps({"offset": 8}).encode()).decode()
    local_azure.faults.add("graph", status=503, times=None, retry_after=0.01,
                           match=lambda req: token.encode() in req.body)
    result = sweep_with(local_azure, page_size=4, SWEEP_SUBSCRIPTIONS=",".join(SUBS))

    ids = [r["NsgId"] for r in rows(local_azure, RecordType="evaluation")]
    assert len(ids) == len(set(ids)) == 15 and set(ids) == set(estate)
    (failure,) = result.failures
    assert failure["stage"] == "resource-graph" and failure["afterPages"] == 2
    assert failure["subscriptions"] == 2  # the 2nd subscription (partly done) and the 3rd
    assert local_azure.count("arm.list", path_contains=SUBS[0]) == 0
    assert result.summary["nsgs"] == 15


def test_tenant_scope_without_graph_reports_instead_of_guessing(local_azure: LocalAzure):
    seed_estate(local_azure, 2)
    local_azure.faults.add("graph", status=403, times=None)
    result = sweep_with(local_azure)
    assert result.summary["nsgs"] == 0
    assert any("needs SWEEP_SUBSCRIPTIONS" in f["error"] for f in result.failures)
    (summary,) = rows(local_azure, RecordType="sweep")
    assert summary["Result"] == "failed"


def test_invalid_nsg_is_recorded_and_the_rest_completes(local_azure: LocalAzure):
    seed_estate(local_azure, 2)
    bad = nsg_body(SUBS[0], "rg", "broken", [("X", rule_body(300, "22", "10.0.0.0/33"))])
    local_azure.seed_nsg(bad)
    result = sweep_with(local_azure)
    assert result.summary["nsgs"] == 7
    (failure,) = result.failures
    assert failure["stage"] == "parse" and "10.0.0.0/33" in failure["error"]
    (error_row,) = rows(local_azure, RecordType="evaluation", Status="Error")
    assert error_row["NsgId"].endswith("/broken")


def test_effective_exposure_end_to_end(local_azure: LocalAzure):
    sub = SUBS[0]
    vnet = f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets"
    nic_id = f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces"
    open_ssh = [("AllowSSH", rule_body(300, "22", "*"))]

    def nsg(name: str, rules: list, subnets: tuple = (), nics: tuple = ()) -> str:
        body = nsg_body(sub, "rg", name, rules)
        body["properties"]["subnets"] = [{"id": f"{vnet}/{s}"} for s in subnets]
        body["properties"]["networkInterfaces"] = [{"id": f"{nic_id}/{n}"} for n in nics]
        return local_azure.seed_nsg(body)

    def nic(name: str, subnet: str, nsg_name: str | None, public: bool) -> None:
        config: dict[str, Any] = {"subnet": {"id": f"{vnet}/{subnet}"}}
        if public:
            config["publicIPAddress"] = {"id": f"/subscriptions/{sub}/resourceGroups/rg/providers/"
                                               f"Microsoft.Network/publicIPAddresses/{name}-ip"}
        props: dict[str, Any] = {"ipConfigurations": [{"name": "ipconfig1", "properties": config}]}
        if nsg_name:
            props["networkSecurityGroup"] = {"id": f"/subscriptions/{sub}/resourceGroups/rg/providers/"
                                                   f"Microsoft.Network/networkSecurityGroups/{nsg_name}"}
        local_azure.seed_nic({"id": f"{nic_id}/{name}", "name": name,
                              "type": "Microsoft.Network/networkInterfaces", "properties": props})

    # both allow: subnet NSG (a-subnet, streamed before its NIC NSG) and the NIC's NSG open 22
    nsg("a-subnet", open_ssh, subnets=("s1",))
    nsg("z-nic", open_ssh, nics=("vm1",))
    nic("vm1", "s1", "z-nic", public=True)
    # one denies: the NIC NSG opens 22, its subnet's NSG does not (default DenyAllInBound)
    nsg("b-subnet-closed", [], subnets=("s2",))
    nsg("c-nic-open", open_ssh, nics=("vm2",))
    nic("vm2", "s2", "c-nic-open", public=True)
    # no public IP
    nsg("d-private", open_ssh, nics=("vm3",))
    nic("vm3", "s3", "d-private", public=False)
    # unattached
    nsg("e-orphan", open_ssh)

    result = sweep_with(local_azure, page_size=2)
    by_nsg = {r["NsgName"]: r for r in rows(local_azure, RecordType="finding")}
    assert (by_nsg["a-subnet"]["Severity"], by_nsg["a-subnet"]["Details"]["effective"]) == ("critical", "reachable")
    assert (by_nsg["z-nic"]["Severity"], by_nsg["z-nic"]["Details"]["effective"]) == ("critical", "reachable")
    assert (by_nsg["c-nic-open"]["Severity"], by_nsg["c-nic-open"]["Details"]["effective"]) == \
        ("high", "blocked-by-pair")
    assert (by_nsg["d-private"]["Severity"], by_nsg["d-private"]["Details"]["effective"]) == ("high", "no-public-ip")
    orphan = by_nsg["e-orphan"]
    # unattached: the same answer as the event path and scan (issue 13), the attachment shown beside it
    assert (orphan["Severity"], orphan["Status"], orphan["Active"]) == ("high", "Open", True)
    assert orphan["Details"]["effective"] == "unattached" and orphan["Attachments"]["attachment"] == "unattached"
    assert by_nsg["a-subnet"]["Attachments"]["attachment"] == "attached"
    assert by_nsg["z-nic"]["Attachments"]["publicPaths"][0]["pairedNsg"].endswith("/a-subnet")
    assert result.summary["effective"]["critical"] == 2 and result.summary["effective"]["unattached"] == 1
    assert result.summary["findings"]["critical"] == 2
    orphan_eval = [r for r in rows(local_azure, RecordType="evaluation") if r["NsgName"] == "e-orphan"]
    assert orphan_eval[0]["OpenFindingIds"] == [orphan["FindingId"]] and orphan_eval[0]["Result"] == "noncompliant"


def test_sweep_applies_exemptions_like_the_event_path(local_azure: LocalAzure, env: dict[str, str]):
    sub = SUBS[0]
    ids = {}
    for name in ("exempt", "expired", "too-long", "self-tagged"):
        tags = {"nsg-guard-exempt": "rules=AllowSSH; expires=2999-12-31; ticket=CHG-42"} \
            if name == "self-tagged" else {}
        body = nsg_body(sub, "rg", f"nsg-{name}", [("AllowSSH", rule_body(300, "22", "*"))], tags=tags)
        body["properties"]["subnets"] = [{"id": f"/subscriptions/{sub}/resourceGroups/rg/providers/"
                                               f"Microsoft.Network/virtualNetworks/vnet/subnets/{name}"}]
        ids[name] = local_azure.seed_nsg(body)
    now = datetime.now(UTC)
    seed_exemption(local_azure, ids["exempt"], ["AllowSSH"], ticket="CHG-42")
    expired_exemption(local_azure, ids["expired"], ["AllowSSH"])
    seed_exemption(local_azure, ids["too-long"], ["AllowSSH"], expires=now + timedelta(days=91))
    result = sweep_with(local_azure)
    by_nsg = {r["NsgName"]: r for r in rows(local_azure, RecordType="finding", RuleName="AllowSSH")}
    exempt = by_nsg["nsg-exempt"]
    assert exempt["Status"] == "Exempt" and exempt["Details"]["exemption"]["ticket"] == "CHG-42"
    assert exempt["Details"]["exemption"]["id"].endswith("/policyExemptions/" + exempt["Details"]["exemption"]
                                                         ["id"].rsplit("/", 1)[-1])
    assert by_nsg["nsg-expired"]["Status"] == "Open"
    assert by_nsg["nsg-expired"]["Details"]["exemptionNotApplied"][0]["code"] == "expired"
    assert by_nsg["nsg-too-long"]["Status"] == "Open" and by_nsg["nsg-self-tagged"]["Status"] == "Open"
    (problem,) = rows(local_azure, RecordType="finding", PortKind="exemption")
    assert problem["NsgName"] == "nsg-too-long" and problem["Severity"] == "low"
    assert result.summary["compliant"] == 1  # only the validly exempted NSG
    assert result.summary["exempt"] == 1 and result.summary["exemptionsInForce"] == 1  # too-long is a problem


# --- issue 9: the sweep cannot be blinded -------------------------------------------------------------------------

def _nsg_rows(azure: LocalAzure, name: str) -> list[dict[str, Any]]:
    return [r for r in azure.ingested() if str(r.get("NsgId", "")).endswith("/" + name)]


def _attached(body: dict[str, Any]) -> dict[str, Any]:
    """On a subnet without public NICs: findings keep their base severity and status."""
    body["properties"]["subnets"] = [{"id": f"/subscriptions/{SUBS[0]}/resourceGroups/rg/providers/"
                                           f"Microsoft.Network/virtualNetworks/vnet/subnets/{body['name']}"}]
    return body


def test_sweep_source_port_limited_deny_does_not_hide_open_ssh(local_azure: LocalAzure):
    deny = rule_body(100, "22", "Internet", access="Deny", sourcePortRange="1")
    local_azure.seed_nsg(_attached(nsg_body(SUBS[0], "rg", "sport", [("DenyFromPort1", deny),
                                                                      ("AllowSSH", rule_body(200, "22", "*"))])))
    sweep_with(local_azure)
    rows_ = _nsg_rows(local_azure, "sport")
    assert [(r["RuleName"], r["Exposure"], r["Status"]) for r in rows_ if r["RecordType"] == "finding"] == \
        [("AllowSSH", "internet", "Open")]
    (evaluation,) = [r for r in rows_ if r["RecordType"] == "evaluation"]
    assert evaluation["Result"] == "noncompliant"


def test_sweep_unknown_tag_is_evaluated_and_reported_not_an_error_row(local_azure: LocalAzure):
    local_azure.seed_nsg(_attached(nsg_body(SUBS[0], "rg", "newtag",
                                            [("AllowNewTag", rule_body(100, "22", "AzureBastionNext")),
                                             ("AllowSSH", rule_body(200, "22", "*"))])))
    result = sweep_with(local_azure)
    assert result.failures == []
    rows_ = _nsg_rows(local_azure, "newtag")
    findings = sorted((r["RuleName"], r["PortKind"], r["Exposure"], r["Severity"], r["Status"]) for r in rows_
                      if r["RecordType"] == "finding")
    assert findings == [("AllowNewTag", "unknown-token", "unknown", "low", "Open"),
                        ("AllowSSH", "ssh", "internet", "high", "Open")]
    assert "AzureBastionNext" in next(r["Reason"] for r in rows_ if r.get("PortKind") == "unknown-token")
    assert not [r for r in rows_ if r.get("Status") == "Error"]


def test_sweep_unknown_rule_field_from_azure_is_evaluated_not_an_error_row(local_azure: LocalAzure):
    future = rule_body(200, "22", "*", someFieldAddedByANewApiVersion={"x": 1})
    local_azure.seed_nsg(_attached(nsg_body(SUBS[0], "rg", "newfield", [("AllowSSH", future)])))
    result = sweep_with(local_azure)
    assert result.failures == []
    rows_ = _nsg_rows(local_azure, "newfield")
    assert [(r["RuleName"], r["Exposure"]) for r in rows_ if r["RecordType"] == "finding"] == \
        [("AllowSSH", "internet")]
