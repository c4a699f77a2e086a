"""Build the adapters once per worker process from settings (lazily: never at import time)."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from shared.azure.credentials import make_credential
from shared.azure.ingestion import LogsIngestionSink
from shared.azure.network import AzureNetwork
from shared.azure.remediate import build_reverter
from shared.config import Settings
from shared.handlers import EventDeps
from shared.interfaces import RowSink
from shared.inventory import Scope
from shared.outbox import Outbox, OutboxSink, RetryReport
from shared.policy import Engine
from shared.sweep import SweepDeps, SweepResult, run_sweep

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
    return EventDeps(reader=network, sink=sink, engine=engine, owner_tag=settings.owner_tag,
                     exempt_tag=settings.exempt_tag, reverter=build_reverter(settings, engine, network),
                     computes=_aml(settings, credential, None))


@cache
def event_deps() -> EventDeps:
    """The worker's dependencies, from the process environment, built on the first event."""
    return build_event_deps(Settings.from_env())


def build_sweep_deps(settings: Settings, *, sink: RowSink | None = None, **client_options: Any) -> SweepDeps:
    from shared.azure.graph import ArmSubscriptionLister, ResourceGraphSource

    credential = make_credential(settings)
    if sink is None:
        sink = outboxed(LogsIngestionSink(settings, credential), build_outbox(settings, credential))
    return SweepDeps(
        sink=sink, engine=Engine(settings.policy),
        graph=(graph := ResourceGraphSource(settings, credential, **client_options)),
        lister=ArmSubscriptionLister(AzureNetwork(settings, credential, **client_options)),
        scope=Scope(settings.sweep_subscriptions, settings.sweep_management_groups),
        owner_tag=settings.owner_tag, exempt_tag=settings.exempt_tag, batch_rows=settings.sweep_batch_rows,
        computes=_aml(settings, credential, graph, **client_options),
    )


def sweep_from_env() -> SweepResult:
    """The ``nightly_sweep`` timer: one sweep with fresh clients (a night apart, nothing worth caching)."""
    deps = build_sweep_deps(Settings.from_env())
    try:
        return run_sweep(deps)
    finally:
        _close(deps.graph, deps.sink)


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
