"""Renderers for scan results: the JSON contract (docs §4), a terminal table for people, and SARIF 2.1.0."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from shared import ENGINE_VERSION, fastjson
from shared.findings import Finding
from shared.policy import SEVERITY_ORDER, NsgEvaluation


@dataclass(frozen=True, slots=True)
class ScannedNsg:
    """An evaluation plus the file it came from (for SARIF locations and error messages)."""

    source: str
    evaluation: NsgEvaluation


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


def stream_json(results: Iterable[ScannedNsg], out: TextIO, on_finding: Callable[[Finding], None]) -> None:
    """Write the compact JSON contract while NSGs are evaluated, keeping none of them (issue 15: flat memory).

    Byte for byte what ``render_json(list(results), indent=False)`` returns, plus the final newline.
    """
    out.write('{"findings":[')
    nsgs = compliant = count = 0
    for r in results:
        nsgs += 1
        compliant += r.evaluation.compliant
        for f in r.evaluation.findings:
            out.write(("," if count else "") + fastjson.dumps(f.to_contract()))
            count += 1
            on_finding(f)
    out.write('],"summary":' + fastjson.dumps(summary_of(nsgs, compliant, count)) + "}\n")


def render_json(results: Sequence[ScannedNsg], *, indent: bool = True) -> str:
    """The JSON contract (docs §4), through a C encoder: compact, or indented by 2 for people."""
    findings = [f.to_contract() for r in results for f in r.evaluation.findings]
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


def render_table(results: Sequence[ScannedNsg], *, colour: bool = False) -> str:
    rows = [("SEVERITY", "PORT", "EXPOSURE", "NSG", "RULE", "PRIO", "SOURCES")]
    severities: list[str] = []
    for r in results:
        for f in r.evaluation.findings:
            exposure = f.exposure if f.active else f"{f.exposure} (latent)"
            sources = ", ".join(f.rule.source_texts)
            rule_name = f.rule.name if len(f.rule.name) <= 40 else f.rule.name[:37] + "..."
            rows.append((f.severity, f"{f.port}/{f.port_kind}", exposure, f.nsg.name, rule_name,
                         str(f.rule.priority), sources if len(sources) <= 40 else sources[:37] + "..."))
            severities.append(f.severity)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        line = "  ".join(cells).rstrip()
        if colour and n == 0:
            line = "\033[1m" + line + _RESET
        elif colour:
            line = _COLOURS[row[0]] + cells[0] + _RESET + "  " + "  ".join(cells[1:]).rstrip()
        lines.append(line)
    if len(rows) == 1:
        lines = ["No findings."]
    s = summary(results)
    counts = Counter(severities)
    by_sev = ", ".join(f"{counts[k]} {k}" for k in sorted(counts, key=lambda k: -SEVERITY_ORDER[k]))
    lines.append("")
    lines.append(f"{s['nsgs']} NSGs, {s['compliant']} compliant ({s['compliancePercent']}%), "
                 f"{s['findings']} findings" + (f" ({by_sev})" if by_sev else ""))
    noncompliant = [r.evaluation.nsg.name for r in results if not r.evaluation.compliant]
    if noncompliant:
        lines.append("Not compliant: " + ", ".join(noncompliant))
    return "\n".join(lines)


def render_reasons(results: Sequence[ScannedNsg]) -> str:
    """One line per finding with its full reason: the 'why' under the table."""
    return "\n".join(f"- [{f.severity}] {f.nsg.name}: {f.reason}"
                     for r in results for f in r.evaluation.findings)


# --- SARIF -----------------------------------------------------------------------------------------

_SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}


def _sarif_rule_id(kind: str, exposure: str, active: bool) -> str:
    return f"NSGG/{kind}/{exposure}" + ("" if active else "/latent")


def _line_of(text: str | None, rule_name: str) -> int | None:
    if text is None:
        return None
    needle = json.dumps(rule_name)
    for n, line in enumerate(text.splitlines(), start=1):
        if needle in line and '"name"' in line:
            return n
    return None


def render_sarif(results: Sequence[ScannedNsg]) -> str:
    rules: dict[str, dict[str, Any]] = {}
    sarif_results = []
    texts: dict[str, str | None] = {}
    for r in results:
        if r.source not in texts:
            try:
                texts[r.source] = Path(r.source).read_text(encoding="utf-8")
            except OSError:
                texts[r.source] = None
        for f in r.evaluation.findings:
            rid = _sarif_rule_id(f.port_kind, f.exposure, f.active)
            rules.setdefault(rid, {
                "id": rid,
                "name": f"{f.port_kind.title().replace('-', '')}Exposed{f.exposure.title()}",
                "shortDescription": {"text": f"{f.port_kind} port reachable from {f.exposure} sources"
                                     + ("" if f.active else " (latent, shadowed)")},
                "help": {"text": "Restrict the rule's sources to trusted ranges (VPN, Bastion, JIT) or "
                                 "move SSH to the organisation's standard port."},
                "properties": {"tags": ["security", "azure", "nsg"]},
            })
            location: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": r.source}},
                                        "logicalLocations": [{"fullyQualifiedName": f.rule.id,
                                                              "kind": "resource"}]}
            line = _line_of(texts[r.source], f.rule.name)
            if line is not None:
                location["physicalLocation"]["region"] = {"startLine": line}
            sarif_results.append({
                "ruleId": rid,
                "level": _SARIF_LEVEL[f.severity],
                "message": {"text": f.reason},
                "locations": [location],
                "partialFingerprints": {"nsgGuardFindingId/v1": f.finding_id},
                "properties": {"severity": f.severity, "port": f.port, "nsgId": f.nsg.id,
                               "active": f.active},
            })
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
