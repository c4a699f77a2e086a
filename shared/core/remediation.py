"""Pure revert planner: the smallest rule change that removes exactly the internet exposure of targeted ports.

Vocabulary. A *target* is an Open, active finding whose port kind is configured for revert and whose exposure
class is in scope (default ``internet``). The *offending rule* R is the finding's rule; its *public sources*
``pub(R)`` are the public part of R's sources as the engine defines it (``*``/``Any``/``Internet`` = the whole
public space; CIDRs intersected with it; ``AzureCloud``-style broad tags). The plan removes, for every targeted
(R, port P), exactly the TCP traffic from ``pub(R)`` to P that R decided before, and nothing else:

    allowed_after == allowed_before - {(src, TCP, P, ...) decided by R : src in pub(R), P targeted for R}

Strategies. The default (``REVERT_STRATEGIES=insert-deny``) is additive: it only ever *adds* NSG Guard deny
rules in front of offending rules, and deletes NSG Guard's own denies once they are no longer needed. It never
edits or deletes a user's rule. Narrowing and shifting change the user's rule and are opt-in:

1. ``insert-deny``: a new Deny D (TCP, targeted ports, sources ``pub(R)``, R's source ports and destination)
   at a free priority in front of R (``R.priority - 1`` first, else the nearest free priority above whose
   rules in between are unaffected). Every candidate is checked with the exact engine: targets gone, every
   other rule's exposure unchanged.
2. ``narrow`` (opt-in: ``narrow-ports`` / ``narrow-sources``): change R itself, only when one rule can
   express R minus the removed part exactly.
3. ``shift`` (opt-in): move R one priority down and put D at R's old priority (two writes).
Otherwise the target is skipped with a reason (the finding stays Open and the skip is recorded).

Bounded: all targets' denies are first planned together and checked with two evaluations; per-rule planning
only runs for the few that fail. A plan needing more writes than the blast radius (``max_changes``) is
replaced by one broad deny in front of all targets when the engine shows that is exact.

Stale denies: an NSG Guard deny whose removal would create no revert target is deleted (``remove-stale-deny``).

Ownership is by content, never by name alone: an NSG Guard rule is an inbound Deny named ``nsg-guard-...``
whose description starts with ``NSG Guard finding <id>``. Just-In-Time rules are recognised by their
description/name pattern *and* a source that is not internet-class, or by the JIT service's identity on the
event (``protected`` rule names). Deny names carry a 64-bit hash of the offending rule id
(``nsg-guard-deny-<ports>-<16 hex>``): a redelivered event plans the very same name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shared.core.addresses import DEFAULT_PUBLIC, KIND_ALL, KIND_BROAD_TAG, KIND_CIDR, KIND_INTERNET, AddressSet
from shared.core.errors import InputError
from shared.core.exposure import BROAD, INTERNET, Destination, Evaluator, PublicSources, destination_of, overlaps
from shared.core.findings import STATUS_OPEN, Finding, finding_id
from shared.core.model import DENY, INBOUND, Nsg, Rule, parse_rule
from shared.core.ports import PortSet

OP_PUT, OP_DELETE = "put", "delete"
INSERT_DENY, NARROW_PORTS, NARROW_SOURCES, SHIFT = "insert-deny", "narrow-ports", "narrow-sources", "shift"
BROAD_DENY, REMOVE_STALE = "broad-deny", "remove-stale-deny"
NARROW = "narrow"  # the opt-in strategy name covering narrow-ports and narrow-sources
DEFAULT_STRATEGIES: tuple[str, ...] = (INSERT_DENY,)
KNOWN_STRATEGIES: tuple[str, ...] = (INSERT_DENY, NARROW, SHIFT)
PRIORITY_MIN, PRIORITY_MAX = 100, 4096
MAX_NAME = 80
MAX_DESCRIPTION = 140
OWN_PREFIX = "nsg-guard-"
OWN_MARKER = "NSG Guard finding "
JIT_PREFIX = "securitycenter-jitrule"
_OWN_DESCRIPTION = re.compile(r"^NSG Guard finding ([0-9a-f]{32})\b")
_JIT_DESCRIPTION = re.compile(r"(?i)just[- ]in[- ]time|\bjit\b|security ?center")
HASH_HEX = 16  # 64 bits: birthday collisions only after ~4 billion names
MAX_SLOT_TRIES = 6  # free-priority gaps tried per rule (each costs two evaluations)
MAX_BROAD_PREFIXES = 100

SKIP_JIT, SKIP_DEFAULT, SKIP_NO_SAFE_CHANGE = "jit-rule", "default-rule", "no-safe-change"


def is_jit_rule(rule: Rule, evaluator: Evaluator | None = None) -> bool:
    """A Just-In-Time rule by content: named or described as JIT *and* not opening anything internet-class
    (JIT opens one requested IP, or denies). A rule named ``SecurityCenter-JITRule...`` that allows ``*`` is
    not JIT access, whatever its name."""
    looks_jit = rule.name.lower().startswith(JIT_PREFIX) or bool(_JIT_DESCRIPTION.search(rule.description or ""))
    if not looks_jit:
        return False
    if not rule.allows:
        return True
    if evaluator is None:
        return False
    return evaluator.classify(evaluator.public_sources(rule)) not in (INTERNET, BROAD)


def is_own_rule(rule: Rule | str) -> bool:
    """NSG Guard's own deny rule: prefix *and* an inbound Deny *and* our description marker. A name alone
    (a string) only says the name is in our namespace."""
    if isinstance(rule, str):
        return rule.lower().startswith(OWN_PREFIX)
    return (rule.name.lower().startswith(OWN_PREFIX) and not rule.allows and rule.inbound and not rule.is_default
            and bool(_OWN_DESCRIPTION.match(rule.description or "")))


def own_finding_id(rule: Rule) -> str | None:
    """The finding id an NSG Guard deny was written for (from its description)."""
    m = _OWN_DESCRIPTION.match(rule.description or "")
    return m.group(1) if m else None


def own_offending_rule(rule: Rule) -> str | None:
    """The offending rule an NSG Guard deny stands in front of (``... allowed by <name>``; may be cut)."""
    text = rule.description or ""
    at = text.rfind(" allowed by ")
    return text[at + len(" allowed by "):] or None if at >= 0 else None


def own_description(first_finding: str, what: str, rule_name: str) -> str:
    return f"{OWN_MARKER}{first_finding}: {what} allowed by {rule_name}"[:MAX_DESCRIPTION]


@dataclass(frozen=True, slots=True)
class RevertScope:
    """Which findings revert may act on (settings ``REVERT_PORT_KINDS``; exposure classes are fixed)."""

    port_kinds: tuple[str, ...] = ("ssh",)
    exposures: tuple[str, ...] = (INTERNET,)

    def targets(self, findings: Iterable[Finding]) -> list[Finding]:
        return [f for f in findings if f.active and f.status == STATUS_OPEN and f.port_kind in self.port_kinds
                and f.exposure in self.exposures]


@dataclass(frozen=True, slots=True)
class Action:
    """One write: PUT ``rule`` (ARM body: name + properties) or DELETE the rule named ``rule["name"]``.

    ``replaces`` is the rule as it was before (ARM body) — None when the PUT creates a new rule — and is all
    ``restore`` needs to undo the action.
    """

    op: str
    rule: dict[str, Any]
    replaces: dict[str, Any] | None
    reason: str
    strategy: str
    offending_rule: str
    ports: tuple[int, ...]
    finding_ids: tuple[str, ...]

    @property
    def name(self) -> str:
        return str(self.rule["name"])

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "rule": self.rule, "replaces": self.replaces, "reason": self.reason,
                "strategy": self.strategy, "offendingRule": self.offending_rule, "ports": list(self.ports),
                "findingIds": list(self.finding_ids)}


@dataclass(frozen=True, slots=True)
class Skip:
    """A target the plan leaves alone, and why (recorded; the finding stays Open)."""

    rule_name: str
    ports: tuple[int, ...]
    finding_ids: tuple[str, ...]
    code: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule_name, "ports": list(self.ports), "findingIds": list(self.finding_ids),
                "code": self.code, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Plan:
    nsg_id: str
    nsg_name: str
    actions: tuple[Action, ...] = ()
    skipped: tuple[Skip, ...] = ()
    targets: tuple[Finding, ...] = field(default=(), repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"nsgId": self.nsg_id, "nsgName": self.nsg_name, "actions": [a.to_json() for a in self.actions],
                "skipped": [s.to_json() for s in self.skipped]}


class PlanError(InputError):
    """A candidate change that is not valid for Azure (priority clash, bad name): never written."""


# --- naming ------------------------------------------------------------------------------------------

def _short_hash(text: str, n: int = HASH_HEX) -> str:
    return hashlib.sha256(text.lower().encode()).hexdigest()[:n]


def deny_rule_name(rule_id: str, ports: Sequence[int]) -> str:
    """``nsg-guard-deny-22-<16 hex>``: deterministic, so a redelivered event plans the very same rule; 64 bits
    of hash, always within Azure's 80 characters."""
    ports_part = "-".join(str(p) for p in sorted(ports))
    name = f"{OWN_PREFIX}deny-{ports_part}-{_short_hash(rule_id)}"
    if len(name) > MAX_NAME:
        name = f"{OWN_PREFIX}deny-multi-{_short_hash(rule_id + '|' + ports_part, 24)}"
    return name


def broad_deny_name(nsg_id: str, ports: Sequence[int]) -> str:
    """The one broad deny of an NSG (blast-radius fallback)."""
    ports_part = "-".join(str(p) for p in sorted(ports))
    name = f"{OWN_PREFIX}deny-all-{ports_part}-{_short_hash(nsg_id)}"
    if len(name) > MAX_NAME:
        name = f"{OWN_PREFIX}deny-all-multi-{_short_hash(nsg_id + '|' + ports_part, 24)}"
    return name


# --- pure application ----------------------------------------------------------------------------------

def body_of(rule: Rule) -> dict[str, Any]:
    """ARM PUT body of a rule (name + properties; the id is derived from the NSG)."""
    arm = rule.to_arm()
    return {"name": arm["name"], "properties": arm["properties"]}


def check_rules(rules: Iterable[Rule]) -> None:
    """Azure's structural limits: priorities 100-4096 unique per direction, names <= 80 chars, unique."""
    seen: dict[tuple[str, int], str] = {}
    names: set[str] = set()
    for r in rules:
        if r.is_default:
            continue
        if not PRIORITY_MIN <= r.priority <= PRIORITY_MAX:
            raise PlanError(f"priority {r.priority} of {r.name} is outside {PRIORITY_MIN}-{PRIORITY_MAX}")
        if len(r.name) > MAX_NAME:
            raise PlanError(f"rule name {r.name!r} is longer than {MAX_NAME} characters")
        if r.name.lower() in names:
            raise PlanError(f"rule name {r.name} used twice")
        names.add(r.name.lower())
        key = (r.direction, r.priority)
        if key in seen:
            raise PlanError(f"priority {r.priority} used by both {seen[key]} and {r.name}")
        seen[key] = r.name


def apply_actions(nsg: Nsg, actions: Iterable[Action], extra_tags: frozenset[str] = frozenset()) -> Nsg:
    """The NSG after the actions, applied one by one as Azure would (each intermediate state is checked)."""
    rules = list(nsg.rules)
    for action in actions:
        low = action.name.lower()
        at = next((i for i, r in enumerate(rules) if r.name.lower() == low), None)
        if action.op == OP_DELETE:
            if at is None:
                raise PlanError(f"cannot delete {action.name}: no such rule")
            del rules[at]
        else:
            new = parse_rule(action.rule, nsg_id=nsg.id, extra_tags=extra_tags)
            if at is None:
                rules.append(new)
            else:
                rules[at] = new
        check_rules(rules)
    return replace(nsg, rules=tuple(rules), _sorted_inbound=())


# --- the planner ---------------------------------------------------------------------------------------

MAX_ROUNDS = 8
Reevaluate = Callable[[Nsg], Iterable[Finding]]


def plan_revert(nsg: Nsg, findings: Iterable[Finding], evaluator: Evaluator, scope: RevertScope = RevertScope(),
                extra_tags: frozenset[str] = frozenset(), reevaluate: Reevaluate | None = None, *,
                strategies: Sequence[str] = DEFAULT_STRATEGIES, max_changes: int | None = None,
                protected: Iterable[str] = ()) -> Plan:
    """Plan the revert of every target among ``findings`` (an evaluation of ``nsg``). Pure.

    ``reevaluate`` (the same engine + exemptions that produced ``findings``) lets the planner look at the NSG as
    it would be after its own changes and plan what became a target only then — split ranges that expose the
    internet together are classified ``internet`` only once the wider rule is gone — so that the event our
    write causes finds nothing left to do. It also decides which of NSG Guard's own denies are stale.
    ``protected`` names rules never touched (the event's rule when the JIT service wrote it).
    """
    ctx = _Ctx(evaluator, extra_tags, tuple(strategies), frozenset(n.lower() for n in protected))
    findings = list(findings)
    all_targets = scope.targets(findings)
    current_targets = list(all_targets)
    handled: set[tuple[str, int]] = set()
    work = nsg
    actions: list[Action] = []
    skipped: list[Skip] = []
    by_rule: dict[str, list[Finding]] = {}
    progressed = False
    if max_changes is not None and len({f.rule.name.lower() for f in all_targets}) > max_changes:
        # Over the blast radius before planning anything: one broad deny, or per-rule plans for the record.
        broad = _broad_deny(nsg, all_targets, ctx)
        if broad is not None:
            work = apply_actions(nsg, [broad], extra_tags)
            stale = _stale_denies(work, {broad.name.lower()}, reevaluate, scope, evaluator) if reevaluate else []
            return Plan(nsg.id, nsg.name, (broad, *stale), (), tuple(all_targets))
    for _ in range(MAX_ROUNDS):
        fresh = [f for f in current_targets if (f.rule.name.lower(), f.port) not in handled]
        # A target skipped for want of a safe change may have one now that other rules changed (a later rule
        # that would have caught the fall-through is gone): try those again.
        retry = [f for s in skipped if s.code == SKIP_NO_SAFE_CHANGE for f in by_rule[s.rule_name.lower()]
                 if f.finding_id in s.finding_ids] if progressed else []
        if not fresh and not retry:
            break
        if retry:
            skipped[:] = [s for s in skipped if s.code != SKIP_NO_SAFE_CHANGE]
        for f in fresh:
            by_rule.setdefault(f.rule.name.lower(), []).append(f)
        count = len(actions)
        work = _plan_round(work, fresh + retry, ctx, actions, skipped)
        progressed = len(actions) > count
        handled |= {(f.rule.name.lower(), f.port) for f in fresh}
        if reevaluate is not None:
            current_targets = scope.targets(reevaluate(work))
            known = {f.finding_id for f in all_targets}
            all_targets += [f for f in current_targets if f.finding_id not in known and
                            (f.rule.name.lower(), f.port) not in handled]
        if max_changes is not None and len(actions) > max_changes:
            break  # over the blast radius anyway: the broad deny below replaces the lot
    if max_changes is not None and len(actions) > max_changes:
        broad = _broad_deny(nsg, all_targets, ctx)
        if broad is not None:
            actions, work = [broad], apply_actions(nsg, [broad], extra_tags)
            skipped = [s for s in skipped if s.code != SKIP_NO_SAFE_CHANGE]
    actions = _drop_redundant(nsg, actions, ctx)
    if reevaluate is not None:
        work = apply_actions(nsg, actions, extra_tags)
        actions += _stale_denies(work, {a.name.lower() for a in actions}, reevaluate, scope, evaluator)
    return Plan(nsg.id, nsg.name, tuple(actions), tuple(skipped), tuple(all_targets))


@dataclass(frozen=True, slots=True)
class _Ctx:
    evaluator: Evaluator
    extra_tags: frozenset[str]
    strategies: tuple[str, ...]
    protected: frozenset[str]


def _group(targets: list[Finding]) -> list[tuple[Rule, tuple[int, ...], tuple[str, ...]]]:
    groups: dict[str, tuple[Rule, list[int], list[str]]] = {}
    for f in targets:
        _, ports, ids = groups.setdefault(f.rule.name.lower(), (f.rule, [], []))
        if f.port not in ports:
            ports.append(f.port)
        if f.finding_id not in ids:
            ids.append(f.finding_id)
    return [(r, tuple(sorted(p)), tuple(i)) for r, p, i in sorted(groups.values(), key=lambda g: g[0].priority)]


def _plan_round(work: Nsg, targets: list[Finding], ctx: _Ctx, actions: list[Action], skipped: list[Skip]) -> Nsg:
    todo: list[tuple[Rule, tuple[int, ...], tuple[str, ...]]] = []
    for rule, ports_t, ids_t in _group(targets):
        if rule.name.lower() in ctx.protected or is_jit_rule(rule, ctx.evaluator):
            skipped.append(Skip(rule.name, ports_t, ids_t, SKIP_JIT,
                                "Just-In-Time access rule (by its content or the JIT service's identity): never "
                                "touched"))
            continue
        if rule.is_default or not rule.allows or not rule.inbound:
            skipped.append(Skip(rule.name, ports_t, ids_t, SKIP_DEFAULT, "default rules cannot be changed"))
            continue
        todo.append((_find(work, rule.name) or rule, ports_t, ids_t))
    if not todo:
        return work
    batch = _batch_insert(work, todo, ctx) if INSERT_DENY in ctx.strategies else None
    if batch is not None:
        actions.extend(batch)
        return apply_actions(work, batch, ctx.extra_tags)
    for rule, ports_t, ids_t in todo:
        current = _find(work, rule.name) or rule
        planner = _RulePlanner(work, current, ports_t, ids_t, ctx)
        chosen, why_not = planner.choose()
        if chosen is None:
            skipped.append(Skip(rule.name, ports_t, ids_t, SKIP_NO_SAFE_CHANGE, "; ".join(why_not)))
            continue
        work = apply_actions(work, chosen, ctx.extra_tags)
        actions.extend(chosen)
    return work


def _batch_insert(work: Nsg, todo: list[tuple[Rule, tuple[int, ...], tuple[str, ...]]], ctx: _Ctx
                  ) -> list[Action] | None:
    """Every target's deny at the nearest free priority in front of it, checked together with two evaluations
    (the common case; None sends the round to the per-rule planner)."""
    used = {r.priority for r in work.rules if r.inbound and not r.is_default}
    actions: list[Action] = []
    for rule, ports, ids in todo:
        planner = _RulePlanner(work, rule, ports, ids, ctx)
        if planner.existing_deny is not None:
            return None
        slot = _free_below(used, rule.priority)
        sources = planner._deny_allowed([])
        if slot is None or sources is None:
            return None
        used.add(slot)
        actions.append(planner._deny_action(slot, sources, INSERT_DENY, planner._insert_reason(slot, sources)))
    try:
        after = apply_actions(work, actions, ctx.extra_tags)
    except PlanError:
        return None
    targets = {(r.name.lower(), p) for r, ports, _ in todo for p in ports}
    for action, (rule, _, _) in zip(actions, todo, strict=True):
        if not _clear_between(work, action, action.rule["properties"]["priority"], rule.priority - 1, targets, ctx):
            return None
    return actions if _exact(ctx.evaluator, work, after, targets) is None else None


def _clear_between(work: Nsg, deny: Action, low: int, high: int, targets: set[tuple[str, int]], ctx: _Ctx) -> bool:
    """No rule with a priority in (low, high] other than targets could decide traffic the deny now takes:
    each is a Deny, carries none of its ports over TCP, or shares no public source with it. (The engine
    ignores partial destination overlaps, so exactness alone cannot prove a deny placed further up is safe.)"""
    d = parse_rule(deny.rule, nsg_id=work.id, extra_tags=ctx.extra_tags)
    dsrc = ctx.evaluator.public_sources(d)
    for x in work.inbound_rules:
        if not low < x.priority <= high or not x.allows or not x.carries_tcp:
            continue
        carried = [p for p in deny.ports if p in x.destination_ports]
        if not carried or all((x.name.lower(), p) in targets for p in carried):
            continue
        xsrc = ctx.evaluator.public_sources(x)
        # Broad tags (AzureCloud) are public addresses we cannot list: they meet any public source.
        if xsrc.addresses & dsrc.addresses or (xsrc.tags and (dsrc.addresses or dsrc.tags)) or \
                (dsrc.tags and xsrc.addresses):
            return False
    return True


def _free_below(used: set[int], priority: int, skip: int = 0) -> int | None:
    """The ``skip``-th gap's nearest free priority above (numerically below) ``priority``."""
    p = priority - 1
    gaps = 0
    while p >= PRIORITY_MIN:
        if p not in used:
            if gaps == skip:
                return p
            gaps += 1
            while p >= PRIORITY_MIN and p not in used:
                p -= 1
            continue
        p -= 1
    return None


def _exact(evaluator: Evaluator, before: Nsg, after: Nsg, targets: set[tuple[str, int]]) -> str | None:
    """None when ``after`` removes exactly the targets' exposure: every target (rule, port) exposes nothing
    and every other rule exposes exactly what it did (the engine, on the targeted ports)."""
    ports = sorted({p for _, p in targets})
    before_x = evaluator.evaluate(before, ports)
    after_x = evaluator.evaluate(after, ports)
    for port in ports:
        b = {rx.rule.name.lower(): rx.exposed for rx in before_x[port]}
        a = {rx.rule.name.lower(): rx.exposed for rx in after_x[port]}
        for name in set(a) | set(b):
            if (name, port) in targets:
                if a.get(name):
                    return f"rule {name} would still expose port {port}"
            elif a.get(name, _NOTHING) != b.get(name, _NOTHING):
                return f"the change would alter what {name} exposes on port {port}"
    return None


def _broad_deny(nsg: Nsg, targets: list[Finding], ctx: _Ctx) -> Action | None:
    """One deny in front of every target (blast-radius fallback), only where the engine shows it is exact."""
    groups = [(r, p, i) for r, p, i in _group(targets) if r.name.lower() not in ctx.protected
              and not is_jit_rule(r, ctx.evaluator) and r.allows and not r.is_default]
    if not groups:
        return None
    ports = tuple(sorted({p for _, ps, _ in groups for p in ps}))
    public = AddressSet()
    tags: set[str] = set()
    for r, _, _ in groups:
        src = ctx.evaluator.public_sources(r)
        public = public | src.addresses
        tags |= set(src.tags)
    if tags:
        return None
    # 'Internet' when that is exact (no other rule behind it exposes those ports), else the exact union.
    options = [["Internet"]] if ctx.evaluator.public == DEFAULT_PUBLIC else []
    exact_union = public.to_cidrs()
    if exact_union and len(exact_union) <= MAX_BROAD_PREFIXES and exact_union != options[:1]:
        options.append(exact_union)
    first = groups[0]
    ids = tuple(i for _, _, ids in groups for i in ids)
    name = broad_deny_name(nsg.id, ports)
    existing = _find(nsg, name)
    if existing is not None and not is_own_rule(existing):
        return None
    props: dict[str, Any] = {
        "description": own_description(ids[0], f"broad deny of internet TCP {', '.join(map(str, ports))} for "
                                       f"{len(groups)} rules, first", first[0].name),
        "protocol": "Tcp", "sourcePortRange": "*", "destinationAddressPrefix": "*", "access": DENY,
        "direction": INBOUND}
    _tokens_field(props, "destinationPortRange", "destinationPortRanges", PortSet.from_ports(ports).to_tokens())
    used = {r.priority for r in nsg.rules if r.inbound and not r.is_default and r.name.lower() != name.lower()}
    top = min(r.priority for r, _, _ in groups)
    targets = {(r.name.lower(), p) for r, ps, _ in groups for p in ps}
    for sources in options:
        _tokens_field(props, "sourceAddressPrefix", "sourceAddressPrefixes", sources)
        for gap in range(MAX_SLOT_TRIES):
            slot = _free_below(used, top, gap)
            if slot is None:
                break
            body = {"name": name, "properties": {**props, "priority": slot}}
            what = sources[0] if len(sources) == 1 else f"their {len(sources)} public prefixes"
            action = Action(OP_PUT, body, body_of(existing) if existing else None,
                            f"blast radius: {len(groups)} rules need a deny; one deny of TCP "
                            f"{', '.join(map(str, ports))} from {what} at priority {slot}, in front of all of them, "
                            "removes exactly their internet exposure", BROAD_DENY, first[0].name, ports, ids)
            try:
                after = apply_actions(nsg, [action], ctx.extra_tags)
            except PlanError:
                continue
            # Nothing but targets below the deny may carry that traffic: a broad deny must never decide
            # packets that fell through every target to some other rule (source ports, destinations).
            if _exact(ctx.evaluator, nsg, after, targets) is None and \
                    _clear_between(nsg, action, slot, PRIORITY_MAX, targets, ctx):
                return action
    return None


def _drop_redundant(nsg: Nsg, actions: list[Action], ctx: _Ctx) -> list[Action]:
    """Leave out a new deny that a later-planned, higher deny already covers (the plan then needs no clean-up
    by the next run): only when the engine shows the NSG ends up exactly the same without it."""
    new = [a for a in actions if a.op == OP_PUT and a.replaces is None and a.strategy == INSERT_DENY]
    if not 2 <= len(new) <= 32:  # bounded: each candidate costs two evaluations
        return actions
    after = apply_actions(nsg, actions, ctx.extra_tags)
    ports = sorted({p for a in new for p in a.ports})
    keep = list(actions)
    for a in new:
        trial = [x for x in keep if x is not a]
        try:
            without = apply_actions(nsg, trial, ctx.extra_tags)
        except PlanError:
            continue
        prio = a.rule["properties"]["priority"]
        cover = max((x for x in trial if x in new and x.rule["properties"]["priority"] < prio),
                    key=lambda x: x.rule["properties"]["priority"], default=None)
        if cover is not None and _covers(cover, a, nsg, ctx) and \
                _same_exposure(ctx.evaluator, after, without, ports):
            merged = replace(cover, finding_ids=cover.finding_ids + a.finding_ids)
            keep = [merged if x is cover else x for x in trial]
            new = [merged if x is cover else x for x in new]
    return keep


def _covers(big: Action, small: Action, nsg: Nsg, ctx: _Ctx) -> bool:
    """Structurally, ``big`` denies everything ``small`` denies (source ports, ports, sources, destination)."""
    b = parse_rule(big.rule, nsg_id=nsg.id, extra_tags=ctx.extra_tags)
    s = parse_rule(small.rule, nsg_id=nsg.id, extra_tags=ctx.extra_tags)
    bp, sp = b.to_arm()["properties"], s.to_arm()["properties"]
    ranges = ("sourcePortRange", "sourcePortRanges")
    same_sport = bp.get("sourcePortRange") == "*" or [bp.get(k) for k in ranges] == [sp.get(k) for k in ranges]
    bsrc, ssrc = ctx.evaluator.public_sources(b), ctx.evaluator.public_sources(s)
    return (same_sport and s.destination_ports <= b.destination_ports and ssrc.addresses <= bsrc.addresses
            and ssrc.tags <= bsrc.tags and destination_of(b).covers(destination_of(s)))


def _same_exposure(evaluator: Evaluator, a: Nsg, b: Nsg, ports: list[int]) -> bool:
    xa, xb = evaluator.evaluate(a, ports), evaluator.evaluate(b, ports)
    for port in ports:
        ma = {rx.rule.name.lower(): rx.exposed for rx in xa[port] if rx.exposed}
        mb = {rx.rule.name.lower(): rx.exposed for rx in xb[port] if rx.exposed}
        if ma != mb:
            return False
    return True


def _stale_denies(work: Nsg, planned: set[str], reevaluate: Reevaluate, scope: RevertScope,
                  evaluator: Evaluator) -> list[Action]:
    """NSG Guard denies whose removal would create no revert target: delete them (checked together first,
    one by one only when some are still needed)."""
    own = [r for r in work.rules
           if is_own_rule(r) and r.name.lower() not in planned and _fixed(work, r, scope, evaluator)]
    if not own:
        return []
    base = {f.finding_id for f in scope.targets(reevaluate(work))}

    def without(rules: list[Rule]) -> Nsg:
        drop = {r.name.lower() for r in rules}
        return replace(work, rules=tuple(r for r in work.rules if r.name.lower() not in drop), _sorted_inbound=())

    def harmless(rules: list[Rule]) -> bool:
        return {f.finding_id for f in scope.targets(reevaluate(without(rules)))} <= base

    stale = own if harmless(own) else [r for r in own if harmless([r])] if len(own) > 1 else []
    if len(stale) > 1 and not harmless(stale):
        stale = stale[:1]  # each alone is harmless but not together: one per run, the next run re-checks
    out = []
    for r in stale:
        body = body_of(r)
        fid = own_finding_id(r) or ""
        out.append(Action(OP_DELETE, body, body, f"{r.name} is no longer needed: removing it exposes nothing "
                          "the revert scope covers (the rule it stood in front of was fixed or removed)",
                          REMOVE_STALE, own_offending_rule(r) or r.name, tuple(sorted(
                              p for lo, hi in r.destination_ports for p in range(lo, hi + 1))) if _small(r) else (),
                          (fid,) if fid else ()))
    return out


def _fixed(work: Nsg, deny: Rule, scope: RevertScope, evaluator: Evaluator) -> bool:
    """The rule a deny stands in front of was removed or changed since (its deny would now be written
    differently): only then is the deny a candidate for removal. Broad denies are judged by the engine only."""
    if deny.name.lower().startswith(f"{OWN_PREFIX}deny-all-"):
        return True
    name = own_offending_rule(deny)
    rule = _find(work, name) if name else None
    if rule is None or not rule.allows or not rule.carries_tcp:
        return True
    ports = tuple(p for lo, hi in deny.destination_ports for p in range(lo, hi + 1)) if _small(deny) else ()
    if not ports or not all(p in rule.destination_ports for p in ports):
        return True
    planner = _RulePlanner(work, rule, ports, (), _Ctx(evaluator, frozenset(), DEFAULT_STRATEGIES, frozenset()))
    sources = planner._deny_sources()
    return sources is None or sorted(t.lower() for t in sources) != sorted(t.text.lower() for t in deny.sources)


def _small(rule: Rule) -> bool:
    return rule.destination_ports.size() <= 16


def _disjoint_destinations(a: Destination, b: Destination) -> bool:
    """True only when no NIC can be in both (CIDRs without overlap, no tags or ASGs whose members we
    cannot see)."""
    if a.universal or b.universal or a.opaque or b.opaque:
        return False
    return not (a.addresses & b.addresses)


def _find(nsg: Nsg, name: str) -> Rule | None:
    low = name.lower()
    return next((r for r in nsg.rules if r.name.lower() == low), None)


def _tokens_field(props: dict[str, Any], single: str, plural: str, tokens: Sequence[str]) -> None:
    props.pop(single, None)
    props.pop(plural, None)
    if len(tokens) == 1:
        props[single] = tokens[0]
    else:
        props[plural] = list(tokens)


class _RulePlanner:
    def __init__(self, nsg: Nsg, rule: Rule, ports: tuple[int, ...], ids: tuple[str, ...], ctx: _Ctx) -> None:
        self.nsg, self.rule, self.ports, self.ids = nsg, rule, ports, ids
        self.ctx = ctx
        self.evaluator = ctx.evaluator
        self.public = ctx.evaluator.public
        self.extra_tags = ctx.extra_tags
        self.deny_name = deny_rule_name(rule.id, ports)
        self.existing_deny = _find(nsg, self.deny_name)
        self.port_text = ", ".join(map(str, ports))

    def choose(self) -> tuple[list[Action] | None, list[str]]:
        why_not: list[str] = []
        wanted = self.ctx.strategies
        candidates = [c for name, c in ((INSERT_DENY, self._insert_deny), (NARROW, self._narrow),
                                        (SHIFT, self._shift)) if name in wanted]
        if INSERT_DENY in wanted:
            candidates[1:1] = [self._insert_deny_gap(g) for g in range(1, MAX_SLOT_TRIES)]
        for candidate in candidates:
            try:
                actions = candidate(why_not)
                if actions is None:
                    continue
                after = apply_actions(self.nsg, actions, self.extra_tags)
            except PlanError as exc:
                why_not.append(f"{getattr(candidate, '__name__', 'insert').strip('_')}: {exc.reason}")
                continue
            problem = self._inexact(after)
            if problem is None and candidate == self._narrow:
                problem = self._falls_through_narrow_destination(after)
            if problem is None:
                return actions, why_not
            why_not.append(problem)
        if NARROW not in wanted or SHIFT not in wanted:
            why_not.append("changing the rule itself (narrow, shift) is opt-in: REVERT_STRATEGIES")
        return None, why_not

    # --- exactness, checked with the engine on the targeted ports ---
    def _inexact(self, after: Nsg) -> str | None:
        before_x = self.evaluator.evaluate(self.nsg, self.ports)
        after_x = self.evaluator.evaluate(after, self.ports)
        me = self.rule.name.lower()
        for port in self.ports:
            b = {rx.rule.name.lower(): rx.exposed for rx in before_x[port]}
            a = {rx.rule.name.lower(): rx.exposed for rx in after_x[port]}
            if a.get(me):
                return f"rule {self.rule.name} would still expose port {port}"
            for name in set(a) | set(b):
                if name != me and a.get(name, _NOTHING) != b.get(name, _NOTHING):
                    return (f"traffic removed from {self.rule.name} would fall through to {name} on port {port}")
        return None

    def _falls_through_narrow_destination(self, after: Nsg) -> str | None:
        """Narrowing R lets the removed traffic reach later rules. For an all-destination R the engine sees
        that (later exposures grow); for a rule aimed at some destinations it cannot, since such a rule never
        shadows later ones. So then any later Allow that may carry the removed traffic rejects narrowing;
        insert-deny and shift stay exact because their Deny keeps R's destination."""
        dest = destination_of(self.rule)
        if dest.universal:
            return None
        removed = self.evaluator.public_sources(self.rule)
        for later in after.inbound_rules:
            if later.priority <= self.rule.priority or not later.allows or not later.carries_tcp:
                continue
            if not any(p in later.destination_ports for p in self.ports):
                continue
            if overlaps(self.evaluator.public_sources(later), removed) and \
                    not _disjoint_destinations(destination_of(later), dest):
                return (f"traffic removed from {self.rule.name} would fall through to {later.name} for the "
                        "same destinations")
        return None

    # --- building blocks ---
    def _deny_sources(self) -> list[str] | None:
        kinds = {t.kind for t in self.rule.sources}
        if KIND_ALL in kinds or KIND_INTERNET in kinds:
            # 'Internet' is the public space by contract; with extra private ranges configured the public
            # space is smaller than Azure's tag, so name it exactly instead.
            return ["Internet"] if self.public == DEFAULT_PUBLIC else self.public.to_cidrs()
        addresses = AddressSet()
        tags: list[str] = []
        for t in self.rule.sources:
            if t.kind == KIND_CIDR:
                addresses = addresses | (t.addresses & self.public)
            elif t.kind == KIND_BROAD_TAG:
                tags.append(t.text)
        if tags and (addresses or len(tags) > 1):
            return None  # Azure allows a service tag only as the single source: not one rule
        return tags or addresses.to_cidrs() or None

    def _deny_body(self, priority: int, sources: list[str]) -> dict[str, Any]:
        src = self.rule.to_arm()["properties"]
        description = own_description(self.ids[0] if self.ids else finding_id(self.nsg.id, self.rule.name,
                                                                             self.ports[0]),
                                      f"denies internet TCP {self.port_text}", self.rule.name)
        props: dict[str, Any] = {"description": description, "protocol": "Tcp"}
        if "sourcePortRanges" in src:
            props["sourcePortRanges"] = list(src["sourcePortRanges"])
        else:
            props["sourcePortRange"] = src.get("sourcePortRange", "*")
        _tokens_field(props, "destinationPortRange", "destinationPortRanges",
                      PortSet.from_ports(self.ports).to_tokens())
        _tokens_field(props, "sourceAddressPrefix", "sourceAddressPrefixes", sources)
        if "destinationAddressPrefixes" in src:
            props["destinationAddressPrefixes"] = list(src["destinationAddressPrefixes"])
        elif "destinationAddressPrefix" in src:
            props["destinationAddressPrefix"] = src["destinationAddressPrefix"]
        if "destinationApplicationSecurityGroups" in src:
            props["destinationApplicationSecurityGroups"] = list(src["destinationApplicationSecurityGroups"])
        if not any(k in props for k in ("destinationAddressPrefix", "destinationAddressPrefixes",
                                        "destinationApplicationSecurityGroups")):
            props["destinationAddressPrefix"] = "*"
        props.update(access=DENY, priority=priority, direction=INBOUND)
        return {"name": self.deny_name, "properties": props}

    def _deny_action(self, priority: int, sources: list[str], strategy: str, reason: str) -> Action:
        replaces = body_of(self.existing_deny) if self.existing_deny is not None else None
        return Action(OP_PUT, self._deny_body(priority, sources), replaces, reason, strategy, self.rule.name,
                      self.ports, self.ids)

    def _used(self) -> set[int]:
        own = self.deny_name.lower()
        return {r.priority for r in self.nsg.rules if r.inbound and r.name.lower() != own}

    def _deny_allowed(self, why_not: list[str]) -> list[str] | None:
        if self.existing_deny is not None and not is_own_rule(self.existing_deny):
            why_not.append(f"a rule named {self.deny_name} exists and is not an NSG Guard deny rule")
            return None
        sources = self._deny_sources()
        if sources is None:
            why_not.append(f"the public sources of {self.rule.name} cannot be written as one rule's sources")
        return sources

    def _describe_sources(self, sources: list[str]) -> str:
        return sources[0] if len(sources) == 1 else f"{len(sources)} public prefixes"

    # --- strategies ---
    def _insert_reason(self, slot: int, sources: list[str]) -> str:
        return (f"deny TCP {self.port_text} from {self._describe_sources(sources)} at priority {slot}, in front "
                f"of {self.rule.name} ({self.rule.priority}): removes its internet exposure; other sources "
                "and ports keep working; the rule itself is not changed")

    def _insert_deny(self, why_not: list[str], gap: int = 0) -> list[Action] | None:
        used = self._used()
        slot = _free_below(used, self.rule.priority, gap)
        if slot is None:
            if gap == 0:
                why_not.append(f"no free priority in front of {self.rule.name} ({self.rule.priority})")
            return None
        sources = self._deny_allowed(why_not)
        if sources is None:
            return None
        action = self._deny_action(slot, sources, INSERT_DENY, self._insert_reason(slot, sources))
        targets = {(self.rule.name.lower(), p) for p in self.ports}
        if not _clear_between(self.nsg, action, slot, self.rule.priority - 1, targets, self.ctx):
            if gap == 0:
                why_not.append(f"rules between priority {slot} and {self.rule.name} also carry that traffic")
            return None
        return [action]

    def _insert_deny_gap(self, gap: int) -> Callable[[list[str]], list[Action] | None]:
        def candidate(why_not: list[str]) -> list[Action] | None:
            return self._insert_deny(why_not, gap)
        candidate.__name__ = "_insert_deny"
        return candidate

    def _narrow(self, why_not: list[str]) -> list[Action] | None:
        r = self.rule
        if r.protocol != "Tcp":
            why_not.append(f"{r.name} is not TCP-only ({r.protocol}): narrowing it would change other protocols")
            return None
        target = PortSet.from_ports(self.ports)
        before = body_of(r)
        props = dict(before["properties"])
        if self._all_public(r):
            remaining = r.destination_ports - target
            if not remaining:
                reason = (f"no free priority before {r.name} ({r.priority}); it only allows public sources on "
                          f"TCP {self.port_text}: delete it")
                return [Action(OP_DELETE, before, before, reason, NARROW_PORTS, r.name, self.ports, self.ids)]
            _tokens_field(props, "destinationPortRange", "destinationPortRanges", remaining.to_tokens())
            reason = (f"no free priority before {r.name} ({r.priority}); its sources are all public: remove "
                      f"TCP {self.port_text} from its ports (now {', '.join(remaining.to_tokens())})")
            return [Action(OP_PUT, {"name": r.name, "properties": props}, before, reason, NARROW_PORTS, r.name,
                           self.ports, self.ids)]
        if r.destination_ports <= target and r.sources and all(t.kind == KIND_CIDR for t in r.sources):
            private = AddressSet()
            for t in r.sources:
                private = private | (t.addresses - self.public)
            if not private and not r.source_asgs:
                reason = (f"no free priority before {r.name} ({r.priority}); it only allows public sources on "
                          f"TCP {self.port_text}: delete it")
                return [Action(OP_DELETE, before, before, reason, NARROW_SOURCES, r.name, self.ports, self.ids)]
            if private:
                _tokens_field(props, "sourceAddressPrefix", "sourceAddressPrefixes", private.to_cidrs())
            else:
                props.pop("sourceAddressPrefix", None)
                props.pop("sourceAddressPrefixes", None)
            reason = (f"no free priority before {r.name} ({r.priority}); keep only its non-public sources "
                      f"({self._describe_sources(private.to_cidrs()) if private else 'its application security groups'}"
                      f") on TCP {self.port_text}")
            return [Action(OP_PUT, {"name": r.name, "properties": props}, before, reason, NARROW_SOURCES, r.name,
                           self.ports, self.ids)]
        why_not.append(f"{r.name} cannot be narrowed exactly in place (it mixes public and non-public sources "
                       "with other ports, or uses '*' / service tags)")
        return None

    def _all_public(self, r: Rule) -> bool:
        if r.source_asgs or not r.sources:
            return False
        for t in r.sources:
            if t.kind in (KIND_INTERNET, KIND_BROAD_TAG):
                continue
            if t.kind == KIND_CIDR and t.addresses <= self.public:
                continue
            return False
        return True

    def _shift(self, why_not: list[str]) -> list[Action] | None:
        r = self.rule
        used = self._used()
        nxt = min((p for p in used if p > r.priority), default=PRIORITY_MAX + 1)
        slot = r.priority + 1
        if slot >= nxt or slot > PRIORITY_MAX or (self.existing_deny is not None and
                                                   self.existing_deny.priority == slot):
            why_not.append(f"no free priority right after {r.name} ({r.priority}) either")
            return None
        sources = self._deny_allowed(why_not)
        if sources is None:
            return None
        before = body_of(r)
        moved = {"name": r.name, "properties": {**before["properties"], "priority": slot}}
        move_reason = (f"no free priority before {r.name} ({r.priority}): move it to {slot} unchanged (nothing "
                       "lies between, so it means the same) to make room for the deny rule")
        deny_reason = (f"deny TCP {self.port_text} from {self._describe_sources(sources)} at priority "
                       f"{r.priority}, just before {r.name} (now {slot}): removes its internet exposure")
        return [Action(OP_PUT, moved, before, move_reason, SHIFT, r.name, self.ports, self.ids),
                self._deny_action(r.priority, sources, SHIFT, deny_reason)]


_NOTHING = PublicSources()


def needs_revert(nsg: Nsg, findings: Iterable[Finding], evaluator: Evaluator, scope: RevertScope) -> bool:
    """Cheap test for the event path: is there a target, or an NSG Guard deny whose rule changed since?"""
    if scope.targets(findings):
        return True
    return any(is_own_rule(r) and _fixed(nsg, r, scope, evaluator) for r in nsg.rules)
