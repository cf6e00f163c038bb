"""Augmentations: random drops, jitter, noise, flips, crops, downsampling, time edits.

Conventions shared by every function here (so each docstring states only its own rule):

- ``events``: ``ndarray[EVENT_DTYPE]`` (or any structured array with ``t, x, y, p``), shape
  ``(N,)``, ``t`` in µs. The input is never modified.
- Returns a new ``EVENT_DTYPE`` array, shape ``(M,)``; empty input gives empty output.
- ``sensor_size``: ``(W, H, P)``; where given, events outside it raise ``ValueError`` naming the
  first offending index.
- ``rng``: ``numpy.random.Generator``, int seed or ``None`` (``as_rng``); no global state is used.
- Order: functions that reorder nothing keep the input order; ``time_jitter`` and
  ``uniform_noise`` sort by ``t`` (stable); those that say "input must be sorted" raise
  ``ValueError`` on unsorted ``t``.

Exact rules and differences from tonic 1.7: ``docs/transforms.md``.
"""
from __future__ import annotations

import math
import numbers
from fractions import Fraction

import numpy as np
from numba import njit

from ..events import check_sensor_size
from ._eventarray import checked_events, concat_events, copy_events, select_events
from .frames import exact

__all__ = [
    "as_rng",
    "drop_event", "drop_event_by_time", "drop_event_by_area", "event_drop",
    "spatial_jitter", "time_jitter", "time_skew", "time_reversal", "uniform_noise",
    "flip_lr", "flip_ud", "flip_polarity", "center_crop", "random_crop", "cropped_sensor_size",
    "downsample", "downsampled_sensor_size", "merge_polarities", "time_align",
]

_I64 = 2.0**63


def as_rng(rng=None) -> np.random.Generator:
    """``numpy.random.default_rng(rng)``: a Generator is used as is (and advances), an int or
    ``SeedSequence`` seeds a new one, ``None`` draws fresh OS entropy (not reproducible)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (numbers.Integral, np.random.SeedSequence)) and not isinstance(rng, bool):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, got {type(rng).__name__}")


def _real(value, name, lo, hi, *, hi_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < lo or value > hi or (hi_open and value >= hi):
        raise ValueError(f"{name} must lie in [{lo}, {hi}{')' if hi_open else ']'}, got {value!r}")
    return float(value)


def _draw(value, name, rng, lo, hi, *, hi_open=False) -> float:
    """A number, or a ``(low, high)`` pair from which one value is drawn ``U[low, high)``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be a number or a (low, high) pair, got {value!r}")
        a = _real(value[0], name, lo, hi, hi_open=hi_open)
        b = _real(value[1], name, lo, hi, hi_open=hi_open)
        if b < a:
            raise ValueError(f"{name} = {value!r}: low must not exceed high")
        return float(rng.uniform(a, b))
    return _real(value, name, lo, hi, hi_open=hi_open)


def _size2(size, name) -> tuple[int, int]:
    """An int or a ``(w, h)`` pair of positive ints."""
    vals = (size, size) if isinstance(size, numbers.Integral) else tuple(size)
    if len(vals) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in vals):
        raise ValueError(f"{name} must be a positive int or a (width, height) pair of them, got {size!r}")
    return int(vals[0]), int(vals[1])


def _int_times(values: np.ndarray, name: str) -> np.ndarray:
    """Round float64 times half-to-even (``np.rint``) and convert to int64, refusing overflow."""
    r = np.rint(values)
    if r.size and not (np.isfinite(r).all() and r.min() >= -_I64 and r.max() < _I64):
        raise ValueError(f"{name}: resulting timestamps do not fit int64 µs")
    return r.astype(np.int64)


def _shifted(t: np.ndarray, d: np.ndarray, name: str) -> np.ndarray:
    """``t + d`` (int64), refusing what int64 cannot hold (numpy would wrap around)."""
    top, bottom = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    up, down = d > 0, d < 0
    if (t[up] > top - d[up]).any() or (t[down] < bottom - d[down]).any():
        raise ValueError(f"{name}: resulting timestamps do not fit int64 µs")
    return t + d


# ----------------------------------------------------------------------------- drops
def drop_event(events, p, *, rng=None) -> np.ndarray:
    """Drop exactly ``floor(p * N + 0.5)`` events chosen uniformly without replacement.

    ``p`` in [0, 1], or ``(p_min, p_max)`` from which ``p ~ U[p_min, p_max)`` is drawn first.
    Kept events stay in input order. (tonic 1.7's count rule, without its global RNG.)
    """
    rng = as_rng(rng)
    ev = checked_events(events)
    p = _draw(p, "p", rng, 0.0, 1.0)
    n = ev.shape[0]
    n_drop = min(n, int(math.floor(p * n + 0.5)))
    keep = np.ones(n, dtype=bool)
    keep[rng.choice(n, n_drop, replace=False)] = False
    return select_events(ev, keep)


def drop_event_by_time(events, duration_ratio=0.2, *, rng=None) -> np.ndarray:
    """Drop the events of one random time interval covering ``duration_ratio`` of the recording.

    With ``t0 = t[0]``, ``t1 = t[-1]`` (sorted input), ``d = r * (t1 - t0)`` and
    ``s ~ U[t0, t1 - d)`` (float64), events with ``s <= t <= s + d`` are dropped (closed interval).
    ``duration_ratio`` in [0, 1) or a ``(low, high)`` pair (``r ~ U[low, high)``). Differs from
    tonic, which measures the interval from ``t = 0`` instead of ``t0``. One event (or all at one
    time) is always dropped, since ``s = t0``.
    """
    rng = as_rng(rng)
    ev = checked_events(events, ordered=True)
    r = _draw(duration_ratio, "duration_ratio", rng, 0.0, 1.0, hi_open=True)
    if ev.size == 0:
        return copy_events(ev)
    t0, t1 = float(ev["t"][0]), float(ev["t"][-1])
    d = (t1 - t0) * r
    s = rng.uniform(t0, t1 - d)
    t = ev["t"]
    return select_events(ev, ~((t >= s) & (t <= s + d)))


def drop_event_by_area(events, sensor_size, area_ratio=0.2, *, rng=None) -> np.ndarray:
    """Drop the events inside one random box of ``int(W r) x int(H r)`` pixels.

    ``x0 ~ integers[0, W - int(W r))``, ``y0`` likewise; events with ``x0 <= x < x0 + int(W r)``
    and ``y0 <= y < y0 + int(H r)`` are dropped (no box when a side is 0). ``area_ratio`` in
    [0, 1) or a ``(low, high)`` pair (``r ~ U[low, high)``), as in tonic 1.7.
    """
    rng = as_rng(rng)
    W, H, _ = check_sensor_size(sensor_size)
    ev = checked_events(events, sensor_size)
    r = _draw(area_ratio, "area_ratio", rng, 0.0, 1.0, hi_open=True)
    w, h = int(W * r), int(H * r)
    x0 = int(rng.integers(0, W - w))
    y0 = int(rng.integers(0, H - h))
    x, y = ev["x"], ev["y"]
    return select_events(ev, ~((x >= x0) & (x < x0 + w) & (y >= y0) & (y < y0 + h)))


def event_drop(events, sensor_size, *, rng=None) -> np.ndarray:
    """EventDrop (Gu et al. 2021): one of four strategies, each with probability 1/4.

    0: identity; 1: ``drop_event_by_time`` with ``r = k / 10``, ``k ~ integers[1, 10)``;
    2: ``drop_event_by_area`` with ``r = k / 20``, ``k ~ integers[1, 6)``; 3: ``drop_event`` with
    ``p = k / 10``, ``k ~ integers[1, 10)`` (tonic 1.7's choices).
    """
    rng = as_rng(rng)
    ev = checked_events(events, sensor_size, ordered=True)  # strategy 1 needs t sorted: whatever is drawn
    choice = int(rng.integers(0, 4))
    if choice == 1:
        return drop_event_by_time(ev, int(rng.integers(1, 10)) / 10.0, rng=rng)
    if choice == 2:
        return drop_event_by_area(ev, sensor_size, int(rng.integers(1, 6)) / 20.0, rng=rng)
    if choice == 3:
        return drop_event(ev, int(rng.integers(1, 10)) / 10.0, rng=rng)
    return copy_events(ev)


# ----------------------------------------------------------------------------- jitter and noise
def spatial_jitter(events, sensor_size, var_x=1.0, var_y=1.0, sigma_xy=0.0, *, policy="drop", rng=None):
    """Add Gaussian noise ``(dx, dy) ~ N(0, [[var_x, sigma_xy], [sigma_xy, var_y]])`` to x and y.

    ``x' = rint(x + dx)`` (round half to even), ``y'`` likewise. Events that land outside
    ``[0, W-1] x [0, H-1]`` are dropped (``policy="drop"``) or clamped to the edge
    (``policy="clip"``). ``(dx, dy)`` is drawn as ``dx = a z0``, ``dy = b z0 + c z1`` with standard
    normals ``z`` and the Cholesky factor ``a = sqrt(var_x)``, ``b = sigma_xy / a``,
    ``c = sqrt(var_y - b**2)``. (tonic truncates toward zero and wraps negative coordinates.)
    """
    rng = as_rng(rng)
    W, H, _ = check_sensor_size(sensor_size)
    ev = checked_events(events, sensor_size)
    vx = _real(var_x, "var_x", 0.0, math.inf)
    vy = _real(var_y, "var_y", 0.0, math.inf)
    sxy = _real(sigma_xy, "sigma_xy", -math.inf, math.inf)
    if sxy * sxy > vx * vy:
        raise ValueError(f"covariance [[{vx}, {sxy}], [{sxy}, {vy}]] is not positive semi-definite")
    if policy not in ("drop", "clip"):
        raise ValueError(f"policy must be 'drop' or 'clip', got {policy!r}")
    z = rng.standard_normal((2, ev.shape[0]))
    a = math.sqrt(vx)
    b = sxy / a if a > 0 else 0.0
    c = math.sqrt(max(vy - b * b, 0.0))
    x = np.rint(ev["x"] + a * z[0])
    y = np.rint(ev["y"] + b * z[0] + c * z[1])
    if policy == "clip":
        out = copy_events(ev)
        out["x"] = np.clip(x, 0, W - 1)
        out["y"] = np.clip(y, 0, H - 1)
        return out
    inside = (x >= 0) & (x <= W - 1) & (y >= 0) & (y <= H - 1)
    out = select_events(ev, inside)
    out["x"] = x[inside]
    out["y"] = y[inside]
    return out


def time_jitter(events, std=1.0, *, drop_negative=False, rng=None) -> np.ndarray:
    """``t' = t + rint(N(0, std))`` µs per event, then a stable sort by ``t'``.

    ``drop_negative=True`` removes events with ``t' < 0`` (tonic's ``clip_negative``).
    """
    rng = as_rng(rng)
    ev = checked_events(events)
    s = _real(std, "std", 0.0, 1e15)
    t = _shifted(ev["t"], _int_times(rng.normal(0.0, s, ev.shape[0]), "time_jitter"), "time_jitter")
    out = copy_events(ev)
    out["t"] = t
    if drop_negative:
        out = select_events(out, t >= 0)
    return select_events(out, np.argsort(out["t"], kind="stable"))


def time_skew(events, coefficient, offset=0.0, *, rng=None) -> np.ndarray:
    """``t' = rint(coefficient * t + offset)`` in float64 (exact for ``|t| < 2**53``).

    ``coefficient > 0`` (order is kept); either parameter may be a ``(low, high)`` pair, drawn
    ``U[low, high)``. tonic truncates toward zero instead of rounding.
    """
    rng = as_rng(rng)
    ev = checked_events(events)
    c = _draw(coefficient, "coefficient", rng, 0.0, math.inf)
    if c <= 0:
        raise ValueError(f"coefficient must be > 0 (use time_reversal to reverse time), got {coefficient!r}")
    o = _draw(offset, "offset", rng, -math.inf, math.inf)
    out = copy_events(ev)
    out["t"] = _int_times(ev["t"] * c + o, "time_skew")
    return out


def time_reversal(events, *, flip_polarities=True) -> np.ndarray:
    """Reverse time inside the recording's span: ``t' = t[0] + t[-1] - t``, order reversed.

    With ``flip_polarities`` ``p' = 1 if p == 0 else 0``. Input must be sorted; the output is the
    input in reverse order (so it is sorted again). tonic uses ``max(t) - t``, which moves the
    span to start at 0.
    """
    ev = checked_events(events, ordered=True)
    out = copy_events(ev[::-1])
    if out.size:
        out["t"] = (int(ev["t"][-1]) - out["t"]) + ev["t"][0]
        if flip_polarities:
            out["p"] = out["p"] == 0
    return out


def uniform_noise(events, sensor_size, n, *, rng=None) -> np.ndarray:
    """Add ``n`` events with ``x ~ integers[0, W)``, ``y ~ integers[0, H)``, ``p ~ integers[0, P)``
    and ``t ~ integers[min t, max t]`` (inclusive), then sort stably by ``t`` (inputs first on ties).

    ``n`` is an int >= 0 or a ``(low, high)`` pair (``n ~ integers[low, high]``, inclusive).
    Empty input is returned unchanged (there is no time range to draw from), as in tonic.
    """
    rng = as_rng(rng)
    W, H, P = check_sensor_size(sensor_size)
    ev = checked_events(events, sensor_size)
    if isinstance(n, (tuple, list)) and len(n) == 2 and all(isinstance(v, numbers.Integral) for v in n) \
            and 0 <= n[0] <= n[1]:
        n = int(rng.integers(n[0], n[1], endpoint=True))
    elif isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n must be an int >= 0 or a (low, high) pair of them, got {n!r}")
    if ev.size == 0:
        return copy_events(ev)
    t = ev["t"]
    noise = np.empty(int(n), dtype=ev.dtype)
    noise["t"] = rng.integers(t.min(), t.max(), size=n, endpoint=True)
    noise["x"] = rng.integers(0, W, size=n)
    noise["y"] = rng.integers(0, H, size=n)
    noise["p"] = rng.integers(0, P, size=n)
    both = concat_events([ev, noise])
    return select_events(both, np.argsort(both["t"], kind="stable"))


# ----------------------------------------------------------------------------- geometry
def flip_lr(events, sensor_size) -> np.ndarray:
    """Mirror left-right: ``x' = W - 1 - x`` (an involution; order kept)."""
    W = check_sensor_size(sensor_size)[0]
    out = copy_events(checked_events(events, sensor_size))
    out["x"] = (W - 1) - out["x"]
    return out


def flip_ud(events, sensor_size) -> np.ndarray:
    """Mirror up-down: ``y' = H - 1 - y`` (an involution; order kept)."""
    H = check_sensor_size(sensor_size)[1]
    out = copy_events(checked_events(events, sensor_size))
    out["y"] = (H - 1) - out["y"]
    return out


def flip_polarity(events, p=1.0, *, per_event=False, rng=None) -> np.ndarray:
    """Flip polarity ``p' = 1 if p == 0 else 0``.

    ``per_event=False``: the whole sample is flipped when ``rng.random() < p``. ``per_event=True``:
    each event is flipped independently when its own ``U[0, 1)`` draw is ``< p``. ``p = 1`` always
    flips, ``p = 0`` never does.
    """
    rng = as_rng(rng)
    prob = _real(p, "p", 0.0, 1.0)
    out = copy_events(checked_events(events))
    flip = rng.random(out.shape[0]) < prob if per_event else rng.random() < prob
    out["p"] = np.where(flip, out["p"] == 0, out["p"])
    return out


def _crop(ev, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """Events with ``x0 <= x < x0 + w`` and ``y0 <= y < y0 + h``, shifted by ``(-x0, -y0)``; the
    masks compare the uint16 columns with bounds clamped to their range (no int64 copies)."""
    x, y = ev["x"], ev["y"]
    inside = (x >= max(x0, 0)) & (x < min(x0 + w, 65536)) & (y >= max(y0, 0)) & (y < min(y0 + h, 65536))
    out = select_events(ev, inside)
    for name, origin in (("x", x0), ("y", y0)):
        col = out[name]
        if origin < 0 and col.size and int(col.max()) - origin > 65535:  # padding past uint16
            raise ValueError(f"cropped coordinates up to {int(col.max()) - origin} exceed the uint16 range")
        if origin > 0:
            col -= np.uint16(origin)
        elif origin < 0:
            col += np.uint16(-origin)
    return out


def cropped_sensor_size(sensor_size, size) -> tuple[int, int, int]:
    """``(w, h, P)``: the sensor after ``center_crop`` / ``random_crop`` with ``size``."""
    return (*_size2(size, "size"), check_sensor_size(sensor_size)[2])


def center_crop(events, sensor_size, size) -> np.ndarray:
    """Keep a centred ``w x h`` window: ``x' = x - (W - w) // 2`` (floor), ``y'`` likewise; events
    with ``0 <= x' < w`` and ``0 <= y' < h`` are kept. A window larger than the sensor pads
    (negative offset, every event kept). New sensor size ``(w, h, P)``; same as tonic 1.7."""
    W, H, _ = check_sensor_size(sensor_size)
    w, h = _size2(size, "size")
    return _crop(checked_events(events, sensor_size), (W - w) // 2, (H - h) // 2, w, h)


def random_crop(events, sensor_size, size, *, rng=None) -> np.ndarray:
    """Keep a random ``w x h`` window: ``x0 ~ integers[0, W - w]`` and ``y0 ~ integers[0, H - h]``
    (inclusive, every placement possible; tonic never picks the last one), ``x' = x - x0``.
    ``size <= sensor`` is required. New sensor size ``(w, h, P)``."""
    rng = as_rng(rng)
    W, H, _ = check_sensor_size(sensor_size)
    w, h = _size2(size, "size")
    if w > W or h > H:
        raise ValueError(f"size {(w, h)} exceeds sensor_size {(W, H)}; use center_crop to pad")
    ev = checked_events(events, sensor_size)
    x0 = int(rng.integers(0, W - w, endpoint=True))
    y0 = int(rng.integers(0, H - h, endpoint=True))
    return _crop(ev, x0, y0, w, h)


def _fraction(value, name) -> Fraction:
    if isinstance(value, Fraction):
        f = value
    elif isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
        f = exact(value).limit_denominator(2**20)
    else:
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    if f <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return f


def _spatial_fractions(sensor_size, spatial_factor, target_size):
    if target_size is not None:
        if spatial_factor is not None:
            raise ValueError("give either spatial_factor or target_size, not both")
        if sensor_size is None:
            raise ValueError("target_size needs sensor_size (the size it is relative to)")
        W, H, _ = check_sensor_size(sensor_size)
        w, h = _size2(target_size, "target_size")
        return Fraction(w, W), Fraction(h, H)
    sf = 1 if spatial_factor is None else spatial_factor
    fx, fy = sf if isinstance(sf, (tuple, list)) else (sf, sf)
    return _fraction(fx, "spatial_factor"), _fraction(fy, "spatial_factor")


def downsampled_sensor_size(sensor_size, *, spatial_factor=None, target_size=None):
    """``(floor((W - 1) fx) + 1, floor((H - 1) fy) + 1, P)``: the sensor after ``downsample``."""
    W, H, P = check_sensor_size(sensor_size)
    fx, fy = _spatial_fractions(sensor_size, spatial_factor, target_size)
    out = ((W - 1) * fx.numerator // fx.denominator + 1, (H - 1) * fy.numerator // fy.denominator + 1, P)
    if max(out[:2]) > 65536:
        raise ValueError(f"downsampled sensor {out} exceeds the uint16 coordinate range")
    return out


@njit(cache=True)
def _dedup_kernel(ev, W, H, P):
    # keep the first event of each (t, x, y, p); equal t are contiguous (sorted input), so a
    # pixel's stamp holds the index where the current run of equal t started
    n = ev.shape[0]
    stamp = np.full(W * H * P, -1, dtype=np.int64)
    out = np.empty_like(ev)
    j = 0
    run = 0
    for i in range(n):
        if i > 0 and ev[i]["t"] != ev[i - 1]["t"]:
            run = i
        k = (np.int64(ev[i]["x"]) * H + np.int64(ev[i]["y"])) * P + np.int64(ev[i]["p"])
        if stamp[k] != run:
            stamp[k] = run
            out[j] = ev[i]
            j += 1
    return out, j


def downsample(events, sensor_size=None, *, spatial_factor=None, target_size=None, time_factor=1,
               deduplicate=False) -> np.ndarray:
    """Scale coordinates and time with exact rational floors.

    ``x' = floor(x fx)``, ``y' = floor(y fy)``, ``t' = floor(t ft)``, computed in integers: each
    factor is replaced by the closest fraction with denominator <= 2**20 (so ``1/3`` is one third
    exactly); ``target_size=(w, h)`` sets ``fx = w / W``, ``fy = h / H`` (needs ``sensor_size``;
    exclusive with ``spatial_factor``). All factors must be > 0. ``deduplicate=True`` keeps only
    the first of events that map to the same ``(t', x', y', p)``. Input must be sorted. New
    sensor size: ``downsampled_sensor_size``. (tonic truncates ``t`` toward zero in float64.)
    """
    ev = checked_events(events, sensor_size, ordered=True)
    fx, fy = _spatial_fractions(sensor_size, spatial_factor, target_size)
    ft = _fraction(time_factor, "time_factor")
    out = copy_events(ev)
    if ev.size == 0:
        return out
    t = ev["t"]
    if max(abs(int(t[0])), abs(int(t[-1]))) * ft.numerator >= 2**63:
        raise ValueError("downsample: t * time_factor's numerator overflows int64; use a simpler factor")
    nx = int(ev["x"].max()) * fx.numerator // fx.denominator
    ny = int(ev["y"].max()) * fy.numerator // fy.denominator
    if max(nx, ny) > 65535:
        raise ValueError(f"downsampled coordinates up to {max(nx, ny)} exceed the uint16 range")
    out["t"] = t * ft.numerator // ft.denominator
    out["x"] = ev["x"].astype(np.int64) * fx.numerator // fx.denominator
    out["y"] = ev["y"].astype(np.int64) * fy.numerator // fy.denominator
    if deduplicate:
        kept, j = _dedup_kernel(out, nx + 1, ny + 1, int(out["p"].max()) + 1)
        out = copy_events(kept[:j])
    return out


def merge_polarities(events) -> np.ndarray:
    """Set every ``p`` to 0 (one polarity channel; new sensor size ``(W, H, 1)``)."""
    out = copy_events(checked_events(events))
    out["p"] = 0
    return out


def time_align(events) -> np.ndarray:
    """Shift time so the earliest event is at 0: ``t' = t - min(t)`` (order kept)."""
    out = copy_events(checked_events(events))
    if out.size:
        low = int(out["t"].min())
        if int(out["t"].max()) - low > np.iinfo(np.int64).max:
            raise ValueError("time_align: the time span does not fit int64 µs")
        out["t"] -= low
    return out
