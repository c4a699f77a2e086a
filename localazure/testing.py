"""pytest helpers: a fresh local Azure per test, plus ready SDK client factories.

Use from any test directory::

    pytest_plugins = ["localazure.testing"]        # in a conftest.py, or
    from localazure.testing import local_azure     # noqa: F401  (import the fixture)

    def test_x(local_azure):
        net = local_azure.network_client("sub1")
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .arm import nsg_id
from .server import LocalAzure


def rule_body(priority: int = 100, port: str = "22", source: str = "*", **extra: Any) -> dict[str, Any]:
    """``properties`` of an inbound TCP Allow rule (SSH from anywhere by default).

    ``extra`` overrides or adds fields.
    """
    props = {
        "protocol": "Tcp",
        "sourcePortRange": "*",
        "destinationPortRange": port,
        "sourceAddressPrefix": source,
        "destinationAddressPrefix": "*",
        "access": "Allow",
        "priority": priority,
        "direction": "Inbound",
    }
    props.update(extra)
    return props


def nsg_body(
    sub: str, rg: str, name: str, rules: list[tuple[str, dict[str, Any]]] | None = None, **extra: Any
) -> dict[str, Any]:
    """A minimal ARM NSG body for :meth:`LocalAzure.seed_nsg`; ``rules`` = [(name, properties), ...]."""
    body = {
        "id": nsg_id(sub, rg, name),
        "name": name,
        "location": "westeurope",
        "tags": {"owner": "team-a"},
        "properties": {"securityRules": [{"name": n, "properties": p} for n, p in (rules or [])]},
    }
    body.update(extra)
    return body


DEFAULT_OPTIONS: dict[str, Any] = {"page_size": 50, "lro_polls": 1, "lro_retry_after": 0.01}


@pytest.fixture
def local_azure_options() -> dict[str, Any]:
    """Override in a test module / conftest to change server options (e.g. ``{"page_size": 5}``)."""
    return dict(DEFAULT_OPTIONS)


@pytest.fixture
def local_azure(local_azure_options: dict[str, Any], tmp_path: Any) -> Iterator[LocalAzure]:
    """A started server with ingested rows mirrored to ``tmp_path / "ingested"``; stopped after the test."""
    options = {"data_dir": tmp_path / "ingested", **local_azure_options}
    with LocalAzure(**options) as azure:
        yield azure


@pytest.fixture
def network_client(local_azure: LocalAzure) -> Any:
    """``NetworkManagementClient`` for subscription ``sub1``; call ``local_azure.network_client(sub)`` for "
    "others."""
    return local_azure.network_client("sub1")


@pytest.fixture
def graph_client(local_azure: LocalAzure) -> Any:
    return local_azure.graph_client()


@pytest.fixture
def ingestion_client(local_azure: LocalAzure) -> Any:
    return local_azure.ingestion_client()
