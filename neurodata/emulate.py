"""Event emulator: turn a sequence of intensity images into DVS events (ESIM / v2e style).

Model (per pixel, independent): the log intensity ``L = log(I + eps)`` varies **linearly in time**
between consecutive frames. A pixel keeps a reference level ``R`` (initialised to ``L`` of the
first frame). Whenever ``L - R`` reaches ``+C_on`` an ON event is emitted and ``R += C_on``; whenever
it reaches ``-C_off`` an OFF event is emitted and ``R -= C_off``; one change can cross several
thresholds and gives one event per crossing. The event time is where the linear interpolation
crosses the new level, rounded down to the µs. A pixel's thresholds are ``C * (1 + sigma * z)``
with ``z ~ N(0, 1)`` drawn once per pixel (clipped below at ``0.01``). Events closer than
``refractory_us`` to the pixel's previous *emitted* event are suppressed (the reference level
still moves, as in a real pixel whose reset is delayed). Optional background noise adds events
uniformly in time at ``noise_rate_hz`` per pixel with random polarity.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .events import EVENT_DTYPE

__all__ = ["emulate"]


@njit(cache=True)
def _emulate_kernel(logs, t_us, c_on, c_off, refractory, out_t, out_x, out_y, out_p, count_only):
    n_frames, H, W = logs.shape
    n = 0
    for y in range(H):
        for x in range(W):
            ref = logs[0, y, x]
            last = np.int64(-(1 << 62))
            con = c_on[y, x]
            coff = c_off[y, x]
            for k in range(n_frames - 1):
                l0 = logs[k, y, x]
                l1 = logs[k + 1, y, x]
                if l1 == l0:
                    continue
                t0 = t_us[k]
                dt = t_us[k + 1] - t0
                while True:
                    if l1 - ref >= con:
                        ref += con
                        pol = 1
                    elif ref - l1 >= coff:
                        ref -= coff
                        pol = 0
                    else:
                        break
                    frac = (ref - l0) / (l1 - l0)
                    if frac < 0.0:
                        frac = 0.0
                    elif frac > 1.0:
                        frac = 1.0
                    t = t0 + np.int64(np.floor(frac * dt))
                    if t - last < refractory:
                        continue
                    last = t
                    if not count_only:
                        out_t[n] = t
                        out_x[n] = x
                        out_y[n] = y
                        out_p[n] = pol
                    n += 1
    return n


def emulate(frames, timestamps_us, *, threshold_on: float = 0.2, threshold_off: float = 0.2,
            threshold_sigma: float = 0.0, refractory_us: int = 0, noise_rate_hz: float = 0.0,
            eps: float = 1e-3, rng=None) -> np.ndarray:
    """Emulate a DVS looking at a sequence of intensity images.

    Parameters
    ----------
    frames : array_like, shape (N, H, W)
        Intensities, N ≥ 1: floats (any non-negative scale, e.g. 0..1) or uint8 (divided by 255).
    timestamps_us : array_like of int, shape (N,)
        Strictly increasing frame times in µs.
    threshold_on, threshold_off : float
        Contrast thresholds ``C_on``/``C_off`` > 0 in log-intensity units.
    threshold_sigma : float
        Relative per-pixel threshold mismatch (standard deviation), ≥ 0.
    refractory_us : int
        Minimum µs between two emitted events of one pixel, ≥ 0.
    noise_rate_hz : float
        Background events per pixel per second, ≥ 0.
    eps : float
        Offset inside the log, > 0.
    rng : numpy.random.Generator or int or None
        Source of the mismatch and noise (seeded for reproducibility).

    Returns
    -------
    ndarray[EVENT_DTYPE], shape (M,)
        Events sorted by ``t`` (stable: ties keep pixel-major order); ``sensor_size`` is ``(W, H, 2)``.
    """
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must have shape (N, H, W) with N >= 1, got {frames.shape}")
    t_us = np.asarray(timestamps_us, dtype=np.int64).reshape(-1)
    if t_us.shape[0] != frames.shape[0]:
        raise ValueError(f"timestamps_us has {t_us.shape[0]} entries for {frames.shape[0]} frames")
    if t_us.size > 1 and np.any(np.diff(t_us) <= 0):
        raise ValueError("timestamps_us must be strictly increasing")
    for name, v in (("threshold_on", threshold_on), ("threshold_off", threshold_off), ("eps", eps)):
        if not v > 0:
            raise ValueError(f"{name} must be > 0, got {v!r}")
    for name, v in (("threshold_sigma", threshold_sigma), ("refractory_us", refractory_us),
                    ("noise_rate_hz", noise_rate_hz)):
        if not v >= 0:
            raise ValueError(f"{name} must be >= 0, got {v!r}")
    rng = np.random.default_rng(rng)
    intensity = frames.astype(np.float64)
    if frames.dtype == np.uint8:
        intensity /= 255.0
    if np.any(intensity < 0) or not np.all(np.isfinite(intensity)):
        raise ValueError("frames must be finite and non-negative")
    logs = np.log(intensity + eps)
    _, H, W = frames.shape
    z = rng.standard_normal((2, H, W)) if threshold_sigma > 0 else np.zeros((2, H, W))
    c_on = np.maximum(threshold_on * (1 + threshold_sigma * z[0]), 0.01)
    c_off = np.maximum(threshold_off * (1 + threshold_sigma * z[1]), 0.01)
    cols = [np.empty(0, np.int64), np.empty(0, np.uint16), np.empty(0, np.uint16), np.empty(0, np.uint8)]
    n = _emulate_kernel(logs, t_us, c_on, c_off, np.int64(refractory_us), *cols, True)
    cols = [np.empty(n, np.int64), np.empty(n, np.uint16), np.empty(n, np.uint16), np.empty(n, np.uint8)]
    _emulate_kernel(logs, t_us, c_on, c_off, np.int64(refractory_us), *cols, False)
    ev = np.empty(n, EVENT_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = cols
    if noise_rate_hz > 0 and t_us.size > 1:
        duration_s = (t_us[-1] - t_us[0]) / 1e6
        m = rng.poisson(noise_rate_hz * duration_s * H * W)
        noise = np.empty(m, EVENT_DTYPE)
        noise["t"] = rng.integers(t_us[0], t_us[-1], m, endpoint=True)
        noise["x"] = rng.integers(0, W, m)
        noise["y"] = rng.integers(0, H, m)
        noise["p"] = rng.integers(0, 2, m)
        ev = np.concatenate([ev, noise])
    return ev[np.argsort(ev["t"], kind="stable")]
