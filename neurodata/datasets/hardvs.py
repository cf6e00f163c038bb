"""HARDVS (Wang et al. 2024): 300 human activities recorded with a DAVIS346; the MINI-HARDVS release.

``MINI_HARDVS_files.zip`` holds ``MINI_HARDVS_files/action_XXX.zip`` (XXX = 001 … 300), each with
one ``<sample>.npz`` (keys ``t``, ``x``, ``y``, ``p``) per recording; ``train_label.txt``,
``val_label.txt`` and ``test_label.txt`` list the split's samples as ``action_XXX/<sample>`` (first
whitespace-separated token of each line).
"""
from __future__ import annotations

import io
import posixpath
import re

import numpy as np

from ..archives import open_archive
from ..errors import FormatError
from ._base import EventDataset
from ._columns import events_from_columns
from ._recipe import Recipe, Resource

__all__ = ["HARDVS", "RECIPE", "parse_label_file"]

LABEL_FILES = {"train": "train_label.txt", "valid": "val_label.txt", "test": "test_label.txt"}
_ENTRY = re.compile(r"^action_(\d{3})/([^/\s]+?)(?:\.npz)?$")

RECIPE = Recipe(
    cache_version=2,  # 2: split "all" is train then test (it was member order)
    name="hardvs",
    title="HARDVS (MINI)",
    resources=(
        Resource("MINI_HARDVS_files.zip", (), "md5:9c4cc0d9ba043faa17f6f1a9e9aff982"),
        Resource("train_label.txt", (), "md5:0d642b6e6871034f151b2649a89d8d3c", splits=("train",)),
        Resource("val_label.txt", (), "md5:cd2cebcba80e4552102bbacf2b5df812", splits=("valid",)),
        Resource("test_label.txt", (), "md5:5b664af5843f9b476a9c22626f7f5a59", splits=("test",)),
    ),
    classes=tuple(f"action_{k:03d}" for k in range(1, 301)),
    sensor_size=(346, 260, 2),
    splits=("train", "valid", "test"),
    licence="not stated here (see https://github.com/Event-AHU/HARDVS)",
    citation="X. Wang, Z. Wu, B. Jiang, Z. Bao, L. Zhu, G. Li, Y. Wang, Y. Tian. HARDVS: Revisiting Human "
             "Activity Recognition with Dynamic Vision Sensors. AAAI 2024 (arXiv:2211.09648).",
    orientation="as stored in the .npz files; no flips",
    time_origin="the first event (t_offset = its timestamp, t taken as µs)",
    split_rule="official: the samples listed in train_label.txt / val_label.txt (split 'valid') / test_label.txt; "
               "label = XXX − 1 for action_XXX (0-299), never folder order",
    sample_counts={},  # MINI-HARDVS counts not published in a form we could verify
    download="manual",
    manual_instructions=(
        "MINI-HARDVS is a manual download: follow the links on https://github.com/Event-AHU/HARDVS (Baidu "
        "Netdisk when this was written; class descriptions in its HARDVS_300_class.txt) and fetch "
        "MINI_HARDVS_files.zip (md5 9c4cc0d9ba043faa17f6f1a9e9aff982), train_label.txt "
        "(md5 0d642b6e6871034f151b2649a89d8d3c), val_label.txt (md5 cd2cebcba80e4552102bbacf2b5df812) and "
        "test_label.txt (md5 5b664af5843f9b476a9c22626f7f5a59) into one folder (do not extract the zip)."),
    homepage="https://github.com/Event-AHU/HARDVS",
)


def parse_label_file(text: str, where: str) -> list[tuple[int, str]]:
    """``(label, sample name)`` per non-empty line ``action_XXX/<sample> ...`` (label = XXX − 1)."""
    out = []
    for k, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _ENTRY.match(line.split()[0])
        if not m or not 1 <= int(m.group(1)) <= 300:
            raise FormatError(where, None,
                              f"line {k}: {line.strip()!r} is not 'action_XXX/<sample>' with XXX in 001…300")
        out.append((int(m.group(1)) - 1, m.group(2)))
    return out


class HARDVS(EventDataset):
    """MINI-HARDVS: 346×260×2, 300 classes (label = action number − 1), official train/valid/test."""

    recipe = RECIPE
    all_by_splits = True  # "all" = train then test, not member order

    def _samples(self, files, split):
        wanted: dict = {}
        name = LABEL_FILES[split]
        with open(files[name], encoding="utf-8") as fh:
            for label, sample in parse_label_file(fh.read(), str(files[name])):
                wanted.setdefault(label, set()).add(sample)
        path = files["MINI_HARDVS_files.zip"]
        with open_archive(path) as outer:
            inner_by_label = {}
            for m in outer.files(".zip"):
                match = re.fullmatch(r"action_(\d{3})\.zip", posixpath.basename(m.name))
                if match:
                    inner_by_label[int(match.group(1)) - 1] = m.name
            for label in sorted(wanted):
                if label not in inner_by_label:
                    raise FileNotFoundError(f"{path} has no action_{label + 1:03d}.zip")
                with outer.open_archive(inner_by_label[label]) as ar:
                    yield from self._class_samples(ar, label, sorted(wanted[label]))

    def _class_samples(self, ar, label, samples):
        members = {posixpath.basename(m.name)[:-4]: m.name for m in ar.files(".npz")}
        for sample in samples:
            if sample not in members:
                raise FileNotFoundError(f"{ar.name} has no {sample}.npz (listed in the label files)")
            where = f"{ar.name}!{members[sample]}"
            with np.load(io.BytesIO(ar.read(members[sample])), allow_pickle=False) as z:
                missing = [k for k in "txyp" if k not in z.files]
                if missing:
                    raise FormatError(where, None, f"keys {missing} missing; the file has {z.files}")
                events, t0 = events_from_columns(z["t"], z["x"], z["y"], z["p"], self.recipe.sensor_size, where,
                                                 origin="first")
            yield events, label, {"source": f"action_{label + 1:03d}/{sample}", "t_offset": t0}
