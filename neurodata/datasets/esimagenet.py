"""ES-ImageNet (Lin et al. 2021): ImageNet-1k images converted to 8 steps of events (ODG algorithm).

The release is a 25-part RAR archive (``ES-imagenet-0.18.part01.rar`` … ``part25.rar``) that this
package does not decode; it is extracted by hand to ``ES-imagenet-0.18/`` holding ``train/``,
``val/``, ``trainlabel.txt`` and ``vallabel.txt``. Each sample is an ``.npz`` with ``pos`` and
``neg`` integer arrays of shape (N, 3): ``(row, column, step)``, step 1 … 8.
"""
from __future__ import annotations

import numpy as np

from ..errors import FormatError
from ._columns import events_from_columns
from ._folder import FolderDataset
from ._recipe import Recipe, Resource

__all__ = ["ESImageNet", "RECIPE", "parse_label_file"]

_PART_MD5 = (
    "900bdd57b5641f7d81cd4620283fef76", "5982532009e863a8f4e18e793314c54b", "8f408c1f5a1d4604e48d0d062a8289a0",
    "5c5b5cf0a55954eb639964e3da510097", "51feb661b4c9fa87860b63e76b914673", "fcd007a2b17b7c13f338734c53f6db31",
    "d3e74b96d9c5df15714bbc3abcd329fc", "65b9cf7fa63e18d2e7d92ff45a42a5e5", "241c9a37a83ff9efd305fe46d012211e",
    "ceee96971008e30d0cdc34086c49fd75", "4fbfefbe6e48758fbb72427c81f119cf", "c8cc163be4e5f6451201dccbded4ec24",
    "08c9dff32f6b42c49ef7cd78e37c728e", "43aa157dc5bd5fcea81315a46e0322cf", "480a69b050f465ef01efcc44ae29f7df",
    "11abd24d92b93e7f85acd63abd4a18ab", "3891486a6862c63a325c5f16cd01fdd1", "cf8bb0525b514f411bca9d7c2d681f7c",
    "3766bc35572ccacc03f0f293c571d0ae", "bf73a5e338644122220e41da7b5630e6", "564de4a2609cbb0bb67ffa1bc51f2487",
    "60a9e52db1acadfccc9a9809073f0b04", "373b5484826d40d7ec35f0e1605cb6ea", "a50612e889b20f99cc7b2725dfd72e9e",
    "0802ccdeb0cff29237faf55164524101",
)
_CLOUD = "https://cloud.tsinghua.edu.cn/d/94873ab4ec2a4eb497b3/"
PARTS = tuple(f"ES-imagenet-0.18.part{k:02d}.rar" for k in range(1, 26))
LABEL_FILES = {"train": ("train", "trainlabel.txt"), "test": ("val", "vallabel.txt")}
NUM_CLASSES = 1000

RECIPE = Recipe(
    name="esimagenet",
    title="ES-ImageNet",
    resources=tuple(Resource(name, (), f"md5:{md5}") for name, md5 in zip(PARTS, _PART_MD5)),
    classes=tuple(f"class{k}" for k in range(NUM_CLASSES)),
    sensor_size=(256, 256, 2),
    splits=("train", "test"),
    licence="not stated here (see https://github.com/lyh983012/ES-imagenet-master)",
    citation="Y. Lin, W. Ding, S. Qiang, L. Deng, G. Li. ES-ImageNet: A Million Event-Stream Classification "
             "Dataset for Spiking Neural Networks. Frontiers in Neuroscience 15:726582, 2021.",
    orientation="x = column 1, y = column 0 of the pos/neg arrays (SpikingJelly's reading), as stored unless "
                "center=True (shift by ((254 − a) // 2, (254 − b) // 2) rows/columns, the authors' loader); "
                "p = 1 for pos, 0 for neg",
    time_origin="as stored: t is the conversion step 1-8 (no physical clock; not µs), t_offset = 0; pos then neg "
                "events, stably sorted by step",
    split_rule="official: train/ listed in trainlabel.txt (split 'train') and val/ listed in vallabel.txt "
               "(split 'test'); label = the label file's second column (0-999, used directly by the authors' loader)",
    # The paper gives only a rounded total ("about 1,300,000 frame-based images into ES-samples in 1,000
    # categories", abstract of Frontiers in Neuroscience 15:726582); no per-split count was found.
    sample_counts={"all (paper abstract, rounded)": "≈ 1 300 000"},
    download="manual",
    manual_instructions=(
        f"Download the 25 parts ES-imagenet-0.18.part01.rar … part25.rar from {_CLOUD} (md5s in `neurodata info "
        "esimagenet`), put them in one folder and extract the first part with every part present "
        "(`unrar x ES-imagenet-0.18.part01.rar` or `7z x ES-imagenet-0.18.part01.rar`); this gives the folder "
        "ES-imagenet-0.18/ with train/, val/, trainlabel.txt and vallabel.txt (over a million .npz files; "
        "the authors give about 100 GB)."),
    homepage="https://www.frontiersin.org/articles/10.3389/fnins.2021.726582/full",
    # The authors' README: "The datasets ES-ImageNet (100GB) ... can be download in the Tsinghua Cloud1".
    approx_download_size="≈ 100 GB (source: https://github.com/lyh983012/ES-imagenet-master README: \"The datasets ES-ImageNet (100GB)\"; the 25 RAR parts together)",
)


def parse_label_file(text: str, where: str) -> list[tuple[str, int, int, int]]:
    """``(sample stem, label, a, b)`` per non-empty line ``<file name> <label> <a> <b>``; the stem
    drops folders and the extension (``class3/class3_17.npz`` → ``class3_17``); ``a``, ``b`` are
    the rows and columns of the converted image (at most 254)."""
    out = []
    for k, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4 or not all(v.isdigit() for v in parts[1:]) or not 0 <= int(parts[1]) < NUM_CLASSES:
            raise FormatError(where, None, f"line {k}: {line.strip()!r} is not '<file name> <label 0-999> <a> <b>'")
        stem = parts[0].rsplit("/", 1)[-1].rsplit(".", 1)[0]
        out.append((stem, int(parts[1]), int(parts[2]), int(parts[3])))
    return out


class ESImageNet(FolderDataset):
    """ES-ImageNet: 256×256×2, 1000 classes, t = step 1-8; ``source=`` is the extracted folder.

    Option ``center`` (default False, as stored and as SpikingJelly reads it): shift each sample
    by ``(254 − a) // 2`` rows and ``(254 − b) // 2`` columns (``a``, ``b`` from the label file), as
    the authors' loader ``es_imagenet_new.py`` does.
    """

    recipe = RECIPE
    folder_names = ("ES-imagenet-0.18",)

    def _check_options(self, center: bool = False) -> dict:
        if not isinstance(center, bool):
            raise TypeError(f"center must be a bool, got {center!r}")
        return {"center": True} if center else {}

    def _resources(self):  # every part, whatever the split (the archive is one)
        return list(self.recipe.resources)

    def _is_dataset_folder(self, path) -> bool:
        return any((path / name).is_file() for _, name in LABEL_FILES.values())

    def _samples(self, files, split):
        folder = files["folder"]
        for s in (self.recipe.splits if split == "all" else (split,)):
            sub, label_name = LABEL_FILES[s]
            label_path = folder / label_name
            if not label_path.is_file() or not (folder / sub).is_dir():
                raise FileNotFoundError(f"{folder} lacks {label_name} or {sub}/ (split {s!r}); "
                                        f"{self.recipe.manual_instructions}")
            entries = parse_label_file(label_path.read_text(encoding="utf-8"), str(label_path))
            found: dict = {}
            for p in (folder / sub).rglob("*.npz"):
                found.setdefault(p.stem, []).append(p)
            for stem, label, a, b in sorted(entries):
                paths = found.get(stem, [])
                if len(paths) != 1:
                    raise FileNotFoundError(f"{label_name} lists {stem}: expected one {sub}/**/{stem}.npz, "
                                            f"found {len(paths)}")
                shift = ((254 - a) // 2, (254 - b) // 2) if self.options.get("center") else (0, 0)
                yield (self._read(paths[0], shift), label,
                       {"source": paths[0].relative_to(folder).as_posix(), "t_offset": 0})

    def _read(self, path, shift):
        where = str(path)
        with np.load(path, allow_pickle=False) as z:
            if "pos" not in z.files or "neg" not in z.files:
                raise FormatError(where, None, f"keys pos and neg expected; the file has {z.files}")
            pos, neg = z["pos"], z["neg"]
        for name, a in (("pos", pos), ("neg", neg)):
            if a.ndim != 2 or a.shape[1] != 3:
                raise FormatError(where, None,
                                  f"{name} has shape {a.shape}; expected (N, 3) rows of (row, column, step)")
        both = np.concatenate([pos, neg]).astype(np.int64)
        both[:, 0] += shift[0]
        both[:, 1] += shift[1]
        p = np.concatenate([np.ones(len(pos), np.uint8), np.zeros(len(neg), np.uint8)])
        return events_from_columns(both[:, 2], both[:, 1], both[:, 0], p, self.recipe.sensor_size, where)[0]
