"""Deterministic event filters: denoise, refractory period, decimation, pixel removal.

Each public function validates its input (``as_events``, ``check_bounds``, ``check_sorted``) and
then runs a numba kernel over the events in array order. The per-pixel memory is a dense
``(max x + 1) * (max y + 1)`` grid of the input's own coordinates (tonic's rule), so ``sensor_size``
only serves validation. Exact rules: ``docs/transforms.md`` (section "Filters").
"""
from __future__ import annotations

import math
import numbers

import numpy as np
from numba import njit

from ._eventarray import checked_events, copy_events

__all__ = [
    "denoise",
    "refractory_period",
    "decimate",
    "drop_pixels",
    "identify_hot_pixels",
    "drop_hot_pixels",
]

_T_LIMIT = 2**62  # |t| and the time parameters stay below this, so no int64 sum can overflow
_NEVER = np.iinfo(np.int64).min  # "this pixel has not fired" in the kernels' memories


# ----------------------------------------------------------------------------- validation
def _time_parameter(value, name: str, *, rounding) -> int:
    """A non-negative, finite time in µs, turned into the int that gives the same integer rule."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number of µs, got {value!r}")
    if not math.isfinite(value) or value < 0 or value >= _T_LIMIT:
        raise ValueError(f"{name} must be finite and in [0, 2**62) µs, got {value!r}")
    return int(rounding(value))


def _check_time_range(ev: np.ndarray) -> None:
    """Overflow guard on sorted input (first and last ``t`` are the extremes)."""
    if ev.size:
        lo, hi = int(ev["t"][0]), int(ev["t"][-1])
        if lo <= -_T_LIMIT or hi >= _T_LIMIT:
            raise ValueError(
                f"events['t'] spans {lo}..{hi} µs; filters need |t| < 2**62 µs (shift the timestamps)"
            )


def _grid(ev: np.ndarray):
    """The data grid ``(W, H) = (max x + 1, max y + 1)`` of a non-empty array."""
    return int(ev["x"].max()) + 1, int(ev["y"].max()) + 1


# ----------------------------------------------------------------------------- kernels
# Each filter kernel reads the packed EVENT_DTYPE records directly and returns a keep mask;
# ``_gather_kernel`` then copies the kept records into an exactly sized array (one allocation:
# NumPy's structured copies are slow, and a full-size scratch buffer costs page faults).
@njit(cache=True)
def _gather_kernel(ev, keep):
    n_keep = 0
    for i in range(keep.shape[0]):
        n_keep += keep[i]
    out = np.empty(n_keep + 1, dtype=ev.dtype)  # one spare slot for the branch-free copy
    j = 0
    for i in range(keep.shape[0]):
        out[j] = ev[i]
        j += keep[i]
    return out[:n_keep]


@njit(cache=True)
def _denoise_kernel(ev, W, H, filter_time, initial_deadline, never):
    # deadline grid padded by one cell on each side; the padding holds ``never`` so that edge
    # pixels need no bounds checks (a pad cell can never satisfy ``deadline > t``)
    n = ev.shape[0]
    S = H + 2
    deadline = np.full((W + 2) * S, initial_deadline, dtype=np.int64)
    for a in range(W + 2):
        deadline[a * S] = never
        deadline[a * S + H + 1] = never
    for b in range(S):
        deadline[b] = never
        deadline[(W + 1) * S + b] = never
    keep = np.empty(n, dtype=np.bool_)
    for i in range(n):
        k = (np.int64(ev[i]["x"]) + 1) * S + np.int64(ev[i]["y"]) + 1
        ti = ev[i]["t"]
        deadline[k] = ti + filter_time
        m = max(max(deadline[k - S], deadline[k + S]), max(deadline[k - 1], deadline[k + 1]))
        keep[i] = m > ti
    return keep


@njit(cache=True)
def _refractory_kernel(ev, W, H, period, initial_last, never):
    n = ev.shape[0]
    last = np.full(W * H, initial_last, dtype=np.int64)
    keep = np.empty(n, dtype=np.bool_)
    for i in range(n):
        k = np.int64(ev[i]["x"]) * H + np.int64(ev[i]["y"])
        ti = ev[i]["t"]
        prev = last[k]
        keep[i] = prev == never or ti - prev > period
        last[k] = ti
    return keep


@njit(cache=True)
def _decimate_kernel(ev, W, H, n_keep):
    n = ev.shape[0]
    count = np.zeros(W * H, dtype=np.int64)
    keep = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        k = np.int64(ev[i]["x"]) * H + np.int64(ev[i]["y"])
        c = count[k] + 1
        if c >= n_keep:
            c = 0
            keep[i] = True
        count[k] = c
    return keep


@njit(cache=True)
def _pixel_count_kernel(ev, W, H):
    count = np.zeros((W, H), dtype=np.int64)
    for i in range(ev.shape[0]):
        count[np.int64(ev[i]["x"]), np.int64(ev[i]["y"])] += 1
    return count


# ----------------------------------------------------------------------------- public functions
def denoise(events, filter_time, sensor_size=None, *, tonic_compatible: bool = True) -> np.ndarray:
    """Background-activity filter: keep an event only if a 4-neighbour pixel fired recently.

    Events are processed in array order. Event ``i`` at pixel ``(x, y)`` first sets
    ``deadline[x, y] = t_i + filter_time``; it is kept iff one of the pixels ``(x ± 1, y)``,
    ``(x, y ± 1)`` inside the grid ``[0, max x] × [0, max y]`` has ``deadline > t_i``, i.e. its
    latest earlier event ``t'`` has ``t_i - t' < filter_time`` (strict). The event's own pixel and
    diagonal pixels do not count; polarity is ignored.

    Parameters
    ----------
    events : ndarray[EVENT_DTYPE], shape (N,), sorted by ``t`` (µs)
    filter_time : float, µs, >= 0
        A non-integer value acts as ``ceil(filter_time)`` (``d < 2.5`` iff ``d < 3`` for integers).
    sensor_size : (W, H, P), optional
        When given, coordinates are checked against it (``ValueError`` naming the first offender).
    tonic_compatible : bool, keyword-only, default True
        True: every pixel starts with ``deadline = filter_time``, as though it fired at ``t = 0``
        (tonic 1.7's ``denoise_numpy``, so events with ``t < filter_time`` pass whenever they have
        a neighbour in the grid). False: pixels start as never having fired.

    Returns
    -------
    ndarray[EVENT_DTYPE], shape (M,), M <= N: the kept events in their input order (a copy).
    Empty input gives an empty array. Raises ``ValueError`` for unsorted ``t``.
    """
    ev = checked_events(events, sensor_size, ordered=True)
    ft = _time_parameter(filter_time, "filter_time", rounding=math.ceil)
    _check_time_range(ev)
    if ev.size == 0:
        return copy_events(ev)
    initial = ft if tonic_compatible else _NEVER
    return _gather_kernel(ev, _denoise_kernel(ev, *_grid(ev), ft, initial, _NEVER))


def refractory_period(events, refractory_period, sensor_size=None, *, tonic_compatible: bool = True) -> np.ndarray:
    """Per-pixel refractory period: drop events that follow their pixel's previous event too soon.

    Events are processed in array order; each pixel ``(x, y)`` (polarity ignored) remembers the
    time ``last`` of its latest event, dropped ones included (the dead time is extended by every
    event, as in tonic). An event is kept iff ``t - last > refractory_period`` (strict).

    Parameters
    ----------
    events : ndarray[EVENT_DTYPE], shape (N,), sorted by ``t`` (µs)
    refractory_period : float, µs, >= 0
        A non-integer value acts as ``floor(refractory_period)``.
    sensor_size : (W, H, P), optional
        When given, coordinates are checked against it.
    tonic_compatible : bool, keyword-only, default True
        True: every pixel starts with ``last = -refractory_period`` (tonic 1.7), so a pixel's first
        event is kept iff ``t > 0``. False: a pixel's first event is always kept.

    Returns
    -------
    ndarray[EVENT_DTYPE], shape (M,): the kept events in input order. Raises ``ValueError`` for
    unsorted ``t``.
    """
    ev = checked_events(events, sensor_size, ordered=True)
    period = _time_parameter(refractory_period, "refractory_period", rounding=math.floor)
    _check_time_range(ev)
    if ev.size == 0:
        return copy_events(ev)
    initial = -period if tonic_compatible else _NEVER
    # with tonic_compatible the sentinel never occurs: -period > -2**62 > int64 min
    return _gather_kernel(ev, _refractory_kernel(ev, *_grid(ev), period, initial, _NEVER))


def decimate(events, n: int, sensor_size=None) -> np.ndarray:
    """Keep every ``n``-th event of each pixel: the ``n``-th, ``2n``-th, ... in array order.

    Polarity is ignored (one counter per ``(x, y)``), as in tonic 1.7's ``decimate_numpy``.
    ``n = 1`` keeps everything. Order matters, so ``t`` must be sorted (``ValueError`` otherwise).

    Parameters
    ----------
    events : ndarray[EVENT_DTYPE], shape (N,), sorted by ``t``
    n : int >= 1
    sensor_size : (W, H, P), optional; when given, coordinates are checked against it.

    Returns
    -------
    ndarray[EVENT_DTYPE], shape (M,): the kept events in input order.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be an int >= 1 (keep every n-th event per pixel), got {n!r}")
    ev = checked_events(events, sensor_size, ordered=True)
    if ev.size == 0:
        return copy_events(ev)
    return _gather_kernel(ev, _decimate_kernel(ev, *_grid(ev), int(n)))


def _pixel_keys(coordinates) -> np.ndarray:
    coords = np.asarray(coordinates)
    if coords.size == 0:
        return np.empty(0, np.int64)
    if coords.ndim != 2 or coords.shape[1] != 2 or not np.issubdtype(coords.dtype, np.integer):
        raise ValueError(f"coordinates must be integer (x, y) pairs, shape (K, 2), got {coords.shape} {coords.dtype}")
    if coords.min() < 0 or coords.max() > 65535:
        raise ValueError("coordinates must lie in 0..65535 (uint16 pixel indices)")
    return (coords[:, 0].astype(np.int64) << 16) | coords[:, 1].astype(np.int64)


def drop_pixels(events, coordinates, sensor_size=None) -> np.ndarray:
    """Drop every event whose ``(x, y)`` is one of ``coordinates`` (any polarity, any time).

    Parameters
    ----------
    events : ndarray[EVENT_DTYPE], shape (N,) (any order; order is kept)
    coordinates : array-like of int, shape (K, 2), ``(x, y)`` pairs; pixels without events are ignored.
    sensor_size : (W, H, P), optional; when given, coordinates of events are checked against it.
    """
    ev = checked_events(events, sensor_size)
    keys = _pixel_keys(coordinates)
    if ev.size == 0 or keys.size == 0:
        return copy_events(ev)
    ev_keys = (ev["x"].astype(np.int64) << 16) | ev["y"].astype(np.int64)
    return _gather_kernel(ev, ~np.isin(ev_keys, keys))


def _hot_frequency(hot_pixel_frequency) -> float:
    """The checked frequency (Hz) as a Python float: the threshold is float64 arithmetic whatever
    the parameter's type (a numpy float32/float16 kept its own precision, and float16 overflowed)."""
    if isinstance(hot_pixel_frequency, bool) or not isinstance(hot_pixel_frequency, numbers.Real) \
            or not (hot_pixel_frequency >= 0) or not math.isfinite(hot_pixel_frequency):
        raise ValueError(f"hot_pixel_frequency must be a finite number of Hz >= 0, got {hot_pixel_frequency!r}")
    return float(hot_pixel_frequency)


def _hot_mask(ev: np.ndarray, frequency: float):
    """The (W, H) boolean grid of hot pixels of a non-empty, sorted array (``frequency`` checked)."""
    counts = _pixel_count_kernel(ev, *_grid(ev))
    duration = float(int(ev["t"][-1]) - int(ev["t"][0]))
    return counts > frequency * duration * 1e-6


def identify_hot_pixels(events, hot_pixel_frequency, sensor_size=None) -> np.ndarray:
    """Pixels whose event count exceeds ``hot_pixel_frequency * (t[-1] - t[0]) * 1e-6``.

    The rule of tonic 1.7's ``identify_hot_pixel``: ``count(x, y) > f * D * 1e-6`` in float64
    with ``f`` in Hz and ``D = t[-1] - t[0]`` in µs (first and last event in array order; ``t``
    must be sorted). With ``D = 0`` (one event, or all at one time) every pixel that has an event
    is hot. Polarity is ignored.

    Returns
    -------
    ndarray[int64], shape (K, 2): ``(x, y)`` of the hot pixels, sorted by ``x`` then ``y``;
    shape (0, 2) for empty input.
    """
    frequency = _hot_frequency(hot_pixel_frequency)
    ev = checked_events(events, sensor_size, ordered=True)
    if ev.size == 0:
        return np.empty((0, 2), np.int64)
    hot = _hot_mask(ev, frequency)
    return np.argwhere(hot).astype(np.int64)


def drop_hot_pixels(events, hot_pixel_frequency, sensor_size=None) -> np.ndarray:
    """Drop all events of the pixels that ``identify_hot_pixels`` reports (tonic's ``DropPixel``
    with ``hot_pixel_frequency``). Empty input gives empty output; ``t`` must be sorted."""
    frequency = _hot_frequency(hot_pixel_frequency)
    ev = checked_events(events, sensor_size, ordered=True)
    if ev.size == 0:
        return copy_events(ev)
    hot = _hot_mask(ev, frequency)
    return _gather_kernel(ev, ~hot[ev["x"], ev["y"]])
