"""Rows for the ``NsgGuardFindings_CL`` table (docs §4), built only from the shared schema's columns.

Every row has a deterministic ``RowId`` derived from the run (event id, sweep id...) and what the row is
about, so a retried upload repeats ids instead of inventing new meaning; KQL can ``summarize arg_max``
by ``RowId`` to drop duplicates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared import ENGINE_VERSION
from shared.app.events import Actor
from shared.core.attachment import attachment_column
from shared.core.findings import Finding
from shared.core.model import Nsg, split_resource_id
from shared.schema import findings_schema

RECORD_FINDING, RECORD_EVALUATION, RECORD_REMEDIATION, RECORD_SWEEP = "finding", "evaluation", "remediation", "sweep"


@dataclass(frozen=True, slots=True)
class RowContext:
    """Why rows are being written: which trigger, which run, who caused it."""

    trigger: str  # event | sweep | cli
    run_id: str  # event id, sweep id or CLI run id: the RowId namespace
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    event_id: str | None = None
    correlation_id: str | None = None
    actor: Actor | None = None
    sweep_id: str | None = None
    owner_tag: str = "owner"


def row_id(run_id: str, *parts: object) -> str:
    key = "|".join([run_id, *map(str, parts)]).lower().encode()
    return hashlib.sha256(key).hexdigest()[:32]


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _base(ctx: RowContext, record_type: str, rid: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "TimeGenerated": _iso(ctx.time), "RowId": rid, "RecordType": record_type, "Trigger": ctx.trigger,
        "EngineVersion": ENGINE_VERSION,
    }
    if ctx.event_id:
        row["EventId"] = ctx.event_id
    if ctx.correlation_id:
        row["CorrelationId"] = ctx.correlation_id
    if ctx.sweep_id:
        row["SweepId"] = ctx.sweep_id
    if ctx.actor is not None:
        row["Actor"] = ctx.actor.name
        row["ActorType"] = ctx.actor.principal_type
        row["ActorObjectId"] = ctx.actor.object_id
    return row


def _nsg_columns(nsg_id: str, nsg_name: str | None = None, subscription: str | None = None,
                 resource_group: str | None = None) -> dict[str, Any]:
    parts = split_resource_id(nsg_id)
    return {"NsgId": nsg_id, "NsgName": nsg_name or nsg_id.rstrip("/").rsplit("/", 1)[-1],
            "SubscriptionId": subscription or parts.get("subscriptions", ""),
            "ResourceGroup": resource_group or parts.get("resourcegroups", "")}


def finding_row(f: Finding, ctx: RowContext) -> dict[str, Any]:
    row = _base(ctx, RECORD_FINDING, row_id(ctx.run_id, RECORD_FINDING, f.finding_id))
    row.update(_nsg_columns(f.nsg.id, f.nsg.name, f.nsg.subscription_id, f.nsg.resource_group))
    row.update({
        "FindingId": f.finding_id, "Status": f.status, "Severity": f.severity, "Port": f.port,
        "PortKind": f.port_kind, "Exposure": f.exposure, "Active": f.active, "RuleName": f.rule.name,
        "RuleId": f.rule.id, "Priority": f.rule.priority, "Sources": f.rule.source_texts, "Reason": f.reason,
    })
    owner = f.nsg.tag(ctx.owner_tag)
    if owner:
        row["Owner"] = owner
    if f.details:
        row["Details"] = dict(f.details)
    row["Attachments"] = attachment_column(f.nsg)  # the same on every path (the sweep adds its view)
    return row


def evaluation_row(ctx: RowContext, nsg: Nsg | None, findings: Iterable[Finding], *, nsg_id: str | None = None,
                   status: str = "Evaluated", details: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row per NSG evaluated, listing the finding ids open afterwards (resolution needs no state).

    ``nsg`` is None when the NSG is gone (deleted) or could not be read; then ``nsg_id`` names it.
    """
    target = nsg.id if nsg is not None else nsg_id
    assert target, "evaluation_row needs an NSG or an NSG id"
    row = _base(ctx, RECORD_EVALUATION, row_id(ctx.run_id, RECORD_EVALUATION, target))
    if nsg is not None:
        row.update(_nsg_columns(nsg.id, nsg.name, nsg.subscription_id, nsg.resource_group))
        owner = nsg.tag(ctx.owner_tag)
        if owner:
            row["Owner"] = owner
        row["Attachments"] = attachment_column(nsg)
    else:
        row.update(_nsg_columns(target))
    open_ids = sorted({f.finding_id for f in findings if f.counts_against_compliance})
    row["OpenFindingIds"] = open_ids
    row["Status"] = status
    row["Result"] = "compliant" if not open_ids and status == "Evaluated" else (
        "noncompliant" if open_ids else status.lower())
    if details:
        row["Details"] = details
    return row


def validate_rows(rows: Iterable[dict[str, Any]]) -> None:
    """Fail fast (a bug, not bad input) if a row carries a column the table does not declare."""
    names = findings_schema().names
    for row in rows:
        unknown = set(row) - names
        if unknown:
            raise ValueError(f"row has columns not in the table schema: {sorted(unknown)}")


def remediation_row(ctx: RowContext, record: Any) -> dict[str, Any]:
    """One ``RecordType == "remediation"`` row per planned/written/failed action or skipped target.

    ``record`` is a :class:`shared.azure.remediate.RemediationRecord`. ``RuleBefore``/``RuleAfter`` carry the
    ARM rule bodies (null when created/deleted) and ``NsgId`` the NSG: everything ``nsg-guard restore`` needs.
    """
    action, skip, nsg = record.action, record.skip, record.nsg
    written = action.name if action is not None else None
    subject = written or (skip.rule_name if skip is not None else "")
    rid = row_id(ctx.run_id, RECORD_REMEDIATION, nsg.id, record.attempt, record.sequence, subject, record.result)
    row = _base(ctx, RECORD_REMEDIATION, rid)
    row.update(_nsg_columns(nsg.id, nsg.name, nsg.subscription_id, nsg.resource_group))
    owner = nsg.tag(ctx.owner_tag)
    if owner:
        row["Owner"] = owner
    row["Mode"] = record.mode
    row["Result"] = record.result
    details: dict[str, Any] = {"attempt": record.attempt, "sequence": record.sequence, **record.details}
    if action is not None:
        row["Action"] = action.op
        row["RuleName"] = action.offending_rule
        row["RuleId"] = f"{nsg.id}/securityRules/{action.offending_rule}"
        row["RuleBefore"] = action.replaces
        row["RuleAfter"] = None if action.op == "delete" else action.rule
        details.update(strategy=action.strategy, writtenRule=written, ports=list(action.ports),
                       findingIds=list(action.finding_ids))
    elif skip is not None:
        row["Action"] = "skip"
        row["RuleName"] = skip.rule_name
        row["RuleId"] = f"{nsg.id}/securityRules/{skip.rule_name}"
        details.update(skipCode=skip.code, ports=list(skip.ports), findingIds=list(skip.finding_ids))
    else:
        row["Action"] = "verify"
    ids = record.finding_ids or tuple(details.get("findingIds") or ())
    if ids:
        row["FindingId"] = ids[0]
    if record.ports:
        row["Port"] = record.ports[0]
    row["Details"] = details
    return row


def sweep_row(ctx: RowContext, summary: dict[str, Any]) -> dict[str, Any]:
    """The ``RecordType == "sweep"`` summary row of one sweep (docs §4; queries/compliance_over_time.kql).

    ``summary`` goes to ``Details``: ``scope``, ``nsgs``, ``compliant``, ``compliancePercent``,
    ``findings`` (open findings by severity), ``latent``, ``failures`` (a list), ``durationSeconds``...
    ``Result`` is ``completed`` (no failures), ``partial`` or ``failed`` (nothing evaluated).
    """
    assert ctx.sweep_id, "sweep_row needs RowContext.sweep_id"
    row = _base(ctx, RECORD_SWEEP, row_id(ctx.run_id, RECORD_SWEEP, ctx.sweep_id))
    failures = summary.get("failures") or []
    row["Result"] = "completed" if not failures else ("partial" if summary.get("nsgs") else "failed")
    row["Details"] = dict(summary)
    return row


class WriteAhead:
    """The reverter's ``before_write``: the ``first`` rows and one ``planned`` row per record, validated and
    sent (durable through the outbox) before anything is written. ``sent`` tells whether it ran."""

    def __init__(self, sink: Any, ctx: RowContext, first: Iterable[dict[str, Any]] = ()) -> None:
        self.sink, self.ctx, self.first, self.sent = sink, ctx, list(first), False

    def __call__(self, records: Iterable[Any]) -> None:
        rows = [*self.first, *(remediation_row(self.ctx, r) for r in records)]
        validate_rows(rows)
        self.sink.send(rows)
        self.sent = True
