"""Replay Event Grid dead letters: re-run the event handler for every event in the dead-letter blobs.

Event Grid writes undeliverable events to ``<container>/<SUBSCRIPTION-NAME>/<yyyy>/<m>/<d>/<h>/<guid>.json``
(non-zero-padded UTC date and hour), each blob a JSON array of one or more events with delivery metadata
added next to the event fields (``deadLetterReason``, ``deliveryAttempts``, ``lastDeliveryOutcome``,
``lastHttpStatusCode``, ``publishTime``, ``lastDeliveryAttemptTime``). That metadata is logged and removed,
then each event goes through the same handler as a live delivery. Replaying is idempotent: rows carry
RowIds derived from the event id, so replaying a blob twice repeats meaning, never adds it.

A blob is deleted after every event in it was handled (``keep=True`` keeps it); a blob with an event that
failed transiently is left in place for the next replay.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.core.errors import InputError, TransientError

log = logging.getLogger("nsg_guard.deadletter")

DEADLETTER_METADATA = frozenset({
    "deadLetterReason", "deliveryAttempts", "lastDeliveryOutcome", "lastHttpStatusCode", "publishTime",
    "lastDeliveryAttemptTime", "deliveryResult",
})


class DeadLetterSource(Protocol):
    def names(self, prefix: str | None = None) -> list[str]: ...

    def read(self, name: str) -> bytes: ...

    def delete(self, name: str) -> None: ...


def events_in(data: bytes, name: str = "") -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(event, dead-letter metadata) pairs from one dead-letter blob (a JSON array, or one object)."""
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"dead-letter blob {name} is not JSON: {exc}") from None
    items = doc if isinstance(doc, list) else [doc]
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise InputError(f"dead-letter blob {name} holds a {type(item).__name__}, not an event object")
        meta = {k: item[k] for k in DEADLETTER_METADATA if k in item}
        out.append(({k: v for k, v in item.items() if k not in DEADLETTER_METADATA}, meta))
    return out


@dataclass
class ReplayReport:
    blobs: int = 0
    events: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"blobs": self.blobs, "events": self.events, "outcomes": dict(sorted(self.outcomes.items())),
                "deleted": len(self.deleted), "failed": self.failed}


def replay_deadletters(source: DeadLetterSource, handle: Callable[[dict[str, Any]], Any], *,
                       prefix: str | None = None, keep: bool = False, dry_run: bool = False) -> ReplayReport:
    """Replay every dead-lettered event under ``prefix`` through ``handle`` (the event use case)."""
    report = ReplayReport()
    for name in source.names(prefix):
        report.blobs += 1
        try:
            pairs = events_in(source.read(name), name)
        except (InputError, TransientError) as exc:
            report.failed.append({"blob": name, "error": str(exc)})
            continue
        ok = True
        for event, meta in pairs:
            report.events += 1
            log.info("replaying event %s from %s (%s)", event.get("id"), name, meta or "no metadata")
            if dry_run:
                report.outcomes["dry-run"] = report.outcomes.get("dry-run", 0) + 1
                continue
            try:
                outcome = handle(event)
            except TransientError as exc:
                ok = False
                report.failed.append({"blob": name, "event": str(event.get("id")), "error": str(exc)})
                continue
            status = getattr(outcome, "status", "handled")
            report.outcomes[status] = report.outcomes.get(status, 0) + 1
        if ok and not keep and not dry_run:
            source.delete(name)
            report.deleted.append(name)
    return report
