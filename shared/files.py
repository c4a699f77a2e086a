"""Reading files people hand to the CLI: NSG JSON and exported table rows, with errors that name the file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.errors import InputError


def read_text(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")  # az on Windows writes a BOM
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None


def load_json_file(path: str | Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                         source=str(path)) from None


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """Table rows from JSON Lines (the stand-ins' ``<stream>.jsonl``) or a JSON array / ``{"value": [...]}`` /
    ``{"rows": [...]}`` (a Log Analytics export). Every record must be an object: nothing is skipped."""
    text = read_text(path)
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError:
        data = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                data.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"line {number} is not JSON: {exc.msg}", source=str(path)) from None
    if isinstance(data, Mapping):
        data = data.get("value") or data.get("rows") or [data]
    if not isinstance(data, list):
        raise InputError("expected table rows (a JSON array or JSON lines)", source=str(path))
    if not all(isinstance(r, Mapping) for r in data):
        raise InputError("every row must be a JSON object", source=str(path))
    return [dict(r) for r in data]
