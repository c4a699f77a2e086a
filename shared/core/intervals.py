"""Immutable sets of integers stored as sorted, disjoint, non-adjacent closed intervals.

Ports (0..65535) and IP addresses (as integers, one family at a time) are both such sets; keeping the
arithmetic in one place means the exposure engine's set algebra is written and tested once.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

Interval = tuple[int, int]


def normalize(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    """Sorted, disjoint, non-adjacent intervals covering the same integers."""
    items = sorted(intervals)
    out: list[Interval] = []
    for lo, hi in items:
        if lo > hi:
            raise ValueError(f"interval start {lo} is after its end {hi}")
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


class IntervalSet:
    """A normalized, hashable set of integers with the usual set operators (``| & - <= ==``)."""

    __slots__ = ("_ends_cache", "_hash", "intervals")

    intervals: tuple[Interval, ...]

    def __init__(self, intervals: Iterable[Interval] = ()) -> None:
        self.intervals = normalize(intervals)
        self._hash: int | None = None
        self._ends_cache: list[int] | None = None

    @classmethod
    def _raw(cls, intervals: tuple[Interval, ...]) -> IntervalSet:
        obj = cls.__new__(cls)
        obj.intervals = intervals
        obj._hash = None
        obj._ends_cache = None
        return obj

    # --- queries -------------------------------------------------------------------------------
    def __bool__(self) -> bool:
        return bool(self.intervals)

    def __len__(self) -> int:  # pragma: no cover - len() cannot exceed sys.maxsize for IPv6
        return self.size()

    def size(self) -> int:
        """Number of integers in the set (IPv6 sets can be far beyond ``sys.maxsize``)."""
        return sum(hi - lo + 1 for lo, hi in self.intervals)

    def __contains__(self, value: int) -> bool:
        for lo, hi in self.intervals:
            if value < lo:
                return False
            if value <= hi:
                return True
        return False

    def __iter__(self) -> Iterator[Interval]:
        return iter(self.intervals)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.intervals == other.intervals

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(self.intervals)
        return self._hash

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self.intervals)!r})"

    # --- algebra -------------------------------------------------------------------------------
    def __or__(self, other: IntervalSet) -> IntervalSet:
        if not other.intervals:
            return self
        if not self.intervals:
            return other
        return type(self)(self.intervals + other.intervals)

    # Small sets (the common case: a rule's few CIDRs against the public space) merge linearly; large ones
    # (the public space after hundreds of rules) bisect into cached interval ends.
    _LINEAR = 12

    def __and__(self, other: IntervalSet) -> IntervalSet:
        a, b = self.intervals, other.intervals
        if not a or not b or a[-1][1] < b[0][0] or b[-1][1] < a[0][0]:
            return type(self)._raw(())
        out: list[Interval] = []
        if len(a) + len(b) <= self._LINEAR:
            i = j = 0
            while i < len(a) and j < len(b):
                lo = a[i][0] if a[i][0] > b[j][0] else b[j][0]
                hi = a[i][1] if a[i][1] < b[j][1] else b[j][1]
                if lo <= hi:
                    out.append((lo, hi))
                if a[i][1] < b[j][1]:
                    i += 1
                else:
                    j += 1
            return type(self)._raw(tuple(out))
        big, small = (self, b) if len(a) >= len(b) else (other, a)
        a, ends = big.intervals, big._ends()
        n = len(a)
        for lo, hi in small:
            k = bisect_left(ends, lo)
            while k < n and a[k][0] <= hi:
                s, e = a[k]
                out.append((s if s > lo else lo, e if e < hi else hi))
                k += 1
        return type(self)._raw(tuple(out))

    def __sub__(self, other: IntervalSet) -> IntervalSet:
        a, b = self.intervals, other.intervals
        if not a or not b or a[-1][1] < b[0][0] or b[-1][1] < a[0][0]:
            return self
        out: list[Interval] = []
        if len(a) + len(b) <= self._LINEAR:
            j = 0
            for lo, hi in a:
                cur = lo
                while j < len(b) and b[j][1] < cur:
                    j += 1
                k = j
                while k < len(b) and b[k][0] <= hi:
                    if b[k][0] > cur:
                        out.append((cur, b[k][0] - 1))
                    cur = max(cur, b[k][1] + 1)
                    if cur > hi:
                        break
                    k += 1
                if cur <= hi:
                    out.append((cur, hi))
            return type(self)._raw(tuple(out))
        ends = self._ends()
        n = len(a)
        i = 0  # a[:i] is already emitted
        pending: Interval | None = None  # the trimmed remainder of a[i-1] not yet emitted
        for blo, bhi in b:
            if pending is not None:
                if pending[1] < blo:
                    out.append(pending)
                    pending = None
                else:
                    if pending[0] < blo:
                        out.append((pending[0], blo - 1))
                    pending = (bhi + 1, pending[1]) if pending[1] > bhi else None
                    if pending is not None:
                        continue
            k = bisect_left(ends, blo, i)
            out.extend(a[i:k])
            i = k
            while i < n and a[i][0] <= bhi:
                lo, hi = a[i]
                i += 1
                if lo < blo:
                    out.append((lo, blo - 1))
                if hi > bhi:
                    pending = (bhi + 1, hi)
                    break
        if pending is not None:
            out.append(pending)
        out.extend(a[i:])
        return type(self)._raw(tuple(out))

    def _ends(self) -> list[int]:
        ends = self._ends_cache
        if ends is None:
            ends = self._ends_cache = [hi for _, hi in self.intervals]
        return ends

    def __le__(self, other: IntervalSet) -> bool:
        return not (self - other)

    def __ge__(self, other: IntervalSet) -> bool:
        return other <= self

    def isdisjoint(self, other: IntervalSet) -> bool:
        return not (self & other)
