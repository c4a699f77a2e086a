"""Azurite's queue service (``azurite-queue``, same npm package) beside the blob one, for the revert queue.

    from tests.azurite_queue import azurite_storage  # noqa: F401  (fixture: blob + queue)
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.azurite import ACCOUNT, KEY, ROOT, Azurite, _free_port, _wait, azurite  # noqa: F401

QUEUE_BIN = ROOT / "node_modules" / ".bin" / "azurite-queue"


@dataclass
class AzuriteStorage:
    blob: Azurite
    queue_port: int

    @property
    def queue_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.queue_port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return self.blob.connection_string + f"QueueEndpoint={self.queue_endpoint};"

    def queue(self, name: str):
        from azure.storage.queue import QueueClient

        return QueueClient.from_connection_string(self.connection_string, name)


@pytest.fixture(scope="session")
def azurite_queue_port() -> Iterator[int]:
    if not QUEUE_BIN.exists():
        pytest.fail(f"Azurite is not installed ({QUEUE_BIN} is missing): run `npm ci` in the repository root")
    workspace = tempfile.mkdtemp(prefix="azurite-queue-")
    port = _free_port()
    proc = subprocess.Popen([str(QUEUE_BIN), "--queueHost", "127.0.0.1", "--queuePort", str(port), "--location",
                             workspace, "--silent", "--skipApiVersionCheck", "--loose"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait(port, proc)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(workspace, ignore_errors=True)


@pytest.fixture
def azurite_storage(azurite: Azurite, azurite_queue_port: int) -> AzuriteStorage:  # noqa: F811
    """Blob + queue Azurite; every test gets its own queue by clearing it first."""
    storage = AzuriteStorage(azurite, azurite_queue_port)
    for name in ("nsg-guard-revert", "nsg-guard-revert-poison"):
        q = storage.queue(name)
        with contextlib.suppress(Exception):
            q.clear_messages()
    return storage


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
