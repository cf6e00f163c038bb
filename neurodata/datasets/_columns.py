"""Decoded sample columns → validated ``EVENT_DTYPE`` events with a documented time origin.

Datasets whose files hold plain columns (HDF5 spike lists, ``.mat`` and ``.npy`` arrays) share
one rule set, written here once:

- ``t``: integers are taken as µs; floating-point *seconds* (``seconds=True``) become
  ``numpy.rint(t · 1e6)`` µs (round half to even, computed in float64); floating-point µs must
  hold whole numbers.
- ``x``/``y`` must be whole numbers in ``[0, W)`` / ``[0, H)``; ``p`` is 1 (ON) where the stored
  value is > 0, else 0 (``+1/-1``, ``1/0`` and booleans all map this way).
- Events are put in time order with a *stable* sort when the stored order is not already
  non-decreasing in ``t`` (ties keep their stored order).
- ``origin="stored"`` keeps ``t`` as stored (``t_offset = 0``); ``origin="first"`` subtracts the
  first event's ``t`` (after sorting) and reports it as ``t_offset``; an empty sample has
  ``t_offset = 0``.

Violations raise ``neurodata.FormatError`` naming the file/member and the first bad index.
"""
from __future__ import annotations

import numpy as np

from ..errors import FormatError
from ..events import make_events

__all__ = ["events_from_columns"]


def _integral(col, name, where) -> np.ndarray:
    col = np.asarray(col).reshape(-1)
    if col.dtype.kind == "b":
        return col.astype(np.int64)
    if col.dtype.kind == "f":
        bad = ~np.isfinite(col) | (col != np.round(col))
        if bad.any():
            i = int(np.argmax(bad))
            raise FormatError(where, None, f"{name}[{i}] = {col[i]!r} is not a whole number")
        return col.astype(np.int64)
    if col.dtype.kind not in "iu":
        raise FormatError(where, None, f"{name} has dtype {col.dtype}; expected numbers")
    return col.astype(np.int64)


def events_from_columns(t, x, y, p, sensor_size, where, *, seconds: bool = False, origin: str = "stored"):
    """Build a sample's events from columns; returns ``(events, t_offset)``.

    Parameters
    ----------
    t, x, y, p : array-like, shape (N,) each
        Timestamps (µs, or seconds when ``seconds``), coordinates and polarity as stored.
    sensor_size : (W, H, P)
    where : str
        File or ``archive!member`` named in errors.
    seconds : bool
        ``t`` holds seconds (float); converted with ``rint(t · 1e6)``.
    origin : ``"stored"`` or ``"first"``
        Keep ``t`` as stored, or start it at the first event.
    """
    if origin not in ("stored", "first"):
        raise ValueError(f"origin must be 'stored' or 'first', got {origin!r}")
    t = np.asarray(t).reshape(-1)
    if seconds:
        t = t.astype(np.float64)
        if not np.isfinite(t).all():
            i = int(np.argmax(~np.isfinite(t)))
            raise FormatError(where, None, f"t[{i}] = {t[i]!r} seconds is not finite")
        t = np.rint(t * 1e6)
    cols = [_integral(c, n, where) for c, n in ((t, "t"), (x, "x"), (y, "y"))]
    p = np.asarray(p).reshape(-1)
    if len({c.shape[0] for c in cols} | {p.shape[0]}) != 1:
        raise FormatError(where, None, f"columns t, x, y, p have different lengths "
                                       f"{[c.shape[0] for c in cols] + [p.shape[0]]}")
    t, x, y = cols
    W, H, _ = sensor_size
    for col, name, limit in ((x, "x", W), (y, "y", H)):
        bad = (col < 0) | (col >= limit)
        if bad.any():
            i = int(np.argmax(bad))
            raise FormatError(where, None, f"{name}[{i}] = {col[i]} lies outside [0, {limit}) "
                                           f"(sensor size {tuple(sensor_size)})")
    on = p > 0
    if t.size > 1 and (t[1:] < t[:-1]).any():
        order = np.argsort(t, kind="stable")
        t, x, y, on = t[order], x[order], y[order], on[order]
    offset = int(t[0]) if origin == "first" and t.size else 0
    if offset:
        t = t - offset
    return make_events(t, x, y, on), offset
