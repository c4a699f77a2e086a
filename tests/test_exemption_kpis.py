"""KPIs: exempt counts beside open ones, and the exemptions in force (``nsg-guard report``)."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.core.kpis import compute_kpis, render_report

NSG = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/vendor-nsg"
EX = NSG + "/providers/Microsoft.Authorization/policyExemptions/nsg-guard-CHG-1-abc"


def t(hour: int) -> datetime:
    return datetime(2025, 6, 1, hour, tzinfo=UTC)


def finding(run: dict, hour: int, fid: str, status: str, severity: str = "high", **details) -> dict:
    return {"RecordType": "finding", "RowId": f"{fid}-{hour}", "TimeGenerated": t(hour), "FindingId": fid,
            "Status": status, "Severity": severity, "NsgId": NSG, "NsgName": "vendor-nsg", "RuleName": fid,
            "Details": details, **run}


def evaluation(run: dict, hour: int, open_ids: list[str]) -> dict:
    return {"RecordType": "evaluation", "RowId": f"ev-{hour}", "TimeGenerated": t(hour), "NsgId": NSG,
            "OpenFindingIds": open_ids, **run}


EXEMPTION = {"id": EX, "approver": "secops@contoso.example", "expiresOn": "2025-07-01T00:00:00Z", "ticket": "CHG-1"}
SWEEP = {"SweepId": "sweep-1"}


def test_exempt_counts_beside_open_and_exemptions_in_force_are_reported():
    rows = [finding(SWEEP, 1, "AllowVendor", "Exempt", exemption=EXEMPTION), finding(SWEEP, 1, "AllowAny", "Open"),
            evaluation(SWEEP, 1, ["AllowAny"])]
    k = compute_kpis(rows)
    assert dict(k.exempt_by_severity) == {"high": 1} and dict(k.open_by_severity) == {"high": 1}
    (entry,) = k.exemptions
    assert (entry["approver"], entry["expiresOn"], entry["rules"]) == (
        "secops@contoso.example", "2025-07-01T00:00:00Z", ["vendor-nsg/AllowVendor"])
    report = render_report(k)
    assert "Exemptions in force" in report and "nsg-guard-CHG-1-abc" in report and "secops@contoso.example" in report
    assert k.to_json()["exemptFindings"] == {"bySeverity": {"high": 1}}


def test_a_lapsed_exemption_is_no_longer_in_force():
    event = {"EventId": "e-2"}
    rows = [finding(SWEEP, 1, "AllowVendor", "Exempt", exemption=EXEMPTION), evaluation(SWEEP, 1, []),
            finding(event, 2, "AllowVendor", "Open"), evaluation(event, 2, ["AllowVendor"])]
    k = compute_kpis(rows)
    assert k.exemptions == [] and k.exempt_by_severity == [] and dict(k.open_by_severity) == {"high": 1}


def test_exempt_row_of_an_older_run_does_not_count():
    # The rule was deleted: the NSG's latest evaluation (a later sweep) has no finding rows for it.
    rows = [finding(SWEEP, 1, "AllowVendor", "Exempt", exemption=EXEMPTION), evaluation(SWEEP, 1, []),
            evaluation({"SweepId": "sweep-2"}, 5, [])]
    assert compute_kpis(rows).exemptions == []


def test_alert_queries_read_keys_the_rows_carry():
    """Every ``Details.<...>`` path in the exemption alerts exists in rows NSG Guard writes (the KQL semantic check
    in infra/validate.sh cannot know what ``Details`` holds)."""
    import re
    from pathlib import Path

    from shared.app.rows import RowContext, finding_row
    from shared.core.exemptions import ExemptionContext, ExemptionSettings, apply_exemptions
    from shared.core.model import parse_nsg
    from shared.core.policy import Engine
    from shared.core.policyexemptions import AssignmentMatcher, ExemptionIndex, rule_fingerprint
    from tests.nsgfactory import nsg, rule

    n = parse_nsg(nsg([rule("AllowSSH", 300, "22", "*"), rule("AllowRDP", 310, "3389", "*")],
                      tags={"nsg-guard-exempt": "rules=x; forever"}))
    base = {"policyAssignmentId": f"/subscriptions/{n.subscription_id}/providers/Microsoft.Authorization/"
                                  "policyAssignments/nsg-guard-internet-ssh", "exemptionCategory": "Waiver",
            "expiresOn": "2025-06-05T00:00:00Z"}
    approved = [{"rule": "AllowSSH", "fingerprint": rule_fingerprint(n.rules[0])}]
    good = {"id": n.id + "/providers/Microsoft.Authorization/policyExemptions/good", "properties": {
        **base, "metadata": {"nsgGuard": {"rules": approved}}},
        "systemData": {"createdBy": "secops@contoso.example", "createdAt": "2025-06-01T00:00:00Z"}}
    bad = {"id": n.id + "/providers/Microsoft.Authorization/policyExemptions/bad", "properties": base}
    now = datetime(2025, 6, 1, 12, tzinfo=UTC)
    index = ExemptionIndex.parse([good, bad], now=now, max_days=90, assignment=AssignmentMatcher())
    ev = apply_exemptions(Engine().evaluate(n), now=now, context=ExemptionContext(ExemptionSettings(), index))
    rows = [finding_row(f, RowContext(trigger="sweep", run_id="s")) for f in ev.findings]
    by_kind = {("exempt" if r["Status"] == "Exempt" else r["PortKind"]): r["Details"] for r in rows
               if r.get("Details")}
    queries = "".join(Path(f"queries/alert_{q}.kql").read_text() for q in ("new_exemption", "exemption_expiring"))
    paths = set(re.findall(r"Details\.([A-Za-z]+(?:\.[A-Za-z]+)?)", queries))
    assert paths == {"exemption.id", "exemption.approver", "exemption.expiresOn", "exemptionError.id", "exemptionTag"}
    for path in paths:
        head, _, tail = path.partition(".")
        holder = {"exemption": "exempt", "exemptionError": "exemption", "exemptionTag": "exemption-tag"}[head]
        value = by_kind[holder][head]
        assert (value[tail] if tail else value), path
    assert by_kind["exempt"]["exemption"]["expiresOn"] == "2025-06-05T00:00:00Z"
