"""Exact set algebra over broad service tags (``AzureCloud`` and its regional forms), kept symbolically.

We cannot list the addresses behind ``AzureCloud``, so a tag is an opaque set. Regions are parts of the
whole: ``AzureCloud.westeurope`` is inside ``AzureCloud``, and two different regions do not share
addresses. Per tag base we keep either a *finite* set of regions (those named) or a *cofinite* one (the
whole tag minus the regions named), which is closed under ``| & -``: ``AzureCloud - AzureCloud.westeurope``
is exact, so ``(a - b) & b`` is always empty and ``a & b == b & a`` (docs/semantics.md, set algebra).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_WHOLE = ""  # the region name that stands for "every region" in a parsed token


def split_tag(token: str) -> tuple[str, str]:
    """``AzureCloud.WestEurope`` -> (``azurecloud``, ``westeurope``); ``AzureCloud`` -> (``azurecloud``, '')."""
    base, _, region = token.lower().partition(".")
    return base, region


@dataclass(frozen=True, slots=True)
class _Part:
    """The regions of one base: ``cofinite`` = every region except ``regions``; else exactly ``regions``."""

    cofinite: bool
    regions: frozenset[str]

    def empty(self) -> bool:
        return not self.cofinite and not self.regions

    def __or__(self, o: _Part) -> _Part:
        if self.cofinite and o.cofinite:
            return _Part(True, self.regions & o.regions)
        if self.cofinite:
            return _Part(True, self.regions - o.regions)
        if o.cofinite:
            return _Part(True, o.regions - self.regions)
        return _Part(False, self.regions | o.regions)

    def __and__(self, o: _Part) -> _Part:
        if self.cofinite and o.cofinite:
            return _Part(True, self.regions | o.regions)
        if self.cofinite:
            return _Part(False, o.regions - self.regions)
        if o.cofinite:
            return _Part(False, self.regions - o.regions)
        return _Part(False, self.regions & o.regions)

    def __sub__(self, o: _Part) -> _Part:
        if self.cofinite and o.cofinite:
            return _Part(False, o.regions - self.regions)
        if self.cofinite:
            return _Part(True, self.regions | o.regions)
        if o.cofinite:
            return _Part(False, self.regions & o.regions)
        return _Part(False, self.regions - o.regions)


@dataclass(frozen=True, slots=True)
class TagSet:
    """Immutable set of broad-tag address space: ``| & - <=``, ``bool``, iteration yields readable names."""

    parts: tuple[tuple[str, _Part], ...] = ()

    @staticmethod
    def of(tokens: Iterable[str]) -> TagSet:
        out = TagSet()
        for token in tokens:
            base, region = split_tag(token)
            part = _Part(True, frozenset()) if region == _WHOLE else _Part(False, frozenset({region}))
            out = out | TagSet(((base, part),))
        return out

    @staticmethod
    def whole(bases: Iterable[str]) -> TagSet:
        """Every region of each base: what a rule covering all public addresses covers."""
        return TagSet(tuple(sorted((b, _Part(True, frozenset())) for b in set(bases))))

    def _map(self) -> dict[str, _Part]:
        return dict(self.parts)

    @staticmethod
    def _make(parts: dict[str, _Part]) -> TagSet:
        return TagSet(tuple(sorted((b, p) for b, p in parts.items() if not p.empty())))

    def __bool__(self) -> bool:
        return bool(self.parts)

    def __or__(self, other: TagSet) -> TagSet:
        if not other.parts:
            return self
        if not self.parts:
            return other
        out = self._map()
        for base, part in other.parts:
            out[base] = out[base] | part if base in out else part
        return self._make(out)

    def __and__(self, other: TagSet) -> TagSet:
        if not self.parts or not other.parts:
            return _EMPTY
        theirs = other._map()
        return self._make({b: p & theirs[b] for b, p in self.parts if b in theirs})

    def __sub__(self, other: TagSet) -> TagSet:
        if not self.parts or not other.parts:
            return self
        theirs = other._map()
        return self._make({b: (p - theirs[b] if b in theirs else p) for b, p in self.parts})

    def __le__(self, other: TagSet) -> bool:
        return not (self - other)

    def isdisjoint(self, other: TagSet) -> bool:
        return not (self & other)

    def __iter__(self) -> Iterator[str]:
        """Readable names: ``azurecloud``, ``azurecloud.westeurope``, ``azurecloud-except:northeurope``."""
        for base, part in self.parts:
            if part.cofinite:
                yield base if not part.regions else f"{base}-except:{','.join(sorted(part.regions))}"
            else:
                yield from (f"{base}.{r}" for r in sorted(part.regions))


_EMPTY = TagSet()
