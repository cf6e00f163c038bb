"""The event emulator against a slow, obviously correct reference, and the saccade-digits data."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodata.emulate import emulate
from neurodata.saccade_digits import DURATION_US, SENSOR_SIZE, render_sample


def reference(frames, t_us, c_on, c_off, refractory, eps=1e-3):
    """Per pixel, per frame pair: crossings of the linearly interpolated log intensity."""
    logs = [[[math.log(float(v) + eps) for v in row] for row in f] for f in frames]
    H, W = len(frames[0]), len(frames[0][0])
    out = []
    for y in range(H):
        for x in range(W):
            ref, last = logs[0][y][x], None
            for k in range(len(frames) - 1):
                l0, l1 = logs[k][y][x], logs[k + 1][y][x]
                if l1 == l0:
                    continue
                while True:
                    if l1 - ref >= c_on:
                        ref, pol = ref + c_on, 1
                    elif ref - l1 >= c_off:
                        ref, pol = ref - c_off, 0
                    else:
                        break
                    frac = min(max((ref - l0) / (l1 - l0), 0.0), 1.0)
                    t = int(t_us[k]) + math.floor(frac * (int(t_us[k + 1]) - int(t_us[k])))
                    if last is not None and t - last < refractory:
                        continue
                    last = t
                    out.append((t, x, y, pol))
    out.sort(key=lambda e: e[0])   # stable: ties keep pixel-major order
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**31 - 1),
       st.floats(0.05, 1.0), st.floats(0.05, 1.0), st.integers(0, 300))
def test_emulator_matches_reference(n, h, w, seed, c_on, c_off, refractory):
    rng = np.random.default_rng(seed)
    frames = rng.random((n, h, w)) * rng.choice([0.1, 1.0, 10.0])
    t = np.cumsum(rng.integers(1, 1000, n))
    ev = emulate(frames, t, threshold_on=c_on, threshold_off=c_off, refractory_us=refractory)
    assert [tuple(int(v) for v in e) for e in ev] == reference(frames, t, c_on, c_off, refractory)


def test_emulator_basic_physics():
    t = np.array([0, 1000])
    up = emulate(np.array([[[1.0]], [[np.e ** 1.0 - 1e-3]]]), t, threshold_on=0.25, threshold_off=0.25)
    # log goes up by 1 - log(1.001) ≈ 0.9990: three ON crossings at fractions 0.25, 0.5, 0.75 of it
    assert up["p"].tolist() == [1, 1, 1]
    assert up["t"].tolist() == [250, 500, 750]
    down = emulate(np.array([[[1.0]], [[0.0]]]), t, threshold_on=0.5, threshold_off=0.5)
    assert set(down["p"].tolist()) == {0} and down.size == 13        # log(1.001) - log(0.001) ≈ 6.9
    assert emulate(np.ones((3, 2, 2)), [0, 1, 2]).size == 0           # nothing changes, nothing fires


def test_emulator_mismatch_and_noise_are_seeded():
    frames = np.random.default_rng(0).random((20, 8, 8))
    t = np.arange(20) * 1000
    a = emulate(frames, t, threshold_sigma=0.2, noise_rate_hz=50, rng=7)
    b = emulate(frames, t, threshold_sigma=0.2, noise_rate_hz=50, rng=7)
    c = emulate(frames, t, threshold_sigma=0.2, noise_rate_hz=50, rng=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    quiet = emulate(np.ones((2, 50, 50)), [0, 10**6], noise_rate_hz=2.0, rng=0)
    assert abs(quiet.size - 5000) < 5 * math.sqrt(5000)               # Poisson(2 Hz · 1 s · 2500 px)
    assert np.all(np.diff(quiet["t"]) >= 0)


@pytest.mark.parametrize("kw", [dict(threshold_on=0), dict(threshold_sigma=-1), dict(refractory_us=-1)])
def test_emulator_rejects_bad_parameters(kw):
    with pytest.raises(ValueError):
        emulate(np.ones((2, 2, 2)), [0, 1], **kw)
    with pytest.raises(ValueError, match="increasing"):
        emulate(np.ones((2, 2, 2)), [5, 5])
    with pytest.raises(ValueError, match="non-negative"):
        emulate(-np.ones((2, 2, 2)), [0, 1])


def test_saccade_digits_samples():
    a = render_sample(3, 11)
    assert np.array_equal(a, render_sample(3, 11))                   # deterministic from the seed
    assert not np.array_equal(a, render_sample(3, 12))
    assert a["x"].max() < SENSOR_SIZE[0] and a["y"].max() < SENSOR_SIZE[1]
    assert a["t"].min() >= 0 and a["t"].max() <= DURATION_US and np.all(np.diff(a["t"]) >= 0)
    assert 1000 < a.size < 50_000 and 0.3 < a["p"].mean() < 0.7
    # the three saccades: events in each third of the recording
    thirds = np.bincount(np.minimum(a["t"] * 3 // DURATION_US, 2), minlength=3)
    assert (thirds > 0.15 * a.size).all()
    with pytest.raises(ValueError):
        render_sample(10, 0)
