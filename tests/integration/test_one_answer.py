"""One answer everywhere (issue 13): scan, ``sweep --local`` and the event path give the same severity and
status for the same NSG, attachment is shown as its own field, and an unattached NSG reported by an event is
not "resolved" by the next sweep (MTTR would count a remediation nobody made)."""

from __future__ import annotations

import json

from azure.functions.timer import TimerRequest

from shared.cli import main
from shared.core.kpis import compute_kpis
from tests.integration.conftest import Guard, function

ESTATE = "examples/estate.json"


def scan_json(capsys, path: str = ESTATE) -> dict:
    assert main(["scan", path, "--format", "json", "--fail-on", "never"]) == 0
    return json.loads(capsys.readouterr().out)


def key(name: str, rule: str, port: int) -> tuple[str, str, int]:
    return (name, rule.lower(), port)


def test_scan_and_sweep_local_agree_on_every_finding(tmp_path, capsys):
    scanned = scan_json(capsys)
    assert main(["sweep", "--local", ESTATE, "--local-rows", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["nsgs"], summary["compliant"]) == (scanned["summary"]["nsgs"], scanned["summary"]["compliant"])
    assert summary["compliancePercent"] == scanned["summary"]["compliancePercent"] == 50.0
    rows = [json.loads(line) for line in (tmp_path / "Custom-NsgGuardFindings.jsonl").read_text().splitlines()]
    swept = {key(r["NsgName"], r["RuleName"], r["Port"]): r for r in rows if r["RecordType"] == "finding"}
    assert len(swept) == len(scanned["findings"]) == 7
    unattached = 0
    for f in scanned["findings"]:
        row = swept[key(f["nsgName"], f["ruleName"], f["port"])]
        assert (row["Severity"], row["Status"], row["Active"]) == (f["severity"], f["status"], f["active"]), f
        assert row["Attachments"]["attachment"] == f["attachment"]
        assert not (row["Active"] and row["Status"] == "Latent")  # never "Active: true" with "Status: Latent"
        unattached += f["attachment"] == "unattached"
    assert unattached >= 5  # the example estate is mostly unattached NSGs: the case that used to differ


def test_event_then_sweep_keep_an_unattached_finding_open(guard: Guard, capsys, monkeypatch, tmp_path):
    from localazure.testing import nsg_body

    sub, rg = "2c1e3d4f-0000-4000-8000-00000000a11c", "rg-orphans"
    guard.azure.seed_nsg(nsg_body(sub, rg, "orphan-nsg"))
    props = {"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "22", "sourceAddressPrefix": "*",
             "destinationAddressPrefix": "*", "access": "Allow", "priority": 300, "direction": "Inbound"}
    guard.azure.network_client(sub).security_rules.begin_create_or_update(
        rg, "orphan-nsg", "AllowSSH", {"properties": props}).result()
    assert guard.deliver_published() >= 1
    (event_row,) = guard.rows(RecordType="finding", Trigger="event")
    assert (event_row["Severity"], event_row["Status"]) == ("high", "Open")
    assert event_row["Attachments"]["attachment"] == "unattached"

    monkeypatch.setenv("SWEEP_SUBSCRIPTIONS", sub)
    function("nightly_sweep")(TimerRequest(past_due=False))
    (sweep_row,) = guard.rows(RecordType="finding", Trigger="sweep")
    assert (sweep_row["Severity"], sweep_row["Status"], sweep_row["Active"]) == ("high", "Open", True)
    assert sweep_row["Attachments"]["attachment"] == "unattached"
    (sweep_eval,) = guard.rows(RecordType="evaluation", Trigger="sweep")
    assert sweep_eval["OpenFindingIds"] == [event_row["FindingId"]]
    kpis = compute_kpis(guard.azure.ingested()).to_json()
    assert kpis["mttr"] == [], "the sweep must not count a remediation nobody made"

    path = tmp_path / "orphan.json"
    path.write_text(json.dumps(guard.azure.get_nsg(event_row["NsgId"])))
    (scanned,) = scan_json(capsys, str(path))["findings"]
    assert (scanned["severity"], scanned["status"], scanned["attachment"]) == ("high", "Open", "unattached")
