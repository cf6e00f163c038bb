"""Datasets: one module per dataset, each a ``Recipe`` (data) plus the rule that turns its files
into samples; ``load`` is the one-liner and ``available()`` the registry.

    >>> import neurodata
    >>> ds = neurodata.load("nmnist", split="train")                       # events
    >>> fr = neurodata.load("dvsgesture", split="train", source="~/Downloads",
    ...                     frames=dict(frames_number=16, split_by="number"))   # (T, P, H, W)
"""
from __future__ import annotations

import importlib

__all__ = ["NMNIST", "NCaltech101", "CIFAR10DVS", "DVSGesture", "SHD", "SSC", "NTIDIGITS", "ASLDVS",
           "POKERDVS", "STMNIST", "DVSLip", "Bullying10K", "NCARS", "Gen1", "Gen4", "NavGestureWalk",
           "NavGestureSit", "HARDVS", "ESImageNet", "SaccadeDigits", "FramesDataset", "WindowedDataset",
           "detection_collate", "available", "get", "load", "REGISTRY"]

# registry name -> (module, class name)
REGISTRY = {
    "nmnist": ("nmnist", "NMNIST"),
    "ncaltech101": ("ncaltech101", "NCaltech101"),
    "cifar10dvs": ("cifar10dvs", "CIFAR10DVS"),
    "dvsgesture": ("dvsgesture", "DVSGesture"),
    "shd": ("heidelberg", "SHD"),
    "ssc": ("heidelberg", "SSC"),
    "ntidigits": ("ntidigits", "NTIDIGITS"),
    "asldvs": ("asldvs", "ASLDVS"),
    "pokerdvs": ("pokerdvs", "POKERDVS"),
    "stmnist": ("stmnist", "STMNIST"),
    "dvslip": ("dvslip", "DVSLip"),
    "bullying10k": ("bullying10k", "Bullying10K"),
    "ncars": ("ncars", "NCARS"),
    "gen1": ("automotive", "Gen1"),
    "gen4": ("automotive", "Gen4"),
    "navgesture-walk": ("navgesture", "NavGestureWalk"),
    "navgesture-sit": ("navgesture", "NavGestureSit"),
    "hardvs": ("hardvs", "HARDVS"),
    "esimagenet": ("esimagenet", "ESImageNet"),
    "saccade-digits": ("saccade_digits", "SaccadeDigits"),
}


def get(name: str):
    """The dataset class registered as ``name`` (lower case, e.g. ``"nmnist"``)."""
    key = name.lower()
    if key not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(REGISTRY)}")
    module, cls = REGISTRY[key]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def available() -> list[dict]:
    """One dict per registered dataset: name, title, download mode, size, licence, classes, splits.

    ``size_bytes`` is the exact download size (None unless every file's size is pinned); ``size`` is
    the text shown by ``neurodata list``: exact, ``"≈ ... (source: ...)"``, ``"generated"`` or ``"unknown"``.
    """
    rows = []
    for name in REGISTRY:
        r = get(name).recipe
        rows.append({"name": name, "title": r.title, "download": r.download, "size_bytes": r.download_size,
                     "size": r.size_text(),
                     "licence": r.licence, "classes": len(r.classes), "sensor_size": r.sensor_size,
                     "splits": r.splits, "samples": dict(r.sample_counts)})
    return rows


def load(name: str, split: str = "train", frames=None, windows=None, **options):
    """The one-liner: a ready dataset of ``(events, label)``, of ``(frames, label)`` with ``frames=``,
    or of time windows with ``windows=``.

    ``frames`` is a dict of ``neurodata.transforms.ToFrame`` parameters (e.g.
    ``dict(frames_number=16, split_by="number")``); frames come from a cache keyed by every
    parameter. ``windows`` is a dict of :class:`~neurodata.datasets.windows.WindowedDataset`
    parameters (``window_us``, ``stride_us``, ``around_labels``, ``drop_incomplete``), e.g.
    ``load("gen1", windows=dict(window_us=50_000, around_labels=True))`` for Gen1's detection
    samples (events before each box time, with those boxes). Other keyword arguments go to the
    dataset class (``root``, ``download``, ``mirror``, ``source``, ``verify``, ``transform``,
    dataset options); ``transform`` / ``target_transform`` then apply to the frames or windows.

    Items: ``events`` an ``EVENT_DTYPE`` array ``(N,)`` (t in µs from the sample's origin), or
    ``frames`` a ``torch.Tensor`` ``(T, P, H, W)``; ``label`` an int.
    """
    if frames is not None and windows is not None:
        raise ValueError("pass frames= or windows=, not both")
    cls = get(name)
    if frames is None and windows is None:
        return cls(split=split, **options)
    transform = options.pop("transform", None)
    target_transform = options.pop("target_transform", None)
    base = cls(split=split, **options)
    if windows is not None:
        from .windows import WindowedDataset

        return WindowedDataset(base, **dict(windows), transform=transform, target_transform=target_transform)
    from .frames import FramesDataset

    return FramesDataset(base, dict(frames), transform=transform, target_transform=target_transform)


def __getattr__(name):
    for key, (module, cls) in REGISTRY.items():
        if cls == name:
            return get(key)
    if name == "FramesDataset":
        from .frames import FramesDataset

        return FramesDataset
    if name == "WindowedDataset":
        from .windows import WindowedDataset

        return WindowedDataset
    if name == "detection_collate":
        from .detection import detection_collate

        return detection_collate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
