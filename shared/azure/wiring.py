"""Build the adapters once per worker process from settings (lazily: never at import time)."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from shared.app.config import Settings
from shared.app.handlers import EventDeps
from shared.app.interfaces import RowSink
from shared.app.outbox import Outbox, OutboxSink, RetryReport
from shared.app.revertjobs import JobDeps
from shared.app.sweep import SweepDeps, SweepResult, run_sweep
from shared.azure.credentials import make_credential
from shared.azure.ingestion import LogsIngestionSink
from shared.azure.network import AzureNetwork
from shared.azure.policyexemptions import ArmPolicyExemptions
from shared.azure.remediate import build_reverter
from shared.core.errors import ConfigError
from shared.core.inventory import Scope
from shared.core.model import split_resource_id
from shared.core.policy import Engine

log = logging.getLogger("nsg_guard.wiring")


def build_outbox(settings: Settings, credential: Any) -> Outbox | None:
    """The outbox on Blob Storage, or None when no storage is configured (then nothing can be parked)."""
    from shared.azure.storage import BlobOutboxStore, blob_service, storage_configured

    if not storage_configured(settings):
        return None
    return Outbox(BlobOutboxStore(blob_service(settings, credential), settings.outbox_container),
                  base=float(settings.outbox_retry_base_s))


def outboxed(sink: RowSink, outbox: Outbox | None) -> RowSink:
    if outbox is None:
        log.warning("no outbox configured (OUTBOX_BLOB_ENDPOINT): rows that ingestion rejects are not parked")
        return sink
    return OutboxSink(sink, outbox)


def build_event_deps(settings: Settings) -> EventDeps:
    credential = make_credential(settings)
    # Rows that ingestion still rejects after the SDK's retries are parked (the event is then acknowledged);
    # if parking fails as well, OutboxUnavailable (a TransientError) propagates and Event Grid redelivers.
    sink = outboxed(LogsIngestionSink(settings, credential), build_outbox(settings, credential))
    network = AzureNetwork(settings, credential)
    engine = Engine(settings.policy)
    deps = EventDeps(reader=network, sink=sink, engine=engine, owner_tag=settings.owner_tag,
                     exempt_tag=settings.exempt_tag, reverter=build_reverter(settings, engine, network),
                     exemption_settings=settings.exemptions, exemptions=ArmPolicyExemptions(network),
                     computes=_aml(settings, credential, None))
    return with_revert_queue(deps, settings, credential)


def with_revert_queue(deps: EventDeps, settings: Settings, credential: Any) -> EventDeps:
    """The revert queue and the scope check on the event path (docs/revert.md)."""
    from shared.azure.queue import build_queue

    deps.in_scope = scope_check(settings, credential)
    deps.jit_principals = settings.jit_principals
    if deps.reverter is None:
        return deps
    deps.jobs = build_queue(settings, credential)
    if deps.jobs is None and not settings.local:
        raise ConfigError("REVERT_MODE is on but the revert queue is not configured: set "
                          "REVERT_QUEUE__queueServiceUri (writes never happen inside Event Grid's 30 s delivery)")
    if deps.jobs is None:
        log.warning("no revert queue configured: reverting inside the event delivery (local mode only)")
    return deps


def scope_check(settings: Settings, credential: Any) -> Any:
    """None when everything readable is in scope; else a function telling whether an NSG or Azure ML compute
    id is in scope (subscriptions by id; management groups through Resource Graph, one query per resource and
    worker: the NSG itself, or the compute's workspace, since Resource Graph does not index computes)."""
    subs = {s.lower() for s in settings.sweep_subscriptions}
    mgs = tuple(settings.sweep_management_groups)
    if not subs and not mgs:
        return None
    if subs:
        def by_subscription(resource_id: str) -> bool:
            return split_resource_id(resource_id).get("subscriptions", "").lower() in subs
        return by_subscription

    from shared.azure.graph import ResourceGraphSource
    from shared.core.aml import workspace_of

    graph = ResourceGraphSource(settings, credential)

    @cache
    def by_management_group(resource_id: str) -> bool:
        kind = "microsoft.network/networksecuritygroups"
        if "/providers/microsoft.machinelearningservices/" in resource_id.lower():
            resource_id, kind = workspace_of(resource_id), "microsoft.machinelearningservices/workspaces"
        query = (f"Resources | where type =~ '{kind}' and id =~ '" + resource_id.replace("'", "")
                 + "' | project id")
        want = resource_id.lower()
        return any(str(row.get("id", "")).lower() == want for page in graph.pages(query, Scope((), mgs))
                   for row in page)
    return by_management_group


@cache
def job_deps() -> JobDeps:
    """The ``revert_job`` function's dependencies (built on the first job of the worker)."""
    from shared.azure.queue import build_locks, build_queue
    from shared.azure.runwindow import build_window

    settings = Settings.from_env()
    credential = make_credential(settings)
    sink = outboxed(LogsIngestionSink(settings, credential), build_outbox(settings, credential))
    network = AzureNetwork(settings, credential)
    engine = Engine(settings.policy)
    reverter = build_reverter(settings, engine, network)
    if reverter is None:
        raise ConfigError("revert_job ran with REVERT_MODE=off: set REVERT_MODE or drain the queue")
    return JobDeps(reader=network, sink=sink, reverter=reverter, locks=build_locks(settings, credential),
                   in_scope=scope_check(settings, credential) or (lambda nsg_id: True), owner_tag=settings.owner_tag,
                   exempt_tag=settings.exempt_tag, exemption_settings=settings.exemptions,
                   exemptions=ArmPolicyExemptions(network),
                   window=build_window(settings, credential), requeue=build_queue(settings, credential))


@cache
def event_deps() -> EventDeps:
    """The worker's dependencies, from the process environment, built on the first event."""
    return build_event_deps(Settings.from_env())


def build_sweep_deps(settings: Settings, *, sink: RowSink | None = None, **client_options: Any) -> SweepDeps:
    from shared.azure.graph import ArmSubscriptionLister, ResourceGraphSource

    credential = make_credential(settings)
    if sink is None:
        sink = outboxed(LogsIngestionSink(settings, credential), build_outbox(settings, credential))
    network, engine = AzureNetwork(settings, credential, **client_options), Engine(settings.policy)
    return SweepDeps(
        sink=sink, engine=engine,
        graph=(graph := ResourceGraphSource(settings, credential, **client_options)),
        lister=ArmSubscriptionLister(network),
        exemption_settings=settings.exemptions, reverter=build_reverter(settings, engine, network),
        exemption_fetch=ArmPolicyExemptions(network).get,
        scope=Scope(settings.sweep_subscriptions, settings.sweep_management_groups),
        owner_tag=settings.owner_tag, exempt_tag=settings.exempt_tag, batch_rows=settings.sweep_batch_rows,
        jobs=_sweep_jobs(settings, credential),
        computes=_aml(settings, credential, graph, **client_options),
    )


def _sweep_jobs(settings: Settings, credential: Any) -> Any:
    """The revert queue when reverting is on: lapsed exemptions found by the sweep become revert jobs."""
    if settings.revert_mode == "off":
        return None
    from shared.azure.queue import build_queue

    return build_queue(settings, credential)


def sweep_from_env() -> SweepResult:
    """The ``nightly_sweep`` timer: one sweep with fresh clients (a night apart, nothing worth caching)."""
    deps = build_sweep_deps(Settings.from_env())
    try:
        return run_sweep(deps)
    finally:
        _close(deps.graph, deps.sink, deps.computes)


def retry_outbox_from_env() -> RetryReport | None:
    """The ``outbox_retry`` timer: send parked rows that are due, straight to Log Analytics."""
    settings = Settings.from_env()
    credential = make_credential(settings)
    outbox = build_outbox(settings, credential)
    if outbox is None:
        log.warning("outbox_retry: no outbox configured (OUTBOX_BLOB_ENDPOINT); nothing to do")
        return None
    sink = LogsIngestionSink(settings, credential)
    try:
        report = outbox.retry(sink)
    finally:
        sink.close()
    log.info("outbox_retry: %s", report.summary())
    return report


def _close(*things: Any) -> None:
    for thing in things:
        close = getattr(thing, "close", None)
        if close is not None:
            close()


def _aml(settings: Settings, credential: Any, graph: Any, **client_options: Any) -> Any:
    """The Azure ML lens's compute source (clients built on first use; ``graph`` None = its own)."""
    from shared.azure.aml import AzureMl

    return AzureMl(settings, credential, graph, own_graph=graph is None, **client_options)
