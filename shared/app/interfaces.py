"""The ports between the pure core and the Azure adapters: small protocols the handlers depend on.

Production implements them in ``shared.azure``; unit tests can use in-memory implementations; the
integration tests use the production adapters against the local stand-ins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from shared.core.model import Nsg


class NsgReader(Protocol):
    def get_nsg(self, nsg_id: str) -> Nsg:
        """Read one NSG. Raises NsgNotFound, TransientError (retry later) or InputError (bad data)."""
        ...


class RowSink(Protocol):
    def send(self, rows: Sequence[dict[str, Any]]) -> None:
        """Deliver rows to the table, all or nothing from the caller's view. Raises TransientError."""
        ...
