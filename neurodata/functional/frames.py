"""Event frames ``(T, P, H, W)``: exact bin modes, tonic- and SpikingJelly-compatible modes.

Every mode first turns the events into a list of frames, each an index range ``[lo, hi)`` of the
(validated) event array; one numba kernel then counts the events of each range per pixel. The modes
differ only in how the ranges are computed (see ``docs/transforms.md``, "Representations"):

* ``n_time_bins`` / ``n_event_bins`` (ours, exact integer edges, every event counted once);
* ``time_window`` / ``event_count`` (+ ``overlap``, ``include_incomplete``, ``start_time``,
  ``end_time``): the ranges tonic 1.7's slicers compute;
* ``frames_number`` + ``split_by`` and ``duration``: the ranges SpikingJelly 2.0's
  ``integrate_events_by_fixed_frames_number`` / ``..._by_fixed_duration`` compute, extended to the
  inputs on which those raise.
"""
from __future__ import annotations

import math
import numbers
import sys
from fractions import Fraction
from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

from ..events import as_events, check_bounds, check_sensor_size, check_sorted

__all__ = ["to_frame", "FRAME_DTYPES", "validate_events", "raise_violation"]

FRAME_DTYPES = tuple(np.dtype(d) for d in ("uint8", "int16", "uint16", "int32", "int64", "float32", "float64"))
"""Output dtypes accepted by :func:`to_frame`; integer outputs saturate at the dtype's maximum."""

_SORTED_MODES = ("n_time_bins", "time_window", "frames_number:time", "duration")


# --------------------------------------------------------------------------------------- kernels
@njit(cache=True)
def _first_violation_kernel(t, x, y, p, W, H, P, want_sorted):
    """First index outside ``(W, H, P)`` and first index where ``t`` decreases (-1 when none)."""
    bad = -1
    unsorted = -1
    Wu, Hu = np.uint64(W), np.uint64(H)
    pmax = np.uint64(P if P > 1 else 256)
    prev = t[0] if t.shape[0] else 0
    for i in range(np.uint64(t.shape[0])):  # unsigned: no negative-index wrap-around
        if np.uint64(x[i]) >= Wu or np.uint64(y[i]) >= Hu or np.uint64(p[i]) >= pmax:
            if bad < 0:
                bad = np.int64(i)
                if unsorted >= 0 or not want_sorted:
                    break
        ti = t[i]
        if want_sorted and ti < prev and unsorted < 0:
            unsorted = np.int64(i)
            if bad >= 0:
                break
        prev = ti
    return bad, unsorted


@njit(cache=True)
def _in_bounds_kernel(x, y, p, W, H, P):
    keep = np.empty(x.shape[0], np.bool_)
    for i in range(x.shape[0]):
        keep[i] = x[i] < W and y[i] < H and (P == 1 or p[i] < P)
    return keep


@njit(cache=True)
def _lower_bound_kernel(t, keys):
    """``numpy.searchsorted(t, keys, 'left')`` on a strided int64 view (no copy)."""
    out = np.empty(keys.shape[0], np.int64)
    n = t.shape[0]
    for k in range(keys.shape[0]):
        lo = 0
        hi = n
        key = keys[k]
        while lo < hi:
            mid = (lo + hi) >> 1
            if t[mid] < key:
                lo = mid + 1
            else:
                hi = mid
        out[k] = lo
    return out


@njit(cache=True)
def _count_range(words, i0, i1, ta, tb, dst, base, W, H, P, bad, misplaced):
    """Add 1 at ``dst[base + (c*H + y)*W + x]`` for events ``i0..i1-1``.

    ``words[i, 0]`` is event ``i``'s ``t`` as uint64 bits and ``words[i, 1]`` the little-endian
    uint64 at its byte 5 (``x``, ``y``, ``p`` in the top five bytes): one shared address per event.
    Unsigned indices spare numba's negative-index wrap-around. Out-of-bounds events are skipped
    and the smallest such index is returned in ``bad``; an event whose ``t`` lies outside
    ``[ta, tb]`` sets ``misplaced`` (the ranges assumed sorted input; ``ta = INT64_MIN``,
    ``tb = INT64_MAX`` turn the check off).
    """
    pmax = np.uint64(P if P > 1 else 256)
    pmul = np.uint64(1 if P > 1 else 0)
    Wu = np.uint64(W)
    Hu = np.uint64(H)
    b = np.uint64(base)
    span = np.uint64(tb - ta)
    tau = np.uint64(ta)
    reach = np.uint64(0)  # max of t - ta (unsigned): one max per event, one compare per range
    for i in range(np.uint64(i0), np.uint64(i1)):
        w = words[i, 1]
        xi = (w >> np.uint64(24)) & np.uint64(0xFFFF)
        yi = (w >> np.uint64(40)) & np.uint64(0xFFFF)
        pi = w >> np.uint64(56)
        if xi >= Wu or yi >= Hu or pi >= pmax:  # checked before the write
            if bad < 0 or np.int64(i) < bad:
                bad = np.int64(i)
            continue
        dst[b + (pi * pmul * Hu + yi) * Wu + xi] += 1
        reach = max(reach, words[i, 0] - tau)
    return bad, misplaced or reach > span


@njit(cache=True)
def _frames_kernel(words, lo, hi, ta, tb, out, W, H, P):
    """Serial count of frame ``f`` = events ``lo[f]..hi[f]-1`` into flat ``out`` (F*P*H*W)."""
    frame = P * H * W
    bad = -1
    misplaced = False
    for f in range(lo.shape[0]):
        bad, misplaced = _count_range(words, lo[f], hi[f], ta[f], tb[f], out, f * frame, W, H, P,
                                      bad, misplaced)
    return bad, misplaced


@njit(cache=True, parallel=True)
def _frames_parallel_kernel(words, lo, hi, ta, tb, cum, out, priv, W, H, P):
    """Parallel variant of ``_frames_kernel`` with an identical result.

    The concatenated work (``cum`` = prefix sums of range lengths) is cut into ``n`` equal parts.
    Part ``j > 0`` writes its first frame into a private buffer ``priv[j]`` (that frame may be shared
    with part ``j - 1``) and all later frames straight into ``out``; those are touched by no other
    part. The private buffers are added after the parallel loop.
    """
    n = priv.shape[0]
    frame = P * H * W
    total = cum[cum.shape[0] - 1]
    priv_frame = np.full(n, -1, np.int64)
    bads = np.full(n, -1, np.int64)
    mis = np.zeros(n, np.bool_)
    for j in prange(n):
        w0 = total // n * j + (total % n) * j // n
        w1 = total // n * (j + 1) + (total % n) * (j + 1) // n
        if w0 >= w1:
            continue
        f = 0
        while cum[f + 1] <= w0:  # the non-empty frame holding work position w0
            f += 1
        bad = -1
        misplaced = False
        w = w0
        first = True
        while w < w1:
            if cum[f + 1] <= w:
                f += 1
                continue
            i0 = lo[f] + (w - cum[f])
            take = min(cum[f + 1], w1) - w
            if first and j > 0:
                priv_frame[j] = f
                bad, misplaced = _count_range(words, i0, i0 + take, ta[f], tb[f], priv[j], 0, W, H, P,
                                              bad, misplaced)
            else:
                bad, misplaced = _count_range(words, i0, i0 + take, ta[f], tb[f], out, f * frame,
                                              W, H, P, bad, misplaced)
            first = False
            w += take
        bads[j] = bad
        mis[j] = misplaced
    bad = -1
    for j in range(n):
        f = priv_frame[j]
        if f >= 0:
            for k in range(frame):
                out[f * frame + k] += priv[j, k]
        if bads[j] >= 0 and (bad < 0 or bads[j] < bad):
            bad = bads[j]
    return bad, mis.any()


def _event_words(ev: np.ndarray) -> np.ndarray:
    """uint64 view ``(N, 2)`` of each event's bytes 0..7 (``t``) and 5..12 (``x``, ``y``, ``p``)."""
    if ev.shape[0] == 0:
        return np.zeros((0, 2), np.uint64)
    if sys.byteorder != "little":  # pragma: no cover - x86 and ARM are little-endian
        raise NotImplementedError("the frames kernel needs a little-endian host")
    ev = np.ascontiguousarray(ev)
    return np.ndarray(shape=(ev.shape[0], 2), dtype="<u8", buffer=ev, offset=0, strides=(13, 5))


# ------------------------------------------------------------------------------------ validation
def validate_events(events, sensor_size, *, need_sorted: bool, on_out_of_bounds: str = "raise",
                    name: str = "events"):
    """Return ``(events, (W, H, P))`` after the checks every representation shares.

    ``events`` goes through :func:`neurodata.events.as_events` (dtype and fields); coordinates outside
    ``sensor_size`` raise ``ValueError`` naming the first offending index, or are dropped when
    ``on_out_of_bounds="drop"``; with ``need_sorted`` a decreasing ``t`` raises ``ValueError``.
    """
    ev = as_events(events, name)
    W, H, P = check_sensor_size(sensor_size)
    _check_oob_policy(on_out_of_bounds)
    bad, unsorted = _first_violation_kernel(ev["t"], ev["x"], ev["y"], ev["p"], W, H, P, need_sorted)
    if bad >= 0:
        if on_out_of_bounds == "raise":
            check_bounds(ev, (W, H, P), name)
        ev = ev[_in_bounds_kernel(ev["x"], ev["y"], ev["p"], W, H, P)]
        if need_sorted:
            check_sorted(ev, name)
    elif unsorted >= 0:
        check_sorted(ev, name)
    return ev, (W, H, P)


# status codes that kernels checking their input as they go return with the first offending index
OK, OUT_OF_BOUNDS, UNSORTED = 0, 1, 2


def raise_violation(ev, sizes, status: int, index: int, name: str = "events"):
    """Raise the ``ValueError`` of :func:`validate_events` for a kernel's ``(status, index)``.

    A kernel that checks each event before using it stops at the first violation of either kind:
    ``index`` is then the first out-of-bounds event, resp. the first decreasing ``t`` with all
    earlier events in bounds. Bounds take precedence as in :func:`validate_events`, so an
    ``UNSORTED`` report still scans the rest for out-of-bounds events.
    """
    if status == OUT_OF_BOUNDS:
        check_bounds(ev[: index + 1], sizes, name)
    elif status == UNSORTED:
        check_bounds(ev, sizes, name)
        check_sorted(ev[: index + 1], name)
    raise AssertionError(f"kernel reported status {status} at index {index}; the checks found none")


def _check_oob_policy(on_out_of_bounds):
    if on_out_of_bounds not in ("raise", "drop"):
        raise ValueError(f"on_out_of_bounds must be 'raise' or 'drop', got {on_out_of_bounds!r}")


def check_frame_dtype(dtype, name: str = "dtype") -> np.dtype:
    """Return ``dtype`` (a numpy dtype or its name, or the torch dtype of the same name, e.g.
    ``torch.uint8``) as a ``numpy.dtype`` from :data:`FRAME_DTYPES` or raise ``ValueError``."""
    spelled = str(dtype).removeprefix("torch.") if type(dtype).__module__ == "torch" else dtype  # no torch import
    try:
        dt = None if dtype is None else np.dtype(spelled)  # np.dtype(None) is float64
    except TypeError:
        dt = None
    if dt is None or dt not in FRAME_DTYPES:
        raise ValueError(f"{name} must be one of {[str(d) for d in FRAME_DTYPES]}, got {dtype!r}")
    return dt


def check_float_dtype(dtype, name: str = "dtype") -> np.dtype:
    """float32 or float64 (as :func:`check_frame_dtype` spells them) as a ``numpy.dtype``, else
    ``ValueError``."""
    try:
        dt = check_frame_dtype(dtype, name)
    except ValueError:
        dt = None
    if dt is None or dt.kind != "f":
        raise ValueError(f"{name} must be float32 or float64, got {dtype!r}")
    return dt


def cast_counts(acc: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Convert non-negative integer counts to ``dtype``: integers saturate at the maximum."""
    if acc.dtype == dtype:
        return acc
    if dtype.kind in "iu" and acc.size and np.iinfo(dtype).max < np.iinfo(acc.dtype).max:
        return np.minimum(acc, np.iinfo(dtype).max).astype(dtype)
    return acc.astype(dtype)


# ----------------------------------------------------------------------------------------- modes
class FrameMode(NamedTuple):
    """A validated frame mode: ``name`` is one of the six mode parameters, ``value`` its value."""

    name: str
    value: int | float
    split_by: str | None = None
    overlap: int | float = 0
    include_incomplete: bool = False
    start_time: int | float | None = None
    end_time: int | float | None = None

    @property
    def needs_sorted(self) -> bool:
        key = f"{self.name}:{self.split_by}" if self.name == "frames_number" else self.name
        return key in _SORTED_MODES


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def check_positive(name: str, value, integral: bool = False):
    """``value`` when it is a positive int (``integral``) or a positive finite number, else
    ``ValueError`` naming ``name``."""
    ok = isinstance(value, numbers.Integral if integral else numbers.Real) and not isinstance(value, bool)
    if not ok or not value > 0 or (not integral and not math.isfinite(value)):
        kind = "int" if integral else "number"
        raise ValueError(f"{name} must be a positive {kind}, got {value!r}")
    return value


def exact(v) -> Fraction:
    """The exact value of a finite real parameter as a ``Fraction``: ints (numpy's too) and
    fractions as they are, floats (numpy's too: ``Fraction(np.float32(2))`` raises) by their
    binary value."""
    return Fraction(int(v)) if _is_int(v) else v if isinstance(v, Fraction) else Fraction(float(v))


def frame_mode(*, time_window=None, event_count=None, n_time_bins=None, n_event_bins=None,
               frames_number=None, split_by=None, duration=None, overlap=0,
               include_incomplete=False, start_time=None, end_time=None) -> FrameMode:
    """Validate the mode parameters of :func:`to_frame` and return a :class:`FrameMode`."""
    given = {k: v for k, v in dict(n_time_bins=n_time_bins, n_event_bins=n_event_bins,
                                   time_window=time_window, event_count=event_count,
                                   frames_number=frames_number, duration=duration).items()
             if v is not None}
    if len(given) != 1:
        raise ValueError(
            "give exactly one of n_time_bins, n_event_bins, time_window, event_count, frames_number "
            f"(with split_by) or duration; got {sorted(given) or 'none'}")
    (name, value), = given.items()
    if name == "time_window":
        if not (_is_real(value) and value > 0):
            raise ValueError(f"time_window must be a positive number of µs, got {value!r}")
    elif not (_is_int(value) and value > 0):
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    else:
        value = int(value)  # a numpy int would overflow in the Python-integer edge arithmetic
    if name == "frames_number":
        if split_by not in ("number", "time"):
            raise ValueError(f"frames_number needs split_by='number' or 'time', got split_by={split_by!r}")
    elif split_by is not None:
        raise ValueError(f"split_by goes with frames_number only, not with {name}")
    if not _is_real(overlap) or overlap < 0:
        raise ValueError(f"overlap must be a number >= 0, got {overlap!r}")
    if overlap:
        if name in ("frames_number", "duration"):
            raise ValueError(f"overlap is not defined for {name} (SpikingJelly modes); leave it 0")
        if name in ("n_time_bins", "n_event_bins") and not overlap < 1:
            raise ValueError(f"with {name}, overlap is a fraction of a bin in [0, 1), got {overlap!r}")
        if name in ("time_window", "event_count") and not overlap < value:
            raise ValueError(f"overlap must be smaller than {name} ({value!r}), got {overlap!r}")
    if include_incomplete and name not in ("time_window", "event_count"):
        raise ValueError(f"include_incomplete goes with time_window or event_count, not with {name}")
    for key, v in (("start_time", start_time), ("end_time", end_time)):
        if v is not None:
            if name != "time_window":
                raise ValueError(f"{key} goes with time_window only, not with {name}")
            if not _is_real(v):
                raise ValueError(f"{key} must be a number of µs, got {v!r}")
    return FrameMode(name, value, split_by, overlap, bool(include_incomplete), start_time, end_time)


def _bin_ranges(n_bins: int, span: int, overlap) -> tuple[list[int], list[int]]:
    """Integer bin edges on ``[0, span]`` (last bin closed): ``[ceil(b*s), ceil(b*s + w))``.

    ``w = span / (T - (T-1)*overlap)``, ``s = (1 - overlap) * w``; exact rational arithmetic.
    """
    T = n_bins
    if not overlap:
        edges = [(b * span + T - 1) // T for b in range(T + 1)]
        return edges[:-1], edges[1:-1] + [span + 1]
    o = exact(overlap)
    w = Fraction(span) / (T - (T - 1) * o)
    s = (1 - o) * w
    starts = [math.ceil(b * s) for b in range(T)]
    ends = [math.ceil(b * s + w) for b in range(T - 1)] + [span + 1]
    return starts, ends


class FrameRanges(NamedTuple):
    """Frame ``f`` holds events ``lo[f]..hi[f]-1``; ``tiles``: the ranges tile ``[0, N)`` in order.

    ``ta``/``tb`` (int64, inclusive) are the time interval each frame stands for when the ranges
    were found by binary search on ``t`` (time modes that tile); the counting kernel then checks
    every event against them, which detects unsorted input wherever it would change the result.
    """

    lo: np.ndarray
    hi: np.ndarray
    tiles: bool
    ta: np.ndarray | None = None
    tb: np.ndarray | None = None


_I64_MAX = np.iinfo(np.int64).max
_I64_MIN = np.iinfo(np.int64).min


def _searched(t, keys, N, last_end):
    """Tiling ranges from sorted-time frame starts ``keys`` (``keys[0]`` = ``t[0]``)."""
    lo = _lower_bound_kernel(t, np.array(keys, np.int64))
    lo[0] = 0  # keys[0] == t[0]: 0 on sorted input; on unsorted input the tiling must still cover all
    lo = np.maximum.accumulate(lo)
    hi = np.append(lo[1:], N)
    ta = np.array(keys, np.int64)
    tb = np.append(ta[1:] - 1, last_end)
    return FrameRanges(lo, hi, True, ta, np.maximum(tb, ta))


def frame_ranges(ev: np.ndarray, mode: FrameMode) -> FrameRanges:
    """The frames of ``mode`` as index ranges of the validated ``EVENT_DTYPE`` array ``ev``."""
    N = ev.shape[0]
    name, value = mode.name, mode.value
    if N == 0:  # as many empty frames as the mode fixes without events (time windows: both ends given)
        F = value if name in ("n_time_bins", "n_event_bins", "frames_number") else 1
        if name == "time_window" and mode.start_time is not None and mode.end_time is not None:
            F = _tonic_window_count(mode.start_time, mode.end_time, value, mode)
        z = np.zeros(F, np.int64)
        return FrameRanges(z, z, True)
    t = ev["t"]
    if name == "n_event_bins":
        lo, hi = _bin_ranges(value, N, mode.overlap)
        return FrameRanges(np.array(lo, np.int64), np.minimum(np.array(hi, np.int64), N), not mode.overlap)
    t0 = int(t[0])
    if name == "n_time_bins":
        t1 = int(t[-1])
        if t1 <= t0:  # zero duration: everything in bin 0 (t1 < t0: unsorted, the check reports it)
            lo = np.full(value, N, np.int64)
            lo[0] = 0
            return FrameRanges(lo, np.full(value, N, np.int64), True,
                               np.full(value, t0, np.int64), np.full(value, t0, np.int64))
        starts, ends = _bin_ranges(value, t1 - t0, mode.overlap)
        if not mode.overlap:
            return _searched(t, [t0 + e for e in starts], N, t1)
        keys = np.array([t0 + e for e in starts[1:]] + [t0 + e for e in ends[:-1]], np.int64)
        found = _lower_bound_kernel(t, keys)
        lo = np.concatenate([[0], found[: value - 1]]).astype(np.int64)
        hi = np.concatenate([found[value - 1:], [N]]).astype(np.int64)
        return FrameRanges(lo, hi, False)
    if name == "frames_number":
        M = value
        if mode.split_by == "number":
            lo = np.arange(M, dtype=np.int64) * (N // M)
            return FrameRanges(lo, np.append(lo[1:], N), True)
        dt = (int(t[-1]) - t0) // M
        return _searched(t, [t0 + i * dt for i in range(M)], N, _I64_MAX)
    if name == "duration":
        # SpikingJelly: frames_num = math.ceil(t[-1] / duration) in float64; at least one frame here
        F = max(1, math.ceil(np.float64(int(t[-1]) - t0) / np.float64(value)))
        return _searched(t, [t0 + i * value for i in range(F)], N, _I64_MAX)
    tc = np.ascontiguousarray(t)
    if name == "time_window":
        lo, hi = _tonic_time_window(tc, value, mode)
    else:
        lo, hi = _tonic_event_count(N, value, mode)
    return FrameRanges(lo, hi, False)


def _tonic_window_count(start, end, time_window, mode) -> int:
    """How many windows tonic 1.7's ``SliceByTime`` makes over ``[start, end]`` (at least one)."""
    q = (end - start - time_window) / (time_window - mode.overlap)
    return max(int(np.ceil(q) + 1) if mode.include_incomplete else int(np.floor(q) + 1), 1)


def _tonic_time_window(t, time_window, mode):
    """The windows of tonic 1.7's ``SliceByTime`` (same arithmetic, hence identical edges)."""
    stride = time_window - mode.overlap
    start = t[0] if mode.start_time is None else mode.start_time
    end = t[-1] if mode.end_time is None else mode.end_time
    n = _tonic_window_count(start, end, time_window, mode)
    starts = np.arange(n) * stride + start
    return (np.searchsorted(t, starts).astype(np.int64),
            np.searchsorted(t, starts + time_window).astype(np.int64))


def _tonic_event_count(N, event_count, mode):
    """The slices of tonic 1.7's ``SliceByEventCount`` (clipped to ``[0, N]`` like Python slicing)."""
    count = min(event_count, N)
    stride = event_count - mode.overlap
    q = (N - count) / stride
    n = int(np.ceil(q) + 1) if mode.include_incomplete else int(np.floor(q) + 1)
    lo = (np.arange(n) * stride).astype(np.int64)
    return np.minimum(lo, N), np.minimum(lo + count, N)


# ----------------------------------------------------------------------------------- public API
def count_frames(ev, sizes, ranges: FrameRanges, num_threads=1, dtype=None) -> np.ndarray:
    """Count the events of each range into ``(F, P, H, W)`` counts.

    The counts are accumulated directly in ``dtype`` when no cell can exceed what it represents
    exactly (at most ``sum(hi - lo)`` events), else in int32 / int64; the caller casts with
    :func:`cast_counts`. The kernel skips out-of-bounds events and checks the time intervals
    ``ranges.ta``/``tb`` when given; either finding raises ``ValueError`` here (validate first when
    the ranges do not tile).
    """
    W, H, P = sizes
    lo, hi = ranges.lo, ranges.hi
    F = lo.shape[0]
    work = int((hi - lo).sum())
    acc = np.zeros(F * P * H * W, _accumulator(dtype, work))
    if ranges.ta is None:
        ta, tb = np.full(F, _I64_MIN, np.int64), np.full(F, _I64_MAX, np.int64)
    else:
        ta, tb = ranges.ta, ranges.tb
    words = _event_words(ev)
    n = _resolve_threads(num_threads, work)
    if n > 1:
        cum = np.concatenate([[0], np.cumsum(hi - lo)]).astype(np.int64)
        priv = np.zeros((n, P * H * W), acc.dtype)
        prev = numba.get_num_threads()
        numba.set_num_threads(n)
        try:
            bad, misplaced = _frames_parallel_kernel(words, lo, hi, ta, tb, cum, acc, priv, W, H, P)
        finally:
            numba.set_num_threads(prev)
    else:
        bad, misplaced = _frames_kernel(words, lo, hi, ta, tb, acc, W, H, P)
    if bad >= 0:
        check_bounds(ev, sizes)
    if misplaced:
        check_sorted(ev)
    if bad >= 0 or misplaced:  # pragma: no cover - the checks above always raise
        raise AssertionError("frames kernel reported a violation that the checks did not find")
    return acc.reshape(F, P, H, W)


def _accumulator(dtype, work: int) -> np.dtype:
    """The accumulator: ``dtype`` itself when it holds every count up to ``work`` exactly."""
    if dtype is not None:
        dt = np.dtype(dtype)
        exact = 2 ** (np.finfo(dt).nmant + 1) if dt.kind == "f" else np.iinfo(dt).max
        if work <= exact:
            return dt
    return np.dtype(np.int64 if work >= 2**31 - 1 else np.int32)


def _resolve_threads(num_threads, work) -> int:
    if num_threads is None:
        num_threads = numba.config.NUMBA_NUM_THREADS
    if not _is_int(num_threads) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
    if work < 1 << 16:  # not worth the thread start-up
        return 1
    return min(int(num_threads), numba.config.NUMBA_NUM_THREADS)


def to_frame(events, sensor_size, *, time_window=None, event_count=None, n_time_bins=None,
             n_event_bins=None, frames_number=None, split_by=None, duration=None, overlap=0,
             include_incomplete=False, start_time=None, end_time=None, dtype=np.float32,
             on_out_of_bounds="raise", num_threads=1) -> np.ndarray:
    """Count events into frames ``(T, P, H, W)``; exactly one mode parameter must be given.

    Parameters
    ----------
    events : ndarray[EVENT_DTYPE], shape (N,), t in µs
        Any structured array with fields ``t, x, y, p`` (converted by ``as_events``). The modes
        ``n_time_bins``, ``time_window``, ``frames_number`` with ``split_by='time'`` and
        ``duration`` need ``t`` sorted (non-decreasing) and raise ``ValueError`` otherwise; the
        other modes use index order.
    sensor_size : (W, H, P)
        ``P == 1`` merges both polarities into one channel; otherwise event ``p`` goes to channel
        ``p`` (1 = ON) and ``p >= P`` is out of bounds.
    n_time_bins, n_event_bins : int
        Ours. With ``t0``/``t1`` the first/last timestamp and ``D = t1 - t0``, event ``k`` goes to
        bin ``min(T-1, T*(t_k - t0) // D)`` (bin 0 for all when ``D == 0``), resp. ``T*k // N``;
        exact integer arithmetic, every event counted once. ``overlap`` in [0, 1): see the docs.
    time_window, event_count : number (µs), int
        tonic 1.7 ``ToFrame`` semantics with ``overlap``, ``include_incomplete``, ``start_time``,
        ``end_time``: the same frames and values (ours are ``(P, H, W)``-ordered and saturate).
    frames_number, split_by, duration : int, 'number' | 'time', int (µs)
        SpikingJelly 2.0 ``integrate_events_by_fixed_frames_number`` / ``..._by_fixed_duration``
        values; where those raise (empty windows, zero duration, no events) see the docs.
    dtype : uint8, int16, uint16, int32, int64, float32 (default) or float64
        Integer outputs saturate at the dtype's maximum instead of wrapping.
    on_out_of_bounds : 'raise' (default) or 'drop'
        Events outside ``sensor_size`` raise ``ValueError`` naming the first index, or are removed
        before binning (so ``t0``, ``t1`` and ``N`` are those of the kept events).
    num_threads : int or None
        Threads for the counting kernel (None: numba's default); the result does not depend on it.

    Returns
    -------
    ndarray, shape (T, P, H, W), dtype ``dtype``
        Empty input gives zeros: ``T`` frames for the bin and ``frames_number`` modes, one frame for
        ``time_window``, ``event_count`` and ``duration``.
    """
    mode = frame_mode(time_window=time_window, event_count=event_count, n_time_bins=n_time_bins,
                      n_event_bins=n_event_bins, frames_number=frames_number, split_by=split_by,
                      duration=duration, overlap=overlap, include_incomplete=include_incomplete,
                      start_time=start_time, end_time=end_time)
    dt = check_frame_dtype(dtype)
    return cast_counts(frame_counts(events, sensor_size, mode, on_out_of_bounds, num_threads, dt), dt)


def frame_counts(events, sensor_size, mode: FrameMode, on_out_of_bounds="raise", num_threads=1,
                 dtype=None):
    """Counts ``(T, P, H, W)`` for a validated ``mode`` (see :func:`to_frame`): in ``dtype`` where
    that is exact, else in int32/int64 (pass the result through :func:`cast_counts`)."""
    ev = as_events(events)
    sizes = check_sensor_size(sensor_size)
    _check_oob_policy(on_out_of_bounds)
    if on_out_of_bounds == "drop":
        ev = ev[_in_bounds_kernel(ev["x"], ev["y"], ev["p"], *sizes)]
    ranges = frame_ranges(ev, mode)
    if not ranges.tiles:  # some events may lie in no frame (or in several): check them all first
        ev, sizes = validate_events(ev, sizes, need_sorted=mode.needs_sorted)
    return count_frames(ev, sizes, ranges, num_threads, dtype)
