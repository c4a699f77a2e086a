"""Logs Ingestion API stand-in: DCR/stream declarations, row checks, storage (memory + optional JSONL "
"files)."""

from __future__ import annotations

import datetime
import gzip
import json
import os
import threading
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .validation import ArmError

MAX_BODY_BYTES = 1024 * 1024  # 1 MB per call
DEFAULT_DCR_ID = "dcr-00000000000000000000000000000000"
DEFAULT_SCHEMA_PATH = Path(__file__).resolve().parent.parent / "shared" / "schema" / "findings_table.json"
COLUMN_TYPES = {"string", "int", "long", "real", "boolean", "datetime", "dynamic", "guid"}
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def load_schema(path: str | os.PathLike[str] | None = None) -> tuple[str, dict[str, str]]:
    """Read ``{"stream": ..., "columns": [{"name", "type"}]}``; return (stream name, {column: type})."""
    p = Path(path) if path else DEFAULT_SCHEMA_PATH
    if not p.exists() and path is None:
        from importlib import resources

        text = resources.files("shared.schema").joinpath("findings_table.json").read_text(encoding="utf-8")
    else:
        text = p.read_text(encoding="utf-8")
    doc = json.loads(text)
    columns = {c["name"]: c["type"].lower() for c in doc["columns"]}
    bad = {n: t for n, t in columns.items() if t not in COLUMN_TYPES}
    if bad:
        raise ValueError(f"unknown Log Analytics column types in {p}: {bad}")
    return doc["stream"], columns


def _type_ok(kind: str, value: Any) -> bool:
    if value is None or kind == "dynamic":
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind in ("int", "long"):
        lo, hi = _INT32 if kind == "int" else _INT64
        return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
    if kind == "real":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "guid":
        try:
            uuid.UUID(str(value))
        except ValueError:
            return False
        return isinstance(value, str)
    if kind == "datetime":
        if not isinstance(value, str):
            return False
        try:
            datetime.datetime.fromisoformat(value)
        except ValueError:
            return False
        return True
    return False


def _bad(message: str) -> ArmError:
    return ArmError(400, "InvalidStream", message)


@dataclass
class IngestCall:
    dcr_id: str
    stream: str
    rows: int
    body_bytes: int
    gzip: bool


class IngestionStore:
    def __init__(
        self, *, data_dir: str | os.PathLike[str] | None = None, max_body_bytes: int = MAX_BODY_BYTES
    ):
        self.lock = threading.Lock()
        self.dcrs: dict[str, dict[str, dict[str, str]]] = {}  # dcr id -> stream -> {column: type}
        self.rows: dict[str, list[dict[str, Any]]] = {}  # stream -> rows
        self.calls: list[IngestCall] = []
        self.data_dir = Path(data_dir) if data_dir else None
        self.max_body_bytes = max_body_bytes
        if self.data_dir:
            self.data_dir.mkdir(parents=True, exist_ok=True)

    def add_stream(self, dcr_id: str, stream: str, columns: dict[str, str]) -> None:
        with self.lock:
            self.dcrs.setdefault(dcr_id, {})[stream] = dict(columns)

    def add_schema(self, dcr_id: str, schema_path: str | os.PathLike[str] | None = None) -> str:
        stream, columns = load_schema(schema_path)
        self.add_stream(dcr_id, stream, columns)
        return stream

    def ingest(self, dcr_id: str, stream: str, body: bytes, content_encoding: str | None) -> int:
        """Validate and store; returns the number of rows. Raises ArmError on problems."""
        streams = self.dcrs.get(dcr_id)
        if streams is None:
            raise ArmError(404, "NotFound", f"Data collection rule with immutable Id '{dcr_id}' not found.")
        columns = streams.get(stream)
        if columns is None:
            raise ArmError(
                404, "InvalidStream", f"Stream '{stream}' is not declared in data collection rule '{dcr_id}'."
            )
        if len(body) > self.max_body_bytes:
            raise ArmError(
                413,
                "ContentLengthLimitExceeded",
                f"Maximum allowed content length: {self.max_body_bytes} bytes (1 MB). Provided content "
                f"length: {len(body)} bytes.",
            )
        is_gzip = (content_encoding or "").lower() == "gzip"
        raw = body
        if is_gzip:
            try:
                raw = gzip.decompress(body)
            except (OSError, EOFError, zlib.error):
                raise ArmError(
                    400,
                    "InvalidContentEncoding",
                    "Content-Encoding is gzip but the body is not valid gzip data.",
                ) from None
        elif content_encoding and content_encoding.lower() != "identity":
            raise ArmError(
                400, "InvalidContentEncoding", f"Unsupported Content-Encoding {content_encoding!r}."
            )
        try:
            rows = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ArmError(400, "InvalidPayload", f"The request body is not valid JSON: {err}") from None
        if not isinstance(rows, list):
            raise ArmError(400, "InvalidPayload", "The request body must be a JSON array of objects.")
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise _bad(f"Row {i} is not a JSON object.")
            for name, value in row.items():
                kind = columns.get(name)
                if kind is None:
                    raise _bad(
                        f"Row {i}: column '{name}' is not declared in stream '{stream}' of data "
                        f"collection rule '{dcr_id}'."
                    )
                if not _type_ok(kind, value):
                    raise _bad(
                        f"Row {i}: value {value!r} of column '{name}' does not match the declared type "
                        f"'{kind}' of stream '{stream}'."
                    )
        with self.lock:
            self.rows.setdefault(stream, []).extend(rows)
            self.calls.append(IngestCall(dcr_id, stream, len(rows), len(body), is_gzip))
            if self.data_dir:
                with open(self.data_dir / f"{stream}.jsonl", "a", encoding="utf-8") as f:
                    for row in rows:
                        f.write(json.dumps(row, separators=(",", ":")) + "\n")
        return len(rows)

    def read(self, stream: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            if stream is not None:
                return [dict(r) for r in self.rows.get(stream, [])]
            return [dict(r) for rows in self.rows.values() for r in rows]

    def clear(self) -> None:
        with self.lock:
            self.rows.clear()
            self.calls.clear()
