"""Sparse COO frames equal the dense frames, are coalesced, and saturate like them."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodata.events import EVENT_DTYPE, make_events
from neurodata.functional.frames import to_frame
from neurodata.functional.sparse import to_sparse
from neurodata.transforms import ToSparseTensor
from tests.helpers import event_arrays

SENSOR = (7, 5, 2)
MODES = [dict(n_time_bins=3), dict(n_event_bins=4, overlap=0.5), dict(time_window=20, overlap=5),
         dict(event_count=7, include_incomplete=True), dict(frames_number=3, split_by="time"),
         dict(duration=15)]


@settings(max_examples=100, deadline=None)
@given(ev=event_arrays(max_x=6, max_y=4, max_t=100, max_n=80), mode=st.sampled_from(MODES),
       P=st.sampled_from([1, 2]))
def test_sparse_equals_dense(ev, mode, P):
    sensor = (7, 5, P)
    sp = to_sparse(ev, sensor, dtype=torch.int64, **mode)
    dense = to_frame(ev, sensor, dtype=np.int64, **mode)
    assert sp.is_sparse and sp.is_coalesced() and tuple(sp.shape) == dense.shape
    np.testing.assert_array_equal(sp.to_dense().numpy(), dense)
    assert sp._nnz() == np.count_nonzero(dense)
    idx = sp._indices().numpy()
    flat = np.ravel_multi_index(tuple(idx), dense.shape)
    assert (np.diff(flat) > 0).all()  # lexicographic, no duplicates


def test_sparse_saturation_empty_and_transform():
    ev = make_events(np.arange(300), np.zeros(300), np.zeros(300), np.ones(300))
    sp = to_sparse(ev, SENSOR, n_event_bins=1, dtype="uint8")
    assert sp.dtype == torch.uint8 and sp.to_dense()[0, 1, 0, 0] == 255
    e = to_sparse(np.empty(0, EVENT_DTYPE), SENSOR, n_time_bins=4)
    assert tuple(e.shape) == (4, 2, 5, 7) and e._nnz() == 0
    with pytest.raises(ValueError, match="dtype"):
        to_sparse(ev, SENSOR, n_event_bins=1, dtype=torch.bool)
    with pytest.raises(ValueError, match="exactly one"):
        ToSparseTensor(SENSOR)
    assert ToSparseTensor(SENSOR, n_time_bins=2)(ev).to_dense().sum() == 300
