"""Deterministic filters as frozen transforms over ``neurodata.functional.filters``.

``Denoise``, ``RefractoryPeriod``, ``Decimation`` and ``DropPixel`` (by coordinates or by hot-pixel
frequency). They keep the sensor size. ``RefractoryPeriod(delta=(lo, hi))`` draws ``delta`` from
``rng``; the others ignore ``rng``. Calling convention: see ``neurodata.transforms.compose``.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

from ..functional import filters as F
from ..functional.augment import as_rng
from .compose import EventTransform

__all__ = ["Denoise", "RefractoryPeriod", "Decimation", "DropPixel"]


@dataclass(frozen=True)
class Denoise(EventTransform):
    """Background-activity filter (``functional.filters.denoise``); ``filter_time`` in µs."""

    filter_time: float
    sensor_size: tuple | None = None
    tonic_compatible: bool = True

    def __call__(self, events, rng=None):
        return F.denoise(events, self.filter_time, self.sensor_size, tonic_compatible=self.tonic_compatible)


@dataclass(frozen=True)
class RefractoryPeriod(EventTransform):
    """Per-pixel refractory period (``functional.filters.refractory_period``), ``delta`` in µs.

    ``delta = (lo, hi)`` draws an integer ``delta ~ rng.integers(lo, hi, endpoint=True)`` per call.
    """

    delta: float | tuple
    sensor_size: tuple | None = None
    tonic_compatible: bool = True

    def __call__(self, events, rng=None):
        delta = self.delta
        if isinstance(delta, (tuple, list)):
            lo, hi = delta
            if not all(isinstance(v, numbers.Integral) for v in (lo, hi)) or not 0 <= lo <= hi:
                raise ValueError(f"delta range must be two ints 0 <= lo <= hi (µs), got {delta!r}")
            delta = int(as_rng(rng).integers(lo, hi, endpoint=True))
        return F.refractory_period(events, delta, self.sensor_size, tonic_compatible=self.tonic_compatible)


@dataclass(frozen=True)
class Decimation(EventTransform):
    """Keep every ``n``-th event of each pixel (``functional.filters.decimate``)."""

    n: int
    sensor_size: tuple | None = None

    def __call__(self, events, rng=None):
        return F.decimate(events, self.n, self.sensor_size)


@dataclass(frozen=True)
class DropPixel(EventTransform):
    """Drop all events of given pixels, or of hot pixels; exactly one of the two must be given.

    ``coordinates``: ``(x, y)`` pairs (``functional.filters.drop_pixels``). ``hot_pixel_frequency``
    (Hz): pixels with ``count > f * (t[-1] - t[0]) * 1e-6`` (``functional.filters.drop_hot_pixels``),
    found anew in every call (tonic's ``DropPixel`` stores them on itself).
    """

    coordinates: tuple | None = None
    hot_pixel_frequency: float | None = None
    sensor_size: tuple | None = None

    def __post_init__(self):
        if (self.coordinates is None) == (self.hot_pixel_frequency is None):
            raise ValueError("DropPixel needs exactly one of coordinates=[(x, y), ...] or hot_pixel_frequency=Hz")
        if self.coordinates is not None:
            object.__setattr__(self, "coordinates", tuple((int(x), int(y)) for x, y in self.coordinates))

    def __call__(self, events, rng=None):
        if self.coordinates is not None:
            return F.drop_pixels(events, self.coordinates, self.sensor_size)
        return F.drop_hot_pixels(events, self.hot_pixel_frequency, self.sensor_size)
