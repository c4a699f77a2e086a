"""``nsg-guard demo``: the whole flow offline, on the real SDK clients against the local stand-ins.

1. start the stand-ins with a seeded, compliant estate (Azure ML GPU compute, Bastion, JIT, app tiers);
2. a clean scan of every NSG through azure-mgmt-network (paged ``list_all``);
3. the incident: a data scientist opens TCP 22 to ``*`` on a GPU compute NSG (real SDK PUT, with her token);
4. the stand-ins publish the Event Grid event; it goes through the ``on_nsg_change`` Function;
5. the finding, naming her, is read back from the ingested ``NsgGuardFindings_CL`` rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from localazure.estate import ML_SUB, PLATFORM_SUB, demo_estate
from localazure.eventgrid import Principal

ADA = Principal(upn="ada.okafor@contoso.example", object_id="5e1f0b2a-0000-4000-8000-000000000001",
                name="Ada Okafor", ip="198.51.100.23")
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


def run_demo(out_dir: str | None = None, out: TextIO = sys.stdout) -> int:
    from localazure.functions import deliver
    from localazure.server import LocalAzure
    from shared.azure.credentials import LocalTokenCredential
    from shared.azure.network import AzureNetwork
    from shared.azure.wiring import event_deps
    from shared.config import Settings
    from shared.model import parse_nsg
    from shared.policy import Engine

    keep = Path(out_dir) if out_dir else None
    work = keep or Path(tempfile.mkdtemp(prefix="nsg-guard-demo-"))
    ingested_dir = work / "ingested"
    with LocalAzure(data_dir=ingested_dir) as azure, _environment(azure.app_settings(SDK_RETRY_BACKOFF="0.1")):
        event_deps.cache_clear()
        timeline = Timeline(out)
        out.write(f"NSG Guard demo — local Azure stand-ins at {azure.url} (no Azure account needed)\n\n")

        for body in demo_estate():
            azure.seed_nsg(body)
        timeline.say("setup", f"seeded {len(azure.nsgs())} NSGs in 2 subscriptions (Azure ML GPU compute, "
                              "Bastion, JIT VMs, app tiers)")

        settings = Settings.from_env()
        engine = Engine(settings.policy)
        network = AzureNetwork(settings, LocalTokenCredential(azure.token))
        scanned = compliant = 0
        for sub in (ML_SUB, PLATFORM_SUB):
            for model in network.client(sub).network_security_groups.list_all():
                scanned += 1
                compliant += engine.evaluate(parse_nsg(model)).compliant
        timeline.say("scan (azure-mgmt-network)", f"{scanned} NSGs listed and evaluated: {compliant} compliant "
                                                 f"({100.0 * compliant / scanned:.1f}%)")

        nsg_id = next(n["id"] for n in azure.nsgs() if n["name"] == INCIDENT_NSG)
        rg = nsg_id.split("/")[4]
        ada_credential = azure.add_principal("ada-token", ADA)
        ada_client = azure.network_client(ML_SUB, credential=ada_credential)
        timeline.say(ADA.upn or "", f"PUT {INCIDENT_NSG}/securityRules/AllowSSH: TCP 22 from * "
                                    "('just for a quick debug session')")
        written_at = time.perf_counter()
        ada_client.security_rules.begin_create_or_update(rg, INCIDENT_NSG, "AllowSSH", {"properties": {
            "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "22", "sourceAddressPrefix": "*",
            "destinationAddressPrefix": "*", "access": "Allow", "priority": 250, "direction": "Inbound",
            "description": "quick debug"}}).result()
        timeline.say("ARM", "long-running PUT succeeded; Event Grid publishes ResourceWriteSuccess")

        for event in azure.event_grid.drain():
            timeline.say("Event Grid", f"{event['eventType'].rsplit('.', 1)[-1]} {event['data']['operationName']}"
                                       f" -> on_nsg_change (event {event['id'][:8]})")
            deliver(event)
        findings = [r for r in azure.ingested() if r["RecordType"] == "finding"]
        latency_ms = (time.perf_counter() - written_at) * 1000
        timeline.say("Log Analytics", f"{len(findings)} finding row(s) in NsgGuardFindings_CL, "
                                      f"{latency_ms:.0f} ms after the write")
        out.write("\nRows ingested for the incident:\n")
        _print_rows(out, azure.ingested())
        event_deps.cache_clear()

        if keep:
            out.write(f"\nIngested rows kept in {ingested_dir}/ (one JSONL file per stream)\n")
        ok = any(r.get("Severity") == "high" and r.get("Actor") == ADA.upn for r in findings)
        out.write("\nDemo " + ("succeeded: the exposure was detected and attributed.\n" if ok else "FAILED\n"))
        return 0 if ok else 1
