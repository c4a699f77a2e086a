"""Renderers for scan results: the JSON contract (docs §4), a terminal table for people, and SARIF 2.1.0."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from shared import ENGINE_VERSION
from shared.app import fastjson
from shared.core.findings import STATUS_EXEMPT, Finding
from shared.core.frozen import fast_init
from shared.core.policy import SEVERITY_ORDER, NsgEvaluation


@dataclass(frozen=True, slots=True)
class ScannedNsg:
    """An evaluation plus the file it came from (for SARIF locations and error messages)."""

    source: str
    evaluation: NsgEvaluation
    attachment: str | None = None  # attached | unattached (shared.core.attachment); None = not known
    line: int | None = None  # where the NSG starts in ``source`` (when located)
    rule_lines: Mapping[str, int] = field(default_factory=dict)  # lower-cased rule name -> line


ScannedNsg.__init__ = fast_init(ScannedNsg)  # type: ignore[method-assign]  # one per NSG of a scan


def summary(results: Sequence[ScannedNsg]) -> dict[str, Any]:
    nsgs = len(results)
    compliant = sum(1 for r in results if r.evaluation.compliant)
    return summary_of(nsgs, compliant, sum(len(r.evaluation.findings) for r in results))


def summary_of(nsgs: int, compliant: int, findings: int) -> dict[str, Any]:
    return {
        "nsgs": nsgs,
        "compliant": compliant,
        "compliancePercent": round(100.0 * compliant / nsgs, 1) if nsgs else 100.0,
        "findings": findings,
    }


def finding_json(f: Finding, attachment: str | None) -> dict[str, Any]:
    """The contract (docs §4, ``status`` beside ``active``) plus the NSG's ``attachment``."""
    out = f.to_contract()
    out["attachment"] = attachment
    return out


def stream_json(results: Iterable[ScannedNsg], out: TextIO, on_finding: Callable[[Finding], None]) -> None:
    """Write the compact JSON contract while NSGs are evaluated, keeping none of them (issue 15: flat memory).

    Byte for byte what ``render_json(list(results), indent=False)`` returns, plus the final newline.
    """
    out.write('{"findings":[')
    nsgs = compliant = count = 0
    for r in results:
        nsgs += 1
        compliant += r.evaluation.compliant
        findings = r.evaluation.findings
        if not findings:
            continue
        # One encoder call per NSG: '[a,b]' minus its brackets is what the whole document holds for them.
        text = fastjson.dumps([finding_json(f, r.attachment) for f in findings])
        out.write(("," if count else "") + text[1:-1])
        count += len(findings)
        for f in findings:
            on_finding(f)
    out.write('],"summary":' + fastjson.dumps(summary_of(nsgs, compliant, count)) + "}\n")


def render_json(results: Sequence[ScannedNsg], *, indent: bool = True) -> str:
    """The JSON contract (docs §4), through a C encoder: compact, or indented by 2 for people."""
    findings = [finding_json(f, r.attachment) for r in results for f in r.evaluation.findings]
    return fastjson.dumps({"findings": findings, "summary": summary(results)}, indent=indent)


# --- table -----------------------------------------------------------------------------------------

_COLOURS = {"critical": "\033[1;97;41m", "high": "\033[1;31m", "medium": "\033[33m", "low": "\033[36m",
            "info": "\033[2m"}
_RESET = "\033[0m"


def use_colour(mode: str, stream: Any) -> bool:
    if mode == "always":
        return True
    if mode == "never" or os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


DEFAULT_LIMIT = 20
_HEADER = ("SEVERITY", "PORT", "EXPOSURE", "NSG", "RULE", "PRIO", "SOURCES", "ATTACHED")
_ATTACHED_WORD = {"attached": "yes", "unattached": "no", None: "?"}


def _cut(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _cells(f: Finding, attachment: str | None) -> tuple[str, ...]:
    exposure = f.exposure if f.active else f"{f.exposure} (latent)"
    if f.status == STATUS_EXEMPT:
        exposure += " (exempt)"
    return (f.severity, f"{f.port}/{f.port_kind}", exposure, f.nsg.name, _cut(f.rule.name), str(f.rule.priority),
            _cut(", ".join(f.rule.source_texts)), _ATTACHED_WORD.get(attachment, "?"))


def render_table(results: Sequence[ScannedNsg], *, colour: bool = False, limit: int = DEFAULT_LIMIT,
                 explain: bool = False) -> str:
    """Findings grouped by severity (worst first), at most ``limit`` NSGs per severity (0 = all) with "and
    K more", the per-finding reasons when ``explain``, and the summary as the last line."""
    by_severity: dict[str, dict[str, list[tuple[str, ...]]]] = {}
    reasons: dict[str, dict[str, list[str]]] = {}
    counts: Counter[str] = Counter()
    for r in results:
        for f in r.evaluation.findings:
            counts[f.severity] += 1
            key = f.nsg.id.lower()
            by_severity.setdefault(f.severity, {}).setdefault(key, []).append(_cells(f, r.attachment))
            reasons.setdefault(f.severity, {}).setdefault(key, []).append(f"- [{f.severity}] {f.nsg.name}: "
                                                                          f"{f.reason}")
    order = sorted(by_severity, key=lambda k: -SEVERITY_ORDER.get(k, 0))
    shown: list[tuple[str, ...]] = [_HEADER]
    more: dict[str, int] = {}
    why: list[str] = []
    for sev in order:
        nsgs = list(by_severity[sev])
        keep = nsgs if limit <= 0 else nsgs[:limit]
        for key in keep:
            shown.extend(by_severity[sev][key])
            why.extend(reasons[sev][key])
        if len(nsgs) > len(keep):
            more[sev] = len(nsgs) - len(keep)
    widths = [max(len(row[i]) for row in shown) for i in range(len(_HEADER))]
    lines: list[str] = []
    if len(shown) == 1:
        lines.append("No findings.")
    else:
        header = "  ".join(c.ljust(widths[i]) for i, c in enumerate(_HEADER)).rstrip()
        lines.append("\033[1m" + header + _RESET if colour else header)
        current = None
        for row in shown[1:]:
            if current is not None and row[0] != current and current in more:
                lines.append(_more_line(more[current], current, limit))
            current = row[0]
            cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
            if colour:
                lines.append(_COLOURS.get(row[0], "") + cells[0] + _RESET + "  " + "  ".join(cells[1:]).rstrip())
            else:
                lines.append("  ".join(cells).rstrip())
        if current in more:
            lines.append(_more_line(more[current], current, limit))
    if explain and why:
        lines += ["", "Why:", *why]
    s = summary(results)
    by_sev = ", ".join(f"{counts[k]} {k}" for k in sorted(counts, key=lambda k: -SEVERITY_ORDER.get(k, 0)))
    noncompliant = [r.evaluation.nsg.name for r in results if not r.evaluation.compliant]
    lines.append("")
    if noncompliant:
        listed = noncompliant if limit <= 0 else noncompliant[:limit]
        extra = len(noncompliant) - len(listed)
        lines.append("Not compliant: " + ", ".join(listed) + (f" and {extra} more" if extra else ""))
    if not explain and why:
        lines.append("(--explain: why each finding was raised)")
    lines.append(f"{s['nsgs']} NSGs, {s['compliant']} compliant ({s['compliancePercent']}%), "
                 f"{s['findings']} findings" + (f" ({by_sev})" if by_sev else ""))
    return "\n".join(lines)


def _more_line(k: int, severity: str, limit: int) -> str:
    return f"... and {k} more NSGs with {severity} findings (--limit {limit} shown per severity; --limit 0 for all)"


def render_reasons(results: Sequence[ScannedNsg]) -> str:
    """One line per finding with its full reason: the 'why' under the table."""
    return "\n".join(f"- [{f.severity}] {f.nsg.name}: {f.reason}"
                     for r in results for f in r.evaluation.findings)


# --- SARIF -----------------------------------------------------------------------------------------

STDIN_SOURCE = "<stdin>"  # shared.app.files.source_name("-")
_SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
# GitHub code scanning reads rules' properties.security-severity (0.0-10.0) to rank alerts.
_SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "1.0"}
_PORT_NAMES = {22: "SSH", 3389: "RDP", 5985: "WinRM (HTTP)", 5986: "WinRM (HTTPS)", 23: "Telnet"}


_PORT_KINDS = ("ssh", "ssh-custom", "management")


def _sarif_rule_id(f: Finding) -> str:
    if f.port_kind not in _PORT_KINDS:  # findings about the NSG itself (a malformed exemption tag, ...)
        return f"NSGG/{f.port_kind}"
    middle = f"{f.port_kind}/{f.port}" if f.port_kind == "management" else f.port_kind
    return f"NSGG/{middle}/{f.exposure}" + ("" if f.active else "/latent")


def _rule_name(f: Finding) -> str:
    """``SshExposedInternet``, ``SshExposedInternetLatent``, ``ManagementPort3389ExposedBroad``..."""
    kind = "".join(w.title() for w in f.port_kind.split("-"))
    if f.port_kind not in _PORT_KINDS:
        return kind
    port = f"Port{f.port}" if f.port_kind == "management" else ""
    return f"{kind}{port}Exposed{f.exposure.title()}" + ("" if f.active else "Latent")


def _service(f: Finding) -> str:
    if f.port_kind not in _PORT_KINDS:
        return f"NSG Guard {f.port_kind} problem"
    if f.port_kind == "ssh":
        return "SSH (TCP 22)"
    if f.port_kind == "ssh-custom":
        return f"SSH on the organisation's port {f.port}"
    return f"{_PORT_NAMES.get(f.port, 'management port')} (TCP {f.port})"


def _help(f: Finding) -> str:
    service = _service(f)
    if f.port_kind not in _PORT_KINDS:
        return (f"{service}: something on the NSG itself that NSG Guard cannot use as written; the result's "
                "message says what and how to fix it.")
    if f.port_kind == "ssh":
        fix = ("Restrict the rule's sources to trusted ranges (VPN, Azure Bastion, Just-In-Time access), or "
               "move SSH to the organisation's standard port.")
    elif f.port_kind == "ssh-custom":
        fix = "Restrict the rule's sources to trusted ranges (VPN, Azure Bastion, Just-In-Time access)."
    elif f.port == 3389:
        fix = ("Never expose RDP to the internet: connect through Azure Bastion or Just-In-Time VM access, "
               "or restrict the rule's sources to the VPN's egress range.")
    else:
        fix = (f"Restrict the rule's sources for {service} to trusted ranges (VPN, Azure Bastion, "
               "Just-In-Time access).")
    when = "" if f.active else " Latent: a higher-priority rule shadows it today; keep that rule or fix this one."
    return f"{service} reachable from {f.exposure} sources. {fix}{when}"


def _region(r: ScannedNsg, f: Finding) -> dict[str, int] | None:
    line = r.rule_lines.get(f.rule.name.lower(), r.line)
    return {"startLine": line} if line is not None else None


def render_sarif(results: Sequence[ScannedNsg]) -> str:
    """SARIF 2.1.0: one result per finding, located inside its own NSG (lines found while scanning, one
    pass per file); exempt findings carry ``suppressions``; rules carry ``security-severity``."""
    rules: dict[str, dict[str, Any]] = {}
    names: set[str] = set()
    sarif_results = []
    for r in results:
        for f in r.evaluation.findings:
            rid = _sarif_rule_id(f)
            rule = rules.get(rid)
            if rule is None:
                name = base = _rule_name(f)
                n = 2
                while name in names:  # unique even if two ids spell the same words
                    name, n = f"{base}{n}", n + 1
                names.add(name)
                rule = rules[rid] = {
                    "id": rid,
                    "name": name,
                    "shortDescription": {"text": _service(f) if f.port_kind not in _PORT_KINDS else
                                         f"{_service(f)} reachable from {f.exposure} sources"
                                         + ("" if f.active else " (latent, shadowed)")},
                    "help": {"text": _help(f)},
                    "properties": {"tags": ["security", "azure", "nsg"],
                                   "security-severity": _SECURITY_SEVERITY.get(f.severity, "1.0")},
                }
            elif float(_SECURITY_SEVERITY.get(f.severity, "1.0")) > float(rule["properties"]["security-severity"]):
                rule["properties"]["security-severity"] = _SECURITY_SEVERITY[f.severity]
            location: dict[str, Any] = {"logicalLocations": [{"fullyQualifiedName": f.rule.id,
                                                              "kind": "resource"}]}
            if r.source != STDIN_SOURCE:  # standard input has no URI: the logical location names the rule
                location["physicalLocation"] = {"artifactLocation": {"uri": r.source}}
                region = _region(r, f)
                if region is not None:
                    location["physicalLocation"]["region"] = region
            result: dict[str, Any] = {
                "ruleId": rid,
                "level": _SARIF_LEVEL.get(f.severity, "note"),
                "message": {"text": f.reason},
                "locations": [location],
                "partialFingerprints": {"nsgGuardFindingId/v1": f.finding_id},
                "properties": {"severity": f.severity, "port": f.port, "nsgId": f.nsg.id,
                               "active": f.active, "status": f.status, "attachment": r.attachment},
            }
            if f.status == STATUS_EXEMPT:
                exemption = f.details.get("exemption")
                justification = json.dumps(exemption, sort_keys=True) if exemption else "exempt"
                result["suppressions"] = [{"kind": "external", "status": "accepted",
                                           "justification": justification[:1000]}]
            sarif_results.append(result)
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "nsg-guard", "version": ENGINE_VERSION,
                                "rules": list(rules.values())}},
            "results": sarif_results,
        }],
    }
    return json.dumps(doc, indent=2)
