"""Event count image and Bina-Rep against plain numpy references."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodata.events import EVENT_DTYPE, make_events
from neurodata.functional.frames import to_frame
from neurodata.functional.images import pack_binary_frames, to_binary_representation, to_event_count_image
from neurodata.transforms import ToBinaryRepresentation, ToEventCountImage
from tests.helpers import event_arrays

SENSOR = (7, 5, 2)


@settings(max_examples=100, deadline=None)
@given(ev=event_arrays(max_x=6, max_y=4, max_n=80, sorted_t=False), P=st.sampled_from([1, 2]))
def test_event_count_image_matches_reference(ev, P):
    ref = np.zeros((P, 5, 7), np.int64)
    for e in ev:
        ref[int(e["p"]) if P > 1 else 0, e["y"], e["x"]] += 1
    out = to_event_count_image(ev, (7, 5, P), dtype=np.int32)
    np.testing.assert_array_equal(out, ref)
    assert out.dtype == np.int32


def test_event_count_image_saturates_and_empty():
    ev = make_events(np.arange(300), np.zeros(300), np.zeros(300), np.zeros(300))
    assert to_event_count_image(ev, SENSOR, dtype=np.uint8)[0, 0, 0] == 255
    out = ToEventCountImage(SENSOR)(np.empty(0, EVENT_DTYPE))
    assert out.shape == (2, 5, 7) and out.dtype == np.float32 and not out.any()


def ref_pack(frames, n_bits):
    T = frames.shape[0] // n_bits
    out = np.zeros((T, *frames.shape[1:]), np.int64)
    for i in range(T):
        for k in range(n_bits):
            out[i] += (frames[i * n_bits + k] > 0) * 2 ** (n_bits - 1 - k)
    return out


@settings(max_examples=80, deadline=None)
@given(ev=event_arrays(max_x=6, max_y=4, max_t=500, max_n=80), n_frames=st.integers(1, 3),
       n_bits=st.sampled_from([1, 2, 8, 9, 16, 20]))
def test_binary_representation_matches_reference(ev, n_frames, n_bits):
    frames = to_frame(ev, SENSOR, n_time_bins=n_frames * n_bits, dtype=np.int64)
    ref = ref_pack(frames, n_bits)
    packed = to_binary_representation(ev, SENSOR, n_frames, n_bits, normalize=False)
    np.testing.assert_array_equal(packed, ref)
    assert packed.dtype == (np.uint8 if n_bits <= 8 else np.uint16 if n_bits <= 16 else np.uint32)
    norm = to_binary_representation(ev, SENSOR, n_frames, n_bits)
    assert norm.dtype == np.float32
    np.testing.assert_allclose(norm, ref / (2**n_bits - 1), rtol=1e-6)


def test_binary_representation_errors_and_transform():
    ev = make_events([0, 10], [0, 1], [0, 0], [1, 1])
    with pytest.raises(ValueError, match="n_bits"):
        to_binary_representation(ev, SENSOR, 1, 0)
    with pytest.raises(ValueError, match="n_frames"):
        to_binary_representation(ev, SENSOR, 0, 2)
    with pytest.raises(ValueError, match="multiple"):
        pack_binary_frames(np.zeros((5, 2, 5, 7)), 2)
    out = ToBinaryRepresentation(SENSOR, n_frames=1, n_bits=2, normalize=False)(ev)
    assert out[0, 1, 0, 0] == 2 and out[0, 1, 0, 1] == 1
