"""``nsg-guard exempt`` (write a correct Policy exemption) and ``scan --exemptions FILE`` (registered by cli)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.core.errors import InputError
from shared.core.exemptions import ExemptionContext, ExemptionSettings
from shared.core.policyexemptions import (
    DEFAULT_ASSIGNMENT_NAME,
    DEFAULT_MAX_DAYS,
    METADATA_KEY,
    AssignmentMatcher,
    ExemptionIndex,
    iter_exemption_documents,
    rule_fingerprint,
)

EXIT_OK, EXIT_BAD_INPUT = 0, 2
NEEDED_RIGHTS = ("Microsoft.Authorization/policyExemptions/write on the NSG and "
                 "Microsoft.Authorization/policyAssignments/exempt/action on NSG Guard's policy assignment "
                 "(Resource Policy Contributor, Security Admin or Owner; network roles do not have them)")


def _max_days_default() -> int:
    text = os.environ.get("MAX_EXEMPTION_DAYS", "").strip()
    return int(text) if text.isdigit() and 1 <= int(text) <= 365 else DEFAULT_MAX_DAYS


# --- scan --exemptions ------------------------------------------------------------------------------------

def add_scan_options(scan: argparse.ArgumentParser) -> None:
    scan.add_argument("--exemptions", action="append", default=[], metavar="FILE",
                      help="Azure Policy exemptions (Resource Graph policyresources rows or 'az policy exemption "
                           "list' / ARM list output) that may exempt findings; repeatable")
    scan.add_argument("--max-exemption-days", type=int, default=None, metavar="DAYS",
                      help="longest exemption honoured, from creation (default: MAX_EXEMPTION_DAYS or 90)")
    scan.add_argument("--assignment-id", default=os.environ.get("EXEMPTION_ASSIGNMENT_ID") or None,
                      metavar="ID", help="NSG Guard's policy assignment id (default: any assignment named "
                                         f"{DEFAULT_ASSIGNMENT_NAME})")


def context_from_args(args: argparse.Namespace, now: datetime | None = None) -> ExemptionContext:
    """The scan's exemption context: policy exemptions from ``--exemptions`` files; tags never honoured
    (a file has no actor who could be an approver)."""
    from shared.app.files import load_json_file

    now = now or datetime.now(UTC)
    days = args.max_exemption_days if args.max_exemption_days is not None else _max_days_default()
    if not 1 <= days <= 365:
        raise InputError(f"--max-exemption-days {days}: expected 1 to 365")
    settings = ExemptionSettings(max_days=days, assignment=AssignmentMatcher(args.assignment_id),
                                 tag_name=args.exempt_tag)
    index = ExemptionIndex()
    for path in args.exemptions:
        try:
            part = ExemptionIndex.parse(iter_exemption_documents(load_json_file(path)), now=now, max_days=days,
                                        assignment=settings.assignment, strict=True)
        except InputError as exc:
            raise exc.located(source=path) from None
        index.exemptions.extend(part.exemptions)
        index.problems.extend(part.problems)
    return ExemptionContext(settings, index)


# --- nsg-guard exempt -------------------------------------------------------------------------------------

def register(sub: Any) -> None:
    ex = sub.add_parser(
        "exempt", help="approve an exception: create an Azure Policy exemption for NSG rules",
        description="Creates a Policy exemption on the NSG against NSG Guard's assignment, naming the rules and "
                    "the fingerprint of their current content (a rule changed later is no longer exempt). "
                    f"Needs {NEEDED_RIGHTS}. Talks to Azure with the usual settings (NSG_GUARD_AUTH, ARM_ENDPOINT).")
    ex.add_argument("nsg_id", metavar="NSG_ID")
    ex.add_argument("--rule", action="append", required=True, metavar="NAME", help="rule to exempt (repeatable)")
    ex.add_argument("--days", type=int, required=True, help="days until it expires (at most MAX_EXEMPTION_DAYS)")
    ex.add_argument("--ticket", required=True, help="change/ticket id of the approval, e.g. CHG-1234")
    ex.add_argument("--reason", required=True, help="why the exception is needed")
    ex.add_argument("--category", choices=("Waiver", "Mitigated"), default="Waiver")
    ex.add_argument("--assignment-id", default=None, metavar="ID",
                    help="NSG Guard's policy assignment (default: EXEMPTION_ASSIGNMENT_ID, else "
                         f"{DEFAULT_ASSIGNMENT_NAME} at the NSG's subscription)")
    ex.add_argument("--name", default=None, help="exemption name (default: derived from ticket and rules)")
    ex.add_argument("--dry-run", action="store_true", help="print the request, write nothing")
    ex.set_defaults(handler=cmd_exempt)


def _clean(text: str, what: str, limit: int) -> str:
    text = text.strip()
    if not text or len(text) > limit or any(ord(c) < 32 for c in text):
        raise InputError(f"--{what}: expected 1 to {limit} printable characters")
    return text


def exemption_request(nsg: Any, rules: list[str], days: int, ticket: str, reason: str, category: str,
                      assignment_id: str, max_days: int, now: datetime, name: str | None = None
                      ) -> tuple[str, dict[str, Any]]:
    """(name, properties) of the exemption for these rules of ``nsg`` (pure; fingerprints of the rules now)."""
    if not 1 <= days <= max_days:
        raise InputError(f"--days {days}: exemptions last 1 to {max_days} days (MAX_EXEMPTION_DAYS)")
    ticket, reason = _clean(ticket, "ticket", 100), _clean(reason, "reason", 500)
    by_name = {r.name.lower(): r for r in nsg.rules}
    entries = []
    for wanted in dict.fromkeys(r.strip() for r in rules):
        rule = by_name.get(wanted.lower())
        if rule is None:
            raise InputError(f"NSG {nsg.name} has no rule {wanted!r} (rules: "
                             f"{', '.join(r.name for r in nsg.rules) or 'none'})")
        entries.append({"nsgId": nsg.id, "rule": rule.name, "fingerprint": rule_fingerprint(rule)})
    expires = (now + timedelta(days=days)).replace(microsecond=0)
    if name is None:
        digest = hashlib.sha256("|".join([nsg.id.lower(), *sorted(e["rule"].lower() for e in entries)])
                                .encode()).hexdigest()[:10]
        slug = re.sub(r"[^A-Za-z0-9-]+", "-", ticket).strip("-")[:30] or "exemption"
        name = f"nsg-guard-{slug}-{digest}"
    elif not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", name):
        raise InputError(f"--name {name!r}: letters, digits, '.', '_' and '-' only, at most 64 characters")
    rule_names = ", ".join(e["rule"] for e in entries)
    props = {
        "policyAssignmentId": assignment_id,
        "exemptionCategory": category,
        "expiresOn": expires.isoformat().replace("+00:00", "Z"),
        "displayName": f"NSG Guard: {rule_names} on {nsg.name} ({ticket})"[:128],
        "description": reason,
        "metadata": {METADATA_KEY: {"version": 1, "ticket": ticket, "reason": reason, "rules": entries,
                                    "requestedAt": now.replace(microsecond=0).isoformat().replace("+00:00", "Z")}},
    }
    return name, props


def cmd_exempt(args: argparse.Namespace) -> int:
    from shared.app.config import Settings
    from shared.app.events import nsg_of
    from shared.azure.credentials import make_credential
    from shared.azure.network import AzureNetwork
    from shared.azure.policyexemptions import ArmPolicyExemptions
    from shared.core.errors import NsgNotFound

    nsg_of(args.nsg_id, rule=False)  # InputError for anything but an NSG id
    settings = Settings.from_env()
    network = AzureNetwork(settings, make_credential(settings))
    try:
        try:
            nsg = network.get_nsg(args.nsg_id)
        except NsgNotFound:
            raise InputError(f"NSG {args.nsg_id} not found") from None
        sub = nsg.id.split("/")[2]
        assignment = args.assignment_id or settings.exemptions.assignment.assignment_id or \
            f"/subscriptions/{sub}/providers/Microsoft.Authorization/policyAssignments/{DEFAULT_ASSIGNMENT_NAME}"
        name, props = exemption_request(nsg, args.rule, args.days, args.ticket, args.reason, args.category,
                                        assignment, settings.exemptions.max_days, datetime.now(UTC), args.name)
        if args.dry_run:
            print(json.dumps({"dryRun": True, "method": "PUT", "scope": nsg.id, "name": name,
                              "body": {"properties": props}}, indent=2))
            return EXIT_OK
        try:
            created = ArmPolicyExemptions(network).put(nsg.id, name, props)
        except InputError as exc:
            said = " ".join(exc.reason.split())[:600]  # one line, whatever Azure's message looks like
            if "403" in said or "AuthorizationFailed" in said:
                raise InputError(f"not allowed to approve exemptions: creating one needs {NEEDED_RIGHTS}. "
                                 f"Azure said: {said}") from None
            raise InputError(said) from None
    finally:
        network.close()
    system = (created or {}).get("systemData") or {}
    print(json.dumps({"id": (created or {}).get("id"), "expiresOn": props["expiresOn"],
                      "approver": system.get("createdBy"), "rules": props["metadata"][METADATA_KEY]["rules"]},
                     indent=2))
    print(f"nsg-guard: exemption {name} created; it applies from the next event or sweep", file=sys.stderr)
    return EXIT_OK
