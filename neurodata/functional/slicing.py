"""Cut one event array into several: by time windows, by event counts, or at given indices.

Each ``slice_by_*`` returns a list of views into the input (no copies); the matching
``*_slice_indices`` returns the ``(K, 2)`` int64 array of ``[start, stop)`` row ranges.
Window rules follow tonic 1.7's slicers with exact integer arithmetic (``docs/transforms.md``).
"""
from __future__ import annotations

import numbers

import numpy as np

from ..events import as_events, check_sorted

__all__ = [
    "time_slice_indices", "count_slice_indices",
    "slice_by_time", "slice_by_count", "slice_by_indices",
]


def _int(value, name, lo) -> int:
    ok = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not ok or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def _floor_or_ceil(num: int, den: int, ceil: bool) -> int:
    return -((-num) // den) if ceil else num // den


def time_slice_indices(events, time_window, *, overlap=0, include_incomplete=False, start_time=None,
                       end_time=None) -> np.ndarray:
    """Row ranges of the time windows ``[s_k, s_k + time_window)`` (µs, left-closed, right-open).

    ``stride = time_window - overlap`` (> 0), ``s_k = start + k * stride`` with ``start = t[0]``
    (or ``start_time``) and ``end = t[-1]`` (or ``end_time``), ``D = end - start``. The number of
    windows is ``K = max(1, floor((D - time_window) / stride) + 1)``, or with
    ``include_incomplete`` ``max(1, ceil((D - time_window) / stride) + 1)``. Row ranges come from
    ``searchsorted(t, s_k, 'left')`` and ``searchsorted(t, s_k + time_window, 'left')``. So an
    event exactly at ``end`` is outside the last complete window (tonic 1.7 semantics). Empty input
    without both ``start_time`` and ``end_time`` gives ``K = 0``. Input must be sorted by ``t``.
    """
    ev = as_events(events)
    check_sorted(ev)
    w = _int(time_window, "time_window", 1)
    ov = _int(overlap, "overlap", 0)
    if ov >= w:
        raise ValueError(f"overlap ({ov}) must be smaller than time_window ({w})")
    t = ev["t"]
    if t.size == 0 and (start_time is None or end_time is None):
        return np.empty((0, 2), np.int64)
    start = int(t[0]) if start_time is None else _int(start_time, "start_time", -2**63)
    end = int(t[-1]) if end_time is None else _int(end_time, "end_time", -2**63)
    stride = w - ov
    k = max(1, _floor_or_ceil(end - start - w, stride, include_incomplete) + 1)
    starts = start + np.arange(k, dtype=np.int64) * stride
    return np.stack([np.searchsorted(t, starts, "left"), np.searchsorted(t, starts + w, "left")], axis=1
                    ).astype(np.int64)


def count_slice_indices(n_events: int, event_count, *, overlap=0, include_incomplete=False) -> np.ndarray:
    """Row ranges of fixed-count slices over ``n_events`` events (tonic 1.7 semantics).

    ``c = min(event_count, N)``, ``stride = event_count - overlap`` (> 0), ``K = floor((N - c) /
    stride) + 1`` (``ceil`` with ``include_incomplete``), slice ``k`` = rows ``[k stride,
    min(k stride + c, N))``. A recording shorter than ``event_count`` gives one slice with all
    its events (one empty slice for ``N = 0``).
    """
    n = _int(n_events, "n_events", 0)
    c_req = _int(event_count, "event_count", 1)
    ov = _int(overlap, "overlap", 0)
    if ov >= c_req:
        raise ValueError(f"overlap ({ov}) must be smaller than event_count ({c_req})")
    c = min(c_req, n)
    stride = c_req - ov
    k = _floor_or_ceil(n - c, stride, include_incomplete) + 1
    starts = np.arange(k, dtype=np.int64) * stride
    return np.stack([starts, np.minimum(starts + c, n)], axis=1)


def slice_by_time(events, time_window, *, overlap=0, include_incomplete=False, start_time=None,
                  end_time=None) -> list[np.ndarray]:
    """Views of ``events`` for each window of ``time_slice_indices``."""
    ev = as_events(events)
    idx = time_slice_indices(ev, time_window, overlap=overlap, include_incomplete=include_incomplete,
                             start_time=start_time, end_time=end_time)
    return [ev[a:b] for a, b in idx]


def slice_by_count(events, event_count, *, overlap=0, include_incomplete=False) -> list[np.ndarray]:
    """Views of ``events`` for each slice of ``count_slice_indices``."""
    ev = as_events(events)
    idx = count_slice_indices(ev.shape[0], event_count, overlap=overlap, include_incomplete=include_incomplete)
    return [ev[a:b] for a, b in idx]


def slice_by_indices(events, start_indices, end_indices) -> list[np.ndarray]:
    """Views ``events[start_k:end_k]``; requires ``0 <= start_k <= end_k <= N`` (``ValueError``
    naming the first bad pair; tonic passes negative indices through Python slicing)."""
    ev = as_events(events)
    s = np.asarray(start_indices).reshape(-1)
    e = np.asarray(end_indices).reshape(-1)
    if s.shape != e.shape:
        raise ValueError(f"start_indices and end_indices differ in length ({s.size} vs {e.size})")
    if s.size and not (np.issubdtype(s.dtype, np.integer) and np.issubdtype(e.dtype, np.integer)):
        raise ValueError("start_indices and end_indices must be integers")
    bad = (s < 0) | (s > e) | (e > ev.shape[0])
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"slice {i} = [{s[i]}, {e[i]}) is not within 0 <= start <= end <= {ev.shape[0]}")
    return [ev[int(a):int(b)] for a, b in zip(s, e)]
