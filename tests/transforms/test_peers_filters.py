"""Equality with tonic 1.7 where our semantics are defined to match (``pytest -m peers``)."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from neurodata.events import EVENT_DTYPE
from neurodata.functional import augment as A, filters as F, slicing as S
from tests.helpers import event_arrays, random_events

tonic_f = pytest.importorskip("tonic.functional", reason="tonic is not installed")
tonic_t = pytest.importorskip("tonic.transforms", reason="tonic is not installed")
tonic_s = pytest.importorskip("tonic.slicers", reason="tonic is not installed")

pytestmark = pytest.mark.peers

NONEMPTY = st.one_of(
    event_arrays(max_x=6, max_y=4, max_t=3000, max_n=80),
    event_arrays(max_x=3, max_y=3, max_t=0, max_n=20),
    event_arrays(max_x=0, max_y=0, max_t=50, max_n=10),
    event_arrays(max_x=30, max_y=20, max_t=10**5, max_n=300),
).filter(len)


def same_as_tonic(ours, theirs):
    assert ours.dtype == EVENT_DTYPE
    if len(ours) == 0:  # tonic's decimation returns a float64 np.array([]) then
        assert len(theirs) == 0
        return
    assert np.array_equal(ours, np.asarray(theirs).astype(EVENT_DTYPE))


# tonic adds filter_time to t in float64: a fractional part below float64 resolution at t is lost
# there, so fractional times are drawn >= 0.001 (our rule is the exact ``t - t' < filter_time``)
TIMES = st.one_of(st.integers(0, 2000), st.floats(0.001, 2000), st.integers(0, 2000).map(lambda i: i + 0.5))


@settings(max_examples=150, deadline=None)
@given(NONEMPTY, TIMES)
def test_denoise_equals_tonic(ev, ft):
    same_as_tonic(F.denoise(ev, ft), tonic_f.denoise_numpy(ev.copy(), ft))


@settings(max_examples=150, deadline=None)
@given(NONEMPTY, TIMES)
def test_refractory_equals_tonic(ev, period):
    same_as_tonic(F.refractory_period(ev, period), tonic_f.refractory_period_numpy(ev.copy(), period))


@settings(max_examples=150, deadline=None)
@given(NONEMPTY, st.integers(1, 6))
def test_decimation_equals_tonic(ev, n):
    same_as_tonic(F.decimate(ev, n), tonic_f.decimate_numpy(ev.copy(), n))


@settings(max_examples=100, deadline=None)
@given(NONEMPTY, st.floats(0, 10**5))
def test_hot_pixels_equal_tonic(ev, f):
    hot = tonic_f.identify_hot_pixel(ev.copy(), f)
    assert np.array_equal(F.identify_hot_pixels(ev, f), np.asarray(hot, dtype=np.int64).reshape(-1, 2))
    same_as_tonic(F.drop_hot_pixels(ev, f), tonic_f.drop_pixel_numpy(ev.copy(), hot))


def test_large_recording_equals_tonic():
    ev = random_events(50_000, (64, 48, 2), 10**6, seed=11)
    same_as_tonic(F.denoise(ev, 5000), tonic_f.denoise_numpy(ev, 5000))
    same_as_tonic(F.refractory_period(ev, 2000), tonic_f.refractory_period_numpy(ev, 2000))
    same_as_tonic(F.decimate(ev, 4), tonic_f.decimate_numpy(ev, 4))


@settings(max_examples=100, deadline=None)
@given(NONEMPTY, st.integers(1, 7), st.integers(1, 5))  # larger sizes (padding) raise OverflowError in tonic
def test_center_crop_and_merge_equal_tonic(ev, w, h):
    sensor = (7, 5, 2)
    assume(int(ev["x"].max()) < 7 and int(ev["y"].max()) < 5)
    theirs = tonic_t.CenterCrop(sensor_size=sensor, size=(w, h))(ev.copy())
    same_as_tonic(A.center_crop(ev, sensor, (w, h)), theirs)
    same_as_tonic(A.merge_polarities(ev), tonic_t.MergePolarities()(ev.copy()))
    same_as_tonic(A.time_align(ev), tonic_t.TimeAlignment()(ev.copy()))
    same_as_tonic(A.flip_lr(ev, sensor), tonic_t.RandomFlipLR(sensor_size=sensor, p=1.0)(ev.copy()))
    same_as_tonic(A.flip_ud(ev, sensor), tonic_t.RandomFlipUD(sensor_size=sensor, p=1.0)(ev.copy()))
    same_as_tonic(A.flip_polarity(ev, 1.0), tonic_t.RandomFlipPolarity(p=1.0)(ev.copy()))


def _pairs(slices):
    return [(len(s), s["t"].tolist()) for s in slices]


@settings(max_examples=150, deadline=None)
@given(NONEMPTY, st.integers(1, 1500), st.integers(0, 1499), st.booleans())
def test_slice_by_time_equals_tonic(ev, window, overlap, incomplete):
    assume(overlap < window)
    ours = S.slice_by_time(ev, window, overlap=overlap, include_incomplete=incomplete)
    theirs = tonic_s.slice_events_by_time(ev, window, overlap=overlap, include_incomplete=incomplete)
    assert _pairs(ours) == _pairs(theirs)


@settings(max_examples=150, deadline=None)
@given(NONEMPTY, st.integers(1, 50), st.integers(0, 49), st.booleans())
def test_slice_by_count_equals_tonic(ev, count, overlap, incomplete):
    assume(overlap < count)
    ours = S.slice_by_count(ev, count, overlap=overlap, include_incomplete=incomplete)
    theirs = tonic_s.SliceByEventCount(event_count=count, overlap=overlap,
                                       include_incomplete=incomplete).slice(ev, None)[0]
    assert _pairs(ours) == _pairs(theirs)


@settings(max_examples=50, deadline=None)
@given(NONEMPTY, st.floats(0, 1))
def test_drop_event_count_equals_tonic(ev, p):
    np.random.seed(0)  # tonic draws from the global state; only the count is compared
    assert len(A.drop_event(ev, p, rng=1)) == len(tonic_f.drop_event_numpy(ev.copy(), p))
