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
    DEFAULT_PUBLIC,
    KIND_ALL,
    KIND_BROAD_TAG,
    KIND_CIDR,
    KIND_INTERNET,
    AddressSet,
    SourceToken,
)
from shared.frozen import fast_constructor
from shared.model import Nsg, Rule

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


_make_public_sources = fast_constructor(PublicSources)
_make_rule_exposure = fast_constructor(RuleExposure)


class Evaluator:
    """Evaluates NSGs against one public space. Caches per-source-list results across rules and NSGs."""

    def __init__(self, public: AddressSet = DEFAULT_PUBLIC) -> None:
        self.public = public
        self._public_v4 = public.v4.size()
        self._public_v6 = public.v6.size()
        self._cache: dict[tuple[SourceToken, ...], PublicSources] = {}
        self._token_public: dict[str, AddressSet] = {}
        self._port_hits: dict[tuple[object, tuple[int, ...]], tuple[int, ...]] = {}

    # --- sources --------------------------------------------------------------------------------
    def public_sources(self, rule: Rule) -> PublicSources:
        """The public part of a rule's sources (ASGs and ordinary service tags are never public)."""
        key = rule.sources
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        addresses = AddressSet()
        tags: set[str] = set()
        for token in key:
            if token.kind == KIND_ALL or token.kind == KIND_INTERNET:
                addresses = self.public
                tags.clear()
                break
            if token.kind == KIND_CIDR:
                part = self._token_public.get(token.text)
                if part is None:
                    part = token.addresses & self.public
                    if len(self._token_public) > 16384:
                        self._token_public.clear()
                    self._token_public[token.text] = part
                addresses = addresses | part if addresses else part
            elif token.kind == KIND_BROAD_TAG:
                tags.add(token.text.lower())
        result = PublicSources(addresses, frozenset(tags))
        if len(self._cache) > 4096:  # bounded: memory stays flat over a 100k-NSG sweep
            self._cache.clear()
        self._cache[key] = result
        return result

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
        relevant: dict[int, list[Rule]] = {p: [] for p in ports}
        hits_cache = self._port_hits
        for rule in nsg.inbound_rules:
            if not rule.carries_tcp:
                continue
            dst = rule.destination_ports
            hits = hits_cache.get((dst, ports))
            if hits is None:
                hits = tuple(p for p in ports if p in dst)
                if len(hits_cache) > 4096:
                    hits_cache.clear()
                hits_cache[(dst, ports)] = hits
            for p in hits:
                relevant[p].append(rule)
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

    def _first_match(self, rules: list[Rule], port: int) -> list[RuleExposure]:
        remaining = self.public
        consumed_tags: set[str] = set()
        public_gone = False  # a higher-priority rule covered every public address
        earlier: list[tuple[Rule, PublicSources]] = []
        results: list[RuleExposure] = []
        sources = [self.public_sources(rule) for rule in rules]
        # Nothing after the last Allow with public sources can change any result: stop there.
        last = max((i for i, rule in enumerate(rules) if rule.allows and sources[i]), default=-1)
        for rule, src in zip(rules[: last + 1], sources, strict=False):
            if rule.allows and src:
                exposed_tags = frozenset(
                    t for t in src.tags
                    if not public_gone and t not in consumed_tags and t.split(".")[0] not in consumed_tags
                )
                exposed = _make_public_sources(src.addresses & remaining, exposed_tags)
                exposure = self.classify(exposed)
                shadowers: tuple[Rule, ...] = ()
                if exposure == NONE:
                    shadowers = tuple(r for r, s in earlier if _overlaps(s, src))
                results.append(_make_rule_exposure(rule, port, exposed, src, exposure, self.classify(src),
                                                   shadowers, ()))
            if src:
                remaining = remaining - src.addresses
                consumed_tags |= src.tags
                if not public_gone and src.addresses == self.public:  # src is already within public
                    public_gone = True
                earlier.append((rule, src))
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


def _overlaps(a: PublicSources, b: PublicSources) -> bool:
    if a.addresses.v4 and b.addresses.v4 and not a.addresses.v4.isdisjoint(b.addresses.v4):
        return True
    if a.addresses.v6 and b.addresses.v6 and not a.addresses.v6.isdisjoint(b.addresses.v6):
        return True
    return bool(a.tags & b.tags) or bool(b.tags and a.addresses)
