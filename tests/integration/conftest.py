"""Integration fixtures: the local Azure stand-ins + the app configured against them (local auth mode)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

from localazure.server import LocalAzure
from localazure.testing import local_azure, local_azure_options  # noqa: F401  (fixtures)


@cache
def _functions() -> dict[str, Any]:
    import function_app

    # get_functions() indexes (and validates) the app once, as the worker does at start-up.
    return {fn.get_function_name(): fn.get_user_function() for fn in function_app.app.get_functions()}


def function(name: str) -> Any:
    """The user function behind a decorated trigger, as the Functions worker would call it."""
    return _functions()[name]


def local_env(azure: LocalAzure, **extra: str) -> dict[str, str]:
    return {
        "NSG_GUARD_AUTH": "local", "NSG_GUARD_LOCAL_TOKEN": azure.token, "NSG_GUARD_CA_BUNDLE": str(azure.ca_path),
        "ARM_ENDPOINT": azure.url, "LOGS_INGESTION_ENDPOINT": azure.url, "LOGS_DCR_IMMUTABLE_ID": azure.dcr_id,
        "SDK_RETRY_TOTAL": "3", "SDK_RETRY_BACKOFF": "0.01", **extra,
    }


@dataclass
class Guard:
    azure: LocalAzure

    def deliver(self, event: Any) -> Any:
        return function("on_nsg_change")(event)

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
