"""Revert jobs: the Event Grid function detects and records, a queue-triggered function acts.

Event Grid waits 30 s for a delivery and then redelivers while the first run still works, so writes (each
a long-running operation) never happen inside the delivery. ``on_nsg_change`` records the rows first, then
enqueues one job per NSG (``nsg-guard-revert``). ``revert_job`` takes the NSG's lease (one job per NSG at a
time), re-reads the NSG, plans, records the ``planned`` rows (durable through the outbox), writes, verifies
and records the result. A job enqueued before the last successful job for that NSG started reading needs no
work (that job already saw its change). Failures raise: the host retries with the message's dequeue count
and moves it to ``nsg-guard-revert-poison`` after ``maxDequeueCount`` (host.json); every retry re-emits the
audit rows rebuilt from the NSG, and the last one records the failure before the message is poisoned.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from shared.app.events import Actor, NsgChange
from shared.app.interfaces import NsgReader, RowSink
from shared.app.rows import RowContext, WriteAhead, evaluation_row, remediation_row, validate_rows
from shared.core.errors import InputError, NsgNotFound, TransientError
from shared.core.exemptions import DEFAULT_EXEMPT_TAG, exemption_context, nsg_exemptions
from shared.core.model import Nsg, split_resource_id

if TYPE_CHECKING:
    from shared.app.revert import RemediationRecord, Reverter
    from shared.core.blastradius import Slot

log = logging.getLogger("nsg_guard.revertjobs")
JOB_VERSION = 1
MAX_DEQUEUE = 5  # host.json extensions.queues.maxDequeueCount
MAX_JOB_BYTES = 16 * 1024
CLOCK_SKEW = timedelta(seconds=1)  # event and job run on different instances: compare times with a margin
MAX_QUEUE_DELAY_S = 7 * 86400 - 60  # a Storage queue message stays invisible for at most 7 days


class JobQueue(Protocol):
    def enqueue(self, job: dict[str, Any]) -> None:
        """Send one job message. Raises TransientError."""
        ...


class DelayedQueue(Protocol):
    def enqueue(self, job: dict[str, Any], delay_s: int = 0) -> None:
        """Send one job message, invisible for ``delay_s`` seconds. Raises TransientError."""
        ...


class RunWindow(Protocol):
    """The rolling blast-radius window shared by every revert job (``shared.azure.runwindow``)."""

    cap: int
    window: timedelta

    def take(self, nsg_id: str, now: datetime) -> Slot:
        """Count the NSG in the window, or say until when it is held. Raises TransientError."""
        ...


class HeldByWindow(Exception):
    """Raised from ``before_write``: the window is full, so nothing is written (the planned records say what
    would have been)."""

    def __init__(self, slot: Slot, records: list[Any]) -> None:
        super().__init__(f"blast-radius window full until {slot.retry_at}")
        self.slot, self.records = slot, records


class NsgLease(Protocol):
    covered: datetime | None

    def renew(self) -> None: ...
    def start(self, started: datetime) -> None: ...
    def complete(self, started: datetime) -> None: ...
    def release(self) -> None: ...


class NsgLocks(Protocol):
    def acquire(self, nsg_id: str) -> NsgLease | None:
        """The NSG's lease, or None while another job holds it. Raises TransientError."""
        ...

    def busy_since(self, nsg_id: str) -> datetime | None:
        """When the job holding the lease started reading the NSG."""
        ...


@dataclass(frozen=True, slots=True)
class RevertJob:
    nsg_id: str
    event_id: str
    enqueued_at: datetime
    correlation_id: str | None = None
    actor: Actor | None = None
    protected: tuple[str, ...] = ()  # rule names the JIT service wrote (never touched)

    def to_json(self) -> dict[str, Any]:
        actor = None if self.actor is None else {"name": self.actor.name, "objectId": self.actor.object_id,
                                                 "principalType": self.actor.principal_type,
                                                 "appId": self.actor.app_id}
        return {"v": JOB_VERSION, "nsgId": self.nsg_id, "eventId": self.event_id,
                "enqueuedAt": self.enqueued_at.astimezone(UTC).isoformat(), "correlationId": self.correlation_id,
                "actor": actor, "protected": list(self.protected)}

    @classmethod
    def parse(cls, body: str | bytes) -> RevertJob:
        """A hostile message becomes an InputError naming what is wrong."""
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        if len(body) > MAX_JOB_BYTES:
            raise InputError(f"revert job message is {len(body)} bytes (at most {MAX_JOB_BYTES})")
        try:
            doc = json.loads(body)
        except ValueError:
            raise InputError("revert job message is not JSON") from None
        if not isinstance(doc, dict):
            raise InputError("revert job message is not a JSON object")
        nsg_id, event_id = doc.get("nsgId"), doc.get("eventId")
        if not isinstance(nsg_id, str) or not isinstance(event_id, str):
            raise InputError("revert job message needs nsgId and eventId strings")
        parts = split_resource_id(nsg_id)
        if not parts.get("subscriptions") or not parts.get("networksecuritygroups"):
            raise InputError(f"revert job nsgId {nsg_id[:200]!r} is not an NSG resource id")
        try:
            enqueued = datetime.fromisoformat(str(doc.get("enqueuedAt")))
        except ValueError:
            raise InputError("revert job enqueuedAt is not an ISO 8601 time") from None
        if enqueued.tzinfo is None:
            enqueued = enqueued.replace(tzinfo=UTC)
        a = doc.get("actor")
        actor = Actor(*(str(a[k]) if a.get(k) is not None else None
                        for k in ("name", "objectId", "principalType", "appId"))) if isinstance(a, dict) else None
        protected = doc.get("protected") or []
        if not isinstance(protected, list) or not all(isinstance(x, str) for x in protected):
            raise InputError("revert job protected must be a list of rule names")
        corr = doc.get("correlationId")
        return cls(nsg_id, event_id, enqueued, corr if isinstance(corr, str) else None, actor, tuple(protected))


def job_for(change: NsgChange, now: datetime, jit_principals: frozenset[str]) -> RevertJob:
    """The job of an event; the event's rule is protected when the JIT service's identity wrote it."""
    ids = {(change.actor.object_id or "").lower(), (change.actor.app_id or "").lower()} - {""}
    protected = (change.rule_name,) if change.rule_name and ids & jit_principals else ()
    return RevertJob(change.nsg_id, change.event_id, now, change.correlation_id, change.actor, protected)


@dataclass
class JobDeps:
    reader: NsgReader
    sink: RowSink
    reverter: Reverter
    locks: NsgLocks
    in_scope: Callable[[str], bool] = lambda nsg_id: True
    owner_tag: str = "owner"
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    exempt_tag: str = DEFAULT_EXEMPT_TAG
    exemption_settings: Any = None  # ExemptionSettings (None: defaults with exempt_tag)
    exemptions: Any = None  # policy exemption reader (shared.azure.policyexemptions); None: none known
    window: RunWindow | None = None  # REVERT_MAX_NSGS_PER_WINDOW across jobs (None: no rolling cap)
    requeue: DelayedQueue | None = None  # where a held job goes back, delayed until the window has room


@dataclass
class JobOutcome:
    status: str  # done | covered | out-of-scope | rejected | nsg-gone | held
    reason: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    records: list[RemediationRecord] = field(default_factory=list)


def handle_revert_job(body: str | bytes, dequeue_count: int, deps: JobDeps) -> JobOutcome:
    """Perform one revert job. Raises TransientError to have the message retried (then poisoned)."""
    try:
        job = RevertJob.parse(body)
    except InputError as exc:
        log.error("rejected revert job: %s", exc)
        return JobOutcome("rejected", str(exc))
    if not deps.in_scope(job.nsg_id):
        log.warning("revert job for %s: outside the configured scope, nothing done", job.nsg_id)
        return JobOutcome("out-of-scope", f"{job.nsg_id} is outside SWEEP_SUBSCRIPTIONS/SWEEP_MANAGEMENT_GROUPS")
    lease = deps.locks.acquire(job.nsg_id)
    if lease is None:
        since = deps.locks.busy_since(job.nsg_id)
        if since is not None and since > job.enqueued_at + CLOCK_SKEW:
            return JobOutcome("covered", "the job working on this NSG read it after this change")
        raise TransientError(f"another revert job holds {job.nsg_id}: retried later")
    try:
        if lease.covered is not None and job.enqueued_at + CLOCK_SKEW < lease.covered and dequeue_count <= 1:
            return JobOutcome("covered", "a later job already read this NSG after the change")
        started = deps.clock()
        lease.start(started)
        with _kept_alive(lease):  # long-running writes outlast the 60 s lease: renew it while working
            outcome = _run(job, dequeue_count, deps)
        if outcome.status != "held":  # a held job did not cover its change: its requeued copy must still run
            lease.complete(started)
        return outcome
    except TransientError as exc:
        if dequeue_count >= MAX_DEQUEUE:
            _record_poison(job, dequeue_count, exc, deps)
        raise
    finally:
        lease.release()


@contextmanager
def _kept_alive(lease: NsgLease, every_s: float = 20.0) -> Iterator[None]:
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(every_s):
            lease.renew()

    thread = threading.Thread(target=renew, name="nsg-lease-renewal", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _ctx(job: RevertJob, deps: JobDeps) -> RowContext:
    return RowContext(trigger="event", run_id=f"job:{job.event_id}", event_id=job.event_id,
                      correlation_id=job.correlation_id, actor=job.actor, owner_tag=deps.owner_tag, time=deps.clock())


def _run(job: RevertJob, dequeue_count: int, deps: JobDeps) -> JobOutcome:
    ctx = _ctx(job, deps)
    try:
        nsg = deps.reader.get_nsg(job.nsg_id)
    except NsgNotFound:
        return JobOutcome("nsg-gone", "the NSG no longer exists")
    # The approvals are read again with the NSG: an exemption granted since the event is honoured, one that
    # lapsed is not, and a revert never runs while they cannot be read.
    with exemption_context(nsg_exemptions(deps, job.nsg_id, job.actor)) as exemptions:
        if not exemptions.index.available:
            log.error("revert job for %s: exemptions unreadable (%s), nothing reverted", job.nsg_id,
                      exemptions.index.error)
            return JobOutcome("exemptions-unavailable", f"policy exemptions unreadable: {exemptions.index.error}")
        return _revert(job, nsg, dequeue_count, deps, ctx)


def _revert(job: RevertJob, nsg: Nsg, dequeue_count: int, deps: JobDeps, ctx: RowContext) -> JobOutcome:
    evaluation = deps.reverter.evaluate(nsg)
    ahead = WriteAhead(deps.sink, ctx)

    def before_write(records: list[Any]) -> None:
        # The rolling cap is counted at the last moment, only for jobs that are about to write (a job with
        # nothing to do, a dry-run or a re-plan inside the job never takes a slot).
        if deps.window is not None:
            slot = deps.window.take(job.nsg_id, deps.clock())
            if not slot.granted:
                raise HeldByWindow(slot, records)
        ahead(records)

    try:
        revert = deps.reverter.run(evaluation, protected=job.protected, before_write=before_write,
                                   reconstructed=dequeue_count > 1)
    except HeldByWindow as held:
        return _hold(job, held, deps, ctx)
    rows = [remediation_row(ctx, r) for r in revert.records]
    if revert.wrote or revert.evaluation is not None:
        final = revert.evaluation or evaluation
        rows.append(evaluation_row(replace(ctx, time=deps.clock()), final.nsg, final.findings,
                                   details={"remediated": revert.wrote, "job": job.event_id}))
    validate_rows(rows)
    if rows:
        deps.sink.send(rows)  # raises TransientError: the job is retried and rebuilds these rows
    if revert.retryable_failure:
        raise TransientError(f"revert of {job.nsg_id} failed transiently: {revert.retryable_failure}")
    return JobOutcome("done", "", rows, revert.records)


def _hold(job: RevertJob, held: HeldByWindow, deps: JobDeps, ctx: RowContext) -> JobOutcome:
    """Over the rolling cap: record what would have been written as ``skipped`` (``blast-radius-nsgs``), then
    put the job back on the queue, invisible until the window has room. The finding stays Open meanwhile."""
    from shared.app.revert import RESULT_SKIPPED, RemediationRecord
    from shared.core.blastradius import SKIP_HELD

    window = deps.window
    assert window is not None and held.slot.retry_at is not None
    now = deps.clock()
    delay = max(1, min(int((held.slot.retry_at - now).total_seconds()) + 1, MAX_QUEUE_DELAY_S))
    reason = (f"held by the blast-radius cap: {held.slot.used} NSGs were written by revert jobs in the last "
              f"{int(window.window.total_seconds())} s, at most {window.cap} (REVERT_MAX_NSGS_PER_WINDOW); the "
              f"finding stays Open and this job runs again at {held.slot.retry_at.isoformat()}")
    records = [RemediationRecord(r.nsg, r.mode, RESULT_SKIPPED, r.attempt, r.sequence, action=r.action,
                                 details={"reason": reason, "skipCode": SKIP_HELD, "held": True, "cap": window.cap,
                                          "windowSeconds": int(window.window.total_seconds()),
                                          "retryAt": held.slot.retry_at.isoformat(),
                                          "plannedReason": r.details.get("reason")})
               for r in held.records]
    rows = [remediation_row(ctx, r) for r in records]
    validate_rows(rows)
    deps.sink.send(rows)  # the audit first: a job that cannot be requeued is retried and says it again
    if deps.requeue is None:
        raise TransientError(f"revert of {job.nsg_id} held by the blast-radius window until "
                             f"{held.slot.retry_at.isoformat()} and no queue to put it back on: retried")
    deps.requeue.enqueue(job.to_json(), delay_s=delay)
    log.warning("revert job for %s held by REVERT_MAX_NSGS_PER_WINDOW=%d: requeued for %d s", job.nsg_id,
                window.cap, delay)
    return JobOutcome("held", reason, rows, records)


def _record_poison(job: RevertJob, dequeue_count: int, exc: Exception, deps: JobDeps) -> None:
    """The last attempt: say so in the table before the host moves the message to the poison queue."""
    from shared.app.revert import RESULT_FAILED, RemediationRecord

    ctx = _ctx(job, deps)
    placeholder = Nsg(id=job.nsg_id, name=job.nsg_id.rsplit("/", 1)[-1], rules=())
    record = RemediationRecord(placeholder, deps.reverter.config.mode, RESULT_FAILED, dequeue_count, 0,
                               details={"reason": f"revert job failed {dequeue_count} times; moved to the poison "
                                                  f"queue: {exc}", "poisoned": True})
    try:
        deps.sink.send([remediation_row(ctx, record)])
    except TransientError:
        log.error("could not record the poisoned revert job for %s", job.nsg_id)
