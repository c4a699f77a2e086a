"""The package layout is the architecture: imports only go downward (docs/testing.md, "Layout").

``shared.core`` is pure (no I/O, no SDK), ``shared.app`` holds the use cases over it, ``shared.azure`` is the only
place that imports Azure SDKs, and ``shared.cli`` sits on top. Checked on every import statement, including the
lazy ones inside functions, so a shortcut cannot hide in a function body.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1] / "shared"
#: what each layer may import from shared (the root package holds only the version constants)
ALLOWED = {
    "core": ("shared.core",),
    "app": ("shared.core", "shared.app", "shared.schema"),
    "azure": ("shared.core", "shared.app", "shared.azure", "shared.schema"),
    "cli": ("shared.core", "shared.app", "shared.azure", "shared.cli"),
}
SDK_ROOTS = ("azure", "msal", "requests", "urllib3")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "shared":
            out.extend((node.lineno, f"shared.{a.name}") for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
    return out


def _modules(layer: str) -> list[Path]:
    return sorted((SHARED / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_only_go_downward(layer):
    wrong = []
    for path in _modules(layer):
        for line, name in _imports(path):
            if name in ("shared.__version__", "shared.ENGINE_VERSION"):
                continue
            if name.startswith("shared") and not name.startswith(ALLOWED[layer]):
                wrong.append(f"{path.relative_to(SHARED.parent)}:{line} imports {name}")
    assert wrong == []


@pytest.mark.parametrize("layer", ["core", "app", "cli"])
def test_only_shared_azure_imports_azure_sdks(layer):
    wrong = [f"{path.relative_to(SHARED.parent)}:{line} imports {name}" for path in _modules(layer)
             for line, name in _imports(path) if name.split(".")[0] in SDK_ROOTS]
    assert wrong == []


def test_no_flat_modules_left_in_shared():
    assert sorted(p.name for p in SHARED.glob("*.py")) == ["__init__.py", "__main__.py"]
