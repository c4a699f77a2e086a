"""Exemptions from NSG tags (pure): parse them strictly and apply them to an evaluation.

Tag ``nsg-guard-exempt`` (setting ``EXEMPT_TAG``; more entries in ``nsg-guard-exempt-<anything>``), value::

    rules=AllowVendorSSH,AllowCI; expires=2025-12-31; ticket=CHG-1234; reason=vendor migration; ports=22

- ``rules`` (required): rule names (case-insensitive), comma separated, or ``*`` for every rule of the NSG.
- ``expires`` (required): ``YYYY-MM-DD`` (valid through the end of that day, UTC) or an ISO 8601 timestamp.
- ``ticket`` and/or ``reason`` (at least one): why, and where it was approved.
- ``ports`` (optional): only these watched ports; default all.

Exempt findings are kept with status ``Exempt`` (muted, never dropped) and the exemption in ``details``;
expired exemptions stop applying (the finding stays Open, ``details`` says which exemption expired); a
malformed tag is a finding of its own (severity ``low``) rather than being ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from typing import Any

from shared.findings import STATUS_EXEMPT, STATUS_OPEN, Finding, finding_id
from shared.model import INBOUND, Nsg, Rule
from shared.policy import SEVERITY_ORDER, NsgEvaluation
from shared.ports import PortSet

DEFAULT_EXEMPT_TAG = "nsg-guard-exempt"
KIND_EXEMPTION_TAG = "exemption-tag"
KEYS = ("rules", "expires", "ticket", "reason", "ports")


@dataclass(frozen=True, slots=True)
class Exemption:
    tag: str
    rules: tuple[str, ...]  # lower-cased names; ("*",) = every rule
    expires: datetime
    ticket: str | None = None
    reason: str | None = None
    ports: tuple[int, ...] = ()  # empty = every watched port

    def covers(self, finding: Finding) -> bool:
        rule_ok = self.rules == ("*",) or finding.rule.name.lower() in self.rules
        return rule_ok and (not self.ports or finding.port in self.ports)

    def expired(self, now: datetime) -> bool:
        return now >= self.expires

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "rules": list(self.rules), "expires": self.expires.isoformat(),
                "ticket": self.ticket, "reason": self.reason, "ports": list(self.ports)}


@dataclass(frozen=True, slots=True)
class TagProblem:
    tag: str
    value: str
    message: str


def _is_exempt_tag(key: str, tag_name: str) -> bool:
    low, base = key.lower(), tag_name.lower()
    return low == base or low.startswith(base + "-")


def _parse_expiry(text: str) -> datetime:
    text = text.strip()
    if len(text) == 10:
        day = date.fromisoformat(text)  # ValueError on nonsense
        return datetime.combine(day, time.max, tzinfo=UTC)
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("timestamp needs a time zone (e.g. Z)")
    return value.astimezone(UTC)


def parse_exemption(tag: str, value: str) -> Exemption:
    """Parse one tag value; ``ValueError`` with a message a person can act on."""
    fields: dict[str, str] = {}
    for part in value.split(";"):
        if not part.strip():
            continue
        key, eq, val = part.partition("=")
        key = key.strip().lower()
        if not eq or not val.strip():
            raise ValueError(f"{part.strip()!r} is not key=value")
        if key not in KEYS:
            raise ValueError(f"unknown key {key!r} (expected {', '.join(KEYS)})")
        if key in fields:
            raise ValueError(f"key {key!r} given twice")
        fields[key] = val.strip()
    if "rules" not in fields:
        raise ValueError("missing 'rules=' (rule names, comma separated, or '*')")
    if "expires" not in fields:
        raise ValueError("missing 'expires=' (YYYY-MM-DD): exemptions must end")
    if "ticket" not in fields and "reason" not in fields:
        raise ValueError("missing 'ticket=' or 'reason=': say why the exemption exists")
    rules = tuple(dict.fromkeys(r.strip().lower() for r in fields["rules"].split(",") if r.strip()))
    if not rules or ("*" in rules and len(rules) > 1):
        raise ValueError("'rules=' must list rule names, or be '*' alone")
    try:
        expires = _parse_expiry(fields["expires"])
    except ValueError as exc:
        raise ValueError(f"invalid expires {fields['expires']!r}: {exc}") from None
    ports: tuple[int, ...] = ()
    if "ports" in fields:
        parsed = []
        for p in fields["ports"].split(","):
            p = p.strip()
            if not p.isascii() or not p.isdigit() or not 0 < int(p) <= 65535:
                raise ValueError(f"invalid port {p!r} in 'ports='")
            parsed.append(int(p))
        ports = tuple(sorted(set(parsed)))
    return Exemption(tag, rules, expires, fields.get("ticket"), fields.get("reason"), ports)


def parse_exemptions(tags: Mapping[str, str] | tuple[tuple[str, str], ...], tag_name: str = DEFAULT_EXEMPT_TAG
                     ) -> tuple[list[Exemption], list[TagProblem]]:
    items = tags.items() if isinstance(tags, Mapping) else tags
    exemptions: list[Exemption] = []
    problems: list[TagProblem] = []
    for key, value in sorted(items):
        if not _is_exempt_tag(key, tag_name):
            continue
        try:
            exemptions.append(parse_exemption(key, value))
        except ValueError as exc:
            problems.append(TagProblem(key, value, str(exc)))
    return exemptions, problems


def _tag_finding(nsg: Nsg, problem: TagProblem) -> Finding:
    # A malformed tag is not about a rule; a placeholder rule carries the tag name where the rule name goes.
    pseudo = Rule(name=f"tag:{problem.tag}", id=f"{nsg.id}/tags/{problem.tag}", priority=0, direction=INBOUND,
                  access="Allow", protocol="*", sources=(), destination_ports=PortSet.NONE)
    reason = (f"exemption tag {problem.tag} is malformed and does not apply: {problem.message}. "
              "Format: rules=<names|*>; expires=YYYY-MM-DD; ticket=<id>; reason=<text>")
    return Finding(finding_id(nsg.id, pseudo.name, 0), nsg, pseudo, 0, KIND_EXEMPTION_TAG, "none", True, "low",
                   reason, STATUS_OPEN, {"exemptionTag": problem.tag, "value": problem.value,
                                         "error": problem.message})


def apply_exemptions(evaluation: NsgEvaluation, tag_name: str = DEFAULT_EXEMPT_TAG,
                     now: datetime | None = None) -> NsgEvaluation:
    """Mark covered Open findings ``Exempt``; note expired exemptions; add findings for malformed tags."""
    now = now or datetime.now(UTC)
    nsg = evaluation.nsg
    exemptions, problems = parse_exemptions(nsg.tags, tag_name)
    if not exemptions and not problems:
        return evaluation
    out: list[Finding] = []
    for f in evaluation.findings:
        if f.status == STATUS_OPEN:
            covering = [e for e in exemptions if e.covers(f)]
            live = [e for e in covering if not e.expired(now)]
            if live:
                e = live[0]
                note = f" [exempt until {e.expires:%Y-%m-%d}: {e.ticket or e.reason}]"
                f = replace(f, status=STATUS_EXEMPT, reason=f.reason + note,
                            details={**f.details, "exemption": e.to_json()})
            elif covering:
                f = replace(f, details={**f.details, "expiredExemption": covering[0].to_json()})
        out.append(f)
    out.extend(_tag_finding(nsg, p) for p in problems)
    out.sort(key=lambda f: (-SEVERITY_ORDER[f.severity], f.port, f.rule.priority))
    return NsgEvaluation(nsg, tuple(out))
