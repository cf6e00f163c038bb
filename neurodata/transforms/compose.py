"""``Compose``, the transform base, and the slicers (``SliceByTime``, ``SliceByCount``, ``SliceByIndices``).

Calling convention shared by every transform here: ``transform(events, rng=None)`` returns a new
``EVENT_DTYPE`` array (slicers: a list of views). ``rng`` is a ``numpy.random.Generator``, an int
seed, or ``None`` for fresh OS entropy; deterministic transforms accept and ignore it. Transforms
are frozen dataclasses and keep no state between calls. Geometry: every transform has
``output_sensor_size(sensor_size) -> (W, H, P)``, the sensor size its output lives on given the
input's (identity unless the transform crops, downsamples or merges polarities).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np

from ..events import as_events, check_sensor_size
from ..functional.augment import as_rng
from ..functional import slicing as S

__all__ = ["Compose", "SliceByTime", "SliceByCount", "SliceByIndices"]


class EventTransform:
    """Base of the event-to-event transforms: identity ``output_sensor_size``."""

    def output_sensor_size(self, sensor_size) -> tuple[int, int, int]:
        """The sensor size ``(W, H, P)`` of this transform's output for input on ``sensor_size``."""
        return check_sensor_size(sensor_size)


def _accepts_rng(fn) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "rng" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


@dataclass(frozen=True)
class Compose(EventTransform):
    """Apply ``transforms`` in order: ``Compose([a, b])(events, rng) == b(a(events, rng=g), rng=g)``.

    One ``Generator g = as_rng(rng)`` is shared by all steps, so a seed makes the whole pipeline
    reproducible. Steps whose ``__call__`` has no ``rng`` parameter (e.g. a representation or a
    tonic transform) are called as ``step(events)``. Unlike tonic, empty input is passed on (every
    transform here is total on empty input). ``output_sensor_size`` chains the steps' own
    (steps without one count as identity).
    """

    transforms: tuple

    def __post_init__(self):
        steps = tuple(self.transforms)
        for i, t in enumerate(steps):
            if not callable(t):
                raise TypeError(f"transforms[{i}] = {t!r} is not callable")
        object.__setattr__(self, "transforms", steps)

    def __call__(self, events, rng=None):
        g = as_rng(rng)
        for t in self.transforms:
            events = t(events, rng=g) if _accepts_rng(t) else t(events)
        return events

    def output_sensor_size(self, sensor_size) -> tuple[int, int, int]:
        size = check_sensor_size(sensor_size)
        for t in self.transforms:
            f = getattr(t, "output_sensor_size", None)
            if f is not None:
                size = f(size)
        return size


@dataclass(frozen=True)
class SliceByTime:
    """Time windows of ``time_window`` µs (``slicing.time_slice_indices``); returns a list of views."""

    time_window: int
    overlap: int = 0
    include_incomplete: bool = False
    start_time: int | None = None
    end_time: int | None = None

    def indices(self, events) -> np.ndarray:
        """``(K, 2)`` int64 ``[start, stop)`` row ranges."""
        return S.time_slice_indices(events, self.time_window, overlap=self.overlap,
                                    include_incomplete=self.include_incomplete,
                                    start_time=self.start_time, end_time=self.end_time)

    def __call__(self, events, rng=None) -> list[np.ndarray]:
        return S.slice_by_time(events, self.time_window, overlap=self.overlap,
                               include_incomplete=self.include_incomplete,
                               start_time=self.start_time, end_time=self.end_time)


@dataclass(frozen=True)
class SliceByCount:
    """Slices of ``event_count`` events (``slicing.count_slice_indices``); returns a list of views."""

    event_count: int
    overlap: int = 0
    include_incomplete: bool = False

    def indices(self, events) -> np.ndarray:
        """``(K, 2)`` int64 ``[start, stop)`` row ranges."""
        return S.count_slice_indices(as_events(events).shape[0], self.event_count, overlap=self.overlap,
                                     include_incomplete=self.include_incomplete)

    def __call__(self, events, rng=None) -> list[np.ndarray]:
        return S.slice_by_count(events, self.event_count, overlap=self.overlap,
                                include_incomplete=self.include_incomplete)


@dataclass(frozen=True)
class SliceByIndices:
    """Slices ``events[start:end]`` for given row ranges (``0 <= start <= end <= N``)."""

    start_indices: tuple
    end_indices: tuple

    def __post_init__(self):
        object.__setattr__(self, "start_indices", tuple(int(i) for i in self.start_indices))
        object.__setattr__(self, "end_indices", tuple(int(i) for i in self.end_indices))

    def indices(self, events) -> np.ndarray:
        """``(K, 2)`` int64 ``[start, stop)`` row ranges (validated against ``len(events)``)."""
        S.slice_by_indices(events, self.start_indices, self.end_indices)
        return np.array([self.start_indices, self.end_indices], dtype=np.int64).T.reshape(-1, 2)

    def __call__(self, events, rng=None) -> list[np.ndarray]:
        return S.slice_by_indices(events, self.start_indices, self.end_indices)
