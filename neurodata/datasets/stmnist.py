"""ST-MNIST (See et al. 2020): digits handwritten on a 10×10 neuromorphic tactile sensor
array, one MATLAB v5 ``.mat`` per sample holding ``spiketrain`` (101 × N)."""
from __future__ import annotations

import posixpath

import numpy as np

from ..archives import open_archive
from ..errors import FormatError
from ..formats.matv5 import decode_mat
from ._base import EventDataset
from ._columns import events_from_columns
from ._recipe import Recipe, Resource
from ._split_rules import check_seeded_options, seeded_split

__all__ = ["STMNIST", "RECIPE", "spiketrain_events"]

FILENAME = "STMNIST dataset NUS Tee Research Group.zip"

RECIPE = Recipe(
    cache_version=2,  # 2: split "all" is train then test (it was member order)
    name="stmnist",
    title="ST-MNIST (Spiking Tactile MNIST)",
    resources=(Resource(FILENAME, (), "sha256:825bb5a64753fff4a2a2c32e3497fa8a951d9c94993e03ba25a057e17d83b884"),),
    classes=tuple(str(d) for d in range(10)),
    sensor_size=(10, 10, 2),
    splits=("train", "test"),
    licence="not stated in the archive we know of; distributed by NUS ScholarBank after a request form",
    citation="H. H. See, B. Lim, S. Li, H. Yao, W. Cheng, H. Soh, B. C. K. Tee. ST-MNIST -- The Spiking "
             "Tactile MNIST Neuromorphic Dataset. arXiv:2005.04319, 2020.",
    orientation="taxel address a (row of spiketrain, 0..99): x = a % 10, y = a // 10; p = 1 for +1 "
                "(ON), 0 for −1 (OFF)",
    time_origin="as stored: t = rint(spiketrain[100] · 1e6) µs (seconds in the file; Tonic truncates instead, "
                "which can differ by 1 µs); stable-sorted by t if out of order",
    split_rule="no official split: per digit, the sorted member names are permuted by "
               "numpy.random.default_rng([seed, label]) and the first floor(train_fraction · n) are train "
               "(defaults seed=0, train_fraction=0.8)",
    sample_counts={"all": 6953},
    download="manual",
    manual_instructions=(
        "ST-MNIST is distributed by NUS ScholarBank behind a request form: open "
        "https://scholarbank.nus.edu.sg/handle/10635/168106 (file link: https://scholarbank.nus.edu.sg/bitstream/"
        "10635/168106/2/STMNIST%20dataset%20NUS%20Tee%20Research%20Group.zip), fill in the form and download "
        f"'{FILENAME}' (sha256 825bb5a64753fff4a2a2c32e3497fa8a951d9c94993e03ba25a057e17d83b884)."
    ),
    homepage="https://scholarbank.nus.edu.sg/handle/10635/168106",
)


def spiketrain_events(spiketrain, where: str):
    """Events of a ``spiketrain`` array (101, N): rows 0–99 taxels (+1/−1/0), row 100 seconds."""
    st = np.asarray(spiketrain)
    if st.ndim != 2 or st.shape[0] != 101:
        raise FormatError(where, None, f"spiketrain has shape {st.shape}, expected (101, N)")
    values = st[:100].T  # (N, 100): event column, taxel address
    event_idx, addr = np.nonzero(values)
    times = st[100].astype(np.float64)[event_idx]
    events, _ = events_from_columns(times, addr % 10, addr // 10, values[event_idx, addr], (10, 10, 2), where,
                                    seconds=True)
    return events


def member_label(name: str):
    """The digit folder of a sample ``.../<digit>/<file>.mat``; None for other members (the LUT)."""
    if not name.lower().endswith(".mat") or "LUT" in posixpath.basename(name):
        return None
    folder = posixpath.basename(posixpath.dirname(name))
    return int(folder) if folder.isdigit() and len(folder) == 1 else None


class STMNIST(EventDataset):
    """ST-MNIST: 6953 samples of 10×10×2 tactile events, labels 0–9 from the digit folder.
    Options ``seed`` and ``train_fraction`` (the split rule). A manual download."""

    recipe = RECIPE
    all_by_splits = True  # "all" = train then test, not member order

    def _check_options(self, seed: int = 0, train_fraction: float = 0.8) -> dict:
        return check_seeded_options(seed, train_fraction)

    def _samples(self, files, split):
        path = files[FILENAME]
        with open_archive(path) as ar:
            by_label: dict = {}
            for m in ar.files(".mat"):
                label = member_label(m.name)
                if label is not None:
                    by_label.setdefault(label, []).append(m.name)
            if not by_label:
                raise FormatError(path, None, "no <digit>/<sample>.mat members found")
            chosen = seeded_split(by_label, split, self.options["seed"], self.options["train_fraction"])
            for name in sorted(chosen, key=lambda n: (member_label(n), n)):
                where = f"{path}!{name}"
                mat = decode_mat(ar.read(name), ("spiketrain",), path=where)
                yield spiketrain_events(mat["spiketrain"], where), member_label(name), {"source": name, "t_offset": 0}
