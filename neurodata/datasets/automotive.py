"""Prophesee automotive detection datasets: Gen1 (ATIS, 304×240) and 1 Mpx / Gen4 (1280×720).

Both are folders of 60 s recordings cut from longer drives, ``<name>_td.dat`` (Prophesee DAT,
version 2 layout) next to ``<name>_bbox.npy`` (boxes; see ``detection.py``), in ``train/``,
``val/`` and ``test/``. They are manual downloads far too large to decode from their archives
(Gen1: about 200 GB compressed, 750 GB extracted), so ``source=`` is the extracted folder.

A sample is one recording: ``ds[i] -> (events, boxes)`` with ``boxes`` a ``BOX_DTYPE`` array;
the cache stores the boxes as annotations and has a time index, so the detection samples — time
windows ending at each labelled timestamp — come from ``neurodata.load("gen1",
windows=dict(window_us=50_000, around_labels=True))`` (or ``WindowedDataset(ds, 50_000,
around_labels=True)``) without ever loading a whole recording; ``detection_collate`` batches them.
"""
from __future__ import annotations

from pathlib import Path

from ..formats import read
from ._folder import FolderDataset
from ._recipe import Recipe
from .detection import read_boxes

__all__ = ["Gen1", "Gen4", "GEN1_RECIPE", "GEN4_RECIPE"]

SPLIT_FOLDERS = {"train": "train", "valid": "val", "test": "test"}
NO_LABEL = -1
_TERMS = "Prophesee's terms, accepted on its download page (not restated here; not redistributable by this package)"
_LAYOUT = ("Extract every archive into one folder so that it holds train/, val/ and test/ with "
           "<name>_td.dat and <name>_bbox.npy pairs.")

GEN1_RECIPE = Recipe(
    name="gen1",
    title="Gen1 Automotive Detection",
    resources=(),
    classes=("car", "pedestrian"),
    sensor_size=(304, 240, 2),
    splits=("train", "valid", "test"),
    licence=_TERMS,
    citation="P. de Tournemire, D. Nitti, E. Perot, D. Migliore, A. Sironi. A Large Scale Event-based "
             "Detection Dataset for Automotive. arXiv:2001.08499, 2020.",
    orientation="as stored in the DAT files (Prophesee: origin top-left); no flips",
    time_origin="the recording's own zero (DAT timestamps as stored, t_offset = 0); boxes share it",
    split_rule="official: the train/, val/ (split 'valid') and test/ folders; a sample is a recording, "
               "label -1 (the targets are the boxes: class_id 0 = car, 1 = pedestrian)",
    sample_counts={"train": 1459, "valid": 429, "test": 470},
    download="manual",
    manual_instructions=(
        "Gen1 is distributed by Prophesee after a form: open "
        "https://www.prophesee.ai/2020/01/24/prophesee-gen1-automotive-detection-dataset/ and download "
        "all of its archives (about 200 GB). " + _LAYOUT),
    homepage="https://www.prophesee.ai/2020/01/24/prophesee-gen1-automotive-detection-dataset/",
)

GEN4_RECIPE = Recipe(
    name="gen4",
    title="1 Mpx Automotive Detection (Gen4)",
    resources=(),
    classes=("pedestrian", "two_wheeler", "car", "truck", "bus", "traffic_sign", "traffic_light"),
    sensor_size=(1280, 720, 2),
    splits=("train", "valid", "test"),
    licence=_TERMS,
    citation="E. Perot, P. de Tournemire, D. Nitti, J. Masci, A. Sironi. Learning to Detect Objects with a "
             "1 Megapixel Event Camera. NeurIPS 2020.",
    orientation="as stored (Prophesee: origin top-left); no flips",
    time_origin="the recording's own zero (timestamps as stored, t_offset = 0); boxes share it",
    split_rule="official: the train/, val/ (split 'valid') and test/ folders; a sample is a recording, "
               "label -1 (the targets are the boxes, class_id 0-6 in the order of the class list)",
    sample_counts={},  # not published in a form we could verify
    download="manual",
    manual_instructions=(
        "The 1 Mpx dataset is distributed by Prophesee after a form: open "
        "https://www.prophesee.ai/2020/11/24/automotive-megapixel-event-based-dataset/ and download the "
        "DAT release (<name>_td.dat; EVT3 <name>.raw recordings with <name>_bbox.npy are read too). " + _LAYOUT),
    homepage="https://www.prophesee.ai/2020/11/24/automotive-megapixel-event-based-dataset/",
)


def _recording_base(path: Path) -> str | None:
    """``<name>`` of ``<name>_td.dat`` / ``<name>.raw``; None for other files."""
    if path.name.endswith("_td.dat"):
        return path.name[: -len("_td.dat")]
    if path.suffix == ".raw":
        return path.stem
    return None


class Gen1(FolderDataset):
    """Gen1 Automotive Detection: ``ds[i] -> (events, boxes)`` per 60 s recording, 304×240×2.

    ``ds.boxes(i)`` gives the boxes alone (``BOX_DTYPE``, sorted by ``t``); ``ds.targets`` is -1
    for every recording. Detection samples: ``WindowedDataset(ds, 50_000, around_labels=True)``
    (the 50 ms of events before each labelled timestamp, with the boxes of that timestamp).
    """

    recipe = GEN1_RECIPE
    folder_names = ("gen1",)
    suffixes = ("_td.dat",)

    def _is_dataset_folder(self, path: Path) -> bool:
        return any((path / f).is_dir() for f in SPLIT_FOLDERS.values())

    def _recordings(self, folder: Path, split: str):
        splits = self.recipe.splits if split == "all" else (split,)
        for s in splits:
            sub = folder / SPLIT_FOLDERS[s]
            if not sub.is_dir():
                raise FileNotFoundError(f"{self.recipe.title}: {sub} is missing (split {s!r}). {_LAYOUT}")
            found = sorted(p for p in sub.rglob("*") if p.is_file() and _recording_base(p) is not None
                           and p.name.endswith(self.suffixes))
            yield from ((s, p) for p in found)

    def _samples(self, files, split):
        folder = files["folder"]
        for _, path in self._recordings(folder, split):
            box_path = path.with_name(_recording_base(path) + "_bbox.npy")
            if not box_path.is_file():
                raise FileNotFoundError(f"{self.recipe.title}: {box_path.name} (the boxes of {path.name}) is missing "
                                        f"in {path.parent}")
            boxes = read_boxes(box_path, str(box_path), len(self.recipe.classes))
            events = read(path, "dat", version=2) if path.suffix == ".dat" else read(path)
            source = path.relative_to(folder).as_posix()
            yield events, NO_LABEL, {"source": source, "t_offset": 0, "annotations": boxes}

    def boxes(self, i):
        """The boxes of recording ``i`` (``BOX_DTYPE``), without reading its events."""
        return self.store.annotations(i)

    def __getitem__(self, i):
        events, _ = self.store[i]
        boxes = self.store.annotations(i)
        if self.transform is not None:
            events = self.transform(events)
        if self.target_transform is not None:
            boxes = self.target_transform(boxes)
        return events, boxes


class Gen4(Gen1):
    """1 Mpx Automotive Detection (Gen4): as ``Gen1`` with 1280×720×2 and seven classes; reads
    ``<name>_td.dat`` (DAT) and ``<name>.raw`` (EVT 3.0) recordings."""

    recipe = GEN4_RECIPE
    folder_names = ("gen4", "1mpx")
    suffixes = ("_td.dat", ".raw")
