"""JSON output through a C encoder (orjson), with the standard library as the fallback.

Measured in bench/engine.py (bench/README.md): encoding the findings of 10,000 NSGs takes 0.03 s with orjson
(compact or indented) against 0.16 s for ``json.dumps`` compact (C) and 0.41 s indented (pure Python).
Decoding is not done here: orjson decoded no faster than ``json.loads`` with the collector paused (0.45 s against
0.41 s for 69 MB) and turns integers beyond 64 bits into floats; list inputs are decoded by msgspec
(shared/app/jsonstream.py, shared/app/typednsg.py), everything else by ``json.loads``.
"""

from __future__ import annotations

import json
from typing import Any

try:  # a pinned dependency; the fallback keeps a bare checkout working
    import orjson
except ImportError:  # pragma: no cover - exercised only without the dependency
    orjson = None  # type: ignore[assignment]


def dumps(value: Any, *, indent: bool = False) -> str:
    """Compact (``{"a":1}``) or indented by 2 spaces; non-ASCII text is written as UTF-8, not escaped."""
    if orjson is not None:
        try:
            return orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else 0).decode()
        except TypeError:
            pass  # e.g. an integer beyond 64 bits: the standard library renders it
    if indent:
        return json.dumps(value, indent=2, ensure_ascii=False)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
