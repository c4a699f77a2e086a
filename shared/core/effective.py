"""Effective exposure (docs/product.md §2, "Effective exposure"): what an NSG's findings mean in place.

Inbound traffic to a NIC passes the subnet's NSG, then the NIC's NSG; both must allow it. From the sweep's
inventory (NSGs with their ``subnets``/``networkInterfaces``, NICs with public IPs) each finding gets:

========================  =====================================================================================
``effective``             meaning and consequence
========================  =====================================================================================
``reachable``             a NIC with a public IP sits behind this NSG and the paired NSG (subnet vs NIC; none =
                          no filter) also lets the finding's sources in. ``effectiveExposure`` is the class of
                          the sources both allow. A ``high`` finding whose effective exposure is ``internet``
                          becomes **critical**.
``blocked-by-pair``       public NICs are behind it, but on every path the paired NSG denies those sources:
                          severity unchanged (one change to the other NSG exposes the port).
``no-public-ip``          attached, but no NIC behind it has a public IP: severity unchanged (load balancers,
                          NAT rules or a firewall may still forward; the sweep cannot see those).
``unattached``            attached to no subnet and no NIC: severity and status unchanged, like every other
                          path (``shared.core.attachment``): the attachment is shown, the answer is not changed.
``unknown``               the NIC inventory or the paired NSG could not be read: severity unchanged.
========================  =====================================================================================

Everything here is pure: the sweep gathers the context, this module decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from shared.core.attachment import attachment_column
from shared.core.exposure import EXPOSURE_ORDER, INTERNET, NONE, Evaluator, PublicSources
from shared.core.findings import STATUS_OPEN, Finding
from shared.core.inventory import AttachmentIndex
from shared.core.model import Nsg
from shared.core.policy import NsgEvaluation

REACHABLE, BLOCKED, NO_PUBLIC_IP, UNATTACHED, UNKNOWN = (
    "reachable", "blocked-by-pair", "no-public-ip", "unattached", "unknown")
PUBLIC = "public"  # NSG-level state: public NICs are behind it
MAX_LISTED = 20  # ids listed per kind in the Attachments column (Log Analytics truncates values over 64 KB)

Allowed = Mapping[int, PublicSources]  # per watched port: the public sources an NSG lets in


@dataclass(frozen=True, slots=True)
class Path:
    """One way in from the internet through the NSG being judged: a public NIC and the other NSG on it."""

    nic_id: str
    subnet_id: str
    via: str  # "nic": this NSG is on the NIC (pair = the subnet's NSG) | "subnet" (pair = the NIC's NSG)
    paired_nsg_id: str | None  # None: no NSG on the other hop (everything passes it)
    paired_known: bool = True  # False: whether the other hop has an NSG is unknown


@dataclass(frozen=True, slots=True)
class NsgExposure:
    """What one NSG lets in, per port and per rule: enough to pair it with another NSG later."""

    allowed: dict[int, PublicSources]
    by_rule: dict[tuple[str, int], PublicSources]


def exposure_of(evaluator: Evaluator, nsg: Nsg, ports: Sequence[int]) -> NsgExposure:
    """Union of the active exposures per port, and each active rule's own exposed sources."""
    allowed: dict[int, PublicSources] = {}
    by_rule: dict[tuple[str, int], PublicSources] = {}
    for port, exposures in evaluator.evaluate(nsg, ports).items():
        union = None
        for rx in exposures:
            if not rx.active:
                continue
            by_rule[(rx.rule.name.lower(), port)] = rx.exposed
            union = rx.exposed if union is None else PublicSources(
                union.addresses | rx.exposed.addresses, union.tags | rx.exposed.tags)
        if union is not None:
            allowed[port] = union
    return NsgExposure(allowed, by_rule)


def public_paths(nsg: Nsg, index: AttachmentIndex, *, inventory_complete: bool) -> tuple[Path, ...]:
    """Every (public NIC, other NSG) pair behind ``nsg``.

    For an NSG on a NIC, the other NSG is the subnet's, known only once every NSG has been streamed:
    pass ``inventory_complete=True`` then (a subnet no NSG claimed has none), False while streaming or after
    a partial inventory (an unclaimed subnet is then unknown).
    """
    paths: list[Path] = []
    for nic_id in nsg.nic_ids:
        nic = index.nic(nic_id)
        if nic is None:
            continue
        for subnet in nic.public_subnets:
            paired = index.subnet_nsg.get(subnet)
            paths.append(Path(nic.id, subnet, "nic", paired, paired is not None or inventory_complete))
    for subnet in nsg.subnet_ids:
        for nic in index.nics_in(subnet):
            paths.append(Path(nic.id, subnet.lower(), "subnet", nic.nsg_id, True))
    return tuple(paths)


def needs_pairing(nsg: Nsg, index: AttachmentIndex) -> bool:
    """True when ``nsg`` has public NICs behind it (its findings wait for the paired NSGs)."""
    return index.available and bool(public_paths(nsg, index, inventory_complete=True))


def is_partner(nsg: Nsg, index: AttachmentIndex) -> bool:
    """True when another NSG's verdict may depend on what ``nsg`` allows (keep its :class:`NsgExposure`)."""
    if not index.available:
        return False
    return index.is_nic_nsg_of_public_nic(nsg.id) or any(index.nics_in(s) for s in nsg.subnet_ids)


def intersect_hops(a: PublicSources, b: PublicSources, everything: Any) -> PublicSources:
    """What passes two NSG hops in a row. Tags (AzureCloud) are opaque: one survives a hop that lets all
    public addresses (``everything``) through, or a hop naming the tag too."""
    tags = a.tags & b.tags
    if b.addresses == everything:
        tags = tags | a.tags
    if a.addresses == everything:
        tags = tags | b.tags
    return PublicSources(a.addresses & b.addresses, tags)


@dataclass(frozen=True, slots=True)
class EffectiveResult:
    evaluation: NsgEvaluation  # findings with severity/status/details adjusted
    attachments: dict[str, Any]  # the row's Attachments column
    state: str  # NSG-level: unattached | no-public-ip | public | unknown


def apply_effective(
    evaluation: NsgEvaluation,
    evaluator: Evaluator,
    *,
    index_available: bool,
    paths: Sequence[Path] = (),
    own: NsgExposure | None = None,
    paired: Callable[[str], Allowed | None] = lambda _id: None,
) -> EffectiveResult:
    """Adjust one NSG's findings for where it is attached (see the module docstring for the rules).

    ``paths`` and ``own`` are only needed when public NICs are behind the NSG; ``paired(nsg_id)`` returns
    what another NSG allows, or None when that NSG was not (successfully) inventoried.
    """
    nsg = evaluation.nsg
    if not nsg.subnet_ids and not nsg.nic_ids:
        state = UNATTACHED
    elif not index_available:
        state = UNKNOWN
    elif not paths:
        state = NO_PUBLIC_IP
    else:
        state = PUBLIC
    pair_view: list[dict[str, Any]] = []
    for path in paths[:MAX_LISTED]:
        allowed = None if not path.paired_known else (
            None if path.paired_nsg_id is None else paired(path.paired_nsg_id))
        entry: dict[str, Any] = {"nic": path.nic_id, "subnet": path.subnet_id, "via": path.via,
                                 "pairedNsg": path.paired_nsg_id}
        if not path.paired_known or (path.paired_nsg_id is not None and allowed is None):
            entry["pairedAllows"] = "unknown"
        elif path.paired_nsg_id is None:
            entry["pairedAllows"] = "everything (no NSG)"
        else:
            assert allowed is not None
            entry["pairedAllows"] = {str(p): evaluator.classify(s) for p, s in sorted(allowed.items())}
        pair_view.append(entry)
    attachments: dict[str, Any] = {
        **attachment_column(nsg), "publicPaths": pair_view, "publicPathCount": len(paths), "effective": state,
    }
    findings = tuple(_judge(f, state, evaluator, paths, own, paired) for f in evaluation.findings)
    if any(f.details.get("effective") == REACHABLE for f in findings):
        attachments["effective"] = REACHABLE
    return EffectiveResult(NsgEvaluation(nsg, findings), attachments, state)


def _judge(f: Finding, state: str, evaluator: Evaluator, paths: Sequence[Path], own: NsgExposure | None,
           paired: Callable[[str], Allowed | None]) -> Finding:
    details = dict(f.details)
    if state == UNATTACHED:
        details["effective"] = UNATTACHED
        return replace(f, details=details)
    if state != PUBLIC or not f.active or own is None:
        details["effective"] = state if state != PUBLIC else UNKNOWN
        return replace(f, details=details)
    exposed = own.by_rule.get((f.rule.name.lower(), f.port))
    best, unknown = NONE, False
    everything = PublicSources(evaluator.public)
    for path in paths:
        if not path.paired_known:
            unknown = True
            continue
        if path.paired_nsg_id is None:
            allowed = everything
        else:
            pair = paired(path.paired_nsg_id)
            if pair is None:
                unknown = True
                continue
            allowed = pair.get(f.port, PublicSources())
        if exposed is None:
            unknown = True
            continue
        cls = evaluator.classify(intersect_hops(exposed, allowed, evaluator.public))
        if EXPOSURE_ORDER[cls] > EXPOSURE_ORDER[best]:
            best = cls
    if best != NONE:
        details.update(effective=REACHABLE, effectiveExposure=best)
        if best == INTERNET and f.severity == "high" and f.status == STATUS_OPEN:
            details["severityBeforeEffective"] = f.severity
            return replace(f, severity="critical", details=details,
                           reason=f"{f.reason}; reachable: a network interface with a public IP is behind it "
                                  "and the paired NSG allows the same sources")
        return replace(f, details=details)
    details["effective"] = UNKNOWN if unknown else BLOCKED
    return replace(f, details=details)
