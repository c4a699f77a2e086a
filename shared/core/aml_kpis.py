"""The seed's four Azure ML KPIs from exported rows (pure), mirroring ``queries/aml_*.kql``.

Rows come from one export: NSG Guard's own rows (``NsgGuardFindings_CL``) plus, recognised by Log Analytics'
``Type`` column, ``Syslog`` and ``SecurityAlert`` rows from the same workspace.

1. :func:`compute_compliance` - ``aml_compute_compliance.kql``: per sweep, judged computes and % Compliant.
2. :func:`compute_mttr` - ``aml_mttr.kql``: opened = first Open compute finding (ssh/ssh-custom, no NsgId);
   resolved = first later compute row of the same compute without the id. Mean hours per compute and per owner.
3. :func:`failed_ssh_logins` - ``aml_failed_ssh_logins.kql``: sshd failures per computer per day; AML computes
   listed as not measured (None, not zero).
4. :func:`bruteforce_alerts` - ``aml_bruteforce_alerts.kql``: Defender brute-force alerts deduplicated on
   ``SystemAlertId``, per day and resource, joined to open findings on the compute or NSG id.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.core.aml import JUDGED_TYPES
from shared.core.kpis import _table, dedupe

BRUTE_FORCE_TYPES = frozenset({
    "VM_SshBruteForceFailed", "VM_SshBruteForceSuccess", "VM_LoginBruteForceSuccess",
    "VM_LoginBruteForceValidUserFailed", "SSH_Incoming_BF_OneToOne", "SSH_Incoming_BF_ManyToOne",
    "RDP_Incoming_BF_OneToOne", "RDP_Incoming_BF_ManyToOne"})
SSHD_FAILURES = ("Failed password", "Invalid user", "authentication failure")
NOT_MEASURED = "not measured: AML compute (no Azure Monitor Agent)"
NO_OWNER = "(no owner)"


def _ids(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return []
    return [str(v) for v in value] if isinstance(value, list) else []


def _day(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d")


def compute_compliance(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    per: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("RecordType") != "compute" or r.get("Trigger") != "sweep" or \
                r.get("ComputeType") not in JUDGED_TYPES or r.get("Status") == "NotEvaluated":
            continue
        e = per.setdefault(str(r.get("SweepId")), {"sweepId": r.get("SweepId"), "computes": 0, "compliant": 0,
                                                    "critical": 0, "time": r["TimeGenerated"]})
        e["computes"] += 1
        e["compliant"] += r.get("Status") == "Compliant"
        e["critical"] += r.get("Severity") == "critical"
        e["time"] = max(e["time"], r["TimeGenerated"])
    out = sorted(per.values(), key=lambda e: e["time"])
    for e in out:
        e["compliancePercent"] = round(100.0 * e["compliant"] / e["computes"], 2) if e["computes"] else None
    return out


def compute_mttr(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    opened: dict[str, dict[str, Any]] = {}
    for r in rows:
        # Compute findings only: NSG findings that merely name the compute they guard carry an NsgId.
        if r.get("RecordType") == "finding" and r.get("ComputeId") and not r.get("NsgId") \
                and r.get("Status") == "Open" and r.get("PortKind") in ("ssh", "ssh-custom"):
            fid = str(r.get("FindingId"))
            if fid not in opened or r["TimeGenerated"] < opened[fid]["at"]:
                opened[fid] = {"at": r["TimeGenerated"], "compute": str(r["ComputeId"]).lower(),
                               "name": r.get("ComputeName"), "owner": r.get("ComputeOwner") or NO_OWNER}
    compute_rows: dict[str, list[tuple[datetime, set[str]]]] = defaultdict(list)
    for r in rows:
        if r.get("RecordType") == "compute" and r.get("ComputeId"):
            compute_rows[str(r["ComputeId"]).lower()].append((r["TimeGenerated"], set(_ids(r.get("OpenFindingIds")))))
    per_compute: dict[tuple[str, str], list[float]] = defaultdict(list)
    per_owner: dict[str, list[float]] = defaultdict(list)
    for fid, o in opened.items():
        later = [t for t, ids in compute_rows.get(o["compute"], []) if t > o["at"] and fid not in ids]
        if later:
            hours = (min(later) - o["at"]).total_seconds() / 3600.0
            per_compute[(o["owner"], str(o["name"]))].append(hours)
            per_owner[o["owner"]].append(hours)
    mean = lambda hs: round(sum(hs) / len(hs), 2)  # noqa: E731
    return ([{"owner": k[0], "compute": k[1], "resolved": len(v), "mttrHours": mean(v)}
             for k, v in sorted(per_compute.items())],
            [{"owner": k, "resolved": len(v), "mttrHours": mean(v)} for k, v in sorted(per_owner.items())])


def failed_ssh_logins(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts: Counter[tuple[str, str]] = Counter()
    for r in rows:
        if r.get("Type") != "Syslog" or str(r.get("ProcessName") or "").lower() != "sshd":
            continue
        message = str(r.get("SyslogMessage") or "")
        if any(s in message for s in SSHD_FAILURES):
            counts[(str(r.get("Computer") or ""), _day(r["TimeGenerated"]))] += 1
    out: list[dict[str, Any]] = [{"computer": c, "day": d, "failedLogins": n, "measured": "measured"}
                                 for (c, d), n in counts.items()]
    latest: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("RecordType") == "compute" and r.get("ComputeType") in JUDGED_TYPES and r.get("ComputeId"):
            key = str(r["ComputeId"]).lower()
            if key not in latest or r["TimeGenerated"] > latest[key]["TimeGenerated"]:
                latest[key] = r
    out += [{"computer": r.get("ComputeName"), "day": _day(r["TimeGenerated"]), "failedLogins": None,
             "measured": NOT_MEASURED} for r in latest.values()]
    # Newest day first; measured computers (most failures first) before the computes we cannot measure.
    out.sort(key=lambda e: (e["day"], e["measured"] == "measured", e["failedLogins"] or 0), reverse=True)
    return out


def bruteforce_alerts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    alerts: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("Type") == "SecurityAlert" and r.get("AlertType") in BRUTE_FORCE_TYPES and r.get("SystemAlertId"):
            key = str(r["SystemAlertId"])
            if key not in alerts or r["TimeGenerated"] > alerts[key]["TimeGenerated"]:
                alerts[key] = r
    open_by: dict[str, dict[str, Any]] = defaultdict(lambda: {"ids": set(), "severities": set(), "owner": None})
    for r in rows:
        if r.get("RecordType") == "finding" and r.get("Status") == "Open":
            key = str(r.get("ComputeId") or r.get("NsgId") or "").lower()
            entry = open_by[key]
            entry["ids"].add(r.get("FindingId"))
            entry["severities"].add(r.get("Severity"))
            entry["owner"] = entry["owner"] or r.get("Owner")
    per: dict[tuple[str, str], dict[str, Any]] = {}
    for a in alerts.values():
        day, resource = _day(a["TimeGenerated"]), str(a.get("ResourceId") or "")
        e = per.setdefault((day, resource.lower()), {"day": day, "resourceId": resource, "alerts": 0,
                                                      "alertTypes": set()})
        e["alerts"] += 1
        e["alertTypes"].add(a.get("AlertType"))
    out = []
    for (_, key), e in per.items():
        found = open_by.get(key)
        out.append({**e, "alertTypes": sorted(e["alertTypes"]), "openFindings": len(found["ids"]) if found else 0,
                    "severities": sorted(s for s in found["severities"] if s) if found else [],
                    "owner": found["owner"] if found else None})
    out.sort(key=lambda e: (e["day"], e["alerts"]), reverse=True)
    return out


@dataclass
class AmlKpis:
    compliance: list[dict[str, Any]] = field(default_factory=list)
    mttr_per_compute: list[dict[str, Any]] = field(default_factory=list)
    mttr_per_owner: list[dict[str, Any]] = field(default_factory=list)
    failed_logins: list[dict[str, Any]] = field(default_factory=list)
    bruteforce: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.compliance or self.mttr_per_compute or self.failed_logins or self.bruteforce)

    def to_json(self) -> dict[str, Any]:
        def plain(v: Any) -> Any:
            if isinstance(v, datetime):
                return v.astimezone(UTC).isoformat().replace("+00:00", "Z")
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            return v

        return plain({"computeCompliance": self.compliance,
                      "computeMttr": {"perCompute": self.mttr_per_compute, "perOwner": self.mttr_per_owner},
                      "failedSshLogins": self.failed_logins, "bruteForceAlerts": self.bruteforce})


def compute_aml_kpis(rows: Iterable[dict[str, Any]]) -> AmlKpis:
    unique = dedupe(rows)
    per_compute, per_owner = compute_mttr(unique)
    return AmlKpis(compute_compliance(unique), per_compute, per_owner, failed_ssh_logins(unique),
                   bruteforce_alerts(unique))


def render_aml_report(k: AmlKpis) -> str:
    t = lambda d: d.astimezone(UTC).strftime("%Y-%m-%d %H:%M")  # noqa: E731
    return "\n".join([
        "Azure ML: % of compute instances/clusters compliant (per sweep)",
        _table(["time", "sweep", "computes", "compliant", "critical", "percent"],
               [[t(c["time"]), c["sweepId"], c["computes"], c["compliant"], c["critical"], c["compliancePercent"]]
                for c in k.compliance]),
        "", "Azure ML: time to remediate SSH exposure, per compute",
        _table(["owner", "compute", "resolved", "mttr_h"],
               [[m["owner"], m["compute"], m["resolved"], m["mttrHours"]] for m in k.mttr_per_compute]),
        "", "Azure ML: time to remediate SSH exposure, per owner",
        _table(["owner", "resolved", "mttr_h"],
               [[m["owner"], m["resolved"], m["mttrHours"]] for m in k.mttr_per_owner]),
        "", "Failed SSH logins per computer per day (Syslog, sshd)",
        _table(["day", "computer", "failed", "measured"],
               [[f["day"], f["computer"], f["failedLogins"], f["measured"]] for f in k.failed_logins]),
        "", "Brute-force alerts (Defender for Cloud, deduplicated on SystemAlertId) and open findings",
        _table(["day", "resource", "alerts", "types", "open findings", "severities"],
               [[b["day"], b["resourceId"].rstrip("/").rsplit("/", 1)[-1], b["alerts"], ",".join(b["alertTypes"]),
                 b["openFindings"], ",".join(b["severities"]) or "-"] for b in k.bruteforce]),
    ])
