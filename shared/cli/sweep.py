"""``nsg-guard sweep``, ``nsg-guard report`` and ``nsg-guard replay-deadletter`` (registered by shared.cli).

``sweep`` runs the very use case of the ``nightly_sweep`` timer:

* against Azure with your own login: ``NSG_GUARD_AUTH=default`` plus ``LOGS_INGESTION_ENDPOINT`` /
  ``LOGS_DCR_IMMUTABLE_ID`` (and ``OUTBOX_BLOB_ENDPOINT`` to park rows ingestion rejects);
* against a running ``python -m localazure``: ``NSG_GUARD_AUTH=local`` and the endpoints/CA/token it prints;
* ``--local SEED.json``: starts the stand-ins in this process, seeded from the file (``[nsg, ...]`` or
  ``{"nsgs": [...], "nics": [...], "publicIps": [...]}``), sweeps, writes the rows it ingested to
  ``--local-rows DIR/Custom-NsgGuardFindings.jsonl`` and stops them. Feed that file to ``report --from``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.app.progress import Progress

EXIT_OK, EXIT_PARTIAL, EXIT_BAD_INPUT = 0, 1, 2
REPORT_KINDS = ("finding", "evaluation", "sweep", "remediation")


def register(sub: Any) -> None:
    sweep = sub.add_parser(
        "sweep", help="evaluate every NSG in scope (Resource Graph) and record rows, like the nightly timer",
        description=(__doc__ or "").split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("--local", metavar="SEED.json",
                       help="start the local Azure stand-ins in-process, seeded from this file")
    sweep.add_argument("--local-rows", metavar="DIR",
                       help="with --local: where the stand-in writes ingested rows (default: a temp dir)")
    sweep.add_argument("--subscriptions", metavar="IDS", help="comma-separated subscription ids "
                       "(default: SWEEP_SUBSCRIPTIONS; empty = everything the identity can read)")
    sweep.add_argument("--management-groups", metavar="IDS", help="comma-separated management group ids")
    sweep.add_argument("--rows-out", metavar="FILE.jsonl", help="also append every row produced to this file")
    sweep.add_argument("--json", action="store_true", help="print the sweep summary as JSON")
    sweep.set_defaults(handler=cmd_sweep)

    report = sub.add_parser("report", help="compute the compliance KPIs from exported rows (JSON Lines)",
                            description="Compliance % per sweep, open findings by severity/owner/subscription, "
                                        "MTTR, reverts and top actors opening port 22: the workbook's KPIs "
                                        "computed from a JSONL file of table rows.")
    report.add_argument("--from", dest="source", required=True, metavar="FILE.jsonl")
    report.add_argument("--json", action="store_true")
    report.set_defaults(handler=cmd_report)

    replay = sub.add_parser("replay-deadletter", help="re-run the event handler for Event Grid dead letters",
                            description="Reads every blob of the dead-letter container (DEADLETTER_CONTAINER "
                                        "in the storage account of OUTBOX_BLOB_ENDPOINT), strips the "
                                        "dead-letter metadata and handles each event like a live delivery. "
                                        "Blobs fully handled are deleted unless --keep.")
    replay.add_argument("--prefix", help="only blobs whose name starts with this (e.g. 'NSG-GUARD/2026/11/')")
    replay.add_argument("--container", help="default: DEADLETTER_CONTAINER")
    replay.add_argument("--keep", action="store_true", help="do not delete replayed blobs")
    replay.add_argument("--dry-run", action="store_true", help="list the events, handle nothing")
    replay.set_defaults(handler=cmd_replay)


def _csv(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(p.strip() for p in text.split(",") if p.strip())


def local_env(azure: Any) -> dict[str, str]:
    """Settings that point the app at a :class:`localazure.server.LocalAzure`."""
    return {"NSG_GUARD_AUTH": "local", "NSG_GUARD_LOCAL_TOKEN": azure.token,
            "NSG_GUARD_CA_BUNDLE": str(azure.ca_path), "ARM_ENDPOINT": azure.url,
            "LOGS_INGESTION_ENDPOINT": azure.url, "LOGS_DCR_IMMUTABLE_ID": azure.dcr_id}


def seed_local(azure: Any, path: str) -> int:
    """Seed the stand-ins from ``{"nsgs": [...], "nics": [...], "publicIps": [...]}`` or any NSG document
    ``nsg-guard scan`` reads (one NSG, a list, an ARM ``{"value": [...]}`` page, Resource Graph rows, the
    az CLI shape), checked like a scan input. Returns the NSGs seeded."""
    from localazure.seeds import seed_file

    counts = seed_file(azure, path)
    if counts.nsgs == 0:
        print(f"nsg-guard: WARNING: {path} holds no NSGs: the sweep has nothing to check", file=sys.stderr)
    return counts.nsgs


class CountingGraph:
    """A Resource Graph source that reports NSG rows read to a :class:`Progress` (delegates the rest)."""

    def __init__(self, inner: Any, progress: Progress) -> None:
        self.inner = inner
        self.progress = progress

    @property
    def calls(self) -> int:
        return int(self.inner.calls)

    def pages(self, query: str, scope: Any) -> Any:
        from shared.core.inventory import NSG_QUERY

        for page in self.inner.pages(query, scope):
            if query == NSG_QUERY:
                self.progress.advance(len(page), f"{self.calls} Resource Graph calls")
            yield page

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class TeeSink:
    """Send to the real sink, and append the rows to a JSON Lines file as well."""

    def __init__(self, inner: Any, path: str) -> None:
        self.inner = inner
        self.path = path

    def send(self, rows: Sequence[dict[str, Any]]) -> None:
        self.inner.send(rows)
        with open(self.path, "a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, separators=(",", ":")) + "\n")

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close:
            close()


def cmd_sweep(args: argparse.Namespace) -> int:
    from shared.app.config import Settings

    if args.local:
        from localazure.server import LocalAzure

        rows_dir = args.local_rows or tempfile.mkdtemp(prefix="nsg-guard-sweep-")
        with LocalAzure(data_dir=rows_dir) as azure:
            loaded = seed_local(azure, args.local)
            print(f"localazure: {loaded} NSGs seeded from {args.local} at {azure.url}", file=sys.stderr)
            settings = Settings.from_env({**os.environ, **local_env(azure)})
            code = _sweep(args, settings)
        print(f"rows ingested by the stand-in: {Path(rows_dir) / (azure.stream + '.jsonl')}", file=sys.stderr)
        return code
    return _sweep(args, Settings.from_env())


def _sweep(args: argparse.Namespace, settings: Any) -> int:
    from shared.app.sweep import run_sweep
    from shared.azure.wiring import _close, build_outbox, build_sweep_deps, outboxed

    subs, mgs = _csv(args.subscriptions), _csv(args.management_groups)
    if subs is not None:
        settings = dataclasses.replace(settings, sweep_subscriptions=subs)
    if mgs is not None:
        settings = dataclasses.replace(settings, sweep_management_groups=mgs)
    sink = None
    if args.rows_out:
        from shared.azure.credentials import make_credential
        from shared.azure.ingestion import LogsIngestionSink

        credential = make_credential(settings)
        sink = outboxed(TeeSink(LogsIngestionSink(settings, credential), args.rows_out),
                        build_outbox(settings, credential))
    deps = build_sweep_deps(settings, sink=sink)
    progress = Progress("NSGs swept")
    if deps.graph is not None:
        deps.graph = CountingGraph(deps.graph, progress)
    try:
        result = run_sweep(deps)
    finally:
        progress.done()
        _close(deps.graph, deps.sink)
    s = result.summary
    if not s["nsgs"]:
        print("nsg-guard: WARNING: the sweep found no NSGs: nothing was checked (wrong subscriptions or "
              "missing Reader role?)", file=sys.stderr)
    if args.json:
        print(json.dumps({"sweepId": result.sweep_id, **s}, indent=2))
    else:
        sev = ", ".join(f"{k} {v}" for k, v in s["findings"].items())
        print(f"sweep {result.sweep_id}: {s['nsgs']} NSGs, {s['compliant']} compliant "
              f"({s['compliancePercent']}%), open findings: {sev}; latent {s['latent']}; "
              f"{s['failureCount']} failures; {s['durationSeconds']} s; source {s['source']}")
        for failure in s["failures"]:
            print(f"  failure: {json.dumps(failure)}", file=sys.stderr)
    return EXIT_PARTIAL if s["failureCount"] else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from shared.app.files import load_rows
    from shared.core.aml_kpis import compute_aml_kpis, render_aml_report
    from shared.core.kpis import compute_kpis, render_report

    rows = load_rows(args.source, kinds=REPORT_KINDS)
    kpis = compute_kpis(rows)
    aml = compute_aml_kpis(rows)  # the Azure ML section: compute rows, Syslog and SecurityAlert rows
    if args.json:
        print(json.dumps({**kpis.to_json(), "azureMl": aml.to_json()}, indent=2))
    else:
        print(render_report(kpis) + ("" if aml.empty else "\n\n" + render_aml_report(aml)))
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from shared.app.config import Settings
    from shared.app.deadletter import replay_deadletters
    from shared.app.handlers import handle_nsg_event
    from shared.azure.credentials import make_credential
    from shared.azure.storage import BlobDeadLetters, blob_service
    from shared.azure.wiring import build_event_deps

    settings = Settings.from_env()
    source = BlobDeadLetters(blob_service(settings, make_credential(settings)),
                             args.container or settings.deadletter_container)
    deps = None if args.dry_run else build_event_deps(settings)
    progress = Progress("events replayed")

    def handle(event: Any) -> Any:
        outcome = handle_nsg_event(event, deps)
        progress.advance()
        return outcome

    try:
        report = replay_deadletters(source, handle, prefix=args.prefix, keep=args.keep, dry_run=args.dry_run)
    finally:
        progress.done()
    print(json.dumps(report.summary(), indent=2))
    return EXIT_PARTIAL if report.failed else EXIT_OK
