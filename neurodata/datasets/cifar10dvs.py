"""CIFAR10-DVS (Li et al. 2017): CIFAR-10 images moving on a monitor, recorded by a DVS128."""
from __future__ import annotations

import math
import posixpath
import re

import numpy as np

from ..archives import open_archive
from ..events import copy_events
from ..formats import read_bytes
from ._base import EventDataset
from ._recipe import Recipe, Resource

__all__ = ["CIFAR10DVS", "RECIPE", "orient"]

_FIGSHARE = "https://ndownloader.figshare.com/files/{}"
_FILES = (
    ("airplane", 7712788, "0afd5c4bf9ae06af762a77b180354fdd"),
    ("automobile", 7712791, "8438dfeba3bc970c94962d995b1b9bdd"),
    ("bird", 7712794, "a9c207c91c55b9dc2002dc21c684d785"),
    ("cat", 7712812, "52c63c677c2b15fa5146a8daf4d56687"),
    ("deer", 7712815, "b6bf21f6c04d21ba4e23fc3e36c8a4a3"),
    ("dog", 7712818, "f379ebdf6703d16e0a690782e62639c3"),
    ("frog", 7712842, "cad6ed91214b1c7388a5f6ee56d08803"),
    ("horse", 7712851, "e7cbbf77bec584ffbf913f00e682782a"),
    ("ship", 7712836, "41c7bd7d6b251be82557c6cce9a7d5c9"),
    ("truck", 7712839, "89f3922fd147d9aeff89e76a2b0b70a7"),
)
SPLIT_SCHEMES = ("9:1", "spikingjelly", "tebn")

RECIPE = Recipe(
    cache_version=2,  # 2: split "all" is train then test (it was member order)
    name="cifar10dvs",
    title="CIFAR10-DVS",
    resources=tuple(Resource(f"{cls}.zip", (_FIGSHARE.format(fid),), f"md5:{md5}") for cls, fid, md5 in _FILES),
    classes=tuple(cls for cls, _, _ in _FILES),
    sensor_size=(128, 128, 2),
    splits=("train", "test"),
    licence="CC BY 4.0",
    citation="H. Li, H. Liu, X. Ji, G. Li, L. Shi. CIFAR10-DVS: An Event-Stream Dataset for Object "
             "Classification. Frontiers in Neuroscience 11:309, 2017.",
    orientation="SpikingJelly's (used by most published results): x = 127 − y_raw, y = 127 − x_raw, "
                "p = 1 for ON (raw bit 0 == 0)",
    time_origin="the sample's first event (absolute recording clock; the offset is in metadata t_offset)",
    split_rule="no official split. split_scheme='9:1' (default): per class, file index i < 900 is train, "
               "the rest test; split_scheme='spikingjelly': SpikingJelly's split_to_train_test_set(0.9) on "
               "its CIFAR10DVS folder, per class the first ceil(0.9 n) files in file-name text order "
               "(cifar10_<class>_1 < _10 < _100 < ... : files 91-99 are test and 900-908 train, unlike "
               "'9:1'), in that order; split_scheme='tebn': index i < 100 is test, the rest train",
    sample_counts={"train (9:1)": 9000, "test (9:1)": 1000, "train (spikingjelly)": 9000,
                   "test (spikingjelly)": 1000, "train (tebn)": 9000, "test (tebn)": 1000},
    homepage="https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671",
)

_MEMBER = re.compile(r"(?:^|/)cifar10_(\w+?)_(\d+)\.aedat$")


def orient(raw: np.ndarray) -> np.ndarray:
    """Apply CIFAR10-DVS's orientation to events decoded as stored (see ``RECIPE.orientation``)."""
    out = copy_events(raw)
    out["x"] = 127 - raw["y"]
    out["y"] = 127 - raw["x"]
    return out


class CIFAR10DVS(EventDataset):
    """CIFAR10-DVS: 10 000 samples (1 000 per class), 128×128×2, ≈ 1.3 s each.

    Option ``split_scheme``: ``"9:1"`` (default), ``"spikingjelly"`` or ``"tebn"`` (see
    ``RECIPE.split_rule``).
    """

    recipe = RECIPE
    all_by_splits = True  # "all" = train then test, not member order

    def _check_options(self, split_scheme: str = "9:1") -> dict:
        if split_scheme not in SPLIT_SCHEMES:
            raise ValueError(f"split_scheme must be one of {SPLIT_SCHEMES}, got {split_scheme!r}")
        return {"split_scheme": split_scheme}

    def _chosen(self, members: list, split: str) -> list:
        """The ``(file index, member name)`` pairs of one class that ``split`` holds, in its order."""
        scheme = self.options["split_scheme"]
        if scheme == "spikingjelly":  # its DatasetFolder lists names sorted as text, then takes ceil(0.9 n)
            ordered = sorted(members, key=lambda m: posixpath.basename(m[1]))
            cut = math.ceil(len(ordered) * 0.9)
            return ordered[:cut] if split == "train" else ordered[cut:]
        train = (lambda i: i < 900) if scheme == "9:1" else (lambda i: i >= 100)
        return [m for m in sorted(members) if train(m[0]) == (split == "train")]

    def _samples(self, files, split):
        for label, res in enumerate(self.recipe.resources):
            cls = self.recipe.classes[label]
            with open_archive(files[res.filename]) as ar:
                members = []
                for m in ar.files(".aedat"):
                    match = _MEMBER.search(m.name)
                    if match and match.group(1) == cls:
                        members.append((int(match.group(2)), m.name))
                for index, name in self._chosen(members, split):
                    raw = read_bytes(ar.read(name), "aedat2", name=name, chip="dvs128")
                    events = orient(raw)
                    t0 = int(events["t"][0]) if events.size else 0
                    events["t"] -= t0
                    yield events, label, {"source": name, "t_offset": t0}
