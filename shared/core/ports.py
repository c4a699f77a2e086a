"""TCP/UDP port sets parsed strictly from NSG port strings (``*``, ``N``, ``A-B``)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from shared.core.errors import InputError
from shared.core.intervals import IntervalSet

MAX_PORT = 65535


class PortSet(IntervalSet):
    """An immutable set of ports. ``PortSet.parse("22")``, ``PortSet.parse("1000-2000")``, ``PortSet.ALL``."""

    __slots__ = ()

    ALL: PortSet
    NONE: PortSet

    @staticmethod
    def parse(token: str) -> PortSet:
        """Parse one NSG port token; raise :class:`InputError` for anything Azure would reject."""
        return _parse_port_token(token)

    @classmethod
    def of(cls, tokens: Iterable[str]) -> PortSet:
        out = cls.NONE
        for token in tokens:
            out = out | _parse_port_token(token)
        return out

    @classmethod
    def from_ports(cls, ports: Iterable[int]) -> PortSet:
        return cls((p, p) for p in ports)

    def to_tokens(self) -> list[str]:
        """Render as NSG port strings (``*`` for everything), the inverse of :meth:`of`."""
        if self == PortSet.ALL:
            return ["*"]
        return [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.intervals]

    def __repr__(self) -> str:
        return f"PortSet.of({self.to_tokens()!r})"


PortSet.ALL = PortSet([(0, MAX_PORT)])
PortSet.NONE = PortSet()


def _port_number(text: str, token: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise InputError(f"invalid port {token!r}: expected '*', a number or a range 'A-B'")
    value = int(text)
    if value > MAX_PORT:
        raise InputError(f"invalid port {token!r}: {value} is above {MAX_PORT}")
    return value


@lru_cache(maxsize=4096)
def _parse_port_token(token: str) -> PortSet:
    if not isinstance(token, str):
        raise InputError(f"invalid port {token!r}: expected a string")
    text = token.strip()
    if text in ("*", "Any", "any"):
        return PortSet.ALL
    if "-" in text:
        lo_text, _, hi_text = text.partition("-")
        lo, hi = _port_number(lo_text.strip(), token), _port_number(hi_text.strip(), token)
        if lo > hi:
            raise InputError(f"invalid port range {token!r}: start is after end")
        return PortSet._raw(((lo, hi),))
    value = _port_number(text, token)
    return PortSet._raw(((value, value),))
