"""Blast radius per run: at most ``cap`` NSGs are written by one run (a sweep, one ``nsg-guard remediate``).

``REVERT_MAX_CHANGES`` bounds the writes inside one NSG; this bounds how many NSGs one run touches, so a bug,
a mass exemption expiry or a wrong setting can never rewrite the estate at once. The choice is pure: rank the
NSGs that need a revert, worst first, take ``cap`` of them, hold the rest. A held NSG keeps its Open finding,
gets a ``skipped`` row saying why, and is a candidate again in the next run, where it competes on the same
ranking (so the cap never delays the worst exposures behind milder ones).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

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
