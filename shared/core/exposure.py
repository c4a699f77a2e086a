"""Pure first-match evaluation of an NSG: which rule lets which public sources reach a TCP port.

Contract: docs/product.md §2. Rules are taken in priority order; for each public source the first rule
that matches decides. A rule's *exposure* is the set of public sources for which it is that first match
and allows. A rule that would expose the port but is entirely shadowed is *latent*.

``AzureCloud`` (and regional forms) is public address space of unknown extent: we cannot intersect it
with CIDRs, so it is tracked symbolically (:mod:`shared.core.tagsets`). It stops reaching a port only where a
higher-priority rule names the same tag (or region) or covers the whole public space; a partial CIDR deny
does not remove it (the conservative choice for a security tool: it may over-report, never under-report).

Source ports (docs/product.md §2.2): the client picks its source port, so a public source is exposed when
*some* source port reaches an Allow first. The evaluator keeps the undecided sources per source-port
piece: a Deny limited to some source ports removes sources from those pieces only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from operator import is_

from shared.core.addresses import (
    ALL_V4,
    ALL_V6,
    DEFAULT_PUBLIC,
    KIND_ALL,
    KIND_BROAD_TAG,
    KIND_CIDR,
    KIND_INTERNET,
    AddressSet,
    V4Set,
    V6Set,
    _make_address_set,
    parse_cidr,
)
from shared.core.frozen import fast_constructor
from shared.core.intervals import normalize
from shared.core.model import ALLOW, TCP_CAPABLE, Nsg, Rule
from shared.core.ports import PortSet
from shared.core.servicetags import PUBLIC_BROAD_TAGS
from shared.core.tagsets import TagSet

INTERNET, BROAD, TRUSTED, NONE = "internet", "broad", "trusted", "none"
EXPOSURE_ORDER = {NONE: 0, TRUSTED: 1, BROAD: 2, INTERNET: 3}
_CLASS_BY_RANK = (NONE, TRUSTED, BROAD, INTERNET)
V4_TRUSTED_MAX = 256          # at most this many IPv4 addresses is "trusted"
V6_TRUSTED_MAX = 1 << 80      # at most a /48 of IPv6 is "trusted"


@dataclass(frozen=True, slots=True)
class PublicSources:
    """The public part of a set of sources: concrete addresses plus opaque broad tags (AzureCloud).

    Tags are a separate, symbolic dimension (:class:`TagSet`): ``| & - <=`` are exact on this
    representation; :func:`overlaps` is the conservative, symmetric "may share an address" test.

    ``by_source_port`` is set only on a rule's *exposure* when it depends on the client's source port: the
    canonical list of (source ports, what those ports expose). Empty means "the same for every source port".
    It takes part in equality, so comparing exposures (the revert planner's exactness check) sees traffic
    that merely moves from one source port range to another.
    """

    addresses: AddressSet = AddressSet()
    tags: TagSet = TagSet()
    by_source_port: tuple[tuple[PortSet, PublicSources], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.addresses) or bool(self.tags)

    def __or__(self, other: PublicSources) -> PublicSources:
        return PublicSources(self.addresses | other.addresses, self.tags | other.tags)

    def __and__(self, other: PublicSources) -> PublicSources:
        return PublicSources(self.addresses & other.addresses, self.tags & other.tags)

    def __sub__(self, other: PublicSources) -> PublicSources:
        return PublicSources(self.addresses - other.addresses, self.tags - other.tags)

    def __le__(self, other: PublicSources) -> bool:
        return self.addresses <= other.addresses and self.tags <= other.tags


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
_NO_TAGS = TagSet()
_ALL_BROAD = TagSet.whole(PUBLIC_BROAD_TAGS)
_ALL_PORTS = PortSet.ALL
_NOTHING = PublicSources()
_NO_ADDRESSES = AddressSet()


def _canonical(parts: list[tuple[PortSet, PublicSources]]) -> tuple[tuple[PortSet, PublicSources], ...]:
    """(source ports, exposure) with equal exposures merged, ordered by port; () when uniform over 0-65535."""
    merged: dict[PublicSources, PortSet] = {}
    for q, part in parts:
        merged[part] = merged[part] | q if part in merged else q
    out = tuple(sorted(((ports, part) for part, ports in merged.items()), key=lambda x: x[0].intervals[0]))
    if len(out) == 1 and out[0][0] == PortSet.ALL:
        return ()
    return out


def _split(pieces: list[tuple[PortSet, PublicSources]], ports: PortSet) -> list[tuple[PortSet, PublicSources]]:
    """Refine the source-port pieces so that each lies inside ``ports`` or outside it."""
    out: list[tuple[PortSet, PublicSources]] = []
    for q, rem in pieces:
        inside, outside = q & ports, q - ports
        if inside and outside:
            out.append((inside, rem))
            out.append((outside, rem))
        else:
            out.append((q, rem))
    return out


_Item = tuple[Rule, PublicSources, Destination]  # a relevant rule with its public sources and destination
_make_rule_exposure = fast_constructor(RuleExposure)


class Evaluator:
    """Evaluates NSGs against one public space. Caches per-source-list results across rules and NSGs."""

    def __init__(self, public: AddressSet = DEFAULT_PUBLIC, *, fast: bool = True) -> None:
        self.public = public
        self.fast = fast  # False: every NSG through the general first-match walk (tests compare the two)
        self._public_v4 = public.v4.size()
        self._public_v6 = public.v6.size()
        self._cache: dict[tuple[str | None, tuple[str, ...]], PublicSources] = {}
        # token text -> (its public part, that part's IPv4 and IPv6 intervals)
        self._token_public: dict[str, tuple[AddressSet, tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]] = {}
        self._dest_cache: dict[tuple[object, ...], Destination] = {}
        self._port_hits: dict[tuple[int, ...], dict[object, tuple[int, ...]]] = {}
        self._everything = PublicSources(public, _ALL_BROAD)  # every public source, broad tags included

    # --- sources --------------------------------------------------------------------------------
    def public_sources(self, rule: Rule) -> PublicSources:
        """The public part of a rule's sources (ASGs and ordinary service tags are never public)."""
        # Keyed by the prefixes as written (C-level string hashing): they determine the public part, whatever
        # extra tags were configured (extra tags only turn unknown names into non-public tags).
        key = (rule.source_address_prefix, rule.source_address_prefixes)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        parts: list[tuple[AddressSet, tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]] = []
        tags: list[str] = []
        everything = False
        token_public = self._token_public
        for token in rule.sources:
            kind = token.kind
            if kind == KIND_CIDR:
                part = token_public.get(token.text)
                if part is None:
                    public_part = token.addresses & self.public
                    part = (public_part, public_part.v4.intervals, public_part.v6.intervals)
                    if len(token_public) > 16384:
                        token_public.clear()
                    token_public[token.text] = part
                if part[1] or part[2]:
                    parts.append(part)
            elif kind in (KIND_ALL, KIND_INTERNET):
                everything = True
                break
            elif kind == KIND_BROAD_TAG:
                tags.append(token.text)
        if everything:
            addresses, tags = self.public, []
        elif len(parts) == 1:
            addresses = parts[0][0]
        elif parts:  # one normalization for the whole list instead of one per union
            v4 = [i for p in parts for i in p[1]]
            v6 = [i for p in parts for i in p[2]]
            addresses = _make_address_set(V4Set._raw(normalize(v4)) if v4 else _NO_ADDRESSES.v4,
                                          V6Set._raw(normalize(v6)) if v6 else _NO_ADDRESSES.v6)
        else:
            addresses = _NO_ADDRESSES
        result = _make_public_sources(addresses, TagSet.of(tags) if tags else _NO_TAGS, ()) \
            if addresses or tags else _NOTHING  # the one empty value: ``evaluate`` tests it by identity
        if len(self._cache) > 4096:  # bounded: memory stays flat over a 100k-NSG sweep
            self._cache.clear()
        self._cache[key] = result
        return result

    def classify(self, sources: PublicSources) -> str:
        """``internet`` / ``broad`` / ``trusted`` / ``none`` per docs §2.5 (wider family wins). Not cached: this
        costs less than hashing a PublicSources for a lookup (0.3 against 1.4 µs)."""
        v4 = sources.addresses.v4.intervals
        v6 = sources.addresses.v6.intervals
        best = 0  # EXPOSURE_ORDER ranks, compared as integers
        if v4:
            n = v4[0][1] - v4[0][0] + 1 if len(v4) == 1 else sum(hi - lo + 1 for lo, hi in v4)
            best = 3 if 2 * n >= self._public_v4 else 2 if n > V4_TRUSTED_MAX else 1
        if v6:
            n = v6[0][1] - v6[0][0] + 1 if len(v6) == 1 else sum(hi - lo + 1 for lo, hi in v6)
            c6 = 3 if 2 * n >= self._public_v6 else 2 if n > V6_TRUSTED_MAX else 1
            if c6 > best:
                best = c6
        if best < 2 and sources.tags.parts:
            best = 2
        return _CLASS_BY_RANK[best]

    # --- evaluation ----------------------------------------------------------------------------
    def evaluate_port(self, nsg: Nsg, port: int) -> list[RuleExposure]:
        """Every Allow rule that could expose TCP ``port`` to public sources, with its effective part."""
        return self.evaluate(nsg, (port,))[port]

    def evaluate(self, nsg: Nsg, ports: Iterable[int]) -> dict[int, list[RuleExposure]]:
        ports = tuple(ports)
        # Rules relevant to each port, in order: inbound, TCP-capable, port in range (ports without any: absent).
        relevant: dict[int, list[_Item]] = {}
        hits_cache = self._port_hits.get(ports)
        if hits_cache is None or len(hits_cache) > 4096:
            hits_cache = self._port_hits[ports] = {}
        source_cache, dest_cache = self._cache, self._dest_cache  # hits looked up here; misses fill them
        simple = True  # every relevant rule applies to all destinations and all source ports
        for rule in nsg.inbound_rules:
            if rule.protocol not in TCP_CAPABLE:
                continue
            dst = rule.destination_ports
            hits = hits_cache.get(dst)
            if hits is None:
                hits = hits_cache[dst] = tuple(p for p in ports if p in dst)
            if not hits:
                continue
            src = source_cache.get((rule.source_address_prefix, rule.source_address_prefixes))
            if src is None:
                src = self.public_sources(rule)
            if src is _NOTHING:
                continue  # no public source: it can neither expose nor shadow a public source
            dest = dest_cache.get((rule.destination_address_prefix, rule.destination_address_prefixes,
                                   rule.destination_asgs))
            if dest is None:
                dest = self.destination(rule)
            if simple and not (dest.universal and (rule.source_ports is _ALL_PORTS or rule.source_ports == _ALL_PORTS)):
                simple = False
            item = (rule, src, dest)
            for p in hits:
                items = relevant.get(p)
                if items is None:
                    relevant[p] = [item]
                else:
                    items.append(item)
        out: dict[int, list[RuleExposure]] = {p: [] for p in ports}
        if not relevant:
            return out
        # Watched ports often see the very same rules (``*``, ``1-1024``...): evaluate each distinct
        # rule list once and relabel the port.
        first_match = self._first_match_simple if simple and self.fast else self._first_match
        memo: list[tuple[list[_Item], list[RuleExposure]]] = []  # (rule list, its exposures) evaluated so far
        for port in ports:
            items = relevant.get(port)
            if items is None:
                continue  # out[port] is already []
            done = None
            for seen, exposures in memo:  # the same items, by identity (compared in C)
                if len(seen) == len(items) and all(map(is_, seen, items)):
                    done = exposures
                    break
            if done is None:
                out[port] = done = first_match(items, port)
                memo.append((items, done))
            else:  # same exposure, other port: one constructor call instead of dataclasses.replace
                out[port] = [_make_rule_exposure(rx.rule, port, rx.exposed, rx.potential, rx.exposure,
                                                 rx.potential_exposure, rx.shadowed_by, rx.combined_with)
                             for rx in done]
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

    def _covered(self, src: PublicSources) -> PublicSources:
        """What a rule with these public sources takes out of the undecided set: all of it, plus every
        broad tag when it covers the whole public space (AzureCloud addresses are public addresses)."""
        a, public = src.addresses, self.public  # a == public without AddressSet.__eq__ (a is within public)
        if a is public or (a.v4.intervals == public.v4.intervals and a.v6.intervals == public.v6.intervals):
            return _make_public_sources(src.addresses, _ALL_BROAD, ())
        return src

    def _first_match(self, items: list[_Item], port: int) -> list[RuleExposure]:
        # Undecided public sources per source-port piece (the pieces partition 0-65535); only rules that
        # apply to every destination behind the NSG (``*``, ``Any``, ``VirtualNetwork``) remove sources.
        everything = self._everything
        pieces: list[tuple[PortSet, PublicSources]] = [(PortSet.ALL, everything)]
        earlier: list[_Item] = []
        narrow_earlier: list[tuple[PublicSources, Destination, PortSet]] = []  # rules for some destinations
        results: list[RuleExposure] = []
        # Nothing after the last Allow can change any result: stop there.
        last = len(items) - 1
        while last >= 0 and items[last][0].access != ALLOW:
            last -= 1
        for index in range(last + 1):
            rule, src, dest = items[index]
            sports = rule.source_ports
            if sports is not _ALL_PORTS and sports != PortSet.ALL:
                pieces = _split(pieces, sports)
                mine = [(q, rem) for q, rem in pieces if q <= sports]
            else:
                mine = pieces
            if rule.access == ALLOW and mine is pieces and len(pieces) == 1 and pieces[0][1] is everything \
                    and not narrow_earlier:
                # Nothing is decided yet (the first relevant rule, all source ports, nothing narrower before): it
                # exposes all of its public sources, which public_sources keeps within ``everything``.
                potential = self.classify(src)
                results.append(_make_rule_exposure(rule, port, src, src, potential, potential,
                                                   self._shadowers(earlier, src, dest, sports) if potential == NONE
                                                   else (), ()))
            elif rule.access == ALLOW:
                exposed = _NOTHING
                parts: list[tuple[PortSet, PublicSources]] = []
                for q, rem in mine:
                    if not dest.universal:
                        # A narrower rule is also shadowed by earlier rules whose destinations contain its own.
                        for s2, d2, p2 in narrow_earlier:
                            if d2.covers(dest) and q <= p2:
                                rem = rem - self._covered(s2)
                    part = _make_public_sources(src.addresses & rem.addresses,
                                                src.tags & rem.tags if src.tags else _NO_TAGS, ())
                    exposed = part if not exposed else exposed | part
                    if part:
                        parts.append((q, part))
                if len(mine) > 1 or mine[0][0] != PortSet.ALL:
                    exposed = _make_public_sources(exposed.addresses, exposed.tags, _canonical(parts))
                exposure = self.classify(exposed)
                shadowers = self._shadowers(earlier, src, dest, sports) if exposure == NONE else ()
                results.append(_make_rule_exposure(rule, port, exposed, src, exposure, self.classify(src),
                                                   shadowers, ()))
            if index == last:
                break  # the last Allow: what it takes out of the undecided sources can change no result
            if dest.universal:
                gone = self._covered(src)
                pieces = [(q, rem - gone) if q <= sports else (q, rem) for q, rem in pieces] \
                    if mine is not pieces else [(q, rem - gone) for q, rem in pieces]
            else:
                narrow_earlier.append((src, dest, sports))
            earlier.append((rule, src, dest))
        return self._combine(results)

    def _first_match_simple(self, items: list[_Item], port: int) -> list[RuleExposure]:
        """``_first_match`` when every rule applies to all destinations and all source ports (most NSGs): one
        undecided set instead of source-port pieces, no narrower rules. Same results, value for value
        (tests/test_exposure_fastpath.py holds it to the general walk)."""
        last = len(items) - 1
        while last >= 0 and items[last][0].access != ALLOW:
            last -= 1
        if last < 0:
            return []
        rule, src, dest = items[0]
        results: list[RuleExposure] = []
        if rule.access == ALLOW:  # nothing is decided yet: it exposes all of its public sources
            potential = self.classify(src)
            results.append(_make_rule_exposure(rule, port, src, src, potential, potential, (), ()))
            if last == 0:
                return results
        # What the rules so far decided. A rule's public sources lie within every public source (``everything``),
        # so ``src & (everything - decided)`` is ``src - decided``: small sets, never the whole public space.
        decided = self._covered(src)
        for index in range(1, last + 1):
            rule, src, dest = items[index]
            if rule.access == ALLOW:
                exposed = _make_public_sources(src.addresses - decided.addresses,
                                               src.tags - decided.tags if src.tags else _NO_TAGS, ())
                exposure = self.classify(exposed)
                shadowers = self._shadowers(items[:index], src, dest, rule.source_ports) if exposure == NONE else ()
                results.append(_make_rule_exposure(rule, port, exposed, src, exposure, self.classify(src),
                                                   shadowers, ()))
            if index == last:
                break  # the last Allow: what it takes out of the undecided sources can change no result
            gone = self._covered(src)
            decided = _make_public_sources(decided.addresses | gone.addresses, decided.tags | gone.tags, ())
        return self._combine(results)

    @staticmethod
    def _shadowers(earlier: list[_Item], src: PublicSources, dest: Destination, sports: PortSet) -> tuple[Rule, ...]:
        """The earlier rules that take a latent rule's sources: same destinations, overlapping sources and ports."""
        return tuple(r for r, s, d in earlier if d.covers(dest) and overlaps(s, src)
                     and not r.source_ports.isdisjoint(sports))

    def _combine(self, results: list[RuleExposure]) -> list[RuleExposure]:
        """Split ranges (``0.0.0.0/2`` x 4) expose the internet together though no rule does alone.

        When the union of the active rules' exposures is internet-class and no single rule is, every
        broad contributor is reported as ``internet`` and names its partners: removing any one of
        them alone would still leave most of the internet in.
        """
        if len(results) < 2:
            return results
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
    """May ``a`` and ``b`` share a public source? Symmetric and conservative: a broad tag (AzureCloud) may
    hold any public address, so it overlaps every non-empty address set, in either order."""
    if a.addresses.v4 and b.addresses.v4 and not a.addresses.v4.isdisjoint(b.addresses.v4):
        return True
    if a.addresses.v6 and b.addresses.v6 and not a.addresses.v6.isdisjoint(b.addresses.v6):
        return True
    if a.tags and b.tags and not a.tags.isdisjoint(b.tags):
        return True
    return bool(b.tags and a.addresses) or bool(a.tags and b.addresses)
