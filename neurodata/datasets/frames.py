"""Frames served from a cache: ``(T, P, H, W)`` tensors made once by ``ToFrame`` from an events dataset."""
from __future__ import annotations

import numpy as np
import torch

from ..cache import FramesStore, frames_key
from ..functional.frames import check_frame_dtype

__all__ = ["FramesDataset", "FRAMES_SEMANTICS"]

FRAMES_SEMANTICS = "toframe-1"
"""Version of ``ToFrame``'s semantics; part of every frames cache key (bump it when they change)."""


class FramesDataset(torch.utils.data.Dataset):
    """``ds[i] -> (frames, label)``: ``frames`` a ``torch.Tensor`` ``(T, P, H, W)`` read from a frames
    cache keyed by every ``ToFrame`` parameter, ``FRAMES_SEMANTICS`` and the events cache's key, so a
    changed parameter or a rebuilt events cache can never serve stale frames.

    Parameters
    ----------
    events_dataset : neurodata.datasets.EventDataset
        Without a ``transform`` (``ValueError`` otherwise: frames come from its cache, untransformed).
    params : dict
        Keyword arguments of ``neurodata.transforms.ToFrame`` (its ``sensor_size`` is the dataset's).
    transform, target_transform : callables applied to the frames tensor / the label.
    """

    def __init__(self, events_dataset, params: dict, transform=None, target_transform=None):
        from ..transforms import ToFrame

        if getattr(events_dataset, "transform", None) is not None:
            raise ValueError("FramesDataset makes frames from the events cache, so the events dataset's transform "
                             f"({events_dataset.transform!r}) would be silently left out: build the events dataset "
                             "without one, and pass frame transforms as FramesDataset(transform=...)")
        self.events = events_dataset
        self.params = dict(params)
        if "sensor_size" in self.params:  # tonic habit: accepted when it is the dataset's own
            given = self.params.pop("sensor_size")
            given = tuple(given) if isinstance(given, (tuple, list)) else given
            if given != tuple(events_dataset.sensor_size):
                raise ValueError(f"frames parameters: sensor_size {given!r} differs from the dataset's "
                                 f"{tuple(events_dataset.sensor_size)}, which ToFrame uses; leave it out")
        self.to_frame = ToFrame(events_dataset.sensor_size, **self.params)
        self.transform = transform
        self.target_transform = target_transform
        # the key (and the file's params) hold what decides the frames: one spelling per dtype
        # (np.uint8, "u1", "uint8" -> "uint8"), and not the thread count the build runs with
        content = {k: v for k, v in self.params.items() if k != "num_threads"}
        if "dtype" in content:
            content["dtype"] = check_frame_dtype(content["dtype"]).name
        key = frames_key(content, FRAMES_SEMANTICS, events_dataset.cache_key)
        path = events_dataset.root / f"frames-{events_dataset.variant}-{key[:12]}.h5"
        W, H, P = events_dataset.sensor_size
        dtype = check_frame_dtype(self.to_frame.dtype)  # to_frame's output dtype (no kernel run: no numba load)
        # one HDF5 chunk per sample when every sample has the same T: a read inflates only its own frames
        fixed_t = next((int(self.params[k]) for k in ("frames_number", "n_time_bins", "n_event_bins")
                        if self.params.get(k) is not None), None)
        chunking = {} if fixed_t is None else {"chunk_bytes": fixed_t * P * H * W * np.dtype(dtype).itemsize}
        self.store = FramesStore.open_or_build(
            path, key, self._samples, frame_shape=(P, H, W), dtype=dtype, params=content,
            semantics_version=FRAMES_SEMANTICS, class_names=events_dataset.classes, **chunking)

    def _samples(self):
        for events, label in self.events.store.iter_samples():
            yield self.to_frame(events), label, {}

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i):
        frames, label = self.store[i]
        frames = torch.from_numpy(np.ascontiguousarray(frames))
        if self.transform is not None:
            frames = self.transform(frames)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return frames, label

    @property
    def classes(self):
        return self.events.classes

    @property
    def sensor_size(self):
        return self.events.sensor_size

    @property
    def targets(self):
        return self.events.targets

    def __repr__(self) -> str:
        return f"FramesDataset({self.events!r}, params={self.params})"
