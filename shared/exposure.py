"""Pure first-match evaluation of an NSG: which rule lets which public sources reach a TCP port.

Contract: docs/product.md §2. Rules are taken in priority order; for each public source the first rule
that matches decides. A rule's *exposure* is the set of public sources for which it is that first match
and allows. A rule that would expose the port but is entirely shadowed is *latent*.

``AzureCloud`` (and regional forms) is public address space of unknown extent: we cannot intersect it
with CIDRs, so it is tracked symbolically. It stops reaching a port only when a higher-priority rule
names the same tag or covers the whole public space; a partial CIDR deny does not remove it (the
conservative choice for a security tool: it may over-report, never under-report).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from shared.addresses import (
    ALL_V4,
    ALL_V6,
    DEFAULT_PUBLIC,
    KIND_ALL,
    KIND_BROAD_TAG,
    KIND_CIDR,
    KIND_INTERNET,
    AddressSet,
    SourceToken,
    V4Set,
    V6Set,
    parse_cidr,
)
from shared.frozen import fast_constructor
from shared.model import ALLOW, TCP_CAPABLE, Nsg, Rule

INTERNET, BROAD, TRUSTED, NONE = "internet", "broad", "trusted", "none"
EXPOSURE_ORDER = {NONE: 0, TRUSTED: 1, BROAD: 2, INTERNET: 3}
V4_TRUSTED_MAX = 256          # at most this many IPv4 addresses is "trusted"
V6_TRUSTED_MAX = 1 << 80      # at most a /48 of IPv6 is "trusted"


@dataclass(frozen=True, slots=True)
class PublicSources:
    """The public part of a set of sources: concrete addresses plus opaque broad tags (AzureCloud)."""

    addresses: AddressSet = AddressSet()
    tags: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.addresses) or bool(self.tags)


@dataclass(frozen=True, slots=True)
class RuleExposure:
    """What one Allow rule does for one port: its effective exposure and what it would expose alone."""

    rule: Rule
    port: int
    exposed: PublicSources
    potential: PublicSources
    exposure: str
    potential_exposure: str
    shadowed_by: tuple[Rule, ...] = field(default=())
    combined_with: tuple[Rule, ...] = field(default=())

    @property
    def active(self) -> bool:
        return self.exposure != NONE


UNIVERSAL_DESTINATIONS = frozenset({"*", "any", "virtualnetwork"})


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a rule applies, as far as shadowing is concerned.

    NSG Guard reports exposure per source, not per VM, so destinations only decide whether an earlier
    rule shadows a later one. ``*``, ``Any`` and ``VirtualNetwork`` reach every NIC behind the NSG
    (NIC addresses are always inside the VNet's address space): *universal*. Anything else (CIDRs, ASGs,
    other tags) reaches some NICs only; such a rule shadows a later rule only when its destinations
    contain the later rule's (CIDR containment, same tags/ASGs). Partial overlaps never shadow: the engine
    may over-report there, never under-report.
    """

    universal: bool
    addresses: AddressSet = AddressSet()
    opaque: frozenset[str] = frozenset()  # tags and ASG ids, lower-cased

    def covers(self, other: Destination) -> bool:
        if self.universal:
            return True
        if other.universal:
            return False
        return other.opaque <= self.opaque and other.addresses <= self.addresses


UNIVERSAL = Destination(True)


def destination_of(rule: Rule) -> Destination:
    if not rule.destination_asgs and not rule.destination_address_prefixes and \
            (rule.destination_address_prefix or "*").lower() in UNIVERSAL_DESTINATIONS:
        return UNIVERSAL  # the common case, without building anything
    tokens = ((rule.destination_address_prefix,) if rule.destination_address_prefix else ()) + \
        rule.destination_address_prefixes
    if not rule.destination_asgs and (not tokens or any(t.lower() in UNIVERSAL_DESTINATIONS for t in tokens)):
        return UNIVERSAL  # no destination given at all means Azure's default, '*'
    addresses = AddressSet()
    opaque = {a.lower() for a in rule.destination_asgs}
    for token in tokens:
        low = token.lower()
        if low in UNIVERSAL_DESTINATIONS:
            return UNIVERSAL
        if token[0].isdigit() or ":" in token:
            addresses = addresses | parse_cidr(token)
        else:
            opaque.add(low)
    if addresses.v4 == ALL_V4.v4 and addresses.v6 == ALL_V6.v6:
        return UNIVERSAL
    return Destination(False, addresses, frozenset(opaque))


_make_public_sources = fast_constructor(PublicSources)
_Item = tuple[Rule, PublicSources, Destination]  # a relevant rule with its public sources and destination
_make_rule_exposure = fast_constructor(RuleExposure)


class Evaluator:
    """Evaluates NSGs against one public space. Caches per-source-list results across rules and NSGs."""

    def __init__(self, public: AddressSet = DEFAULT_PUBLIC) -> None:
        self.public = public
        self._public_v4 = public.v4.size()
        self._public_v6 = public.v6.size()
        self._cache: dict[tuple[SourceToken, ...], PublicSources] = {}
        self._token_public: dict[str, AddressSet] = {}
        self._dest_cache: dict[tuple[object, ...], Destination] = {}
        self._class_cache: dict[PublicSources, str] = {}
        self._port_hits: dict[tuple[int, ...], dict[object, tuple[int, ...]]] = {}

    # --- sources --------------------------------------------------------------------------------
    def public_sources(self, rule: Rule) -> PublicSources:
        """The public part of a rule's sources (ASGs and ordinary service tags are never public)."""
        key = rule.sources
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        parts: list[AddressSet] = []
        tags: set[str] = set()
        everything = False
        for token in key:
            if token.kind == KIND_ALL or token.kind == KIND_INTERNET:
                everything = True
                break
            if token.kind == KIND_CIDR:
                part = self._token_public.get(token.text)
                if part is None:
                    part = token.addresses & self.public
                    if len(self._token_public) > 16384:
                        self._token_public.clear()
                    self._token_public[token.text] = part
                if part:
                    parts.append(part)
            elif token.kind == KIND_BROAD_TAG:
                tags.add(token.text.lower())
        if everything:
            addresses, tags = self.public, set()
        elif len(parts) == 1:
            addresses = parts[0]
        elif parts:  # one normalization for the whole list instead of one per union
            addresses = AddressSet(V4Set(i for p in parts for i in p.v4.intervals),
                                   V6Set(i for p in parts for i in p.v6.intervals))
        else:
            addresses = AddressSet()
        result = PublicSources(addresses, frozenset(tags))
        if len(self._cache) > 4096:  # bounded: memory stays flat over a 100k-NSG sweep
            self._cache.clear()
        self._cache[key] = result
        return result

    def _potential(self, src: PublicSources) -> str:
        """Class of what a rule would expose alone; cached (the same source lists recur across NSGs)."""
        hit = self._class_cache.get(src)
        if hit is None:
            if len(self._class_cache) > 4096:
                self._class_cache.clear()
            hit = self._class_cache[src] = self.classify(src)
        return hit

    def classify(self, sources: PublicSources) -> str:
        """``internet`` / ``broad`` / ``trusted`` / ``none`` per docs §2.5 (wider family wins)."""
        v4 = sources.addresses.v4.size()
        v6 = sources.addresses.v6.size()
        best = NONE
        if v4:
            best = INTERNET if 2 * v4 >= self._public_v4 else BROAD if v4 > V4_TRUSTED_MAX else TRUSTED
        if v6:
            c6 = INTERNET if 2 * v6 >= self._public_v6 else BROAD if v6 > V6_TRUSTED_MAX else TRUSTED
            best = max(best, c6, key=EXPOSURE_ORDER.__getitem__)
        if sources.tags and EXPOSURE_ORDER[best] < EXPOSURE_ORDER[BROAD]:
            best = BROAD
        return best

    # --- evaluation ----------------------------------------------------------------------------
    def evaluate_port(self, nsg: Nsg, port: int) -> list[RuleExposure]:
        """Every Allow rule that could expose TCP ``port`` to public sources, with its effective part."""
        return self.evaluate(nsg, (port,))[port]

    def evaluate(self, nsg: Nsg, ports: Iterable[int]) -> dict[int, list[RuleExposure]]:
        ports = tuple(ports)
        out: dict[int, list[RuleExposure]] = {p: [] for p in ports}
        # Rules relevant to each port, in order: inbound, TCP-capable, port in range.
        relevant: dict[int, list[_Item]] = {p: [] for p in ports}
        hits_cache = self._port_hits.get(ports)
        if hits_cache is None or len(hits_cache) > 4096:
            hits_cache = self._port_hits[ports] = {}
        for rule in nsg.inbound_rules:
            if rule.protocol not in TCP_CAPABLE:
                continue
            dst = rule.destination_ports
            hits = hits_cache.get(dst)
            if hits is None:
                hits = hits_cache[dst] = tuple(p for p in ports if p in dst)
            if not hits:
                continue
            src = self.public_sources(rule)
            if not src:
                continue  # no public source: it can neither expose nor shadow a public source
            item = (rule, src, self.destination(rule))
            for p in hits:
                relevant[p].append(item)
        # Watched ports often see the very same rules (``*``, ``1-1024``...): evaluate each distinct
        # rule list once and relabel the port.
        memo: dict[tuple[int, ...], list[RuleExposure]] = {}
        for port in ports:
            key = tuple(map(id, relevant[port]))
            done = memo.get(key)
            if done is None:
                out[port] = memo[key] = self._first_match(relevant[port], port)
            else:
                out[port] = [replace(rx, port=port) for rx in done]
        return out

    def destination(self, rule: Rule) -> Destination:
        """Where a rule applies. Cached per destination spelling: estates repeat a handful of them."""
        key = (rule.destination_address_prefix, rule.destination_address_prefixes, rule.destination_asgs)
        hit = self._dest_cache.get(key)
        if hit is None:
            hit = destination_of(rule)
            if len(self._dest_cache) > 4096:
                self._dest_cache.clear()
            self._dest_cache[key] = hit
        return hit

    def _first_match(self, items: list[_Item], port: int) -> list[RuleExposure]:
        # Public sources still undecided for *every* destination: only rules that apply to every destination
        # behind the NSG (``*``, ``Any``, ``VirtualNetwork``) shadow later rules wholesale.
        remaining = self.public
        consumed_tags: set[str] = set()
        public_gone = False  # a higher-priority all-destination rule covered every public address
        earlier: list[_Item] = []
        narrow_earlier: list[tuple[PublicSources, Destination]] = []  # rules for some destinations only
        results: list[RuleExposure] = []
        # Nothing after the last Allow can change any result: stop there.
        last = max((i for i, item in enumerate(items) if item[0].access == ALLOW), default=-1)
        for rule, src, dest in items[: last + 1]:
            if rule.access == ALLOW:
                rem, tags_gone, gone = remaining, consumed_tags, public_gone
                if not dest.universal:
                    # A narrower rule is also shadowed by earlier rules whose destinations contain its own.
                    for s2, d2 in narrow_earlier:
                        if d2.covers(dest):
                            rem = rem - s2.addresses
                            tags_gone = tags_gone | s2.tags
                            gone = gone or s2.addresses == self.public
                exposed_tags = frozenset(
                    t for t in src.tags
                    if not gone and t not in tags_gone and t.split(".")[0] not in tags_gone
                )
                exposed = _make_public_sources(src.addresses & rem, exposed_tags)
                exposure = self.classify(exposed)
                shadowers: tuple[Rule, ...] = ()
                if exposure == NONE:
                    shadowers = tuple(r for r, s, d in earlier if d.covers(dest) and overlaps(s, src))
                results.append(_make_rule_exposure(rule, port, exposed, src, exposure, self._potential(src),
                                                   shadowers, ()))
            if dest.universal:
                remaining = remaining - src.addresses
                consumed_tags |= src.tags
                if not public_gone and src.addresses == self.public:  # src is already within public
                    public_gone = True
            else:
                narrow_earlier.append((src, dest))
            earlier.append((rule, src, dest))
        return self._combine(results)

    def _combine(self, results: list[RuleExposure]) -> list[RuleExposure]:
        """Split ranges (``0.0.0.0/2`` x 4) expose the internet together though no rule does alone.

        When the union of the active rules' exposures is internet-class and no single rule is, every
        broad contributor is reported as ``internet`` and names its partners: removing any one of
        them alone would still leave most of the internet in.
        """
        active = [rx for rx in results if rx.active]
        if len(active) < 2 or any(rx.exposure == INTERNET for rx in active):
            return results
        # The union is at most the sum of the parts: if even that is below half a family, stop here.
        v4 = sum(rx.exposed.addresses.v4.size() for rx in active)
        v6 = sum(rx.exposed.addresses.v6.size() for rx in active)
        if 2 * v4 < self._public_v4 and 2 * v6 < self._public_v6:
            return results
        union = AddressSet()
        for rx in active:
            union = union | rx.exposed.addresses
        if self.classify(PublicSources(union)) != INTERNET:
            return results
        broad = [rx for rx in active if rx.exposure == BROAD]
        out = []
        for rx in results:
            if rx in broad:
                partners = tuple(o.rule for o in broad if o is not rx)
                rx = replace(rx, exposure=INTERNET, combined_with=partners)
            out.append(rx)
        return out


def overlaps(a: PublicSources, b: PublicSources) -> bool:
    if a.addresses.v4 and b.addresses.v4 and not a.addresses.v4.isdisjoint(b.addresses.v4):
        return True
    if a.addresses.v6 and b.addresses.v6 and not a.addresses.v6.isdisjoint(b.addresses.v6):
        return True
    return bool(a.tags & b.tags) or bool(b.tags and a.addresses)
