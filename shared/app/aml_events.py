"""The compute event use case: a compute was written or deleted; judge it now, not at night.

Like the NSG path, the event is a pointer: the compute is re-read over ARM, the NSGs that may guard it are
read from Resource Graph, and the one pure verdict (:func:`shared.core.aml.judge`) decides. A compute that is
gone gets a ``Deleted`` compute row (its open findings resolve); one that cannot be read or parsed gets an
``Unknown`` compute row naming the error. Transient failures raise so Event Grid redelivers.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.app.aml_rows import RECORD_COMPUTE, gone_row, verdict_rows
from shared.app.aml_sweep import load_compute
from shared.app.events import ComputeChange
from shared.app.rows import RowContext, _base, row_id, validate_rows
from shared.core.errors import InputError, NsgNotFound

log = logging.getLogger("nsg_guard.aml")


def handle_compute_event(change: ComputeChange, deps: Any) -> Any:
    """Returns a :class:`shared.app.handlers.EventOutcome`; ``deps`` is the handler's ``EventDeps``."""
    from shared.app.handlers import EventOutcome
    from shared.core.aml import judge

    source = getattr(deps, "computes", None)
    if source is None:
        return EventOutcome("ignored", change.event_id, "the Azure ML lens is not configured (no compute source)")
    ctx = RowContext(trigger="event", run_id=change.event_id, event_id=change.event_id,
                     correlation_id=change.correlation_id, actor=change.actor, owner_tag=deps.owner_tag)
    status = "evaluated"
    if change.deleted:
        rows = [gone_row(ctx, change.compute_id, "compute deleted: its findings are resolved")]
        status = "compute-gone"
    else:
        try:
            raw = source.get_compute(change.compute_id)
            compute, nodes_error = load_compute(source, raw, deps.owner_tag)
            if nodes_error is not None:
                log.warning("compute %s: listNodes failed, judged on port 22 only: %s", compute.id, nodes_error)
            nsgs = source.nsgs_near(compute)
            verdict = judge(compute, deps.engine.evaluator, nsgs, approvals=_approvals(compute, nsgs, deps, change))
            rows = verdict_rows(ctx, verdict)
        except NsgNotFound:
            rows = [gone_row(ctx, change.compute_id, "compute not found when read after the event: deleted since")]
            status = "compute-gone"
        except InputError as exc:
            log.error("cannot judge compute %s: %s", change.compute_id, exc)
            row = _base(ctx, RECORD_COMPUTE, row_id(ctx.run_id, RECORD_COMPUTE, change.compute_id))
            row.update({"ComputeId": change.compute_id, "ComputeName": change.compute_id.rsplit("/", 1)[-1],
                        "Status": "Unknown", "Result": "error", "OpenFindingIds": [],
                        "Reason": f"could not judge this compute: {str(exc)[:400]}"})
            rows = [row]
            status = "invalid-compute"
    validate_rows(rows)
    deps.sink.send(rows)  # TransientError propagates: Event Grid redelivers, rows repeat their RowIds
    log.info("event %s (%s on %s): %s, %d rows", change.event_id, change.kind, change.compute_id, status, len(rows))
    return EventOutcome(status, change.event_id, "", rows)


def _approvals(compute: Any, nsgs: Any, deps: Any, change: ComputeChange) -> dict[str, Any]:
    """The rules approved by an exemption on the NSGs that guard the compute, read like the NSG event path
    reads them (the NSG's policy exemptions over ARM; TransientError propagates for a redelivery)."""
    from shared.core.aml import approvals_of, guards
    from shared.core.exemptions import apply_exemptions, exemption_context, nsg_exemptions

    out: dict[str, Any] = {}
    for nsg in nsgs:
        if guards(nsg, compute) is None:
            continue
        with exemption_context(nsg_exemptions(deps, nsg.id, change.actor)):
            approved = approvals_of(apply_exemptions(deps.engine.evaluate(nsg), deps.exempt_tag, deps.clock()))
        if approved:
            out[nsg.id.lower()] = approved
    return out
