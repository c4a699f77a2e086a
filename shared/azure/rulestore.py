"""The live NSGs for ``restore`` and ``migrate-ssh``: reads with AzureNetwork, writes with AzureRuleWriter, and
``restore_from_file``, the Python API of ``nsg-guard restore`` against Azure (or the local stand-ins)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.app.config import Settings
from shared.app.files import load_rows
from shared.app.restore import RestoreStep, plan_restore, restore
from shared.azure.credentials import make_credential
from shared.azure.network import AzureNetwork
from shared.azure.remediate import AzureRuleWriter
from shared.core.model import Nsg


class AzureRuleStore:
    """The live NSGs: reads with AzureNetwork, writes with AzureRuleWriter."""

    def __init__(self, settings: Any = None) -> None:
        settings = settings or Settings.from_env()
        self.network = AzureNetwork(settings, make_credential(settings))
        self.writer = AzureRuleWriter(self.network)

    def get_nsg(self, nsg_id: str) -> Nsg:
        return self.network.get_nsg(nsg_id)

    def put_rule(self, nsg_id: str, body: dict[str, Any]) -> None:
        self.writer.put_rule(nsg_id, body)

    def delete_rule(self, nsg_id: str, name: str) -> None:
        self.writer.delete_rule(nsg_id, name)

    def close(self) -> None:
        self.network.close()


def restore_from_file(path: str, *, settings: Any = None, dry_run: bool = False, force: bool = False,
                      row_ids: Iterable[str] = (), nsg_id: str | None = None) -> list[RestoreStep]:
    """Python API of ``nsg-guard restore``: undo the writes recorded in ``path`` against Azure (or the local
    stand-ins when ``NSG_GUARD_AUTH=local``)."""
    steps = plan_restore(load_rows(path), row_ids=row_ids, nsg_id=nsg_id)
    store = AzureRuleStore(settings)
    try:
        return restore(steps, store, dry_run=dry_run, force=force)
    finally:
        store.close()
