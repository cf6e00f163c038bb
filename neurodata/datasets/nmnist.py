"""N-MNIST (Orchard et al. 2015): MNIST digits seen by an ATIS sensor moving in three saccades."""
from __future__ import annotations

import contextlib
import re

import numpy as np

from ..archives import Archive, open_archive
from ..events import copy_events
from ..formats import read_bytes
from ._base import EventDataset
from ._recipe import Recipe, Resource

__all__ = ["NMNIST", "RECIPE", "stabilize", "atis_archive_samples"]

_MENDELEY = "https://data.mendeley.com/public-files/datasets/468j46mzdv/files/{}/file_downloaded"

RECIPE = Recipe(
    name="nmnist",
    title="N-MNIST",
    resources=(
        Resource("train.zip", (_MENDELEY.format("39c25547-014b-4137-a934-9d29fa53c7a0"),),
                 "md5:20959b8e626244a1b502305a9e6e2031", splits=("train",), aliases=("Train.zip",)),
        Resource("test.zip", (_MENDELEY.format("05a4d654-7e03-4c15-bdfa-9bb2bcbea494"),),
                 "md5:69ca8762b2fe404d9b9bad1103e97832", splits=("test",), aliases=("Test.zip",)),
    ),
    classes=tuple(str(d) for d in range(10)),
    sensor_size=(34, 34, 2),
    splits=("train", "test"),
    licence="CC BY-SA 4.0",
    citation="G. Orchard, A. Jayawant, G. K. Cohen, N. Thakor. Converting Static Image Datasets to Spiking "
             "Neuromorphic Datasets Using Saccades. Frontiers in Neuroscience 9:437, 2015.",
    orientation="as stored (x = byte 0, y = byte 1); no flips",
    time_origin="the recording's own zero (timestamps as stored)",
    split_rule="official: train.zip (Train/<digit>/*.bin) and test.zip (Test/<digit>/*.bin)",
    sample_counts={"train": 60000, "test": 10000},
    homepage="https://www.garrickorchard.com/datasets/n-mnist",
)

_MEMBER = re.compile(r"(?:^|/)(\d)/[^/]+\.bin$")
SACCADE_US = 105_000


def stabilize(events: np.ndarray, width: int = 34, height: int = 34) -> np.ndarray:
    """Remove the saccade ego-motion as the dataset authors' ``stabilize`` does.

    With ``t`` in µs and ``S = 105 000``: for ``t <= S`` shift by ``(3.5 t/S, 7 t/S)``; for
    ``S < t <= 2S`` by ``(3.5 + 3.5 (t-S)/S, 7 - 7 (t-S)/S)``; for ``t > 2S`` by ``(7 - 7 (t-2S)/S, 0)``;
    each shift rounded with ``numpy.rint`` (half to even) and subtracted from ``x``/``y``; results
    are clamped to ``[0, width-1]`` / ``[0, height-1]`` (events are kept, as in the original).
    """
    out = copy_events(events)
    t = events["t"].astype(np.float64)
    s = float(SACCADE_US)
    dx = np.where(t <= s, 3.5 * t / s, np.where(t <= 2 * s, 3.5 + 3.5 * (t - s) / s, 7 - 7 * (t - 2 * s) / s))
    dy = np.where(t <= s, 7 * t / s, np.where(t <= 2 * s, 7 - 7 * (t - s) / s, 0.0))
    out["x"] = np.clip(events["x"].astype(np.int64) - np.rint(dx).astype(np.int64), 0, width - 1)
    out["y"] = np.clip(events["y"].astype(np.int64) - np.rint(dy).astype(np.int64), 0, height - 1)
    return out


def atis_archive_samples(archive, classes, member_label, transform=None):
    """Yield ``(events, label, meta)`` for every ``.bin`` member of an archive, in sorted member order.

    ``archive`` is a path or an open ``neurodata.archives.Archive`` (left open).

    ``member_label(name)`` returns the class name of a member or None to skip it; labels are the
    index of that name in ``classes`` (never folder order).
    """
    index = {c: i for i, c in enumerate(classes)}
    ctx = contextlib.nullcontext(archive) if isinstance(archive, Archive) else open_archive(archive)
    with ctx as ar:
        names = sorted(m.name for m in ar.files(".bin"))
        for name in names:
            cls = member_label(name)
            if cls is None:
                continue
            events = read_bytes(ar.read(name), "nmnist", name=name)
            if transform is not None:
                events = transform(events)
            yield events, index[cls], {"source": name, "t_offset": 0}


class NMNIST(EventDataset):
    """N-MNIST: 60 000 train / 10 000 test samples of 34×34×2 events, ≈ 300 ms each, labels 0–9.

    Options
    -------
    first_saccade_only : bool
        Keep only events with ``t < 100 000`` µs (the first saccade), as Tonic does.
    stabilize : bool
        Remove the saccade motion (see ``neurodata.datasets.nmnist.stabilize``).
    """

    recipe = RECIPE

    def _check_options(self, first_saccade_only: bool = False, stabilize: bool = False) -> dict:
        opts = {}
        if first_saccade_only:
            opts["first_saccade_only"] = True
        if stabilize:
            opts["stabilize"] = True
        return opts

    def _transform_sample(self, events):
        if self.options.get("first_saccade_only"):
            events = events[events["t"] < 100_000]
        if self.options.get("stabilize"):
            events = stabilize(events)
        return events

    def _samples(self, files, split):
        def label(name):
            m = _MEMBER.search(name)
            return m.group(1) if m else None

        for res in self._resources():
            yield from atis_archive_samples(files[res.filename], self.recipe.classes, label, self._transform_sample)
