"""Batched torch integration equals the CPU path sample by sample (device-agnostic code)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodata.functional.frames import to_frame
from neurodata.functional.torch_frames import to_frame_batch
from tests.helpers import event_arrays

SENSOR = (7, 5, 2)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _batch(samples, device="cpu"):
    cat = np.concatenate(samples) if samples else np.empty(0, samples[0].dtype)
    cols = [torch.from_numpy(cat[k].astype(np.int64)).to(device) for k in "txyp"]
    sample = torch.from_numpy(np.repeat(np.arange(len(samples)), [len(s) for s in samples])).to(device)
    return cols, sample


@settings(max_examples=80, deadline=None)
@given(samples=st.lists(st.one_of(event_arrays(max_x=6, max_y=4, max_t=200, max_n=40),
                                  event_arrays(max_x=6, max_y=4, max_t=2**62, max_n=20)),
                        min_size=1, max_size=4),
       T=st.integers(1, 7), by_time=st.booleans(), P=st.sampled_from([1, 2]))
def test_batch_equals_cpu_path(samples, T, by_time, P):
    sensor = (7, 5, P)
    key = "n_time_bins" if by_time else "n_event_bins"
    for device in DEVICES:
        cols, sample = _batch(samples, device)
        out = to_frame_batch(*cols, sample, sensor, batch_size=len(samples), dtype=torch.int64, **{key: T})
        assert out.shape == (len(samples), T, P, 5, 7) and out.device.type == device
        for b, ev in enumerate(samples):
            np.testing.assert_array_equal(out[b].cpu().numpy(), to_frame(ev, sensor, dtype=np.int64, **{key: T}))


def test_saturation_dtype_and_errors():
    n = 300
    cols = [torch.arange(n), torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long),
            torch.ones(n, dtype=torch.long)]
    sample = torch.zeros(n, dtype=torch.long)
    out = to_frame_batch(*cols, sample, SENSOR, n_event_bins=1, dtype=torch.uint8)
    assert out.dtype == torch.uint8 and out[0, 0, 1, 0, 0] == 255
    assert to_frame_batch(*cols, sample, SENSOR, n_time_bins=2).dtype == torch.float32
    bad = [c.clone() for c in cols]
    bad[1][7] = 7
    with pytest.raises(ValueError, match="event 7"):
        to_frame_batch(*bad, sample, SENSOR, n_time_bins=2)
    dropped = to_frame_batch(*bad, sample, SENSOR, n_time_bins=2, on_out_of_bounds="drop", dtype=torch.int64)
    assert dropped.sum() == n - 1
    rev = [c.flip(0) for c in cols]
    with pytest.raises(ValueError, match="sorted"):
        to_frame_batch(*rev, sample, SENSOR, n_time_bins=2)
    to_frame_batch(*rev, sample, SENSOR, n_event_bins=2)  # index order only
    with pytest.raises(ValueError, match="exactly one"):
        to_frame_batch(*cols, sample, SENSOR)
    with pytest.raises(TypeError, match="integer"):
        to_frame_batch(cols[0].double(), *cols[1:], sample, SENSOR, n_time_bins=2)
    empty = to_frame_batch(*(c[:0] for c in cols), sample[:0], SENSOR, n_time_bins=3, batch_size=2)
    assert empty.shape == (2, 3, 2, 5, 7) and not empty.any()
