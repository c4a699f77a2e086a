"""Blast radius per run: at most ``cap`` NSGs are written by one run (a sweep, one ``nsg-guard remediate``).

``REVERT_MAX_CHANGES`` bounds the writes inside one NSG; this bounds how many NSGs one run touches, so a bug,
a mass exemption expiry or a wrong setting can never rewrite the estate at once. The choice is pure: rank the
NSGs that need a revert, worst first, take ``cap`` of them, hold the rest. A held NSG keeps its Open finding,
gets a ``skipped`` row saying why, and is a candidate again in the next run, where it competes on the same
ranking (so the cap never delays the worst exposures behind milder ones).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.core.errors import InputError
from shared.core.findings import Finding
from shared.core.policy import SEVERITY_ORDER

SKIP_HELD = "blast-radius-nsgs"  # Details.skipCode of a held NSG's rows (the per-NSG limit is "blast-radius")
DEFAULT_MAX_NSGS_PER_RUN = 25
#: exposure classes, widest first (only ``internet`` is reverted today; the order holds if that widens)
EXPOSURE_ORDER = {"internet": 3, "broad": 2, "trusted": 1, "none": 0}


@dataclass(frozen=True, slots=True)
class Candidate:
    """One NSG that needs a revert in this run, and the findings that make it need one."""

    nsg_id: str
    findings: tuple[Finding, ...] = ()  # the revert targets (or, without any, the findings that made it a candidate)
    payload: Any = field(default=None, compare=False)  # what the caller needs to act (an evaluation, a plan)

    @property
    def rank(self) -> tuple[int, int, int, str]:
        """Sort key, smallest first: worst severity, widest exposure, most findings, then the NSG id (stable
        across runs, so the same NSGs are taken first again when nothing changed)."""
        severity = max((SEVERITY_ORDER.get(f.severity, 0) for f in self.findings), default=0)
        exposure = max((EXPOSURE_ORDER.get(f.exposure, 0) for f in self.findings), default=0)
        return (-severity, -exposure, -len(self.findings), self.nsg_id.lower())

    @property
    def severity(self) -> str:
        best = max((f.severity for f in self.findings), key=lambda s: SEVERITY_ORDER.get(s, 0), default="info")
        return best


@dataclass(frozen=True, slots=True)
class Selection:
    taken: tuple[Candidate, ...]  # worst first
    held: tuple[Candidate, ...]  # worst first: the order the next run will take them in
    cap: int

    @property
    def total(self) -> int:
        return len(self.taken) + len(self.held)

    def reason(self) -> str:
        return (f"held by the blast-radius cap: {self.total} NSGs needed a revert in this run, at most {self.cap} "
                "are written per run (REVERT_MAX_NSGS_PER_RUN), worst first; the finding stays Open and the next "
                "run takes it up")

    def to_json(self) -> dict[str, Any]:
        return {"candidates": self.total, "taken": len(self.taken), "held": len(self.held),
                "maxNsgsPerRun": self.cap}


def select(candidates: Iterable[Candidate], cap: int) -> Selection:
    """The ``cap`` worst candidates and the rest. One NSG is one candidate (duplicates keep the worst)."""
    if cap < 0:
        raise ValueError(f"cap must be >= 0, not {cap}")
    best: dict[str, Candidate] = {}
    for c in candidates:
        key = c.nsg_id.lower()
        if key not in best or c.rank < best[key].rank:
            best[key] = c
    ranked: Sequence[Candidate] = sorted(best.values(), key=lambda c: c.rank)
    return Selection(tuple(ranked[:cap]), tuple(ranked[cap:]), cap)


# --- the rolling window of queued revert jobs ---------------------------------------------------------------

DEFAULT_ROLLING_MAX_NSGS = 100
DEFAULT_ROLLING_WINDOW_SECONDS = 3600
WINDOW_VERSION = 1


@dataclass(frozen=True, slots=True)
class Slot:
    """The answer of :func:`take`: ``granted``, or held until ``retry_at`` (when the oldest slot frees)."""

    granted: bool
    entries: dict[str, datetime]  # the window to store back (expired slots dropped)
    retry_at: datetime | None = None
    used: int = 0


def nsg_key(nsg_id: str) -> str:
    """A short stable key per NSG (ids are long and case-insensitive)."""
    return hashlib.sha256(nsg_id.strip().lower().encode()).hexdigest()[:32]


def take(entries: dict[str, datetime], nsg_id: str, now: datetime, cap: int, window: timedelta) -> Slot:
    """Count one NSG against a rolling window shared by every revert job: at most ``cap`` distinct NSGs written
    per ``window``. An NSG already written in the window writes again for free (a re-plan, a second change on
    it); one over the cap is held until the oldest slot is ``window`` old. A slot stamped in the future (a
    skewed clock elsewhere) counts as taken now, so bad clocks never open the window."""
    live = {k: min(t, now) for k, t in entries.items() if now - min(t, now) < window}
    key = nsg_key(nsg_id)
    if key in live:
        return Slot(True, live, used=len(live))
    if len(live) < cap:
        live[key] = now
        return Slot(True, live, used=len(live))
    return Slot(False, live, min(live.values()) + window, used=len(live))


def window_to_json(entries: dict[str, datetime]) -> bytes:
    return json.dumps({"v": WINDOW_VERSION, "slots": {k: t.astimezone(UTC).isoformat() for k, t in
                                                      sorted(entries.items())}}, separators=(",", ":")).encode()


def window_from_json(data: bytes | str) -> dict[str, datetime]:
    """The stored window; a body that is not one (hostile, truncated) is an InputError naming why."""
    try:
        doc = json.loads(data or b'{"v":1,"slots":{}}')
    except ValueError:
        raise InputError("blast-radius window is not JSON") from None
    slots = doc.get("slots") if isinstance(doc, dict) else None
    if not isinstance(slots, dict):
        raise InputError("blast-radius window has no slots object")
    out: dict[str, datetime] = {}
    for key, stamp in slots.items():
        try:
            when = datetime.fromisoformat(str(stamp))
        except ValueError:
            raise InputError(f"blast-radius window slot {str(key)[:40]!r} has no ISO 8601 time") from None
        out[str(key)[:64]] = when if when.tzinfo else when.replace(tzinfo=UTC)
    return out
