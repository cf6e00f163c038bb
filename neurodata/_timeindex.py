"""The time index of an events cache: O(slice) reads of a time window of a long recording.

The events columns are stored in chunks of ``C`` rows (``chunk_events``, 4096 by default), and
HDF5 always reads whole chunks. The index therefore records, for every chunk boundary, the time
of the event that starts the chunk:

- ``time_index/chunk_t[k]`` (int64) = the sample-relative ``t`` of global row ``k·C``, for
  ``k = 0 … ceil(num_rows / C) − 1`` (the sample that row belongs to defines the timebase);
- ``time_index/t_min``, ``time_index/t_max`` (int64, one per sample): the smallest and largest
  ``t`` of the sample (0 and 0 for an empty sample);
- ``time_index/sorted`` (uint8, one per sample): 1 when the sample's ``t`` never decreases.

For a sorted sample occupying rows ``[a, b)`` the rows of a window ``t_start <= t < t_stop`` lie
in ``[lo, hi)`` with

- ``lo`` = the last chunk boundary ``k·C`` in ``[a, b)`` whose ``chunk_t < t_start`` (``a`` when
  there is none): every row before it has ``t <= chunk_t[k] < t_start``;
- ``hi`` = the first chunk boundary in ``[a, b)`` whose ``chunk_t >= t_stop`` (``b`` when there
  is none): every row from it on has ``t >= t_stop``.

So a window read touches the chunks that hold its events plus at most one chunk on each side,
whatever the length of the recording. The delta-coded ``t`` restarts at ``lo`` from
``chunk_t[k]`` (the absolute time of row ``lo``), or from 0 when ``lo = a``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["chunk_times", "window_rows", "check_time_index"]


def chunk_times(t: np.ndarray, first_row: int, rows_per_entry: int) -> np.ndarray:
    """``t`` of the rows ``k·C`` that fall in ``[first_row, first_row + len(t))`` (int64, a copy:
    a strided view kept each writer block of ``t`` alive until the cache was closed)."""
    C = int(rows_per_entry)
    start = -(-int(first_row) // C) * C - int(first_row)
    return np.array(t[start::C], dtype=np.int64)


def window_rows(a: int, b: int, chunk_t: np.ndarray, rows_per_entry: int, t_start: int, t_stop: int):
    """Rows ``[lo, hi)`` to read for ``t_start <= t < t_stop`` of the sorted sample in rows ``[a, b)``,
    and the absolute ``t`` of row ``lo`` (None when ``lo == a``: its delta counts from 0).

    ``chunk_t`` is the whole ``time_index/chunk_t`` array (see the module docstring).
    """
    C = int(rows_per_entry)
    k_lo, k_hi = -(-a // C), -(-b // C)          # boundaries k·C with a <= k·C < b
    ts = chunk_t[k_lo:k_hi]
    j = int(np.searchsorted(ts, t_start, side="left"))   # ts[:j] < t_start
    m = int(np.searchsorted(ts, t_stop, side="left"))    # ts[m:] >= t_stop
    if j == 0:
        lo, base = a, None
    else:
        lo, base = (k_lo + j - 1) * C, int(ts[j - 1])
    hi = b if m >= ts.size else (k_lo + m) * C
    return lo, max(lo, hi), base


def check_time_index(f, num_samples: int, num_rows: int) -> str | None:
    """Why the optional ``time_index`` group of an open cache file is inconsistent, or None
    (also None when the file has no time index: files written before it existed)."""
    if "time_index" not in f:
        return None
    g = f["time_index"]
    try:
        C = int(g.attrs["rows_per_entry"])
        entries = -(-num_rows // C) if C > 0 else -1
        shapes = [g[k].shape for k in ("chunk_t", "t_min", "t_max", "sorted")]
    except (KeyError, ValueError) as e:
        return f"time_index is incomplete ({e})"
    if C <= 0 or shapes != [(entries,), (num_samples,), (num_samples,), (num_samples,)]:
        return "time_index shapes disagree with num_samples/num_rows"
    return None
