"""Voxel grid (Zhu et al. 2019, "Unsupervised event-based learning of optical flow, depth, and
egomotion"): signed polarity spread bilinearly over ``B`` time bins."""
from __future__ import annotations

import numbers

import numpy as np
from numba import njit

from .frames import validate_events

__all__ = ["to_voxel_grid"]


@njit(cache=True)
def _voxel_kernel(t, x, y, p, B, W, H, out):
    """Add ``±max(0, 1 - |b - t*|)`` to ``out[b, y, x]`` (flat float64, ``B*H*W``) per event."""
    n = t.shape[0]
    if n == 0:
        return
    t0 = t[0]
    span = float(t[n - 1] - t0)
    scale = float(B - 1)
    plane = np.uint64(H * W)
    Wu = np.uint64(W)
    last = np.uint64(B - 1)
    for i in range(n):
        ts = 0.0
        if span > 0.0:
            ts = (scale * float(t[i] - t0)) / span
        left = min(np.uint64(ts), last)  # ts >= 0: truncation is floor
        frac = ts - float(left)
        pol = 1.0 if p[i] > 0 else -1.0
        pix = np.uint64(y[i]) * Wu + np.uint64(x[i])  # unsigned: no negative-index wrap-around
        out[left * plane + pix] += pol * (1.0 - frac)
        if left < last:
            out[(left + np.uint64(1)) * plane + pix] += pol * frac


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
    if not isinstance(n_time_bins, numbers.Integral) or isinstance(n_time_bins, bool) or n_time_bins < 1:
        raise ValueError(f"n_time_bins must be a positive int, got {n_time_bins!r}")
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    ev, (W, H, _) = validate_events(events, sensor_size, need_sorted=True,
                                    on_out_of_bounds=on_out_of_bounds)
    out = np.zeros(int(n_time_bins) * H * W, np.float64)
    _voxel_kernel(ev["t"], ev["x"], ev["y"], ev["p"], int(n_time_bins), W, H, out)
    return out.reshape(int(n_time_bins), 1, H, W).astype(dt, copy=False)
