"""Findings for address tokens NSG Guard does not know (docs/semantics.md, "Unknown tokens").

Azure publishes new service tags every few months. A rule naming one must never blind the NSG: the
evaluator treats the token as non-public (in an Allow it exposes nothing, in a Deny it covers nothing) and
this module reports the token itself as a finding: severity ``low``, port ``0``, port kind
``unknown-token``, exposure ``unknown``, the token in ``Reason`` and ``Details``. Listing the token in
``--extra-tags`` / ``EXTRA_SERVICE_TAGS`` declares it a (non-public) organisation tag: no finding, no warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from shared.core.addresses import KIND_UNKNOWN, parse_source_token
from shared.core.findings import STATUS_OPEN, Finding, finding_id
from shared.core.model import Nsg, Rule

KIND_UNKNOWN_TOKEN = "unknown-token"
EXPOSURE_UNKNOWN = "unknown"
SEVERITY_UNKNOWN_TOKEN = "low"

log = logging.getLogger("nsg_guard.unknowntokens")
_WARNED: set[str] = set()


def unknown_tokens(rule: Rule, extra_tags: frozenset[str]) -> Iterator[tuple[str, str]]:
    """(field, token) for every source or destination token of ``rule`` that is not known."""
    for token in rule.sources:
        if token.kind == KIND_UNKNOWN:
            yield "source", token.text
    dests = ((rule.destination_address_prefix,) if rule.destination_address_prefix else ()) + \
        rule.destination_address_prefixes
    for text in dests:
        if text == "*" or text[0].isdigit() or ":" in text:
            continue
        if parse_source_token(text, extra_tags).kind == KIND_UNKNOWN:
            yield "destination", text.strip()


def unknown_token_findings(nsg: Nsg, extra_tags: frozenset[str]) -> list[Finding]:
    """One finding per (inbound rule, unknown token). Outbound rules never decide inbound exposure."""
    out: list[Finding] = []
    for rule in nsg.inbound_rules:
        sources, dst = rule.sources, rule.destination_address_prefix
        if (dst is None or dst == "*") and not rule.destination_address_prefixes and (
                sources[0].kind != KIND_UNKNOWN if len(sources) == 1 else
                KIND_UNKNOWN not in [t.kind for t in sources]):
            continue  # the common case, decided without starting the generator below
        for where, token in unknown_tokens(rule, extra_tags):
            effect = "exposes nothing" if rule.allows else "blocks nothing"
            reason = (f"rule {rule.name} (priority {rule.priority}, {rule.access}) names {where} {token!r}, which "
                      f"is not an address, keyword or known service tag: it was evaluated as non-public (the rule "
                      f"{effect} for it). A new Azure service tag? Check it; list organisation tags in "
                      "--extra-tags / EXTRA_SERVICE_TAGS")
            if token.lower() not in _WARNED:  # once per token per process: the findings carry every place
                _WARNED.add(token.lower())
                log.warning("warning: unknown address token %r (rule %s of NSG %s) evaluated as non-public and "
                            "reported as a low finding; list organisation tags in --extra-tags / "
                            "EXTRA_SERVICE_TAGS", token, rule.name, nsg.name)
            fid = finding_id(nsg.id, f"{rule.name}|{where}:{token.lower()}", 0)
            out.append(Finding(fid, nsg, rule, 0, KIND_UNKNOWN_TOKEN, EXPOSURE_UNKNOWN, True,
                               SEVERITY_UNKNOWN_TOKEN, reason, STATUS_OPEN,
                               {"unknownToken": token, "field": where}))
    return out
