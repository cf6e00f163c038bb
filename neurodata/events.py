"""The event model shared by every part of neurodata.

``EVENT_DTYPE`` is a packed structured dtype ``t <i8`` (µs), ``x <u2``, ``y <u2``, ``p u1``
(1 = ON, 0 = OFF). ``sensor_size`` is ``(W, H, P)``; dense outputs are ``(..., P, H, W)``.
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np

__all__ = [
    "EVENT_DTYPE",
    "empty_events",
    "make_events",
    "as_events",
    "check_sensor_size",
    "check_bounds",
    "check_sorted",
    "copy_events",
    "select_events",
    "concat_events",
]

EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
"""Packed structured dtype of one event: 13 bytes, fields ``t`` (µs), ``x``, ``y``, ``p`` (1 = ON)."""

FIELDS = ("t", "x", "y", "p")


def empty_events(n: int = 0) -> np.ndarray:
    """Return an uninitialised ``EVENT_DTYPE`` array of shape ``(n,)`` (zeros when ``n == 0``)."""
    return np.empty(int(n), dtype=EVENT_DTYPE)


def make_events(t, x, y, p) -> np.ndarray:
    """Build an ``EVENT_DTYPE`` array from four equal-length 1-D columns.

    Values are cast with ``numpy.ndarray.astype`` (``casting="unsafe"``): callers pass values that
    already fit (``t`` int64 µs, ``x``/``y`` in 0..65535, ``p`` in {0, 1}).
    """
    cols = [np.asarray(c).reshape(-1) for c in (t, x, y, p)]
    n = cols[0].shape[0]
    if any(c.shape[0] != n for c in cols):
        raise ValueError(f"make_events: columns must have equal lengths, got {[c.shape[0] for c in cols]}")
    out = np.empty(n, dtype=EVENT_DTYPE)
    for name, col in zip(FIELDS, cols):
        out[name] = col
    return out


def _from_columns(columns: Mapping, name: str) -> np.ndarray:
    """The structured array (each field in its column's dtype) of the columns ``t, x, y, p``."""
    missing = [f for f in FIELDS if f not in columns]
    if missing:
        raise TypeError(f"{name} is missing field(s) {missing}; expected fields t, x, y, p")
    cols = [np.asarray(columns[f]) for f in FIELDS]
    if any(c.ndim != 1 for c in cols) or len({c.shape[0] for c in cols}) > 1:
        raise ValueError(f"{name}: columns t, x, y, p must be 1-D and of one length, got shapes "
                         f"{[c.shape for c in cols]}")
    arr = np.empty(cols[0].shape[0], dtype=[(f, c.dtype) for f, c in zip(FIELDS, cols)])
    for f, c in zip(FIELDS, cols):
        arr[f] = c
    return arr


def as_events(events, name: str = "events") -> np.ndarray:
    """Validate ``events`` and return it as a 1-D ``EVENT_DTYPE`` array.

    Accepts any 1-D structured array with at least the fields ``t``, ``x``, ``y``, ``p`` (tonic's
    arrays included), or a mapping of four equal-length 1-D columns under those keys (SpikingJelly's
    event dicts, e.g. ``np.load`` of its ``.npz`` files); values are converted the same way, and not
    copied when the dtype is already ``EVENT_DTYPE``. Raises ``TypeError`` for a non-structured
    array, missing fields or a field that is not bool, integer or float (object, timedelta64,
    datetime64, complex, strings: their values would be reinterpreted, e.g. a timedelta's unit
    dropped), ``ValueError`` for a wrong shape or values that do not fit the field types.
    """
    if isinstance(events, Mapping):
        events = _from_columns(events, name)
    arr = np.asarray(events)
    if arr.dtype.type is np.record:  # a recarray's record dtype compares equal but would stay record-typed
        arr = arr.view(np.dtype((np.void, arr.dtype))).view(np.ndarray)
    if arr.dtype == EVENT_DTYPE:
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
        return arr
    if arr.dtype.names is None:
        raise TypeError(
            f"{name} must be a structured array with fields t, x, y, p (neurodata.EVENT_DTYPE), "
            f"got dtype {arr.dtype}"
        )
    missing = [f for f in FIELDS if f not in arr.dtype.names]
    if missing:
        raise TypeError(f"{name} is missing field(s) {missing}; expected fields t, x, y, p")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    for f in FIELDS:
        kind = arr.dtype[f].kind
        if kind not in "biuf":
            hint = (": convert it to integer µs first, e.g. .astype('timedelta64[us]').astype('int64')"
                    if kind == "m" else "")
            raise TypeError(f"{name}[{f!r}] has dtype {arr.dtype[f]}; expected bool, integer or float values{hint}")
    out = np.empty(arr.shape[0], dtype=EVENT_DTYPE)
    for f in FIELDS:
        col = arr[f]
        target = EVENT_DTYPE[f]
        if f == "p":
            # polarity may arrive as -1/+1, 0/1 or bool: anything > 0 is ON
            out[f] = col > 0
            continue
        if col.size and np.issubdtype(col.dtype, np.number) and not np.can_cast(col.dtype, target):
            lo, hi = col.min(), col.max()
            info = np.iinfo(target)
            if np.issubdtype(col.dtype, np.floating) and not np.all(col == np.round(col)):
                raise ValueError(f"{name}[{f!r}] holds non-integer values; round them first")
            top = 2.0 ** (info.bits - (1 if info.min < 0 else 0))  # exclusive, exact in float64 (max is not)
            if lo < info.min or (hi >= top if np.issubdtype(col.dtype, np.floating) else hi > info.max):
                raise ValueError(f"{name}[{f!r}] values {lo}..{hi} do not fit {target}")
        out[f] = col
    return out


def check_sensor_size(sensor_size, name: str = "sensor_size") -> tuple[int, int, int]:
    """Validate ``sensor_size = (W, H, P)`` (positive ints) and return it as a tuple of ints."""
    try:
        vals = tuple(sensor_size)
    except TypeError:
        raise TypeError(f"{name} must be a tuple (W, H, P), got {sensor_size!r}") from None
    if len(vals) != 3 or not all(isinstance(v, numbers.Integral) and v > 0 for v in vals):
        raise ValueError(f"{name} must be three positive ints (W, H, P), got {sensor_size!r}")
    return tuple(int(v) for v in vals)


def check_bounds(events: np.ndarray, sensor_size, name: str = "events") -> None:
    """Raise ``ValueError`` naming the first event whose ``x``/``y``/``p`` lies outside ``sensor_size``.

    ``p`` must be < P, except that P == 1 accepts both polarities (they are merged into one channel).
    """
    W, H, P = check_sensor_size(sensor_size)
    if events.size == 0:
        return
    bad = (events["x"] >= W) | (events["y"] >= H)
    if P > 1:
        bad |= events["p"] >= P
    if bad.any():
        i = int(np.argmax(bad))
        e = events[i]
        raise ValueError(
            f"{name}[{i}] = (t={e['t']}, x={e['x']}, y={e['y']}, p={e['p']}) lies outside "
            f"sensor_size (W={W}, H={H}, P={P}); pass a larger sensor_size or drop out-of-bounds events"
        )


def check_sorted(events: np.ndarray, name: str = "events") -> None:
    """Raise ``ValueError`` naming the first index where ``t`` decreases."""
    t = events["t"]
    if t.size > 1:
        dec = t[1:] < t[:-1]
        if dec.any():
            i = int(np.argmax(dec)) + 1
            raise ValueError(
                f"{name} must be sorted by t: t[{i}] = {t[i]} < t[{i - 1}] = {t[i - 1]}; "
                "sort with events[np.argsort(events['t'], kind='stable')]"
            )


# NumPy copies packed structured arrays field by field through an unaligned path: ``ev.copy()``,
# ``ev[mask]`` and ``np.concatenate`` of 300 k events take 5-7 ms, the same operations on a
# same-size ``void`` view 0.05-1 ms. These helpers do that view round trip; results are equal.
def _void(ev: np.ndarray) -> np.ndarray:
    return ev.view(np.dtype((np.void, ev.dtype.itemsize)))


def copy_events(ev: np.ndarray) -> np.ndarray:
    """``ev.copy()`` of a structured array, fast (always contiguous)."""
    return _void(ev).copy().view(ev.dtype)


def select_events(ev: np.ndarray, selection) -> np.ndarray:
    """``ev[selection]`` for a boolean mask or an integer index array (always a copy), fast."""
    return _void(ev)[selection].view(ev.dtype)


def concat_events(parts) -> np.ndarray:
    """``np.concatenate(parts)`` for arrays of one structured dtype, fast (``ValueError`` for parts of
    different dtypes: their bytes would be joined as if they had the first one's layout)."""
    if any(p.dtype != parts[0].dtype for p in parts[1:]):
        raise ValueError(f"concat_events joins arrays of one dtype, got {sorted({str(p.dtype) for p in parts})}")
    return np.concatenate([_void(p) for p in parts]).view(parts[0].dtype)
