"""``nsg-guard migrate-ssh``: move SSH off port 22 to the standard port without locking anyone out.

Three steps, always in this order, each recorded as a ``remediation`` row (``Mode == "migrate-ssh"``):

1. **open the new port** from the trusted sources only: an Allow named ``nsg-guard-ssh-<port>``. Sources
   that are ``*``/``Any``/``Internet``, internet-class or broad public ranges are refused before anything is
   written (the seed's "new port open to Any" pitfall);
2. **wait for proof** that SSH answers on the new port: the sshd change is printed (``Port <port>``), then a
   TCP connect to ``HOST:<port>`` must succeed (``--check``), or the operator says so (``--confirm-connected``);
3. **only then close 22**: a Deny ``nsg-guard-deny-ssh-22`` (TCP 22 from ``*``) in front of every Allow that
   covers 22. Port 22 is never closed before step 2 has its proof.

Resumable: the NSG itself is the state (steps 1 and 3 are done when their rule is there), so running the
same command again continues where it stopped. ``nsg-guard restore`` undoes steps 3 then 1 (newest first).
Evaluation uses the one :class:`shared.core.exposure.Evaluator`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # rows, socket and uuid are imported where used: `nsg-guard scan` loads this module's --help
    from shared.app.rows import RowContext
from shared.core.errors import InputError, NsgGuardError
from shared.core.exposure import BROAD, INTERNET, NONE, Evaluator
from shared.core.model import Nsg, parse_nsg

ALLOW_PREFIX = "nsg-guard-ssh-"
DENY_22 = "nsg-guard-deny-ssh-22"
MODE = "migrate-ssh"
MIN_PRIORITY, MAX_PRIORITY = 100, 4096


class RuleStore(Protocol):
    """Read an NSG, write a rule (``shared.azure.rulestore.AzureRuleStore`` in production)."""

    def get_nsg(self, nsg_id: str) -> Nsg: ...
    def put_rule(self, nsg_id: str, body: dict[str, Any]) -> None: ...


def parse_trusted_sources(text: str, evaluator: Evaluator, port: int) -> tuple[str, ...]:
    """``"203.0.113.0/24,198.51.100.7"`` -> the list; InputError for Any/Internet/broad or malformed sources."""
    sources = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not sources:
        raise InputError("--from: give the trusted sources (VPN egress, Bastion subnet), e.g. 203.0.113.0/24")
    for s in sources:
        if s.lower() in ("*", "any", "internet", "0.0.0.0/0", "::/0"):
            raise InputError(f"--from: {s!r} is the whole internet; the new SSH port must be open to trusted "
                             "sources only (the 'new port open to Any' pitfall)")
        if not (s[0].isdigit() or ":" in s):
            raise InputError(f"--from: {s!r} is not an IP address or CIDR range")
    probe = _synthetic_nsg([allow_rule(port, sources, MIN_PRIORITY)])
    (rx,) = evaluator.evaluate(probe, (port,))[port] or (None,)
    exposure = rx.potential_exposure if rx is not None else NONE
    if exposure in (INTERNET, BROAD):
        raise InputError(f"--from: {', '.join(sources)} is {exposure}-class public space; the new SSH port must "
                         "be open to trusted sources only (at most 256 public IPv4 addresses)")
    return sources


def _synthetic_nsg(rules: list[dict[str, Any]]) -> Nsg:
    nsg_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/probe/providers/" \
             "Microsoft.Network/networkSecurityGroups/probe"
    return parse_nsg({"id": nsg_id, "name": "probe",
                      "properties": {"securityRules": [{**r, "id": f"{nsg_id}/securityRules/{r['name']}"}
                                                       for r in rules]}})


def allow_rule(port: int, sources: Sequence[str], priority: int) -> dict[str, Any]:
    props: dict[str, Any] = {"description": f"NSG Guard migrate-ssh: SSH on {port} from trusted sources",
                             "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": str(port),
                             "destinationAddressPrefix": "*", "access": "Allow", "priority": priority,
                             "direction": "Inbound"}
    if len(sources) == 1:
        props["sourceAddressPrefix"] = sources[0]
    else:
        props["sourceAddressPrefixes"] = list(sources)
    return {"name": f"{ALLOW_PREFIX}{port}", "properties": props}


def deny_22_rule(priority: int) -> dict[str, Any]:
    return {"name": DENY_22, "properties": {
        "description": "NSG Guard migrate-ssh: SSH moved to the standard port; 22 closed after proof",
        "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "22", "sourceAddressPrefix": "*",
        "destinationAddressPrefix": "*", "access": "Deny", "priority": priority, "direction": "Inbound"}}


def _inbound_priorities(nsg: Nsg) -> set[int]:
    return {r.priority for r in nsg.rules if r.inbound}


def _find(nsg: Nsg, name: str) -> Any:
    return next((r for r in nsg.rules if r.name.lower() == name.lower()), None)


def allow_priority(nsg: Nsg) -> int:
    """The first free inbound priority from 100: an Allow from trusted sources only may go first."""
    used = _inbound_priorities(nsg)
    for p in range(MIN_PRIORITY, MAX_PRIORITY + 1):
        if p not in used:
            return p
    raise InputError(f"NSG {nsg.name} has no free inbound priority for the new SSH rule")


def deny_priority(nsg: Nsg) -> int | None:
    """A free priority in front of every Allow covering TCP 22; None when nothing allows 22."""
    allows = [r.priority for r in nsg.rules if r.inbound and r.allows and r.carries_tcp and 22 in r.destination_ports]
    if not allows:
        return None
    used = _inbound_priorities(nsg)
    for p in range(min(allows) - 1, MIN_PRIORITY - 1, -1):
        if p not in used:
            return p
    first = min(allows)
    raise InputError(f"NSG {nsg.name}: no free priority in front of the rule at {first} that allows 22; "
                     "renumber it (or remove it) and run again")


def check_tcp(host: str, port: int, timeout: float = 5.0) -> tuple[bool, str]:
    """Can we open a TCP connection to ``host:port``? (sshd answering on the new port is the proof.)"""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, f"TCP connect to {host}:{port} succeeded"
    except OSError as exc:
        return False, f"TCP connect to {host}:{port} failed: {exc.strerror or exc}"


@dataclass
class Step:
    step: int
    action: str  # put | check | confirm
    result: str  # applied | already-done | planned | verified | confirmed | waiting | failed | nothing-to-do
    message: str
    rule: dict[str, Any] | None = None
    port: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Migration:
    nsg_id: str
    to_port: int
    sources: tuple[str, ...]
    steps: list[Step] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return any(s.step == 3 and s.result in ("applied", "already-done", "nothing-to-do") for s in self.steps)


def sshd_instruction(port: int) -> str:
    return (f"On the compute, make sshd listen on {port} as well (keep 22 until step 3): add 'Port 22' and "
            f"'Port {port}' to /etc/ssh/sshd_config, run 'sudo systemctl restart ssh', then connect with "
            f"'ssh -p {port} azureuser@HOST'. After the migration 'Port 22' can go.")


def migrate(nsg_id: str, to_port: int, sources: Sequence[str], store: RuleStore, evaluator: Evaluator, *,
            dry_run: bool = False, check_host: str | None = None, check_port: int | None = None,
            confirmed: bool = False, ctx: RowContext | None = None,
            tcp_check: Callable[[str, int], tuple[bool, str]] = check_tcp,
            clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Migration:
    """Run the three steps (or, with ``dry_run``, plan them). Writes only through ``store``; rows in the result.

    Stops after step 1 without proof (``waiting``) or with a failed check (``failed``): 22 stays as it is.
    """
    if not 1 <= to_port <= 65535 or to_port == 22:
        raise InputError(f"--to-port {to_port}: expected the organisation's SSH port (1-65535, not 22)")
    import uuid

    from shared.app.rows import RowContext

    ctx = ctx or RowContext(trigger="cli", run_id=f"migrate-{uuid.uuid4().hex[:12]}")
    m = Migration(nsg_id, to_port, tuple(sources))
    nsg = store.get_nsg(nsg_id)

    def record(step: Step, current: Nsg) -> None:
        m.steps.append(step)
        m.rows.append(_row(replace(ctx, time=clock()), current, m, step))

    # --- step 1: open the new port to the trusted sources ------------------------------------------------
    existing = _find(nsg, f"{ALLOW_PREFIX}{to_port}")
    if existing is not None:
        if sorted(s.lower() for s in existing.source_texts) != sorted(s.lower() for s in sources):
            raise InputError(f"NSG {nsg.name}: {existing.name} exists with sources {existing.source_texts}; "
                             f"run again with the same --from, or remove that rule first")
        record(Step(1, "put", "already-done", f"{existing.name} already allows TCP {to_port} from "
                                              f"{', '.join(existing.source_texts)}", port=to_port), nsg)
    else:
        body = allow_rule(to_port, sources, allow_priority(nsg))
        if dry_run:
            record(Step(1, "put", "planned", f"would add {body['name']} (priority "
                                             f"{body['properties']['priority']}): TCP {to_port} from "
                                             f"{', '.join(sources)}", body, to_port), nsg)
        else:
            error = _put(store, nsg_id, body)
            if error is not None:
                record(Step(1, "put", "failed", error, body, to_port), nsg)
                return m
            nsg = store.get_nsg(nsg_id)
            if _find(nsg, body["name"]) is None:
                record(Step(1, "put", "failed", f"{body['name']} is not in the NSG after the write", body, to_port),
                       nsg)
                return m
            record(Step(1, "put", "applied", f"added {body['name']} (priority {body['properties']['priority']}): "
                                             f"TCP {to_port} from {', '.join(sources)}", body, to_port,
                        {"newPortExposure": _exposure(evaluator, nsg, to_port)}), nsg)

    # --- step 2: proof that SSH answers on the new port ------------------------------------------------
    instruction = sshd_instruction(to_port)
    if dry_run:
        record(Step(2, "check", "planned", "would wait for proof on the new port. " + instruction, port=to_port),
               nsg)
    elif check_host:
        ok, message = tcp_check(check_host, check_port or to_port)
        record(Step(2, "check", "verified" if ok else "failed", message, port=check_port or to_port,
                    details={"host": check_host, "instruction": instruction}), nsg)
        if not ok:
            return m
    elif confirmed:
        record(Step(2, "confirm", "confirmed", "operator confirmed an SSH session on the new port "
                                               "(--confirm-connected)", port=to_port,
                    details={"instruction": instruction}), nsg)
    else:
        record(Step(2, "check", "waiting", instruction + " Then run this command again with --check HOST or "
                                                          "--confirm-connected: port 22 stays open until then.",
                    port=to_port), nsg)
        return m

    # --- step 3: only now close 22 -----------------------------------------------------------------------
    if _find(nsg, DENY_22) is not None:
        record(Step(3, "put", "already-done", f"{DENY_22} already closes TCP 22", port=22), nsg)
        return m
    priority = deny_priority(nsg)
    if priority is None:
        record(Step(3, "put", "nothing-to-do", "no rule allows TCP 22: nothing to close", port=22), nsg)
        return m
    body = deny_22_rule(priority)
    if dry_run:
        record(Step(3, "put", "planned", f"would add {DENY_22} (priority {priority}) in front of every Allow for "
                                         "TCP 22, after step 2's proof", body, 22), nsg)
        return m
    error = _put(store, nsg_id, body)
    if error is not None:
        record(Step(3, "put", "failed", error + "; port 22 is unchanged", body, 22), nsg)
        return m
    nsg = store.get_nsg(nsg_id)
    after = _exposure(evaluator, nsg, 22)
    result = "applied" if after == NONE else "failed"
    record(Step(3, "put", result, f"added {DENY_22} (priority {priority}): TCP 22 now admits "
                                  f"{'no public source' if after == NONE else after + ' sources'}", body, 22,
                {"port22After": after}), nsg)
    return m


def _put(store: RuleStore, nsg_id: str, body: dict[str, Any]) -> str | None:
    """Write one rule; a failed write is recorded as the step's result, never half-silently dropped."""
    try:
        store.put_rule(nsg_id, body)
    except NsgGuardError as exc:
        return f"writing {body['name']} failed: {exc}"
    return None


def _exposure(evaluator: Evaluator, nsg: Nsg, port: int) -> str:
    worst = NONE
    order = {NONE: 0, "trusted": 1, BROAD: 2, INTERNET: 3}
    for rx in evaluator.evaluate(nsg, (port,))[port]:
        if rx.active and order[rx.exposure] > order[worst]:
            worst = rx.exposure
    return worst


def _row(ctx: RowContext, nsg: Nsg, m: Migration, step: Step) -> dict[str, Any]:
    from shared.app.rows import _base, _nsg_columns, row_id

    rid = row_id(ctx.run_id, "remediation", m.nsg_id, MODE, step.step, step.result)
    row = _base(ctx, "remediation", rid)
    row.update(_nsg_columns(nsg.id, nsg.name, nsg.subscription_id, nsg.resource_group))
    owner = nsg.tag(ctx.owner_tag)
    if owner:
        row["Owner"] = owner
    row.update({"Mode": MODE, "Action": step.action, "Result": step.result, "Reason": step.message})
    if step.port is not None:
        row["Port"] = step.port
    if step.rule is not None:
        row["RuleName"] = step.rule["name"]
        row["RuleId"] = f"{nsg.id}/securityRules/{step.rule['name']}"
        row["RuleBefore"] = None
        row["RuleAfter"] = step.rule
    row["Details"] = {"attempt": 0, "sequence": step.step, "step": step.step, "toPort": m.to_port,
                      "sources": list(m.sources), **step.details}
    return row
