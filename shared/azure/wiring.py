"""Build the adapters once per worker process from settings (lazily: never at import time)."""

from __future__ import annotations

from functools import cache

from shared.azure.credentials import make_credential
from shared.azure.ingestion import LogsIngestionSink
from shared.azure.network import AzureNetwork
from shared.azure.remediate import build_reverter
from shared.config import Settings
from shared.handlers import EventDeps
from shared.policy import Engine


def build_event_deps(settings: Settings) -> EventDeps:
    credential = make_credential(settings)
    network = AzureNetwork(settings, credential)
    engine = Engine(settings.policy)
    return EventDeps(reader=network, sink=LogsIngestionSink(settings, credential), engine=engine,
                     owner_tag=settings.owner_tag, exempt_tag=settings.exempt_tag,
                     reverter=build_reverter(settings, engine, network))


@cache
def event_deps() -> EventDeps:
    """The worker's dependencies, from the process environment, built on the first event."""
    return build_event_deps(Settings.from_env())
