"""``nsg-guard demo``: the whole flow offline, on the real SDK clients against the local stand-ins.

1. start the stand-ins with a seeded, compliant estate (Azure ML GPU compute, Bastion, JIT, app tiers);
2. the nightly sweep (timer Function, Resource Graph): everything compliant;
3. the incident: a data scientist opens TCP 22 to ``*`` on a GPU compute NSG (real SDK PUT, with her token);
4. the stand-ins publish the Event Grid event; it goes through the ``on_nsg_change`` Function;
5. the finding, naming her, is read back from the ingested ``NsgGuardFindings_CL`` rows; in enforce mode
   NSG Guard puts a Deny in front of her rule, verifies it, and records the change;
6. Ada cannot exempt her own rule; secops approve a Policy exemption (``nsg-guard exempt``) and undo the
   revert with ``nsg-guard restore``;
7. a second sweep and the KPI report (compliance over time, MTTR, reverts, top actors).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from localazure.estate import ML_SUB, demo_estate
from localazure.eventgrid import Principal

ADA = Principal(upn="ada.okafor@contoso.example", object_id="5e1f0b2a-0000-4000-8000-000000000001",
                name="Ada Okafor", ip="198.51.100.23")
SECOPS = Principal(upn="secops@contoso.example", object_id="5e1f0b2a-0000-4000-8000-0000000005ec",
                   name="SecOps on call")
# NSG Guard's own identity (the Function App's managed identity): its reverts and restores are made as this
# principal, so the rows of the events its own writes cause name it, not a developer.
GUARD = Principal(upn=None, object_id="9a7c61f0-0000-4000-8000-00000000c0de", principal_type="ServicePrincipal",
                  app_id="6f0e2c1d-0000-4000-8000-00000000c0de", name="id-nsg-guard (managed identity)",
                  ip="10.0.9.4")
GUARD_TOKEN = "nsg-guard-identity-token"
INCIDENT_NSG = "ci-gpu-03-nsg"


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


class Timeline:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.t0 = time.perf_counter()

    def say(self, who: str, what: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
        elapsed = (time.perf_counter() - self.t0) * 1000
        self.out.write(f"{stamp} +{elapsed:6.0f} ms  {who:<26} {what}\n")
        self.out.flush()


def _print_rows(out: TextIO, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        keep = {k: row[k] for k in ("RecordType", "Severity", "Status", "Port", "Exposure", "NsgName", "RuleName",
                                    "Actor", "ActorType", "Owner", "OpenFindingIds", "Reason", "EventId") if k in row}
        out.write("  " + json.dumps(keep) + "\n")


def _exempt_cli(token: str, nsg_id: str) -> tuple[int, str]:
    """``nsg-guard exempt`` as the principal holding ``token``: (exit code, what it printed last)."""
    import io

    from shared.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _environment({"NSG_GUARD_LOCAL_TOKEN": token}), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        code = main(["exempt", nsg_id, "--rule", "AllowSSH", "--days", "30", "--ticket", "SEC-4711",
                     "--reason", "approved debug session"])
    lines = (err.getvalue() or out.getvalue()).strip().splitlines()
    return code, lines[-1] if lines else ""


def _deliver_all(azure: Any, timeline: Timeline, deliver: Any) -> None:
    """What the Event Grid subscription does: every published event to on_nsg_change, in order."""
    while True:
        events = azure.event_grid.drain()
        if not events:
            return
        for event in events:
            claims = event["data"].get("claims") or {}
            principal = claims.get("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn") or claims.get(
                "appid", "?")
            if principal == GUARD.app_id:
                principal = "NSG Guard's identity"
            timeline.say("Event Grid", f"{event['eventType'].rsplit('.', 1)[-1]} "
                                       f"{event['data']['operationName'].split('/', 1)[1]} by {principal} "
                                       f"-> on_nsg_change (event {event['id'][:8]})")
            deliver(event)


def _sweep(timeline: Timeline, azure: Any) -> dict[str, Any]:
    from azure.functions.timer import TimerRequest

    from localazure.functions import function

    before = len(azure.ingested())
    function("nightly_sweep")(TimerRequest(past_due=False))
    summary = next(r for r in azure.ingested()[before:] if r["RecordType"] == "sweep")
    d = summary["Details"]
    calls = d.get("graphCalls") or {}
    calls_text = ", ".join(f"{v} for {k}" for k, v in calls.items()) if isinstance(calls, dict) else str(calls)
    open_text = ", ".join(f"{n} {sev}" for sev, n in (d.get("findings") or {}).items() if n) or "none"
    timeline.say("nightly_sweep (timer)", f"{d['nsgs']} NSGs via Resource Graph ({calls_text}): "
                                          f"{d['compliant']} compliant ({d['compliancePercent']}%), "
                                          f"open findings: {open_text}")
    return d


def run_demo(out_dir: str | None = None, out: TextIO = sys.stdout) -> int:
    from localazure.functions import deliver
    from localazure.server import LocalAzure
    from shared.app.files import report_file
    from shared.azure.rulestore import restore_from_file
    from shared.azure.wiring import event_deps

    keep = Path(out_dir) if out_dir else None
    work = keep or Path(tempfile.mkdtemp(prefix="nsg-guard-demo-"))
    ingested_dir = work / "ingested"
    if ingested_dir.exists():
        for old in ingested_dir.glob("*.jsonl"):
            old.unlink()  # a fresh table for every run
    settings = {"SDK_RETRY_BACKOFF": "0.1", "REVERT_MODE": "enforce", "SSH_PORTS": "2222",
                "NSG_GUARD_LOCAL_TOKEN": GUARD_TOKEN}
    with LocalAzure(data_dir=ingested_dir) as azure, _environment(azure.app_settings(**settings)):
        azure.add_principal(GUARD_TOKEN, GUARD)
        event_deps.cache_clear()
        timeline = Timeline(out)
        out.write(f"NSG Guard demo — local Azure stand-ins at {azure.url} (no Azure account needed)\n"
                  "Settings: REVERT_MODE=enforce, SSH_PORTS=2222 (the organisation's SSH port). No outbox\n"
                  "storage in the demo (the tests run the outbox against Azurite).\n\n")
        logging.getLogger("nsg_guard.wiring").setLevel(logging.ERROR)  # the outbox warning, said above

        for body in demo_estate():
            azure.seed_nsg(body)
        timeline.say("setup", f"seeded {len(azure.nsgs())} NSGs in 2 subscriptions (Azure ML GPU compute, "
                              "Bastion, JIT VMs, app tiers)")
        first = _sweep(timeline, azure)

        # --- the incident ------------------------------------------------------------------------------
        nsg_id = next(n["id"] for n in azure.nsgs() if n["name"] == INCIDENT_NSG)
        rg = nsg_id.split("/")[4]
        ada_client = azure.network_client(ML_SUB, credential=azure.add_principal("ada-token", ADA))
        timeline.say(ADA.upn or "", f"PUT {INCIDENT_NSG}/securityRules/AllowSSH: TCP 22 from * "
                                    "('just for a quick debug session')")
        written_at = time.perf_counter()
        ada_client.security_rules.begin_create_or_update(rg, INCIDENT_NSG, "AllowSSH", {"properties": {
            "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "22", "sourceAddressPrefix": "*",
            "destinationAddressPrefix": "*", "access": "Allow", "priority": 250, "direction": "Inbound",
            "description": "quick debug"}}).result()
        timeline.say("ARM", "long-running PUT succeeded; Event Grid publishes ResourceWriteSuccess")
        _deliver_all(azure, timeline, deliver)
        rows = azure.ingested()
        findings = [r for r in rows if r["RecordType"] == "finding" and r.get("Actor") == ADA.upn]
        reverts = [r for r in rows if r["RecordType"] == "remediation"]
        applied = [r for r in reverts if r.get("Result") in ("applied", "verified")]
        timeline.say("Log Analytics", f"{len(findings)} finding row(s) naming {ADA.upn}; {len(reverts)} "
                                      f"remediation row(s); closed "
                                      f"{(time.perf_counter() - written_at) * 1000:.0f} ms after the write")
        out.write("\nRows ingested for the incident:\n")
        _print_rows(out, [r for r in rows if r.get("EventId") and r["RecordType"] in ("finding", "evaluation")
                          and r.get("NsgName") == INCIDENT_NSG])
        out.write("Remediation (audit rows):\n")
        for r in reverts:
            out.write("  " + json.dumps({k: r.get(k) for k in ("Mode", "Action", "Result", "RuleName")}) + " "
                      + json.dumps((r.get("RuleAfter") or {}).get("name")) + "\n")
        nsg_now = azure.get_nsg(nsg_id) or {}
        ours = [x["name"] for x in nsg_now["properties"]["securityRules"] if x["name"].startswith("nsg-guard-")]
        timeline.say("ARM", f"{INCIDENT_NSG} now has {', '.join(ours) or 'no NSG Guard rule'} in front of "
                            "AllowSSH; Ada's rule itself is untouched")

        # --- exemption + restore ------------------------------------------------------------------------
        azure.add_principal("ada-token", ADA)
        ada_code, ada_said = _exempt_cli("ada-token", nsg_id)
        refused = ada_code == 2 and "not allowed to approve exemptions" in ada_said
        timeline.say(ADA.upn or "", f"tries 'nsg-guard exempt' on her own rule: exit {ada_code}, "
                                    + ("refused (403): she lacks the policy exemption rights" if refused else ada_said))
        azure.add_principal("secops-token", SECOPS)
        azure.policy_exemptions.grant(SECOPS.object_id)  # Resource Policy Contributor, in effect
        secops_code, _ = _exempt_cli("secops-token", nsg_id)
        timeline.say(SECOPS.upn or "", f"approves: Policy exemption for AllowSSH, 30 days, SEC-4711 (exit "
                                       f"{secops_code})")
        _deliver_all(azure, timeline, deliver)
        audit = ingested_dir / f"{azure.stream}.jsonl"
        steps = restore_from_file(str(audit), nsg_id=nsg_id)
        for step in steps:
            timeline.say("nsg-guard restore", f"{step.op} {step.rule_name}: {step.status} {step.message}".rstrip())
        _deliver_all(azure, timeline, deliver)
        last = [r for r in azure.ingested() if r["RecordType"] == "finding" and r.get("RuleName") == "AllowSSH"][-1]
        timeline.say("Log Analytics", f"AllowSSH finding now {last['Status']} (severity {last['Severity']}); no "
                                      "new revert")

        second = _sweep(timeline, azure)
        aml_ok = _aml_chapter(azure, timeline, out, deliver, work)
        event_deps.cache_clear()

        out.write("\n" + report_file(audit) + "\n")
        if keep:
            out.write(f"\nIngested rows kept in {ingested_dir}/ (one JSONL file per stream); "
                      f"try: nsg-guard report --from {audit}\n")
        ok = (first["compliancePercent"] == 100.0 and
              any(r.get("Severity") == "high" for r in findings) and bool(applied) and bool(ours) and
              last["Status"] == "Exempt" and all(s.status == "done" for s in steps) and refused and
              secops_code == 0 and
              second["nsgs"] == first["nsgs"] and aml_ok)
        out.write("\nDemo " + ("succeeded: detected, attributed, reverted, verified, exempted and restored.\n"
                                if ok else "FAILED\n"))
        return 0 if ok else 1


def _aml_chapter(azure: Any, timeline: Timeline, out: TextIO, deliver: Any, work: Path) -> bool:
    """The Azure ML lens chapter (``localazure.aml_demo``) on the same stand-ins."""
    from localazure.aml_demo import run_aml_demo

    return run_aml_demo(azure, timeline.say, out, lambda: _deliver_all(azure, timeline, deliver),
                        lambda: _sweep(timeline, azure), work, ADA)
