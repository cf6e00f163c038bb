"""The peers' own dataset pipelines, called as their libraries call them, for ``bench_datasets.py``.

SpikingJelly 2.0 (``spikingjelly.datasets``, imported with stand-ins for the broken torchvision):
- events: ``DVS128Gesture.extract_downloaded_files`` is torchvision's ``extract_archive`` (here
  ``tarfile.extractall``, the same work), then ``DVS128Gesture.create_raw_from_extracted``
  (``load_aedat_v3`` per recording, per-label-window slicing, ``np.savez_compressed`` per sample,
  in its own thread pool);
- frames: ``FrameFixedNumberBuilder(...).build()`` (``integrate_events_file_to_frames_file_by_fixed_frames_number``
  per ``events_np`` file in its thread pool, float64 frames written with ``np.savez_compressed``);
- loading: what its ``DatasetFolder`` does per item: ``load_npz_frames(path)`` (float32 frames).
Tonic 1.7: ``DiskCachedDataset`` (one lzf-compressed HDF5 file per sample) over a dataset whose
transform is ``tonic.transforms.ToFrame``.
"""
from __future__ import annotations

import tarfile
import time
from pathlib import Path

import torch

from _benchutil import spikingjelly_datasets_utils


def spikingjelly_datasets():
    """``spikingjelly.datasets`` (every submodule imported), or None when it cannot be imported."""
    if spikingjelly_datasets_utils() is None:
        return None
    import spikingjelly.datasets as sjd

    return sjd


def sj_gesture_events(archive: Path, workdir: Path) -> tuple[Path, float, float]:
    """Extract ``archive`` (DvsGesture.tar.gz) and run SpikingJelly's per-recording split.

    Returns ``(events_np folder, seconds extracting, seconds splitting)``.
    """
    sjd = spikingjelly_datasets()
    extract = workdir / "extract"
    raw = workdir / "events_np"
    extract.mkdir(parents=True)
    raw.mkdir()
    t0 = time.perf_counter()
    with tarfile.open(archive) as tf:
        tf.extractall(extract, filter="data")
    t1 = time.perf_counter()
    sjd.DVS128Gesture.create_raw_from_extracted(extract, raw)
    return raw, t1 - t0, time.perf_counter() - t1


def sj_frames(events_np: Path, root: Path, frames_number: int, split_by: str, H: int, W: int) -> tuple[Path, float]:
    """SpikingJelly's fixed-frames-number integration of a whole ``events_np`` tree; returns
    ``(frames folder, seconds)``."""
    sjd = spikingjelly_datasets()
    Path(root).mkdir(parents=True, exist_ok=True)
    cfg = sjd.base.NeuromorphicDatasetConfig(root=Path(root), train=None, data_type="frame",
                                             frames_number=frames_number, split_by=split_by)
    builder = sjd.base.FrameFixedNumberBuilder(cfg, Path(events_np), H, W)
    t0 = time.perf_counter()
    folder, _ = builder.build()
    return folder, time.perf_counter() - t0


class SJFramesFolder(torch.utils.data.Dataset):
    """What SpikingJelly's ``DatasetFolder`` does per item: ``(load_npz_frames(path), label)``."""

    def __init__(self, folder: Path):
        self.loader = spikingjelly_datasets().utils.load_npz_frames
        self.samples = sorted((str(p), int(p.parent.name)) for p in Path(folder).rglob("*.npz"))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        return self.loader(path), label


class EventsList(torch.utils.data.Dataset):
    """``[(events, label)]`` with an optional transform (what tonic's DiskCachedDataset wraps)."""

    def __init__(self, samples, transform=None):
        self.samples, self.transform = samples, transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        ev, label = self.samples[i]
        return (self.transform(ev) if self.transform else ev), label


def tonic_frames_cache(samples, sensor_size, n_bins: int, cache_path: Path):
    """tonic's ``DiskCachedDataset`` over ``ToFrame(n_event_bins=n_bins)`` frames, filled once;
    returns ``(dataset, seconds filling)`` or ``(None, reason)`` when tonic is missing."""
    try:
        import tonic
    except ImportError as e:
        return None, str(e)
    ds = tonic.DiskCachedDataset(EventsList(samples, tonic.transforms.ToFrame(sensor_size=sensor_size,
                                                                              n_event_bins=n_bins)),
                                 cache_path=str(cache_path))
    t0 = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    return ds, time.perf_counter() - t0
