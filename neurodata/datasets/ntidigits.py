"""N-TIDIGITS18 (Anumula et al. 2018): the TIDIGITS spoken-digit corpus played to a 64-channel
Dynamic Audio Sensor (silicon cochlea); one HDF5 file holds both splits."""
from __future__ import annotations

import h5py
import numpy as np

from ..errors import FormatError
from ._base import EventDataset
from ._recipe import Recipe, Resource
from .heidelberg import audio_events

__all__ = ["NTIDIGITS", "RECIPE"]

RECIPE = Recipe(
    name="ntidigits",
    title="N-TIDIGITS18",
    resources=(
        Resource("n-tidigits.hdf5",
                 ("https://www.dropbox.com/scl/fi/1x4lxt9yyw25sc3tez8oi/n-tidigits.hdf5"
                  "?e=2&rlkey=w8gi5udvib2zqzosusa5tr3wq&dl=1",),
                 "md5:360a2d11e5429555c9197381cf6b58e0"),
    ),
    classes=("o", "1", "2", "3", "4", "5", "6", "7", "8", "9", "z"),
    sensor_size=(64, 1, 1),
    splits=("train", "test"),
    licence="not stated by the distributors (TIDIGITS itself is a Linguistic Data Consortium corpus); "
            "check with the authors before redistribution",
    citation="J. Anumula, D. Neil, T. Delbruck, S.-C. Liu. Feature Representations for Neuromorphic Audio "
             "Spike Streams. Frontiers in Neuroscience 12:23, 2018.",
    orientation="1-D sensor (64, 1, 1): x = cochlea channel (the stored address, 0..63), y = 0, p = 0",
    time_origin="the utterance's own zero (timestamps as stored): t = rint(timestamps · 1e6) µs (stored in "
                "seconds), round half to even; stable-sorted by t if out of order",
    split_rule="official: the file's train_* and test_* groups; by default only single-digit utterances "
               "(single_digits=True); 'all' = train then test",
    sample_counts={},  # not published in a form we could verify: see docs/datasets.md
    homepage="https://docs.google.com/document/d/1Uxe7GsKKXcy6SlDUX4hoJVAC0-UkH-8kr5UXp0Ndi1M",
)


def parse_key(key: str) -> dict:
    """``"man-im-a-7557"`` → speaker type, speaker, production and digit string (last field)."""
    parts = key.split("-")
    fields = parts[:-1] + [""] * max(0, 4 - len(parts))
    return {"speaker_type": fields[0], "speaker": fields[1], "production": fields[2], "digits": parts[-1]}


class NTIDIGITS(EventDataset):
    """N-TIDIGITS18 on 64 cochlea channels.

    Labels: the 11 digit words ``o`` ("oh"), ``1``…``9``, ``z`` ("zero") → 0…10 (Tonic's order).
    Sample keys such as ``man-im-a-7557`` encode speaker type, speaker, production and the digit
    sequence; all four are per-sample metadata (``speaker_type``, ``speaker``, ``production``,
    ``digits``).

    Options
    -------
    single_digits : bool (default True)
        Only utterances of one digit (the 11-class task). False keeps every utterance in file
        order; sequences of several digits get label -1 (their digits are in ``metadata(i)["digits"]``).
    """

    recipe = RECIPE

    def _check_options(self, single_digits: bool = True) -> dict:
        if not isinstance(single_digits, (bool, np.bool_)):
            raise TypeError(f"single_digits must be a bool, got {single_digits!r}")
        return {} if single_digits else {"single_digits": False}

    def _samples(self, files, split):
        path = files[self.recipe.resources[0].filename]
        single = self.options.get("single_digits", True)
        index = {c: i for i, c in enumerate(self.recipe.classes)}
        with h5py.File(path, "r") as f:
            for part in (("train", "test") if split == "all" else (split,)):
                names = [f"{part}_labels", f"{part}_addresses", f"{part}_timestamps"]
                missing = [n for n in names if n not in f]
                if missing:
                    raise FormatError(path, None, f"no {missing} in the file (expected {names})")
                keys = [k.decode() if isinstance(k, bytes) else str(k) for k in f[names[0]][:]]
                for key in keys:
                    meta = parse_key(key)
                    digits = meta["digits"]
                    if single and len(digits) != 1:
                        continue
                    if len(digits) == 1 and digits not in index:
                        raise FormatError(path, None, f"sample {key!r}: digit {digits!r} is not one of {list(index)}")
                    where = f"{path}:{part}/{key}"
                    if key not in f[names[1]] or key not in f[names[2]]:
                        raise FormatError(path, None, f"sample {key!r} has no addresses/timestamps dataset")
                    events = audio_events(f[names[2]][key][:], f[names[1]][key][:], self.recipe.sensor_size[0], where)
                    label = index[digits] if len(digits) == 1 else -1
                    yield events, label, {"source": f"{part}/{key}", "t_offset": 0, **meta}
