"""Bullying10K (Dong et al. 2023): ten bullying-related actions recorded with a DAVIS346
(346×260); one figshare zip per class holding pickled ``.npy`` files (object arrays of the
per-packet event arrays that the ``dv`` library yields).

The files are read with ``neurodata.formats.safe_npy.load_npy(allow_objects=True)``: a pickle
that asks for anything but numpy arrays and dtypes is refused before anything in it runs.
"""
from __future__ import annotations

import numpy as np

from ..archives import open_archive
from ..errors import FormatError
from ..formats.safe_npy import load_npy
from ._base import EventDataset
from ._columns import events_from_columns
from ._recipe import Recipe, Resource

__all__ = ["Bullying10K", "RECIPE", "packets_to_columns"]

_FILES = (
    ("handshake", 41268834, "681d70f499e736a1e805305284ddc425"),
    ("slapping", 41247021, "84b41d6805958f9f62f425223916ffc2"),
    ("punching", 41263314, "40954f480ab210099d448b7b88fc4719"),
    ("walking", 41247024, "56e4cac9c0814ce701c3b2292c15b6a9"),
    ("fingerguess", 41253057, "f83114e5b4f0ea57cac86fb080c7e4d7"),
    ("strangling", 41261904, "8185ecd6f3147e9b609d22f06270aa86"),
    ("greeting", 41268792, "4a763fad728b04c8356db8544f1121fe"),
    ("pushing", 41268951, "7986c74ade7149a98672120a89b13ba8"),
    ("hairgrabs", 41277855, "a9cf690ed0a3305da4a4b8e110f64db1"),
    ("kicking", 41278008, "6c3218f977de4ac29c84a10b17779c33"),
)
TEST_EVERY = 5

RECIPE = Recipe(
    cache_version=2,  # 2: split "all" is train then test (it was member order)
    name="bullying10k",
    title="Bullying10K",
    resources=tuple(Resource(f"{cls}.zip", (f"https://ndownloader.figshare.com/files/{fid}",
                                            f"https://figshare.com/ndownloader/files/{fid}"), f"md5:{md5}")
                    for cls, fid, md5 in _FILES),
    classes=tuple(cls for cls, _, _ in _FILES),
    sensor_size=(346, 260, 2),
    splits=("train", "test"),
    licence="not stated in the figshare records we know of (see https://www.brain-cog.network/dataset/Bullying10k/)",
    citation="Y. Dong, Y. Li, D. Zhao, G. Shen, Y. Zeng. Bullying10K: A Large-Scale Neuromorphic Dataset "
             "towards Privacy-Preserving Bullying Recognition. NeurIPS 2023 Datasets and Benchmarks.",
    orientation="as stored by the dv library (x, y from the DAVIS346, origin top-left); p = 1 where polarity > 0",
    time_origin="the sample's first event (absolute dv timestamps in µs; the offset is in metadata t_offset)",
    split_rule="the authors' rule made deterministic: samples ordered by class (label order) then member name; "
               "every 5th (global index 0, 5, 10, ...) is test, the rest train (the authors' code applies "
               "the same rule to os.listdir/os.walk order, which is not reproducible)",
    # arXiv:2306.11546 abstract: "With 10,000 event segments, totaling 12 billion events and 255 GB of data"
    # (possibly a rounded figure; the figshare records list no count).
    sample_counts={"all (paper abstract)": 10000},
    homepage="https://www.brain-cog.network/dataset/Bullying10k/",
    approx_download_size="≈ 255 GB (source: https://arxiv.org/abs/2306.11546 abstract: \"255 GB of data\"; the dataset's total as published, not measured on the ten figshare zips)",
)


def packets_to_columns(arr: np.ndarray, where: str):
    """``(t, x, y, p)`` columns of a loaded Bullying10K array: an object array of packets, or a
    plain array. A packet is a structured array (fields ``timestamp, x, y, polarity`` by name,
    else the first four fields) or a 2-D numeric array with columns t, x, y, p (first four)."""
    packets = list(arr.ravel()) if arr.dtype.hasobject else [arr]
    cols = [[], [], [], []]
    for k, pk in enumerate(packets):
        names = pk.dtype.names
        if names is not None:
            if pk.ndim == 0:
                pk = pk.reshape(1)
            pk = pk.reshape(-1)
            fields = ("timestamp", "x", "y", "polarity") if {"timestamp", "x", "y", "polarity"} <= set(names) \
                else names[:4]
            if len(fields) < 4:
                raise FormatError(where, None, f"packet {k} has fields {names}; expected t, x, y, p")
            parts = [pk[f] for f in fields]
        elif pk.ndim == 2 and pk.shape[1] >= 4:
            parts = [pk[:, j] for j in range(4)]
        elif pk.size == 0:
            continue
        else:
            raise FormatError(where, None, f"packet {k} has shape {pk.shape} of {pk.dtype}; expected structured "
                                           "events or an (N, 4) array")
        for c, part in zip(cols, parts):
            c.append(np.asarray(part).reshape(-1))
    if not cols[0]:
        return [np.zeros(0, np.int64)] * 4
    return [np.concatenate(c) for c in cols]


class Bullying10K(EventDataset):
    """Bullying10K: 10 actions → labels 0–9 in the order handshake, slapping, punching, walking,
    fingerguess, strangling, greeting, pushing, hairgrabs, kicking (SpikingJelly's), 346×260×2;
    split as in ``RECIPE.split_rule``."""

    recipe = RECIPE
    all_by_splits = True  # "all" = train then test, not member order

    def _samples(self, files, split):
        position = 0
        index = {c: i for i, c in enumerate(self.recipe.classes)}
        resources = sorted(self.recipe.resources, key=lambda r: index[r.filename[:-len(".zip")]])
        for res in resources:  # in label order; a zip's label is its class, never its position
            label = index[res.filename[:-len(".zip")]]
            path = files[res.filename]
            with open_archive(path) as ar:
                for name in sorted(m.name for m in ar.files(".npy")):
                    is_test = position % TEST_EVERY == 0
                    position += 1
                    if is_test != (split == "test"):
                        continue
                    where = f"{path}!{name}"
                    arr = load_npy(ar.read(name), path=where, allow_objects=True)
                    t, x, y, p = packets_to_columns(arr, where)
                    events, t0 = events_from_columns(t, x, y, p, self.recipe.sensor_size, where, origin="first")
                    yield events, label, {"source": name, "t_offset": t0}
