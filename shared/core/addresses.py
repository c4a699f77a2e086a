"""IP address sets (IPv4 and IPv6 kept apart), the public address space, and NSG source tokens.

The public space is an explicit list (docs/product.md §2.4) instead of ``ipaddress.is_global``, whose
answers change between Python patch releases: exposure results must not depend on the interpreter.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from shared.core.errors import InputError
from shared.core.frozen import fast_constructor
from shared.core.intervals import IntervalSet
from shared.core.servicetags import is_internet_region, is_public_broad_tag, is_service_tag, tag_base

V4_MAX = (1 << 32) - 1
V6_MAX = (1 << 128) - 1


class V4Set(IntervalSet):
    """IPv4 addresses as integers."""

    __slots__ = ()


class V6Set(IntervalSet):
    """IPv6 addresses as integers."""

    __slots__ = ()


def _net_interval(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int]:
    return int(net.network_address), int(net.broadcast_address)


@dataclass(frozen=True, slots=True)
class AddressSet:
    """Addresses of both families. Immutable; supports ``| & - <=`` and ``bool``."""

    v4: V4Set = V4Set()
    v6: V6Set = V6Set()

    @staticmethod
    def of(*cidrs: str) -> AddressSet:
        """``AddressSet.of("10.0.0.0/8", "::/0")`` — strict CIDR/IP parsing, for code and tests."""
        out = AddressSet()
        for cidr in cidrs:
            out = out | parse_cidr(cidr)
        return out

    def __bool__(self) -> bool:
        return bool(self.v4) or bool(self.v6)

    def __or__(self, other: AddressSet) -> AddressSet:
        return _make_address_set(self.v4 | other.v4, self.v6 | other.v6)

    def __and__(self, other: AddressSet) -> AddressSet:
        return _make_address_set(self.v4 & other.v4, self.v6 & other.v6)

    def __sub__(self, other: AddressSet) -> AddressSet:
        return _make_address_set(self.v4 - other.v4, self.v6 - other.v6)

    def __le__(self, other: AddressSet) -> bool:
        return self.v4 <= other.v4 and self.v6 <= other.v6

    def __contains__(self, address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        addr = ipaddress.ip_address(address) if isinstance(address, str) else address
        family = self.v4 if addr.version == 4 else self.v6
        return int(addr) in family

    def to_cidrs(self) -> list[str]:
        """Render as a minimal list of CIDRs (the inverse of :meth:`of`)."""
        out: list[str] = []
        for family, cls in ((self.v4, ipaddress.IPv4Address), (self.v6, ipaddress.IPv6Address)):
            for lo, hi in family.intervals:
                out.extend(str(n) for n in ipaddress.summarize_address_range(cls(lo), cls(hi)))
        return out

    def __repr__(self) -> str:
        return f"AddressSet.of(*{self.to_cidrs()!r})"


_make_address_set = fast_constructor(AddressSet)

ALL_ADDRESSES = AddressSet(V4Set([(0, V4_MAX)]), V6Set([(0, V6_MAX)]))
ALL_V4 = AddressSet(v4=V4Set([(0, V4_MAX)]))
ALL_V6 = AddressSet(v6=V6Set([(0, V6_MAX)]))

NON_PUBLIC_V4 = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
)
PUBLIC_V6 = ("2000::/3",)
NON_PUBLIC_V6 = ("2001:db8::/32",)


def public_space(extra_private: Iterable[str] = ()) -> AddressSet:
    """The default public space (docs §2.4), optionally minus more private ranges (a setting)."""
    v4_public = ALL_V4 - AddressSet.of(*NON_PUBLIC_V4)
    v6_public = AddressSet.of(*PUBLIC_V6) - AddressSet.of(*NON_PUBLIC_V6)
    return (v4_public | v6_public) - AddressSet.of(*extra_private)



@lru_cache(maxsize=65536)
def parse_cidr(token: str) -> AddressSet:
    """Parse an IPv4/IPv6 address or CIDR (host bits may be set, like Azure accepts)."""
    try:
        net = ipaddress.ip_network(token.strip(), strict=False)
    except ValueError as exc:
        raise InputError(f"invalid address prefix {token!r}: {exc}") from None
    interval = _net_interval(net)
    if net.version == 4:
        return AddressSet(v4=V4Set._raw((interval,)))  # type: ignore[arg-type]
    return AddressSet(v6=V6Set._raw((interval,)))  # type: ignore[arg-type]


# --- NSG source tokens ------------------------------------------------------------------------

KIND_ALL = "all"            # '*' / 'Any': every IPv4 and IPv6 address
KIND_INTERNET = "internet"  # the 'Internet' tag: the public space
KIND_CIDR = "cidr"          # an address or CIDR
KIND_TAG = "tag"            # a Microsoft-controlled service tag: not public
KIND_BROAD_TAG = "broad-tag"  # AzureCloud[.region]: public addresses of unknown extent -> broad
KIND_UNKNOWN = "unknown"    # not a keyword, CIDR or known tag: never public, never covers; its own finding


@dataclass(frozen=True, slots=True, eq=False)
class SourceToken:
    """One parsed entry of ``sourceAddressPrefix(es)``; the public part is resolved at evaluation.

    Equality and hash use the text alone (kind and addresses follow from it), which keeps the
    evaluator's per-source-list cache cheap on the hot path.
    """

    text: str
    kind: str
    addresses: AddressSet = AddressSet()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SourceToken) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)

    @property
    def tag(self) -> str:
        return tag_base(self.text)


@lru_cache(maxsize=65536)
def parse_source_token(token: str, extra_tags: frozenset[str] = frozenset()) -> SourceToken:
    """Parse one source prefix token (cached: estates repeat the same few thousand tokens)."""
    if not isinstance(token, str) or not token.strip():
        raise InputError(f"invalid source {token!r}: expected a non-empty string")
    text = token.strip()
    low = text.lower()
    if low in ("*", "any"):
        return SourceToken(text, KIND_ALL, ALL_ADDRESSES)
    if low == "internet":
        return SourceToken(text, KIND_INTERNET)
    if text[0].isdigit() or ":" in text:
        return SourceToken(text, KIND_CIDR, parse_cidr(text))
    if is_service_tag(text, extra_tags):
        return SourceToken(text, KIND_BROAD_TAG if is_public_broad_tag(text) else KIND_TAG)
    if is_internet_region(text):
        raise InputError(f"invalid address prefix {token!r}: 'Internet' has no regional form (not a service tag)")
    if is_public_broad_tag(text):  # AzureCloud.<anything>: a new region is still AzureCloud (broad, public)
        return SourceToken(text, KIND_BROAD_TAG)
    # Azure publishes new tags every few months: evaluate anyway (never public, covers nothing) and report it.
    return SourceToken(text, KIND_UNKNOWN)


DEFAULT_PUBLIC = public_space()
