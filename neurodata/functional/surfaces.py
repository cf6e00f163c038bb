"""Time surfaces: global exponentially decaying surfaces per time window, and HATS (Sironi et al.
2018, "HATS: Histograms of averaged time surfaces for robust event-based object classification")."""
from __future__ import annotations

import math
import numbers
from fractions import Fraction

import numpy as np
from numba import njit

from .frames import validate_events

__all__ = ["to_time_surface", "to_averaged_time_surface"]


def _positive(name, value, integral=False):
    ok = isinstance(value, numbers.Integral if integral else numbers.Real) and not isinstance(value, bool)
    if not ok or not value > 0 or (not integral and not math.isfinite(value)):
        kind = "int" if integral else "number"
        raise ValueError(f"{name} must be a positive {kind}, got {value!r}")
    return value


def _float_dtype(dtype):
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


# ---------------------------------------------------------------------------------- time surface
@njit(cache=True)
def _time_surface_kernel(t, x, y, p, ends, frac, r, table, inv_tau, W, H, P, out):
    """``out[i, c, y, x] = exp(-(T_i - L) / tau)``, ``L`` the pixel's latest ``t < ends[i]``.

    ``ends[i] = ceil(T_i)`` and ``frac[i] = exp(-(T_i - ends[i]) / tau)``; ``table[d]`` is
    ``exp(-d / tau)`` for the integer gaps ``d = ends[i] - t`` of events inside window ``i`` (empty:
    call ``exp``). Other pixels decay by ``r = exp(-dt / tau)`` per window: no ``exp`` there.
    """
    size = P * H * W
    cur = np.zeros(size, np.float64)
    tlen = np.uint64(table.shape[0])
    cs = np.uint64(H * W if P > 1 else 0)  # channel stride; 0 merges polarities
    Wu = np.uint64(W)
    n = np.uint64(t.shape[0])
    k = np.uint64(0)  # unsigned indices spare numba's negative-index wrap-around
    for i in range(ends.shape[0]):
        row = out[i]
        for pix in range(size):  # decay everything by one window, written straight to the output
            v = cur[pix] * r
            cur[pix] = v
            row[pix] = v
        end = ends[i]
        f = frac[i]
        while k < n and t[k] < end:  # pixels hit in this window: exact value from the gap table
            pix = np.uint64(p[k]) * cs + np.uint64(y[k]) * Wu + np.uint64(x[k])
            gap = np.uint64(end - t[k])
            if gap < tlen:
                v = table[gap] * f
            else:
                v = math.exp(-float(gap) * inv_tau) * f
            cur[pix] = v
            row[pix] = v
            k += np.uint64(1)


_TABLE_MAX = 1 << 22


def to_time_surface(events, sensor_size, dt, tau, *, include_incomplete: bool = False,
                    dtype=np.float32, on_out_of_bounds: str = "raise") -> np.ndarray:
    """Global time surfaces sampled at the end of each window of length ``dt`` (tonic's rule).

    Window ``i`` ends at ``T_i = t0 + (i + 1) * dt`` (``t0`` the first timestamp). Its surface is
    ``exp(-(T_i - L_i) / tau)`` per pixel and channel, where ``L_i`` is the pixel's latest event
    with ``t < T_i``; 0 where the pixel has none. The number of windows is
    ``max(1, floor(D / dt))`` (``ceil`` with ``include_incomplete``), ``D`` = last - first
    timestamp, as tonic 1.7's ``ToTimesurface``; events at or after the last ``T_i`` are unused.

    Parameters
    ----------
    events : ndarray[EVENT_DTYPE], shape (N,), t in µs, sorted by ``t`` (``ValueError`` otherwise)
    sensor_size : (W, H, P); ``P == 1`` merges polarities
    dt, tau : positive numbers, µs
    dtype : float32 (default) or float64; computed in float64

    Returns
    -------
    ndarray, shape (n_windows, P, H, W); one all-zero surface for empty input.
    """
    _positive("dt", dt)
    _positive("tau", tau)
    out_dtype = _float_dtype(dtype)
    ev, (W, H, P) = validate_events(events, sensor_size, need_sorted=True,
                                    on_out_of_bounds=on_out_of_bounds)
    N = ev.shape[0]
    if N == 0:
        return np.zeros((1, P, H, W), out_dtype)
    t0 = int(ev["t"][0])
    ratio = Fraction(int(ev["t"][-1]) - t0) / Fraction(dt)
    n = max(1, math.ceil(ratio) if include_incomplete else math.floor(ratio))
    steps = [Fraction(dt) * (i + 1) for i in range(n)]
    # t < t0 + s  <=>  t < t0 + ceil(s) for integer t
    ceils = [math.ceil(s_) for s_ in steps]
    ends = np.array([t0 + c for c in ceils], np.int64)
    frac = np.exp(np.array([float(c - s_) for c, s_ in zip(ceils, steps)]) / float(tau))
    width = math.ceil(dt) + 2
    table = np.exp(-np.arange(width if width <= _TABLE_MAX else 0) / float(tau))
    out = np.empty((n, P * H * W), out_dtype)
    _time_surface_kernel(ev["t"], ev["x"], ev["y"], ev["p"], ends, frac, math.exp(-float(dt) / float(tau)),
                         table, 1.0 / float(tau), W, H, P, out)
    return out.reshape(n, P, H, W)


# ------------------------------------------------------------------------------------------ HATS
@njit(cache=True)
def _hats_kernel(t, x, y, p, W, H, P, cell, size, window, tau, linear, hist, counts):
    """Accumulate HATS local time surfaces in O(N * size**2) with per-pixel running sums.

    Per pixel ``q``: the events already seen are ``order[start[q] : start[q] + head[q]]``, those
    still inside the time window start at ``tail[q]``; ``S[q]`` is the sum of
    ``exp(-(ref[q] - t_j) / tau)`` over them (exp decay) and ``tsum[q]`` the sum of their ``t_j``
    (linear decay, exact in int64).
    """
    n = t.shape[0]
    npix = P * H * W
    rho = size // 2
    wgrid = (W + cell - 1) // cell
    pix_of = np.empty(n, np.int64)
    start = np.zeros(npix + 1, np.int64)
    for i in range(n):
        c = np.int64(p[i]) if P > 1 else 0
        q = (c * H + np.int64(y[i])) * W + np.int64(x[i])
        pix_of[i] = q
        start[q + 1] += 1
    for q in range(npix):
        start[q + 1] += start[q]
    fill = start[:npix].copy()
    order = np.empty(n, np.int64)
    for i in range(n):
        q = pix_of[i]
        order[fill[q]] = i
        fill[q] += 1
    head = np.zeros(npix, np.int64)
    tail = np.zeros(npix, np.int64)
    S = np.zeros(npix, np.float64)
    ref = np.zeros(npix, np.int64)
    tsum = np.zeros(npix, np.int64)
    inv_tau = 1.0 / tau
    inv_3tau = 1.0 / (3.0 * tau)
    for i in range(n):
        ti = t[i]
        xi = np.int64(x[i])
        yi = np.int64(y[i])
        c = np.int64(p[i]) if P > 1 else 0
        cx = xi // cell
        cy = yi // cell
        cidx = cy * wgrid + cx
        x_lo = max(xi - rho, cx * cell)
        x_hi = min(xi + rho, min(W, (cx + 1) * cell) - 1)
        y_lo = max(yi - rho, cy * cell)
        y_hi = min(yi + rho, min(H, (cy + 1) * cell) - 1)
        for qy in range(y_lo, y_hi + 1):
            for qx in range(x_lo, x_hi + 1):
                q = (c * H + qy) * W + qx
                h = head[q]
                tl = tail[q]
                while tl < h:
                    tj = t[order[start[q] + tl]]
                    if float(ti - tj) <= window:
                        break
                    if linear:
                        tsum[q] -= tj
                    else:
                        S[q] -= math.exp(-float(ref[q] - tj) * inv_tau)
                    tl += 1
                tail[q] = tl
                k = h - tl
                if k == 0:
                    S[q] = 0.0
                    tsum[q] = 0
                    continue
                if linear:
                    val = k - float(k * ti - tsum[q]) * inv_3tau
                else:
                    val = S[q] * math.exp(-float(ti - ref[q]) * inv_tau)
                hist[cidx, c, qy - yi + rho, qx - xi + rho] += val
        hist[cidx, c, rho, rho] += 1.0
        counts[cidx, c] += 1
        q = pix_of[i]
        if linear:
            tsum[q] += ti
        else:
            S[q] = S[q] * math.exp(-float(ti - ref[q]) * inv_tau) + 1.0
            ref[q] = ti
        head[q] += 1


def to_averaged_time_surface(events, sensor_size, *, cell_size: int = 10, surface_size: int = 5,
                             time_window=1000, tau=100, decay: str = "exp", dtype=np.float32,
                             on_out_of_bounds: str = "raise") -> np.ndarray:
    """HATS histograms ``(n_cells, P, surface_size, surface_size)``, linear in the event count.

    The sensor is cut into square cells of ``cell_size`` pixels (``ceil(W/cell) * ceil(H/cell)``
    cells, row-major, partial cells at the right and bottom edges). For event ``i`` in cell ``c``
    and channel ``p``, its local surface at offset ``(dy, dx)``, ``|dx|, |dy| <= surface_size // 2``,
    sums over the earlier events ``j < i`` of the same cell and channel at that offset with
    ``t_i - t_j <= time_window`` the value ``exp(-(t_i - t_j) / tau)`` (``decay='exp'``) or
    ``1 - (t_i - t_j) / (3 tau)`` (``decay='lin'``, not clipped, as in tonic), plus 1 at the
    centre. The histogram of ``(c, p)`` is the sum of its events' surfaces divided by their number
    (zeros for none). This is tonic 1.7's ``ToAveragedTimesurface`` definition, computed with
    exact integer time differences and float64 sums instead of tonic's float32 timestamps.

    Parameters
    ----------
    events : ndarray[EVENT_DTYPE], shape (N,), t in µs, sorted by ``t`` (``ValueError`` otherwise)
    sensor_size : (W, H, P); ``P == 1`` merges polarities
    cell_size, surface_size : ints, ``surface_size`` odd and ``<= cell_size``
    time_window, tau : positive numbers, µs
    """
    _positive("cell_size", cell_size, integral=True)
    _positive("surface_size", surface_size, integral=True)
    if surface_size % 2 == 0 or surface_size > cell_size:
        raise ValueError(f"surface_size must be odd and <= cell_size ({cell_size}), got {surface_size}")
    _positive("time_window", time_window)
    _positive("tau", tau)
    if decay not in ("exp", "lin"):
        raise ValueError(f"decay must be 'exp' or 'lin', got {decay!r}")
    out_dtype = _float_dtype(dtype)
    ev, (W, H, P) = validate_events(events, sensor_size, need_sorted=True,
                                    on_out_of_bounds=on_out_of_bounds)
    ncells = -(-W // cell_size) * -(-H // cell_size)
    hist = np.zeros((ncells, P, surface_size, surface_size), np.float64)
    counts = np.zeros((ncells, P), np.int64)
    _hats_kernel(ev["t"], ev["x"], ev["y"], ev["p"], W, H, P, int(cell_size), int(surface_size),
                 float(time_window), float(tau), decay == "lin", hist, counts)
    hist /= np.maximum(counts, 1)[:, :, None, None]
    return hist.astype(out_dtype, copy=False)
