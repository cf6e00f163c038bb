"""ToFrame / to_frame against slow, obviously correct references (Python ints and Fractions)."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodata.events import EVENT_DTYPE, make_events
from neurodata.functional import frames as F
from neurodata.functional.frames import to_frame
from neurodata.transforms import ToBinaryRepresentation, ToEventCountImage, ToFrame, ToSparseTensor, ToVoxelGrid
from tests.helpers import event_arrays, random_events

SENSOR = (7, 5, 2)


def _dense(ev, bins_per_event, T, sensor=SENSOR):
    """Reference accumulation: event k adds 1 to every frame listed in bins_per_event[k]."""
    W, H, P = sensor
    out = np.zeros((T, P, H, W), np.int64)
    for k, bins in enumerate(bins_per_event):
        c = int(ev["p"][k]) if P > 1 else 0
        for b in bins:
            out[b, c, int(ev["y"][k]), int(ev["x"][k])] += 1
    return out


def ref_time_bins(ev, T, overlap=0):
    t = [int(v) for v in ev["t"]]
    if not t:
        return []
    t0, D = t[0], t[-1] - t[0]
    if D == 0:
        return [[0] for _ in t]
    if not overlap:
        return [[min(T - 1, (T * (tk - t0)) // D)] for tk in t]
    o = Fraction(overlap)
    w = Fraction(D) / (T - (T - 1) * o)
    s = (1 - o) * w
    return [[b for b in range(T) if b * s <= tk - t0 and (tk - t0 < b * s + w or b == T - 1)] for tk in t]


def ref_event_bins(N, T, overlap=0):
    if not overlap:
        return [[(T * k) // N] for k in range(N)]
    o = Fraction(overlap)
    w = Fraction(N) / (T - (T - 1) * o)
    s = (1 - o) * w
    return [[b for b in range(T) if b * s <= k < b * s + w] for k in range(N)]


def ref_sj(ev, M=None, split_by=None, duration=None):
    """SpikingJelly's formulas written per event (its documented j_l/j_r, extended where it raises)."""
    t = [int(v) for v in ev["t"]]
    N = len(t)
    if M is not None and split_by == "number":
        di = N // M
        return [[min(k // di, M - 1) if di else M - 1] for k in range(N)], M
    if not t:
        return [], (M if M is not None else 1)
    t0 = t[0]
    if M is not None:
        dt = (t[-1] - t0) // M
        out = []
        for tk in t:
            i = next((i for i in range(M - 1) if t0 + dt * i <= tk < t0 + dt * (i + 1)), M - 1)
            out.append([i])
        return out, M
    Fn = max(1, math.ceil((t[-1] - t0) / duration))
    return [[min((tk - t0) // duration, Fn - 1)] for tk in t], Fn


sorted_events = event_arrays(max_x=6, max_y=4, max_t=60, max_n=60)
wide_events = event_arrays(max_x=6, max_y=4, max_t=10**15, max_n=60)


@settings(max_examples=150, deadline=None)
@given(ev=st.one_of(sorted_events, wide_events), T=st.integers(1, 9),
       overlap=st.sampled_from([0, 0, 0.25, 0.5, 0.9]))
def test_n_time_bins_matches_reference(ev, T, overlap):
    out = to_frame(ev, SENSOR, n_time_bins=T, overlap=overlap, dtype=np.int64)
    np.testing.assert_array_equal(out, _dense(ev, ref_time_bins(ev, T, overlap), T))
    if not overlap:
        assert out.sum() == len(ev)  # the last event is never lost


@settings(max_examples=150, deadline=None)
@given(ev=event_arrays(max_x=6, max_y=4, max_t=60, max_n=60, sorted_t=False), T=st.integers(1, 9),
       overlap=st.sampled_from([0, 0, 0.25, 0.5]))
def test_n_event_bins_matches_reference_any_order(ev, T, overlap):
    out = to_frame(ev, SENSOR, n_event_bins=T, overlap=overlap, dtype=np.int64)
    np.testing.assert_array_equal(out, _dense(ev, ref_event_bins(len(ev), T, overlap), T))


@settings(max_examples=150, deadline=None)
@given(ev=sorted_events, M=st.integers(1, 8), split_by=st.sampled_from(["number", "time"]))
def test_frames_number_matches_reference(ev, M, split_by):
    bins, n = ref_sj(ev, M=M, split_by=split_by)
    out = to_frame(ev, SENSOR, frames_number=M, split_by=split_by, dtype=np.int64)
    np.testing.assert_array_equal(out, _dense(ev, bins, n))


@settings(max_examples=100, deadline=None)
@given(ev=sorted_events, duration=st.integers(1, 30))
def test_duration_matches_reference(ev, duration):
    bins, n = ref_sj(ev, duration=duration)
    np.testing.assert_array_equal(to_frame(ev, SENSOR, duration=duration, dtype=np.int64), _dense(ev, bins, n))


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "int32", "float32"])
def test_saturation_never_wraps(dtype):
    n = 70000  # > 65535 events on one pixel
    ev = make_events(np.arange(n), np.full(n, 6), np.full(n, 4), np.ones(n))
    out = to_frame(ev, SENSOR, n_event_bins=1, dtype=dtype)
    assert out.dtype == np.dtype(dtype)
    top = np.iinfo(dtype).max if np.dtype(dtype).kind in "iu" else n
    assert out[0, 1, 4, 6] == min(n, top)
    assert out.sum() == min(n, top)


def test_dtype_spellings():
    """numpy dtypes, their names and torch's dtypes of the same name give the same frames; anything
    else is refused (``np.dtype(None)`` is float64 and an unknown name raised TypeError inside)."""
    import torch

    ev = make_events(np.arange(5), np.arange(5), np.zeros(5), np.ones(5))
    ref = to_frame(ev, SENSOR, n_time_bins=2, dtype=np.uint8)
    for spelling in ("uint8", "u1", np.dtype("u1"), torch.uint8):
        out = to_frame(ev, SENSOR, n_time_bins=2, dtype=spelling)
        assert out.dtype == np.uint8 and np.array_equal(out, ref)
    for bad in ("foo", None, torch.complex64, object):
        with pytest.raises(ValueError, match="dtype must be one of"):
            to_frame(ev, SENSOR, n_time_bins=2, dtype=bad)


def test_default_dtype_is_float32_and_p1_merges():
    ev = make_events([0, 1, 2], [0, 0, 1], [0, 0, 0], [0, 1, 1])
    out = to_frame(ev, (2, 1, 1), n_event_bins=1)
    assert out.dtype == np.float32 and out.shape == (1, 1, 1, 2)
    assert out[0, 0, 0].tolist() == [2.0, 1.0]


MODES = [dict(n_time_bins=4), dict(n_event_bins=3), dict(time_window=10), dict(event_count=5),
         dict(frames_number=3, split_by="number"), dict(frames_number=3, split_by="time"),
         dict(duration=7)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["uint8", "int32", "float32"])
def test_empty_input_gives_zeros(mode, dtype):
    out = to_frame(np.empty(0, EVENT_DTYPE), SENSOR, dtype=dtype, **mode)
    T = next(iter(mode.values())) if ("n_" in next(iter(mode)) or "frames_number" in mode) else 1
    assert out.shape == (T, 2, 5, 7) and out.dtype == np.dtype(dtype) and not out.any()


@pytest.mark.parametrize("kw, T", [(dict(start_time=0, end_time=20), 2), (dict(start_time=5, end_time=40), 3),
                                   (dict(start_time=0, end_time=25, include_incomplete=True), 3),
                                   (dict(start_time=0), 1), (dict(end_time=50), 1)])
def test_empty_input_with_fixed_time_windows_keeps_their_count(kw, T):
    """With both start_time and end_time the windows do not depend on the events: an empty sample
    (e.g. after a crop) gave 1 frame where the others gave K, as the slicer's K already was."""
    from neurodata.functional import slicing as S

    empty = np.empty(0, EVENT_DTYPE)
    out = to_frame(empty, SENSOR, time_window=10, **kw)
    assert out.shape == (T, 2, 5, 7) and not out.any()
    if "start_time" in kw and "end_time" in kw:
        assert len(S.slice_by_time(empty, 10, **kw)) == T
        one = make_events([kw["start_time"]], [0], [0], [1])
        assert to_frame(one, SENSOR, time_window=10, **kw).shape[0] == T


@pytest.mark.parametrize("mode", MODES)
def test_zero_duration_keeps_every_event(mode):
    ev = make_events(np.full(9, 42), np.arange(9) % 7, np.zeros(9), np.ones(9))
    out = to_frame(ev, SENSOR, dtype=np.int64, **mode)
    if "time_window" in mode or "event_count" in mode:
        return  # tonic semantics, checked in test_peers_frames
    assert out.sum() == 9
    if "n_time_bins" in mode:
        assert out[0].sum() == 9


def test_one_event_and_sensor_edge():
    ev = make_events([5], [6], [4], [1])
    for mode in MODES:
        out = to_frame(ev, SENSOR, dtype=np.int32, **mode)
        assert out.sum() == 1 and out[..., 1, 4, 6].sum() == 1


def test_extreme_timestamps_do_not_overflow():
    t = np.array([-2**62, -5, 0, 2**61, 2**62], np.int64)
    ev = make_events(t, [0, 1, 2, 3, 4], [0] * 5, [1] * 5)
    for T in (1, 3, 7, 1000):
        out = to_frame(ev, SENSOR, n_time_bins=T, dtype=np.int64)
        np.testing.assert_array_equal(out, _dense(ev, ref_time_bins(ev, T), T))


@pytest.mark.parametrize("mode", [dict(n_time_bins=5), dict(n_event_bins=4), dict(event_count=3000),
                                  dict(frames_number=6, split_by="time"), dict(duration=20000),
                                  dict(time_window=30000, overlap=5000)])
def test_parallel_equals_serial(mode):
    ev = random_events(150_000, sensor_size=(40, 30, 2), duration_us=10**5, seed=4)
    ev["t"][100_000:] = ev["t"][99_999]  # a burst: one huge frame shared by both threads
    ev["t"][100_000:] += np.arange(50_000) // 1000
    a = to_frame(ev, (40, 30, 2), dtype=np.int32, num_threads=1, **mode)
    b = to_frame(ev, (40, 30, 2), dtype=np.int32, num_threads=2, **mode)
    np.testing.assert_array_equal(a, b)


@settings(max_examples=60, deadline=None)
@given(ev=event_arrays(max_x=6, max_y=4, max_t=40, max_n=50), n=st.integers(1, 7), T=st.integers(1, 6))
def test_parallel_kernel_split_rule(ev, n, T):
    """The work split of the parallel kernel, for any number of parts, equals the serial kernel."""
    mode = F.frame_mode(n_event_bins=T, overlap=0.5)
    r = F.frame_ranges(ev, mode)
    W, H, P = SENSOR
    words = F._event_words(ev)
    ta = np.full(T, F._I64_MIN, np.int64)
    tb = np.full(T, F._I64_MAX, np.int64)
    serial = np.zeros(T * P * H * W, np.int32)
    F._frames_kernel(words, r.lo, r.hi, ta, tb, serial, W, H, P)
    par = np.zeros_like(serial)
    cum = np.concatenate([[0], np.cumsum(r.hi - r.lo)]).astype(np.int64)
    F._frames_parallel_kernel(words, r.lo, r.hi, ta, tb, cum, par, np.zeros((n, P * H * W), np.int32), W, H, P)
    np.testing.assert_array_equal(serial, par)


# ----------------------------------------------------------------------------------- bad input
def test_out_of_bounds_raises_with_first_index_or_drops():
    ev = make_events([0, 1, 2, 3], [0, 7, 1, 9], [0, 0, 5, 0], [0, 1, 1, 0])
    with pytest.raises(ValueError, match=r"events\[1\]"):
        to_frame(ev, SENSOR, n_time_bins=2)
    with pytest.raises(ValueError, match=r"events\[1\]"):
        to_frame(ev, SENSOR, time_window=2)
    out = to_frame(ev, SENSOR, n_time_bins=2, on_out_of_bounds="drop", dtype=np.int32)
    assert out.sum() == 1 and out[0, 0, 0, 0] == 1
    bad_p = make_events([0, 1], [0, 0], [0, 0], [1, 3])
    with pytest.raises(ValueError, match=r"events\[1\]"):
        to_frame(bad_p, (1, 1, 2), n_event_bins=1)
    assert to_frame(bad_p, (1, 1, 1), n_event_bins=1).sum() == 2  # P == 1 merges


@pytest.mark.parametrize("mode", [dict(n_time_bins=3), dict(n_time_bins=3, overlap=0.5), dict(time_window=2),
                                  dict(frames_number=2, split_by="time"), dict(duration=2)])
def test_unsorted_raises_for_time_modes(mode):
    ev = make_events([0, 7, 3, 9], [0, 1, 2, 3], [0] * 4, [1] * 4)
    with pytest.raises(ValueError, match="sorted"):
        to_frame(ev, SENSOR, **mode)
    to_frame(ev, SENSOR, n_event_bins=2)  # index order: fine
    to_frame(ev, SENSOR, frames_number=2, split_by="number")


@settings(max_examples=150, deadline=None)
@given(ev=event_arrays(max_x=6, max_y=4, max_t=30, max_n=30, sorted_t=False), T=st.integers(1, 6))
def test_unsorted_n_time_bins_raises_or_equals_formula(ev, T):
    """The in-kernel check: an accepted input always gets exactly the documented formula."""
    t = ev["t"].astype(object)
    try:
        out = to_frame(ev, SENSOR, n_time_bins=T, dtype=np.int64)
    except ValueError as e:
        assert "sorted" in str(e) and (np.diff(ev["t"]) < 0).any()
        return
    assert all(t[0] <= v <= t[-1] for v in t)
    np.testing.assert_array_equal(out, _dense(ev, ref_time_bins(ev, T), T))


def test_wrong_dtype_and_fields():
    with pytest.raises(TypeError, match="structured"):
        to_frame(np.zeros((3, 4)), SENSOR, n_time_bins=2)
    with pytest.raises(TypeError, match="missing"):
        to_frame(np.zeros(3, [("t", "<i8"), ("x", "<u2")]), SENSOR, n_time_bins=2)
    tonic_like = np.zeros(2, [("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    tonic_like["p"] = [0, 1]  # int64 fields, as tonic's datasets use
    tonic_like["t"] = [0, 1]
    assert to_frame(tonic_like, SENSOR, n_event_bins=1)[0, :, 0, 0].tolist() == [1, 1]


@pytest.mark.parametrize("kwargs,match", [
    (dict(), "exactly one"),
    (dict(n_time_bins=2, time_window=3), "exactly one"),
    (dict(n_time_bins=0), "n_time_bins"),
    (dict(event_count=2.5), "event_count"),
    (dict(time_window=-1), "time_window"),
    (dict(frames_number=3), "split_by"),
    (dict(frames_number=3, split_by="space"), "split_by"),
    (dict(duration=3, split_by="time"), "split_by"),
    (dict(duration=3, overlap=1), "overlap"),
    (dict(n_time_bins=3, overlap=1.0), "overlap"),
    (dict(time_window=3, overlap=3), "overlap"),
    (dict(n_time_bins=3, include_incomplete=True), "include_incomplete"),
    (dict(event_count=3, start_time=0), "start_time"),
    (dict(n_time_bins=3, dtype="int8"), "dtype"),
    (dict(n_time_bins=3, on_out_of_bounds="clip"), "on_out_of_bounds"),
    (dict(n_time_bins=3, num_threads=0), "num_threads"),
])
def test_bad_parameters_name_themselves(kwargs, match):
    ev = random_events(10, sensor_size=SENSOR)
    with pytest.raises(ValueError, match=match):
        to_frame(ev, SENSOR, **kwargs)
    if "on_out_of_bounds" not in kwargs and "num_threads" not in kwargs:
        with pytest.raises(ValueError, match=match):
            ToFrame(SENSOR, **kwargs)


def test_transform_is_frozen_and_equals_function():
    ev = random_events(500, sensor_size=SENSOR, seed=2)
    tr = ToFrame(SENSOR, n_time_bins=4, dtype=np.uint8)
    with pytest.raises(Exception):
        tr.n_time_bins = 5
    np.testing.assert_array_equal(tr(ev), to_frame(ev, SENSOR, n_time_bins=4, dtype=np.uint8))
    assert "n_time_bins=4" in repr(tr)
    with pytest.raises(TypeError):
        ToFrame(SENSOR, 4)  # mode parameters are keyword-only


def test_numpy_parameters_behave_like_python_ones():
    """A numpy int bin count is a Python int in the edge arithmetic (np.int32 overflowed for a
    30 s recording at T = 100, np.int64 for spans near 2**62); numpy float overlaps are exact."""
    ev = make_events([0, 10_000_000, 30_000_000], [0, 1, 1], [0, 0, 0], [1, 1, 0])
    for T in (np.int32(100), np.int64(100), np.uint16(100)):
        assert np.array_equal(to_frame(ev, (2, 1, 2), n_time_bins=T), to_frame(ev, (2, 1, 2), n_time_bins=100))
    far = make_events([0, 2**62], [0, 0], [0, 0], [1, 1])
    assert to_frame(far, (1, 1, 2), n_time_bins=np.int64(4)).sum() == 2
    assert np.array_equal(to_frame(ev, (2, 1, 2), frames_number=np.int32(3), split_by="time"),
                          to_frame(ev, (2, 1, 2), frames_number=3, split_by="time"))
    assert np.array_equal(to_frame(ev, (2, 1, 2), n_time_bins=4, overlap=np.float32(0.5)),
                          to_frame(ev, (2, 1, 2), n_time_bins=4, overlap=0.5))


@pytest.mark.parametrize("build", [
    lambda: ToFrame((4, 4, 2), n_time_bins=3, on_out_of_bounds="bogus"),
    lambda: ToFrame((4, 4, 2), n_time_bins=3, num_threads=0),
    lambda: ToVoxelGrid((4, 4, 2), 0),
    lambda: ToVoxelGrid((4, 4, 2), 3, dtype=np.int32),
    lambda: ToBinaryRepresentation((4, 4, 2), 0, 99),
    lambda: ToEventCountImage((4, 4, 2), on_out_of_bounds="x"),
    lambda: ToSparseTensor((4, 4, 2), n_time_bins=2, dtype="uint16"),
])
def test_representations_check_parameters_when_built(build):
    """Each representation validates every parameter where it is built, not at its first call (in a
    DataLoader worker); these all built before."""
    with pytest.raises(ValueError):
        build()
