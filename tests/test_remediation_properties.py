"""The revert planner against a brute-force reference, on thousands of random (Azure-valid) NSGs.

The reference applies the plan to the raw ARM JSON and decides every sampled packet — (source, protocol,
destination port, destination address, source port) — by first match over the raw rules before and after.
Sources are concrete addresses (every boundary ±1 of every CIDR involved, public and private) plus symbols
for what no CIDR names: service tags and application security groups. The precise guarantee checked:

    allowed_after == allowed_before - {packets decided by a planned rule R : public source, TCP, port planned for R}

which is (a) the targeted ports are closed to the public sources of the offending rules, (b) nothing new is
allowed, and (c) no collateral: every other packet keeps its verdict. Plus: bodies pass the stand-in's ARM
validation, priorities stay unique in 100-4096, names <= 80 chars, a second plan on the result is empty
(redelivery/own-write events plan nothing) and a target is only skipped when there was no room before it.
"""

from __future__ import annotations

import copy
import ipaddress
from datetime import UTC, datetime
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localazure.validation import validate_rule
from shared.core.exemptions import apply_exemptions
from shared.core.model import parse_nsg
from shared.core.policy import Engine, Policy, watched_ports
from shared.core.remediation import (
    KNOWN_STRATEGIES,
    OP_DELETE,
    OP_PUT,
    SKIP_NO_SAFE_CHANGE,
    RevertScope,
    is_jit_rule,
    is_own_rule,
    plan_revert,
)
from tests.nsgfactory import nsg, rule
from tests.test_exposure_properties import REF_DOC_V6, REF_PRIVATE_V4, REF_PUBLIC_V6, boundary_addresses, ref_is_public

ENGINE = Engine(Policy(watched=watched_ports((2222,), (3389, 23))))
WATCHED = (22, 23, 2222, 3389)
NOW = datetime(2025, 6, 1, tzinfo=UTC)

TAGS = ["VirtualNetwork", "AzureLoadBalancer", "Storage.WestEurope", "AzureCloud"]
BROAD_TAGS = {"azurecloud"}
SINGLE_POOL = ["*", "Internet", *TAGS, "0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/1", "52.0.0.0/8",
               "8.8.8.8", "10.0.0.0/8", "192.168.1.0/24", "::/0", "2000::/3", "2a01:111::/32"]
CIDR_POOL = ["0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/1", "52.0.0.0/8", "52.174.10.16/28", "8.8.8.8",
             "10.0.0.0/8", "172.16.0.0/12", "100.64.0.0/10", "203.0.113.0/24", "::/0", "2000::/3", "fd00::/8"]
PORT_TOKENS = ["22", "20-25", "3389", "2222", "1-21", "23-65535", "3000-4000", "80", "443"]
DESTS = ["*", "10.0.0.4", "10.0.1.0/24", "VirtualNetwork"]
ASG = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/applicationSecurityGroups/web"

random_v4 = st.builds(lambda a, p: str(ipaddress.ip_network((a, p), strict=False)),
                      st.integers(0, 2**32 - 1), st.integers(0, 32))
random_v6 = st.builds(lambda a, p: str(ipaddress.ip_network((a, p), strict=False)),
                      st.integers(0x2000 << 112, (0x4000 << 112) - 1), st.integers(0, 128))


@st.composite
def random_case(draw):
    n = draw(st.integers(1, 7))
    # Dense priorities near 100 and near each other: no room before a rule happens often.
    base = draw(st.sampled_from([100, 100, 200, 4090]))
    priorities = draw(st.lists(st.integers(base, min(base + 12, 4096)), min_size=n, max_size=n, unique=True))
    rules = []
    for i, prio in enumerate(priorities):
        kind = draw(st.sampled_from(["single", "single", "plural", "asg"]))
        name = f"SecurityCenter-JITRule-{i}-x" if draw(st.integers(0, 9)) == 0 else f"r{i}"
        ports = draw(st.one_of(st.sampled_from(["22", "22", *PORT_TOKENS, "*"]),
                               st.lists(st.sampled_from(PORT_TOKENS), min_size=1, max_size=3, unique=True)))
        source = (draw(st.sampled_from(SINGLE_POOL)) if kind == "single" else
                  draw(st.lists(st.one_of(random_v4, random_v6, st.sampled_from(CIDR_POOL)), min_size=1,
                                max_size=3, unique=True)) if kind == "plural" else "*")
        r = rule(name, prio, ports, source, access=draw(st.sampled_from(["Allow", "Allow", "Allow", "Deny"])),
                 protocol=draw(st.sampled_from(["Tcp", "Tcp", "Tcp", "*", "Udp", "Icmp"])),
                 direction=draw(st.sampled_from(["Inbound", "Inbound", "Inbound", "Outbound"])),
                 asgs=[ASG] if kind == "asg" else None)
        r["properties"]["destinationAddressPrefix"] = draw(st.sampled_from(DESTS))
        if draw(st.integers(0, 5)) == 0:
            r["properties"]["sourcePortRange"] = "1024-65535"
        rules.append(r)
    tags = {}
    if draw(st.integers(0, 4)) == 0:
        tags["nsg-guard-exempt"] = (f"rules={draw(st.sampled_from(['r0', 'r1', '*']))}; ticket=T-1; "
                                    f"expires={draw(st.sampled_from(['2020-01-01', '2999-01-01']))}")
    kinds = draw(st.lists(st.sampled_from(["ssh", "ssh-custom", "management"]), min_size=1, max_size=3,
                          unique=True))
    return nsg(rules, tags=tags, defaults=draw(st.booleans())), tuple(kinds)


# --- the reference -----------------------------------------------------------------------------------

def _is_cidr(token: str) -> bool:
    return token[0].isdigit() or ":" in token


@cache
def _net(token: str):
    return ipaddress.ip_network(token, strict=False)


def ref_sources(raw: list[dict]) -> list:
    """Concrete addresses at every CIDR boundary (±1) plus one symbol per tag and the ASG."""
    nets = []
    for r in raw:
        p = r["properties"]
        for s in p.get("sourceAddressPrefixes") or [p.get("sourceAddressPrefix") or "*"]:
            if _is_cidr(s):
                nets.append(_net(s))
    out = boundary_addresses(nets)
    return out + [f"tag:{t.lower()}" for t in TAGS] + ["asg:web"]


def ref_public(sample) -> bool:
    if isinstance(sample, str):
        return sample.removeprefix("tag:") in BROAD_TAGS
    return ref_is_public(sample)


def _merge(pairs) -> list[tuple[int, int]]:
    """Sorted, merged integer intervals."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(pairs):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _intervals(nets) -> list[tuple[int, int]]:
    return _merge((int(n.network_address), int(n.broadcast_address)) for n in nets)


def _within(lo: int, hi: int, intervals: list[tuple[int, int]]) -> bool:
    return any(a <= lo and hi <= b for a, b in intervals)


def _gaps(intervals: list[tuple[int, int]], top: int) -> list[tuple[int, int]]:
    gaps, cursor = [], 0
    for lo, hi in intervals:
        if lo > cursor:
            gaps.append((cursor, lo - 1))
        cursor = max(cursor, hi + 1)
    return gaps + ([(cursor, top)] if cursor <= top else [])


@cache
def ref_covers_public(tokens: tuple[str, ...]) -> bool:
    """Whether CIDR tokens hold every public address (docs/semantics.md: AzureCloud is public address space of
    unknown extent, so only a list covering the whole public space is sure to contain it). Brute force on
    integer intervals: every gap the tokens leave must lie inside the non-public space."""
    nets = [_net(t) for t in tokens if _is_cidr(t)]
    private_v4 = _intervals(REF_PRIVATE_V4)
    not_public_v6 = _merge(_gaps(_intervals([REF_PUBLIC_V6]), 2**128 - 1) + _intervals([REF_DOC_V6]))
    for version, top, outside in ((4, 2**32 - 1, private_v4), (6, 2**128 - 1, not_public_v6)):
        covered = _intervals(n for n in nets if n.version == version)
        if not all(_within(lo, hi, outside) for lo, hi in _gaps(covered, top)):
            return False
    return True


def ref_source_match(props: dict, sample) -> bool:
    asgs = props.get("sourceApplicationSecurityGroups") or []
    if asgs:
        return sample == "asg:web"
    tokens = props.get("sourceAddressPrefixes") or [props.get("sourceAddressPrefix")]
    if isinstance(sample, str) and sample.removeprefix("tag:") in BROAD_TAGS and ref_covers_public(tuple(tokens)):
        return True  # a CIDR list that holds every public address holds AzureCloud's
    for token in tokens:
        low = token.lower()
        if low in ("*", "any"):
            return True
        if isinstance(sample, str):
            if low == "internet" and sample.removeprefix("tag:") in BROAD_TAGS:
                return True
            if not _is_cidr(token) and sample == f"tag:{low}":
                return True
            continue
        if low == "internet" and ref_is_public(sample):
            return True
        if _is_cidr(token):
            net = _net(token)
            if net.version == sample.version and sample in net:
                return True
    return False


def _in_ports(tokens: list[str], port: int) -> bool:
    for t in tokens:
        if t == "*":
            return True
        lo, _, hi = t.partition("-")
        if int(lo) <= port <= int(hi or lo):
            return True
    return False


DEST_SAMPLES = ["10.0.0.4", "10.0.1.9", "10.0.2.1"]


def _dest_match(props: dict, dest: str) -> bool:
    tokens = props.get("destinationAddressPrefixes") or [props.get("destinationAddressPrefix", "*")]
    return any(t in ("*", "VirtualNetwork") or (_is_cidr(t) and _net(dest).network_address in _net(t))
               for t in tokens)


def verdicts(raw: list[dict], samples: list, combos: list[tuple[str, int, str, int]]):
    """{combo: (allowed bitmask over samples, {rule name: bitmask it decided})}."""
    inbound = sorted((r for r in raw if r["properties"]["direction"] == "Inbound"),
                     key=lambda r: r["properties"]["priority"])
    src_masks = []
    for r in inbound:
        mask = 0
        for i, s in enumerate(samples):
            if ref_source_match(r["properties"], s):
                mask |= 1 << i
        src_masks.append(mask)
    everyone = (1 << len(samples)) - 1
    out = {}
    for combo in combos:
        proto, port, dest, sport = combo
        remaining, allowed, decided = everyone, 0, {}
        for r, smask in zip(inbound, src_masks, strict=True):
            p = r["properties"]
            if p["protocol"] not in ("*", proto):
                continue
            if not _in_ports(p.get("destinationPortRanges") or [p.get("destinationPortRange")], port):
                continue
            if not _in_ports(p.get("sourcePortRanges") or [p.get("sourcePortRange", "*")], sport):
                continue
            if not _dest_match(p, dest):
                continue
            hit = remaining & smask
            if hit:
                decided[r["name"].lower()] = hit
                if p["access"] == "Allow":
                    allowed |= hit
                remaining &= ~hit
        out[combo] = (allowed, decided)
    return out


def apply_json(doc: dict, actions) -> dict:
    after = copy.deepcopy(doc)
    rules = after["properties"]["securityRules"]
    for a in actions:
        at = next((i for i, r in enumerate(rules) if r["name"].lower() == a.name.lower()), None)
        if a.op == OP_DELETE:
            del rules[at]
        else:
            body = {"name": a.name, "properties": copy.deepcopy(a.rule["properties"])}
            if at is None:
                rules.append(body)
            else:
                rules[at] = body
    return after


def _ports_of(raw: list[dict]) -> list[int]:
    ports = set(WATCHED) | {0, 80, 443, 65535}
    for r in raw:
        p = r["properties"]
        for t in p.get("destinationPortRanges") or [p.get("destinationPortRange")]:
            if t != "*":
                lo, _, hi = t.partition("-")
                for v in (int(lo) - 1, int(lo), int(hi or lo), int(hi or lo) + 1):
                    if 0 <= v <= 65535:
                        ports.add(v)
    return sorted(ports)


def before_nsg_rule(nsg, name):
    return next(r for r in nsg.rules if r.name.lower() == name.lower())


def _reevaluate(nsg):
    return apply_exemptions(ENGINE.evaluate(nsg), now=NOW).findings


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_case())
def test_plan_removes_exactly_the_targeted_internet_exposure(case):
    check_plan(case, additive=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_case())
def test_opt_in_strategies_remove_exactly_the_targeted_internet_exposure(case):
    check_plan(case, strategies=KNOWN_STRATEGIES)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_case())
def test_broad_deny_over_the_blast_radius_removes_exactly_the_targeted_internet_exposure(case):
    check_plan(case, max_changes=1, additive=True)


def check_plan(case, additive: bool = False, **options):
    doc, kinds = case
    scope = RevertScope(port_kinds=kinds)
    before_nsg = parse_nsg(doc)
    evaluation = apply_exemptions(ENGINE.evaluate(before_nsg), now=NOW)
    plan = plan_revert(before_nsg, evaluation.findings, ENGINE.evaluator, scope, reevaluate=_reevaluate, **options)

    # Structure: valid ARM bodies, valid NSG afterwards (strict parser: unique names/priorities per direction).
    for a in plan.actions:
        if a.op != OP_DELETE:
            validate_rule(f"{doc['id']}/securityRules/{a.name}", a.name, a.rule["properties"])
            assert 100 <= a.rule["properties"]["priority"] <= 4096 and len(a.name) <= 80
        assert a.replaces is not None or a.op != OP_DELETE
        offending = next((r for r in before_nsg.rules if r.name == a.offending_rule), None)
        assert offending is None or not is_jit_rule(offending, ENGINE.evaluator)  # JIT by content
        if additive:  # the default only adds our rules or removes our own
            assert (a.op == OP_PUT and a.replaces is None) or is_own_rule(before_nsg_rule(before_nsg, a.name))
    after_doc = apply_json(doc, plan.actions)
    after_nsg = parse_nsg(after_doc)

    # Every target is either planned or skipped; skipped ones only when there was no room before them.
    targets = {f.finding_id for f in plan.targets}
    assert {f.finding_id for f in scope.targets(evaluation.findings)} <= targets
    acted = {fid for a in plan.actions for fid in a.finding_ids}  # one deny may cover several rules
    planned = {(a.offending_rule.lower(), p) for a in plan.actions for p in a.ports} | {
        (f.rule.name.lower(), f.port) for f in plan.targets if f.finding_id in acted}
    covered = {fid for a in plan.actions for fid in a.finding_ids} | {fid for s in plan.skipped
                                                                      for fid in s.finding_ids}
    assert covered == targets
    # (Checked on the result: a higher-priority rule's shift may legitimately have taken the slot first.)
    inbound_prios = {r.priority for r in after_nsg.rules if r.inbound}
    for s in plan.skipped:
        if s.code == SKIP_NO_SAFE_CHANGE:
            r = next(r for r in after_nsg.rules if r.name == s.rule_name)
            assert r.priority == 100 or (r.priority - 1) in inbound_prios, s

    # The guarantee, packet by packet.
    raw_before = doc["properties"]["securityRules"]
    raw_after = after_doc["properties"]["securityRules"]
    samples = ref_sources(raw_before + raw_after)
    public_mask = sum(1 << i for i, s in enumerate(samples) if ref_public(s))
    combos = [(proto, port, dest, sport) for proto in ("Tcp", "Udp") for port in _ports_of(raw_before + raw_after)
              for dest in DEST_SAMPLES for sport in (80, 50000)]
    before = verdicts(raw_before, samples, combos)
    after = verdicts(raw_after, samples, combos)
    for combo in combos:
        proto, port, _, _ = combo
        allowed_before, decided = before[combo]
        removed = 0
        if proto == "Tcp":
            for name, mask in decided.items():
                if (name, port) in planned:
                    removed |= mask & public_mask
        assert after[combo][0] == allowed_before & ~removed, (combo, plan.to_json())

    # Loop-free: the NSG after our writes plans nothing more (our own write's event, or a redelivery).
    again = apply_exemptions(ENGINE.evaluate(after_nsg), now=NOW)
    assert plan_revert(after_nsg, again.findings, ENGINE.evaluator, scope, reevaluate=_reevaluate,
                       **options).actions == ()
    remaining = {f.finding_id for f in scope.targets(again.findings)}
    assert remaining <= {fid for s in plan.skipped for fid in s.finding_ids}
