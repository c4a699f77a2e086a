"""Pure revert planner: the smallest rule change that removes exactly the internet exposure of targeted ports.

Vocabulary. A *target* is an Open, active finding whose port kind is configured for revert and whose exposure
class is in scope (default ``internet``). The *offending rule* R is the finding's rule; its *public sources*
``pub(R)`` are the public part of R's sources as the engine defines it (``*``/``Any``/``Internet`` = the whole
public space; CIDRs intersected with it; ``AzureCloud``-style broad tags). The plan removes, for every targeted
(R, port P), exactly the TCP traffic from ``pub(R)`` to P that R decided before, and nothing else:

    allowed_after == allowed_before - {(src, TCP, P, ...) decided by R : src in pub(R), P targeted for R}

Strategies, tried in this order for each offending rule (each candidate is checked with the engine before it
is accepted, so a candidate that would let traffic fall through to a later Allow is rejected):

1. ``insert-deny``: a new Deny D (TCP, targeted ports, sources ``pub(R)``, R's source ports and destination)
   at the free priority ``R.priority - 1`` when no inbound rule sits between it and R. D matches a subset of
   what R matches and nothing lies between them, so D only ever decides packets R would have allowed.
2. ``narrow-ports`` / ``narrow-sources`` (no free priority before R): change R itself, only when one rule can
   express R minus the removed part exactly: R is ``Tcp`` and either all its sources are public (remove the
   targeted ports from R, or delete R when nothing remains), or R only covers targeted ports and its sources
   are CIDRs (keep only their non-public part). ``*`` sources are never narrowed to a private CIDR list: ``*``
   also covers service-tag sources (VirtualNetwork, AzureLoadBalancer, ASGs) that no CIDR list can name.
3. ``shift``: when ``R.priority + 1`` is free and nothing lies between, move R there unchanged and put D at
   R's old priority (two writes; the order keeps every intermediate state equivalent or narrower).
Otherwise the target is skipped with a reason (the finding stays Open and the skip is recorded).

Never touched: rules named ``SecurityCenter-JITRule…`` (Just-In-Time access), default rules. Our own rules are
named ``nsg-guard-deny-<ports>-<hash of the offending rule id>``: a redelivered event plans the same name, and
an existing rule of that name is replaced (PUT), never duplicated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shared.addresses import DEFAULT_PUBLIC, KIND_ALL, KIND_BROAD_TAG, KIND_CIDR, KIND_INTERNET, AddressSet
from shared.errors import InputError
from shared.exposure import INTERNET, Destination, Evaluator, PublicSources, destination_of, overlaps
from shared.findings import STATUS_OPEN, Finding
from shared.model import DENY, INBOUND, Nsg, Rule, parse_rule
from shared.ports import PortSet

OP_PUT, OP_DELETE = "put", "delete"
INSERT_DENY, NARROW_PORTS, NARROW_SOURCES, SHIFT = "insert-deny", "narrow-ports", "narrow-sources", "shift"
PRIORITY_MIN, PRIORITY_MAX = 100, 4096
MAX_NAME = 80
MAX_DESCRIPTION = 140
OWN_PREFIX = "nsg-guard-"
JIT_PREFIX = "securitycenter-jitrule"

SKIP_JIT, SKIP_DEFAULT, SKIP_NO_SAFE_CHANGE = "jit-rule", "default-rule", "no-safe-change"


def is_jit_rule(name: str) -> bool:
    """Rules created by Defender for Cloud Just-In-Time access: never touched."""
    return name.lower().startswith(JIT_PREFIX)


def is_own_rule(name: str) -> bool:
    return name.lower().startswith(OWN_PREFIX)


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

def _short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.lower().encode()).hexdigest()[:n]


def deny_rule_name(rule_id: str, ports: Sequence[int]) -> str:
    """``nsg-guard-deny-22-1a2b3c4d``: deterministic, so a redelivered event plans the very same rule."""
    ports_part = "-".join(str(p) for p in sorted(ports))
    name = f"{OWN_PREFIX}deny-{ports_part}-{_short_hash(rule_id)}"
    if len(name) > MAX_NAME:
        name = f"{OWN_PREFIX}deny-multi-{_short_hash(rule_id + '|' + ports_part, 12)}"
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


def plan_revert(nsg: Nsg, findings: Iterable[Finding], evaluator: Evaluator, scope: RevertScope = RevertScope(),
                extra_tags: frozenset[str] = frozenset(),
                reevaluate: Callable[[Nsg], Iterable[Finding]] | None = None) -> Plan:
    """Plan the revert of every target among ``findings`` (an evaluation of ``nsg``). Pure.

    ``reevaluate`` (the same engine + exemptions that produced ``findings``) lets the planner look at the NSG as
    it would be after its own changes and plan what became a target only then — split ranges that expose the
    internet together are classified ``internet`` only once the wider rule is gone — so that the event our
    write causes finds nothing left to do.
    """
    all_targets = scope.targets(findings)
    current_targets = list(all_targets)
    handled: set[tuple[str, int]] = set()
    work = nsg
    actions: list[Action] = []
    skipped: list[Skip] = []
    by_rule: dict[str, list[Finding]] = {}
    progressed = False
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
        work = _plan_round(work, fresh + retry, evaluator, extra_tags, actions, skipped)
        progressed = len(actions) > count
        handled |= {(f.rule.name.lower(), f.port) for f in fresh}
        if reevaluate is not None:
            current_targets = scope.targets(reevaluate(work))
            known = {f.finding_id for f in all_targets}
            all_targets += [f for f in current_targets if f.finding_id not in known and
                            (f.rule.name.lower(), f.port) not in handled]
    return Plan(nsg.id, nsg.name, tuple(actions), tuple(skipped), tuple(all_targets))


def _plan_round(work: Nsg, targets: list[Finding], evaluator: Evaluator, extra_tags: frozenset[str],
                actions: list[Action], skipped: list[Skip]) -> Nsg:
    groups: dict[str, tuple[Rule, list[int], list[str]]] = {}
    for f in targets:
        rule, ports, ids = groups.setdefault(f.rule.name.lower(), (f.rule, [], []))
        if f.port not in ports:
            ports.append(f.port)
        ids.append(f.finding_id)
    for rule, ports, ids in sorted(groups.values(), key=lambda g: g[0].priority):
        ports_t, ids_t = tuple(sorted(ports)), tuple(ids)
        if is_jit_rule(rule.name):
            skipped.append(Skip(rule.name, ports_t, ids_t, SKIP_JIT,
                                "created by Just-In-Time access: never touched"))
            continue
        if rule.is_default or not rule.allows or not rule.inbound:
            skipped.append(Skip(rule.name, ports_t, ids_t, SKIP_DEFAULT, "default rules cannot be changed"))
            continue
        current = _find(work, rule.name) or rule
        planner = _RulePlanner(work, current, ports_t, ids_t, evaluator, extra_tags)
        chosen, why_not = planner.choose()
        if chosen is None:
            skipped.append(Skip(rule.name, ports_t, ids_t, SKIP_NO_SAFE_CHANGE, "; ".join(why_not)))
            continue
        work = apply_actions(work, chosen, extra_tags)
        actions.extend(chosen)
    return work


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
    def __init__(self, nsg: Nsg, rule: Rule, ports: tuple[int, ...], ids: tuple[str, ...], evaluator: Evaluator,
                 extra_tags: frozenset[str]) -> None:
        self.nsg, self.rule, self.ports, self.ids = nsg, rule, ports, ids
        self.evaluator = evaluator
        self.public = evaluator.public
        self.extra_tags = extra_tags
        self.deny_name = deny_rule_name(rule.id, ports)
        self.existing_deny = _find(nsg, self.deny_name)
        self.port_text = ", ".join(map(str, ports))

    def choose(self) -> tuple[list[Action] | None, list[str]]:
        why_not: list[str] = []
        for candidate in (self._insert_deny, self._narrow, self._shift):
            try:
                actions = candidate(why_not)
                if actions is None:
                    continue
                after = apply_actions(self.nsg, actions, self.extra_tags)
            except PlanError as exc:
                why_not.append(f"{candidate.__name__.strip('_')}: {exc.reason}")
                continue
            problem = self._inexact(after)
            if problem is None and candidate == self._narrow:
                problem = self._falls_through_narrow_destination(after)
            if problem is None:
                return actions, why_not
            why_not.append(problem)
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
        what = f"TCP {self.port_text}"
        description = f"NSG Guard: blocks internet access to {what} allowed by rule {self.rule.name}"
        props: dict[str, Any] = {"description": description[:MAX_DESCRIPTION], "protocol": "Tcp"}
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
        if self.existing_deny is not None and (self.existing_deny.access != DENY or
                                               not is_own_rule(self.existing_deny.name)):
            why_not.append(f"a rule named {self.deny_name} exists and is not an NSG Guard deny rule")
            return None
        sources = self._deny_sources()
        if sources is None:
            why_not.append(f"the public sources of {self.rule.name} cannot be written as one rule's sources")
        return sources

    def _describe_sources(self, sources: list[str]) -> str:
        return sources[0] if len(sources) == 1 else f"{len(sources)} public prefixes"

    # --- strategies ---
    def _insert_deny(self, why_not: list[str]) -> list[Action] | None:
        used = self._used()
        prev = max((p for p in used if p < self.rule.priority), default=PRIORITY_MIN - 1)
        slot = self.rule.priority - 1
        if slot <= prev:
            why_not.append(f"no free priority between {prev if prev >= PRIORITY_MIN else 'the top'} and "
                           f"{self.rule.name} ({self.rule.priority})")
            return None
        sources = self._deny_allowed(why_not)
        if sources is None:
            return None
        reason = (f"deny TCP {self.port_text} from {self._describe_sources(sources)} at priority {slot}, just "
                  f"before {self.rule.name} ({self.rule.priority}): removes its internet exposure; other sources "
                  "and ports keep working")
        return [self._deny_action(slot, sources, INSERT_DENY, reason)]

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
