"""Findings: stable ids, human reasons and the JSON contract of docs/product.md §4."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.core.exposure import NONE, UNIVERSAL_DESTINATIONS, RuleExposure, destination_of
from shared.core.frozen import fast_constructor
from shared.core.model import Nsg, Rule

STATUS_OPEN, STATUS_LATENT, STATUS_EXEMPT, STATUS_RESOLVED = "Open", "Latent", "Exempt", "Resolved"


def finding_id(nsg_id: str, rule_name: str, port: int) -> str:
    """Stable id of (NSG, rule, port): the same inputs give the same id in every run and trigger.

    ARM ids and rule names are case-insensitive, so they are lower-cased first.
    """
    key = f"{nsg_id.lower()}|{rule_name.lower()}|{port}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Finding:
    finding_id: str
    nsg: Nsg
    rule: Rule
    port: int
    port_kind: str
    exposure: str
    active: bool
    severity: str
    reason: str
    status: str = STATUS_OPEN
    # Context added after evaluation (exemption, attachment/effective exposure...): goes to the Details column.
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def counts_against_compliance(self) -> bool:
        return self.active and self.status == STATUS_OPEN and self.severity != "info"

    def to_contract(self) -> dict[str, Any]:
        """The CLI JSON contract, field for field (docs §4)."""
        nsg, rule = self.nsg, self.rule
        return {
            "findingId": self.finding_id,
            "nsgId": nsg.id,
            "nsgName": nsg.name,
            "ruleName": rule.name,
            "ruleId": rule.id,
            "port": self.port,
            "portKind": self.port_kind,
            "exposure": self.exposure,
            "active": self.active,
            "status": self.status,
            "severity": self.severity,
            "priority": rule.priority,
            "sources": rule.source_texts if rule.source_asgs else [s.text for s in rule.sources],
            "reason": self.reason,
        }


_make_finding = fast_constructor(Finding)  # one per finding of a sweep: positional, every field given

_EXPOSURE_WORDS = {
    "internet": "the internet",
    "broad": "a broad public range",
    "trusted": "a small set of public addresses",
}


def _describe_sources(rule: Rule) -> str:
    texts = rule.source_texts
    shown = ", ".join(texts[:4]) + (f" and {len(texts) - 4} more" if len(texts) > 4 else "")
    return f"source {shown}" if len(texts) == 1 else f"sources {shown}"


def finding_where(rule: Rule) -> str:
    """The part of a finding's reason that names the rule (and its destinations when it applies to some NICs)."""
    sources = rule.sources
    if len(sources) == 1 and not rule.source_asgs:  # the common case of _describe_sources, without the list
        where = f"by rule {rule.name} (priority {rule.priority}, source {sources[0].text})"
    else:
        where = f"by rule {rule.name} (priority {rule.priority}, {_describe_sources(rule)})"
    if (rule.destination_asgs or rule.destination_address_prefixes or  # else universal, as destination_of says
            (rule.destination_address_prefix or "*").lower() not in UNIVERSAL_DESTINATIONS) and \
            not destination_of(rule).universal:
        targets = [*((rule.destination_address_prefix,) if rule.destination_address_prefix else ()),
                   *rule.destination_address_prefixes,
                   *("asg:" + a.rstrip("/").rsplit("/", 1)[-1] for a in rule.destination_asgs)]
        where = f"to {', '.join(targets[:4])}{' and more' if len(targets) > 4 else ''} " + where
    return where


def make_finding(nsg: Nsg, port: int, port_kind: str, rx: RuleExposure, severity: str,
                 where: str | None = None) -> Finding:
    """Build a finding from a rule's exposure (active or latent). ``where``: ``finding_where(rx.rule)``, when
    the caller already has it (a rule with findings on several ports)."""
    rule = rx.rule
    if where is None:
        where = finding_where(rule)
    if rx.exposure != NONE:
        reason = f"TCP {port} allowed from {_EXPOSURE_WORDS[rx.exposure]} {where}"
        if rx.combined_with:
            partners = ", ".join(r.name for r in rx.combined_with[:5])
            reason += f" together with {partners}: no single rule opens it, but their sources add up"
        exposed, potential = rx.exposed, rx.potential
        if exposed is not potential and exposed.addresses != potential.addresses:
            reason += "; partly shadowed by higher-priority rules"
        if exposed.tags.parts:
            reason += "; AzureCloud addresses can be held by any Azure customer"
        return _make_finding(finding_id(nsg.id, rule.name, port), nsg, rule, port, port_kind, rx.exposure,
                             True, severity, reason, STATUS_OPEN, {})
    names = ", ".join(f"{r.name} ({r.priority})" for r in rx.shadowed_by[:5]) or "higher-priority rules"
    reason = (f"latent: TCP {port} would be allowed from {_EXPOSURE_WORDS[rx.potential_exposure]} "
              f"{where}, but it is shadowed by {names}; removing those would expose the port")
    return _make_finding(finding_id(nsg.id, rule.name, port), nsg, rule, port, port_kind, rx.potential_exposure,
                         False, severity, reason, STATUS_LATENT, {})
