"""The Azure ML KPIs computed from rows (the Python mirror of queries/aml_*.kql) and the report section."""

from __future__ import annotations

import json
from typing import Any

from shared.cli import main
from shared.core.aml_kpis import NOT_MEASURED, compute_aml_kpis

CI = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w/computes/ci1"
CL = CI.replace("ci1", "cl1")
NSG = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n1"


def compute(t: str, sweep: str | None, cid: str, status: str, open_ids: list[str], **kw: Any) -> dict[str, Any]:
    return {"TimeGenerated": t, "RowId": f"{sweep or t}-{cid}", "RecordType": "compute", "ComputeId": cid,
            "ComputeName": cid.rsplit("/", 1)[-1], "ComputeType": kw.pop("ctype", "ComputeInstance"),
            "Status": status, "OpenFindingIds": open_ids, "Trigger": "sweep" if sweep else "event",
            **({"SweepId": sweep} if sweep else {}), **kw}


def finding(t: str, fid: str, cid: str, **kw: Any) -> dict[str, Any]:
    return {"TimeGenerated": t, "RowId": f"f-{t}-{fid}", "RecordType": "finding", "FindingId": fid,
            "ComputeId": cid, "ComputeName": cid.rsplit("/", 1)[-1], "Status": "Open", "Severity": "critical",
            "PortKind": "ssh", "ComputeOwner": "ada@x", **kw}


ROWS = [
    finding("2026-11-01T00:00:00Z", "f1", CI),
    finding("2026-11-01T00:00:00Z", "n1", CI, NsgId=NSG, Severity="high"),  # an NSG finding naming the compute
    compute("2026-11-01T00:00:00Z", "s1", CI, "NonCompliant", ["f1"], Severity="critical"),
    compute("2026-11-01T00:00:00Z", "s1", CL, "Compliant", [], ctype="AmlCompute"),
    compute("2026-11-01T00:00:00Z", "s1", CL.replace("cl1", "aks"), "NotEvaluated", [], ctype="Kubernetes"),
    compute("2026-11-01T06:00:00Z", None, CI, "Compliant", []),  # the event after the fix: 6 h
    compute("2026-11-02T00:00:00Z", "s2", CI, "Compliant", []),
    compute("2026-11-02T00:00:00Z", "s2", CL, "Compliant", [], ctype="AmlCompute"),
    {"Type": "Syslog", "TimeGenerated": "2026-11-01T10:00:00Z", "Computer": "vm1", "ProcessName": "sshd",
     "SyslogMessage": "Failed password for root from 1.2.3.4 port 5 ssh2"},
    {"Type": "Syslog", "TimeGenerated": "2026-11-01T11:00:00Z", "Computer": "vm1", "ProcessName": "sshd",
     "SyslogMessage": "Accepted publickey for azureuser"},
    {"Type": "Syslog", "TimeGenerated": "2026-11-01T11:00:00Z", "Computer": "vm1", "ProcessName": "cron",
     "SyslogMessage": "Invalid user in a cron line"},
    {"Type": "SecurityAlert", "TimeGenerated": "2026-11-01T10:00:00Z", "SystemAlertId": "a1",
     "AlertType": "VM_SshBruteForceFailed", "ResourceId": CI.upper(), "AlertSeverity": "Medium"},
    {"Type": "SecurityAlert", "TimeGenerated": "2026-11-01T10:30:00Z", "SystemAlertId": "a1",
     "AlertType": "VM_SshBruteForceFailed", "ResourceId": CI.upper(), "AlertSeverity": "Medium"},
    {"Type": "SecurityAlert", "TimeGenerated": "2026-11-01T10:30:00Z", "SystemAlertId": "a2",
     "AlertType": "VM_SuspiciousCommandLine", "ResourceId": CI, "AlertSeverity": "High"},
]


def test_compliance_per_sweep_leaves_other_compute_types_out():
    k = compute_aml_kpis(ROWS)
    assert [(c["sweepId"], c["computes"], c["compliant"], c["compliancePercent"]) for c in k.compliance] == [
        ("s1", 2, 1, 50.0), ("s2", 2, 2, 100.0)]


def test_mttr_per_compute_and_owner_counts_compute_findings_only():
    k = compute_aml_kpis(ROWS)
    assert k.mttr_per_compute == [{"owner": "ada@x", "compute": "ci1", "resolved": 1, "mttrHours": 6.0}]
    assert k.mttr_per_owner == [{"owner": "ada@x", "resolved": 1, "mttrHours": 6.0}]


def test_failed_logins_count_sshd_failures_and_list_computes_as_not_measured():
    k = compute_aml_kpis(ROWS)
    assert [f for f in k.failed_logins if f["measured"] == "measured"] == [
        {"computer": "vm1", "day": "2026-11-01", "failedLogins": 1, "measured": "measured"}]
    assert {(f["computer"], f["failedLogins"], f["measured"]) for f in k.failed_logins
            if f["measured"] != "measured"} == {("ci1", None, NOT_MEASURED), ("cl1", None, NOT_MEASURED)}


def test_bruteforce_alerts_dedupe_on_system_alert_id_and_join_findings_on_the_resource():
    (b,) = compute_aml_kpis(ROWS).bruteforce
    assert (b["alerts"], b["alertTypes"], b["openFindings"], b["severities"]) == (
        1, ["VM_SshBruteForceFailed"], 2, ["critical", "high"])


def test_report_prints_the_ml_section_and_json_carries_it(tmp_path, capsys):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert main(["report", "--from", str(path)]) == 0
    text = capsys.readouterr().out
    assert "Azure ML: % of compute instances/clusters compliant" in text and "Brute-force alerts" in text
    assert main(["report", "--from", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["azureMl"]["computeMttr"]["perOwner"][0]["mttrHours"] == 6.0


def test_report_rejects_rows_of_other_workspace_tables(tmp_path, capsys):
    """Syslog and SecurityAlert rows are read beside NSG Guard's; any other row without RecordType is an
    export of something else: exit 2 naming the line."""
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [*ROWS, {"Type": "Heartbeat", "Computer": "vm1"}]))
    assert main(["report", "--from", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"line {len(ROWS) + 1} is not an NSG Guard table row" in err and "Traceback" not in err
