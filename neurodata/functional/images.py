"""Single images from events: the event count image and the Bina-Rep binary representation
(Barchid et al. 2022, "Bina-Rep Event Frames: a Simple and Effective Representation for
Event-based cameras")."""
from __future__ import annotations

import numbers

import numpy as np

from .frames import _check_oob_policy, cast_counts, check_frame_dtype, check_positive, frame_counts, frame_mode

__all__ = ["to_event_count_image", "to_binary_representation", "pack_binary_frames", "check_binary_params"]


def to_event_count_image(events, sensor_size, *, dtype=np.float32, on_out_of_bounds="raise",
                         num_threads=1) -> np.ndarray:
    """Number of events per channel and pixel, ``(P, H, W)``; any event order.

    Equal to ``to_frame(events, sensor_size, n_event_bins=1, dtype=dtype)[0]``: integer dtypes
    saturate, ``P == 1`` merges polarities, out-of-bounds events raise or are dropped.
    """
    dt = check_frame_dtype(dtype)
    counts = frame_counts(events, sensor_size, frame_mode(n_event_bins=1), on_out_of_bounds, num_threads, dt)
    return cast_counts(counts[0], dt)


def _check_n_bits(n_bits) -> None:
    if not isinstance(n_bits, numbers.Integral) or isinstance(n_bits, bool) or not 1 <= n_bits <= 32:
        raise ValueError(f"n_bits must be an int in 1..32, got {n_bits!r}")


def pack_binary_frames(frames, n_bits: int, *, normalize: bool = True) -> np.ndarray:
    """Pack groups of ``n_bits`` consecutive frames into one ``n_bits``-bit frame each.

    ``frames`` has shape ``(T * n_bits, P, H, W)``; frame ``T*i + k`` contributes bit
    ``n_bits - 1 - k`` (the earliest frame is the most significant bit) where it is non-zero.
    Returns ``(T, P, H, W)``: with ``normalize`` float32 values ``packed / (2**n_bits - 1)`` in
    [0, 1] (tonic 1.7's ``ToBinaRep``), otherwise the packed unsigned integers (uint8 up to 8 bits,
    uint16 up to 16, uint32 up to 32).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames must have shape (T * n_bits, P, H, W), got {frames.shape}")
    _check_n_bits(n_bits)
    if frames.shape[0] % n_bits:
        raise ValueError(f"the number of frames ({frames.shape[0]}) must be a multiple of n_bits ({n_bits})")
    itype = np.uint8 if n_bits <= 8 else np.uint16 if n_bits <= 16 else np.uint32
    bits = (frames > 0).reshape(-1, n_bits, *frames.shape[1:])
    packed = np.zeros((bits.shape[0], *frames.shape[1:]), itype)
    for k in range(n_bits):
        packed |= bits[:, k].astype(itype) << itype(n_bits - 1 - k)
    if not normalize:
        return packed
    return (packed / np.float64(2**n_bits - 1)).astype(np.float32)


def check_binary_params(n_frames, n_bits, on_out_of_bounds) -> None:
    """``ValueError`` naming the first bad parameter of :func:`to_binary_representation`."""
    check_positive("n_frames", n_frames, integral=True)
    _check_n_bits(n_bits)
    _check_oob_policy(on_out_of_bounds)


def to_binary_representation(events, sensor_size, n_frames: int, n_bits: int = 8, *,
                             normalize: bool = True, on_out_of_bounds="raise") -> np.ndarray:
    """Bina-Rep frames ``(n_frames, P, H, W)`` from events.

    The events are binned with ``to_frame(n_time_bins=n_frames * n_bits)`` (exact edges, sorted
    ``t`` required); each group of ``n_bits`` consecutive bins becomes one frame by
    :func:`pack_binary_frames` (a bin's bit is 1 where it holds at least one event).
    """
    check_binary_params(n_frames, n_bits, on_out_of_bounds)
    counts = frame_counts(events, sensor_size, frame_mode(n_time_bins=n_frames * n_bits), on_out_of_bounds)
    return pack_binary_frames(counts, n_bits, normalize=normalize)
