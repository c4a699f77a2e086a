"""Integration fixtures: the local Azure stand-ins + the app configured against them (local auth mode)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from localazure.functions import eventgrid_event, function
from localazure.server import LocalAzure
from localazure.testing import local_azure, local_azure_options  # noqa: F401  (fixtures)


def local_env(azure: LocalAzure, **extra: str) -> dict[str, str]:
    return azure.app_settings(SDK_RETRY_TOTAL="3", SDK_RETRY_BACKOFF="0.01", **extra)


@dataclass
class Guard:
    azure: LocalAzure

    def deliver(self, event: Any) -> Any:
        return function("on_nsg_change")(event)

    def deliver_published(self) -> int:
        """Deliver every event the stand-ins published (as Event Grid would), oldest first."""
        events = self.azure.event_grid.drain()
        for event in events:
            self.deliver(eventgrid_event(event))
        return len(events)

    def rows(self, **where: Any) -> list[dict[str, Any]]:
        return [r for r in self.azure.ingested() if all(r.get(k) == v for k, v in where.items())]


@pytest.fixture
def guard(local_azure: LocalAzure, monkeypatch: pytest.MonkeyPatch) -> Iterator[Guard]:  # noqa: F811
    from shared.azure.wiring import event_deps

    for key, value in local_env(local_azure).items():
        monkeypatch.setenv(key, value)
    event_deps.cache_clear()
    yield Guard(local_azure)
    event_deps.cache_clear()


@pytest.fixture
def env(local_azure: LocalAzure, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:  # noqa: F811
    """The local stand-ins' settings, also set in the process environment (as the Functions host would)."""
    values = local_env(local_azure)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values
