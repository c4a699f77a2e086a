"""Azure Policy exemptions as NSG Guard's approval store (pure): parse, validate, fingerprint, index.

An exemption (``Microsoft.Authorization/policyExemptions``) on an NSG, or a scope above it, against NSG
Guard's own policy assignment exempts the rules its ``metadata.nsgGuard.rules`` names, as long as each rule's
content still has the fingerprint it had when approved. Creating one needs ``policyExemptions/write`` plus
``policyAssignments/exempt/action`` -- rights network editors do not have -- so it is an approval.

Everything here is hostile input: a bad exemption becomes an :class:`ExemptionProblem` (a finding of its
own on every NSG in its scope) or an :class:`InputError` naming the item, never another exception.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.core.errors import InputError
from shared.core.model import Rule

EXEMPTION_TYPE = "microsoft.authorization/policyexemptions"
DEFAULT_ASSIGNMENT_NAME = "nsg-guard-internet-ssh"  # infra/modules/policy.bicep
DEFAULT_MAX_DAYS = 90
CATEGORIES = {"waiver": "Waiver", "mitigated": "Mitigated"}
METADATA_KEY = "nsgGuard"
FINGERPRINT_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_MARKER = "/providers/microsoft.authorization/policyexemptions/"
EXEMPTION_QUERY = """policyresources
| where type =~ 'microsoft.authorization/policyexemptions'
| project id, name, type, subscriptionId, resourceGroup, properties
| order by id asc"""
MAX_TEXT = 1000  # ticket/reason/approver kept in Details: bounded, whatever the exemption carries


# --- fingerprint ---------------------------------------------------------------------------------------

def _norm(values: Iterable[str | None]) -> list[str]:
    return sorted({v.strip().lower() for v in values if isinstance(v, str) and v.strip()})


def rule_content(rule: Rule) -> dict[str, Any]:
    """What an approval is about: every field that decides which traffic the rule lets through."""
    return {
        "protocol": rule.protocol.lower(),
        "access": rule.access.lower(),
        "direction": rule.direction.lower(),
        "sourcePorts": _norm([rule.source_port_range, *rule.source_port_ranges]),
        "destinationPorts": _norm([rule.destination_port_range, *rule.destination_port_ranges]),
        "sources": _norm([rule.source_address_prefix, *rule.source_address_prefixes, *rule.source_asgs]),
        "destinations": _norm([rule.destination_address_prefix, *rule.destination_address_prefixes,
                               *rule.destination_asgs]),
    }


def rule_fingerprint(rule: Rule) -> str:
    """``sha256:<hex>`` of the rule's canonical content; name, priority and description are not part of it."""
    text = json.dumps(rule_content(rule), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# --- time ------------------------------------------------------------------------------------------------

def parse_utc(value: Any, what: str) -> datetime:
    """ISO 8601 -> aware UTC datetime. Naive values are UTC (ARM writes ``expiresOn`` in UTC). Any value that
    cannot be represented in UTC (``9999-12-31T23:59:59-12:00``) is an InputError, never an OverflowError."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{what} must be an ISO 8601 date-time string, got {_show(value)}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    frac = re.match(r"^(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)$", text)
    if frac:  # ARM writes up to 7 fractional digits; Python accepts 6
        text = f"{frac.group(1)}.{frac.group(2)[:6]}{frac.group(3)}"
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InputError(f"{what} {_show(value)} is not a usable date-time: {exc}") from None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _text(value: Any) -> str | None:
    return value[:MAX_TEXT] if isinstance(value, str) and value.strip() else None


# --- the model -------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ApprovedRule:
    nsg_id: str | None  # None: the exemption's own scope (which must then be an NSG)
    name: str
    fingerprint: str

    def names(self, nsg_id: str, rule_name: str, scope: str) -> bool:
        target = self.nsg_id or scope
        return target.lower() == nsg_id.lower() and self.name.lower() == rule_name.lower()


@dataclass(frozen=True, slots=True)
class PolicyExemption:
    """A well-formed NSG Guard exemption (bounds checked). ``expired(now)`` is judged when applied."""

    id: str
    name: str
    scope: str
    assignment_id: str
    category: str
    expires_on: datetime
    created_on: datetime | None
    approver: str
    approver_type: str | None
    rules: tuple[ApprovedRule, ...]
    ticket: str | None = None
    reason: str | None = None

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_on

    def covers_scope(self, nsg_id: str) -> bool:
        return in_scope(nsg_id, self.scope)

    def entries_for(self, nsg_id: str, rule_name: str) -> list[ApprovedRule]:
        return [r for r in self.rules if r.names(nsg_id, rule_name, self.scope)]

    def to_json(self) -> dict[str, Any]:
        return {"source": "policy", "id": self.id, "approver": self.approver, "approverType": self.approver_type,
                "expiresOn": _iso(self.expires_on), "createdOn": _iso(self.created_on) if self.created_on else None,
                "category": self.category, "ticket": self.ticket, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ExemptionProblem:
    """An exemption against our assignment that exempts nothing: malformed, unbounded or too long."""

    id: str
    scope: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"source": "policy", "id": self.id, "error": self.message}


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def scope_of(exemption_id: str) -> str:
    """``{scope}/providers/Microsoft.Authorization/policyExemptions/{name}`` -> scope (case kept)."""
    low = exemption_id.lower()
    at = low.rfind(_MARKER)
    if at <= 0 or "/" in exemption_id[at + len(_MARKER):].strip("/") or not exemption_id[at + len(_MARKER):]:
        raise InputError(f"{_show(exemption_id)} is not a policy exemption id "
                         "({scope}/providers/Microsoft.Authorization/policyExemptions/{name})")
    return exemption_id[:at]


def in_scope(resource_id: str, scope: str) -> bool:
    """Whether ``resource_id`` is ``scope`` or below it (ARM ids compare case-insensitively, by segment)."""
    r, s = resource_id.rstrip("/").lower(), scope.rstrip("/").lower()
    if s.startswith("/providers/microsoft.management/managementgroups/"):
        return True  # management-group scopes: the sweep's scope already limits what it reads
    return r == s or r.startswith(s + "/")


def _ancestors(resource_id: str) -> Iterator[str]:
    """``/subscriptions/s/resourceGroups/r/providers/P/t/n`` -> every scope from the subscription down to the
    resource itself, lower-cased (provider segments come in type/name pairs)."""
    parts = resource_id.strip("/").lower().split("/")
    for end in range(2, len(parts) + 1, 2):
        if parts[end - 2] != "providers":
            yield "/" + "/".join(parts[:end])


@dataclass(frozen=True, slots=True)
class AssignmentMatcher:
    """Which policy assignment is NSG Guard's: a full id when configured, else the assignment's name."""

    assignment_id: str | None = None
    assignment_name: str = DEFAULT_ASSIGNMENT_NAME

    def matches(self, value: str) -> bool:
        if self.assignment_id:
            return value.strip().lower() == self.assignment_id.strip().lower()
        return value.rstrip("/").rsplit("/", 1)[-1].lower() == self.assignment_name.lower() and \
            "/providers/microsoft.authorization/policyassignments/" in value.lower()


def parse_policy_exemption(raw: Any, *, now: datetime, max_days: int = DEFAULT_MAX_DAYS,
                           assignment: AssignmentMatcher = AssignmentMatcher()
                           ) -> PolicyExemption | ExemptionProblem | None:
    """One ARM exemption or Resource Graph ``policyresources`` row.

    Returns None for exemptions of other assignments (not ours to judge), an :class:`ExemptionProblem` for
    ours that are malformed or too long, and raises :class:`InputError` only when the item is not an
    exemption at all (no usable id): then nobody can tell which NSGs it was meant for.
    """
    if not isinstance(raw, Mapping):
        raise InputError(f"a policy exemption must be a JSON object, got {type(raw).__name__}")
    exemption_id = raw.get("id")
    if not isinstance(exemption_id, str):
        raise InputError(f"policy exemption without a string 'id' (got {_show(exemption_id)})")
    scope = scope_of(exemption_id)
    props = raw.get("properties")
    if not isinstance(props, Mapping):
        raise InputError(f"policy exemption {exemption_id}: 'properties' must be an object")
    assignment_id = props.get("policyAssignmentId")
    if not isinstance(assignment_id, str):
        raise InputError(f"policy exemption {exemption_id}: 'properties.policyAssignmentId' must be a string")
    if not assignment.matches(assignment_id):
        return None
    try:
        return _validate(raw, props, exemption_id, scope, assignment_id, now, max_days)
    except InputError as exc:
        return ExemptionProblem(exemption_id, scope, exc.reason)


def _validate(raw: Mapping[str, Any], props: Mapping[str, Any], exemption_id: str, scope: str,
              assignment_id: str, now: datetime, max_days: int) -> PolicyExemption:
    category = props.get("exemptionCategory")
    if not isinstance(category, str) or category.lower() not in CATEGORIES:
        raise InputError(f"exemptionCategory {_show(category)} is not Waiver or Mitigated")
    if props.get("expiresOn") in (None, ""):
        raise InputError("expiresOn is missing: NSG Guard exemptions must end")
    expires = parse_utc(props.get("expiresOn"), "expiresOn")
    system = raw.get("systemData") if isinstance(raw.get("systemData"), Mapping) else {}
    meta = props.get("metadata")
    ours = meta.get(METADATA_KEY) if isinstance(meta, Mapping) else None
    if not isinstance(ours, Mapping):
        raise InputError(f"metadata.{METADATA_KEY} is missing: the exemption must name the rules and their "
                         "fingerprints (nsg-guard exempt writes it)")
    created = parse_utc(system["createdAt"], "systemData.createdAt") if system.get("createdAt") else None
    limit = timedelta(days=max_days)
    # Measured from creation when ARM says when that was (Resource Graph rows may not carry systemData);
    # otherwise from now, which still bounds what is left of it.
    start = created or now
    if expires - start > limit:
        raise InputError(f"expiresOn {_iso(expires)} is more than {max_days} days after "
                         f"{'its creation' if created else 'now'} ({_iso(start)}); MAX_EXEMPTION_DAYS={max_days}")
    rules = _rules(ours.get("rules"), scope)
    approver = _text(system.get("createdBy")) or "unknown (no systemData)"
    return PolicyExemption(
        id=exemption_id, name=exemption_id.rstrip("/").rsplit("/", 1)[-1], scope=scope,
        assignment_id=assignment_id, category=CATEGORIES[category.lower()], expires_on=expires,
        created_on=created, approver=approver, approver_type=_text(system.get("createdByType")), rules=rules,
        ticket=_text(ours.get("ticket")), reason=_text(ours.get("reason")) or _text(props.get("description")))


def _rules(value: Any, scope: str) -> tuple[ApprovedRule, ...]:
    if not isinstance(value, list) or not value:
        raise InputError(f"metadata.{METADATA_KEY}.rules must be a non-empty list of "
                         "{nsgId, rule, fingerprint}")
    scope_is_nsg = "/providers/microsoft.network/networksecuritygroups/" in scope.lower() and \
        scope.rstrip("/").lower().split("/")[-2] == "networksecuritygroups"
    out = []
    for i, entry in enumerate(value[:1000]):
        where = f"metadata.{METADATA_KEY}.rules[{i}]"
        if not isinstance(entry, Mapping):
            raise InputError(f"{where} must be an object")
        name, fp, nsg = entry.get("rule"), entry.get("fingerprint"), entry.get("nsgId")
        if not isinstance(name, str) or not name.strip() or name.strip() == "*":
            raise InputError(f"{where}.rule must name one rule (wildcards are not approvals)")
        if not isinstance(fp, str) or not FINGERPRINT_RE.match(fp):
            raise InputError(f"{where}.fingerprint must be sha256:<64 hex> (nsg-guard exempt computes it)")
        if nsg is not None and (not isinstance(nsg, str) or not in_scope(nsg, scope)):
            raise InputError(f"{where}.nsgId {_show(nsg)} is not inside the exemption's scope")
        if nsg is None and not scope_is_nsg:
            raise InputError(f"{where}.nsgId is required when the exemption's scope is not an NSG")
        out.append(ApprovedRule(nsg, name.strip(), fp))
    return tuple(out)


# --- documents and the index ---------------------------------------------------------------------------

def iter_exemption_documents(data: Any) -> Iterator[Any]:
    """Items of an exemptions file: ARM list output (``{"value": [...]}``, with no ``nextLink``), Resource
    Graph output (``{"data": [...]}`` or a bare list of ``policyresources`` rows), or one exemption."""
    if isinstance(data, list):
        yield from data
        return
    if isinstance(data, Mapping):
        if "nextLink" in data and data.get("nextLink"):
            raise InputError("the exemptions file is one page of several (it has a nextLink); list them all")
        if str(data.get("resultTruncated", "false")).lower() == "true" or data.get("$skipToken"):
            raise InputError("the exemptions file is a truncated Resource Graph result; page through all rows")
        for key in ("value", "data"):
            if key in data:
                if not isinstance(data[key], list):
                    raise InputError(f"'{key}' must be a list of policy exemptions")
                yield from data[key]
                return
        if "id" in data:
            yield data
            return
    raise InputError("expected policy exemptions: a list, {'value': [...]}, {'data': [...]} or one exemption")


@dataclass
class ExemptionIndex:
    """The exemptions known for a run, looked up per NSG. ``available`` False: they could not be read."""

    exemptions: list[PolicyExemption] = field(default_factory=list)
    problems: list[ExemptionProblem] = field(default_factory=list)
    available: bool = True
    error: str | None = None
    rejected: list[str] = field(default_factory=list)  # items that were not exemptions at all
    _by_scope: dict[str, list[Any]] | None = field(default=None, repr=False, compare=False)
    _counts: tuple[int, int] = field(default=(0, 0), repr=False, compare=False)

    @classmethod
    def unavailable(cls, error: str) -> ExemptionIndex:
        return cls(available=False, error=error)

    @classmethod
    def parse(cls, raws: Iterable[Any], *, now: datetime, max_days: int, assignment: AssignmentMatcher,
              strict: bool = False) -> ExemptionIndex:
        """Parse every item. Items that are not exemptions at all are listed in ``rejected`` (or, ``strict``,
        raised as InputError naming the item: the CLI's files)."""
        index = cls()
        for i, raw in enumerate(raws):
            try:
                item = parse_policy_exemption(raw, now=now, max_days=max_days, assignment=assignment)
            except InputError as exc:
                if strict:
                    raise InputError(f"exemption #{i + 1}: {exc.reason}") from None
                index.rejected.append(f"item {i + 1}: {exc.reason}"[:500])
                continue
            if isinstance(item, PolicyExemption):
                index.exemptions.append(item)
            elif isinstance(item, ExemptionProblem):
                index.problems.append(item)
        return index

    def for_nsg(self, nsg_id: str) -> tuple[Sequence[PolicyExemption], Sequence[ExemptionProblem]]:
        """The exemptions at the NSG or a scope above it: a lookup per ancestor scope (the sweep asks for every
        NSG of the estate), plus management-group scopes."""
        if not self.exemptions and not self.problems:
            return (), ()  # the common case of a scan without --exemptions: nothing to look up
        if self._by_scope is None or self._counts != (len(self.exemptions), len(self.problems)):
            self._build()
        assert self._by_scope is not None
        found: list[Any] = list(self._by_scope.get("", ()))
        for scope in _ancestors(nsg_id):
            found.extend(self._by_scope.get(scope, ()))
        return ([x for x in found if isinstance(x, PolicyExemption)],
                [x for x in found if isinstance(x, ExemptionProblem)])

    def _build(self) -> None:
        self._by_scope = {}
        for item in [*self.exemptions, *self.problems]:
            key = item.scope.rstrip("/").lower()
            if key.startswith("/providers/microsoft.management/managementgroups/"):
                key = ""  # above every subscription (see in_scope)
            self._by_scope.setdefault(key, []).append(item)
        self._counts = (len(self.exemptions), len(self.problems))

    def in_force(self, now: datetime) -> list[PolicyExemption]:
        return [e for e in self.exemptions if not e.expired(now)]


def graph_exemptions(graph: Any, scope: Any, settings_policy: bool, *, now: datetime, max_days: int,
                     assignment: AssignmentMatcher, fetch: Any = None) -> ExemptionIndex:
    """The sweep: every exemption in scope, listed once per run from Resource Graph (``policyresources``).

    ``graph`` is the sweep's GraphSource; a failure gives an unavailable index (findings stay Open). Resource
    Graph rows need not carry ``systemData`` (who approved, when): ``fetch(id)`` reads those of NSG Guard's own
    exemptions over ARM (one GET per approval, never per NSG), so the cap is measured from creation as on the
    event path."""
    if not settings_policy:
        return ExemptionIndex()
    from shared.core.errors import TransientError

    rows: list[Any] = []
    try:
        for page in graph.pages(EXEMPTION_QUERY, scope):
            rows.extend(page)
    except (TransientError, InputError) as exc:
        return ExemptionIndex.unavailable(f"Resource Graph policyresources: {exc}"[:500])
    problems: list[str] = []
    if fetch is not None:
        rows = [_with_system_data(raw, fetch, assignment, problems) for raw in rows]
    index = ExemptionIndex.parse(rows, now=now, max_days=max_days, assignment=assignment)
    index.rejected.extend(problems)
    return index


def _with_system_data(raw: Any, fetch: Any, assignment: AssignmentMatcher, problems: list[str]) -> Any:
    from shared.core.errors import NsgGuardError

    props = raw.get("properties") if isinstance(raw, Mapping) else None
    ours = isinstance(props, Mapping) and isinstance(props.get("policyAssignmentId"), str) and \
        assignment.matches(props["policyAssignmentId"])
    if not ours or raw.get("systemData") or not isinstance(raw.get("id"), str):
        return raw
    try:
        full = fetch(raw["id"])
    except NsgGuardError as exc:  # not found since, throttled, forbidden: judge the row as it is
        problems.append(f"{raw['id']}: systemData not read ({exc})"[:500])
        return raw
    return full if isinstance(full, Mapping) and full.get("id") else raw
