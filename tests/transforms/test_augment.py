"""Augmentations: references, statistics, reproducibility, edge cases and errors."""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neurodata.events import EVENT_DTYPE, make_events
from neurodata.functional import augment as A
from tests.helpers import event_arrays, random_events

SENSOR = (16, 12, 2)
EVS = st.one_of(
    event_arrays(max_x=15, max_y=11, max_t=5000, max_n=120),
    event_arrays(max_x=15, max_y=11, max_t=0, max_n=20),
    event_arrays(max_x=15, max_y=11, max_t=5000, max_n=1),
)

# every random function, called with a seed; used by the reproducibility and global-state tests
RANDOM_CALLS = {
    "drop_event": lambda e, r: A.drop_event(e, 0.3, rng=r),
    "drop_event_range": lambda e, r: A.drop_event(e, (0.1, 0.9), rng=r),
    "drop_event_by_time": lambda e, r: A.drop_event_by_time(e, (0.1, 0.5), rng=r),
    "drop_event_by_area": lambda e, r: A.drop_event_by_area(e, SENSOR, (0.2, 0.6), rng=r),
    "event_drop": lambda e, r: A.event_drop(e, SENSOR, rng=r),
    "spatial_jitter": lambda e, r: A.spatial_jitter(e, SENSOR, 2.0, 1.0, 0.5, rng=r),
    "time_jitter": lambda e, r: A.time_jitter(e, 100.0, rng=r),
    "time_skew": lambda e, r: A.time_skew(e, (0.5, 2.0), (0, 100), rng=r),
    "uniform_noise": lambda e, r: A.uniform_noise(e, SENSOR, (5, 50), rng=r),
    "flip_polarity": lambda e, r: A.flip_polarity(e, 0.5, per_event=True, rng=r),
    "random_crop": lambda e, r: A.random_crop(e, SENSOR, (7, 5), rng=r),
}


def subsequence(sub, full):
    """True iff ``sub`` is ``full`` with some rows removed (order kept)."""
    j = 0
    for row in sub:
        while j < len(full) and full[j] != row:
            j += 1
        if j == len(full):
            return False
        j += 1
    return True


@pytest.mark.parametrize("name", sorted(RANDOM_CALLS))
def test_seed_reproducible_no_global_state(name):
    ev = random_events(400, SENSOR, 10**4, seed=5)
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    fn = RANDOM_CALLS[name]
    a, b = fn(ev, 42), fn(ev, 42)
    assert a.dtype == EVENT_DTYPE and np.array_equal(a, b)
    assert np.array_equal(fn(ev, np.random.default_rng(42)), a)
    assert np.array_equal(np.random.get_state()[1], state)  # global numpy RNG untouched
    assert len({fn(ev, s).tobytes() for s in range(6)}) > 1  # it is random
    assert np.all(np.diff(a["t"]) >= 0)  # sorted in, sorted out
    empty = fn(np.empty(0, EVENT_DTYPE), 1)
    assert empty.dtype == EVENT_DTYPE and len(empty) == 0


def test_as_rng():
    g = np.random.default_rng(1)
    assert A.as_rng(g) is g
    assert isinstance(A.as_rng(None), np.random.Generator)
    with pytest.raises(TypeError, match="rng"):
        A.as_rng("seed")
    with pytest.raises(TypeError, match="rng"):
        A.as_rng(np.random.RandomState(1))


@settings(max_examples=100, deadline=None)
@given(EVS, st.floats(0, 1), st.integers(0, 2**32))
def test_drop_event_exact_count(ev, p, seed):
    out = A.drop_event(ev, p, rng=seed)
    assert len(out) == len(ev) - int(np.floor(p * len(ev) + 0.5))
    assert subsequence(out, ev)


def test_drop_event_fraction_binomial():
    # each event's survival is Bernoulli(1 - p) across seeds: check every event's count
    ev = make_events(np.arange(40), np.arange(40) % 16, np.zeros(40), np.zeros(40))
    p, trials = 0.3, 2000
    kept = np.zeros(40)
    rng = np.random.default_rng(9)
    for _ in range(trials):
        kept[A.drop_event(ev, p, rng=rng)["t"]] += 1
    sd = np.sqrt(trials * p * (1 - p))
    assert np.all(np.abs(kept - trials * (1 - p)) < 5 * sd)
    assert kept.sum() == trials * (40 - 12)


@settings(max_examples=100, deadline=None)
@given(EVS, st.floats(0, 0.99), st.integers(0, 2**32))
def test_drop_event_by_time_is_one_closed_interval(ev, r, seed):
    out = A.drop_event_by_time(ev, r, rng=seed)
    assert subsequence(out, ev)
    keep_mask = np.zeros(len(ev), bool)
    j = 0
    for i, row in enumerate(ev):
        if j < len(out) and out[j] == row:
            keep_mask[i] = True
            j += 1
    dropped = ev["t"][~keep_mask]
    if len(dropped):
        lo, hi = dropped.min(), dropped.max()
        assert hi - lo <= r * (int(ev["t"][-1]) - int(ev["t"][0])) + 1e-6
        assert not np.any((ev["t"][keep_mask] >= lo) & (ev["t"][keep_mask] <= hi))


def test_drop_event_by_time_fraction():
    ev = random_events(20000, SENSOR, 10**6, seed=2)
    frac = np.mean([1 - len(A.drop_event_by_time(ev, 0.25, rng=s)) / len(ev) for s in range(20)])
    assert abs(frac - 0.25) < 0.01


@settings(max_examples=100, deadline=None)
@given(EVS, st.floats(0, 0.99), st.integers(0, 2**32))
def test_drop_event_by_area_box(ev, r, seed):
    out = A.drop_event_by_area(ev, SENSOR, r, rng=seed)
    assert subsequence(out, ev)
    w, h = int(16 * r), int(12 * r)
    # rebuild the box from the same draws and compare with a per-event loop
    g = np.random.default_rng(seed)
    x0, y0 = int(g.integers(0, 16 - w)), int(g.integers(0, 12 - h))
    ref = [e for e in ev if not (x0 <= e["x"] < x0 + w and y0 <= e["y"] < y0 + h)]
    assert np.array_equal(out, np.array(ref, dtype=EVENT_DTYPE))


def test_event_drop_uses_all_strategies():
    ev = random_events(1000, SENSOR, 10**5, seed=4)
    sizes = {len(A.event_drop(ev, SENSOR, rng=s)) for s in range(60)}
    assert len(ev) in sizes and len(sizes) > 5


@settings(max_examples=80, deadline=None)
@given(EVS, st.sampled_from(["drop", "clip"]), st.integers(0, 2**32))
def test_spatial_jitter_reference(ev, policy, seed):
    vx, vy, sxy = 2.0, 3.0, -1.2
    out = A.spatial_jitter(ev, SENSOR, vx, vy, sxy, policy=policy, rng=seed)
    z = np.random.default_rng(seed).standard_normal((2, len(ev)))
    a = np.sqrt(vx); b = sxy / a; c = np.sqrt(vy - b * b)
    ref = []
    for i, e in enumerate(ev):
        x = round(float(e["x"]) + a * z[0, i])  # Python round = half to even
        y = round(float(e["y"]) + b * z[0, i] + c * z[1, i])
        if policy == "clip":
            ref.append((e["t"], min(max(x, 0), 15), min(max(y, 0), 11), e["p"]))
        elif 0 <= x <= 15 and 0 <= y <= 11:
            ref.append((e["t"], x, y, e["p"]))
    assert np.array_equal(out, np.array(ref, dtype=EVENT_DTYPE))


def test_spatial_jitter_statistics():
    n = 40000
    ev = make_events(np.arange(n), np.full(n, 500), np.full(n, 500), np.zeros(n))
    out = A.spatial_jitter(ev, (1000, 1000, 2), 4.0, 9.0, 3.0, rng=3)
    dx = out["x"].astype(float) - 500
    dy = out["y"].astype(float) - 500
    assert abs(dx.mean()) < 5 * 2 / np.sqrt(n) and abs(dy.mean()) < 5 * 3 / np.sqrt(n)
    cov = np.cov(dx, dy)  # rounding adds ~1/12 to each variance
    assert np.allclose(cov, [[4 + 1 / 12, 3], [3, 9 + 1 / 12]], atol=0.25)


def test_time_jitter_reference_and_zero_mean():
    ev = random_events(50000, SENSOR, 10**6, seed=8)
    out = A.time_jitter(ev, 50.0, rng=11)
    noise = np.random.default_rng(11).normal(0, 50.0, len(ev))
    ref = ev.copy()
    ref["t"] = ev["t"] + np.array([round(v) for v in noise], dtype=np.int64)
    ref = ref[np.argsort(ref["t"], kind="stable")]
    assert np.array_equal(out, ref)
    shift = (out["t"].sum() - ev["t"].sum()) / len(ev)
    assert abs(shift) < 5 * 50 / np.sqrt(len(ev))
    neg = A.time_jitter(make_events([0, 1, 2], [0, 0, 0], [0, 0, 0], [0, 0, 0]), 1000.0, drop_negative=True, rng=1)
    assert np.all(neg["t"] >= 0)


@settings(max_examples=100, deadline=None)
@given(EVS, st.floats(0.01, 100), st.floats(-1e6, 1e6))
def test_time_skew_reference(ev, c, o):
    out = A.time_skew(ev, c, o)
    assert out["t"].tolist() == [round(float(t) * c + o) for t in ev["t"]]
    assert np.all(np.diff(out["t"]) >= 0)


@settings(max_examples=100, deadline=None)
@given(EVS)
def test_involutions(ev):
    assert np.array_equal(A.flip_lr(A.flip_lr(ev, SENSOR), SENSOR), ev)
    assert np.array_equal(A.flip_ud(A.flip_ud(ev, SENSOR), SENSOR), ev)
    assert np.array_equal(A.flip_polarity(A.flip_polarity(ev, 1.0), 1.0), ev)
    assert np.array_equal(A.flip_polarity(ev, 0.0), ev)
    assert np.array_equal(A.time_reversal(A.time_reversal(ev)), ev)
    rev = A.time_reversal(ev)
    if len(ev):
        assert rev["t"][0] == ev["t"][0] and rev["t"][-1] == ev["t"][-1]
        assert rev["t"].tolist() == [int(ev["t"][0]) + int(ev["t"][-1]) - int(t) for t in ev["t"][::-1]]
        assert np.array_equal(rev["p"], 1 - ev["p"][::-1])
    assert np.array_equal(A.flip_lr(ev, SENSOR)["x"], 15 - ev["x"])


def test_flip_polarity_per_event_fraction():
    n = 20000
    ev = make_events(np.arange(n), np.zeros(n), np.zeros(n), np.ones(n))
    flipped = (A.flip_polarity(ev, 0.3, per_event=True, rng=5)["p"] == 0).mean()
    assert abs(flipped - 0.3) < 5 * np.sqrt(0.3 * 0.7 / n)
    whole = [A.flip_polarity(ev[:5], 0.3, rng=s)["p"].tolist() for s in range(400)]
    assert all(w in ([0] * 5, [1] * 5) for w in whole)
    assert abs(np.mean([w[0] == 0 for w in whole]) - 0.3) < 0.12


@settings(max_examples=100, deadline=None)
@given(EVS, st.integers(0, 60), st.integers(0, 2**32))
def test_uniform_noise(ev, n, seed):
    out = A.uniform_noise(ev, SENSOR, n, rng=seed)
    if len(ev) == 0:
        assert len(out) == 0
        return
    assert len(out) == len(ev) + n and subsequence(ev, out)
    assert np.all(np.diff(out["t"]) >= 0)
    assert out["t"].min() == ev["t"].min() and out["t"].max() == ev["t"].max()
    assert out["x"].max() < 16 and out["y"].max() < 12 and out["p"].max() < 2


def ref_crop(ev, x0, y0, w, h):
    return np.array([(e["t"], int(e["x"]) - x0, int(e["y"]) - y0, e["p"]) for e in ev
                     if x0 <= e["x"] < x0 + w and y0 <= e["y"] < y0 + h], dtype=EVENT_DTYPE)


@settings(max_examples=100, deadline=None)
@given(EVS, st.integers(1, 25), st.integers(1, 20))
def test_center_crop_reference(ev, w, h):
    out = A.center_crop(ev, SENSOR, (w, h))
    assert np.array_equal(out, ref_crop(ev, (16 - w) // 2, (12 - h) // 2, w, h))
    assert A.cropped_sensor_size(SENSOR, (w, h)) == (w, h, 2)


def test_random_crop_reaches_every_offset():
    ev = make_events([0], [0], [0], [0])
    grid = make_events(np.zeros(16 * 12), np.repeat(np.arange(16), 12), np.tile(np.arange(12), 16), np.zeros(192))
    origins = set()
    for s in range(300):
        out = A.random_crop(grid, SENSOR, (13, 10), rng=s)
        assert len(out) == 130 and out["x"].max() == 12 and out["y"].max() == 9
        g = np.random.default_rng(s)
        x0, y0 = int(g.integers(0, 3, endpoint=True)), int(g.integers(0, 2, endpoint=True))
        assert np.array_equal(out, ref_crop(grid, x0, y0, 13, 10))
        origins.add((x0, y0))
    assert origins == {(a, b) for a in range(4) for b in range(3)}
    with pytest.raises(ValueError, match="exceeds"):
        A.random_crop(ev, SENSOR, (17, 2))


@settings(max_examples=150, deadline=None)
@given(EVS, st.sampled_from([1, 0.5, 0.25, 1 / 3, 0.7, 2.0, (0.5, 1 / 3)]),
       st.sampled_from([1, 0.001, 1 / 3, 2]), st.booleans())
def test_downsample_reference(ev, sf, tf, dedup):
    out = A.downsample(ev, SENSOR, spatial_factor=sf, time_factor=tf, deduplicate=dedup)
    fx, fy = (sf if isinstance(sf, tuple) else (sf, sf))
    fx, fy, ft = (Fraction(v).limit_denominator(2**20) for v in (fx, fy, tf))
    rows, seen = [], set()
    for e in ev:
        r = (int(e["t"]) * ft.numerator // ft.denominator, int(e["x"]) * fx.numerator // fx.denominator,
             int(e["y"]) * fy.numerator // fy.denominator, int(e["p"]))
        if dedup and r in seen:
            continue
        seen.add(r)
        rows.append(r)
    assert np.array_equal(out, np.array(rows, dtype=EVENT_DTYPE))
    W2, H2, P2 = A.downsampled_sensor_size(SENSOR, spatial_factor=sf)
    assert P2 == 2 and np.all(out["x"] < W2) and np.all(out["y"] < H2)


def test_downsample_exact_thirds_and_target_size():
    ev = make_events([0, 1, 2], [3, 6, 299], [0, 0, 0], [0, 0, 0])
    assert A.downsample(ev, (300, 3, 2), spatial_factor=1 / 3)["x"].tolist() == [1, 2, 99]
    assert A.downsampled_sensor_size((300, 3, 2), spatial_factor=1 / 3) == (100, 1, 2)
    assert A.downsampled_sensor_size((346, 260, 2), target_size=(34, 26)) == (34, 26, 2)
    out = A.downsample(ev, (300, 3, 2), target_size=(30, 3))
    assert out["x"].tolist() == [0, 0, 29]
    with pytest.raises(ValueError, match="either"):
        A.downsample(ev, (300, 3, 2), spatial_factor=0.5, target_size=(30, 3))
    with pytest.raises(ValueError, match="time_factor"):
        A.downsample(ev, time_factor=0)


def test_range_parameters_and_single_events():
    ev = random_events(30, SENSOR, 1000, seed=6)
    sizes = {len(A.uniform_noise(ev, SENSOR, (2, 4), rng=s)) - 30 for s in range(200)}
    assert sizes == {2, 3, 4}  # n ~ integers[lo, hi], inclusive
    one = ev[:1]
    assert len(A.drop_event_by_time(one, 0.5, rng=0)) == 0  # s = t0 always covers it
    same_t = make_events([7] * 5, range(5), [0] * 5, [0] * 5)
    assert len(A.drop_event_by_time(same_t, 0.0, rng=0)) == 0
    assert len(A.drop_event_by_area(ev, SENSOR, 0.0, rng=0)) == 30  # no box
    assert len(A.time_reversal(one)) == 1 and A.time_reversal(one)["t"][0] == one["t"][0]


def test_merge_and_align():
    ev = make_events([5, 7, 7], [1, 2, 3], [0, 0, 0], [1, 0, 1])
    assert A.merge_polarities(ev)["p"].tolist() == [0, 0, 0]
    assert A.time_align(ev)["t"].tolist() == [0, 2, 2]


@pytest.mark.parametrize("fn", [
    lambda e: A.drop_event_by_area(e, SENSOR, rng=0), lambda e: A.event_drop(e, SENSOR, rng=0),
    lambda e: A.spatial_jitter(e, SENSOR, rng=0), lambda e: A.uniform_noise(e, SENSOR, 3, rng=0),
    lambda e: A.flip_lr(e, SENSOR), lambda e: A.flip_ud(e, SENSOR),
    lambda e: A.center_crop(e, SENSOR, 4), lambda e: A.random_crop(e, SENSOR, 4, rng=0),
    lambda e: A.downsample(e, SENSOR, spatial_factor=0.5),
])
def test_out_of_bounds_raise(fn):
    ev = make_events([0, 1, 2, 3], [0, 1, 16, 2], [0, 1, 1, 1], [0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"events\[2\]"):
        fn(ev)


@pytest.mark.parametrize("fn", [
    lambda e: A.drop_event_by_time(e, rng=0), lambda e: A.time_reversal(e),
    lambda e: A.downsample(e, time_factor=0.5),
])
def test_unsorted_raise(fn):
    with pytest.raises(ValueError, match="sorted"):
        fn(make_events([3, 1], [0, 0], [0, 0], [0, 0]))


def test_parameter_errors():
    ev = random_events(10, SENSOR, 100)
    with pytest.raises(ValueError, match="p must"):
        A.drop_event(ev, 1.5)
    with pytest.raises(ValueError, match="duration_ratio"):
        A.drop_event_by_time(ev, 1.0)
    with pytest.raises(ValueError, match="low must not exceed"):
        A.drop_event(ev, (0.5, 0.1))
    with pytest.raises(ValueError, match="positive semi-definite"):
        A.spatial_jitter(ev, SENSOR, 1.0, 1.0, 2.0)
    with pytest.raises(ValueError, match="policy"):
        A.spatial_jitter(ev, SENSOR, policy="wrap")
    with pytest.raises(ValueError, match="coefficient"):
        A.time_skew(ev, -1.0)
    with pytest.raises(ValueError, match="n must"):
        A.uniform_noise(ev, SENSOR, -2)
    with pytest.raises(ValueError, match="size"):
        A.center_crop(ev, SENSOR, (0, 3))
    with pytest.raises(ValueError, match="int64"):
        A.time_skew(ev, 1e30)


def test_numpy_float_factors():
    """``Fraction(np.float32(0.5))`` raises TypeError: factors are read by their float value."""
    from neurodata.transforms import Downsample

    ev = random_events(200, (8, 6, 2), seed=3)
    for kw in (dict(spatial_factor=0.5), dict(time_factor=0.25)):
        f32 = {k: np.float32(v) for k, v in kw.items()}
        assert np.array_equal(Downsample((8, 6, 2), **f32)(ev), Downsample((8, 6, 2), **kw)(ev))


def test_overflow_and_precision_edges_raise_or_hold():
    """Each of these wrapped around or lost precision silently: a padded crop past uint16, a
    jitter or alignment past int64; a float16 hot-pixel frequency kept float16 precision (and
    missed a 5 kHz pixel at 100 Hz); event_drop checked the order only when it drew strategy 1."""
    from neurodata.functional import filters as Fl

    with pytest.raises(ValueError, match="uint16"):
        A.center_crop(make_events([0], [1], [1], [0]), (4, 4, 2), 200000)
    with pytest.raises(ValueError, match="int64"):
        A.time_jitter(make_events([2**63 - 2], [0], [0], [0]), 100, rng=1)
    with pytest.raises(ValueError, match="int64"):
        A.time_align(make_events([-2**63, 2**63 - 1], [0, 0], [0, 0], [0, 0]))
    n = 5000
    hot = make_events(np.linspace(0, 10**6, n).astype(np.int64), np.zeros(n), np.zeros(n), np.zeros(n))
    for f in (100.0, np.float16(100), np.float32(100)):
        assert Fl.identify_hot_pixels(hot, f).tolist() == [[0, 0]]
    with pytest.raises(ValueError, match="hot_pixel_frequency"):  # checked on empty input too
        Fl.identify_hot_pixels(hot[:0], -5)
    unsorted = make_events([5, 3, 1], [0, 1, 2], [0, 0, 0], [0, 1, 0])
    for seed in range(8):
        with pytest.raises(ValueError, match="sorted"):
            A.event_drop(unsorted, (4, 4, 2), rng=seed)


def test_downsample_target_size_needs_the_transforms_sensor_size():
    """Built with target_size alone it reported an output size, then raised at every call; its
    output size comes from its own sensor_size, the one its calls use."""
    from neurodata.transforms import Downsample

    with pytest.raises(ValueError, match="target_size needs sensor_size"):
        Downsample(target_size=(10, 3))
    down = Downsample((20, 15, 2), target_size=(10, 3))
    assert down.output_sensor_size((40, 30, 2)) == down.output_sensor_size((20, 15, 2)) == (10, 3, 2)
