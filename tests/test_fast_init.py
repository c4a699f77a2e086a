"""``frozen.fast_init``: the same object as the dataclass's own ``__init__`` builds, for every way of calling it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from shared.app.output import ScannedNsg
from shared.core.frozen import fast_init


@dataclass(frozen=True, slots=True)
class Sample:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class FastSample:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: tuple[int, ...] = ()


FastSample.__init__ = fast_init(FastSample)  # type: ignore[method-assign]

CALLS = [((1,), {}), ((1, "x"), {}), ((1,), {"c": [2]}), ((1, "x", [3], (4,)), {}), ((), {"a": 1, "d": (5,)}),
         ((1,), {"c": None}), ((1,), {"b": None})]


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_fast_init_builds_what_the_dataclass_init_builds(args, kwargs):
    slow, fast = Sample(*args, **kwargs), FastSample(*args, **kwargs)
    assert dataclasses.astuple(slow) == dataclasses.astuple(fast)
    assert repr(slow).replace("Sample", "FastSample", 1) == repr(fast)


def test_fast_init_keeps_factories_fresh_and_the_object_frozen():
    one, two = FastSample(1), FastSample(1)
    assert one.c == [] and one.c is not two.c and one == two
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.a = 2  # type: ignore[misc]


@pytest.mark.parametrize(("args", "kwargs"), [((), {}), ((1, "b", [], (), 5), {}), ((1,), {"e": 1}),
                                              ((1,), {"a": 1})])
def test_fast_init_rejects_what_the_dataclass_init_rejects(args, kwargs):
    with pytest.raises(TypeError):
        Sample(*args, **kwargs)
    with pytest.raises(TypeError):
        FastSample(*args, **kwargs)


def test_scanned_nsg_is_built_by_the_fast_init_with_its_defaults():
    r = ScannedNsg("f.json", None)  # type: ignore[arg-type]
    assert (r.attachment, r.line, r.rule_lines) == (None, None, {})
    assert r.rule_lines is not ScannedNsg("f", None).rule_lines  # type: ignore[arg-type]
