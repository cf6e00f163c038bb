"""Compose, the transform calling convention, output_sensor_size, and the slicers."""
import dataclasses
import inspect

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neurodata import transforms as T
from neurodata.events import EVENT_DTYPE, make_events
from neurodata.functional import augment as A, filters as F, slicing as S
from tests.helpers import event_arrays, random_events

SENSOR = (32, 24, 2)


def test_compose_equals_manual_chain_with_one_generator():
    ev = random_events(5000, SENSOR, 10**5, seed=1)
    pipe = T.Compose([T.Denoise(filter_time=2000), T.DropEvent(p=0.2), T.TimeJitter(std=30.0),
                      T.RandomFlipLR(sensor_size=SENSOR), T.RandomCrop(sensor_size=SENSOR, target_size=(20, 20))])
    g = np.random.default_rng(5)
    ref = F.denoise(ev, 2000)
    ref = A.drop_event(ref, 0.2, rng=g)
    ref = A.time_jitter(ref, 30.0, rng=g)
    ref = A.flip_lr(ref, SENSOR) if g.random() < 0.5 else ref
    ref = A.random_crop(ref, SENSOR, (20, 20), rng=g)
    out = pipe(ev, rng=5)
    assert np.array_equal(out, ref)
    assert np.array_equal(pipe(ev, rng=5), out)  # same seed, same output: no state kept
    assert pipe.output_sensor_size(SENSOR) == (20, 20, 2)


def test_output_sensor_size_chain_and_identity():
    pipe = T.Compose([T.CenterCrop(sensor_size=SENSOR, size=(30, 20)), T.Downsample(spatial_factor=0.5),
                      T.MergePolarities(), T.TimeAlignment(), lambda e: e])
    assert pipe.output_sensor_size(SENSOR) == (15, 10, 1)
    for t in (T.DropEvent(p=0.1), T.TimeSkew(coefficient=2.0), T.Denoise(filter_time=1),
              T.SpatialJitter(sensor_size=SENSOR), T.UniformNoise(sensor_size=SENSOR, n=3)):
        assert t.output_sensor_size(SENSOR) == SENSOR
    assert T.Downsample(sensor_size=(346, 260, 2), target_size=(34, 26)).output_sensor_size((346, 260, 2)) == (34, 26, 2)
    ev = random_events(2000, SENSOR, 10**4, seed=2)
    out = pipe(ev)
    W, H, _ = pipe.output_sensor_size(SENSOR)
    assert out["x"].max() < W and out["y"].max() < H and out["p"].max() == 0 and out["t"].min() == 0


def test_compose_calls_foreign_callables_without_rng_and_passes_empty_input():
    seen = []
    pipe = T.Compose((lambda e: seen.append(len(e)) or e, T.DropEvent(p=0.5), T.UniformNoise(sensor_size=SENSOR, n=4)))
    out = pipe(np.empty(0, EVENT_DTYPE), rng=1)
    assert seen == [0] and out.dtype == EVENT_DTYPE and len(out) == 0
    assert isinstance(pipe.transforms, tuple)
    with pytest.raises(TypeError, match="not callable"):
        T.Compose([3])
    with pytest.raises(dataclasses.FrozenInstanceError):
        pipe.transforms = ()
    assert "DropEvent(p=0.5)" in repr(pipe)


@pytest.mark.parametrize("t", [
    T.RandomFlipLR(sensor_size=SENSOR, p=0.5), T.RandomFlipUD(sensor_size=SENSOR, p=0.5),
    T.RandomTimeReversal(p=0.5), T.RandomFlipPolarity(p=0.5),
])
def test_random_transforms_apply_with_probability_p(t):
    ev = random_events(50, SENSOR, 1000, seed=3)
    changed = [not np.array_equal(t(ev, rng=s), ev) for s in range(400)]
    assert abs(np.mean(changed) - 0.5) < 0.1
    always = dataclasses.replace(t, p=1.0)
    never = dataclasses.replace(t, p=0.0)
    assert all(not np.array_equal(always(ev, rng=s), ev) for s in range(5))
    assert all(np.array_equal(never(ev, rng=s), ev) for s in range(5))
    bad = make_events([0, 1], [0, 40], [0, 0], [0, 1])
    if "sensor_size" in {f.name for f in dataclasses.fields(t)}:
        for s in range(4):  # the error does not depend on the coin flip
            with pytest.raises(ValueError, match=r"events\[1\]"):
                t(bad, rng=s)


def test_every_transform_accepts_rng_and_is_frozen():
    names = [n for n in T.__dict__ if n[0].isupper() and dataclasses.is_dataclass(T.__dict__[n])]
    for mod in (T.augment, T.filters, T.compose):
        for n in mod.__all__:
            cls = getattr(T, n)
            assert cls.__dataclass_params__.frozen, n
            assert n in names
            assert "rng" in inspect.signature(cls.__call__).parameters, n


@settings(max_examples=100, deadline=None)
@given(event_arrays(max_x=10, max_y=10, max_t=2000, max_n=60), st.integers(1, 500), st.integers(0, 499),
       st.booleans())
def test_slice_by_time_reference(ev, window, overlap, incomplete):
    if overlap >= window:
        return
    out = T.SliceByTime(time_window=window, overlap=overlap, include_incomplete=incomplete)(ev)
    if len(ev) == 0:
        assert out == []
        return
    t0, t1, stride = int(ev["t"][0]), int(ev["t"][-1]), window - overlap
    # count windows one by one: without include_incomplete, those ending at or before t1; with it,
    # also the next ones as long as the previous window ended before t1
    k = 0
    while (t0 + k * stride + window <= t1) if not incomplete else (t0 + k * stride + window - stride < t1):
        k += 1
    assert len(out) == max(k, 1)
    starts = [t0 + i * stride for i in range(len(out))]
    for s, sl in zip(starts, out):
        assert sl["t"].tolist() == [int(t) for t in ev["t"] if s <= t < s + window]


def test_slicer_edges():
    ev = make_events([0, 50, 100], [0, 0, 0], [0, 0, 0], [0, 0, 0])
    assert [len(s) for s in S.slice_by_time(ev, 50)] == [1, 1]  # event at the end is outside [50, 100)
    assert [len(s) for s in S.slice_by_time(ev, 50, include_incomplete=True)] == [1, 1]
    assert [len(s) for s in S.slice_by_time(ev, 40, include_incomplete=True)] == [1, 1, 1]
    assert S.time_slice_indices(ev, 1000).tolist() == [[0, 3]]
    assert [len(s) for s in S.slice_by_time(ev, 1000)] == [3]
    assert [len(s) for s in S.slice_by_time(np.empty(0, EVENT_DTYPE), 10, start_time=0, end_time=30)] == [0, 0, 0]
    assert S.slice_by_time(np.empty(0, EVENT_DTYPE), 10) == []
    assert [len(s) for s in S.slice_by_count(ev, 2)] == [2]
    assert [len(s) for s in S.slice_by_count(ev, 2, include_incomplete=True)] == [2, 1]
    assert [len(s) for s in S.slice_by_count(ev, 5)] == [3]
    assert [len(s) for s in S.slice_by_count(np.empty(0, EVENT_DTYPE), 5)] == [0]
    assert T.SliceByCount(event_count=2, overlap=1).indices(ev).tolist() == [[0, 2], [1, 3]]
    cols = {f: ev[f] for f in "txyp"}  # a column dict (4 keys) counts its events, as __call__ does
    assert T.SliceByCount(event_count=1).indices(cols).tolist() == [[0, 1], [1, 2], [2, 3]]
    sl = T.SliceByIndices(start_indices=[0, 1], end_indices=[2, 3])
    assert [s["t"].tolist() for s in sl(ev)] == [[0, 50], [50, 100]]
    assert sl.indices(ev).tolist() == [[0, 2], [1, 3]]
    with pytest.raises(ValueError, match=r"slice 1 = \[2, 5\)"):
        S.slice_by_indices(ev, [0, 2], [1, 5])
    with pytest.raises(ValueError, match="overlap"):
        S.slice_by_time(ev, 10, overlap=10)
    with pytest.raises(ValueError, match="sorted"):
        S.slice_by_time(ev[::-1], 10)
    with pytest.raises(ValueError, match="time_window"):
        S.slice_by_time(ev, 0)


WRAPPERS = [
    (T.DropEvent(p=(0.1, 0.4)), lambda e, g: A.drop_event(e, (0.1, 0.4), rng=g)),
    (T.DropEventByTime(duration_ratio=0.3), lambda e, g: A.drop_event_by_time(e, 0.3, rng=g)),
    (T.DropEventByArea(sensor_size=SENSOR, area_ratio=0.4), lambda e, g: A.drop_event_by_area(e, SENSOR, 0.4, rng=g)),
    (T.EventDrop(sensor_size=SENSOR), lambda e, g: A.event_drop(e, SENSOR, rng=g)),
    (T.SpatialJitter(sensor_size=SENSOR, var_x=2, var_y=3, sigma_xy=1, policy="clip"),
     lambda e, g: A.spatial_jitter(e, SENSOR, 2, 3, 1, policy="clip", rng=g)),
    (T.TimeJitter(std=20, drop_negative=True), lambda e, g: A.time_jitter(e, 20, drop_negative=True, rng=g)),
    (T.TimeSkew(coefficient=(0.9, 1.1), offset=(0, 10)), lambda e, g: A.time_skew(e, (0.9, 1.1), (0, 10), rng=g)),
    (T.UniformNoise(sensor_size=SENSOR, n=(1, 9)), lambda e, g: A.uniform_noise(e, SENSOR, (1, 9), rng=g)),
    (T.RandomFlipPolarity(p=0.4, per_event=True), lambda e, g: A.flip_polarity(e, 0.4, per_event=True, rng=g)),
    (T.RandomCrop(sensor_size=SENSOR, target_size=(10, 9)), lambda e, g: A.random_crop(e, SENSOR, (10, 9), rng=g)),
    (T.CenterCrop(sensor_size=SENSOR, size=11), lambda e, g: A.center_crop(e, SENSOR, 11)),
    (T.Downsample(sensor_size=SENSOR, target_size=(8, 6), time_factor=0.5, deduplicate=True),
     lambda e, g: A.downsample(e, SENSOR, target_size=(8, 6), time_factor=0.5, deduplicate=True)),
    (T.MergePolarities(), lambda e, g: A.merge_polarities(e)),
    (T.TimeAlignment(), lambda e, g: A.time_align(e)),
    (T.Denoise(filter_time=300, tonic_compatible=False), lambda e, g: F.denoise(e, 300, tonic_compatible=False)),
    (T.RefractoryPeriod(delta=250), lambda e, g: F.refractory_period(e, 250)),
    (T.Decimation(n=2), lambda e, g: F.decimate(e, 2)),
]


@pytest.mark.parametrize("t,fn", WRAPPERS, ids=[type(w[0]).__name__ for w in WRAPPERS])
def test_transforms_equal_their_functions(t, fn):
    ev = random_events(3000, SENSOR, 10**5, seed=12)
    for s in range(3):
        assert np.array_equal(t(ev, rng=s), fn(ev, np.random.default_rng(s)))
    assert np.array_equal(t(ev, rng=4), t(ev, rng=4))
