"""The compliance KPIs computed from table rows (pure): the same definitions as the workbook's KQL.

Each function mirrors one query in ``queries/`` (kept by infra; the workbook and alerts are built from
them), so ``nsg-guard report --from rows.jsonl`` prints what the workbook shows:

* :func:`compliance_over_time` - ``compliance_over_time.kql``: per sweep, NSGs, compliant, percent.
* :func:`open_findings` - ``open_findings_by_{severity,owner,subscription}.kql``: findings whose latest
  finding row is ``Open`` and that the latest evaluation row of their NSG still lists in OpenFindingIds.
* :func:`mttr` - ``mttr.kql``: opened = first ``Open`` finding row; resolved = first later evaluation row of
  the same NSG without the id, or a later ``Resolved`` finding row, whichever is first. Mean, p50, p90 hours.
* :func:`reverts` - ``reverts.kql``: remediation rows per day, result and mode.
* :func:`top_actors_port22` - ``top_actors_port22.kql``: who opened port 22 (rows from change events).

Rows may repeat (outbox retries, replays): everything starts by keeping the latest row per ``RowId``.
For the demo: ``print(render_report(compute_kpis(rows)))`` or ``shared.app.files.report_file(path)``.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.core.errors import InputError

SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
NO_OWNER = "(no owner tag)"


def parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise InputError(f"TimeGenerated {value!r} is not a timestamp")
    text = value.strip().replace("Z", "+00:00")
    if "." in text:  # Log Analytics exports 7 fractional digits
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"TimeGenerated {value!r} is not an ISO 8601 timestamp") from None
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    try:  # 9999-12-31T23:59:59-12:00 is a valid timestamp whose UTC form does not exist
        return t.astimezone(UTC)
    except OverflowError:
        raise InputError(f"TimeGenerated {value!r} is out of range in UTC") from None


# Columns the KPIs read as text; a hostile export may put anything there (issue 9: never a traceback).
_TEXT_COLUMNS = ("RowId", "RecordType", "NsgId", "FindingId", "Status", "Severity", "Owner", "SubscriptionId",
                 "SweepId", "Actor", "ActorType", "Result", "Mode")


def _clean(row: dict[str, Any], number: int) -> dict[str, Any]:
    """One exported row with the columns the KPIs read checked (and dynamic JSON text decoded), or InputError."""
    try:
        out = {**row, "TimeGenerated": parse_time(row.get("TimeGenerated"))}
        for column in _TEXT_COLUMNS:
            value = out.get(column)
            if value is None or isinstance(value, str):
                continue
            if isinstance(value, (bool, int, float)):
                out[column] = str(value)
            else:
                raise InputError(f"column {column} must be text, got {type(value).__name__}")
        ids = out.get("OpenFindingIds")
        if isinstance(ids, str):  # Log Analytics exports dynamic columns as JSON text
            try:
                ids = json.loads(ids) if ids.strip() else []
            except json.JSONDecodeError:
                raise InputError("column OpenFindingIds is not a JSON list") from None
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
            raise InputError("column OpenFindingIds must be a list of finding ids")
        out["OpenFindingIds"] = ids
        return out
    except InputError as exc:
        raise InputError(f"row {number}: {exc.reason}") from None


def _count(value: Any, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(f"sweep row Details.{what} must be a number, got {value!r}"[:200])
    try:
        number = int(value)
    except (ValueError, OverflowError):
        raise InputError(f"sweep row Details.{what} must be a number, got {value!r}"[:200]) from None
    if number < 0:
        raise InputError(f"sweep row Details.{what} must not be negative")
    return number


def dedupe(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``summarize arg_max(TimeGenerated, *) by RowId`` (rows without a RowId are kept as they are)."""
    latest: dict[str, tuple[datetime, dict[str, Any]]] = {}
    loose: list[dict[str, Any]] = []
    for number, row in enumerate(rows, 1):
        row = _clean(row, number)
        rid = row.get("RowId")
        if not rid:
            loose.append(row)
            continue
        seen = latest.get(rid)
        if seen is None or row["TimeGenerated"] > seen[0]:
            latest[rid] = (row["TimeGenerated"], row)
    return [r for _, r in latest.values()] + loose


def _nsg_key(row: dict[str, Any]) -> str:
    return str(row.get("NsgId") or "").lower()


def _open_ids(row: dict[str, Any]) -> list[str]:
    """``OpenFindingIds`` is a dynamic column: Log Analytics exports hand it over as a JSON string. Reading
    that string as a list of characters made every open finding look resolved."""
    ids = row.get("OpenFindingIds")
    if isinstance(ids, str):
        try:
            ids = json.loads(ids) if ids.strip() else []
        except json.JSONDecodeError:
            raise InputError(f"OpenFindingIds of evaluation row {row.get('RowId')!r} is not a JSON list: "
                             f"{ids[:40]!r}") from None
    if ids is None:
        return []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InputError(f"OpenFindingIds of evaluation row {row.get('RowId')!r} must be a list of ids")
    return ids


def _details(row: dict[str, Any]) -> dict[str, Any]:
    d = row.get("Details")
    if isinstance(d, str):
        try:
            d = json.loads(d)
        except json.JSONDecodeError:
            return {}
    return d if isinstance(d, dict) else {}


def compliance_over_time(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    per: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("RecordType") != "sweep":
            continue
        d = _details(row)
        entry = per.setdefault(str(row.get("SweepId")), {"sweepId": row.get("SweepId"), "nsgs": 0, "compliant": 0,
                                                          "time": row["TimeGenerated"]})
        entry["nsgs"] += _count(d.get("nsgs"), "nsgs")
        entry["compliant"] += _count(d.get("compliant"), "compliant")
        entry["time"] = max(entry["time"], row["TimeGenerated"])
    out = []
    for entry in sorted(per.values(), key=lambda e: e["time"]):
        nsgs = entry["nsgs"]
        entry["compliancePercent"] = round(100.0 * entry["compliant"] / nsgs, 2) if nsgs else None
        out.append(entry)
    return out


def _latest(rows: list[dict[str, Any]], of_evaluation: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Per NSG: ``of_evaluation(row)`` of its latest evaluation row; per finding id: its latest row."""
    last_eval: dict[str, tuple[datetime, Any]] = {}
    last_finding: dict[str, dict[str, Any]] = {}
    for row in rows:
        kind = row.get("RecordType")
        if kind == "evaluation":
            key = _nsg_key(row)
            if key not in last_eval or row["TimeGenerated"] > last_eval[key][0]:
                last_eval[key] = (row["TimeGenerated"], of_evaluation(row))
        elif kind == "finding":
            fid = str(row.get("FindingId"))
            if fid not in last_finding or row["TimeGenerated"] > last_finding[fid]["TimeGenerated"]:
                last_finding[fid] = row
    return {key: value for key, (_, value) in last_eval.items()}, last_finding


def open_findings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The findings open now: latest finding row per id is Open and the NSG's latest evaluation lists it."""
    last_eval, last_finding = _latest(rows, _open_ids)
    open_ids = {fid for ids in last_eval.values() for fid in ids if fid}
    return [r for fid, r in last_finding.items() if r.get("Status") == "Open" and fid in open_ids]


def _run(row: dict[str, Any]) -> str:
    return str(row.get("SweepId") or row.get("EventId") or "")


def exempt_findings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The findings exempt now: the latest row of the id is Exempt and was written by the same run (event or
    sweep) as the NSG's latest evaluation -- an exemption that lapsed or a rule since removed drops out."""
    last_run, last_finding = _latest(rows, _run)
    return [r for r in last_finding.values() if r.get("Status") == "Exempt" and _run(r)
            and last_run.get(_nsg_key(r)) == _run(r)]


def exemptions_in_force(exempt: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per exemption (policy exemption id or tag) with what it exempts now, soonest expiry first."""
    per: dict[str, dict[str, Any]] = {}
    for row in exempt:
        e = _details(row).get("exemption")
        e = e if isinstance(e, dict) else {}
        key = str(e.get("id") or e.get("tag") or "?")
        entry = per.setdefault(key, {"exemption": key, "source": e.get("source"), "approver": e.get("approver"),
                                     "expiresOn": e.get("expiresOn") or e.get("expires"), "ticket": e.get("ticket"),
                                     "findings": 0, "rules": set()})
        entry["findings"] += 1
        entry["rules"].add(f"{row.get('NsgName')}/{row.get('RuleName')}")
    out = [{**e, "rules": sorted(e["rules"])} for e in per.values()]
    out.sort(key=lambda e: (str(e["expiresOn"] or "~"), e["exemption"]))
    return out


def group_open(findings: list[dict[str, Any]], column: str) -> list[tuple[str, int]]:
    counts: Counter[str] = Counter()
    for f in findings:
        value = f.get(column) or (NO_OWNER if column == "Owner" else "")
        counts[str(value)] += 1
    if column == "Severity":
        return sorted(counts.items(), key=lambda kv: (SEVERITY_RANK.get(kv[0], 4), kv[0]))
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (Kusto's ``percentile`` also returns a member of the set)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def remediations(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each finding's first opening and first resolution after it (findings never resolved are left out)."""
    opened: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("RecordType") == "finding" and row.get("Status") == "Open":
            fid = str(row.get("FindingId"))
            seen = opened.get(fid)
            if seen is None or row["TimeGenerated"] < seen["openedAt"]:
                opened[fid] = {"findingId": fid, "openedAt": row["TimeGenerated"], "nsg": _nsg_key(row),
                               "severity": seen["severity"] if seen else row.get("Severity")}
    evals: dict[str, list[tuple[datetime, frozenset[str]]]] = defaultdict(list)
    resolved_rows: dict[str, list[datetime]] = defaultdict(list)
    for row in rows:
        if row.get("RecordType") == "evaluation":
            evals[_nsg_key(row)].append((row["TimeGenerated"], frozenset(_open_ids(row))))
        elif row.get("RecordType") == "finding" and row.get("Status") == "Resolved":
            resolved_rows[str(row.get("FindingId"))].append(row["TimeGenerated"])
    out = []
    for fid, o in opened.items():
        candidates = [t for t, ids in evals.get(o["nsg"], []) if t > o["openedAt"] and fid not in ids]
        candidates += [t for t in resolved_rows.get(fid, []) if t > o["openedAt"]]
        if candidates:
            resolved = min(candidates)
            out.append({**o, "resolvedAt": resolved,
                        "hours": (resolved - o["openedAt"]).total_seconds() / 3600.0})
    return out


def mttr(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per severity (critical first): resolved count, mean/p50/p90 hours to remediate; plus an ``all`` line."""
    per: dict[str, list[float]] = defaultdict(list)
    for r in remediations(rows):
        per[str(r["severity"])].append(r["hours"])
    out = []
    for severity in sorted(per, key=lambda s: (SEVERITY_RANK.get(s, 4), s)):
        hours = per[severity]
        out.append({"severity": severity, "resolved": len(hours), "mttrHours": round(sum(hours) / len(hours), 2),
                    "p50Hours": round(_percentile(hours, 50), 2), "p90Hours": round(_percentile(hours, 90), 2)})
    everything = [h for hs in per.values() for h in hs]
    if everything:
        out.append({"severity": "all", "resolved": len(everything),
                    "mttrHours": round(sum(everything) / len(everything), 2),
                    "p50Hours": round(_percentile(everything, 50), 2),
                    "p90Hours": round(_percentile(everything, 90), 2)})
    return out


def reverts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Remediation rows per day, result and mode; enforce mode's write-ahead ``planned`` rows are the intent
    recorded before a write whose own row follows, so they are not counted again."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for row in rows:
        details = row.get("Details")
        if row.get("RecordType") != "remediation" or (isinstance(details, dict) and details.get("writeAhead") is True):
            continue
        day = row["TimeGenerated"].astimezone(UTC).strftime("%Y-%m-%d")
        counts[(day, str(row.get("Result") or ""), str(row.get("Mode") or ""))] += 1
    return [{"day": d, "result": r, "mode": m, "remediations": n} for (d, r, m), n in sorted(counts.items())]


def top_actors_port22(rows: list[dict[str, Any]], top: int = 10) -> list[dict[str, Any]]:
    per: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        if row.get("RecordType") != "finding" or row.get("Port") != 22 or row.get("Status") != "Open" \
                or not row.get("Actor"):
            continue
        key = (str(row["Actor"]), str(row.get("ActorType") or ""))
        entry = per.setdefault(key, {"actor": key[0], "actorType": key[1], "findings": set(), "nsgs": set(),
                                     "lastSeen": row["TimeGenerated"]})
        entry["findings"].add(row.get("FindingId"))
        entry["nsgs"].add(_nsg_key(row))
        entry["lastSeen"] = max(entry["lastSeen"], row["TimeGenerated"])
    out = [{**e, "findings": len(e["findings"]), "nsgs": len(e["nsgs"])} for e in per.values()]
    out.sort(key=lambda e: (-e["findings"], e["actor"]))
    return out[:top]


@dataclass
class Kpis:
    rows: int
    compliance: list[dict[str, Any]] = field(default_factory=list)
    open_by_severity: list[tuple[str, int]] = field(default_factory=list)
    open_by_owner: list[tuple[str, int]] = field(default_factory=list)
    open_by_subscription: list[tuple[str, int]] = field(default_factory=list)
    mttr: list[dict[str, Any]] = field(default_factory=list)
    reverts: list[dict[str, Any]] = field(default_factory=list)
    top_actors: list[dict[str, Any]] = field(default_factory=list)
    exempt_by_severity: list[tuple[str, int]] = field(default_factory=list)
    exemptions: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value

        return plain({
            "rows": self.rows, "complianceOverTime": self.compliance,
            "openFindings": {"bySeverity": dict(self.open_by_severity), "byOwner": dict(self.open_by_owner),
                             "bySubscription": dict(self.open_by_subscription)},
            "mttr": self.mttr, "reverts": self.reverts, "topActorsPort22": self.top_actors,
            "exemptFindings": {"bySeverity": dict(self.exempt_by_severity)},
            "exemptionsInForce": self.exemptions,
        })


def compute_kpis(rows: Iterable[dict[str, Any]]) -> Kpis:
    unique = dedupe(rows)
    current = open_findings(unique)
    exempt = exempt_findings(unique)
    return Kpis(
        rows=len(unique), compliance=compliance_over_time(unique),
        open_by_severity=group_open(current, "Severity"), open_by_owner=group_open(current, "Owner"),
        open_by_subscription=group_open(current, "SubscriptionId"), mttr=mttr(unique), reverts=reverts(unique),
        top_actors=top_actors_port22(unique),
        exempt_by_severity=group_open(exempt, "Severity"), exemptions=exemptions_in_force(exempt),
    )


def _table(headers: list[str], lines: list[list[Any]]) -> str:
    if not lines:
        return "  (none)"
    cells = [[str(c) for c in headers]] + [[("-" if c is None else str(c)) for c in line] for line in lines]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def _beside(open_: list[tuple[str, int]], exempt: list[tuple[str, int]]) -> list[list[Any]]:
    o, e = dict(open_), dict(exempt)
    order = sorted(set(o) | set(e), key=lambda s: (SEVERITY_RANK.get(s, 4), s))
    return [[s, o.get(s, 0), e.get(s, 0)] for s in order]


def render_report(k: Kpis) -> str:
    """A plain-text report of every KPI (what the demo prints)."""
    t = lambda d: d.astimezone(UTC).strftime("%Y-%m-%d %H:%M")  # noqa: E731
    parts = [f"NSG Guard KPIs ({k.rows} distinct rows)", "",
             "Compliance over time (per sweep)",
             _table(["time", "sweep", "nsgs", "compliant", "percent"],
                    [[t(c["time"]), c["sweepId"], c["nsgs"], c["compliant"], c["compliancePercent"]]
                     for c in k.compliance]),
             "", "Open findings by severity (exempt beside them)",
             _table(["severity", "open", "exempt"], _beside(k.open_by_severity, k.exempt_by_severity)),
             "", "Open findings by owner", _table(["owner", "open"], [list(x) for x in k.open_by_owner]),
             "", "Open findings by subscription",
             _table(["subscription", "open"], [list(x) for x in k.open_by_subscription]),
             "", "Mean time to remediate (first seen -> resolved)",
             _table(["severity", "resolved", "mttr_h", "p50_h", "p90_h"],
                    [[m["severity"], m["resolved"], m["mttrHours"], m["p50Hours"], m["p90Hours"]] for m in k.mttr]),
             "", "Reverts performed", _table(["day", "result", "mode", "count"],
                                             [[r["day"], r["result"], r["mode"], r["remediations"]]
                                              for r in k.reverts]),
             "", "Top actors opening port 22",
             _table(["actor", "type", "findings", "nsgs", "last seen"],
                    [[a["actor"], a["actorType"], a["findings"], a["nsgs"], t(a["lastSeen"])]
                     for a in k.top_actors]),
             "", "Exemptions in force",
             _table(["exemption", "approver", "expires", "ticket", "rules"],
                    [[str(e["exemption"]).rsplit("/", 1)[-1], e["approver"], e["expiresOn"], e["ticket"],
                      ", ".join(e["rules"])] for e in k.exemptions])]
    return "\n".join(parts)
