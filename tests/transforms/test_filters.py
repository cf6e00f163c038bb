"""Filters against slow, obviously correct references (one Python loop per event)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neurodata.events import EVENT_DTYPE, make_events
from neurodata.functional import filters as F
from neurodata import transforms as T
from tests.helpers import event_arrays, random_events

SMALL = st.one_of(
    event_arrays(max_x=6, max_y=4, max_t=3000, max_n=80),
    event_arrays(max_x=3, max_y=3, max_t=0, max_n=20),  # all one timestamp
    event_arrays(max_x=0, max_y=0, max_t=50, max_n=10),  # one pixel, many duplicates
    event_arrays(max_x=6, max_y=4, max_t=3000, max_n=1),  # empty or one event
    event_arrays(max_x=5, max_y=5, max_t=10**4, max_n=40, min_t=-10**4),  # negative times
)


def ref_denoise(ev, ft, tonic_compatible=True):
    W, H = (int(ev["x"].max()) + 1, int(ev["y"].max()) + 1) if len(ev) else (0, 0)
    fired = {}  # pixel -> last t
    kept = []
    for e in ev:
        x, y, t = int(e["x"]), int(e["y"]), int(e["t"])
        fired[(x, y)] = t
        ok = False
        for nx, ny in ((x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)):
            if not (0 <= nx < W and 0 <= ny < H):
                continue
            if (nx, ny) in fired:
                ok |= t - fired[(nx, ny)] < ft
            elif tonic_compatible:
                ok |= t - 0 < ft  # as though every pixel fired at t = 0
        if ok:
            kept.append(e)
    return np.array(kept, dtype=EVENT_DTYPE)


def ref_refractory(ev, period, tonic_compatible=True):
    last, kept = {}, []
    for e in ev:
        k, t = (int(e["x"]), int(e["y"])), int(e["t"])
        prev = last.get(k, -period if tonic_compatible else None)
        if prev is None or t - prev > period:
            kept.append(e)
        last[k] = t
    return np.array(kept, dtype=EVENT_DTYPE)


def ref_decimate(ev, n):
    count, kept = {}, []
    for e in ev:
        k = (int(e["x"]), int(e["y"]))
        count[k] = count.get(k, 0) + 1
        if count[k] == n:
            count[k] = 0
            kept.append(e)
    return np.array(kept, dtype=EVENT_DTYPE)


def ref_hot(ev, f):
    if len(ev) == 0:
        return set()
    counts = {}
    for e in ev:
        k = (int(e["x"]), int(e["y"]))
        counts[k] = counts.get(k, 0) + 1
    limit = f * (int(ev["t"][-1]) - int(ev["t"][0])) * 1e-6
    return {k for k, c in counts.items() if c > limit}


def same(a, b):
    assert a.dtype == EVENT_DTYPE and a.shape == b.shape
    assert np.array_equal(a, b)


@settings(max_examples=150, deadline=None)
@given(SMALL, st.integers(0, 1500), st.booleans())
def test_denoise_matches_reference(ev, ft, compat):
    same(F.denoise(ev, ft, tonic_compatible=compat), ref_denoise(ev, ft, compat))


@settings(max_examples=50, deadline=None)
@given(SMALL, st.floats(0, 1500, allow_nan=False))
def test_denoise_float_filter_time_is_ceil(ev, ft):
    same(F.denoise(ev, ft), ref_denoise(ev, ft))  # reference compares d < ft in float


@settings(max_examples=150, deadline=None)
@given(SMALL, st.integers(0, 1500), st.booleans())
def test_refractory_matches_reference(ev, period, compat):
    same(F.refractory_period(ev, period, tonic_compatible=compat), ref_refractory(ev, period, compat))


@settings(max_examples=50, deadline=None)
@given(SMALL, st.floats(0, 1500, allow_nan=False))
def test_refractory_float_period_is_floor(ev, period):
    same(F.refractory_period(ev, period), ref_refractory(ev, period))


@settings(max_examples=150, deadline=None)
@given(SMALL, st.integers(1, 5))
def test_decimate_matches_reference(ev, n):
    same(F.decimate(ev, n), ref_decimate(ev, n))


@settings(max_examples=100, deadline=None)
@given(SMALL, st.floats(0, 5000, allow_nan=False))
def test_hot_pixels_match_reference(ev, f):
    hot = ref_hot(ev, f)
    got = F.identify_hot_pixels(ev, f)
    assert got.shape[1] == 2 and {tuple(map(int, r)) for r in got} == hot
    assert [tuple(r) for r in got] == sorted(tuple(r) for r in got)
    kept = F.drop_hot_pixels(ev, f)
    same(kept, ev[[(int(e["x"]), int(e["y"])) not in hot for e in ev]].astype(EVENT_DTYPE))


@settings(max_examples=100, deadline=None)
@given(SMALL, st.lists(st.tuples(st.integers(0, 7), st.integers(0, 5)), max_size=6))
def test_drop_pixels_matches_reference(ev, coords):
    drop = set(coords)
    same(F.drop_pixels(ev, coords), ev[[(int(e["x"]), int(e["y"])) not in drop for e in ev]].astype(EVENT_DTYPE))
    same(T.DropPixel(coordinates=coords)(ev), F.drop_pixels(ev, coords))


def test_sensor_edges_and_one_event():
    # pixel at the far corner and its neighbours at the edges
    ev = make_events([5, 10, 20, 30], [127, 126, 127, 0], [127, 127, 126, 0], [1, 0, 1, 1])
    out = F.denoise(ev, 100, (128, 128, 2), tonic_compatible=False)
    assert out["t"].tolist() == [10, 20]
    one = ev[:1]
    assert len(F.denoise(one, 100, tonic_compatible=False)) == 0
    assert len(F.denoise(one, 100)) == 1  # t = 5 < 100 and the grid [0, 127]^2 has neighbours
    assert len(F.denoise(ev[3:], 100)) == 0  # grid [0, 0]^2 (1 x 1): no neighbour at all
    assert len(F.refractory_period(one, 100)) == 1  # t = 5 > 0
    assert len(F.decimate(one, 1)) == 1 and len(F.decimate(one, 2)) == 0
    assert len(F.drop_hot_pixels(one, 1e9)) == 0  # D = 0: every pixel with events is hot


def test_tonic_compatible_initial_states():
    ev = make_events([0, 0], [0, 1], [0, 0], [1, 1])
    assert len(F.refractory_period(ev, 10)) == 0  # first events at t = 0 are dropped (tonic)
    assert len(F.refractory_period(ev, 10, tonic_compatible=False)) == 2
    assert len(F.denoise(ev, 10)) == 2
    assert len(F.denoise(ev, 10, tonic_compatible=False)) == 1  # the second sees the first


@pytest.mark.parametrize("fn", [
    lambda e: F.denoise(e, 10), lambda e: F.refractory_period(e, 10), lambda e: F.decimate(e, 2),
    lambda e: F.drop_hot_pixels(e, 10), lambda e: F.identify_hot_pixels(e, 10),
])
def test_empty_and_unsorted(fn):
    out = fn(np.empty(0, EVENT_DTYPE))
    assert len(out) == 0
    bad = make_events([5, 3], [0, 0], [0, 0], [0, 0])
    with pytest.raises(ValueError, match=r"t\[1\] = 3"):
        fn(bad)


def test_bounds_and_parameter_errors():
    ev = make_events([1, 2, 3], [1, 40, 2], [1, 1, 1], [0, 1, 0])
    for fn in (F.denoise, F.refractory_period):
        with pytest.raises(ValueError, match=r"events\[1\]"):
            fn(ev, 10, (32, 32, 2))
    with pytest.raises(ValueError, match=r"events\[1\]"):
        F.decimate(ev, 2, (32, 32, 2))
    with pytest.raises(ValueError, match="filter_time"):
        F.denoise(ev, -1)
    with pytest.raises(ValueError, match="filter_time"):
        F.denoise(ev, math.inf)
    with pytest.raises(ValueError, match="n must be"):
        F.decimate(ev, 0)
    with pytest.raises(ValueError, match="hot_pixel_frequency"):
        F.drop_hot_pixels(ev, -3)
    with pytest.raises(ValueError, match="coordinates"):
        F.drop_pixels(ev, [(1, 2, 3)])
    with pytest.raises(TypeError, match="missing field"):
        F.denoise(np.zeros(3, dtype=[("t", "<i8"), ("x", "<u2")]), 10)
    with pytest.raises(ValueError, match="2\\*\\*62"):
        F.denoise(make_events([2**62 + 5], [0], [0], [0]), 10)
    with pytest.raises(ValueError, match="exactly one"):
        T.DropPixel()


def test_transforms_wrap_functions_and_keep_no_state():
    ev = random_events(3000, (32, 32, 2), 10**5, seed=3)
    d = T.Denoise(filter_time=500)
    same(d(ev), F.denoise(ev, 500))
    same(d(ev), d(ev))
    same(T.Decimation(n=3)(ev), F.decimate(ev, 3))
    same(T.DropPixel(hot_pixel_frequency=2000)(ev), F.drop_hot_pixels(ev, 2000))
    r = T.RefractoryPeriod(delta=(100, 300))
    a, b = r(ev, rng=7), r(ev, rng=7)
    same(a, b)
    assert any(len(a) == len(F.refractory_period(ev, dl)) and np.array_equal(a, F.refractory_period(ev, dl))
               for dl in range(100, 301))
    assert d.output_sensor_size((32, 32, 2)) == (32, 32, 2)
    with pytest.raises(Exception):
        d.filter_time = 3  # frozen


def test_input_not_modified_and_other_structured_dtypes():
    ev = random_events(500, (16, 16, 2), 10**4, seed=1)
    before = ev.copy()
    F.denoise(ev, 100), F.refractory_period(ev, 100), F.decimate(ev, 2), F.drop_hot_pixels(ev, 10)
    assert np.array_equal(ev, before)
    other = np.zeros(len(ev), dtype=[("x", "<i4"), ("y", "<i4"), ("p", "<i4"), ("t", "<f8")])
    for f in "txyp":
        other[f] = ev[f]
    same(F.denoise(other, 100), F.denoise(ev, 100))


def test_strided_and_readonly_inputs():
    ev = random_events(4000, (32, 32, 2), 10**5, seed=9)
    strided = ev[::3]
    ro = np.frombuffer(ev.tobytes(), dtype=EVENT_DTYPE)
    assert not ro.flags.writeable
    for fn in (lambda e: F.denoise(e, 800), lambda e: F.refractory_period(e, 300), lambda e: F.decimate(e, 3),
               lambda e: F.drop_hot_pixels(e, 5000), lambda e: F.drop_pixels(e, [(1, 1), (5, 7)])):
        same(fn(strided), fn(strided.copy()))
        same(fn(ro), fn(ev))


def test_huge_parameters():
    ev = random_events(2000, (16, 16, 2), 10**6, seed=4)
    assert len(F.decimate(ev, 10**15)) == 0
    assert len(F.refractory_period(ev, 2**61, tonic_compatible=False)) == len(np.unique(ev[["x", "y"]]))
    assert len(F.denoise(ev, 2**61, tonic_compatible=False)) == len(ref_denoise(ev, 2**61, False))
