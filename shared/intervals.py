"""Immutable sets of integers stored as sorted, disjoint, non-adjacent closed intervals.

Ports (0..65535) and IP addresses (as integers, one family at a time) are both such sets; keeping the
arithmetic in one place means the exposure engine's set algebra is written and tested once.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

Interval = tuple[int, int]


def _normalize(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
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

    __slots__ = ("_hash", "intervals")

    intervals: tuple[Interval, ...]

    def __init__(self, intervals: Iterable[Interval] = ()) -> None:
        self.intervals = _normalize(intervals)
        self._hash: int | None = None

    @classmethod
    def _raw(cls, intervals: tuple[Interval, ...]) -> IntervalSet:
        obj = cls.__new__(cls)
        obj.intervals = intervals
        obj._hash = None
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

    def __and__(self, other: IntervalSet) -> IntervalSet:
        a, b = self.intervals, other.intervals
        if not a or not b or a[-1][1] < b[0][0] or b[-1][1] < a[0][0]:
            return type(self)._raw(())
        if len(a) < len(b):
            a, b = b, a
        # Walk the smaller side; bisect into the larger one (sets here are often 1 vs many intervals).
        ends = self._ends_of(a)
        out: list[Interval] = []
        n = len(a)
        for lo, hi in b:
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
        ends = self._ends_of(a)
        out: list[Interval] = []
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

    @staticmethod
    def _ends_of(intervals: tuple[Interval, ...]) -> list[int]:
        return [hi for _, hi in intervals]

    def __le__(self, other: IntervalSet) -> bool:
        return not (self - other)

    def __ge__(self, other: IntervalSet) -> bool:
        return other <= self

    def isdisjoint(self, other: IntervalSet) -> bool:
        return not (self & other)
