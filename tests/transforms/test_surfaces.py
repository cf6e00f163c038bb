"""Time surface and HATS against slow references that follow the definitions literally."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodata.events import EVENT_DTYPE, make_events
from neurodata.functional.surfaces import to_averaged_time_surface, to_time_surface
from neurodata.transforms import ToAveragedTimeSurface, ToTimeSurface
from tests.helpers import event_arrays

SENSOR = (7, 5, 2)


def ref_time_surface(ev, dt, tau, include_incomplete=False, sensor=SENSOR):
    W, H, P = sensor
    t = [int(v) for v in ev["t"]]
    D = t[-1] - t[0]
    q = (D - float(dt)) / float(dt)  # tonic 1.7's count, in float64 as it computes it
    n = max(1, (math.ceil(q) if include_incomplete else math.floor(q)) + 1)
    out = np.zeros((n, P, H, W))
    for i in range(n):
        Ti = t[0] + (i + 1) * Fraction(float(dt))  # exact, as documented (a float sum rounds)
        for c in range(P):
            for y in range(H):
                for x in range(W):
                    ts = [t[k] for k in range(len(t)) if t[k] < Ti and ev["x"][k] == x and ev["y"][k] == y
                          and (P == 1 or ev["p"][k] == c)]
                    if ts:
                        out[i, c, y, x] = math.exp(-float(Ti - max(ts)) / tau)
    return out


@settings(max_examples=60, deadline=None)
@given(ev=event_arrays(max_x=6, max_y=4, max_t=200, max_n=40).filter(len),
       dt=st.sampled_from([7, 20, 33.5, 1000, 0.1, 0.7, np.float32(2.5)]), tau=st.sampled_from([5, 50.0, 1e4]),
       inc=st.booleans())
def test_time_surface_matches_reference(ev, dt, tau, inc):
    out = to_time_surface(ev, SENSOR, dt, tau, include_incomplete=inc, dtype=np.float64)
    np.testing.assert_allclose(out, ref_time_surface(ev, dt, tau, inc), rtol=1e-12, atol=1e-300)


def test_time_surface_edges():
    assert to_time_surface(np.empty(0, EVENT_DTYPE), SENSOR, 10, 5).shape == (1, 2, 5, 7)
    ev = make_events([0, 10, 20], [0, 1, 2], [0, 0, 0], [1, 1, 0])
    out = to_time_surface(ev, SENSOR, 10, 5)
    assert out.shape == (2, 2, 5, 7) and out.dtype == np.float32
    assert out[0, 1, 0, 0] == pytest.approx(math.exp(-2)) and out[0, 1, 0, 1] == 0
    assert out[1, 1, 0, 1] == pytest.approx(math.exp(-2)) and out[1, 0, 0, 2] == 0  # t=20 is not < 20
    with pytest.raises(ValueError, match="tau"):
        to_time_surface(ev, SENSOR, 10, 0)
    with pytest.raises(ValueError, match="sorted"):
        to_time_surface(ev[::-1], SENSOR, 10, 5)
    assert ToTimeSurface(SENSOR, 10, 5)(ev).shape == (2, 2, 5, 7)
    assert np.array_equal(ToTimeSurface(SENSOR, 10, 5, num_threads=2)(ev), out)


def ref_hats(ev, sensor, cell, size, window, tau, decay):
    W, H, P = sensor
    rho = size // 2
    wgrid = math.ceil(W / cell)
    ncells = wgrid * math.ceil(H / cell)
    hist = np.zeros((ncells, P, size, size))
    cnt = np.zeros((ncells, P))
    evs = [(int(e["t"]), int(e["x"]), int(e["y"]), int(e["p"]) if P > 1 else 0) for e in ev]
    for i, (ti, xi, yi, ci) in enumerate(evs):
        c = (yi // cell) * wgrid + xi // cell
        cnt[c, ci] += 1
        hist[c, ci, rho, rho] += 1
        for tj, xj, yj, cj in evs[:i]:
            same_cell = (yj // cell) * wgrid + xj // cell == c
            if cj != ci or not same_cell or abs(xj - xi) > rho or abs(yj - yi) > rho or ti - tj > window:
                continue
            v = math.exp(-(ti - tj) / tau) if decay == "exp" else 1 - (ti - tj) / (3 * tau)
            hist[c, ci, yj - yi + rho, xj - xi + rho] += v
    return hist / np.maximum(cnt, 1)[:, :, None, None]


@settings(max_examples=80, deadline=None)
@given(ev=event_arrays(max_x=12, max_y=8, max_t=3000, max_n=80), cell=st.sampled_from([3, 5, 13]),
       size=st.sampled_from([1, 3]), window=st.sampled_from([1, 200, 1000.0, 10**6]),
       tau=st.sampled_from([10, 100.0]), decay=st.sampled_from(["exp", "lin"]), P=st.sampled_from([1, 2]))
def test_hats_matches_reference(ev, cell, size, window, tau, decay, P):
    sensor = (13, 9, P)
    out = to_averaged_time_surface(ev, sensor, cell_size=cell, surface_size=size, time_window=window,
                                   tau=tau, decay=decay, dtype=np.float64)
    np.testing.assert_allclose(out, ref_hats(ev, sensor, cell, size, window, tau, decay), rtol=1e-9, atol=1e-9)


def test_hats_bursts_and_errors():
    # many events on one pixel inside and outside the window (running-sum expiry)
    t = np.concatenate([np.arange(0, 5000, 3), np.arange(20000, 20100)])
    ev = make_events(t, np.full(t.size, 4), np.full(t.size, 4), np.ones(t.size))
    sensor = (10, 10, 2)
    sub = ev[1600:]  # the end of the first burst, then the second one after a long gap
    for decay in ("exp", "lin"):
        out = to_averaged_time_surface(sub, sensor, cell_size=5, surface_size=3, time_window=100,
                                       tau=30, decay=decay, dtype=np.float64)
        np.testing.assert_allclose(out, ref_hats(sub, sensor, 5, 3, 100, 30, decay), rtol=1e-9)
    assert to_averaged_time_surface(np.empty(0, EVENT_DTYPE), sensor).shape == (1, 2, 5, 5)
    for kw in (dict(surface_size=4), dict(surface_size=11), dict(decay="log"), dict(tau=-1)):
        with pytest.raises(ValueError):
            to_averaged_time_surface(ev, sensor, **kw)
    assert ToAveragedTimeSurface(sensor, cell_size=5, surface_size=3)(ev).shape == (4, 2, 3, 3)


def test_time_surface_huge_window_uses_exp_path():
    """dt above the gap-table limit (2**22 µs) falls back to exp per event: same values."""
    t = np.array([0, 3, 2**22, 2**23 + 7, 2**24, 2**24 + 2**23], np.int64)
    ev = make_events(t, [0, 1, 0, 2, 3, 0], [0, 0, 1, 2, 0, 4], [1, 0, 1, 1, 0, 1])
    for dt in (2**23 + 0.5, 2**22 - 3):
        out = to_time_surface(ev, SENSOR, dt, 2**21, dtype=np.float64)
        np.testing.assert_allclose(out, ref_time_surface(ev, dt, 2**21), rtol=1e-12, atol=1e-300)


@settings(max_examples=80, deadline=None)
@given(ev=event_arrays(max_x=6, max_y=4, max_t=400, max_n=60).filter(len),
       dt=st.sampled_from([3, 7, 20.5, 33]), tau=st.sampled_from([5, 50.0]),
       cuts=st.sets(st.integers(1, 200), max_size=4), merge=st.booleans())
def test_time_surface_parts_equal_one_pass(ev, dt, tau, cuts, merge):
    """Windows cut into parts computed in parallel equal the serial pass bit for bit."""
    from fractions import Fraction

    from neurodata.functional.frames import _event_words, _lower_bound_kernel
    from neurodata.functional.surfaces import _run_parts, _window_ends

    sensor = (7, 5, 1 if merge else 2)
    t = ev["t"]
    n = max(1, math.floor(Fraction(int(t[-1]) - int(t[0])) / Fraction(dt)))
    ends, frac = _window_ends(int(t[0]), Fraction(dt), n, float(tau))
    table = np.exp(-np.arange(math.ceil(dt) + 2) / tau)
    bounds = _lower_bound_kernel(t, ends)
    wins = np.array(sorted({0, n} | {c for c in cuts if c < n}), np.int64)
    outs = []
    for w in (np.array([0, n], np.int64), wins):
        out = np.full((n, 7 * 5 * sensor[2]), np.nan)
        status = _run_parts(_event_words(ev), bounds, w, ends, frac, math.exp(-dt / tau), table, 1 / tau,
                            sensor, out)
        assert tuple(status) == (0, -1)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
    ref = ref_time_surface(ev, dt, tau, sensor=sensor).reshape(n, -1)
    np.testing.assert_allclose(outs[1], ref, rtol=1e-12, atol=1e-300)


def test_time_surface_threads_identical_and_checked():
    rng = np.random.default_rng(3)
    n = 150_000
    ev = make_events(np.sort(rng.integers(0, 2_000_000, n)), rng.integers(0, 16, n),
                     rng.integers(0, 12, n), rng.integers(0, 2, n))
    sensor = (16, 12, 2)
    one = to_time_surface(ev, sensor, 1000, 3000, num_threads=1)
    for threads in (2, 3):
        np.testing.assert_array_equal(to_time_surface(ev, sensor, 1000, 3000, num_threads=threads), one)
    bad = ev.copy()
    bad["x"][n - 10] = 16  # in the tail part
    with pytest.raises(ValueError, match=rf"events\[{n - 10}\]"):
        to_time_surface(bad, sensor, 1000, 3000, num_threads=2)
    late = ev.copy()
    late["t"][n // 2] = late["t"][n // 2 - 1] - 1  # a decrease inside a later part
    with pytest.raises(ValueError, match="sorted"):
        to_time_surface(late, sensor, 1000, 3000, num_threads=2)
    tail = ev.copy()
    tail["t"][-1] = tail["t"][-2] - 1  # after the last window: unused, still checked
    with pytest.raises(ValueError, match="sorted"):
        to_time_surface(tail, sensor, 1000, 3000, num_threads=2)
    kept = to_time_surface(bad, sensor, 1000, 3000, num_threads=2, on_out_of_bounds="drop")
    np.testing.assert_array_equal(kept, to_time_surface(np.delete(bad, n - 10), sensor, 1000, 3000))


def test_time_surface_window_count_is_tonics_for_float_dt():
    """tonic counts windows as floor((D - dt) / dt) + 1 in float64: 50 for D = 5, dt = 0.1, where
    the exact floor(D / dt) of the binary 0.1 is 49 (it was 49 here)."""
    ev = make_events([0, 3, 5], [0, 1, 0], [0, 0, 0], [1, 1, 1])
    assert to_time_surface(ev, (2, 1, 2), 0.1, 100.0).shape[0] == 50
    assert to_time_surface(ev, (2, 1, 2), 0.1, 100.0, include_incomplete=True).shape[0] == 50
    assert to_time_surface(ev, (2, 1, 2), 2, 100.0).shape[0] == 2  # integer dt: floor(D / dt)


def test_hats_negative_timestamps_equal_shifted():
    """A pixel's decayed sum starts at 0 with reference time 0; decaying it to t = -1e6 overflowed
    exp and gave 0 * inf = NaN. Shifting every timestamp changes nothing."""
    ev = make_events([-1_000_000, -999_995, -999_000], [0, 0, 0], [0, 0, 0], [1, 1, 1])
    shifted = ev.copy()
    shifted["t"] += 1_000_000
    for decay in ("exp", "lin"):
        kw = dict(cell_size=1, surface_size=1, tau=100, decay=decay)
        out = to_averaged_time_surface(ev, (1, 1, 2), **kw)
        assert np.isfinite(out).all() and np.array_equal(out, to_averaged_time_surface(shifted, (1, 1, 2), **kw))


@pytest.mark.parametrize("build", [
    lambda: ToTimeSurface(SENSOR, -1, 5), lambda: ToTimeSurface(SENSOR, 10, 5, dtype=np.int32),
    lambda: ToTimeSurface(SENSOR, 10, 5, num_threads=0), lambda: ToTimeSurface(SENSOR, 10, 5, on_out_of_bounds="x"),
    lambda: ToAveragedTimeSurface(SENSOR, cell_size=2, surface_size=4),
    lambda: ToAveragedTimeSurface(SENSOR, decay="cos"), lambda: ToAveragedTimeSurface(SENSOR, dtype="float16"),
])
def test_surface_transforms_check_parameters_when_built(build):
    """A bad parameter fails where the transform is built, not at its first call (in a DataLoader
    worker)."""
    with pytest.raises(ValueError):
        build()
