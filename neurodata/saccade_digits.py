"""Saccade digits: an embedded synthetic dataset made with the event emulator.

Each sample is a digit 0–9 drawn from a built-in 5×7 bitmap font with a random affine
distortion (scale, rotation, shear, stroke width, position), shown bright (intensity 1.0) on a
dark background (0.1), and "seen" by a 34×34 DVS that moves in three N-MNIST-style saccades of
100 ms each along the triangle (0, 0) → (+3, +3) → (+6, 0) → (0, 0) pixels. Frames are rendered
every ``frame_us`` µs with area sampling and turned into events by ``neurodata.emulate`` with
per-pixel threshold mismatch and background noise. Everything is deterministic from the seed.

The dataset exists so that everything runs offline and in tests; it never replaces N-MNIST.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .emulate import emulate

__all__ = ["FONT", "SENSOR_SIZE", "DURATION_US", "render_sample"]

SENSOR_SIZE = (34, 34, 2)
DURATION_US = 300_000
_SACCADE = np.array([(0.0, 0.0), (3.0, 3.0), (6.0, 0.0), (0.0, 0.0)])
_SUPER = 4  # supersampling of the glyph image, per pixel and axis

FONT = {
    0: ["01110", "10001", "10011", "10101", "11001", "10001", "01110"],
    1: ["00100", "01100", "00100", "00100", "00100", "00100", "01110"],
    2: ["01110", "10001", "00001", "00010", "00100", "01000", "11111"],
    3: ["11111", "00010", "00100", "00010", "00001", "10001", "01110"],
    4: ["00010", "00110", "01010", "10010", "11111", "00010", "00010"],
    5: ["11111", "10000", "11110", "00001", "00001", "10001", "01110"],
    6: ["00110", "01000", "10000", "11110", "10001", "10001", "01110"],
    7: ["11111", "00001", "00010", "00100", "01000", "01000", "01000"],
    8: ["01110", "10001", "10001", "01110", "10001", "10001", "01110"],
    9: ["01110", "10001", "10001", "01111", "00001", "00010", "01100"],
}
_BITMAPS = {d: np.array([[c == "1" for c in row] for row in rows], dtype=bool) for d, rows in FONT.items()}


def _glyph(digit: int, rng: np.random.Generator) -> np.ndarray:
    """Supersampled glyph image (H·S, W·S) in [0, 1] of a randomly distorted digit on a 28×28 box."""
    size = 28 * _SUPER
    bitmap = _BITMAPS[digit]
    scale = rng.uniform(2.6, 3.4)          # font cell size in pixels (glyph ≈ 13–17 × 18–24 px)
    angle = np.deg2rad(rng.uniform(-12, 12))
    shear = rng.uniform(-0.2, 0.2)
    stroke = rng.uniform(0.75, 1.05)       # fraction of a font cell that is ink
    centre = np.array([14.0, 14.0]) + rng.uniform(-1.5, 1.5, 2)
    # inverse map: image point (px) -> font coordinates (cells)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]]) @ np.array([[1.0, shear], [0.0, 1.0]]) * scale
    inv = np.linalg.inv(rot)
    coords = (np.arange(size) + 0.5) / _SUPER
    gx, gy = np.meshgrid(coords, coords)
    pts = np.stack([gx - centre[0], gy - centre[1]], -1) @ inv.T + np.array([2.5, 3.5])
    u, v = pts[..., 0], pts[..., 1]
    iu, iv = np.floor(u).astype(int), np.floor(v).astype(int)
    inside = (iu >= 0) & (iu < 5) & (iv >= 0) & (iv < 7)
    ink = np.zeros(u.shape, bool)
    ink[inside] = bitmap[iv[inside], iu[inside]]
    margin = (1 - stroke) / 2
    fu, fv = u - iu, v - iv
    ink &= (fu >= margin) & (fu <= 1 - margin) & (fv >= margin) & (fv <= 1 - margin)
    return ink.astype(np.float64)


@njit(cache=True)
def _render_kernel(glyph, super_, offsets, background, out):
    """out[k, y, x] = area average of the glyph shifted by offsets[k] over pixel (x, y) of a 34×34 view."""
    n_frames, H, W = out.shape
    gh, gw = glyph.shape
    inv = 1.0 / (super_ * super_)
    for k in range(n_frames):
        ox = int(round(offsets[k, 0] * super_))
        oy = int(round(offsets[k, 1] * super_))
        for y in range(H):
            for x in range(W):
                acc = 0.0
                for j in range(super_):
                    gy = y * super_ + j - oy
                    if gy < 0 or gy >= gh:
                        continue
                    for i in range(super_):
                        gxx = x * super_ + i - ox
                        if 0 <= gxx < gw:
                            acc += glyph[gy, gxx]
                out[k, y, x] = background + (1.0 - background) * acc * inv


def render_sample(digit: int, rng, frame_us: int = 1000, noise_rate_hz: float = 0.5):
    """Events of one saccade-digit sample.

    Parameters
    ----------
    digit : int in 0..9
    rng : numpy.random.Generator or int
    frame_us : int
        Rendering period in µs (the emulator interpolates linearly between frames).
    noise_rate_hz : float
        Background noise events per pixel per second.

    Returns
    -------
    ndarray[EVENT_DTYPE], shape (N,), sorted by t, 0 ≤ t ≤ 300 000 µs, sensor 34×34×2.
    """
    if digit not in _BITMAPS:
        raise ValueError(f"digit must be an int in 0..9, got {digit!r}")
    rng = np.random.default_rng(rng)
    glyph = _glyph(int(digit), rng)
    n_frames = DURATION_US // frame_us + 1
    t = np.arange(n_frames, dtype=np.int64) * frame_us
    # piecewise-linear saccade path: three legs of DURATION_US / 3
    phase = t / (DURATION_US / 3)
    leg = np.minimum(phase.astype(int), 2)
    frac = (phase - leg)[:, None]
    offsets = _SACCADE[leg] * (1 - frac) + _SACCADE[leg + 1] * frac
    frames = np.empty((n_frames, 34, 34))
    _render_kernel(glyph, _SUPER, offsets, 0.1, frames)
    return emulate(frames, t, threshold_on=0.25, threshold_off=0.25, threshold_sigma=0.05,
                   refractory_us=200, noise_rate_hz=noise_rate_hz, rng=rng)
