"""Use cases: what happens when an NSG changes. Thin over the pure core, independent of Azure SDKs.

Rules of thumb (docs §3): the event is a pointer, so the NSG is always re-read (exactly one GET);
transient failures raise so Event Grid redelivers; permanent ones are recorded and acknowledged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.app.aml_events import handle_compute_event
from shared.app.events import Ignored, NsgChange, parse_compute_event, parse_event
from shared.app.interfaces import NsgReader, RowSink
from shared.app.revertjobs import job_for
from shared.app.rows import RowContext, WriteAhead, evaluation_row, finding_row, remediation_row, validate_rows
from shared.core.errors import InputError, NsgNotFound, TransientError
from shared.core.exemptions import DEFAULT_EXEMPT_TAG, apply_exemptions, event_exemptions, exemption_context
from shared.core.policy import Engine

if TYPE_CHECKING:  # the reverter lives with the Azure adapters; handlers only call it
    from shared.app.revert import RemediationRecord, Reverter
    from shared.app.revertjobs import JobQueue, RevertJob

log = logging.getLogger("nsg_guard.handlers")


@dataclass
class EventDeps:
    """What the event handler needs; built once per worker by ``shared.azure.wiring``."""

    reader: NsgReader
    sink: RowSink
    engine: Engine
    owner_tag: str = "owner"
    exempt_tag: str = DEFAULT_EXEMPT_TAG
    reverter: Reverter | None = None  # None = REVERT_MODE off
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    jobs: JobQueue | None = None  # the revert queue: set, the revert happens in revert_job (docs/revert.md)
    in_scope: Callable[[str], bool] | None = None  # SWEEP_SUBSCRIPTIONS / SWEEP_MANAGEMENT_GROUPS
    jit_principals: frozenset[str] = frozenset()
    exemption_settings: Any = None  # ExemptionSettings (None: defaults with exempt_tag)
    exemptions: Any = None  # policy exemption reader (shared.azure.policyexemptions); None: none known
    computes: Any = None  # shared.azure.aml.AzureMl: the Azure ML lens on compute events (None = off)


@dataclass(frozen=True)
class EventOutcome:
    status: str  # evaluated | nsg-gone | invalid-nsg | ignored | rejected
    event_id: str | None
    reason: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    remediation: list[RemediationRecord] = field(default_factory=list)
    retry_reason: str | None = None  # a revert write failed transiently: redeliver after recording
    job: RevertJob | None = None  # enqueued after the rows are recorded


def handle_nsg_event(raw_event: Any, deps: EventDeps) -> EventOutcome:
    """Evaluate the NSG an event points at and record the result.

    Returns an outcome for acknowledged events (including malformed and ignored ones); raises
    :class:`shared.core.errors.TransientError` when the work must be redelivered.
    """
    try:
        compute = parse_compute_event(raw_event)
        if compute is not None:
            if deps.in_scope is not None and not deps.in_scope(compute.compute_id):
                return _out_of_scope(compute.event_id, compute.compute_id)
            return handle_compute_event(compute, deps)
        change = parse_event(raw_event)
    except InputError as exc:
        log.error("rejected malformed event: %s", exc)
        return EventOutcome("rejected", None, str(exc))
    if isinstance(change, Ignored):
        log.info("ignored event %s: %s", change.event_id, change.reason)
        return EventOutcome("ignored", change.event_id, change.reason)

    if deps.in_scope is not None and not deps.in_scope(change.nsg_id):
        return _out_of_scope(change.event_id, change.nsg_id)
    ctx = RowContext(trigger="event", run_id=change.event_id, event_id=change.event_id,
                     correlation_id=change.correlation_id, actor=change.actor, owner_tag=deps.owner_tag)
    with exemption_context(event_exemptions(deps, change)) as exemptions:
        outcome = _evaluate(change, deps, ctx, exemptions.index.available)
    validate_rows(outcome.rows)
    deps.sink.send(outcome.rows)  # raises TransientError: Event Grid redelivers, rows repeat their RowIds
    if outcome.job is not None and deps.jobs is not None:
        deps.jobs.enqueue(outcome.job.to_json())  # after the rows: the Open row naming the actor is never lost
    log.info("event %s (%s on %s): %s, %d rows", change.event_id, change.kind, change.nsg_id, outcome.status,
             len(outcome.rows))
    if outcome.retry_reason:
        # Recorded first (the audit trail never loses a write), then redelivered: the re-plan is idempotent.
        raise TransientError(f"revert of {change.nsg_id} failed transiently: {outcome.retry_reason}")
    return outcome


def _out_of_scope(event_id: str | None, resource_id: str) -> EventOutcome:
    log.warning("ignored event %s: %s is outside the configured scope", event_id, resource_id)
    return EventOutcome("ignored", event_id, f"{resource_id} is outside the configured scope "
                        "(SWEEP_SUBSCRIPTIONS / SWEEP_MANAGEMENT_GROUPS)")


def _evaluate(change: NsgChange, deps: EventDeps, ctx: RowContext, exemptions_read: bool = True) -> EventOutcome:
    details = {"operation": change.operation, "resourceId": change.resource_id}
    if change.nsg_deleted:
        row = evaluation_row(ctx, None, (), nsg_id=change.nsg_id, status="Deleted", details=details)
        return EventOutcome("nsg-gone", change.event_id, "NSG deleted: its findings are resolved", [row])
    try:
        nsg = deps.reader.get_nsg(change.nsg_id)
    except NsgNotFound:
        details["note"] = "NSG not found when read after the event: deleted since"
        row = evaluation_row(ctx, None, (), nsg_id=change.nsg_id, status="Deleted", details=details)
        return EventOutcome("nsg-gone", change.event_id, "NSG no longer exists", [row])
    except InputError as exc:
        # Azure returned something we refuse to guess about: make it visible in the table and alertable.
        log.error("cannot evaluate %s: %s", change.nsg_id, exc)
        details["error"] = str(exc)
        row = evaluation_row(ctx, None, (), nsg_id=change.nsg_id, status="Error", details=details)
        return EventOutcome("invalid-nsg", change.event_id, str(exc), [row])
    evaluation = apply_exemptions(deps.engine.evaluate(nsg), deps.exempt_tag, deps.clock())
    rows = [finding_row(f, ctx) for f in evaluation.findings]
    if deps.reverter is None or not exemptions_read:  # never revert what an unreadable exemption may cover
        rows.append(evaluation_row(ctx, nsg, evaluation.findings, details=details))
        return EventOutcome("evaluated", change.event_id, "", rows)
    if deps.jobs is not None:
        from shared.core.remediation import needs_revert

        rows.append(evaluation_row(ctx, nsg, evaluation.findings, details=details))
        wanted = needs_revert(nsg, evaluation.findings, deps.engine.evaluator, deps.reverter.config.scope)
        job = job_for(change, deps.clock(), deps.jit_principals) if wanted else None
        return EventOutcome("evaluated", change.event_id, "", rows, job=job)
    ahead = WriteAhead(deps.sink, ctx, rows)  # the findings go out with the planned rows
    revert = deps.reverter.run(evaluation, protected=job_for(change, deps.clock(), deps.jit_principals).protected,
                               before_write=ahead)
    if ahead.sent:  # the findings are stored already: the rows after the writes do not repeat them
        del rows[:len(ahead.first)]
    rows.extend(remediation_row(ctx, r) for r in revert.records)
    final, eval_ctx = evaluation, ctx
    if revert.wrote:
        # The evaluation row describes the NSG as re-read after our writes (later timestamp: KQL resolution).
        details["remediated"] = True
        eval_ctx = replace(ctx, time=deps.clock())
        final = revert.evaluation or evaluation
        if revert.evaluation is None:
            row = evaluation_row(eval_ctx, None, (), nsg_id=nsg.id, status="Deleted", details=details)
            return EventOutcome("nsg-gone", change.event_id, "NSG deleted during revert", [*rows, row],
                                revert.records, revert.retryable_failure)
    rows.append(evaluation_row(eval_ctx, final.nsg, final.findings, details=details))
    return EventOutcome("evaluated", change.event_id, "", rows, revert.records, revert.retryable_failure)
