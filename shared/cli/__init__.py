"""``nsg-guard`` command line. Subcommands parse options, call a use case, and print; nothing more."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from shared import __version__
from shared.cli import exempt, migrate, remediate, sweep
from shared.cli.options import _add_policy_options, policy_from_args
from shared.core.errors import ConfigError, InputError, TransientError
from shared.core.findings import STATUS_EXEMPT
from shared.core.policy import SEVERITY_ORDER

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
FAIL_ON_CHOICES = (*SEVERITY_ORDER, "never")

# What exit code 1 means per subcommand; 0, 2 and 3 mean the same everywhere (see exit_codes_epilog).
EXIT_ONE = {
    "scan": "a finding at or above --fail-on (exempt findings never count)",
    "remediate": "some plan could not be made or applied",
    "restore": "some step conflicted or failed",
    "sweep": "the sweep finished with failures (listed; the rows it could make were still written)",
    "replay-deadletter": "some events could not be handled",
    "demo": "the demo did not show what it should",
}


def exit_codes_epilog(command: str) -> str:
    one = EXIT_ONE.get(command, "the command ran but did not fully succeed (see its output)")
    return ("exit codes:\n"
            "  0  success\n"
            f"  1  {one}\n"
            "  2  bad input or options: one line on stderr naming the file and what is wrong\n"
            "  3  internal error (a bug in nsg-guard, never reported as 1); NSG_GUARD_DEBUG=1 shows the traceback")


def _document_exit_codes(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Every subcommand's --help ends with the exit codes (also for those other modules register)."""
    for name, parser in sub.choices.items():
        epilog = exit_codes_epilog(name)
        parser.epilog = f"{parser.epilog}\n\n{epilog}" if parser.epilog else epilog
        if parser.formatter_class is argparse.HelpFormatter:
            parser.formatter_class = argparse.RawDescriptionHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nsg-guard",
        description="Keeps SSH and management ports of Azure compute off the open internet.",
        epilog=exit_codes_epilog(""), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"nsg-guard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    scan = sub.add_parser("scan", help="evaluate NSG JSON files and print findings",
                          description="Reads NSG JSON (a single NSG, a list, an ARM {'value': [...]} page, "
                                      "'az network nsg list' output or Resource Graph rows) and prints "
                                      "which rule exposes which port to which sources.")
    scan.add_argument("files", nargs="+", metavar="FILE", help="NSG JSON files; '-' reads standard input")
    scan.add_argument("--format", choices=("table", "json", "sarif"), default="table")
    scan.add_argument("--allow-partial", action="store_true",
                      help="scan a file that is one page of a larger result (nextLink, skip token, "
                           "resultTruncated) with a warning, instead of exit 2")
    scan.add_argument("--limit", type=int, default=20, metavar="N",
                      help="table: list at most N NSGs per severity, then 'and K more' (default: %(default)s; "
                           "0 = all)")
    scan.add_argument("--explain", action="store_true", help="table: add why each finding was raised")
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
    exempt.add_scan_options(scan)
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
    remediate.register(sub)
    sweep.register(sub)
    exempt.register(sub)
    migrate.register(sub)
    _document_exit_codes(sub)
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
    from shared.app.gcpolicy import batch_without_cyclic_gc

    with batch_without_cyclic_gc():  # linear cost on big inputs (shared/app/gcpolicy.py)
        return _scan(args)


def _scan(args: argparse.Namespace) -> int:
    from shared.app.output import render_json, render_sarif, render_table, use_colour
    from shared.app.progress import Progress
    from shared.app.scan import scan_files
    from shared.core.policy import Engine

    if args.files.count("-") > 1:
        raise InputError("'-' (standard input) can be given once")
    engine = Engine(policy_from_args(args))
    errors: list[InputError] = []
    exemptions = exempt.context_from_args(args)
    warnings: list[str] = []
    progress = Progress("NSGs scanned")
    options: dict[str, Any] = {"exempt_tag": args.exempt_tag, "exemptions": exemptions,
                               "allow_partial": args.allow_partial, "warnings": warnings,
                               # no call per NSG when nothing is shown (stderr not a terminal)
                               "progress": (lambda n, src: progress.advance(n, src)) if progress.enabled else None}
    if args.format == "json" and not (args.indent or sys.stdout.isatty()):
        return _scan_json_streaming(args, scan_files(args.files, engine, errors, **options), errors, warnings,
                                    progress)
    results = list(scan_files(args.files, engine, errors, locations=args.format == "sarif", **options))
    progress.done()
    if errors:
        return _report_errors(errors)
    _print_warnings(warnings, nsgs=len(results))
    if args.format == "json":
        print(render_json(results, indent=args.indent or sys.stdout.isatty()))
    elif args.format == "sarif":
        print(render_sarif(results))
    else:
        print(render_table(results, colour=use_colour(args.color, sys.stdout), limit=args.limit,
                           explain=args.explain))
    if args.fail_on == "never":
        return EXIT_OK
    threshold = SEVERITY_ORDER[args.fail_on]
    failing = any(SEVERITY_ORDER.get(f.severity, 0) >= threshold and f.status != STATUS_EXEMPT
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


def _print_warnings(warnings: Sequence[str], nsgs: int) -> None:
    for warning in warnings:
        print(f"nsg-guard: WARNING: {warning}", file=sys.stderr)
    if not nsgs:
        print("nsg-guard: WARNING: the input holds no NSGs: nothing was checked (wrong subscription or an "
              "empty query result?)", file=sys.stderr)


def _scan_json_streaming(args: argparse.Namespace, results: Any, errors: list[InputError], warnings: list[str],
                         progress: Any) -> int:
    """Compact JSON, written as NSGs are evaluated into a spool (memory, then disk) and printed only when the
    whole input was valid: flat memory on big inputs, same bytes and exit codes as the buffered path."""
    import shutil
    import tempfile

    from shared.app.output import stream_json

    threshold = None if args.fail_on == "never" else SEVERITY_ORDER[args.fail_on]
    failing = False
    nsgs = 0

    def note(f: Any) -> None:
        nonlocal failing
        if failing or threshold is None:
            return  # decided: once per finding of the whole scan, so nothing more to look up
        if SEVERITY_ORDER.get(f.severity, 0) >= threshold and f.status != STATUS_EXEMPT:
            failing = True

    def counted(items: Any) -> Any:
        nonlocal nsgs
        for item in items:
            nsgs += 1
            yield item

    with tempfile.SpooledTemporaryFile(max_size=8 << 20, mode="w+", encoding="utf-8") as spool:
        stream_json(counted(results), spool, note)
        progress.done()
        if errors:
            return _report_errors(errors)
        _print_warnings(warnings, nsgs)
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
    except TransientError as exc:  # Azure stayed unavailable after retries: a failure to report, not a bug
        print(f"nsg-guard: failed (transient, retry later): {exc}", file=sys.stderr)
        return EXIT_FINDINGS
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `nsg-guard ... | head`: the reader left. Point stdout at devnull so the interpreter's final flush
        # does not fail too, and exit like a process killed by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:  # the last line of defence: a bug is exit 3, never 1 ("findings")
        if os.environ.get("NSG_GUARD_DEBUG"):
            import traceback  # only on this path: it costs a few ms of every start-up

            traceback.print_exc()
        text = str(exc).splitlines()[0][:300] if str(exc) else ""
        print(f"nsg-guard: internal error ({type(exc).__name__}{': ' + text if text else ''}); this is a bug, "
              "please report it (NSG_GUARD_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_INTERNAL
