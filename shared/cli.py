"""``nsg-guard`` command line. Subcommands parse options, call a use case, and print; nothing more."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from shared import __version__, exempt_cli, migrate_cli, remediate_cli, sweep_cli
from shared.errors import ConfigError, InputError
from shared.findings import STATUS_EXEMPT
from shared.policy import DEFAULT_MANAGEMENT_PORTS, SEVERITY_ORDER, Policy, parse_port_list, watched_ports

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT = 0, 1, 2
FAIL_ON_CHOICES = (*SEVERITY_ORDER, "never")


def _add_policy_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ports", default=",".join(map(str, DEFAULT_MANAGEMENT_PORTS)),
                   help="management ports to watch besides SSH 22, comma separated "
                        "(default: %(default)s; '' for none)")
    p.add_argument("--ssh-ports", default="",
                   help="the organisation's own SSH ports (kind ssh-custom), comma separated, e.g. 2222")
    p.add_argument("--extra-tags", default="", metavar="TAGS",
                   help="organisation-specific service tags to accept as (non-public) sources, comma separated")


def policy_from_args(args: argparse.Namespace) -> Policy:
    ssh = parse_port_list(args.ssh_ports, "--ssh-ports")
    mgmt = parse_port_list(args.ports, "--ports")
    extra = frozenset(t.strip().lower() for t in args.extra_tags.split(",") if t.strip())
    return Policy(watched=watched_ports(ssh, mgmt), extra_service_tags=extra)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nsg-guard",
        description="Keeps SSH and management ports of Azure compute off the open internet.")
    parser.add_argument("--version", action="version", version=f"nsg-guard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    scan = sub.add_parser("scan", help="evaluate NSG JSON files and print findings",
                          description="Reads NSG JSON (a single NSG, a list, an ARM {'value': [...]} page, "
                                      "'az network nsg list' output or Resource Graph rows) and prints "
                                      "which rule exposes which port to which sources.")
    scan.add_argument("files", nargs="+", metavar="FILE")
    scan.add_argument("--format", choices=("table", "json", "sarif"), default="table")
    scan.add_argument("--fail-on", choices=FAIL_ON_CHOICES, default="low",
                      help="exit 1 when a finding at or above this severity exists (default: %(default)s; "
                           "latent findings are 'info')")
    scan.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    scan.add_argument("--indent", action="store_true",
                      help="indent --format json (default: indented on a terminal, compact when piped)")
    scan.add_argument("--exempt-tag", default="nsg-guard-exempt", metavar="TAG",
                      help="NSG tag holding exemptions (default: %(default)s); exempt findings are kept but "
                           "do not fail --fail-on")
    _add_policy_options(scan)
    exempt_cli.add_scan_options(scan)
    scan.set_defaults(handler=_cmd_scan)

    demo = sub.add_parser("demo", help="offline demo of the whole flow against the local Azure stand-ins")
    demo.add_argument("--out", metavar="DIR", help="keep the ingested rows (JSONL) in DIR")
    demo.set_defaults(handler=_cmd_demo)

    local = sub.add_parser("localazure", help="serve the local Azure stand-ins (ARM, Resource Graph, Logs "
                                              "Ingestion) until Ctrl-C")
    local.add_argument("--port", type=int, default=8443)
    local.add_argument("--seed", action="append", default=[], metavar="FILE",
                       help="NSG JSON to seed (repeatable)")
    local.add_argument("--data-dir", metavar="DIR", help="append ingested rows to DIR/<stream>.jsonl")
    local.set_defaults(handler=_cmd_localazure)
    remediate_cli.register(sub)
    sweep_cli.register(sub)
    exempt_cli.register(sub)
    migrate_cli.register(sub)
    return parser


def _cmd_demo(args: argparse.Namespace) -> int:
    from localazure.demo import run_demo

    return run_demo(args.out)


def _cmd_localazure(args: argparse.Namespace) -> int:
    from localazure.__main__ import main as serve

    argv = ["--port", str(args.port)]
    for path in args.seed:
        argv += ["--seed", path]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    return int(serve(argv) or 0)


def _cmd_scan(args: argparse.Namespace) -> int:
    from shared.gcpolicy import batch_without_cyclic_gc

    with batch_without_cyclic_gc():  # linear cost on big inputs (shared/gcpolicy.py)
        return _scan(args)


def _scan(args: argparse.Namespace) -> int:
    from shared.output import render_json, render_reasons, render_sarif, render_table, use_colour
    from shared.policy import Engine
    from shared.scan import scan_files

    engine = Engine(policy_from_args(args))
    errors: list[InputError] = []
    exemptions = exempt_cli.context_from_args(args)
    if args.format == "json" and not (args.indent or sys.stdout.isatty()):
        return _scan_json_streaming(args, engine, errors, exemptions)
    results = list(scan_files(args.files, engine, errors, exempt_tag=args.exempt_tag, exemptions=exemptions))
    if errors:
        return _report_errors(errors)
    if args.format == "json":
        print(render_json(results, indent=args.indent or sys.stdout.isatty()))
    elif args.format == "sarif":
        print(render_sarif(results))
    else:
        print(render_table(results, colour=use_colour(args.color, sys.stdout)))
        reasons = render_reasons(results)
        if reasons:
            print("\nWhy:\n" + reasons)
    if args.fail_on == "never":
        return EXIT_OK
    threshold = SEVERITY_ORDER[args.fail_on]
    failing = any(SEVERITY_ORDER[f.severity] >= threshold and f.status != STATUS_EXEMPT
                  for r in results for f in r.evaluation.findings)
    return EXIT_FINDINGS if failing else EXIT_OK


def _report_errors(errors: Sequence[InputError]) -> int:
    for err in errors[:50]:
        print(f"nsg-guard: error: {err}", file=sys.stderr)
    if len(errors) > 50:
        print(f"nsg-guard: ... and {len(errors) - 50} more errors", file=sys.stderr)
    print("nsg-guard: no findings printed because the input is invalid; fix the errors above",
          file=sys.stderr)
    return EXIT_BAD_INPUT


def _scan_json_streaming(args: argparse.Namespace, engine: Any, errors: list[InputError], exemptions: Any) -> int:
    """Compact JSON, written as NSGs are evaluated into a spool (memory, then disk) and printed only when the
    whole input was valid: flat memory on big inputs, same bytes and exit codes as the buffered path."""
    import shutil
    import tempfile

    from shared.output import stream_json
    from shared.scan import scan_files

    threshold = None if args.fail_on == "never" else SEVERITY_ORDER[args.fail_on]
    failing = False

    def note(f: Any) -> None:
        nonlocal failing
        if threshold is not None and SEVERITY_ORDER[f.severity] >= threshold and f.status != STATUS_EXEMPT:
            failing = True

    with tempfile.SpooledTemporaryFile(max_size=8 << 20, mode="w+", encoding="utf-8") as spool:
        stream_json(scan_files(args.files, engine, errors, exempt_tag=args.exempt_tag,
                                exemptions=exemptions), spool, note)
        if errors:
            return _report_errors(errors)
        spool.seek(0)
        shutil.copyfileobj(spool, sys.stdout)
        sys.stdout.flush()
    return EXIT_FINDINGS if failing else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except (ConfigError, InputError) as exc:
        print(f"nsg-guard: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `nsg-guard ... | head`: the reader left. Point stdout at devnull so the interpreter's final flush
        # does not fail too, and exit like a process killed by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
