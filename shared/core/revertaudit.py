"""Pure helpers that keep enforce mode honest: did a rule change between our read and our write, and what
did NSG Guard already write (rebuilt from the NSG itself, so a retried job re-emits the audit row that a
failed upload lost)."""

from __future__ import annotations

from shared.core.model import Nsg, Rule, same_rule
from shared.core.remediation import (
    BROAD_DENY,
    INSERT_DENY,
    OP_PUT,
    OWN_PREFIX,
    Action,
    Plan,
    body_of,
    is_own_rule,
    own_finding_id,
    own_offending_rule,
)


def _find(nsg: Nsg, name: str | None) -> Rule | None:
    if not name:
        return None
    low = name.lower()
    return next((r for r in nsg.rules if r.name.lower() == low), None)


def drift(plan: Plan, planned_from: Nsg, fresh: Nsg) -> list[str]:
    """Names of rules the plan relies on that differ in ``fresh`` from what it was planned from: the rule
    each action writes (absent for a new rule, equal to ``replaces`` otherwise) and the offending rule."""
    changed: list[str] = []
    for a in plan.actions:
        now = _find(fresh, a.name)
        if a.replaces is None:
            if now is not None and not same_rule(body_of(now), a.rule, fresh.id):
                changed.append(a.name)
        elif now is None or not same_rule(body_of(now), a.replaces, fresh.id):
            changed.append(a.name)
        before, after = _find(planned_from, a.offending_rule), _find(fresh, a.offending_rule)
        if before is not None and (after is None or not same_rule(body_of(after), body_of(before), fresh.id)):
            changed.append(a.offending_rule)
    return sorted(set(changed))


def reconstruct(nsg: Nsg) -> list[Action]:
    """One ``put`` per NSG Guard rule present, as the write that created it (``replaces`` None), with the
    finding id and offending rule read back from its description."""
    out = []
    for r in sorted((r for r in nsg.rules if is_own_rule(r)), key=lambda r: r.name.lower()):
        fid = own_finding_id(r)
        ports = tuple(p for lo, hi in r.destination_ports for p in range(lo, hi + 1)) \
            if r.destination_ports.size() <= 16 else ()
        strategy = BROAD_DENY if r.name.lower().startswith(f"{OWN_PREFIX}deny-all-") else INSERT_DENY
        out.append(Action(OP_PUT, body_of(r), None, f"reconstructed from the NSG: {r.name} is in place",
                          strategy, own_offending_rule(r) or r.name, ports, (fid,) if fid else ()))
    return out
