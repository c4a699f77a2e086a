"""Table rows of the Azure ML lens: one ``compute`` row per compute per sweep/event, and its findings.

Compute findings (SSH exposure, no owner) carry ``ComputeId`` and no ``NsgId`` on purpose: they are opened
and resolved by compute rows (``OpenFindingIds``), not by NSG evaluation rows, so the NSG KPIs stay as they
were and ``queries/aml_mttr.kql`` measures computes. The NSG in the path is in ``RuleId`` and ``Details``.
"""

from __future__ import annotations

from typing import Any

from shared.app.rows import RowContext, _base, row_id  # one row envelope for every record type
from shared.core.aml import Compute, ComputeVerdict

RECORD_COMPUTE = "compute"


def compute_columns(c: Compute) -> dict[str, Any]:
    cols: dict[str, Any] = {"ComputeId": c.id, "ComputeName": c.name, "ComputeType": c.compute_type}
    if c.owner:
        cols["ComputeOwner"] = c.owner
    if c.shown_public_ip:
        cols["ComputePublicIp"] = c.shown_public_ip
    return cols


def verdict_rows(ctx: RowContext, v: ComputeVerdict) -> list[dict[str, Any]]:
    """Finding rows first, then the compute row listing the findings still open (resolution needs no state)."""
    c = v.compute
    rows = []
    for f in v.findings:
        row = _base(ctx, "finding", row_id(ctx.run_id, "finding", f.finding_id))
        row.update(compute_columns(c))
        row.update({"FindingId": f.finding_id, "Status": f.status, "Severity": f.severity, "PortKind": f.kind,
                    "Active": f.status == "Open", "Reason": f.reason, "SubscriptionId": c.subscription_id,
                    "ResourceGroup": c.resource_group})
        if f.port is not None:
            row["Port"] = f.port
        if f.exposure is not None:
            row["Exposure"] = f.exposure
        if f.rule_names and f.nsg_id:
            row["RuleName"] = f.rule_names[0]
            row["RuleId"] = f"{f.nsg_id}/securityRules/{f.rule_names[0]}"
        if c.owner:
            row["Owner"] = c.owner
        row["Details"] = {"lens": "aml", "nsgId": f.nsg_id, "rules": list(f.rule_names[:20])}
        rows.append(row)
    row = _base(ctx, RECORD_COMPUTE, row_id(ctx.run_id, RECORD_COMPUTE, c.id))
    row.update(compute_columns(c))
    row.update({"Status": v.status, "Reason": v.reason, "SubscriptionId": c.subscription_id,
                "ResourceGroup": c.resource_group, "OpenFindingIds": v.open_finding_ids,
                "Result": v.status.lower()})
    if v.severity:
        row["Severity"] = v.severity
    if v.port is not None:
        row["Port"] = v.port
        row["PortKind"] = "ssh" if v.port == 22 else "ssh-custom"
    if v.exposure is not None:
        row["Exposure"] = v.exposure
    if c.owner:
        row["Owner"] = c.owner
    subnet = next((h for h in v.hops if h.role == "subnet"), None) or (v.hops[0] if v.hops else None)
    if subnet is not None:
        row["NsgId"], row["NsgName"] = subnet.nsg_id, subnet.nsg_name
    row["Details"] = dict(v.details)
    rows.append(row)
    return rows


def gone_row(ctx: RowContext, compute_id: str, reason: str) -> dict[str, Any]:
    """A deleted compute: a compute row with no open findings resolves everything it had open."""
    parts = compute_id.strip("/").split("/")
    row = _base(ctx, RECORD_COMPUTE, row_id(ctx.run_id, RECORD_COMPUTE, compute_id))
    row.update({"ComputeId": compute_id, "ComputeName": parts[-1], "Status": "Deleted", "Reason": reason,
                "OpenFindingIds": [], "Result": "deleted",
                "SubscriptionId": parts[1] if len(parts) > 1 else "",
                "ResourceGroup": parts[3] if len(parts) > 3 else ""})
    return row


def decorate(rows: list[dict[str, Any]], computes: list[Compute]) -> None:
    """Give an NSG's rows the columns of the compute(s) it guards (the first one; all ids in Details)."""
    if not computes:
        return
    first = compute_columns(computes[0])
    for row in rows:
        row.update(first)
        if len(computes) > 1:
            details = row.get("Details")
            details = dict(details) if isinstance(details, dict) else {}
            details["computes"] = [c.id for c in computes[:20]]
            details["computeCount"] = len(computes)
            row["Details"] = details
