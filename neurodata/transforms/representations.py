"""Representation transforms: frozen dataclasses over ``neurodata.functional`` (see
``docs/transforms.md``, "Representations"). Parameters are validated when the transform is built.
Importing this module does not import torch (``ToSparseTensor`` does so when built)."""
from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any

import numpy as np

from ..events import check_sensor_size
from ..functional.frames import _check_oob_policy, _resolve_threads, check_frame_dtype, frame_mode, to_frame
from ..functional.images import check_binary_params, to_binary_representation, to_event_count_image
from ..functional.surfaces import (check_hats_params, check_time_surface_params, to_averaged_time_surface,
                                   to_time_surface)
from ..functional.voxel import check_voxel_params, to_voxel_grid

__all__ = [
    "ToFrame",
    "ToVoxelGrid",
    "ToTimeSurface",
    "ToAveragedTimeSurface",
    "ToEventCountImage",
    "ToBinaryRepresentation",
    "ToSparseTensor",
]

_MODE_FIELDS = ("time_window", "event_count", "n_time_bins", "n_event_bins", "frames_number",
                "split_by", "duration", "overlap", "include_incomplete", "start_time", "end_time")


def _sensor(obj):
    object.__setattr__(obj, "sensor_size", check_sensor_size(obj.sensor_size))


@dataclass(frozen=True)
class _FrameModes:
    """The frame-mode parameters ``ToFrame`` and ``ToSparseTensor`` share (validated when built)."""

    sensor_size: tuple
    _: KW_ONLY
    time_window: Any = None
    event_count: Any = None
    n_time_bins: Any = None
    n_event_bins: Any = None
    frames_number: Any = None
    split_by: Any = None
    duration: Any = None
    overlap: Any = 0
    include_incomplete: bool = False
    start_time: Any = None
    end_time: Any = None

    def __post_init__(self):
        _sensor(self)
        frame_mode(**self._modes())

    def _modes(self) -> dict:
        return {k: getattr(self, k) for k in _MODE_FIELDS}


@dataclass(frozen=True)
class ToFrame(_FrameModes):
    """Events -> frames ``(T, P, H, W)``; see :func:`neurodata.functional.frames.to_frame`.

    Exactly one of ``n_time_bins``, ``n_event_bins`` (ours, exact), ``time_window``,
    ``event_count`` (tonic 1.7), ``frames_number`` + ``split_by``, ``duration`` (SpikingJelly 2.0).

    >>> import numpy as np
    >>> from neurodata.events import make_events
    >>> ev = make_events([0, 5, 10], [0, 1, 1], [0, 0, 0], [1, 1, 0])
    >>> ToFrame((2, 1, 2), n_time_bins=2, dtype=np.uint8)(ev)[:, :, 0, :].tolist()
    [[[0, 0], [1, 0]], [[0, 1], [0, 1]]]
    """

    _: KW_ONLY
    dtype: Any = np.float32
    on_out_of_bounds: str = "raise"
    num_threads: Any = 1

    def __post_init__(self):
        super().__post_init__()
        check_frame_dtype(self.dtype)
        _check_oob_policy(self.on_out_of_bounds)
        _resolve_threads(self.num_threads, 0)

    def __call__(self, events):
        return to_frame(events, self.sensor_size, **self._modes(),
                        dtype=self.dtype, on_out_of_bounds=self.on_out_of_bounds,
                        num_threads=self.num_threads)


@dataclass(frozen=True)
class ToVoxelGrid:
    """Events -> voxel grid ``(n_time_bins, 1, H, W)`` (Zhu et al. 2019); see ``to_voxel_grid``."""

    sensor_size: tuple
    n_time_bins: int
    dtype: Any = np.float32
    on_out_of_bounds: str = "raise"

    def __post_init__(self):
        _sensor(self)
        check_voxel_params(self.n_time_bins, self.dtype, self.on_out_of_bounds)

    def __call__(self, events):
        return to_voxel_grid(events, self.sensor_size, self.n_time_bins, dtype=self.dtype,
                             on_out_of_bounds=self.on_out_of_bounds)


@dataclass(frozen=True)
class ToTimeSurface:
    """Events -> time surfaces ``(n_windows, P, H, W)`` every ``dt`` µs with decay ``tau`` µs."""

    sensor_size: tuple
    dt: float
    tau: float
    include_incomplete: bool = False
    dtype: Any = np.float32
    on_out_of_bounds: str = "raise"
    num_threads: Any = 1

    def __post_init__(self):
        _sensor(self)
        check_time_surface_params(self.dt, self.tau, self.dtype, self.on_out_of_bounds, self.num_threads)

    def __call__(self, events):
        return to_time_surface(events, self.sensor_size, self.dt, self.tau,
                               include_incomplete=self.include_incomplete, dtype=self.dtype,
                               on_out_of_bounds=self.on_out_of_bounds, num_threads=self.num_threads)


@dataclass(frozen=True)
class ToAveragedTimeSurface:
    """Events -> HATS histograms ``(n_cells, P, surface_size, surface_size)`` (Sironi et al. 2018)."""

    sensor_size: tuple
    cell_size: int = 10
    surface_size: int = 5
    time_window: float = 1000
    tau: float = 100
    decay: str = "exp"
    dtype: Any = np.float32
    on_out_of_bounds: str = "raise"

    def __post_init__(self):
        _sensor(self)
        check_hats_params(self.cell_size, self.surface_size, self.time_window, self.tau, self.decay, self.dtype,
                          self.on_out_of_bounds)

    def __call__(self, events):
        return to_averaged_time_surface(
            events, self.sensor_size, cell_size=self.cell_size, surface_size=self.surface_size,
            time_window=self.time_window, tau=self.tau, decay=self.decay, dtype=self.dtype,
            on_out_of_bounds=self.on_out_of_bounds)


@dataclass(frozen=True)
class ToEventCountImage:
    """Events -> per-pixel event counts ``(P, H, W)``."""

    sensor_size: tuple
    dtype: Any = np.float32
    on_out_of_bounds: str = "raise"

    def __post_init__(self):
        _sensor(self)
        check_frame_dtype(self.dtype)
        _check_oob_policy(self.on_out_of_bounds)

    def __call__(self, events):
        return to_event_count_image(events, self.sensor_size, dtype=self.dtype,
                                    on_out_of_bounds=self.on_out_of_bounds)


@dataclass(frozen=True)
class ToBinaryRepresentation:
    """Events -> Bina-Rep frames ``(n_frames, P, H, W)`` of ``n_bits``-bit values (Barchid et al. 2022)."""

    sensor_size: tuple
    n_frames: int
    n_bits: int = 8
    normalize: bool = True
    on_out_of_bounds: str = "raise"

    def __post_init__(self):
        _sensor(self)
        check_binary_params(self.n_frames, self.n_bits, self.on_out_of_bounds)

    def __call__(self, events):
        return to_binary_representation(events, self.sensor_size, self.n_frames, self.n_bits,
                                        normalize=self.normalize,
                                        on_out_of_bounds=self.on_out_of_bounds)


@dataclass(frozen=True)
class ToSparseTensor(_FrameModes):
    """Events -> coalesced torch sparse COO frames ``(T, P, H, W)``; ``ToFrame``'s mode keywords."""

    _: KW_ONLY
    dtype: Any = "float32"
    on_out_of_bounds: str = "raise"

    def __post_init__(self):
        from ..functional.sparse import check_sparse_dtype

        super().__post_init__()
        check_sparse_dtype(self.dtype)
        _check_oob_policy(self.on_out_of_bounds)

    def __call__(self, events):
        from ..functional.sparse import to_sparse  # torch is imported only when used

        return to_sparse(events, self.sensor_size, dtype=self.dtype,
                         on_out_of_bounds=self.on_out_of_bounds, **self._modes())
