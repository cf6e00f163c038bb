"""neurodata: exact, fast event-camera data for PyTorch.

Public surface: ``read``, ``write``, ``inspect``, ``iter_events``, ``load``, ``EVENT_DTYPE`` and
the errors; submodules ``transforms``, ``functional``, ``datasets``.
"""
from __future__ import annotations

from .errors import CacheError, ChecksumError, DownloadError, FormatError
from .events import EVENT_DTYPE
from .formats import inspect, iter_events, read, write

__version__ = "0.1.0"

__all__ = [
    "EVENT_DTYPE",
    "read",
    "write",
    "inspect",
    "iter_events",
    "load",
    "FormatError",
    "DownloadError",
    "ChecksumError",
    "CacheError",
]


def load(name: str, split: str = "train", frames=None, **options):
    """Return a ready PyTorch dataset for the registry dataset ``name`` (see ``neurodata.datasets``)."""
    from .datasets import load as _load

    return _load(name, split=split, frames=frames, **options)


def __getattr__(name):  # lazy submodules keep ``import neurodata`` fast
    if name in ("transforms", "functional", "datasets", "emulate", "collate"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'neurodata' has no attribute {name!r}")
