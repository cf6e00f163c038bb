"""N-CARS (Sironi et al. 2018): 100 ms ATIS crops of cars and background, Prophesee DAT files."""
from __future__ import annotations

import posixpath

from ..archives import open_archive
from ..formats import read_bytes
from ._base import EventDataset
from ._recipe import Recipe, Resource

__all__ = ["NCARS", "RECIPE"]

FOLDER_CLASSES = {"background": 0, "cars": 1}

RECIPE = Recipe(
    name="ncars",
    title="N-CARS",
    resources=(
        Resource("n-cars_train.zip", (), "md5:976d126a651b95d81800b05a3093337b", splits=("train",)),
        Resource("n-cars_test.zip", (), "md5:3b5e8e9a5bffeb95614b8c0a2ba4e511", splits=("test",)),
    ),
    classes=("background", "car"),
    sensor_size=(120, 100, 2),
    splits=("train", "test"),
    licence="Prophesee's terms, accepted on its download page (not restated here)",
    citation="A. Sironi, M. Brambilla, N. Bourdis, X. Lagorce, R. Benosman. HATS: Histograms of Averaged "
             "Time Surfaces for Robust Event-based Object Classification. CVPR 2018.",
    orientation="as stored in the DAT files (x = w & 0x3FFF, y = (w >> 14) & 0x3FFF); no flips",
    time_origin="the recording's own zero (DAT timestamps as stored; the crops start at t = 0)",
    split_rule="official: n-cars_train.zip / n-cars_test.zip; label = the member's folder: "
               "background → 0, cars → 1 (never folder order)",
    sample_counts={"train": 15422, "test": 8607, "train cars": 7482, "train background": 7940,
                   "test cars": 4396, "test background": 4211},
    download="manual",
    manual_instructions=(
        "N-CARS is served by Prophesee after a form: open https://www.prophesee.ai/2018/03/13/dataset-n-cars/, "
        "download Prophesee_Dataset_n_cars.zip (md5 553ce464d6e5e617b3c21ce27c19368e) and unzip it: it holds "
        "n-cars_train.zip (md5 976d126a651b95d81800b05a3093337b) and n-cars_test.zip "
        "(md5 3b5e8e9a5bffeb95614b8c0a2ba4e511), the files this dataset reads."),
    homepage="https://www.prophesee.ai/2018/03/13/dataset-n-cars/",
)


class NCARS(EventDataset):
    """N-CARS: 120×100×2 crops, label 0 = background, 1 = car; 15 422 train / 8 607 test samples.

    Members ``<top>/{background,cars}/<name>.dat`` of ``n-cars_train.zip`` / ``n-cars_test.zip``
    (``<top>`` is ``n-cars_train``, ``train`` or similar: only the class folder matters), read in
    sorted member order with the DAT version 2 layout whatever the header says.
    """

    recipe = RECIPE

    def _samples(self, files, split):
        for res in self._resources():
            path = files[res.filename]
            with open_archive(path) as ar:
                for name in sorted(m.name for m in ar.files(".dat")):
                    folder = posixpath.basename(posixpath.dirname(name))
                    if folder not in FOLDER_CLASSES:
                        raise ValueError(f"{path}: member {name} is not in a background/ or cars/ folder")
                    events = read_bytes(ar.read(name), "dat", name=name, version=2)
                    yield events, FOLDER_CLASSES[folder], {"source": name, "t_offset": 0}
