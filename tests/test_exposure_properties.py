"""The engine against a deliberately naive reference, on random NSGs (hypothesis).

The reference walks the rules one by one for concrete (address, source port) pairs using only
``ipaddress`` membership tests and its own list of private ranges. We sample every boundary of every
network and every source-port range involved (±1), so agreement on the samples means the engine's
interval sets are exactly the reference's sets. A source is exposed by rule R when *some* source port
reaches R first and R allows (docs/product.md §2.2).
"""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.core.addresses import NON_PUBLIC_V4
from shared.core.exposure import Evaluator
from shared.core.model import parse_nsg
from tests.nsgfactory import nsg, rule

REF_PRIVATE_V4 = [ipaddress.ip_network(n) for n in NON_PUBLIC_V4]
REF_PUBLIC_V6 = ipaddress.ip_network("2000::/3")
REF_DOC_V6 = ipaddress.ip_network("2001:db8::/32")

POOL = ["*", "Any", "Internet", "VirtualNetwork", "AzureLoadBalancer", "Storage.WestEurope",
        "0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/1", "52.0.0.0/8", "52.174.0.0/16", "52.174.10.16/28",
        "8.8.8.8", "10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.1.0/24", "203.0.113.0/24",
        "224.0.0.0/3", "198.18.0.0/15", "::/0", "2000::/3", "2001:db8::/32", "2a01:111::/32",
        "2a01:111:f00::/48", "fd00::/8", "2001:db8:1::/48"]
PORTS = ["*", "22", "20-25", "3389", "2222", "1-21", "23-65535", "3000-4000"]
PROTOCOLS = ["Tcp", "tcp", "Udp", "*", "Icmp"]
WATCHED = (22, 23, 2222, 3389)
# Source ports: mostly '*', sometimes a client-port subset (the attacker's Deny "sourcePortRange 1").
SOURCE_PORTS = ["*", "*", "*", "1", "0-1023", "1024-65535", "50000", ["1-100", "200-300"], ["22", "1024-2048"],
                "65535", "0"]

random_v4 = st.builds(lambda a, p: str(ipaddress.ip_network((a, p), strict=False)),
                      st.integers(0, 2**32 - 1), st.integers(0, 32))
random_v6 = st.builds(lambda a, p: str(ipaddress.ip_network((a, p), strict=False)),
                      st.integers(0x2000 << 112, (0x4000 << 112) - 1), st.integers(0, 128))
source_token = st.one_of(st.sampled_from(POOL), random_v4, random_v6)


ASG_WEB = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/applicationSecurityGroups/web"
DESTINATIONS = ["*", "VirtualNetwork", "10.0.0.4", "10.0.0.0/24", "10.0.1.0/24", "10.0.0.0/16", "asg",
                ["10.0.0.4", "10.0.1.4"], "Any"]
# The NICs behind the NSG in the reference world: private IPs, one of them in the ASG.
NICS = [("10.0.0.4", True), ("10.0.0.5", False), ("10.0.1.4", False), ("10.1.0.4", False)]


@st.composite
def random_nsgs(draw, with_destinations: bool = False):
    n = draw(st.integers(1, 8))
    priorities = draw(st.lists(st.integers(100, 4096), min_size=n, max_size=n, unique=True))
    rules = []
    for i, prio in enumerate(priorities):
        plural = draw(st.booleans())
        if plural:
            sources = draw(st.lists(st.one_of(random_v4, random_v6, st.sampled_from(POOL[6:])), min_size=1,
                                    max_size=3))
        else:
            sources = draw(source_token)
        ports = draw(st.one_of(st.sampled_from(PORTS), st.lists(st.sampled_from(PORTS[1:]), min_size=1,
                                                                 max_size=3)))
        dest = draw(st.sampled_from(DESTINATIONS)) if with_destinations else "*"
        body = rule(f"r{i}", prio, ports, sources,
                    access=draw(st.sampled_from(["Allow", "Deny", "allow"])),
                    protocol=draw(st.sampled_from(PROTOCOLS)),
                    direction=draw(st.sampled_from(["Inbound", "Inbound", "Outbound"])),
                    **({"dest_asgs": [ASG_WEB]} if dest == "asg" else {"dest": dest}))
        set_source_ports(body, draw(st.sampled_from(SOURCE_PORTS)))
        rules.append(body)
    return nsg(rules, defaults=draw(st.booleans()))


def set_source_ports(body: dict, sports: str | list[str]) -> None:
    """Give a rule body one source-port range, or a list of them (sourcePortRanges)."""
    if isinstance(sports, list):
        del body["properties"]["sourcePortRange"]
        body["properties"]["sourcePortRanges"] = sports
    else:
        body["properties"]["sourcePortRange"] = sports


# --- the reference ---------------------------------------------------------------------------------

def ref_is_public(addr) -> bool:
    if addr.version == 4:
        return not any(addr in net for net in REF_PRIVATE_V4)
    return addr in REF_PUBLIC_V6 and addr not in REF_DOC_V6


def ref_port_in(spec: str, port: int) -> bool:
    if spec == "*":
        return True
    if "-" in spec:
        lo, hi = spec.split("-")
        return int(lo) <= port <= int(hi)
    return int(spec) == port


def ref_source_in(token: str, addr) -> bool:
    low = token.lower()
    if low in ("*", "any"):
        return True
    if low == "internet":
        return ref_is_public(addr)
    if token[0].isdigit() or ":" in token:
        net = ipaddress.ip_network(token, strict=False)
        return net.version == addr.version and addr in net
    return False  # ordinary service tags never contain public addresses in our model


def ref_destination_in(p: dict, nic: tuple[str, bool]) -> bool:
    ip, in_asg = nic
    if p.get("destinationApplicationSecurityGroups"):
        return in_asg
    for token in p.get("destinationAddressPrefixes") or [p.get("destinationAddressPrefix", "*")]:
        if token.lower() in ("*", "any", "virtualnetwork"):  # every NIC is inside the VNet
            return True
        if ipaddress.ip_address(ip) in ipaddress.ip_network(token, strict=False):
            return True
    return False


def ref_first_match(raw_rules: list[dict], addr, port: int, nic: tuple[str, bool] = ("10.0.0.4", True),
                    sport: int | None = None) -> str | None:
    """Name of the rule that decides (addr:sport -> nic, TCP port), or None when nothing matches."""
    ordered = sorted(raw_rules, key=lambda r: r["properties"]["priority"])
    for r in ordered:
        p = r["properties"]
        if p["direction"] != "Inbound" or p["protocol"].lower() not in ("tcp", "*"):
            continue
        if sport is not None and not any(ref_port_in(s, sport)
                                         for s in p.get("sourcePortRanges") or [p.get("sourcePortRange", "*")]):
            continue
        if not ref_destination_in(p, nic):
            continue
        ports = p["destinationPortRanges"] or [p["destinationPortRange"]]
        if not any(ref_port_in(s, port) for s in ports):
            continue
        sources = p["sourceAddressPrefixes"] or [p["sourceAddressPrefix"]]
        if any(ref_source_in(s, addr) for s in sources):
            return r["name"] if p["access"].lower() == "allow" else f"deny:{r['name']}"
    return None


def sample_addresses(raw_rules: list[dict]) -> list:
    nets = []
    for r in raw_rules:
        p = r["properties"]
        for s in p["sourceAddressPrefixes"] or [p["sourceAddressPrefix"]]:
            if s[0].isdigit() or ":" in s:
                nets.append(ipaddress.ip_network(s, strict=False))
    return boundary_addresses(nets)


def boundary_addresses(extra_nets: list) -> list:
    """Every boundary (±1) of the given networks and of the public/private space: where sets can change."""
    nets = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"), REF_PUBLIC_V6, REF_DOC_V6,
            *REF_PRIVATE_V4, *extra_nets]
    out = set()
    for net in nets:
        top = 2**32 - 1 if net.version == 4 else 2**128 - 1
        cls = ipaddress.IPv4Address if net.version == 4 else ipaddress.IPv6Address
        for v in (int(net.network_address) - 1, int(net.network_address), int(net.broadcast_address),
                  int(net.broadcast_address) + 1):
            if 0 <= v <= top:
                out.add(cls(v))
    return sorted(out, key=lambda a: (a.version, int(a)))


def sample_source_ports(raw_rules: list[dict]) -> list[int]:
    """Every boundary (±1) of every source-port range: where the first match can change."""
    out = {0, 65535}
    for r in raw_rules:
        p = r["properties"]
        for spec in p.get("sourcePortRanges") or [p.get("sourcePortRange", "*")]:
            if spec == "*":
                continue
            lo, _, hi = spec.partition("-")
            for v in (int(lo) - 1, int(lo), int(hi or lo), int(hi or lo) + 1):
                if 0 <= v <= 65535:
                    out.add(v)
    return sorted(out)


def ref_exposers(raw_rules: list[dict], addr, port: int, sports: list[int],
                 nic: tuple[str, bool] = ("10.0.0.4", True)) -> set[str]:
    """Rules that some source port of ``addr`` reaches first, and that allow."""
    deciders = {ref_first_match(raw_rules, addr, port, nic, s) for s in sports}
    return {d for d in deciders if d and not d.startswith("deny:")}


EVALUATOR = Evaluator()


def evaluate_with_samples(doc: dict) -> tuple[list[dict], list, dict]:
    """The raw rules, the public sample addresses, and the engine's result per watched port."""
    raw_rules = doc["properties"]["securityRules"]
    samples = [a for a in sample_addresses(raw_rules) if ref_is_public(a)]
    return raw_rules, samples, EVALUATOR.evaluate(parse_nsg(doc), WATCHED)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_nsgs())
def test_engine_matches_reference(doc):
    raw_rules, samples, results = evaluate_with_samples(doc)
    sports = sample_source_ports(raw_rules)
    for port in WATCHED:
        by_rule = {rx.rule.name: rx for rx in results[port]}
        for addr in samples:
            expected = ref_exposers(raw_rules, addr, port, sports)
            exposing = {name for name, rx in by_rule.items() if addr in rx.exposed.addresses}
            assert exposing == expected, (port, str(addr), expected, exposing)
            # what a rule would expose on its own: every public address it matches
            for name, rx in by_rule.items():
                raw = next(r for r in raw_rules if r["name"] == name)
                alone = ref_first_match([raw], addr, port) == name
                assert (addr in rx.potential.addresses) == alone, (port, str(addr), name)
        # latent <=> would expose something, exposes nothing
        for rx in results[port]:
            assert rx.active == bool(rx.exposed.addresses)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_nsgs(with_destinations=True))
def test_engine_never_under_reports_with_destinations(doc):
    """With rules aimed at some VMs only, the engine may over-report (partial overlaps never shadow) but
    every (source, VM) the reference lets in through rule R must show up in R's exposure."""
    raw_rules, samples, results = evaluate_with_samples(doc)
    sports = sample_source_ports(raw_rules)
    for port in WATCHED:
        by_rule = {rx.rule.name: rx for rx in results[port]}
        for addr in samples:
            for nic in NICS:
                for decider in ref_exposers(raw_rules, addr, port, sports, nic):
                    assert decider in by_rule and addr in by_rule[decider].exposed.addresses, \
                        (port, str(addr), nic, decider)
