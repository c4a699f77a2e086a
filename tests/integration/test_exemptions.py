"""Exemptions are approvals, end to end: real Event Grid events -> on_nsg_change / nightly_sweep -> the real SDK
pipeline -> the local ARM (policyExemptions with RBAC) and Resource Graph (policyresources) stand-ins."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from localazure.eventgrid import LOCAL_DEVELOPER
from localazure.testing import rule_body
from shared.cli import main
from shared.core.policyexemptions import rule_fingerprint
from tests.eventfactory import function_event
from tests.exemptionfactory import expired_exemption, seed_exemption
from tests.integration.conftest import Guard, local_env
from tests.integration.test_deadletter import NSG as DL_NSG
from tests.integration.test_deadletter import azurite, dead_letter, dl  # noqa: F401  (fixtures)
from tests.nsgfactory import nsg, nsg_id, rule

RG = "rg1"
NSG = "vendor-gw-nsg"
NSG_ID = nsg_id(NSG, RG)
ADA = "5e1f0b2a-0000-4000-8000-000000000001"  # the actor of the sample events
SELF_EXEMPTION = "rules=*; expires=9999-12-31; reason=debug"


@pytest.fixture
def configure(guard: Guard, monkeypatch: pytest.MonkeyPatch):
    from shared.azure.wiring import event_deps

    def apply(**env: str) -> Guard:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        event_deps.cache_clear()
        return guard

    return apply


def seed(guard: Guard, source: str = "*", tags: dict | None = None) -> None:
    guard.azure.seed_nsg(nsg([rule("AllowSSH", 300, "22", source, nsg=NSG)], name=NSG, tags=tags or {}))


def deliver(guard: Guard) -> None:
    guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))


def ssh_row(guard: Guard) -> dict:
    return [r for r in guard.rows(RecordType="finding") if r["RuleName"] == "AllowSSH"][-1]


def denies(guard: Guard) -> list[str]:
    rules = guard.azure.get_nsg(NSG_ID)["properties"]["securityRules"]
    return [r["name"] for r in rules if r["name"].startswith("nsg-guard-")]


# --- the self-exemption of the issue -----------------------------------------------------------------------

def test_self_exemption_tag_stays_open_and_is_reverted_in_enforce_mode(configure):
    guard = configure(REVERT_MODE="enforce")
    seed(guard, tags={"nsg-guard-exempt": SELF_EXEMPTION})
    deliver(guard)
    row = ssh_row(guard)
    assert row["Status"] == "Open" and row["Severity"] == "high"
    (result,) = [r["Result"] for r in guard.rows(RecordType="remediation") if r["Result"] != "planned"]
    assert len(denies(guard)) == 1 and result == "verified"  # after the write-ahead planned row
    (tag,) = [r for r in guard.rows(RecordType="finding") if r["PortKind"] == "exemption-tag"]
    assert "Tag exemptions are off" in tag["Reason"]


@pytest.mark.parametrize(("approvers", "status"), [(ADA, "Exempt"), ("11111111-2222-4333-8444-555555555555", "Open")],
                         ids=["actor-is-approver", "actor-is-not"])
def test_tag_source_honours_only_an_approver_actor(configure, approvers, status):
    guard = configure(REVERT_MODE="enforce", EXEMPTION_SOURCES="policy,tag", EXEMPTION_APPROVERS=approvers)
    from shared.core.model import parse_nsg

    fingerprint = rule_fingerprint(parse_nsg(nsg([rule("AllowSSH", 300, "22", "*", nsg=NSG)], name=NSG)).rules[0])
    expires = (datetime.now(UTC) + timedelta(days=7)).date().isoformat()
    seed(guard, tags={"nsg-guard-exempt": f"rules=AllowSSH; fingerprint={fingerprint[7:39]}; expires={expires}; "
                                          "ticket=CHG-7"})
    deliver(guard)
    row = ssh_row(guard)
    assert row["Status"] == status and (len(denies(guard)) == (0 if status == "Exempt" else 1))
    if status == "Exempt":
        assert row["Details"]["exemption"]["approver"] == ADA
    else:
        assert row["Details"]["exemptionNotApplied"][0]["code"] == "not-approver"


# --- Policy exemptions on the event path -------------------------------------------------------------------

def exempt_cli(*extra: str) -> int:
    return main(["exempt", NSG_ID, "--rule", "AllowSSH", "--days", "30", "--ticket", "CHG-1",
                 "--reason", "vendor migration", *extra])


def test_exempt_without_the_role_fails_clearly_with_403(configure, capsys):
    guard = configure()
    seed(guard)
    assert exempt_cli() == 2
    err = capsys.readouterr().err
    assert "not allowed to approve exemptions" in err and "policyAssignments/exempt/action" in err
    assert "403 AuthorizationFailed" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert guard.azure.policy_exemptions.all() == []


def test_exempt_dry_run_prints_the_request_and_writes_nothing(configure, capsys):
    guard = configure()
    seed(guard)
    assert exempt_cli("--dry-run") == 0
    doc = json.loads(capsys.readouterr().out)
    meta = doc["body"]["properties"]["metadata"]["nsgGuard"]
    assert doc["scope"] == NSG_ID and meta["rules"][0]["rule"] == "AllowSSH"
    assert meta["rules"][0]["fingerprint"].startswith("sha256:") and guard.azure.policy_exemptions.all() == []


@pytest.mark.parametrize("days", ["0", "91"])
def test_exempt_refuses_days_beyond_the_cap(configure, capsys, days):
    guard = configure()
    seed(guard)
    assert main(["exempt", NSG_ID, "--rule", "AllowSSH", "--days", days, "--ticket", "T", "--reason", "r"]) == 2
    assert "MAX_EXEMPTION_DAYS" in capsys.readouterr().err and guard.azure.policy_exemptions.all() == []


def test_policy_exemption_exempts_on_the_event_path_and_widening_reopens_it(configure, capsys):
    guard = configure(REVERT_MODE="enforce")
    seed(guard, source="52.1.2.3/32")  # a vendor's address: low, but reverted in enforce mode without approval
    guard.azure.policy_exemptions.grant(LOCAL_DEVELOPER.object_id)
    assert exempt_cli() == 0, capsys.readouterr().err
    deliver(guard)
    row = ssh_row(guard)
    assert row["Status"] == "Exempt" and denies(guard) == []
    exemption = row["Details"]["exemption"]
    assert exemption["id"].startswith(NSG_ID + "/providers/Microsoft.Authorization/policyExemptions/nsg-guard-CHG-1")
    assert exemption["approver"] == LOCAL_DEVELOPER.upn and exemption["ticket"] == "CHG-1"
    assert exemption["expiresOn"][:10] == (datetime.now(UTC) + timedelta(days=30)).date().isoformat()

    # The owner widens the approved rule to '*': the approval does not follow (fingerprint), it is reverted.
    client = guard.azure.network_client(NSG_ID.split("/")[2])
    client.security_rules.begin_create_or_update(RG, NSG, "AllowSSH", {"properties": rule_body(300, "22", "*")}
                                                 ).result()
    guard.deliver_published()
    widened = [r for r in guard.rows(RecordType="finding") if r["RuleName"] == "AllowSSH" and r["Severity"] == "high"]
    assert widened[0]["Status"] == "Open"
    assert widened[0]["Details"]["exemptionNotApplied"][0]["code"] == "rule-changed"
    assert len(denies(guard)) == 1


def test_expired_policy_exemption_is_open_on_the_next_event(configure):
    guard = configure()
    seed(guard)
    expired_exemption(guard.azure, NSG_ID, ["AllowSSH"])
    deliver(guard)
    row = ssh_row(guard)
    assert row["Status"] == "Open" and row["Details"]["exemptionNotApplied"][0]["code"] == "expired"


def test_unreadable_exemptions_keep_findings_open_and_skip_the_revert(configure):
    guard = configure(REVERT_MODE="enforce")
    seed(guard)
    seed_exemption(guard.azure, NSG_ID, ["AllowSSH"])
    guard.azure.faults.add("policyexemption", status=403, times=None)
    deliver(guard)
    row = ssh_row(guard)
    assert row["Status"] == "Open" and "403" in row["Details"]["exemptionsUnavailable"]
    assert denies(guard) == [] and guard.rows(RecordType="remediation") == []


def test_operator_remediate_helper_honours_policy_exemptions(configure):
    from shared.app.config import Settings
    from shared.azure.remediate import remediate_nsg

    guard = configure()
    seed(guard)
    seed_exemption(guard.azure, NSG_ID, ["AllowSSH"])
    settings = Settings.from_env(local_env(guard.azure))
    assert remediate_nsg(NSG_ID, settings, mode="enforce").records == [] and denies(guard) == []
    expired = guard.azure.policy_exemptions.all()[0]
    guard.azure.policy_exemptions.update(expired["id"], expiresOn="2020-01-01T00:00:00Z")
    assert [r.result for r in remediate_nsg(NSG_ID, settings, mode="enforce").records] == ["verified"]


# --- the sweep: listed once from Resource Graph; expiry acts -----------------------------------------------

def test_sweep_reverts_a_finding_whose_exemption_expired(local_azure, monkeypatch):
    from shared.app.config import Settings
    from shared.app.sweep import run_sweep
    from shared.azure.wiring import build_sweep_deps

    for key, value in local_env(local_azure).items():
        monkeypatch.setenv(key, value)
    for name in (NSG, "ok-nsg"):
        body = nsg([rule("AllowSSH", 300, "22", "*", nsg=name)], name=name)
        body["properties"]["subnets"] = [{"id": f"{nsg_id(name, RG).split('/providers/')[0]}/providers/"
                                                f"Microsoft.Network/virtualNetworks/vnet/subnets/{name}"}]
        local_azure.seed_nsg(body)
    expired_exemption(local_azure, NSG_ID, ["AllowSSH"])
    seed_exemption(local_azure, nsg_id("ok-nsg", RG), ["AllowSSH"])
    result = run_sweep(build_sweep_deps(Settings.from_env({**local_env(local_azure), "REVERT_MODE": "enforce"})))

    rules = {r["name"] for r in local_azure.get_nsg(NSG_ID)["properties"]["securityRules"]}
    assert any(n.startswith("nsg-guard-") for n in rules)  # reverted
    ok_rules = local_azure.get_nsg(nsg_id("ok-nsg", RG))["properties"]["securityRules"]
    assert [r["name"] for r in ok_rules] == ["AllowSSH"]  # still approved: untouched
    rows = local_azure.ingested()
    planned, remediation = [r for r in rows if r["RecordType"] == "remediation"]
    assert planned["Result"] == "planned" and planned["Details"].get("writeAhead")  # recorded before the write
    assert remediation["Result"] == "verified" and remediation["NsgName"] == NSG and remediation["Trigger"] == "sweep"
    finding = next(r for r in rows if r["RecordType"] == "finding" and r["NsgName"] == NSG)
    assert finding["Status"] == "Open" and finding["Details"]["exemptionNotApplied"][0]["code"] == "expired"
    evaluation = next(r for r in rows if r["RecordType"] == "evaluation" and r["NsgName"] == NSG)
    assert evaluation["OpenFindingIds"] == []  # closed by the revert
    assert result.summary["compliant"] == 2 and result.summary["exemptionGraphCalls"] == 1
    # Listed once from Resource Graph; one ARM GET per approval for who/when (never one per NSG).
    assert local_azure.count("policyexemption") == 2
    ok = next(r for r in rows if r["RecordType"] == "finding" and r["NsgName"] == "ok-nsg")
    assert ok["Status"] == "Exempt" and ok["Details"]["exemption"]["approver"] == "secops@contoso.example"


# --- issue 9 item 4: an exemption expiry that overflows crashed every path -------------------------------

OVERFLOWS = ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"]


@pytest.mark.parametrize("expiry", OVERFLOWS)
@pytest.mark.parametrize("sources", ["policy", "policy,tag"])
def test_overflowing_tag_expiry_on_the_event_path_is_a_finding(configure, expiry, sources):
    guard = configure(EXEMPTION_SOURCES=sources, EXEMPTION_APPROVERS=ADA)
    seed(guard, tags={"nsg-guard-exempt": f"rules=AllowSSH; expires={expiry}; reason=x"})
    deliver(guard)  # used to raise OverflowError: Event Grid retried for 24 h
    assert ssh_row(guard)["Status"] == "Open"
    (tag,) = [r for r in guard.rows(RecordType="finding") if r["PortKind"] == "exemption-tag"]
    assert "invalid expires" in tag["Reason"]


@pytest.mark.parametrize("expiry", OVERFLOWS)
def test_overflowing_policy_expiry_on_the_event_path_is_a_finding(configure, expiry):
    guard = configure()
    seed(guard)
    seed_exemption(guard.azure, NSG_ID, ["AllowSSH"], expires=None)
    (stored,) = guard.azure.policy_exemptions.all()
    guard.azure.policy_exemptions.update(stored["id"], expiresOn=expiry)
    deliver(guard)
    assert ssh_row(guard)["Status"] == "Open"
    (problem,) = [r for r in guard.rows(RecordType="finding") if r["PortKind"] == "exemption"]
    assert "not a usable date-time" in problem["Reason"]


def test_overflowing_expiry_in_the_sweep_gives_rows_for_the_whole_estate(local_azure, monkeypatch):
    from shared.app.config import Settings
    from shared.app.sweep import run_sweep
    from shared.azure.wiring import build_sweep_deps

    for name, expiry in (("a", OVERFLOWS[0]), ("b", OVERFLOWS[1])):
        local_azure.seed_nsg(nsg([rule("AllowSSH", 300, "22", "*", nsg=name)], name=name,
                                 tags={"nsg-guard-exempt": f"rules=AllowSSH; expires={expiry}; reason=x"}))
    local_azure.seed_nsg(nsg([rule("AllowSSH", 300, "22", "10.0.0.0/8", nsg="c")], name="c"))
    result = run_sweep(build_sweep_deps(Settings.from_env(local_env(local_azure))))
    assert result.summary["nsgs"] == 3 and result.failures == []
    assert len([r for r in local_azure.ingested() if r["RecordType"] == "sweep"]) == 1


def test_overflowing_expiry_in_a_dead_letter_replay(local_azure, dl, capsys):  # noqa: F811
    local_azure.seed_nsg(nsg([rule("AllowSSH", 300, "22", "*", nsg=DL_NSG)], name=DL_NSG,
                             tags={"nsg-guard-exempt": f"rules=AllowSSH; expires={OVERFLOWS[0]}; reason=x"}))
    dl.upload_blob("SUB/2026/11/27/1/x.json", dead_letter("dl-overflow"))
    assert main(["replay-deadletter"]) == 0
    assert json.loads(capsys.readouterr().out)["outcomes"] == {"evaluated": 1}
