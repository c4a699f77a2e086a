"""``nsg-guard remediate`` (offline planning) and ``nsg-guard restore`` (undo from audit records)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

EXIT_OK, EXIT_PROBLEM, EXIT_BAD_INPUT = 0, 1, 2


def register(sub: Any) -> None:
    """Add the ``remediate`` and ``restore`` subcommands to ``nsg-guard``'s subparsers."""
    from shared.cli import exempt as exempt_cli
    from shared.cli.options import _add_policy_options
    from shared.core.exemptions import DEFAULT_EXEMPT_TAG

    rem = sub.add_parser(
        "remediate", help="plan the revert of internet-exposed ports (offline, never writes)",
        description="Reads NSG JSON like 'scan' and prints exactly the rule writes that REVERT_MODE=enforce "
                    "would make (the same planner), for review. Files are never modified.")
    rem.add_argument("files", nargs="+", metavar="FILE")
    rem.add_argument("--dry-run", action="store_true", required=True,
                     help="required: offline planning only ever plans")
    rem.add_argument("--format", choices=("json", "table"), default="table")
    rem.add_argument("--revert-kinds", default="ssh", metavar="KINDS",
                     help="port kinds to revert: ssh, ssh-custom, management (default: %(default)s)")
    rem.add_argument("--exempt-tag", default=DEFAULT_EXEMPT_TAG, help="exemption tag name (default: %(default)s)")
    rem.add_argument("--strategies", default="insert-deny", metavar="LIST",
                     help="REVERT_STRATEGIES: insert-deny (default, additive only); add narrow,shift to allow "
                          "changing the user's rule")
    rem.add_argument("--max-changes", type=int, default=None, metavar="N",
                     help="REVERT_MAX_CHANGES: over it, one broad deny when exact (default: no limit offline)")
    rem.add_argument("--max-nsgs", default=None, metavar="N",
                     help="REVERT_MAX_NSGS_PER_RUN: plan at most N NSGs, worst first; the rest are listed as held "
                          "(what one enforce run would leave for the next; default: 25, like the app)")
    rem.add_argument("--now", default=None, metavar="TIME",
                     help="evaluate exemption expiry at this ISO 8601 time instead of now")
    _add_policy_options(rem)
    exempt_cli.add_scan_options(rem)  # --exemptions FILE: approved rules are not planned
    rem.set_defaults(handler=_cmd_remediate)

    res = sub.add_parser(
        "restore", help="undo NSG Guard's rule writes from remediation audit records",
        description="Reads remediation rows (JSON lines or a JSON array, e.g. a Log Analytics export) and "
                    "removes the deny rules NSG Guard created or puts back the rules it changed, newest first. "
                    "A rule changed by someone since is left alone unless --force. Talks to Azure with the "
                    "usual settings (NSG_GUARD_AUTH, ARM_ENDPOINT...).")
    res.add_argument("--from", dest="source", required=True, metavar="FILE")
    res.add_argument("--dry-run", action="store_true", help="check and print the steps, write nothing")
    res.add_argument("--force", action="store_true", help="restore even rules changed since NSG Guard wrote them")
    res.add_argument("--row-id", action="append", default=[], metavar="ROWID", help="only these rows (repeatable)")
    res.add_argument("--nsg", default=None, metavar="NSG_ID", help="only this NSG")
    res.add_argument("--format", choices=("json", "table"), default="table")
    res.set_defaults(handler=_cmd_restore)


def plan_files(paths: list[str], engine: Any, scope: Any, exempt_tag: str, now: datetime,
               errors: list[Any], **plan_options: Any) -> list[Any]:
    """Plans for every NSG in the files (the enforce path's planner, exemptions applied)."""
    from shared.app.files import DocumentChecker, load_nsg_document
    from shared.core.errors import InputError
    from shared.core.exemptions import apply_exemptions
    from shared.core.model import parse_nsg
    from shared.core.remediation import plan_revert

    plans = []
    checker = DocumentChecker()  # incomplete input (no rules, one page, the same NSG twice) is an error
    for path in paths:
        try:
            doc = load_nsg_document(path)
        except InputError as exc:
            errors.append(exc.located(source=path))
            continue
        errors.extend(checker.check(doc)[0])
        items = doc.items
        for item in items:
            try:
                nsg = parse_nsg(item, engine.policy.extra_service_tags)
            except InputError as exc:
                errors.append(exc.located(source=path))
                continue
            evaluation = apply_exemptions(engine.evaluate(nsg), exempt_tag, now)
            plan = plan_revert(nsg, evaluation.findings, engine.evaluator, scope,
                               engine.policy.extra_service_tags,
                               lambda n: apply_exemptions(engine.evaluate(n), exempt_tag, now).findings,
                               **plan_options)
            if plan.actions or plan.skipped:
                plans.append(plan)
    return plans


def _cmd_remediate(args: argparse.Namespace) -> int:
    from shared.app.config import max_nsgs_per_run
    from shared.cli import exempt as exempt_cli
    from shared.cli.options import policy_from_args
    from shared.core.errors import ConfigError
    from shared.core.exemptions import exemption_context
    from shared.core.policy import Engine
    from shared.core.remediation import RevertScope

    kinds = tuple(k.strip().lower() for k in args.revert_kinds.split(",") if k.strip())
    bad = [k for k in kinds if k not in ("ssh", "ssh-custom", "management")]
    if bad or not kinds:
        raise ConfigError(f"--revert-kinds: {', '.join(bad) or 'empty'}: expected ssh, ssh-custom, management")
    now = datetime.now(UTC)
    if args.now:
        try:
            now = datetime.fromisoformat(args.now.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"--now {args.now!r} is not an ISO 8601 time") from None
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
    strategies = tuple(x.strip().lower() for x in args.strategies.split(",") if x.strip())
    if not strategies or any(x not in ("insert-deny", "narrow", "shift") for x in strategies):
        raise ConfigError(f"--strategies {args.strategies!r}: expected a comma list of insert-deny, narrow, shift")
    problems: list[str] = []
    max_nsgs = max_nsgs_per_run("" if args.max_nsgs is None else str(args.max_nsgs), problems, "--max-nsgs")
    if problems:
        raise ConfigError(problems[0])
    errors: list[Any] = []
    with exemption_context(exempt_cli.context_from_args(args, now)):
        plans = plan_files(args.files, Engine(policy_from_args(args)), RevertScope(port_kinds=kinds),
                           args.exempt_tag, now, errors, strategies=strategies, max_changes=args.max_changes)
    if errors:
        for err in errors[:50]:
            print(f"nsg-guard: error: {err}", file=sys.stderr)
        print("nsg-guard: no plan printed because the input is invalid; fix the errors above", file=sys.stderr)
        return EXIT_BAD_INPUT
    plans, held, selection = cap_plans(plans, max_nsgs)
    if args.format == "json":
        print(json.dumps({"plans": [p.to_json() for p in plans], "held": held,
                          "blastRadius": selection.to_json()}, indent=2))
        return EXIT_OK
    if not plans and not held:
        print("Nothing to revert.")
    for p in plans:
        print(f"{p.nsg_name} ({p.nsg_id})")
        for a in p.actions:
            props = a.rule["properties"]
            print(f"  {a.op.upper():6} {a.name} (priority {props.get('priority')}, {a.strategy}): {a.reason}")
        for s in p.skipped:
            print(f"  SKIP   {s.rule_name} (port {', '.join(map(str, s.ports))}, {s.code}): {s.reason}")
    for h in held:
        print(f"{h['nsgName']} ({h['nsgId']})")
        print(f"  HELD   #{h['queuePosition']} ({h['severity']}, {len(h['actions'])} write(s)): {h['reason']}")
    return EXIT_OK


def cap_plans(plans: list[Any], cap: int) -> tuple[list[Any], list[dict[str, Any]], Any]:
    """The plans one enforce run would write (input order) and the held ones (worst first), by the same
    per-run selection the sweep uses. Plans that write nothing (only skips) never count against the cap."""
    from shared.core.blastradius import SKIP_HELD, Candidate, select

    selection = select((Candidate(p.nsg_id, tuple(p.targets), p) for p in plans if p.actions), cap)
    held_ids = {c.nsg_id.lower() for c in selection.held}
    held = [{**c.payload.to_json(), "heldBy": SKIP_HELD, "queuePosition": i, "severity": c.severity,
             "reason": selection.reason()} for i, c in enumerate(selection.held, 1)]
    return [p for p in plans if p.nsg_id.lower() not in held_ids], held, selection


def _cmd_restore(args: argparse.Namespace) -> int:
    from shared.app.files import load_rows
    from shared.app.restore import STEP_CONFLICT, STEP_FAILED
    from shared.azure.rulestore import restore_from_file

    load_rows(args.source, kinds=("remediation",))  # a file with no remediation rows is exit 2, not "nothing"
    steps = restore_from_file(args.source, dry_run=args.dry_run, force=args.force, row_ids=args.row_id,
                              nsg_id=args.nsg)
    if args.format == "json":
        print(json.dumps({"dryRun": args.dry_run, "steps": [s.to_json() for s in steps]}, indent=2))
    else:
        if not steps:
            print("No applied NSG Guard changes in the records.")
        for s in steps:
            print(f"{s.status.upper():14} {s.op.upper():6} {s.rule_name} in {s.nsg_id.rsplit('/', 1)[-1]}: "
                  f"{s.reason}" + (f" ({s.message})" if s.message else ""))
            for key, (now, then) in s.diff().items():
                print(f"{'':21}{key}: {json.dumps(now)} -> {json.dumps(then)}")
    return EXIT_PROBLEM if any(s.status in (STEP_CONFLICT, STEP_FAILED) for s in steps) else EXIT_OK
