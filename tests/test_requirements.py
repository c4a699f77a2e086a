"""Issue 12.6: pinned, public SDK use. requirements.txt pins exact versions (the tested ones), and no code
that ships imports a private SDK module or calls a private SDK method."""

from __future__ import annotations

import ast
import re
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINES = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()
         if line.strip() and not line.strip().startswith("#")]
SHIPPED = sorted([*(REPO / "shared").rglob("*.py"), REPO / "function_app.py"])


@pytest.mark.parametrize("line", LINES)
def test_every_requirement_is_pinned_to_the_tested_version(line):
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9][0-9A-Za-z.+-]*)", line)
    assert m, f"not an exact pin: {line!r}"
    assert version(m.group(1)) == m.group(2), f"the venv has {m.group(1)} {version(m.group(1))}"


def test_the_sdks_the_app_imports_are_all_pinned():
    pinned = {re.split("==", line)[0].lower() for line in LINES}
    for needed in ("azure-functions", "azure-mgmt-network", "azure-identity", "azure-monitor-ingestion",
                   "azure-storage-blob", "azure-core", "azure-mgmt-core"):
        assert needed in pinned, needed


def _private(module: str) -> bool:
    return module.startswith("azure") and any(part.startswith("_") for part in module.split("."))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_no_private_sdk_modules_or_methods(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert not _private(node.module), f"{path.name}:{node.lineno} imports {node.module}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert not _private(alias.name), f"{path.name}:{node.lineno} imports {alias.name}"
        if isinstance(node, ast.Attribute) and node.attr in ("_send_request", "_client", "_config",
                                                             "_deserialize", "_serialize"):
            owner = ast.unparse(node.value)
            assert owner == "self", f"{path.name}:{node.lineno} uses SDK internals {owner}.{node.attr}"


def test_every_network_operation_passes_the_pinned_api_version():
    calls = 0
    for path in SHIPPED:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and isinstance(node.func.value, ast.Attribute) \
                    and node.func.value.attr in ("network_security_groups", "security_rules"):
                calls += 1
                keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
                assert keywords.get("api_version") == "NETWORK", f"{path.name}:{node.lineno}"
    assert calls >= 4  # get, list_all, rule PUT, rule DELETE


def test_client_constructors_pin_their_api_version():
    text = "".join((REPO / "shared" / "azure" / f).read_text() for f in ("ingestion.py", "storage.py", "graph.py"))
    assert "api_version=LOGS_INGESTION" in text and '"api_version": STORAGE' in text
    assert 'params={"api-version": RESOURCE_GRAPH}' in text
