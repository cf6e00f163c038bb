"""Time surfaces: global exponentially decaying surfaces per time window, and HATS (Sironi et al.
2018, "HATS: Histograms of averaged time surfaces for robust event-based object classification")."""
from __future__ import annotations

import math
from fractions import Fraction

import numba
import numpy as np
from numba import njit, prange

from ..events import as_events, check_sensor_size
from .frames import (OK, OUT_OF_BOUNDS, UNSORTED, _check_oob_policy, _event_words, _first_violation_kernel,
                     _lower_bound_kernel, _resolve_threads, check_float_dtype, check_positive, exact,
                     raise_violation, validate_events)

__all__ = ["to_time_surface", "to_averaged_time_surface", "check_time_surface_params", "check_hats_params"]


# ---------------------------------------------------------------------------------- time surface
@njit(cache=True)
def _surface_part(words, k, k_stop, i0, i1, ends, frac, r, table, inv_tau, W, H, P, out, cur,
                  first):
    """Windows ``i0..i1-1`` of the serial recurrence, from event ``k`` (the first with
    ``t >= ends[i0 - 1]``); events must end at ``k_stop`` (the first with ``t >= ends[i1 - 1]``).

    ``cur`` (float64, ``P*H*W``) holds each pixel's value at ``T_{i0}`` on entry (0 where unknown)
    and at ``T_{i1}`` on exit. A pixel's value decays by ``r = exp(-dt/tau)`` per window; an event
    at ``t`` in window ``i`` sets it to ``table[ends[i] - t] * frac[i]`` = ``exp(-(T_i - t)/tau)``
    (``math.exp`` when no table is given). ``first[pix]`` (when ``first.size``) receives the first window
    in which the pixel had an event. Each event is checked before use: returns ``(status, index)``
    with the codes of :mod:`.frames` (``OUT_OF_BOUNDS`` 1, ``UNSORTED`` 2; 3 when the events of
    these windows do not end at ``k_stop``, which sorted input never does), else ``(0, -1)``.
    """
    size = P * H * W
    tlen = np.uint64(table.shape[0])
    use_table = tlen > 0
    last = tlen - np.uint64(1) if use_table else np.uint64(0)
    cs = np.uint64(H * W if P > 1 else 0)  # channel stride; 0 merges polarities
    pmax = np.uint64(P if P > 1 else 256)
    Wu = np.uint64(W)
    Hu = np.uint64(H)
    ku = np.uint64(k)
    n = np.uint64(k_stop)
    track = first.shape[0] > 0
    prev = np.int64(words[ku - np.uint64(1), 0]) if ku > 0 else np.int64(words[0, 0])
    for i in range(i0, i1):
        end = ends[i]
        f = frac[i]
        while ku < n:  # the events of window i: exact value from the gap table
            ti = np.int64(words[ku, 0])
            if ti >= end:
                break
            w = words[ku, 1]
            xi = (w >> np.uint64(24)) & np.uint64(0xFFFF)
            yi = (w >> np.uint64(40)) & np.uint64(0xFFFF)
            pi = w >> np.uint64(56)
            if (ti < prev) | (xi >= Wu) | (yi >= Hu) | (pi >= pmax):  # one branch for both checks
                if xi >= Wu or yi >= Hu or pi >= pmax:
                    return 1, np.int64(ku)  # OUT_OF_BOUNDS (literal: kernels read no globals)
                return 2, np.int64(ku)  # UNSORTED
            prev = ti
            pix = pi * cs + yi * Wu + xi
            gap = np.uint64(end - ti)
            if use_table:  # sorted input keeps gap < tlen (t >= the previous window's end)
                cur[pix] = table[min(gap, last)] * f
            else:
                cur[pix] = math.exp(-float(gap) * inv_tau) * f
            if track and first[pix] > i:
                first[pix] = i
            ku += np.uint64(1)
        row = out[i]
        for pix in range(size):  # write window i, then decay everything to T_{i+1}
            v = cur[pix]
            row[pix] = v
            cur[pix] = v * r
    if ku != n:
        return 3, np.int64(ku)
    return 0, -1


@njit(cache=True, parallel=True)
def _surface_parallel(words, ks, wins, ends, frac, r, table, inv_tau, W, H, P, out):
    """Parts ``j`` = windows ``wins[j]..wins[j+1]-1`` from event ``ks[j]`` in parallel, each
    starting from unknown (0) values; then, part by part, every pixel's windows before its first
    event in the part are rewritten from the previous part's final value, decayed by ``r`` per
    window: the same float operations, in the same order, as the serial recurrence."""
    m = wins.shape[0] - 1
    size = P * H * W
    curs = np.zeros((m, size), np.float64)
    firsts = np.empty((m, size), np.int64)
    status = np.zeros(m, np.int64)
    index = np.full(m, -1, np.int64)
    for j in prange(m):
        firsts[j, :] = wins[j + 1]
        status[j], index[j] = _surface_part(words, ks[j], ks[j + 1], wins[j], wins[j + 1], ends, frac,
                                            r, table, inv_tau, W, H, P, out, curs[j], firsts[j])
    for j in range(m):
        if status[j] != 0:
            return status[j], index[j]
    blocks = (size + 4095) // 4096
    for b in prange(blocks):  # row-major within a block of pixels: contiguous writes
        lo = b * 4096
        hi = min(size, lo + 4096)
        for j in range(1, m):
            v = curs[j - 1, lo:hi].copy()
            fj = firsts[j, lo:hi]
            stop = fj.max()
            for i in range(wins[j], stop):
                row = out[i, lo:hi]
                for q in range(hi - lo):
                    if i < fj[q]:
                        row[q] = v[q]
                        v[q] = v[q] * r
            mine = curs[j, lo:hi]
            for q in range(hi - lo):
                if fj[q] == wins[j + 1]:  # no event in part j: its final value comes from the carry
                    mine[q] = v[q]
    return 0, -1


_TABLE_MAX = 1 << 22


def check_time_surface_params(dt, tau, dtype, on_out_of_bounds, num_threads) -> np.dtype:
    """``ValueError`` naming the first bad parameter of :func:`to_time_surface`; the output dtype."""
    check_positive("dt", dt)
    check_positive("tau", tau)
    _check_oob_policy(on_out_of_bounds)
    _resolve_threads(num_threads, 0)
    return check_float_dtype(dtype)


def to_time_surface(events, sensor_size, dt, tau, *, include_incomplete: bool = False,
                    dtype=np.float32, on_out_of_bounds: str = "raise", num_threads=1) -> np.ndarray:
    """Global time surfaces sampled at the end of each window of length ``dt`` (tonic's rule).

    Window ``i`` ends at ``T_i = t0 + (i + 1) * dt`` (``t0`` the first timestamp). Its surface is
    ``exp(-(T_i - L_i) / tau)`` per pixel and channel, where ``L_i`` is the pixel's latest event
    with ``t < T_i``; 0 where the pixel has none. The number of windows is
    ``max(1, floor((D - dt) / dt) + 1)`` (``ceil`` with ``include_incomplete``) in float64, ``D`` =
    last - first timestamp, as tonic 1.7's ``ToTimesurface`` computes it (``floor(D / dt)`` for an
    integer ``dt``; a float ``dt`` such as 0.1 can give one window more); events at or after the
    last ``T_i`` are unused (but still checked).

    Parameters
    ----------
    events : ndarray[EVENT_DTYPE], shape (N,), t in µs, sorted by ``t`` (``ValueError`` otherwise)
    sensor_size : (W, H, P); ``P == 1`` merges polarities
    dt, tau : positive numbers, µs
    dtype : float32 (default) or float64; computed in float64
    on_out_of_bounds : 'raise' (default) or 'drop'
    num_threads : int or None
        Threads (None: numba's default); the windows are cut into consecutive parts computed in
        parallel, and the result is bit-identical to one thread.

    Returns
    -------
    ndarray, shape (n_windows, P, H, W); one all-zero surface for empty input.
    """
    out_dtype = check_time_surface_params(dt, tau, dtype, on_out_of_bounds, num_threads)
    if on_out_of_bounds == "drop":
        ev, sizes = validate_events(events, sensor_size, need_sorted=True, on_out_of_bounds="drop")
    else:
        ev, sizes = as_events(events), check_sensor_size(sensor_size)
        _check_oob_policy(on_out_of_bounds)
    W, H, P = sizes
    N = ev.shape[0]
    if N == 0:
        return np.zeros((1, P, H, W), out_dtype)
    t = ev["t"]
    t0 = int(t[0])
    q = (float(int(t[-1]) - t0) - float(dt)) / float(dt)  # tonic's count, float arithmetic included
    n = max(1, int(math.ceil(q) if include_incomplete else math.floor(q)) + 1)
    ends, frac = _window_ends(t0, exact(dt), n, float(tau))
    width = math.ceil(dt) + 2
    table = np.exp(-np.arange(width if width <= _TABLE_MAX else 0) / float(tau))
    r = math.exp(-float(dt) / float(tau))
    out = np.empty((n, P * H * W), out_dtype)
    words = _event_words(ev)
    bounds = _lower_bound_kernel(t, ends)  # first event of each later window, and the tail
    threads = _resolve_threads(num_threads, N + n * P * H * W // 4)
    wins = _balanced_parts(bounds, n, P * H * W, threads)
    status, index = _run_parts(words, bounds, wins, ends, frac, r, table, 1.0 / float(tau), sizes, out)
    if status == OK:  # events after the last window: unused, but still checked (from the one before)
        a = max(int(bounds[n - 1]) - 1, 0)
        bad, unsorted = _first_violation_kernel(t[a:], ev["x"][a:], ev["y"][a:], ev["p"][a:], W, H, P, True)
        if bad >= 0:
            status, index = OUT_OF_BOUNDS, a + bad
        elif unsorted >= 0:
            status, index = UNSORTED, a + unsorted
    if status == 3:  # parts out of step: only unsorted input does that
        status, index = UNSORTED, N - 1
    if status != OK:
        raise_violation(ev, sizes, status, index)
    return out.reshape(n, P, H, W)


def _window_ends(t0: int, dt: Fraction, n: int, tau: float):
    """``ends[i] = t0 + ceil((i+1) dt)`` (int64) and ``frac[i] = exp((ends[i] - t0 - (i+1) dt) / tau)``.

    An integer ``t`` is ``< t0 + (i+1) dt`` exactly when it is ``< ends[i]``. Exact integer arithmetic
    (``dt = a / b``); each ``ends[i] - t0 - (i+1) dt = e / b`` with ``0 <= e < b`` becomes one
    correctly rounded float division.
    """
    a, b = dt.numerator, dt.denominator
    if a * n < 2**62 and b < 2**53:
        num = a * np.arange(1, n + 1, dtype=np.int64)
        ceils = -((-num) // b)
        excess = (ceils * b - num).astype(np.float64) / b
    else:  # pragma: no cover - windows beyond 2**62 µs * denominator
        steps = [dt * (i + 1) for i in range(n)]
        ceils = np.array([math.ceil(s_) for s_ in steps], np.int64)
        excess = np.array([float(math.ceil(s_) - s_) for s_ in steps])
    return t0 + ceils, np.exp(excess / tau)


def _balanced_parts(bounds, n, size, threads):
    """Window indices ``0 = w_0 < ... < w_m = n`` cutting the work (an event costs 1, a window's
    pass over the ``size`` pixels ``size / 4``) into ``m <= threads`` near-equal parts."""
    if threads < 2 or n < 2:
        return np.array([0, n], np.int64)
    counts = np.diff(np.concatenate([[0], bounds]))
    cost = np.cumsum(counts + size / 4)
    cuts = np.searchsorted(cost, cost[-1] * np.arange(1, threads) / threads) + 1
    return np.unique(np.concatenate([[0], np.clip(cuts, 1, n - 1), [n]])).astype(np.int64)


def _run_parts(words, bounds, wins, ends, frac, r, table, inv_tau, sizes, out):
    """Compute the windows cut at ``wins`` (see :func:`_balanced_parts`): one serial pass for one
    part, else one thread per part; ``(status, index)`` as :func:`_surface_part` returns it."""
    W, H, P = sizes
    m = wins.shape[0] - 1
    if m == 1:
        return _surface_part(words, 0, bounds[-1], 0, wins[1], ends, frac, r, table, inv_tau, W, H, P,
                             out, np.zeros(P * H * W), np.empty(0, np.int64))
    ks = np.concatenate([[0], bounds[wins[1:] - 1]]).astype(np.int64)
    prev = numba.get_num_threads()
    numba.set_num_threads(min(m, numba.config.NUMBA_NUM_THREADS))
    try:
        return _surface_parallel(words, ks, wins, ends, frac, r, table, inv_tau, W, H, P, out)
    finally:
        numba.set_num_threads(prev)


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
            if S[q] != 0.0:  # (0 * exp(...) is NaN where exp overflows: t far below the initial ref 0)
                S[q] *= math.exp(-float(ti - ref[q]) * inv_tau)
            S[q] += 1.0
            ref[q] = ti
        head[q] += 1


def check_hats_params(cell_size, surface_size, time_window, tau, decay, dtype, on_out_of_bounds) -> np.dtype:
    """``ValueError`` naming the first bad parameter of :func:`to_averaged_time_surface`; the
    output dtype."""
    check_positive("cell_size", cell_size, integral=True)
    check_positive("surface_size", surface_size, integral=True)
    if surface_size % 2 == 0 or surface_size > cell_size:
        raise ValueError(f"surface_size must be odd and <= cell_size ({cell_size}), got {surface_size}")
    check_positive("time_window", time_window)
    check_positive("tau", tau)
    if decay not in ("exp", "lin"):
        raise ValueError(f"decay must be 'exp' or 'lin', got {decay!r}")
    _check_oob_policy(on_out_of_bounds)
    return check_float_dtype(dtype)


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
    out_dtype = check_hats_params(cell_size, surface_size, time_window, tau, decay, dtype, on_out_of_bounds)
    ev, (W, H, P) = validate_events(events, sensor_size, need_sorted=True,
                                    on_out_of_bounds=on_out_of_bounds)
    ncells = -(-W // cell_size) * -(-H // cell_size)
    hist = np.zeros((ncells, P, surface_size, surface_size), np.float64)
    counts = np.zeros((ncells, P), np.int64)
    _hats_kernel(ev["t"], ev["x"], ev["y"], ev["p"], W, H, P, int(cell_size), int(surface_size),
                 float(time_window), float(tau), decay == "lin", hist, counts)
    hist /= np.maximum(counts, 1)[:, :, None, None]
    return hist.astype(out_dtype, copy=False)
