"""Random augmentations and geometry edits as frozen transforms over ``neurodata.functional.augment``.

Calling convention: ``t(events, rng=None)`` (see ``neurodata.transforms.compose``). Transforms that
change the geometry (``CenterCrop``, ``RandomCrop``, ``Downsample``, ``MergePolarities``) report it
through ``output_sensor_size(sensor_size)``; the rest keep it. ``Random*`` transforms apply their
edit with probability ``p`` (``rng.random() < p``: ``p = 0`` never, ``p = 1`` always).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..events import check_sensor_size
from ..functional import augment as A
from ..functional._eventarray import checked_events, copy_events
from .compose import EventTransform

__all__ = [
    "DropEvent", "DropEventByTime", "DropEventByArea", "EventDrop", "SpatialJitter", "TimeJitter",
    "TimeSkew", "RandomTimeReversal", "UniformNoise", "RandomFlipLR", "RandomFlipUD",
    "RandomFlipPolarity", "CenterCrop", "RandomCrop", "Downsample", "MergePolarities", "TimeAlignment",
]


def _unchanged(events, sensor_size=None, *, ordered=False):
    """The branch not taken: a validated copy, so errors never depend on the coin flip."""
    return copy_events(checked_events(events, sensor_size, ordered=ordered))


def _chance(p, rng) -> bool:
    """One ``rng.random() < p`` draw (validates ``p`` in [0, 1])."""
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p!r}")
    return bool(rng.random() < p)


@dataclass(frozen=True)
class DropEvent(EventTransform):
    """Drop ``floor(p N + 0.5)`` random events; ``p`` or ``(p_min, p_max)`` (``functional.augment.drop_event``)."""

    p: float | tuple

    def __call__(self, events, rng=None):
        return A.drop_event(events, self.p, rng=rng)


@dataclass(frozen=True)
class DropEventByTime(EventTransform):
    """Drop one random time interval (``functional.augment.drop_event_by_time``)."""

    duration_ratio: float | tuple = 0.2

    def __call__(self, events, rng=None):
        return A.drop_event_by_time(events, self.duration_ratio, rng=rng)


@dataclass(frozen=True)
class DropEventByArea(EventTransform):
    """Drop one random box of pixels (``functional.augment.drop_event_by_area``)."""

    sensor_size: tuple
    area_ratio: float | tuple = 0.2

    def __call__(self, events, rng=None):
        return A.drop_event_by_area(events, self.sensor_size, self.area_ratio, rng=rng)


@dataclass(frozen=True)
class EventDrop(EventTransform):
    """EventDrop (Gu et al. 2021; ``functional.augment.event_drop``)."""

    sensor_size: tuple

    def __call__(self, events, rng=None):
        return A.event_drop(events, self.sensor_size, rng=rng)


@dataclass(frozen=True)
class SpatialJitter(EventTransform):
    """Gaussian x/y jitter, rounded; outside events dropped or clipped (``functional.augment.spatial_jitter``)."""

    sensor_size: tuple
    var_x: float = 1.0
    var_y: float = 1.0
    sigma_xy: float = 0.0
    policy: str = "drop"

    def __call__(self, events, rng=None):
        return A.spatial_jitter(events, self.sensor_size, self.var_x, self.var_y, self.sigma_xy,
                                policy=self.policy, rng=rng)


@dataclass(frozen=True)
class TimeJitter(EventTransform):
    """Gaussian time jitter (µs), rounded, re-sorted (``functional.augment.time_jitter``)."""

    std: float = 1.0
    drop_negative: bool = False

    def __call__(self, events, rng=None):
        return A.time_jitter(events, self.std, drop_negative=self.drop_negative, rng=rng)


@dataclass(frozen=True)
class TimeSkew(EventTransform):
    """``t' = rint(c t + offset)`` (``functional.augment.time_skew``); ranges are drawn per call."""

    coefficient: float | tuple
    offset: float | tuple = 0.0

    def __call__(self, events, rng=None):
        return A.time_skew(events, self.coefficient, self.offset, rng=rng)


@dataclass(frozen=True)
class RandomTimeReversal(EventTransform):
    """With probability ``p``: ``functional.augment.time_reversal``."""

    p: float = 0.5
    flip_polarities: bool = True

    def __call__(self, events, rng=None):
        if _chance(self.p, A.as_rng(rng)):
            return A.time_reversal(events, flip_polarities=self.flip_polarities)
        return _unchanged(events, ordered=True)


@dataclass(frozen=True)
class UniformNoise(EventTransform):
    """Add ``n`` (or ``n ~ [lo, hi]``) uniform noise events (``functional.augment.uniform_noise``)."""

    sensor_size: tuple
    n: int | tuple

    def __call__(self, events, rng=None):
        return A.uniform_noise(events, self.sensor_size, self.n, rng=rng)


@dataclass(frozen=True)
class RandomFlipLR(EventTransform):
    """With probability ``p``: ``x' = W - 1 - x``."""

    sensor_size: tuple
    p: float = 0.5

    def __call__(self, events, rng=None):
        if _chance(self.p, A.as_rng(rng)):
            return A.flip_lr(events, self.sensor_size)
        return _unchanged(events, self.sensor_size)


@dataclass(frozen=True)
class RandomFlipUD(EventTransform):
    """With probability ``p``: ``y' = H - 1 - y``."""

    sensor_size: tuple
    p: float = 0.5

    def __call__(self, events, rng=None):
        if _chance(self.p, A.as_rng(rng)):
            return A.flip_ud(events, self.sensor_size)
        return _unchanged(events, self.sensor_size)


@dataclass(frozen=True)
class RandomFlipPolarity(EventTransform):
    """Flip polarity: the whole sample with probability ``p`` (tonic), or each event independently
    with probability ``p`` when ``per_event=True`` (``functional.augment.flip_polarity``)."""

    p: float = 0.5
    per_event: bool = False

    def __call__(self, events, rng=None):
        return A.flip_polarity(events, self.p, per_event=self.per_event, rng=rng)


@dataclass(frozen=True)
class CenterCrop(EventTransform):
    """Centred ``size`` crop (``functional.augment.center_crop``); output sensor ``(w, h, P)``."""

    sensor_size: tuple
    size: int | tuple

    def __call__(self, events, rng=None):
        return A.center_crop(events, self.sensor_size, self.size)

    def output_sensor_size(self, sensor_size):
        return A.cropped_sensor_size(sensor_size, self.size)


@dataclass(frozen=True)
class RandomCrop(EventTransform):
    """Random ``target_size`` crop (``functional.augment.random_crop``); output sensor ``(w, h, P)``."""

    sensor_size: tuple
    target_size: int | tuple

    def __call__(self, events, rng=None):
        return A.random_crop(events, self.sensor_size, self.target_size, rng=rng)

    def output_sensor_size(self, sensor_size):
        return A.cropped_sensor_size(sensor_size, self.target_size)


@dataclass(frozen=True)
class Downsample(EventTransform):
    """Exact rational downsampling of x, y and t (``functional.augment.downsample``).

    ``output_sensor_size`` = ``functional.augment.downsampled_sensor_size`` of the transform's own
    ``sensor_size`` when it has one (the one its calls use). ``target_size`` needs ``sensor_size``
    (``ValueError`` when built without it: every call would raise).
    """

    sensor_size: tuple | None = None
    spatial_factor: float | tuple | None = None
    target_size: tuple | None = None
    time_factor: float = 1
    deduplicate: bool = False

    def __post_init__(self):
        if self.target_size is not None and self.sensor_size is None:
            raise ValueError("Downsample: target_size needs sensor_size (the factors are target / sensor)")

    def __call__(self, events, rng=None):
        return A.downsample(events, self.sensor_size, spatial_factor=self.spatial_factor,
                            target_size=self.target_size, time_factor=self.time_factor,
                            deduplicate=self.deduplicate)

    def output_sensor_size(self, sensor_size):
        own = self.sensor_size if self.sensor_size is not None else sensor_size
        return A.downsampled_sensor_size(own, spatial_factor=self.spatial_factor, target_size=self.target_size)


@dataclass(frozen=True)
class MergePolarities(EventTransform):
    """All ``p = 0``; output sensor ``(W, H, 1)``."""

    def __call__(self, events, rng=None):
        return A.merge_polarities(events)

    def output_sensor_size(self, sensor_size):
        W, H, _ = check_sensor_size(sensor_size)
        return (W, H, 1)


@dataclass(frozen=True)
class TimeAlignment(EventTransform):
    """``t' = t - min(t)``."""

    def __call__(self, events, rng=None):
        return A.time_align(events)
