from __future__ import annotations

from typing import Any

import pytest

from localazure.testing import (  # noqa: F401  (fixtures)
    graph_client,
    ingestion_client,
    local_azure,
    local_azure_options,
    network_client,
    nsg_body,
    rule_body,
)


@pytest.fixture
def seeded(local_azure: Any) -> str:  # noqa: F811
    """One NSG ``sub1/rg1/nsg1`` with an SSH-from-anywhere rule; returns its id."""
    return local_azure.seed_nsg(nsg_body("sub1", "rg1", "nsg1", [("ssh", rule_body())]))
