"""The Heidelberg spiking datasets (Cramer et al. 2020): SHD (spoken digits) and SSC (speech
commands), spikes of 700 cochlea-model channels in one HDF5 file per split, zipped.

Samples are read from the ``.h5`` inside the downloaded ``.h5.zip``; h5py needs random access,
so the member is inflated into memory (up to 64 MiB) or into an anonymous temporary file next to
the archive (removed when the build ends; nothing extracted stays on disk).
"""
from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import unicodedata
import warnings
from pathlib import Path

import h5py
import numpy as np

from ..archives import open_archive
from ..errors import FormatError
from ._base import EventDataset
from ._columns import events_from_columns
from ._recipe import Recipe, Resource

__all__ = ["SHD", "SSC", "SHD_RECIPE", "SSC_RECIPE", "audio_events"]

_ZENKE = "https://zenkelab.org/datasets/{}"
_CITATION = ("B. Cramer, Y. Stradmann, J. Schemmel, F. Zenke. The Heidelberg Spiking Data Sets for the "
             "Systematic Evaluation of Spiking Neural Networks. IEEE Transactions on Neural Networks and "
             "Learning Systems 33(7):2744-2757, 2022 (arXiv:1910.07407).")
_ORIENTATION = "1-D sensor (700, 1, 1): x = cochlea channel (spikes/units, 0..699), y = 0, p = 0 (one polarity)"
_TIME = ("the audio file's start (spike times as stored): t = rint(spikes/times · 1e6) µs, computed in "
         "float64, round half to even; stable-sorted by t if a sample is out of order")
IN_MEMORY = 64 << 20

SHD_RECIPE = Recipe(
    name="shd",
    title="Spiking Heidelberg Digits (SHD)",
    resources=(
        Resource("shd_train.h5.zip", (_ZENKE.format("shd_train.h5.zip"),), "md5:f3252aeb598ac776c1b526422d90eecb",
                 splits=("train",)),
        Resource("shd_test.h5.zip", (_ZENKE.format("shd_test.h5.zip"),), "md5:1503a5064faa34311c398fb0a1ed0a6f",
                 splits=("test",)),
    ),
    classes=("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
             "null", "eins", "zwei", "drei", "vier", "fuenf", "sechs", "sieben", "acht", "neun"),
    sensor_size=(700, 1, 1),
    splits=("train", "test"),
    licence="CC BY 4.0",
    citation=_CITATION,
    orientation=_ORIENTATION,
    time_origin=_TIME,
    split_rule="official: shd_train.h5.zip and shd_test.h5.zip (two speakers appear only in the test set)",
    # Sources disagree: zenkelab.org's page (and the 2019 compneuro.net post) say 8332 / 2088; the current
    # https://compneuro.net/ page says 8156 / 2264. Both are given; see docs/datasets.md.
    sample_counts={"train": 8332, "test": 2088, "train (compneuro.net)": 8156, "test (compneuro.net)": 2264},
    homepage="https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/",
)

SSC_RECIPE = Recipe(
    name="ssc",
    title="Spiking Speech Commands (SSC)",
    resources=tuple(
        Resource(f"ssc_{s}.h5.zip", (_ZENKE.format(f"ssc_{s}.h5.zip"),), f"md5:{md5}", splits=(s,))
        for s, md5 in (("train", "d102be95e7144fcc0553d1f45ba94170"), ("valid", "b4eee3516a4a90dd0c71a6ac23a8ae43"),
                       ("test", "a35ff1e9cffdd02a20eb850c17c37748"))),
    classes=("backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
             "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
             "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero"),
    sensor_size=(700, 1, 1),
    splits=("train", "valid", "test"),
    licence="CC BY 4.0",
    citation=_CITATION,
    orientation=_ORIENTATION,
    time_origin=_TIME,
    split_rule="official: ssc_train.h5.zip, ssc_valid.h5.zip, ssc_test.h5.zip "
               "('all' = train, valid, test in that order)",
    sample_counts={"train": 75466, "valid": 9981, "test": 20382},
    homepage="https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/",
)


def audio_events(times, units, channels: int, where: str):
    """Events of a 1-D (cochlea) sample: ``x = unit``, ``y = 0``, ``p = 0``, ``t = rint(times·1e6)`` µs."""
    units = np.asarray(units).reshape(-1)
    zeros = np.zeros(units.shape[0], np.int64)
    events, _ = events_from_columns(times, units, zeros, zeros, (channels, 1, 1), where, seconds=True)
    return events


def _norm(name) -> str:
    text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
    text = unicodedata.normalize("NFC", text.strip().lower())  # "u" + combining diaeresis is "ü" first
    return text.replace("ü", "ue").replace("ö", "oe").replace("ä", "ae")


@contextlib.contextmanager
def seekable_member(archive_path, suffix: str):
    """The single member ending in ``suffix`` of a zip/tar archive, as a seekable binary file
    (in memory up to 64 MiB, else an anonymous temporary file beside the archive); yields
    ``(member name, file object)``."""
    with open_archive(archive_path) as ar:
        members = ar.files(suffix)
        if len(members) != 1:
            raise FormatError(archive_path, None, f"expected exactly one member ending in {suffix!r}, "
                                                  f"found {[m.name for m in members]}")
        member = members[0]
        with ar.open(member.name) as src:
            if member.size <= IN_MEMORY:
                buf = io.BytesIO(src.read())
            else:
                buf = tempfile.TemporaryFile(dir=Path(archive_path).parent)
                shutil.copyfileobj(src, buf, 1 << 20)
                buf.seek(0)
        with buf:
            yield member.name, buf


class _Heidelberg(EventDataset):
    """Shared reader of the SHD/SSC HDF5 layout (see ``docs/datasets.md``)."""

    block = 512  # samples read from HDF5 per slice

    @property
    def speakers(self) -> np.ndarray:
        """Speaker id of every sample (``extra/speaker``; -1 where the file has none), without reading events."""
        return np.asarray(self.store.meta("speaker"))

    def _samples(self, files, split):
        for res in self._resources():
            yield from self._file_samples(files[res.filename])

    def _file_samples(self, path):
        with seekable_member(path, ".h5") as (member, fobj), h5py.File(fobj, "r") as f:
            where = f"{path}!{member}"
            for key in ("spikes/times", "spikes/units", "labels"):
                if key not in f:
                    raise FormatError(where, None, f"no HDF5 dataset {key!r} "
                                                   "(expected spikes/times, spikes/units, labels)")
            times, units, labels = f["spikes/times"], f["spikes/units"], f["labels"][:]
            n = labels.shape[0]
            if times.shape != (n,) or units.shape != (n,):
                raise FormatError(where, None, f"spikes/times {times.shape}, spikes/units {units.shape} and "
                                               f"labels {labels.shape} disagree")
            if n and (labels.min() < 0 or labels.max() >= len(self.recipe.classes)):
                raise FormatError(where, None, f"labels span {labels.min()}..{labels.max()}, expected 0.."
                                               f"{len(self.recipe.classes) - 1}")
            speakers = f["extra/speaker"][:] if "extra/speaker" in f else np.full(n, -1)
            if speakers.shape != (n,):
                raise FormatError(where, None, f"extra/speaker has shape {speakers.shape}, expected ({n},)")
            self._check_keys(f, where)
            for a in range(0, n, self.block):
                tb, ub = times[a:a + self.block], units[a:a + self.block]
                for k in range(len(tb)):
                    i = a + k
                    events = audio_events(tb[k], ub[k], self.recipe.sensor_size[0], f"{where} sample {i}")
                    yield events, int(labels[i]), {"source": f"{member}[{i}]", "t_offset": 0,
                                                   "speaker": int(speakers[i])}

    def _check_keys(self, f, where):
        if "extra/keys" not in f:
            return
        keys = [_norm(k) for k in f["extra/keys"][:]]
        ours = [_norm(c) for c in self.recipe.classes]
        if keys != ours:
            warnings.warn(f"{where}: extra/keys lists the classes as {keys}; neurodata names them {ours}. "
                          "Labels are the file's integers either way; class names may be misattributed",
                          UserWarning, stacklevel=2)


class SHD(_Heidelberg):
    """Spiking Heidelberg Digits: 20 classes (English digits 0–9 = labels 0–9, German 10–19),
    8332 train / 2088 test samples on 700 channels. ``ds.metadata(i)["speaker"]`` and
    ``ds.speakers`` give the speaker ids (``extra/speaker``)."""

    recipe = SHD_RECIPE


class SSC(_Heidelberg):
    """Spiking Speech Commands: 35 classes, 75466 train / 9981 valid / 20382 test samples on 700
    channels; splits ``"train"``, ``"valid"``, ``"test"``, ``"all"``. Speakers as for ``SHD``."""

    recipe = SSC_RECIPE
