"""Azurite (npm package ``azurite``, pinned in package.json) as the real Blob Storage for tests.

Started once per test session on a free port with a temporary workspace, stopped at the end. Nothing is
skipped: if Node.js or the package is missing the fixture FAILS and says how to fix it (``npm ci``).

    from tests.azurite import azurite  # noqa: F401  (fixture)
    def test_x(azurite): azurite.connection_string ...
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "node_modules" / ".bin" / "azurite-blob"
# Azurite's documented development account (public, the same in every Azurite install).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Azurite:
    port: int
    workspace: str

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                f"BlobEndpoint={self.blob_endpoint};")

    def container_name(self, prefix: str = "t") -> str:
        """A fresh container name per test (the session's Azurite is shared)."""
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    def service(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"Azurite exited with code {proc.returncode} before listening:\n{out}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"Azurite did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def start_azurite() -> tuple[Azurite, subprocess.Popen]:
    if shutil.which("node") is None:
        pytest.fail("Node.js is not installed: the storage tests need it to run Azurite "
                    "(install Node 18+, then run `npm ci` in the repository root)")
    if not BIN.exists():
        pytest.fail(f"Azurite is not installed ({BIN} is missing): run `npm ci` in the repository root "
                    "(package.json pins it; .ci/run does this too)")
    workspace = tempfile.mkdtemp(prefix="azurite-")
    for _attempt in range(3):  # the free port can be taken between probing and binding
        port = _free_port()
        proc = subprocess.Popen(
            [str(BIN), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", workspace,
             "--silent", "--skipApiVersionCheck", "--loose"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            _wait(port, proc)
            return Azurite(port, workspace), proc
        except pytest.fail.Exception:
            proc.kill()
            proc.wait(timeout=10)
            if _attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    server, proc = start_azurite()
    try:
        yield server
    finally:
        proc.terminate()  # Azurite then waits for idle keep-alive connections to close: give it 2 s
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(server.workspace, ignore_errors=True)
