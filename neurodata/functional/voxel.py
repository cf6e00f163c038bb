"""Voxel grid (Zhu et al. 2019, "Unsupervised event-based learning of optical flow, depth, and
egomotion"): signed polarity spread bilinearly over ``B`` time bins."""
from __future__ import annotations

import numpy as np
from numba import njit

from ..events import as_events, check_sensor_size
from .frames import (OK, _check_oob_policy, _event_words, check_float_dtype, check_positive, raise_violation,
                     validate_events)

__all__ = ["to_voxel_grid", "check_voxel_params"]


@njit(cache=True)
def _voxel_kernel(words, B, W, H, P, out):
    """Add ``±max(0, 1 - |b - t*|)`` to ``out[b, y, x]`` (flat float64, ``B*H*W``) per event.

    ``words`` is :func:`~neurodata.functional.frames._event_words` of the events (``t`` bits and
    ``x``, ``y``, ``p`` in one word). Each event is checked before its write: returns ``(1, i)``
    (``OUT_OF_BOUNDS``) for an ``x``/``y``/``p`` outside ``(W, H, P)``, ``(2, i)`` (``UNSORTED``)
    where ``t`` decreases, else ``(0, -1)`` (``OK``; the codes of :mod:`.frames`). Writes stay
    inside ``out`` whatever ``t`` holds: the pixel is checked and ``t*`` clamped to ``[0, B-1]``.
    """
    n = words.shape[0]
    if n == 0:
        return 0, -1
    t0 = np.int64(words[0, 0])
    span = float(np.int64(words[n - 1, 0]) - t0)
    scale = float(B - 1)
    if not span > 0.0:  # one timestamp: t* = 0 * d / 1 = 0 for every event
        span = 1.0
        scale = 0.0
    plane = np.uint64(H * W)
    Wu = np.uint64(W)
    Hu = np.uint64(H)
    pmax = np.uint64(P if P > 1 else 256)
    last = np.uint64(B - 1)
    prev = t0
    for i in range(np.uint64(n)):  # unsigned: no negative-index wrap-around
        w = words[i, 1]
        xi = (w >> np.uint64(24)) & np.uint64(0xFFFF)
        yi = (w >> np.uint64(40)) & np.uint64(0xFFFF)
        pi = w >> np.uint64(56)
        if xi >= Wu or yi >= Hu or pi >= pmax:
            return 1, np.int64(i)  # OUT_OF_BOUNDS (literal: kernels read no globals)
        ti = np.int64(words[i, 0])
        if ti < prev:
            return 2, np.int64(i)  # UNSORTED
        prev = ti
        ts = (scale * float(ti - t0)) / span
        # sorted input has 0 <= ts <= B - 1 already; the clamp keeps the float -> uint64
        # conversion defined for unsorted (reported later) or int64-overflowing t
        ts = min(max(ts, 0.0), scale)
        left = min(np.uint64(ts), last)  # ts >= 0: truncation is floor
        frac = ts - float(left)
        pol = 1.0 if pi > 0 else -1.0
        pix = yi * Wu + xi
        out[left * plane + pix] += pol * (1.0 - frac)
        if left < last:
            out[(left + np.uint64(1)) * plane + pix] += pol * frac
    return 0, -1


def check_voxel_params(n_time_bins, dtype, on_out_of_bounds) -> np.dtype:
    """``ValueError`` naming the first bad parameter of :func:`to_voxel_grid`; the output dtype."""
    check_positive("n_time_bins", n_time_bins, integral=True)
    dt = check_float_dtype(dtype)
    _check_oob_policy(on_out_of_bounds)
    return dt


def to_voxel_grid(events, sensor_size, n_time_bins: int, *, dtype=np.float32,
                  on_out_of_bounds: str = "raise") -> np.ndarray:
    """Voxel grid ``V[b, 0, y, x] = sum_k s_k * max(0, 1 - |b - t*_k|)``.

    Parameters
    ----------
    events : ndarray[EVENT_DTYPE], shape (N,), t in µs, sorted by ``t`` (``ValueError`` otherwise)
    sensor_size : (W, H, P)
        Only bounds: the grid merges polarities through the sign ``s_k = +1`` for ON (``p > 0``
        after :func:`neurodata.events.as_events`, whatever the input's polarity dtype) and ``-1``
        for OFF.
    n_time_bins : int
        ``B >= 1``. Normalised time ``t*_k = (B - 1) * (t_k - t0) / (t1 - t0)`` in float64 with
        ``t0``, ``t1`` the first and last timestamp (``t* = 0`` for all when ``t1 == t0``); the
        first event lands entirely in bin 0, the last entirely in bin ``B - 1``.
    dtype : float32 (default) or float64
        Sums are accumulated in float64 in event order, then cast.
    on_out_of_bounds : 'raise' or 'drop'

    Returns
    -------
    ndarray, shape (B, 1, H, W)
        Zeros for empty input.
    """
    dt = check_voxel_params(n_time_bins, dtype, on_out_of_bounds)
    B = int(n_time_bins)
    if on_out_of_bounds == "raise":  # cheap checks here; bounds and order in the kernel
        ev = as_events(events)
        sizes = check_sensor_size(sensor_size)
    else:
        ev, sizes = validate_events(events, sensor_size, need_sorted=True,
                                    on_out_of_bounds=on_out_of_bounds)
    W, H, P = sizes
    out = np.zeros(B * H * W, np.float64)
    status, index = _voxel_kernel(_event_words(ev), B, W, H, P, out)
    if status != OK:
        raise_violation(ev, sizes, status, index)
    return out.reshape(B, 1, H, W).astype(dt, copy=False)
