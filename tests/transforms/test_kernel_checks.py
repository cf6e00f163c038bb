"""Kernels that check bounds/order as they go raise exactly what ``validate_events`` raises."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodata.events import make_events
from neurodata.functional.frames import validate_events
from neurodata.functional.voxel import to_voxel_grid
from tests.helpers import event_arrays

SENSOR = (6, 4, 2)


def _message(fn):
    try:
        fn()
    except ValueError as e:
        return str(e)
    return None


@settings(max_examples=150, deadline=None)
@given(ev=event_arrays(max_x=7, max_y=5, max_t=20, max_n=30, sorted_t=False),
       P=st.sampled_from([1, 2]), B=st.integers(1, 5))
def test_voxel_errors_match_validate_events(ev, P, B):
    p = np.asarray(ev["p"]).copy()
    # polarities 0, 1, 2: p = 2 is out of bounds for P = 2
    ev["p"] = np.where(p > 0, 1 + (ev["t"] % 2), 0)
    sensor = (6, 4, P)
    expected = _message(lambda: validate_events(ev, sensor, need_sorted=True))
    got = _message(lambda: to_voxel_grid(ev, sensor, B, dtype=np.float64))
    assert got == expected


def test_bounds_take_precedence_over_order():
    # t decreases at index 1, and index 2 lies outside: the bounds error names index 2
    ev = make_events([5, 1, 7], [0, 0, 6], [0, 0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match=r"events\[2\] .* lies outside"):
        to_voxel_grid(ev, SENSOR, 3)
    with pytest.raises(ValueError, match=r"t\[1\] = 1 < t\[0\] = 5"):
        to_voxel_grid(ev[:2], SENSOR, 3)


def test_unsorted_tail_never_writes_out_of_range():
    # t* far above B - 1 before the order violation is seen (huge t[i], tiny t[-1] - t[0])
    ev = make_events([0, 2**62, 1], [0, 1, 2], [0, 0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="sorted"):
        to_voxel_grid(ev, SENSOR, 4)
