"""Voxel grid against a per-event Python reference of Zhu et al.'s formula."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodata.events import EVENT_DTYPE, make_events
from neurodata.functional.voxel import to_voxel_grid
from neurodata.transforms import ToVoxelGrid
from tests.helpers import event_arrays

SENSOR = (6, 4, 2)


def ref_voxel(ev, B, sensor=SENSOR):
    W, H, _ = sensor
    out = np.zeros((B, 1, H, W))
    t = [int(v) for v in ev["t"]]
    for k in range(len(t)):
        ts = 0.0 if t[-1] == t[0] else (B - 1) * (t[k] - t[0]) / (t[-1] - t[0])
        s = 1.0 if ev["p"][k] > 0 else -1.0
        for b in range(B):
            out[b, 0, ev["y"][k], ev["x"][k]] += s * max(0.0, 1.0 - abs(b - ts))
    return out


@settings(max_examples=150, deadline=None)
@given(ev=st.one_of(event_arrays(max_x=5, max_y=3, max_t=50, max_n=50),
                    event_arrays(max_x=5, max_y=3, max_t=10**12, max_n=50)),
       B=st.integers(1, 7))
def test_voxel_matches_reference(ev, B):
    out = to_voxel_grid(ev, SENSOR, B, dtype=np.float64)
    np.testing.assert_allclose(out, ref_voxel(ev, B), rtol=1e-9, atol=1e-9)
    # total weight per event is its sign: bilinear weights sum to 1
    np.testing.assert_allclose(out.sum(), np.where(ev["p"] > 0, 1.0, -1.0).sum(), atol=1e-6)


def test_first_and_last_event_land_in_end_bins():
    ev = make_events([10, 20, 30], [0, 1, 2], [0, 0, 0], [1, 0, 1])
    out = to_voxel_grid(ev, SENSOR, 3)
    assert out.shape == (3, 1, 4, 6) and out.dtype == np.float32
    assert out[0, 0, 0, 0] == 1 and out[1, 0, 0, 1] == -1 and out[2, 0, 0, 2] == 1
    assert np.count_nonzero(out) == 3


def test_polarity_any_dtype():
    tonic_like = np.zeros(2, [("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    tonic_like["t"] = [0, 1]
    tonic_like["p"] = [0, 1]
    b = np.zeros(2, [("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "?")])
    b["t"] = [0, 1]
    b["p"] = [False, True]
    for ev in (tonic_like, b):
        out = to_voxel_grid(ev, SENSOR, 2)
        assert out[0, 0, 0, 0] == -1 and out[1, 0, 0, 0] == 1


def test_empty_zero_duration_and_errors():
    assert not to_voxel_grid(np.empty(0, EVENT_DTYPE), SENSOR, 4).any()
    ev = make_events([5, 5], [0, 0], [0, 0], [1, 1])
    assert to_voxel_grid(ev, SENSOR, 4)[0, 0, 0, 0] == 2
    with pytest.raises(ValueError, match="n_time_bins"):
        to_voxel_grid(ev, SENSOR, 0)
    with pytest.raises(ValueError, match="sorted"):
        to_voxel_grid(make_events([5, 1], [0, 0], [0, 0], [1, 1]), SENSOR, 2)
    with pytest.raises(ValueError, match=r"events\[1\]"):
        to_voxel_grid(make_events([0, 1], [0, 6], [0, 0], [1, 1]), SENSOR, 2)
    out = to_voxel_grid(make_events([0, 1], [0, 6], [0, 0], [1, 1]), SENSOR, 2, on_out_of_bounds="drop")
    assert out.sum() == 1
    assert ToVoxelGrid(SENSOR, 3)(ev).shape == (3, 1, 4, 6)
