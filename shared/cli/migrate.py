"""``nsg-guard migrate-ssh NSG_ID --to-port 50022 --from CIDR[,...] [--dry-run] [--check HOST | --confirm-connected]``.

Talks to Azure with the usual settings (``NSG_GUARD_AUTH``, ``ARM_ENDPOINT``...); records each step as a
remediation row through Logs Ingestion when it is configured, and/or to ``--rows-out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from shared.app import migrate_ssh

EXIT_OK, EXIT_NOT_DONE = 0, 1


def register(sub: Any) -> None:
    p = sub.add_parser(
        "migrate-ssh", help="move SSH off port 22: open the new port to trusted sources, prove it, then close 22",
        description=(migrate_ssh.__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("nsg_id", metavar="NSG_ID")
    p.add_argument("--to-port", type=int, required=True, metavar="PORT", help="the standard SSH port, e.g. 50022")
    p.add_argument("--from", dest="sources", required=True, metavar="CIDR[,...]",
                   help="trusted sources for the new port (VPN egress, Bastion subnet); never * / Internet")
    p.add_argument("--dry-run", action="store_true", help="print the three steps, write nothing")
    proof = p.add_mutually_exclusive_group()
    proof.add_argument("--check", metavar="HOST[:PORT]",
                       help="step 2 proof: TCP connect to HOST on the new port (or PORT) must succeed")
    proof.add_argument("--confirm-connected", action="store_true",
                       help="step 2 proof: you have an SSH session on the new port")
    p.add_argument("--rows-out", metavar="FILE.jsonl", help="also append the remediation rows to this file")
    p.add_argument("--json", action="store_true", help="print the steps as JSON")
    p.set_defaults(handler=cmd_migrate_ssh)


def parse_check(text: str | None) -> tuple[str | None, int | None]:
    if not text:
        return None, None
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and host and (":" not in host or host.startswith("[")):
        return host.strip("[]"), int(port)
    return text.strip("[]"), None


def cmd_migrate_ssh(args: argparse.Namespace) -> int:
    from shared.app.config import Settings
    from shared.app.migrate_ssh import migrate, parse_trusted_sources
    from shared.azure.rulestore import AzureRuleStore
    from shared.core.policy import Engine

    settings = Settings.from_env()
    engine = Engine(settings.policy)
    sources = parse_trusted_sources(args.sources, engine.evaluator, args.to_port)  # refuses Any before any I/O
    host, port = parse_check(args.check)
    store = AzureRuleStore(settings)
    try:
        m = migrate(args.nsg_id, args.to_port, sources, store, engine.evaluator, dry_run=args.dry_run,
                    check_host=host, check_port=port, confirmed=args.confirm_connected)
    finally:
        store.close()
    _record(settings, m.rows, args.rows_out)
    if args.json:
        print(json.dumps({"nsgId": m.nsg_id, "toPort": m.to_port, "complete": m.complete,
                          "steps": [{"step": s.step, "action": s.action, "result": s.result, "message": s.message}
                                    for s in m.steps]}, indent=2))
    else:
        for s in m.steps:
            print(f"step {s.step} {s.result.upper():13} {s.message}")
    if args.dry_run:
        return EXIT_OK
    return EXIT_OK if m.complete else EXIT_NOT_DONE


def _record(settings: Any, rows: list[dict[str, Any]], path: str | None) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, separators=(",", ":")) + "\n")
    if not settings.logs_endpoint:
        print("nsg-guard: LOGS_INGESTION_ENDPOINT is not set: the steps are not recorded in Log Analytics",
              file=sys.stderr)
        return
    from shared.app.rows import validate_rows
    from shared.azure.credentials import make_credential
    from shared.azure.ingestion import LogsIngestionSink

    validate_rows(rows)
    sink = LogsIngestionSink(settings, make_credential(settings))
    try:
        sink.send(rows)
    finally:
        close = getattr(sink, "close", None)
        if close:
            close()
