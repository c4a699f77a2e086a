"""The findings table schema: one JSON file read by the code, the local ingestion stand-in and infra/."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SCHEMA_PATH = Path(__file__).with_name("findings_table.json")


@dataclass(frozen=True, slots=True)
class TableSchema:
    table: str
    stream: str
    columns: tuple[tuple[str, str], ...]  # (name, Log Analytics type)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.columns)


@cache
def findings_schema(path: str | None = None) -> TableSchema:
    data = json.loads(Path(path or SCHEMA_PATH).read_text(encoding="utf-8"))
    return TableSchema(data["table"], data["stream"], tuple((c["name"], c["type"]) for c in data["columns"]))
