"""Exemptions are approvals: apply them to an evaluation (pure). See docs/exemptions.md.

Sources (setting ``EXEMPTION_SOURCES``, default ``policy``):

- ``policy``: Azure Policy exemptions against NSG Guard's assignment (:mod:`shared.core.policyexemptions`). A
  rule is exempt while an exemption names it with the fingerprint of its current content and has not
  expired; a changed rule or an expired exemption leaves the finding Open and ``details`` says why.
- ``tag`` (opt-in): tag ``nsg-guard-exempt`` (``EXEMPT_TAG``; more in ``nsg-guard-exempt-<anything>``)::

      rules=AllowVendorSSH; fingerprint=sha256:<hex>; expires=2025-12-31; ticket=CHG-1234; reason=vendor

  Same bounds and fingerprints as policy exemptions, and honoured only when the write being evaluated was
  made by an approver (``EXEMPTION_APPROVERS``, Entra object ids): whoever can write tags cannot approve.

Exempt findings are kept with status ``Exempt`` (muted, never dropped). An exemption that exempts nothing
(malformed, unbounded, too long) is a finding of its own (severity ``low``). Exemptions that could not be
read leave findings Open with a note. Nothing here raises for hostile values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from shared.core.errors import ConfigError, InputError, NsgNotFound
from shared.core.findings import STATUS_EXEMPT, STATUS_OPEN, Finding, finding_id
from shared.core.model import INBOUND, Nsg, Rule
from shared.core.policy import SEVERITY_ORDER, NsgEvaluation
from shared.core.policyexemptions import (
    DEFAULT_MAX_DAYS,
    AssignmentMatcher,
    ExemptionIndex,
    ExemptionProblem,
    PolicyExemption,
    parse_utc,
    rule_fingerprint,
)
from shared.core.ports import PortSet

DEFAULT_EXEMPT_TAG = "nsg-guard-exempt"
KIND_EXEMPTION_TAG = "exemption-tag"
KIND_EXEMPTION = "exemption"
KEYS = ("rules", "fingerprint", "expires", "ticket", "reason", "ports")
SOURCES = ("policy", "tag")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_FP_TAG = re.compile(r"^(sha256:)?([0-9a-f]{16,64})$")

# Why an exemption that names a finding's rule does not exempt it (details[...]["code"]).
WHY_EXPIRED, WHY_CHANGED, WHY_NOT_APPROVER, WHY_TAGS_OFF = "expired", "rule-changed", "not-approver", "tags-off"


# --- settings ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ExemptionSettings:
    sources: tuple[str, ...] = ("policy",)
    approvers: frozenset[str] = frozenset()  # lower-cased Entra object ids
    max_days: int = DEFAULT_MAX_DAYS
    assignment: AssignmentMatcher = AssignmentMatcher()
    tag_name: str = DEFAULT_EXEMPT_TAG

    @property
    def policy(self) -> bool:
        return "policy" in self.sources

    @property
    def tags(self) -> bool:
        return "tag" in self.sources

    @classmethod
    def from_env(cls, env: Mapping[str, str], tag_name: str = DEFAULT_EXEMPT_TAG) -> ExemptionSettings:
        """``EXEMPTION_SOURCES``, ``EXEMPTION_APPROVERS``, ``MAX_EXEMPTION_DAYS``, ``EXEMPTION_ASSIGNMENT_ID``."""
        problems: list[str] = []
        sources = tuple(dict.fromkeys(s.strip().lower() for s in env.get("EXEMPTION_SOURCES", "policy").split(",")
                                      if s.strip()))
        for s in sources:
            if s not in SOURCES:
                problems.append(f"EXEMPTION_SOURCES: {s!r} is not one of {', '.join(SOURCES)}")
        approvers = [a.strip() for a in env.get("EXEMPTION_APPROVERS", "").split(",") if a.strip()]
        for a in approvers:
            if not _GUID.match(a):
                problems.append(f"EXEMPTION_APPROVERS: {a!r} is not an Entra object id (GUID)")
        days_text = env.get("MAX_EXEMPTION_DAYS", "").strip() or str(DEFAULT_MAX_DAYS)
        if not days_text.isascii() or not days_text.isdigit() or not 1 <= int(days_text) <= 365:
            problems.append(f"MAX_EXEMPTION_DAYS={days_text!r}: expected a whole number of days from 1 to 365")
            days_text = str(DEFAULT_MAX_DAYS)
        assignment_id = env.get("EXEMPTION_ASSIGNMENT_ID", "").strip() or None
        if assignment_id and "/providers/microsoft.authorization/policyassignments/" not in assignment_id.lower():
            problems.append(f"EXEMPTION_ASSIGNMENT_ID={assignment_id!r}: not a policy assignment id")
        if "tag" in sources and not approvers:
            problems.append("EXEMPTION_SOURCES includes 'tag' but EXEMPTION_APPROVERS is empty: no tag could "
                            "ever be honoured")
        if problems:
            raise ConfigError("invalid settings: " + "; ".join(problems))
        return cls(sources=sources, approvers=frozenset(a.lower() for a in approvers), max_days=int(days_text),
                   assignment=AssignmentMatcher(assignment_id), tag_name=tag_name)


# --- tags -------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Exemption:
    """A well-formed exemption tag."""

    tag: str
    rules: tuple[str, ...]  # lower-cased names
    expires: datetime
    ticket: str | None = None
    reason: str | None = None
    ports: tuple[int, ...] = ()  # empty = every watched port
    fingerprints: tuple[str, ...] = ()  # hex prefixes, one per rule (same order)

    def covers(self, finding: Finding) -> bool:
        return finding.rule.name.lower() in self.rules and (not self.ports or finding.port in self.ports)

    def fingerprint_matches(self, rule: Rule) -> bool:
        want = self.fingerprints[self.rules.index(rule.name.lower())]
        return rule_fingerprint(rule).removeprefix("sha256:").startswith(want)

    def expired(self, now: datetime) -> bool:
        return now >= self.expires

    def to_json(self) -> dict[str, Any]:
        return {"source": "tag", "id": f"tag:{self.tag}", "tag": self.tag, "rules": list(self.rules),
                "expiresOn": _iso(self.expires), "ticket": self.ticket, "reason": self.reason,
                "ports": list(self.ports)}


@dataclass(frozen=True, slots=True)
class TagProblem:
    tag: str
    value: str
    message: str


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _is_exempt_tag(key: str, tag_name: str) -> bool:
    low, base = key.lower(), tag_name.lower()
    return low == base or low.startswith(base + "-")


def _parse_expiry(text: str) -> datetime:
    text = text.strip()
    if len(text) == 10:
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        return datetime.combine(day, time.max, tzinfo=UTC)
    if not re.search(r"(Z|z|[+-]\d\d:?\d\d)$", text):
        raise InputError("timestamp needs a time zone (e.g. Z)")
    return parse_utc(text, "expires")


def parse_exemption(tag: str, value: str, max_days: int | None = None, now: datetime | None = None) -> Exemption:
    """Parse one tag value; :class:`InputError` (a ``ValueError``) with a message a person can act on.

    With ``max_days`` the expiry must lie at most that many days after ``now``."""
    if not isinstance(value, str):
        raise InputError(f"tag value must be a string, got {type(value).__name__}")
    fields: dict[str, str] = {}
    for part in value.split(";"):
        if not part.strip():
            continue
        key, eq, val = part.partition("=")
        key = key.strip().lower()
        if not eq or not val.strip():
            raise InputError(f"{part.strip()[:60]!r} is not key=value")
        if key not in KEYS:
            raise InputError(f"unknown key {key[:40]!r} (expected {', '.join(KEYS)})")
        if key in fields:
            raise InputError(f"key {key!r} given twice")
        fields[key] = val.strip()
    if "rules" not in fields:
        raise InputError("missing 'rules=' (rule names, comma separated)")
    if "expires" not in fields:
        raise InputError("missing 'expires=' (YYYY-MM-DD): exemptions must end")
    if "ticket" not in fields and "reason" not in fields:
        raise InputError("missing 'ticket=' or 'reason=': say why the exemption exists")
    rules = tuple(dict.fromkeys(r.strip().lower() for r in fields["rules"].split(",") if r.strip()))
    if not rules or "*" in rules:
        raise InputError("'rules=' must list rule names ('*' is not an approval of anything in particular)")
    try:
        expires = _parse_expiry(fields["expires"])
    except InputError as exc:
        raise InputError(f"invalid expires {fields['expires'][:60]!r}: {exc.reason}") from None
    if max_days is not None and now is not None and expires - now > timedelta(days=max_days):
        raise InputError(f"expires {fields['expires'][:40]!r} is more than {max_days} days away "
                         f"(MAX_EXEMPTION_DAYS={max_days})")
    fingerprints: tuple[str, ...] = ()
    if "fingerprint" in fields:
        parts = [p.strip().lower() for p in fields["fingerprint"].split(",")]
        matches = [_FP_TAG.match(p) for p in parts]
        if len(parts) != len(rules) or not all(matches):
            raise InputError("'fingerprint=' needs one sha256 hex prefix (16+ digits) per rule, in the same order")
        fingerprints = tuple(m.group(2) for m in matches if m)
    ports: tuple[int, ...] = ()
    if "ports" in fields:
        parsed = []
        for p in fields["ports"].split(","):
            p = p.strip()
            if not p.isascii() or not p.isdigit() or not 0 < int(p) <= 65535:
                raise InputError(f"invalid port {p[:20]!r} in 'ports='")
            parsed.append(int(p))
        ports = tuple(sorted(set(parsed)))
    return Exemption(tag, rules, expires, fields.get("ticket"), fields.get("reason"), ports, fingerprints)


def parse_exemptions(tags: Mapping[str, str] | tuple[tuple[str, str], ...], tag_name: str = DEFAULT_EXEMPT_TAG,
                     max_days: int | None = None, now: datetime | None = None
                     ) -> tuple[list[Exemption], list[TagProblem]]:
    items = tags.items() if isinstance(tags, Mapping) else tags
    exemptions: list[Exemption] = []
    problems: list[TagProblem] = []
    for key, value in sorted(items, key=lambda kv: str(kv[0])):
        if not isinstance(key, str) or not _is_exempt_tag(key, tag_name):
            continue
        try:
            exemptions.append(parse_exemption(key, value, max_days, now))
        except InputError as exc:
            problems.append(TagProblem(key, str(value)[:512], exc.reason))
    return exemptions, problems


# --- the context of one evaluation ----------------------------------------------------------------------

@dataclass(frozen=True)
class ExemptionContext:
    """What one run knows: settings, the policy exemptions read for it, and who made the write (events)."""

    settings: ExemptionSettings = field(default_factory=ExemptionSettings)
    index: ExemptionIndex = field(default_factory=ExemptionIndex)
    actor_object_id: str | None = None

    @property
    def actor_is_approver(self) -> bool:
        return bool(self.actor_object_id) and self.actor_object_id.lower() in self.settings.approvers


_CURRENT: ContextVar[ExemptionContext | None] = ContextVar("nsg_guard_exemptions", default=None)


@contextmanager
def exemption_context(context: ExemptionContext) -> Iterator[ExemptionContext]:
    """Make ``context`` the one :func:`apply_exemptions` uses in this thread/task (e.g. inside the reverter's
    re-evaluations, which only pass a tag name), then restore the previous one."""
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


def current_context() -> ExemptionContext | None:
    return _CURRENT.get()


def _pseudo_finding(nsg: Nsg, name: str, pseudo_id: str, kind: str, reason: str, details: dict[str, Any]
                    ) -> Finding:
    # An exemption problem is not about a rule; a placeholder rule carries its name where the rule name goes.
    pseudo = Rule(name=name, id=pseudo_id, priority=0, direction=INBOUND, access="Allow", protocol="*",
                  sources=(), destination_ports=PortSet.NONE)
    return Finding(finding_id(nsg.id, name, 0), nsg, pseudo, 0, kind, "none", True, "low", reason, STATUS_OPEN,
                   details)


def _tag_finding(nsg: Nsg, problem: TagProblem, tags_on: bool) -> Finding:
    reason = (f"exemption tag {problem.tag} is malformed and does not apply: {problem.message}. " +
              ("Format: rules=<names>; fingerprint=<sha256 hex>; expires=YYYY-MM-DD; ticket=<id>; reason=<text>"
               if tags_on else "Tag exemptions are off (EXEMPTION_SOURCES); approve with a Policy exemption"))
    return _pseudo_finding(nsg, f"tag:{problem.tag}", f"{nsg.id}/tags/{problem.tag}", KIND_EXEMPTION_TAG, reason,
                           {"exemptionTag": problem.tag, "value": problem.value, "error": problem.message})


def _problem_finding(nsg: Nsg, problem: ExemptionProblem) -> Finding:
    name = problem.id.rstrip("/").rsplit("/", 1)[-1]
    reason = (f"policy exemption {name} exempts nothing: {problem.message}. Create exemptions with "
              "'nsg-guard exempt' (expiresOn within MAX_EXEMPTION_DAYS, rules and fingerprints in metadata)")
    return _pseudo_finding(nsg, f"exemption:{name}", problem.id, KIND_EXEMPTION, reason,
                           {"exemptionError": problem.to_json()})


def _policy_verdict(f: Finding, exemptions: Sequence[PolicyExemption], now: datetime
                    ) -> tuple[PolicyExemption | None, list[dict[str, Any]]]:
    fingerprint: str | None = None
    lapsed: list[dict[str, Any]] = []
    for e in exemptions:
        entries = e.entries_for(f.nsg.id, f.rule.name)
        if not entries:
            continue
        if e.expired(now):
            lapsed.append({**e.to_json(), "code": WHY_EXPIRED, "why": f"expired {_iso(e.expires_on)}"})
            continue
        fingerprint = fingerprint or rule_fingerprint(f.rule)
        if any(entry.fingerprint == fingerprint for entry in entries):
            return e, lapsed
        lapsed.append({**e.to_json(), "code": WHY_CHANGED,
                       "why": "the rule changed since it was approved (content fingerprint differs): "
                              f"approved {entries[0].fingerprint[:19]}..., now {fingerprint[:19]}..."})
    return None, lapsed


def _tag_verdict(f: Finding, tags: Sequence[Exemption], ctx: ExemptionContext, now: datetime
                 ) -> tuple[Exemption | None, list[dict[str, Any]]]:
    lapsed: list[dict[str, Any]] = []
    for t in tags:
        if not t.covers(f):
            continue
        if not ctx.settings.tags:
            lapsed.append({**t.to_json(), "code": WHY_TAGS_OFF,
                           "why": "tag exemptions are off (EXEMPTION_SOURCES); approve with a Policy exemption"})
        elif t.expired(now):
            lapsed.append({**t.to_json(), "code": WHY_EXPIRED, "why": f"expired {_iso(t.expires)}"})
        elif not t.fingerprints or not t.fingerprint_matches(f.rule):
            lapsed.append({**t.to_json(), "code": WHY_CHANGED,
                           "why": "no fingerprint, or the rule changed since the tag was set"})
        elif not ctx.actor_is_approver:
            who = ctx.actor_object_id or "unknown (no event: sweep or scan)"
            lapsed.append({**t.to_json(), "code": WHY_NOT_APPROVER,
                           "why": f"the write was made by {who}, not by an approver in EXEMPTION_APPROVERS"})
        else:
            return t, lapsed
    return None, lapsed


def apply_exemptions(evaluation: NsgEvaluation, tag_name: str = DEFAULT_EXEMPT_TAG, now: datetime | None = None,
                     context: ExemptionContext | None = None) -> NsgEvaluation:
    """Mark covered Open findings ``Exempt``; explain exemptions that do not apply; add findings for
    exemptions that exempt nothing. The context is ``context``, else the one set by
    :func:`exemption_context`, else the defaults (policy source, no exemptions known)."""
    now = now or datetime.now(UTC)
    ctx = context or current_context() or ExemptionContext(ExemptionSettings(tag_name=tag_name))
    nsg = evaluation.nsg
    index = ctx.index
    if (index.available or not ctx.settings.policy) and not index.exemptions and not index.problems:
        # Nothing known for any scope (a scan without --exemptions): only an exemption tag could change
        # anything, and every one of them starts with the tag name (``_is_exempt_tag``).
        base = (ctx.settings.tag_name or tag_name).lower()
        items = nsg.tags if type(nsg.tags) is tuple else nsg.tags.items() if isinstance(nsg.tags, Mapping) \
            else nsg.tags
        if not items or not any(isinstance(key, str) and key.lower().startswith(base) for key, _ in items):
            return evaluation
    policy, problems = ctx.index.for_nsg(nsg.id) if ctx.settings.policy else ((), ())
    max_days = ctx.settings.max_days if ctx.settings.tags else None
    tags, tag_problems = parse_exemptions(nsg.tags, ctx.settings.tag_name or tag_name, max_days, now)
    unavailable = ctx.settings.policy and not ctx.index.available
    if not policy and not problems and not tags and not tag_problems and not unavailable:
        return evaluation
    out: list[Finding] = []
    for f in evaluation.findings:
        if f.status == STATUS_OPEN and f.port_kind not in (KIND_EXEMPTION, KIND_EXEMPTION_TAG):
            f = _judge(f, policy, tags, ctx, now)
        out.append(f)
    out.extend(_tag_finding(nsg, p, ctx.settings.tags) for p in tag_problems)  # reported even with tags off
    out.extend(_problem_finding(nsg, p) for p in problems)
    if unavailable:
        out = [replace(f, details={**f.details, "exemptionsUnavailable": ctx.index.error})
               if f.status == STATUS_OPEN else f for f in out]
    out.sort(key=lambda f: (-SEVERITY_ORDER[f.severity], f.port, f.rule.priority))
    return NsgEvaluation(nsg, tuple(out))


def _judge(f: Finding, policy: Sequence[PolicyExemption], tags: Sequence[Exemption], ctx: ExemptionContext,
           now: datetime) -> Finding:
    honoured, lapsed = _policy_verdict(f, policy, now)
    tag_honoured, tag_lapsed = (None, []) if honoured else _tag_verdict(f, tags, ctx, now)
    lapsed += tag_lapsed
    chosen: PolicyExemption | Exemption | None = honoured or tag_honoured
    if chosen is not None:
        info = chosen.to_json()
        if isinstance(chosen, Exemption):
            info["approver"] = ctx.actor_object_id
        until = _iso(chosen.expires_on if isinstance(chosen, PolicyExemption) else chosen.expires)
        note = f" [exempt until {until[:10]} by {info.get('approver')}: {chosen.ticket or chosen.reason}]"
        return replace(f, status=STATUS_EXEMPT, reason=f.reason + note, details={**f.details, "exemption": info})
    if not lapsed:
        return f
    first = lapsed[0]
    note = f"; exemption {str(first.get('id') or first.get('tag'))[-60:]} does not apply: {first['why']}"
    return replace(f, reason=f.reason + note, details={**f.details, "exemptionNotApplied": lapsed})


def lapsed_exemption(f: Finding) -> bool:
    """An Open finding whose exemption stopped covering it: expired, or the rule changed since approval. (Tags
    that are off or not set by an approver were never approvals: the event that wrote them reverts them.)"""
    return f.status == STATUS_OPEN and f.active and any(
        e.get("code") in (WHY_EXPIRED, WHY_CHANGED) for e in f.details.get("exemptionNotApplied") or ())


def event_exemptions(deps: Any, change: Any) -> ExemptionContext:
    """The context of one event: the NSG's policy exemptions (read over ARM by ``deps.exemptions``, which
    raises TransientError for a retry) and the event's actor (tag approvals)."""
    return nsg_exemptions(deps, change.nsg_id, change.actor, deleted=change.nsg_deleted)


def nsg_exemptions(deps: Any, nsg_id: str, actor: Any, deleted: bool = False) -> ExemptionContext:
    """The context of one NSG read by the event path or a revert job (``deps`` carries ``exemption_settings``,
    ``exempt_tag``, ``exemptions`` and ``clock``)."""
    settings = deps.exemption_settings or ExemptionSettings(tag_name=deps.exempt_tag)
    index = ExemptionIndex()
    if deps.exemptions is not None and not deleted:
        try:
            index = deps.exemptions.index_for(nsg_id, settings, deps.clock())
        except NsgNotFound:
            index = ExemptionIndex()  # the NSG is gone: the handler records that
    return ExemptionContext(settings, index, actor.object_id if actor else None)
