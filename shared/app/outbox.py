"""The outbox: rows that Log Analytics did not accept (after the SDK's own retries) are parked in Storage
and retried from a timer with backoff until accepted. Nothing is ever dropped.

Behind a small storage interface (:class:`OutboxStore`; the Azure Blob implementation is
``shared.azure.storage.BlobOutboxStore``, an in-memory one is here for unit use).

One parked item = one blob: gzip JSON ``{"version": 1, "origin": "event:<id>" | "sweep:<id>" | ...,
"parkedAt": ISO, "reason": str, "rows": [...]}`` plus metadata ``attempts``, ``nextattempt`` (ISO UTC) and
``lasterror``. The blob name is ``<origin-kind>/<UTC yyyy/mm/dd>/<sha256 of the RowIds>.json.gz``: parking
the same rows twice (an event redelivered while ingestion is down) overwrites one blob instead of adding
another. Rows keep their deterministic ``RowId``: a retry after an upload that Azure accepted but whose
answer got lost repeats the same RowIds, which every KQL query dedupes (``summarize arg_max(...) by
RowId``) - duplicates never change meaning.

Retry: oldest first; on success the blob is deleted; when only some rows fail, the blob is rewritten with
exactly those rows (``IngestionFailed.failed_rows``), so accepted rows are not sent again. Backoff doubles
from ``base`` (60 s) up to ``cap`` (6 h) per item; the item is never given up (errors are logged with the
attempt count, and ``pending()`` is reported by the retry run).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.app.interfaces import RowSink
from shared.core.errors import ConfigError, NsgGuardError, TransientError

log = logging.getLogger("nsg_guard.outbox")

FORMAT_VERSION = 1
BACKOFF_BASE_S = 60.0
BACKOFF_CAP_S = 6 * 3600.0


class OutboxUnavailable(TransientError):
    """The outbox itself could not store rows: the caller must fail so the work is redone."""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    name: str
    attempts: int = 0
    next_attempt: datetime | None = None
    last_error: str = ""


class OutboxStore(Protocol):
    """Named blobs with small metadata. Implementations raise TransientError on storage trouble."""

    def put(self, name: str, data: bytes, metadata: dict[str, str]) -> None: ...

    def items(self) -> Iterator[OutboxItem]: ...

    def get(self, name: str) -> bytes: ...

    def set_metadata(self, name: str, metadata: dict[str, str]) -> None: ...

    def delete(self, name: str) -> None: ...


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_metadata(name: str, metadata: dict[str, str]) -> OutboxItem:
    attempts = metadata.get("attempts", "0")
    nxt = metadata.get("nextattempt")
    try:
        when = datetime.strptime(nxt, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) if nxt else None
    except ValueError:
        when = None
    return OutboxItem(name, int(attempts) if attempts.isdigit() else 0, when, metadata.get("lasterror", ""))


def _metadata(attempts: int, next_attempt: datetime, error: str) -> dict[str, str]:
    # Blob metadata values must be ASCII and header-safe: keep the error short and plain.
    clean = "".join(c if 32 <= ord(c) < 127 else "?" for c in error)[:200]
    return {"attempts": str(attempts), "nextattempt": _iso(next_attempt), "lasterror": clean}


def encode(rows: Sequence[dict[str, Any]], origin: str, reason: str, now: datetime) -> bytes:
    doc = {"version": FORMAT_VERSION, "origin": origin, "parkedAt": _iso(now), "reason": reason[:500],
           "rows": list(rows)}
    return gzip.compress(json.dumps(doc, separators=(",", ":")).encode("utf-8"), mtime=0)


def decode(data: bytes) -> dict[str, Any]:
    doc = json.loads(gzip.decompress(data).decode("utf-8"))
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION or not isinstance(doc.get("rows"), list):
        raise ValueError("not an NSG Guard outbox item (version 1)")
    return doc


def item_name(rows: Sequence[dict[str, Any]], origin: str, now: datetime) -> str:
    digest = hashlib.sha256("\n".join(sorted(str(r.get("RowId", json.dumps(r, sort_keys=True)))
                                             for r in rows)).encode()).hexdigest()[:40]
    kind = origin.split(":", 1)[0] or "rows"
    return f"{kind}/{now.astimezone(UTC):%Y/%m/%d}/{digest}.json.gz"


def backoff(attempts: int, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_CAP_S) -> timedelta:
    """Delay before the next try after ``attempts`` failed ones: base, 2x, 4x ... capped."""
    return timedelta(seconds=min(cap, base * (2 ** max(0, attempts - 1))))


class Outbox:
    """Park and retry rows through an :class:`OutboxStore`."""

    def __init__(self, store: OutboxStore, *, clock: Any = None, base: float = BACKOFF_BASE_S,
                 cap: float = BACKOFF_CAP_S) -> None:
        self.store = store
        self._now = clock or (lambda: datetime.now(UTC))
        self.base = base
        self.cap = cap

    def park(self, rows: Sequence[dict[str, Any]], origin: str, reason: str) -> str:
        """Store rows for a later retry (first retry after ``base``); raises OutboxUnavailable."""
        now = self._now()
        name = item_name(rows, origin, now)
        try:
            self.store.put(name, encode(rows, origin, reason, now), _metadata(0, now + backoff(1, self.base,
                                                                                         self.cap), reason))
        except NsgGuardError as exc:
            raise OutboxUnavailable(f"could not park {len(rows)} rows ({origin}): {exc}") from exc
        log.warning("parked %d rows from %s in the outbox as %s: %s", len(rows), origin, name, reason)
        return name

    def pending(self) -> list[OutboxItem]:
        return sorted(self.store.items(), key=lambda i: i.name)

    def retry(self, sink: RowSink, *, limit: int = 500, force: bool = False) -> RetryReport:
        """Send due items (all when ``force``) to ``sink``, oldest first; returns what happened."""
        report = RetryReport()
        now = self._now()
        due = [i for i in self.store.items() if force or i.next_attempt is None or i.next_attempt <= now]
        due.sort(key=lambda i: (i.next_attempt or now, i.name))
        for item in due[:limit]:
            self._retry_one(item, sink, report)
        report.remaining = len(list(self.store.items()))
        return report

    def _retry_one(self, item: OutboxItem, sink: RowSink, report: RetryReport) -> None:
        try:
            doc = decode(self.store.get(item.name))
        except ValueError as exc:  # not ours / corrupt: keep it for a person, never delete data
            report.unreadable.append(item.name)
            log.error("outbox item %s is unreadable (%s); left in place", item.name, exc)
            return
        rows = doc["rows"]
        try:
            sink.send(rows)
        except ConfigError:
            raise
        except TransientError as exc:
            failed = getattr(exc, "failed_rows", None)
            attempts = item.attempts + 1
            when = self._now() + backoff(attempts + 1, self.base, self.cap)
            if failed is not None and 0 < len(failed) < len(rows):
                # Part accepted: keep exactly the rows that were not (same name: the item is the same work).
                self.store.put(item.name, encode(failed, doc.get("origin", ""), str(exc), self._now()),
                               _metadata(attempts, when, str(exc)))
                report.delivered_rows += len(rows) - len(failed)
            else:
                self.store.set_metadata(item.name, _metadata(attempts, when, str(exc)))
            report.failed.append(item.name)
            level = logging.ERROR if attempts >= 5 else logging.WARNING
            log.log(level, "outbox item %s (%d rows) failed again (attempt %d, next at %s): %s", item.name,
                    len(failed if failed is not None else rows), attempts, _iso(when), exc)
            return
        self.store.delete(item.name)
        report.delivered.append(item.name)
        report.delivered_rows += len(rows)
        log.info("outbox item %s delivered (%d rows, after %d failed retries)", item.name, len(rows),
                 item.attempts)


@dataclass
class RetryReport:
    delivered: list[str] = field(default_factory=list)
    delivered_rows: int = 0
    failed: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    remaining: int = 0

    def summary(self) -> dict[str, Any]:
        return {"delivered": len(self.delivered), "deliveredRows": self.delivered_rows,
                "failed": len(self.failed), "unreadable": len(self.unreadable), "remaining": self.remaining}


class OutboxSink:
    """A RowSink that parks what the inner sink could not deliver instead of failing.

    * inner sink accepted everything -> done;
    * ``IngestionFailed`` (some chunks rejected after retries) -> park exactly ``failed_rows``;
    * any other TransientError (auth, connection) -> park all rows;
    * parking fails too -> raise :class:`OutboxUnavailable` (a TransientError): the event path lets Event
      Grid redeliver, the sweep records the loss.
    """

    def __init__(self, inner: RowSink, outbox: Outbox, origin: str = "rows") -> None:
        self.inner = inner
        self.outbox = outbox
        self.origin = origin
        self.parked_rows = 0
        self._lock = threading.Lock()

    def for_origin(self, origin: str) -> OutboxSink:
        """The same sink labelling parked items with ``origin`` (``event:<id>``, ``sweep:<id>``)."""
        return OutboxSink(self.inner, self.outbox, origin)

    def send(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        try:
            self.inner.send(rows)
            return
        except ConfigError:
            raise
        except TransientError as exc:
            failed = getattr(exc, "failed_rows", None)
            to_park = list(failed) if failed else list(rows)
            reason = str(exc)
        self.outbox.park(to_park, self.origin if self.origin != "rows" else origin_of(to_park), reason)
        with self._lock:
            self.parked_rows += len(to_park)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close:
            close()


def origin_of(rows: Sequence[dict[str, Any]]) -> str:
    """``event:<EventId>`` / ``sweep:<SweepId>`` / ``<Trigger>`` of the first row: where parked rows came from."""
    first = rows[0] if rows else {}
    if first.get("SweepId"):
        return f"sweep:{first['SweepId']}"
    if first.get("EventId"):
        return f"event:{first['EventId']}"
    return str(first.get("Trigger") or "rows")


class MemoryOutboxStore:
    """In-memory :class:`OutboxStore` (unit tests, ``nsg-guard sweep --local`` without Azurite)."""

    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, dict[str, str]]] = {}

    def put(self, name: str, data: bytes, metadata: dict[str, str]) -> None:
        self.blobs[name] = (data, dict(metadata))

    def items(self) -> Iterator[OutboxItem]:
        for name, (_, meta) in list(self.blobs.items()):
            yield parse_metadata(name, meta)

    def get(self, name: str) -> bytes:
        return self.blobs[name][0]

    def set_metadata(self, name: str, metadata: dict[str, str]) -> None:
        self.blobs[name] = (self.blobs[name][0], dict(metadata))

    def delete(self, name: str) -> None:
        self.blobs.pop(name, None)
