"""Interval-set algebra against Python's own sets on a small universe (property-based)."""

from hypothesis import given
from hypothesis import strategies as st

from shared.core.intervals import IntervalSet
from shared.core.ports import PortSet

UNIVERSE = 256
intervals = st.lists(st.tuples(st.integers(0, UNIVERSE - 1), st.integers(0, 12)).map(
    lambda t: (t[0], min(UNIVERSE - 1, t[0] + t[1]))), max_size=6)


def as_set(s: IntervalSet) -> set[int]:
    return {v for lo, hi in s.intervals for v in range(lo, hi + 1)}


def brute(iv: list[tuple[int, int]]) -> set[int]:
    return {v for lo, hi in iv for v in range(lo, hi + 1)}


many_intervals = st.lists(st.tuples(st.integers(0, UNIVERSE - 1), st.integers(0, 3)).map(
    lambda t: (t[0], min(UNIVERSE - 1, t[0] + t[1]))), min_size=8, max_size=40)


@given(st.one_of(intervals, many_intervals), st.one_of(intervals, many_intervals))
def test_operators_match_python_sets(a, b):
    sa, sb = IntervalSet(a), IntervalSet(b)
    ra, rb = brute(a), brute(b)
    assert as_set(sa | sb) == ra | rb
    assert as_set(sa & sb) == ra & rb
    assert as_set(sa - sb) == ra - rb
    assert (sa <= sb) == (ra <= rb)
    assert sa.isdisjoint(sb) == ra.isdisjoint(rb)
    assert sa.size() == len(ra)
    for v in range(UNIVERSE):
        assert (v in sa) == (v in ra)


@given(intervals)
def test_normal_form_is_canonical(a):
    s = IntervalSet(a)
    # sorted, disjoint and non-adjacent: equal sets have equal representations
    for (lo1, hi1), (lo2, hi2) in zip(s.intervals, s.intervals[1:], strict=False):
        assert lo1 <= hi1 < lo2 - 1 < hi2
    assert IntervalSet(sorted(a, reverse=True)) == s
    assert hash(IntervalSet(list(a))) == hash(s)


def test_port_set_repr_round_trips():
    p = PortSet.of(["22", "3389", "5985-5986", "23"])
    assert repr(p) == "PortSet.of(['22-23', '3389', '5985-5986'])"
    assert PortSet.of(p.to_tokens()) == p
    assert PortSet.ALL.to_tokens() == ["*"]
