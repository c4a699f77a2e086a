"""The demo's Azure ML chapter (called from :func:`localazure.demo.run_demo`, on the same stand-ins):

1. two ML workspaces with computes appear; the notebooks subnet's NSG still has a rule from before NSG Guard
   (TCP 22 from ``*``, no event was ever seen for it);
2. a data scientist creates a compute instance with a public IP and SSH public access on 22: the compute
   write event reaches ``on_nsg_change`` and the compute is flagged ``critical`` at once, naming its owner;
3. the nightly sweep writes the compute inventory (one ``compute`` row per compute);
4. ``nsg-guard migrate-ssh`` moves SSH to the standard port 50022: the new port from the VPN only, proof by a
   TCP connect (a listener on 127.0.0.1 stands in for sshd), and only then 22 is closed; the compute's owner
   moves sshd to 50022 and the compute event shows it compliant;
5. another sweep, then the four seed KPIs from the ingested rows plus the workspace's ``Syslog`` and
   ``SecurityAlert`` stand-in rows.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from localazure.aml_estate import NOTEBOOKS_NSG, compute_instance, nsg_id, seed_ml_estate, workspace_rows

TO_PORT = 50022
TRUSTED = "203.0.113.0/24,52.174.10.16/28"  # office range and the VPN egress


def _put_compute(azure: Any, body: dict[str, Any], token: str) -> int:
    import requests

    response = requests.put(f"{azure.url}{body['id']}?api-version=2025-12-01", json=body, verify=azure.ca_path,
                            headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return response.status_code


def _legacy_open_ssh(body: dict[str, Any]) -> None:
    body["properties"]["securityRules"].append({"name": "AllowSSH", "properties": {
        "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "22", "sourceAddressPrefix": "*",
        "destinationAddressPrefix": "*", "access": "Allow", "priority": 310, "direction": "Inbound",
        "description": "temporary, 2024"}})


def _show(out: TextIO, rows: list[dict[str, Any]]) -> None:
    keys = ("RecordType", "ComputeName", "ComputeType", "Status", "Severity", "Port", "ComputeOwner",
            "ComputePublicIp", "Reason")
    for row in rows:
        out.write("  " + json.dumps({k: row[k] for k in keys if row.get(k) is not None}) + "\n")


def _inventory(out: TextIO, rows: list[dict[str, Any]]) -> None:
    out.write(f"  {'compute':<16} {'type':<16} {'status':<13} {'severity':<9} {'ssh':<6} {'public ip':<12} owner\n")
    for r in sorted(rows, key=lambda r: r["ComputeName"]):
        out.write(f"  {r['ComputeName']:<16} {r.get('ComputeType', ''):<16} {r['Status']:<13} "
                  f"{r.get('Severity') or '-':<9} {r.get('Port') or '-'!s:<6} {r.get('ComputePublicIp') or '-':<12} "
                  f"{r.get('ComputeOwner') or '(none: low finding)'}\n")


def run_aml_demo(azure: Any, say: Callable[[str, str], None], out: TextIO, deliver_all: Callable[[], None],
                 sweep: Callable[[], dict[str, Any]], work: Path, ada: Any) -> bool:
    """Run the chapter; True when every step showed what it should."""
    from shared.cli import main as cli
    from shared.core.aml_kpis import compute_aml_kpis, render_aml_report

    out.write("\n=== Azure ML lens: which ML computes are exposed, whose are they, and moving SSH off 22 ===\n")
    ids = seed_ml_estate(azure)
    azure.update_nsg(nsg_id(NOTEBOOKS_NSG), _legacy_open_ssh)
    say("setup", "2 ML workspaces (ws-vision, ws-nlp) with 3 computes; vnet-ml's NSGs incl. AML's own "
                 "(…-azurebatch-cloudservice…); snet-notebooks-nsg still has AllowSSH 22 from * (from 2024)")

    # --- a compute with public SSH is judged at once --------------------------------------------------
    token = "ada-ml-token"
    azure.add_principal(token, ada)
    body = compute_instance("ws-vision", "ci-ada-gpu", owner=ada.upn, owner_oid=ada.object_id, ssh="Enabled",
                            ssh_port=22, public_ip="20.61.12.34")
    before = len(azure.ingested())
    say(ada.upn, f"PUT compute instance ci-ada-gpu (A100, public IP, SSH public access on 22) -> HTTP "
                 f"{_put_compute(azure, body, token)}")
    deliver_all()
    event_rows = [r for r in azure.ingested()[before:] if r.get("ComputeName") == "ci-ada-gpu"]
    flagged = [r for r in event_rows if r["RecordType"] == "compute"]
    say("Log Analytics", "compute event judged ci-ada-gpu: " + ", ".join(
        f"{r['Status']} {r.get('Severity')} (owner {r.get('ComputeOwner')})" for r in flagged))
    _show(out, event_rows)
    critical_ok = any(r.get("Severity") == "critical" and r.get("ComputeOwner") == ada.upn for r in flagged)

    # --- the inventory ---------------------------------------------------------------------------------
    before = len(azure.ingested())
    first = sweep()
    inventory = [r for r in azure.ingested()[before:] if r["RecordType"] == "compute"]
    c = first.get("computes") or {}
    say("nightly_sweep (timer)", f"{c.get('computes')} ML computes in {c.get('workspaces')} workspaces: "
                                 f"{c.get('compliant')} compliant ({c.get('compliancePercent')}%), "
                                 f"{c.get('critical')} critical, {c.get('noOwner')} without owner")
    out.write("Compute inventory (RecordType == \"compute\", one row per compute per sweep):\n")
    _inventory(out, inventory)

    # --- migrate SSH from 22 to the standard port --------------------------------------------------------
    target = ids[NOTEBOOKS_NSG]
    command = ["migrate-ssh", target, "--to-port", str(TO_PORT), "--from", TRUSTED]
    say("secops (nsg-guard CLI)", f"nsg-guard migrate-ssh .../{NOTEBOOKS_NSG} --to-port {TO_PORT} --from {TRUSTED}")
    with contextlib.redirect_stdout(out):
        refused = cli(["migrate-ssh", target, "--to-port", str(TO_PORT), "--from", "*"])
        first_run = cli(command)
    say("nsg-guard migrate-ssh", f"--from * refused (exit {refused}); step 1 done, waiting for proof "
                                 f"(exit {first_run}); port 22 untouched")
    with socket.socket() as sshd:
        sshd.bind(("127.0.0.1", 0))  # stands in for the compute's sshd, now also listening on the new port
        sshd.listen(1)
        port = sshd.getsockname()[1]
        say(ada.upn, f"adds 'Port {TO_PORT}' to sshd_config and restarts sshd (here: a listener on "
                     f"127.0.0.1:{port})")
        with contextlib.redirect_stdout(out):
            second_run = cli([*command, "--check", f"127.0.0.1:{port}"])
    say("nsg-guard migrate-ssh", f"TCP check passed, then nsg-guard-deny-ssh-22 added (exit {second_run})")
    body["properties"]["properties"]["sshSettings"]["sshPort"] = TO_PORT
    before = len(azure.ingested())
    say(ada.upn, f"PUT ci-ada-gpu with sshPort {TO_PORT} -> HTTP {_put_compute(azure, body, token)}")
    deliver_all()  # the compute event, then the events of migrate-ssh's own rule writes
    after = [r for r in azure.ingested()[before:] if r["RecordType"] == "compute" and r["ComputeName"] == "ci-ada-gpu"]
    say("Log Analytics", "ci-ada-gpu now " + ", ".join(f"{r['Status']} on TCP {r.get('Port')}: {r['Reason']}"
                                                      for r in after))
    migrated_ok = refused == 2 and first_run == 1 and second_run == 0 and bool(after) and \
        after[-1]["Status"] == "Compliant" and after[-1].get("Port") == TO_PORT

    # --- another night, then the four KPIs ---------------------------------------------------------------
    second = sweep()
    c2 = second.get("computes") or {}
    say("nightly_sweep (timer)", f"ML computes: {c2.get('compliant')} of {c2.get('judged')} compliant "
                                 f"({c2.get('compliancePercent')}%)")
    export = work / "kpi-export.jsonl"
    rows = [*azure.ingested(), *workspace_rows(datetime.now(UTC), ids | {"ci-ada-gpu": body["id"]})]
    export.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows), encoding="utf-8")
    kpis = compute_aml_kpis(rows)
    out.write(f"\nThe seed's four KPIs (nsg-guard report --from {export.name}: NSG Guard rows + the workspace's "
              "Syslog and SecurityAlert stand-in rows)\n" + render_aml_report(kpis) + "\n")
    kpis_ok = bool(kpis.compliance and kpis.mttr_per_compute and kpis.mttr_per_owner and kpis.bruteforce
                   and any(f["measured"] == "measured" for f in kpis.failed_logins)
                   and any(f["failedLogins"] is None for f in kpis.failed_logins))
    ok = critical_ok and bool(inventory) and migrated_ok and kpis_ok and c2.get("compliancePercent") == 100.0
    say("Azure ML lens", "ok" if ok else f"FAILED (critical {critical_ok}, inventory {bool(inventory)}, "
                                         f"migration {migrated_ok}, kpis {kpis_ok})")
    return ok
